//! Step `addons`: the add-on install graph, applied and waited for, then recorded (versions and
//! a fingerprint) in `kube-system/ephemera-addons`. Skipped on the fast path: an existing
//! cluster whose recorded fingerprint matches the plan's add-ons.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use sha2::{Digest, Sha256};

use super::Context;
use crate::addons::ResolvedAddon;
use crate::providers::Ensured;

pub const NAME: &str = "addons";

/// The ConfigMap in `kube-system` that remembers which add-ons are installed, for the fast path.
pub const ADDONS_CONFIGMAP: &str = "ephemera-addons";

/// Why the step is skipped on the fast path.
pub const UP_TO_DATE: &str = "already installed at these versions";

/// The fingerprint to install the plan's add-ons at; `None` when the cluster existed and already
/// has them (an unreadable record counts as not installed).
pub(crate) async fn wanted(
    ctx: &Context<'_>,
    cluster: &Ensured,
    client: &kube::Client,
) -> Option<String> {
    let fingerprint = fingerprint(&ctx.plan.addons);
    let installed = installed_fingerprint(client).await;
    if !cluster.created && installed.as_deref() == Some(fingerprint.as_str()) {
        None
    } else {
        Some(fingerprint)
    }
}

/// Installs the plan's add-ons (waiting until they are ready, up to `--timeout`), then records
/// them under `fingerprint`.
///
/// # Errors
/// Source, apply and wait errors of the add-ons; the record not written.
pub(crate) async fn install(
    ctx: &Context<'_>,
    client: &kube::Client,
    fingerprint: &str,
) -> Result<(), crate::Error> {
    let (name, addons) = (ctx.name, &ctx.plan.addons);
    if !addons.is_empty() {
        let sources = ctx.opts.sources.clone();
        let mut install = crate::addons::install::InstallContext::new(
            name,
            ctx.env.provider.kind(),
            ctx.renderer,
            sources,
            ctx.progress.clone(),
        );
        install.values = crate::addons::install::template_values(ctx.env);
        // Each wait gets --timeout from its start (what completed before it opened a new
        // window), and none outlasts --deadline.
        install.wait_timeout = ctx.opts.timeout;
        install.wait_until = Some(ctx.bounds.deadline());
        let report = crate::addons::install::install(client.clone(), addons, &install).await?;
        tracing::info!(
            environment = name,
            seconds = report.elapsed.as_secs_f64(),
            "add-ons installed"
        );
    }
    record_fingerprint(client, name, addons, fingerprint).await
}

/// A digest of what the add-on step would install: versions, sources, values and overlays.
pub fn fingerprint(addons: &[ResolvedAddon]) -> String {
    let json = serde_json::to_vec(addons).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

async fn installed_fingerprint(client: &kube::Client) -> Option<String> {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "kube-system");
    let cm = api.get_opt(ADDONS_CONFIGMAP).await.ok()??;
    cm.data?.get("fingerprint").cloned()
}

async fn record_fingerprint(
    client: &kube::Client,
    env_name: &str,
    addons: &[ResolvedAddon],
    fingerprint: &str,
) -> Result<(), crate::Error> {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "kube-system");
    let versions: Vec<String> = addons
        .iter()
        .map(|a| format!("{}={}", a.name, a.version))
        .collect();
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ADDONS_CONFIGMAP,
            "namespace": "kube-system",
            "labels": { crate::labels::MANAGED_BY: crate::MANAGER, crate::labels::ENVIRONMENT: env_name },
        },
        "data": { "fingerprint": fingerprint, "addons": versions.join(",") },
    });
    api.patch(
        ADDONS_CONFIGMAP,
        &PatchParams::apply(crate::MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| {
        crate::kube::KubeError::api(
            format!("recording installed add-ons in kube-system/{ADDONS_CONFIGMAP}"),
            e,
        )
    })?;
    Ok(())
}
