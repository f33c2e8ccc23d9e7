//! The preview host and URL, computed by one function ([`preview_host`]) for validation (with a
//! sample name), `plan` (before anything exists) and `up` (once the ingress load balancer has an
//! address).
//!
//! - With a base domain (`routing.baseDomain`, else the AKS DNS zone), the host is
//!   `routing.host` rendered with it, by default `<env>.<domain>`: `https://pr-42.previews.acme.dev`.
//! - Without one, the default pattern becomes the wildcard-DNS fallback
//!   `<env>.<ip>.<routing.wildcardDns>` (default `nip.io`), a public service that answers every
//!   `*.<ip>.nip.io` with `<ip>`, so a preview works with no DNS set-up at all. On kind and
//!   local the IP is 127.0.0.1 (kind maps the node's ports 80 and 443 to the machine); on AKS it
//!   is the load balancer's, which exists only once `up` has installed the ingress, so `plan`
//!   shows [`PENDING_IP`] in its place.
//! - When ephemera manages the record (AKS with `provider.aks.dns`), the host must lie in that
//!   zone; a host outside it is a configuration error, found by `plan`.

use std::net::Ipv4Addr;

use super::{Environment, ProviderConfig, render_host};

/// What stands for the load balancer's IP in a host that needs it, until `up` knows it.
pub const PENDING_IP: &str = "<load-balancer-ip>";

/// The IP wildcard-DNS hosts embed where the ingress is reached through this machine's own
/// ports (kind maps the node's 80 and 443 to them; the local provider serves nothing).
pub const LOOPBACK_IP: &str = "127.0.0.1";

/// A preview host, final or waiting for the load balancer's IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewHost {
    /// The host; with [`PENDING_IP`] in it while `pending`.
    pub host: String,
    /// Why the host is not final yet.
    pub pending: Option<String>,
}

impl PreviewHost {
    /// Whether the host is the one the preview will have.
    pub fn is_final(&self) -> bool {
        self.pending.is_none()
    }
}

/// The IP a wildcard-DNS host uses on this provider when no load-balancer address is given:
/// 127.0.0.1 on kind and local, none on AKS.
pub fn default_ip(env: &Environment) -> Option<&'static str> {
    match env.provider {
        ProviderConfig::Aks(_) | ProviderConfig::Existing(_) => None,
        ProviderConfig::Kind(_) | ProviderConfig::Local(_) => Some(LOOPBACK_IP),
    }
}

/// The Azure DNS zone ephemera keeps records in, when it manages DNS (AKS with
/// `provider.aks.dns`).
pub fn managed_zone(env: &Environment) -> Option<&str> {
    match &env.provider {
        ProviderConfig::Aks(a) => a.dns.as_ref().map(|d| d.zone.as_str()),
        _ => None,
    }
}

/// The preview host of environment `name` as [`preview_host`] computes it, without the check
/// that it lies in the managed zone. Validation uses it with a sample name, so that a file with
/// a host outside the zone still loads (for `down`, say) and the error comes from `plan` and `up`.
///
/// # Errors
/// A message for `routing.host:`: an unknown variable in the pattern, or a result that is not a
/// DNS name.
pub fn render_preview_host(
    env: &Environment,
    name: &str,
    pr: Option<u64>,
    lb_ip: Option<Ipv4Addr>,
) -> Result<PreviewHost, String> {
    let known = lb_ip.map(|ip| ip.to_string());
    let (ip, pending) = match (known.as_deref(), default_ip(env)) {
        (Some(ip), _) => (ip, None),
        (None, Some(ip)) => (ip, None),
        (None, None) if env.host_needs_ip() => (
            PENDING_IP,
            Some(format!(
                "no base domain, so the host uses wildcard DNS ({}) and the ingress load balancer's IP, which exists \
                 only once up has created it; up renders the host then",
                env.routing.wildcard_dns
            )),
        ),
        // The pattern does not use the IP; any value renders the same host.
        (None, None) => (LOOPBACK_IP, None),
    };
    let host = render_host(env.host_pattern(), &env.host_variables(name, pr, ip))?;
    if pending.is_some() {
        return Ok(PreviewHost { host, pending });
    }
    if !(crate::names::is_dns_name(&host) && host.contains('.')) {
        return Err(format!("renders {host:?}, which is not a DNS name"));
    }
    Ok(PreviewHost {
        host,
        pending: None,
    })
}

/// The preview host of environment `name`. `lb_ip` is the ingress load balancer's IPv4
/// address once `up` knows it; `plan` passes `None`, and on AKS without a base domain gets a
/// pending host with [`PENDING_IP`] in it.
///
/// # Errors
/// A message for `routing.host:`: an unknown variable in the pattern, a result that is not a
/// DNS name, or (when ephemera manages the zone) a host outside the zone.
pub fn preview_host(
    env: &Environment,
    name: &str,
    pr: Option<u64>,
    lb_ip: Option<Ipv4Addr>,
) -> Result<PreviewHost, String> {
    let rendered = render_preview_host(env, name, pr, lb_ip)?;
    if !rendered.is_final() {
        return Ok(rendered);
    }
    let host = rendered.host;
    if let Some(zone) = managed_zone(env) {
        record_name(&host, zone).map_err(|_| {
            format!(
                "renders {host:?}, which is not in the Azure DNS zone {zone} (provider.aks.dns.zone), so no DNS \
                 record can be made for it"
            )
        })?;
    }
    Ok(PreviewHost {
        host,
        pending: None,
    })
}

/// The preview URL for `host`: https when cert-manager issues a certificate, else http.
pub fn url_for(env: &Environment, host: &str) -> String {
    let scheme = if env.addons.cert_manager.enabled {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// The record set name of `host` relative to `zone` (`pr-42` for `pr-42.previews.acme.dev` in
/// `previews.acme.dev`; `@` for the apex). Case and a trailing dot are ignored.
///
/// # Errors
/// A message when `host` is not in the zone.
pub fn record_name(host: &str, zone: &str) -> Result<String, String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    if host == zone {
        return Ok("@".into());
    }
    match host.strip_suffix(&zone) {
        Some(rest) if rest.ends_with('.') && rest.len() > 1 => {
            Ok(rest.trim_end_matches('.').to_string())
        }
        _ => Err(format!("{host} is not in zone {zone}")),
    }
}

/// The fully qualified name of record `name` in `zone` (without the trailing dot).
pub fn fqdn(name: &str, zone: &str) -> String {
    if name == "@" {
        zone.to_ascii_lowercase()
    } else {
        format!("{name}.{zone}").to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_are_relative_to_the_zone() {
        assert_eq!(
            record_name("pr-42.previews.acme.dev", "previews.acme.dev").unwrap(),
            "pr-42"
        );
        assert_eq!(
            record_name("PR-42.Pr.Previews.Acme.Dev.", "previews.acme.dev").unwrap(),
            "pr-42.pr"
        );
        assert_eq!(
            record_name("previews.acme.dev", "previews.acme.dev").unwrap(),
            "@"
        );
        assert!(record_name("pr-42.xpreviews.acme.dev", "previews.acme.dev").is_err());
        assert!(record_name("acme.dev", "previews.acme.dev").is_err());
        assert_eq!(fqdn("@", "Z.dev"), "z.dev");
        assert_eq!(fqdn("pr-1", "z.dev"), "pr-1.z.dev");
    }
}
