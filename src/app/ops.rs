//! Operations on an environment's Argo Rollout: deploy an image, promote, abort, read status and
//! wait for a goal.
//!
//! `promote` and `abort` send exactly the patches the Argo Rollouts kubectl plugin sends
//! (`pkg/kubectl-argo-rollouts/cmd/promote/promote.go` and `abort/abort.go`): JSON merge patches,
//! the status part on the `status` subresource first, falling back to the main resource when the
//! subresource is not served.
//!
//! `deploy` changes only the container image, by server-side apply under its own field manager
//! [`DEPLOY_MANAGER`] with `metadata.uid` as a precondition; see [`deploy`] for why.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Namespace;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use ::kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use ::kube::{Api, Client};

use super::AppError;
use super::rollout::{
    ARGOCD_TRACKING, Goal, POD_TEMPLATE_HASH, Phase, ReplicaSetView, RolloutStatus, RolloutView,
    Verdict, describe, evaluate, summarize,
};
use crate::config::PreviewCanary;
use crate::kube::KubeError;
use crate::names::ImageRef;

/// The field manager that owns the container image after `deploy`.
///
/// `up` applies the whole Rollout as [`crate::MANAGER`]. Applying only the image as that same
/// manager would tell the API server that `ephemera` no longer wants every other field, and it
/// would remove them (replicas, selector, strategy, ports). A merge patch cannot address one
/// container either: JSON merge patch replaces the whole `containers` list. So `deploy` applies
/// just `containers[name=…].image` (a map-list keyed by name in the Rollout CRD) as its own
/// manager, forcing the image away from `up`'s apply.
pub const DEPLOY_MANAGER: &str = "ephemera-deploy";

const GROUP: &str = "argoproj.io";
const VERSION: &str = "v1alpha1";
const KIND: &str = "Rollout";

/// The Argo Rollouts `Rollout` resource (`argoproj.io/v1alpha1`, plural `rollouts`).
pub fn rollout_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), "rollouts")
}

fn rollouts(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &rollout_resource())
}

fn object(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn api_error(context: String) -> impl FnOnce(::kube::Error) -> AppError {
    move |source| AppError::Api { context, source }
}

/// Reads a Rollout object into the view the rest of this module works on.
///
/// # Errors
/// [`AppError::Malformed`] when the object does not have the shape of a Rollout.
pub fn view_of(obj: &DynamicObject) -> Result<RolloutView, AppError> {
    let ns = obj.metadata.namespace.clone().unwrap_or_default();
    let name = obj.metadata.name.clone().unwrap_or_default();
    serde_json::to_value(obj)
        .and_then(serde_json::from_value)
        .map_err(|source| AppError::Malformed {
            object: object(&ns, &name),
            source,
        })
}

/// A 404, also when the body is not a Status (an unknown API group answers `404 page not found`).
fn is_404(status: &::kube::core::Status) -> bool {
    status.code == 404 || status.is_not_found()
}

/// Explains a 404 on the Rollout: no namespace (no environment), no Rollout, or no Rollout API.
async fn not_found(
    client: &Client,
    ns: &str,
    name: &str,
    status: &::kube::core::Status,
) -> AppError {
    let object_missing = status.details.as_ref().is_some_and(|d| !d.kind.is_empty());
    if !object_missing {
        return AppError::NoRolloutsApi;
    }
    match Api::<Namespace>::all(client.clone()).get_opt(ns).await {
        Ok(None) => AppError::NoNamespace {
            namespace: ns.to_string(),
        },
        _ => AppError::NoRollout {
            object: object(ns, name),
        },
    }
}

/// Fetches the Rollout, turning "not found" into the errors that say which part is missing.
async fn fetch(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<(DynamicObject, RolloutView), AppError> {
    match rollouts(client, ns).get(name).await {
        Ok(obj) => {
            let view = view_of(&obj)?;
            Ok((obj, view))
        }
        Err(::kube::Error::Api(status)) if is_404(&status) => {
            Err(not_found(client, ns, name, &status).await)
        }
        Err(source) => Err(AppError::Api {
            context: format!("reading rollout {}", object(ns, name)),
            source,
        }),
    }
}

/// The ReplicaSets behind the rollout's stable and current pod-template hashes.
async fn replica_sets(client: &Client, ro: &RolloutView) -> Result<Vec<ReplicaSetView>, AppError> {
    let mut hashes: Vec<&str> = [&ro.status.stable_rs, &ro.status.current_pod_hash]
        .into_iter()
        .filter_map(|h| h.as_deref())
        .collect();
    hashes.dedup();
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let selector = format!("{POD_TEMPLATE_HASH} in ({})", hashes.join(","));
    let list = Api::<ReplicaSet>::namespaced(client.clone(), &ro.metadata.namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(api_error(format!(
            "listing the ReplicaSets of rollout {}",
            ro.object()
        )))?;
    Ok(list
        .items
        .iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .as_ref()
                .is_some_and(|owners| owners.iter().any(|o| o.uid == ro.metadata.uid))
        })
        .filter_map(ReplicaSetView::from_replica_set)
        .collect())
}

async fn status_of(client: &Client, ro: &RolloutView) -> Result<RolloutStatus, AppError> {
    let rss = replica_sets(client, ro).await?;
    Ok(summarize(ro, &rss))
}

/// The status of rollout `name` in namespace `ns`: step, weights, images, pause and abort.
///
/// # Errors
/// [`AppError::NoNamespace`] / [`AppError::NoRollout`] (exit 2) when the environment does not
/// exist, [`AppError::NoRolloutsApi`] without the Rollout CRD, API errors otherwise.
pub async fn status(client: &Client, ns: &str, name: &str) -> Result<RolloutStatus, AppError> {
    let (_, view) = fetch(client, ns, name).await?;
    status_of(client, &view).await
}

/// The container whose image `deploy` sets: the only one, else the one named like the rollout.
fn app_container(ro: &RolloutView) -> Result<String, AppError> {
    let containers = &ro.spec.template.spec.containers;
    match containers.as_slice() {
        [] => Err(AppError::NoContainer {
            object: ro.object(),
        }),
        [only] => Ok(only.name.clone()),
        many => many
            .iter()
            .find(|c| c.name == ro.metadata.name)
            .map(|c| c.name.clone())
            .ok_or_else(|| AppError::AmbiguousContainer {
                object: ro.object(),
                names: many
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
    }
}

/// The server-side apply body that sets one container's image and nothing else. `metadata.uid`
/// makes it a precondition: the API server refuses it instead of creating a Rollout when the
/// object is gone (or was replaced by another of the same name).
pub fn image_apply_body(ns: &str, name: &str, uid: &str, container: &str, image: &str) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": { "name": name, "namespace": ns, "uid": uid },
        "spec": { "template": { "spec": { "containers": [ { "name": container, "image": image } ] } } },
    })
}

/// Sets the rollout's container image and waits until the canary reaches its first pause, or
/// until the rollout is Healthy when its steps have no pause (or the image is already stable).
///
/// Idempotent: deploying the image that already runs changes nothing and returns at once. The
/// image is applied server-side as [`DEPLOY_MANAGER`] with a `metadata.uid` precondition, so a
/// missing environment is never created.
///
/// # Errors
/// - [`AppError::NoNamespace`] / [`AppError::NoRollout`] (exit 2): the environment does not
///   exist; nothing was changed.
/// - [`AppError::GitOpsManaged`] / [`AppError::AmbiguousContainer`] (exit 2): this Rollout is
///   not one `deploy` may change directly.
/// - [`AppError::Stuck`]: the rollout cannot get there (Degraded, aborted, invalid spec).
/// - [`AppError::Timeout`] (exit 3) at `deadline`, with the last state seen.
pub async fn deploy(
    client: &Client,
    ns: &str,
    name: &str,
    image: &ImageRef,
    deadline: Instant,
) -> Result<RolloutStatus, AppError> {
    let started = Instant::now();
    let tokio_deadline = tokio::time::Instant::from_std(deadline);
    let (_, view) = fetch(client, ns, name).await?;
    if let Some(tracking) = view.metadata.annotations.get(ARGOCD_TRACKING) {
        let application = tracking.split(':').next().unwrap_or(tracking).to_string();
        return Err(AppError::GitOpsManaged {
            object: view.object(),
            application,
        });
    }
    let container = app_container(&view)?;
    let body = image_apply_body(ns, name, &view.metadata.uid, &container, &image.reference);
    tracing::info!(rollout = %view.object(), %container, image = %image, "setting the image");
    let api = rollouts(client, ns);
    let params = PatchParams::apply(DEPLOY_MANAGER).force();
    let patch = Patch::Apply(&body);
    match tokio::time::timeout_at(tokio_deadline, api.patch(name, &params, &patch)).await {
        Err(_) => {
            return Err(AppError::Timeout {
                object: view.object(),
                goal: "accept the new image".into(),
                seconds: started.elapsed().as_secs(),
                last_state: describe(&view),
            });
        }
        Ok(Ok(applied)) => {
            let rv = applied.metadata.resource_version.unwrap_or_default();
            ensure_noticed(&api, &view, &rv).await?;
        }
        // The uid precondition failed: the Rollout was deleted (or replaced) since we read it.
        Ok(Err(::kube::Error::Api(s))) if s.code == 409 && s.message.contains("uid mismatch") => {
            return Err(AppError::NoRollout {
                object: view.object(),
            });
        }
        Ok(Err(::kube::Error::Api(s))) if is_404(&s) => {
            return Err(not_found(client, ns, name, &s).await);
        }
        Ok(Err(source)) => {
            return Err(AppError::Api {
                context: format!("setting the image of rollout {}", view.object()),
                source,
            });
        }
    }
    let status = wait_for(client, ns, name, Goal::Settled, deadline).await.map_err(|e| match e {
        AppError::Stuck { object, goal, why } if view.status.abort && view.spec_images().contains(&image.reference) => {
            AppError::Stuck {
                object,
                goal,
                why: format!("{why}; this image was aborted before, so nothing changed: deploy another image to start a new canary"),
            }
        }
        other => other,
    })?;
    let current = status.canary.as_ref().or(status.stable.as_ref());
    if let Some(rev) = current
        && !rev.images.is_empty()
        && !rev.images.contains(&image.reference)
    {
        return Err(AppError::Stuck {
            object: object(ns, name),
            goal: format!("run {image}"),
            why: format!(
                "another writer changed the image meanwhile: it runs {}",
                rev.images.join(", ")
            ),
        });
    }
    Ok(status)
}

/// Takes a new image the rest of the way on a preview, after [`deploy`] (or `up`'s apply) saw the
/// Rollout `settled`.
///
/// - [`PreviewCanary::Full`]: a Rollout paused at a canary step is fully promoted, with the patch
///   `promote --full` sends, and waited for until it is Healthy: the new image then serves 100%.
/// - [`PreviewCanary::Steps`], or a Rollout that is already Healthy: `settled` as it is.
///
/// # Errors
/// As [`promote`] and [`wait_for`] (Degraded, timeout at `deadline`, a missing Rollout).
pub async fn complete(
    client: &Client,
    ns: &str,
    name: &str,
    settled: RolloutStatus,
    preview: PreviewCanary,
    deadline: Instant,
) -> Result<RolloutStatus, AppError> {
    if preview == PreviewCanary::Steps || settled.phase != Phase::Paused {
        return Ok(settled);
    }
    tracing::info!(
        rollout = %object(ns, name),
        "promoting the canary fully (app.canary.preview: full)"
    );
    promote(client, ns, name, true).await?;
    wait_for(client, ns, name, Goal::Healthy, deadline).await
}

/// The merge patches the Argo Rollouts kubectl plugin sends for `promote` (`--full` or not).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PromotePatches {
    /// Sent first, to the `status` subresource.
    pub status: Option<Value>,
    /// Sent next, to the main resource.
    pub spec: Option<Value>,
    /// Sent to the main resource instead of both when the status subresource is not served
    /// (Rollouts before 0.10).
    pub unified: Option<Value>,
}

/// Computes the promote patches exactly as the plugin's `getPatches` does:
///
/// - `full`: `{"status":{"promoteFull":true}}` on the status, unless the stable ReplicaSet already
///   runs the current template (then nothing).
/// - otherwise `{"spec":{"paused":false}}` when `spec.paused`; and on the status
///   `{"status":{"pauseConditions":null}}` when there are pause conditions, else (a canary with
///   steps, not paused) `{"status":{"pauseConditions":null,"currentStepIndex":N+1}}` to skip the
///   running step (N stays when every step is done).
pub fn promote_patches(ro: &RolloutView, full: bool) -> PromotePatches {
    if full {
        let status = (ro.status.current_pod_hash != ro.status.stable_rs)
            .then(|| json!({"status": {"promoteFull": true}}));
        return PromotePatches {
            status,
            spec: None,
            unified: None,
        };
    }
    let mut out = PromotePatches {
        unified: Some(json!({"spec": {"paused": false}, "status": {"pauseConditions": null}})),
        spec: ro.spec.paused.then(|| json!({"spec": {"paused": false}})),
        status: None,
    };
    if !ro.status.pause_conditions.is_empty() {
        out.status = Some(json!({"status": {"pauseConditions": null}}));
    } else if let Some(mut index) = ro.step_index() {
        let total = ro
            .spec
            .strategy
            .canary
            .as_ref()
            .map_or(0, |c| c.steps.len());
        if usize::try_from(index).is_ok_and(|i| i < total) {
            index += 1;
        }
        out.status = Some(json!({"status": {"pauseConditions": null, "currentStepIndex": index}}));
        out.unified = Some(
            json!({"spec": {"paused": false}, "status": {"pauseConditions": null, "currentStepIndex": index}}),
        );
    }
    out
}

/// The patch the plugin's `abort` sends to the status subresource.
pub fn abort_patch() -> Value {
    json!({"status": {"abort": true}})
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(crate::MANAGER.to_string()),
        ..PatchParams::default()
    }
}

/// Sends `patch` to the status subresource and returns the new resourceVersion; `Ok(None)` when
/// that subresource is not served.
async fn patch_status(
    api: &Api<DynamicObject>,
    obj: &str,
    name: &str,
    patch: &Value,
) -> Result<Option<String>, AppError> {
    match api
        .patch_subresource("status", name, &merge_params(), &Patch::Merge(patch))
        .await
    {
        Ok(o) => Ok(Some(o.metadata.resource_version.unwrap_or_default())),
        Err(::kube::Error::Api(s)) if is_404(&s) => Ok(None),
        Err(source) => Err(AppError::Api {
            context: format!("patching the status of rollout {obj}"),
            source,
        }),
    }
}

/// Sends `patch` to the main resource and returns the new resourceVersion.
async fn patch_main(
    client: &Client,
    ns: &str,
    name: &str,
    patch: &Value,
) -> Result<String, AppError> {
    match rollouts(client, ns)
        .patch(name, &merge_params(), &Patch::Merge(patch))
        .await
    {
        Ok(o) => Ok(o.metadata.resource_version.unwrap_or_default()),
        Err(::kube::Error::Api(s)) if is_404(&s) => Err(not_found(client, ns, name, &s).await),
        Err(source) => Err(AppError::Api {
            context: format!("patching rollout {}", object(ns, name)),
            source,
        }),
    }
}

/// Promotes the rollout the way `kubectl argo rollouts promote [--full]` does (see
/// [`promote_patches`]): resumes a paused canary step, skips the running step when not paused,
/// or with `full` skips every remaining step, pause and analysis.
///
/// Returns the status right after the patches; use [`wait_for`] to follow the rollout.
///
/// # Errors
/// [`AppError::NoNamespace`] / [`AppError::NoRollout`] (exit 2) when the environment does not
/// exist; API errors otherwise.
pub async fn promote(
    client: &Client,
    ns: &str,
    name: &str,
    full: bool,
) -> Result<RolloutStatus, AppError> {
    let (_, view) = fetch(client, ns, name).await?;
    let PromotePatches {
        status: status_patch,
        mut spec,
        unified,
    } = promote_patches(&view, full);
    let api = rollouts(client, ns);
    let mut written = None;
    if let Some(patch) = &status_patch {
        tracing::info!(rollout = %view.object(), %patch, "promote: patching status");
        written = patch_status(&api, &view.object(), name, patch).await?;
        if written.is_none() {
            // No status subresource: one patch of the main resource carries both parts.
            spec = unified;
        }
    }
    if let Some(patch) = &spec {
        tracing::info!(rollout = %view.object(), %patch, "promote: patching spec");
        written = Some(patch_main(client, ns, name, patch).await?);
    }
    if let Some(rv) = written {
        ensure_noticed(&api, &view, &rv).await?;
    }
    status(client, ns, name).await
}

/// Aborts the rollout the way `kubectl argo rollouts abort` does: `{"status":{"abort":true}}` on
/// the status subresource (the main resource when that is not served). The controller then
/// scales the canary down and sends everything back to the stable ReplicaSet; the spec still
/// names the new image, so deploying another image starts a new canary.
///
/// Returns the status right after the patch; wait for [`Goal::Aborted`] to see it finish.
///
/// # Errors
/// [`AppError::NoNamespace`] / [`AppError::NoRollout`] (exit 2) when the environment does not
/// exist; API errors otherwise.
pub async fn abort(client: &Client, ns: &str, name: &str) -> Result<RolloutStatus, AppError> {
    let (_, view) = fetch(client, ns, name).await?;
    let patch = abort_patch();
    tracing::info!(rollout = %view.object(), %patch, "abort: patching status");
    let api = rollouts(client, ns);
    let rv = match patch_status(&api, &view.object(), name, &patch).await? {
        Some(rv) => rv,
        None => patch_main(client, ns, name, &patch).await?,
    };
    ensure_noticed(&api, &view, &rv).await?;
    status(client, ns, name).await
}

/// How long the controller gets to write anything after our change before it is nudged.
const REACTION_GRACE: Duration = Duration::from_secs(2);
/// How many times it is nudged before ephemera stops helping and just waits.
const NUDGES: u32 = 3;
/// The annotation a nudge sets and removes again.
pub const NUDGE_ANNOTATION: &str = "ephemera.dev/nudge";

/// Makes sure the Argo Rollouts controller acts on the change we just wrote (resourceVersion
/// `written`).
///
/// Argo Rollouts up to v1.9 writes the result of each reconcile back into its informer cache. When
/// our write lands while a reconcile is in flight, that write-back replaces the fresh object with
/// an older one, and the controller never sees our change until its next event or its 15-minute
/// resync (argoproj/argo-rollouts issues 4073 and 4694; fixed upstream by removing the write-back,
/// PR 4786). An abort issued right after `deploy` returns hits this reliably. The controller
/// always writes status after acting on a change, so when nothing is written within
/// [`REACTION_GRACE`], ephemera sets and removes the [`NUDGE_ANNOTATION`] annotation: two fresh
/// watch events that put the current object in the controller's cache.
async fn ensure_noticed(
    api: &Api<DynamicObject>,
    ro: &RolloutView,
    written: &str,
) -> Result<(), AppError> {
    // A write that changed nothing (same resourceVersion) gives the controller nothing to do.
    if written.is_empty() || written == ro.metadata.resource_version {
        return Ok(());
    }
    let name = ro.metadata.name.as_str();
    let mut since = written.to_string();
    for attempt in 1..=NUDGES {
        if changed_within(api, ro, &since, REACTION_GRACE).await? {
            return Ok(());
        }
        tracing::warn!(
            rollout = %ro.object(),
            attempt,
            "the Argo Rollouts controller has not acted on the change yet; nudging it with a fresh watch event"
        );
        let stamp = json!({"metadata": {"annotations": {NUDGE_ANNOTATION: since}}});
        let clear = json!({"metadata": {"annotations": {NUDGE_ANNOTATION: null}}});
        for patch in [&stamp, &clear] {
            let obj = api
                .patch(name, &merge_params(), &Patch::Merge(patch))
                .await
                .map_err(api_error(format!(
                    "nudging the controller about rollout {}",
                    ro.object()
                )))?;
            since = obj.metadata.resource_version.unwrap_or_default();
        }
    }
    if !changed_within(api, ro, &since, REACTION_GRACE).await? {
        tracing::warn!(rollout = %ro.object(), "the Argo Rollouts controller still shows no reaction; is it running?");
    }
    Ok(())
}

/// Whether the rollout's resourceVersion moves away from `since` within `grace`.
async fn changed_within(
    api: &Api<DynamicObject>,
    ro: &RolloutView,
    since: &str,
    grace: Duration,
) -> Result<bool, AppError> {
    let until = Instant::now() + grace;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let current = api
            .get(&ro.metadata.name)
            .await
            .map_err(api_error(format!("reading rollout {}", ro.object())))?;
        if current.metadata.resource_version.as_deref() != Some(since) {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
    }
}

/// A wait [`Goal`] as a condition for the Kubernetes engine's watch driver.
struct GoalCondition(Goal);

impl crate::kube::wait::Condition for GoalCondition {
    fn matches(&self, obj: Option<&Value>) -> bool {
        obj.and_then(|o| serde_json::from_value::<RolloutView>(o.clone()).ok())
            .is_some_and(|ro| evaluate(self.0, &ro) == Verdict::Reached)
    }

    fn failed(&self, obj: Option<&Value>) -> Option<String> {
        let Some(o) = obj else {
            return Some("it was deleted".into());
        };
        match serde_json::from_value::<RolloutView>(o.clone()) {
            Err(e) => Some(format!("it is not a readable Rollout: {e}")),
            Ok(ro) => match evaluate(self.0, &ro) {
                Verdict::Failed(why) => Some(why),
                Verdict::Reached | Verdict::Waiting => None,
            },
        }
    }
}

/// Watches the rollout until `goal` holds, and returns its status then.
///
/// Watch-driven through [`crate::kube::wait::wait_object`]; `deadline` bounds the whole wait.
///
/// # Errors
/// - [`AppError::NoNamespace`] / [`AppError::NoRollout`] (exit 2) when it does not exist.
/// - [`AppError::Timeout`] (exit 3) at `deadline`, naming the goal and the last state seen.
/// - [`AppError::Stuck`] when the goal cannot be reached (Degraded, invalid spec, deleted, …).
pub async fn wait_for(
    client: &Client,
    ns: &str,
    name: &str,
    goal: Goal,
    deadline: Instant,
) -> Result<RolloutStatus, AppError> {
    let started = Instant::now();
    fetch(client, ns, name).await?;
    let timeout = deadline.saturating_duration_since(started);
    let waited = crate::kube::wait::wait_object(
        client,
        &rollout_resource(),
        Some(ns),
        name,
        &GoalCondition(goal),
        timeout,
    )
    .await;
    let obj = match waited {
        Ok(Some(obj)) => obj,
        Ok(None) => {
            return Err(AppError::Stuck {
                object: object(ns, name),
                goal: goal.to_string(),
                why: "it was deleted".into(),
            });
        }
        Err(KubeError::Failed { reason, .. }) => {
            return Err(AppError::Stuck {
                object: object(ns, name),
                goal: goal.to_string(),
                why: reason,
            });
        }
        Err(KubeError::Timeout { last_state, .. }) => {
            // Describe the last state the way `status` reads it, when the rollout can still be read.
            let last_state = match fetch(client, ns, name).await {
                Ok((_, ro)) => describe(&ro),
                Err(_) => last_state,
            };
            return Err(AppError::Timeout {
                object: object(ns, name),
                goal: goal.to_string(),
                seconds: started.elapsed().as_secs(),
                last_state,
            });
        }
        Err(source) => {
            return Err(AppError::Wait {
                object: object(ns, name),
                source,
            });
        }
    };
    status_of(client, &view_of(&obj)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(yaml: &str) -> RolloutView {
        serde_saphyr::from_str(yaml).expect("fixture parses")
    }

    const CANARY: &str = r#"
metadata: {name: web, namespace: pr-7}
spec:
  strategy:
    canary:
      steps: [{setWeight: 20}, {pause: {}}, {setWeight: 50}, {pause: {duration: 2s}}, {setWeight: 100}]
  template: {spec: {containers: [{name: web, image: "example.com/web:v1"}]}}
"#;

    #[test]
    fn promote_at_a_pause_clears_the_pause_conditions_only() {
        let ro = view(&format!(
            "{CANARY}status: {{currentStepIndex: 1, stableRS: a, currentPodHash: b, pauseConditions: [{{reason: CanaryPauseStep, startTime: x}}]}}"
        ));
        let p = promote_patches(&ro, false);
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null}})));
        assert_eq!(p.spec, None);
        assert_eq!(
            p.unified,
            Some(json!({"spec": {"paused": false}, "status": {"pauseConditions": null}}))
        );
    }

    #[test]
    fn promote_when_not_paused_skips_the_running_step() {
        let ro = view(&format!(
            "{CANARY}status: {{currentStepIndex: 2, stableRS: a, currentPodHash: b}}"
        ));
        let p = promote_patches(&ro, false);
        assert_eq!(
            p.status,
            Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 3}}))
        );
        assert_eq!(
            p.unified,
            Some(
                json!({"spec": {"paused": false}, "status": {"pauseConditions": null, "currentStepIndex": 3}})
            )
        );
        // An unset index is step 0; after the last step the index stays.
        let ro = view(&format!("{CANARY}status: {{}}"));
        assert_eq!(
            promote_patches(&ro, false).status,
            Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 1}}))
        );
        let ro = view(&format!("{CANARY}status: {{currentStepIndex: 5}}"));
        assert_eq!(
            promote_patches(&ro, false).status,
            Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 5}}))
        );
    }

    #[test]
    fn promote_unpauses_a_manual_pause_in_the_spec() {
        let paused = CANARY.replace("spec:\n", "spec:\n  paused: true\n");
        let ro = view(&format!(
            "{paused}status: {{currentStepIndex: 1, pauseConditions: []}}"
        ));
        let p = promote_patches(&ro, false);
        assert_eq!(p.spec, Some(json!({"spec": {"paused": false}})));
        // No pause conditions: the step index moves on too, as in the plugin.
        assert_eq!(
            p.status,
            Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 2}}))
        );
    }

    #[test]
    fn full_promote_sets_promote_full_unless_already_stable() {
        let ro = view(&format!(
            "{CANARY}status: {{currentStepIndex: 1, stableRS: a, currentPodHash: b}}"
        ));
        assert_eq!(
            promote_patches(&ro, true),
            PromotePatches {
                status: Some(json!({"status": {"promoteFull": true}})),
                spec: None,
                unified: None
            }
        );
        let ro = view(&format!(
            "{CANARY}status: {{currentStepIndex: 5, stableRS: b, currentPodHash: b}}"
        ));
        assert_eq!(promote_patches(&ro, true), PromotePatches::default());
    }

    #[test]
    fn abort_patch_is_the_plugins() {
        assert_eq!(abort_patch().to_string(), r#"{"status":{"abort":true}}"#);
    }

    #[test]
    fn the_app_container_is_the_only_one_or_the_one_named_like_the_rollout() {
        assert_eq!(app_container(&view(CANARY)).ok(), Some("web".to_string()));
        let two = CANARY.replace(
            "[{name: web, image: \"example.com/web:v1\"}]",
            "[{name: proxy, image: p}, {name: web, image: w}]",
        );
        assert_eq!(app_container(&view(&two)).ok(), Some("web".to_string()));
        let neither = two.replace("name: web, image: w", "name: api, image: w");
        let err = app_container(&view(&neither))
            .expect_err("ambiguous")
            .to_string();
        assert!(err.contains("proxy, api"), "{err}");
    }

    #[test]
    fn the_apply_body_carries_only_name_image_and_the_uid_precondition() {
        let body = image_apply_body("pr-7", "web", "u-1", "web", "example.com/web:v2\"\n");
        assert_eq!(body["metadata"]["uid"], "u-1");
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["image"],
            "example.com/web:v2\"\n"
        );
        assert_eq!(body["spec"].as_object().map(|o| o.len()), Some(1));
    }
}
