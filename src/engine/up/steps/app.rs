//! Step `app`: the app's Services, route and certificate first, then its Rollout, waited for up
//! to `--timeout` until it is Healthy on the new image (fully promoted), or, with
//! `app.canary.preview: steps`, paused at its first canary step.

use std::time::Instant;

use super::Context;
use crate::engine::EngineError;
use crate::plan::Manifest;

pub const NAME: &str = "app";

/// Applies `manifests` and waits for the Rollout; `None` when Argo CD owns it (`app.gitops`),
/// whose Application's health is then the app's readiness.
///
/// # Errors
/// A manifest that is not a Kubernetes object; apply errors; the Rollout not settled in time.
pub(crate) async fn apply(
    ctx: &Context<'_>,
    client: &kube::Client,
    manifests: &[Manifest],
) -> Result<Option<crate::app::RolloutStatus>, crate::Error> {
    let deadline = Instant::now() + ctx.bounds.remaining();
    let (env, name) = (ctx.env, ctx.name);
    let mut objects = Vec::with_capacity(manifests.len());
    for m in manifests {
        let obj = crate::kube::manifest::from_value(m.object.clone()).map_err(|e| {
            EngineError::Invalid(format!(
                "{}: {} is not a Kubernetes object: {e}",
                m.template,
                m.id()
            ))
        })?;
        objects.push(obj);
    }
    let opts = crate::kube::ApplyOptions {
        labels: [
            (
                crate::labels::MANAGED_BY.to_string(),
                crate::MANAGER.to_string(),
            ),
            (crate::labels::ENVIRONMENT.to_string(), name.to_string()),
            (crate::labels::COMPONENT.to_string(), "app".to_string()),
        ]
        .into(),
        // The app's objects are ephemera's alone: `deploy` sets the image under its own field
        // manager, and a later `up` with a new image takes that field back.
        force: true,
        origin: format!("app {}", env.app.name),
        ..Default::default()
    };
    // The Rollout names its Services (stable, canary): applied in one parallel batch it can
    // reach the controller first, which then marks it InvalidSpec ("service not found") and
    // keeps that until its next resync, so the wait below failed the first deploy. Everything
    // it refers to goes first.
    let (rollouts, rest): (Vec<_>, Vec<_>) = objects.into_iter().partition(|o| {
        o.types
            .as_ref()
            .is_some_and(|t| t.kind == "Rollout" && t.api_version.starts_with("argoproj.io/"))
    });
    let applier = crate::kube::Applier::new(client.clone());
    applier.apply(rest, &opts).await?;
    if !rollouts.is_empty() {
        applier.apply(rollouts, &opts).await?;
    }
    if env.app.gitops.is_some() {
        // Argo CD owns the Rollout; its Application's health is the app's readiness.
        return Ok(None);
    }
    let app = &env.app.name;
    let goal = crate::app::Goal::Settled;
    let settled = crate::app::wait_for(client, app, app, goal, deadline).await?;
    // A preview shows the newest commit: unless the file asks to rehearse the canary steps, the
    // new image is promoted to 100% before the Deployment status says it is live.
    let preview = env.app.canary.preview;
    let status = crate::app::complete(client, app, app, settled, preview, deadline).await?;
    Ok(Some(status))
}
