//! Step `certificate`, which runs in one of two places:
//! - before the app, with `tls.wildcard`: the zone's wildcard certificate, issued once in
//!   `ephemera-certs` and copied into the app's namespace;
//! - after the app, otherwise: the preview's own certificate, waited for (with real pods only;
//!   a failed ACME order is reported with cert-manager's reason).

use super::Context;
use crate::config::Environment;
use crate::dns::tls;

pub const NAME: &str = "certificate";

/// The zone of the wildcard certificate, when the environment uses one.
pub(crate) fn wildcard_zone(env: &Environment) -> Option<&str> {
    env.tls
        .wildcard
        .then(|| env.base_domain())
        .flatten()
        .filter(|_| env.addons.cert_manager.enabled)
}

/// Ensures the wildcard certificate of `zone`; with real pods (`serves_traffic`), waits for it
/// and copies its secret into the app's namespace.
///
/// # Errors
/// Kubernetes errors; the certificate not ready in time.
pub(crate) async fn ensure_wildcard(
    ctx: &Context<'_>,
    client: &kube::Client,
    zone: &str,
    serves_traffic: bool,
) -> Result<(), crate::Error> {
    let issuer_name = ctx
        .plan
        .addons
        .iter()
        .find(|a| a.name == "cert-manager")
        .and_then(|a| a.exports.get("clusterIssuer"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("ephemera");
    tls::ensure_wildcard_certificate(client, zone, issuer_name, ctx.env.tls.issuer).await?;
    let cert = tls::WildcardCertificate::for_zone(zone)?;
    if serves_traffic {
        let timeout = ctx.bounds.remaining();
        tls::wait_certificate(client, tls::CERTS_NAMESPACE, &cert.name, timeout).await?;
        let app = &ctx.env.app.name;
        let secret = format!("{app}-tls");
        tls::copy_wildcard_secret(client, zone, app, &secret, ctx.name).await?;
    }
    Ok(())
}

/// Whether the step waits for the preview's own certificate after the app: with real pods and
/// cert-manager, and no wildcard certificate.
pub(crate) fn awaited(env: &Environment, serves_traffic: bool, wildcard: bool) -> bool {
    serves_traffic && env.addons.cert_manager.enabled && !wildcard
}

/// Waits, up to `--timeout`, until the preview's certificate is ready.
///
/// # Errors
/// The certificate not ready in time, with cert-manager's reason.
pub(crate) async fn wait(ctx: &Context<'_>, client: &kube::Client) -> Result<(), crate::Error> {
    let app = &ctx.env.app.name;
    tls::wait_certificate(client, app, app, ctx.bounds.remaining()).await?;
    Ok(())
}
