//! Step `dns`: the preview host, final once the ingress load balancer has an address, and its
//! record in the Azure DNS zone when ephemera manages one. Only when the environment file asks
//! for a zone, or the host waits for the address (AKS without a base domain).

use std::sync::Arc;

use super::Context;
use crate::dns::address::{AddressSource, wait_for_address};
use crate::dns::azure::AzureDns;
use crate::engine::EngineError;
use crate::plan::Manifest;

pub const NAME: &str = "dns";

/// Where the app is reached: its URL, and the manifests naming its host.
pub(crate) struct Route {
    pub url: Option<String>,
    pub manifests: Vec<Manifest>,
}

/// The DNS work of the step: the zone's record, when ephemera manages the zone.
pub(crate) struct Dns {
    zone: Option<AzureDns>,
}

/// The route as planned, and the DNS work when the step is needed. Without an ingress nothing
/// routes to the app, so there is no URL.
///
/// # Errors
/// An unusable DNS zone configuration.
pub(crate) fn route(ctx: &Context<'_>) -> Result<(Route, Option<Dns>), crate::Error> {
    let zone = AzureDns::from_env(ctx.env, Arc::new(crate::providers::probe::SystemProbe))?;
    let summary = &ctx.plan.summary;
    let mut route = Route {
        url: summary.url.clone(),
        manifests: ctx.plan.manifests.clone(),
    };
    if !ctx.env.addons.ingress.enabled {
        route.url = None;
        return Ok((route, None));
    }
    let wanted = zone.is_some() || summary.host_pending.is_some();
    Ok((route, wanted.then_some(Dns { zone })))
}

impl Route {
    /// The route once the step made `host` final: the manifests name it, and the URL points at it.
    pub(crate) fn set_host(&mut self, ctx: &Context<'_>, host: &str) {
        let planned = &ctx.plan.summary.host;
        if host != planned {
            replace_in_strings(&mut self.manifests, planned, host);
        }
        self.url = Some(crate::dns::host::url_for(ctx.env, host));
    }
}

/// Waits for the ingress load balancer's address, makes the preview host final with it, and
/// points the zone's record at it. Returns the host.
///
/// # Errors
/// No ingress add-on to take the address from; no address in time; a wildcard-DNS host without
/// an IPv4 address; ARM errors.
pub(crate) async fn ensure(
    ctx: &Context<'_>,
    client: &kube::Client,
    dns: &Dns,
    pr: Option<u64>,
) -> Result<String, crate::Error> {
    let source = AddressSource::from_addons(&ctx.plan.addons).ok_or_else(|| {
        EngineError::Invalid(
            "the preview host needs the ingress load balancer's address, but no ingress add-on is enabled"
                .into(),
        )
    })?;
    let address = wait_for_address(client, &source, ctx.bounds.remaining()).await?;
    let host = match &ctx.plan.summary.host_pending {
        None => ctx.plan.summary.host.clone(),
        Some(_) => {
            let ip = address.ipv4().ok_or_else(|| {
                EngineError::Invalid(format!(
                    "the load balancer has no IPv4 address ({address:?}), which the wildcard-DNS host needs; configure provider.aks.dns or routing.baseDomain"
                ))
            })?;
            crate::dns::host::preview_host(ctx.env, ctx.name, pr, Some(ip))
                .map_err(|m| EngineError::Invalid(format!("routing.host: {m}")))?
                .host
        }
    };
    if let Some(zone) = &dns.zone {
        zone.ensure(&host, &address, ctx.name).await?;
    }
    Ok(host)
}

/// Replaces `from` with `to` inside every string of `manifests` (the pending preview host, once
/// the load balancer's address makes it final).
fn replace_in_strings(manifests: &mut [Manifest], from: &str, to: &str) {
    fn walk(v: &mut serde_json::Value, from: &str, to: &str) {
        match v {
            serde_json::Value::String(s) if s.contains(from) => *s = s.replace(from, to),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, from, to)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| walk(x, from, to)),
            _ => {}
        }
    }
    for m in manifests {
        walk(&mut m.object, from, to);
    }
}
