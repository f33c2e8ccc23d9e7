//! Readiness: composable conditions on objects, driven by watches, with deadlines.
//!
//! A [`Condition`] is a predicate on an object as JSON (`None` when it does not exist), with
//! `and`/`or`/`not` combinators, and optionally a failure test for states that waiting will not
//! fix (a failed Job, a Deployment past its progress deadline, a Degraded Rollout). The drivers
//! ([`wait_object`], [`wait_endpoints`]) watch the object and stop at a deadline with an error that
//! names the object and the state it was last seen in.

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::api::{Api, ApiResource, DynamicObject};
use ::kube::runtime::WatchStreamExt;
use ::kube::runtime::watcher::{self, Event};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::KubeError;
use super::manifest::conditions;

/// A readiness check by name, as add-on definitions spell it (`check: rolledOut`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Check {
    /// A CustomResourceDefinition is Established (its API is served).
    Established,
    /// A Deployment, StatefulSet or DaemonSet has rolled out its current generation.
    RolledOut,
    /// A Job has completed.
    Complete,
    /// A Service has at least one ready endpoint (from its EndpointSlices).
    EndpointsReady,
    /// An Argo Rollout is Healthy.
    Healthy,
    /// An Argo Rollout is Paused at this canary step index.
    PausedAt(u32),
    /// A cert-manager Certificate, Issuer or ClusterIssuer is Ready.
    Ready,
    /// A Gateway API Gateway is Programmed.
    Programmed,
    /// A Gateway API GatewayClass is Accepted.
    Accepted,
    /// An Argo CD Application is Synced and Healthy.
    SyncedHealthy,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Established => f.write_str("established"),
            Check::RolledOut => f.write_str("rolled out"),
            Check::Complete => f.write_str("complete"),
            Check::EndpointsReady => f.write_str("ready endpoints"),
            Check::Healthy => f.write_str("healthy"),
            Check::PausedAt(step) => write!(f, "paused at step {step}"),
            Check::Ready => f.write_str("ready"),
            Check::Programmed => f.write_str("programmed"),
            Check::Accepted => f.write_str("accepted"),
            Check::SyncedHealthy => f.write_str("synced and healthy"),
        }
    }
}

impl Check {
    /// The condition behind this check, for objects of `kind`. `EndpointsReady` is about a
    /// Service's EndpointSlices and has its own driver, [`wait_endpoints`]; as a condition on the
    /// Service itself it only requires the Service to exist.
    pub fn condition(self, kind: &str) -> Box<dyn Condition> {
        match self {
            Check::Established => Box::new(crd_established()),
            Check::RolledOut => match kind {
                "StatefulSet" => Box::new(statefulset_rolled_out()),
                "DaemonSet" => Box::new(daemonset_rolled_out()),
                _ => Box::new(deployment_rolled_out()),
            },
            Check::Complete => Box::new(job_complete()),
            Check::EndpointsReady => Box::new(exists()),
            Check::Healthy => Box::new(rollout_healthy()),
            Check::PausedAt(step) => Box::new(rollout_paused_at(step)),
            Check::Ready => Box::new(condition_true("Ready")),
            Check::Programmed => Box::new(condition_true("Programmed")),
            Check::Accepted => Box::new(condition_true("Accepted")),
            Check::SyncedHealthy => Box::new(application_synced_healthy()),
        }
    }
}

/// A predicate on an object (`None` when it does not exist).
pub trait Condition: Send + Sync {
    /// Whether the object is in the wanted state.
    fn matches(&self, obj: Option<&Value>) -> bool;

    /// A state waiting will not leave, described; `None` while waiting still makes sense.
    fn failed(&self, _obj: Option<&Value>) -> Option<String> {
        None
    }

    /// Both conditions hold.
    fn and<B: Condition>(self, other: B) -> And<Self, B>
    where
        Self: Sized,
    {
        And(self, other)
    }

    /// Either condition holds.
    fn or<B: Condition>(self, other: B) -> Or<Self, B>
    where
        Self: Sized,
    {
        Or(self, other)
    }

    /// The condition does not hold.
    fn not(self) -> Not<Self>
    where
        Self: Sized,
    {
        Not(self)
    }
}

impl<F: Fn(Option<&Value>) -> bool + Send + Sync> Condition for F {
    fn matches(&self, obj: Option<&Value>) -> bool {
        self(obj)
    }
}

impl Condition for Box<dyn Condition> {
    fn matches(&self, obj: Option<&Value>) -> bool {
        self.as_ref().matches(obj)
    }
    fn failed(&self, obj: Option<&Value>) -> Option<String> {
        self.as_ref().failed(obj)
    }
}

pub struct And<A, B>(A, B);
pub struct Or<A, B>(A, B);
pub struct Not<A>(A);

impl<A: Condition, B: Condition> Condition for And<A, B> {
    fn matches(&self, obj: Option<&Value>) -> bool {
        self.0.matches(obj) && self.1.matches(obj)
    }
    fn failed(&self, obj: Option<&Value>) -> Option<String> {
        self.0.failed(obj).or_else(|| self.1.failed(obj))
    }
}

impl<A: Condition, B: Condition> Condition for Or<A, B> {
    fn matches(&self, obj: Option<&Value>) -> bool {
        self.0.matches(obj) || self.1.matches(obj)
    }
    fn failed(&self, obj: Option<&Value>) -> Option<String> {
        // Only failed when neither side can still succeed.
        match (self.0.failed(obj), self.1.failed(obj)) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            _ => None,
        }
    }
}

impl<A: Condition> Condition for Not<A> {
    fn matches(&self, obj: Option<&Value>) -> bool {
        !self.0.matches(obj)
    }
}

/// A condition with a failure test.
pub struct WithFailure<M, F> {
    matches: M,
    failed: F,
}

impl<M, F> Condition for WithFailure<M, F>
where
    M: Fn(Option<&Value>) -> bool + Send + Sync,
    F: Fn(Option<&Value>) -> Option<String> + Send + Sync,
{
    fn matches(&self, obj: Option<&Value>) -> bool {
        (self.matches)(obj)
    }
    fn failed(&self, obj: Option<&Value>) -> Option<String> {
        (self.failed)(obj)
    }
}

fn i64_at(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

fn condition_status(obj: &Value, kind: &str) -> Option<(String, String, String)> {
    conditions(obj).remove(kind)
}

/// The controller has seen the current spec: `status.observedGeneration >= metadata.generation`.
fn observed(obj: &Value) -> bool {
    match (
        i64_at(obj, "/metadata/generation"),
        i64_at(obj, "/status/observedGeneration"),
    ) {
        (Some(generation), Some(seen)) => seen >= generation,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// The object exists.
pub fn exists() -> impl Condition {
    |obj: Option<&Value>| obj.is_some()
}

/// The object with this uid is gone (deleted, or replaced by a new one of the same name).
pub fn is_deleted(uid: String) -> impl Condition {
    move |obj: Option<&Value>| obj.is_none_or(|o| str_at(o, "/metadata/uid") != Some(uid.as_str()))
}

/// A CustomResourceDefinition is Established. It has failed when the apiserver refused its names
/// (NamesAccepted False, e.g. a plural another CRD of the group already uses): that does not pass
/// by waiting.
pub fn crd_established() -> impl Condition {
    WithFailure {
        matches: |obj: Option<&Value>| {
            obj.and_then(|o| condition_status(o, "Established"))
                .is_some_and(|(s, ..)| s == "True")
        },
        failed: |obj: Option<&Value>| {
            let (status, reason, message) = condition_status(obj?, "NamesAccepted")?;
            (status == "False").then(|| format!("names not accepted: {reason}: {message}"))
        },
    }
}

/// A CustomResourceDefinition whose names are accepted but which is not Established yet: the
/// apiserver's "Installing" state.
pub fn crd_installing(obj: &Value) -> bool {
    let status = |kind: &str| condition_status(obj, kind).map(|(s, ..)| s);
    status("NamesAccepted").as_deref() == Some("True")
        && status("Established").as_deref() != Some("True")
}

/// A Deployment has rolled out: observed, all replicas updated and available, no old ones left.
pub fn deployment_rolled_out() -> impl Condition {
    WithFailure {
        matches: |obj: Option<&Value>| {
            let Some(o) = obj else { return false };
            let want = i64_at(o, "/spec/replicas").unwrap_or(1);
            let s = |k: &str| i64_at(o, &format!("/status/{k}")).unwrap_or(0);
            observed(o)
                && s("updatedReplicas") >= want
                && s("replicas") <= s("updatedReplicas")
                && s("availableReplicas") >= want
        },
        failed: |obj: Option<&Value>| {
            let (status, reason, message) = condition_status(obj?, "Progressing")?;
            (status == "False" && reason == "ProgressDeadlineExceeded")
                .then(|| format!("{reason}: {message}"))
        },
    }
}

/// A StatefulSet has rolled out: observed, updated up to its partition, all replicas ready.
pub fn statefulset_rolled_out() -> impl Condition {
    |obj: Option<&Value>| {
        let Some(o) = obj else { return false };
        let want = i64_at(o, "/spec/replicas").unwrap_or(1);
        let partition = i64_at(o, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
        let s = |k: &str| i64_at(o, &format!("/status/{k}")).unwrap_or(0);
        let revisions_match = partition > 0
            || str_at(o, "/status/currentRevision") == str_at(o, "/status/updateRevision");
        observed(o)
            && s("updatedReplicas") >= want - partition
            && s("readyReplicas") >= want
            && s("availableReplicas") >= want
            && revisions_match
    }
}

/// A DaemonSet has rolled out on every node it should run on.
pub fn daemonset_rolled_out() -> impl Condition {
    |obj: Option<&Value>| {
        let Some(o) = obj else { return false };
        let s = |k: &str| i64_at(o, &format!("/status/{k}")).unwrap_or(0);
        observed(o)
            && s("updatedNumberScheduled") >= s("desiredNumberScheduled")
            && s("numberAvailable") >= s("desiredNumberScheduled")
    }
}

/// A Job has completed; a Failed Job fails the wait.
pub fn job_complete() -> impl Condition {
    WithFailure {
        matches: |obj: Option<&Value>| {
            obj.and_then(|o| condition_status(o, "Complete"))
                .is_some_and(|(s, ..)| s == "True")
        },
        failed: |obj: Option<&Value>| {
            let (status, reason, message) = condition_status(obj?, "Failed")?;
            (status == "True").then(|| format!("{reason}: {message}"))
        },
    }
}

/// The condition `kind` is True, for the object's current generation when the condition says
/// which generation it describes.
pub fn condition_true(kind: &'static str) -> impl Condition {
    move |obj: Option<&Value>| {
        let Some(o) = obj else { return false };
        let generation = i64_at(o, "/metadata/generation");
        o.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some(kind)
                        && c.get("status").and_then(Value::as_str) == Some("True")
                        && match (
                            generation,
                            c.get("observedGeneration").and_then(Value::as_i64),
                        ) {
                            (Some(g), Some(seen)) => seen >= g,
                            _ => true,
                        }
                })
            })
    }
}

/// Argo Rollouts writes `status.observedGeneration` as a string.
fn rollout_observed(o: &Value) -> bool {
    let generation = i64_at(o, "/metadata/generation");
    let seen = match o.pointer("/status/observedGeneration") {
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(v) => v.as_i64(),
        None => None,
    };
    match (generation, seen) {
        (Some(g), Some(s)) => s >= g,
        (None, _) => true,
        (Some(_), None) => false,
    }
}

fn rollout_degraded(obj: Option<&Value>) -> Option<String> {
    let o = obj?;
    (str_at(o, "/status/phase") == Some("Degraded")).then(|| {
        format!(
            "Degraded: {}",
            str_at(o, "/status/message").unwrap_or("no message")
        )
    })
}

/// An Argo Rollout is Healthy (a Degraded one, e.g. aborted, fails the wait).
pub fn rollout_healthy() -> impl Condition {
    WithFailure {
        matches: |obj: Option<&Value>| {
            obj.is_some_and(|o| {
                rollout_observed(o) && str_at(o, "/status/phase") == Some("Healthy")
            })
        },
        failed: rollout_degraded,
    }
}

/// An Argo Rollout is Paused at canary step `step` (its `currentStepIndex`).
pub fn rollout_paused_at(step: u32) -> impl Condition {
    WithFailure {
        matches: move |obj: Option<&Value>| {
            obj.is_some_and(|o| {
                rollout_observed(o)
                    && str_at(o, "/status/phase") == Some("Paused")
                    && i64_at(o, "/status/currentStepIndex") == Some(i64::from(step))
            })
        },
        failed: rollout_degraded,
    }
}

/// An Argo CD Application is Synced and Healthy.
pub fn application_synced_healthy() -> impl Condition {
    |obj: Option<&Value>| {
        obj.is_some_and(|o| {
            str_at(o, "/status/sync/status") == Some("Synced")
                && str_at(o, "/status/health/status") == Some("Healthy")
        })
    }
}

/// An Argo CD Application is Synced to git commit `revision` (`status.sync.revision`). A sync
/// operation for that revision that ended Failed or Error fails the wait.
pub fn application_synced_to(revision: String) -> impl Condition {
    let failed_rev = revision.clone();
    WithFailure {
        matches: move |obj: Option<&Value>| {
            obj.is_some_and(|o| {
                str_at(o, "/status/sync/status") == Some("Synced")
                    && str_at(o, "/status/sync/revision") == Some(revision.as_str())
            })
        },
        failed: move |obj: Option<&Value>| {
            let o = obj?;
            let phase = str_at(o, "/status/operationState/phase")?;
            let rev = str_at(o, "/status/operationState/syncResult/revision")
                .or_else(|| str_at(o, "/status/operationState/operation/sync/revision"));
            (matches!(phase, "Failed" | "Error") && rev == Some(failed_rev.as_str())).then(|| {
                let message = str_at(o, "/status/operationState/message").unwrap_or_default();
                format!(
                    "the sync of {failed_rev} ended {phase}: {}",
                    message.chars().take(300).collect::<String>()
                )
            })
        },
    }
}

/// An Argo CD Application is Synced to `revision`, or to any revision not in `older` (the caller
/// then decides whether that one contains `revision`). A failed sync of `revision` fails the
/// wait, as in [`application_synced_to`].
pub fn application_synced_past(
    revision: String,
    older: std::collections::BTreeSet<String>,
) -> impl Condition {
    let failing = application_synced_to(revision);
    WithFailure {
        matches: move |obj: Option<&Value>| {
            obj.is_some_and(|o| {
                str_at(o, "/status/sync/status") == Some("Synced")
                    && str_at(o, "/status/sync/revision")
                        .is_some_and(|r| !r.is_empty() && !older.contains(r))
            })
        },
        failed: move |obj: Option<&Value>| failing.failed(obj),
    }
}

/// A short description of an object's state, for timeout messages. Never includes data or spec
/// values beyond counts, so secrets cannot leak through it.
pub fn summarize(obj: Option<&Value>) -> String {
    let Some(o) = obj else { return "absent".into() };
    let mut parts = Vec::new();
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        let finalizers: Vec<&str> = o
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(format!(
            "being deleted (finalizers: {})",
            if finalizers.is_empty() {
                "none".into()
            } else {
                finalizers.join(", ")
            }
        ));
    }
    if let Some(g) = i64_at(o, "/metadata/generation") {
        let seen = o
            .pointer("/status/observedGeneration")
            .map(|v| v.to_string().trim_matches('"').to_string());
        parts.push(format!(
            "generation {g}, observed {}",
            seen.unwrap_or_else(|| "none".into())
        ));
    }
    if let Some(status) = o.get("status").and_then(Value::as_object) {
        let counts: Vec<String> = [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "desiredNumberScheduled",
            "numberAvailable",
            "succeeded",
            "failed",
            "active",
            "currentStepIndex",
        ]
        .iter()
        .filter_map(|k| status.get(*k).map(|v| format!("{k} {v}")))
        .collect();
        if !counts.is_empty() {
            parts.push(counts.join(", "));
        }
        if let Some(phase) = status.get("phase").and_then(Value::as_str) {
            parts.push(format!("phase {phase}"));
        }
        for (k, p) in [
            ("sync", "/status/sync/status"),
            ("revision", "/status/sync/revision"),
            ("health", "/status/health/status"),
            ("operation", "/status/operationState/phase"),
        ] {
            if let Some(v) = str_at(o, p) {
                parts.push(format!("{k} {v}"));
            }
        }
        for (kind, (s, reason, message)) in conditions(o) {
            let mut c = format!("{kind}={s}");
            if !reason.is_empty() {
                c.push_str(&format!(" ({reason}"));
                if !message.is_empty() {
                    c.push_str(&format!(
                        ": {}",
                        message.chars().take(200).collect::<String>()
                    ));
                }
                c.push(')');
            }
            parts.push(c);
        }
    }
    if parts.is_empty() {
        "present, no status yet".into()
    } else {
        parts.join("; ")
    }
}

fn describe(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn api_for(
    client: &::kube::Client,
    ar: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// What a watch driver decides after each change.
enum Verdict {
    Wait,
    Done,
    Failed(String),
}

/// Watches the objects `config` selects, keeping them by name, until `judge` says done or failed,
/// or `timeout` passes. On timeout the error names `what` and `describe`s the last seen set.
async fn watch_until(
    api: Api<DynamicObject>,
    config: watcher::Config,
    what: String,
    timeout: Duration,
    judge: impl Fn(&BTreeMap<String, DynamicObject>) -> Verdict,
    describe: impl Fn(&BTreeMap<String, DynamicObject>) -> String,
) -> Result<BTreeMap<String, DynamicObject>, KubeError> {
    let deadline = Instant::now() + timeout;
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut seen: BTreeMap<String, DynamicObject> = BTreeMap::new();
    let mut pending: BTreeMap<String, DynamicObject> = BTreeMap::new();
    let mut synced = false;
    let mut last_error: Option<String> = None;
    let key = |o: &DynamicObject| o.metadata.name.clone().unwrap_or_default();
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, stream.next()).await else {
            let mut last_state = if synced {
                describe(&seen)
            } else {
                "never listed".into()
            };
            if let Some(e) = last_error {
                last_state.push_str(&format!("; last watch error: {e}"));
            }
            return Err(KubeError::Timeout {
                object: what,
                seconds: timeout.as_secs(),
                last_state,
            });
        };
        match next {
            None => {
                return Err(KubeError::Failed {
                    object: what,
                    reason: "the watch ended".into(),
                });
            }
            Some(Err(e)) => {
                crate::deadline::note(|| format!("{what}; last watch error: {e}"));
                last_error = Some(e.to_string());
                continue;
            }
            Some(Ok(event)) => {
                last_error = None;
                match event {
                    Event::Init => pending.clear(),
                    Event::InitApply(o) => {
                        pending.insert(key(&o), o);
                    }
                    Event::InitDone => {
                        seen = std::mem::take(&mut pending);
                        synced = true;
                    }
                    Event::Apply(o) => {
                        seen.insert(key(&o), o);
                    }
                    Event::Delete(o) => {
                        seen.remove(&key(&o));
                    }
                }
            }
        }
        if !synced {
            continue;
        }
        match judge(&seen) {
            // Should an outer bound (`--timeout`) end this wait first, it names this.
            Verdict::Wait => {
                crate::deadline::note(|| format!("{what}; last seen: {}", describe(&seen)))
            }
            Verdict::Done => {
                crate::deadline::progress();
                return Ok(seen);
            }
            Verdict::Failed(reason) => {
                return Err(KubeError::Failed {
                    object: what,
                    reason,
                });
            }
        }
    }
}

/// Watches one object until `condition` holds, and returns it (`None` if the condition holds for
/// an absent object).
///
/// # Errors
/// - [`KubeError::Timeout`] once `timeout` has passed, naming the object and its last seen state
///   (and the last watch error, if the apiserver was unreachable);
/// - [`KubeError::Failed`] when the condition's failure test matches.
pub async fn wait_object(
    client: &::kube::Client,
    ar: &ApiResource,
    namespace: Option<&str>,
    name: &str,
    condition: &dyn Condition,
    timeout: Duration,
) -> Result<Option<DynamicObject>, KubeError> {
    let value =
        |seen: &BTreeMap<String, DynamicObject>| seen.get(name).map(super::manifest::to_value);
    let judge = |seen: &BTreeMap<String, DynamicObject>| {
        let v = value(seen);
        if condition.matches(v.as_ref()) {
            Verdict::Done
        } else if let Some(reason) = condition.failed(v.as_ref()) {
            Verdict::Failed(reason)
        } else {
            Verdict::Wait
        }
    };
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let what = describe(&ar.kind, namespace, name);
    let mut seen = watch_until(
        api_for(client, ar, namespace),
        config,
        what,
        timeout,
        judge,
        |s| summarize(value(s).as_ref()),
    )
    .await?;
    Ok(seen.remove(name))
}

/// Watches a Service's EndpointSlices until at least one endpoint is ready.
///
/// # Errors
/// [`KubeError::Timeout`] naming the Service and how many endpoints were seen.
pub async fn wait_endpoints(
    client: &::kube::Client,
    namespace: &str,
    service: &str,
    timeout: Duration,
) -> Result<(), KubeError> {
    let ar = ApiResource {
        group: "discovery.k8s.io".into(),
        version: "v1".into(),
        api_version: "discovery.k8s.io/v1".into(),
        kind: "EndpointSlice".into(),
        plural: "endpointslices".into(),
    };
    let values = |seen: &BTreeMap<String, DynamicObject>| -> BTreeMap<String, Value> {
        seen.iter()
            .map(|(k, o)| (k.clone(), super::manifest::to_value(o)))
            .collect()
    };
    let judge = |seen: &BTreeMap<String, DynamicObject>| {
        if count_endpoints(&values(seen)).1 > 0 {
            Verdict::Done
        } else {
            Verdict::Wait
        }
    };
    let report = |seen: &BTreeMap<String, DynamicObject>| {
        let (total, ready) = count_endpoints(&values(seen));
        format!(
            "{} EndpointSlice(s), {total} endpoint(s), {ready} ready",
            seen.len()
        )
    };
    let config =
        watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
    let what = format!(
        "ready endpoints of {}",
        describe("Service", Some(namespace), service)
    );
    watch_until(
        api_for(client, &ar, Some(namespace)),
        config,
        what,
        timeout,
        judge,
        report,
    )
    .await
    .map(|_| ())
}

/// (endpoints, ready endpoints) over EndpointSlices. A missing `ready` counts as ready, as the
/// API defines it.
fn count_endpoints(slices: &BTreeMap<String, Value>) -> (usize, usize) {
    let endpoints: Vec<&Value> = slices
        .values()
        .flat_map(|s| {
            s.get("endpoints")
                .and_then(Value::as_array)
                .map(|a| a.iter())
                .into_iter()
                .flatten()
        })
        .collect();
    let ready = endpoints
        .iter()
        .filter(|e| {
            e.pointer("/conditions/ready")
                .and_then(Value::as_bool)
                .unwrap_or(true)
        })
        .count();
    (endpoints.len(), ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documents of a fixture under tests/fixtures/conditions/, by `metadata.name`.
    fn fixture(file: &str) -> BTreeMap<String, Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/conditions")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        docs.into_iter()
            .map(|d| (d["metadata"]["name"].as_str().unwrap().to_string(), d))
            .collect()
    }

    fn check(c: &dyn Condition, objs: &BTreeMap<String, Value>, name: &str) -> bool {
        c.matches(Some(&objs[name]))
    }

    #[test]
    fn crd_established_on_fixtures() {
        let o = fixture("crds.yaml");
        let c = crd_established();
        assert!(check(&c, &o, "established.example.dev"));
        assert!(!check(&c, &o, "names-accepted-only.example.dev"));
        assert!(!check(&c, &o, "no-status.example.dev"));
        assert!(!check(&c, &o, "names-rejected.example.dev"));
        assert!(!c.matches(None));
        assert_eq!(
            c.failed(Some(&o["names-rejected.example.dev"])).as_deref(),
            Some(r#"names not accepted: PluralConflict: "widgets" is already in use"#)
        );
        assert_eq!(c.failed(Some(&o["names-accepted-only.example.dev"])), None);
        assert!(crd_installing(&o["names-accepted-only.example.dev"]));
        assert!(!crd_installing(&o["established.example.dev"]));
        assert!(!crd_installing(&o["names-rejected.example.dev"]));
        assert!(!crd_installing(&o["no-status.example.dev"]));
    }

    #[test]
    fn deployment_rollout_on_fixtures() {
        let o = fixture("deployments.yaml");
        let c = Check::RolledOut.condition("Deployment");
        assert!(check(&c, &o, "complete"));
        assert!(
            !check(&c, &o, "stale-generation"),
            "a controller that has not seen the new spec"
        );
        assert!(!check(&c, &o, "old-replicas-left"));
        assert!(!check(&c, &o, "unavailable"));
        assert!(
            c.failed(Some(&o["deadline-exceeded"]))
                .unwrap()
                .starts_with("ProgressDeadlineExceeded")
        );
        assert!(c.failed(Some(&o["unavailable"])).is_none());
    }

    #[test]
    fn statefulset_and_daemonset_rollout_on_fixtures() {
        let o = fixture("statefulsets.yaml");
        let c = Check::RolledOut.condition("StatefulSet");
        assert!(check(&c, &o, "complete"));
        assert!(!check(&c, &o, "revision-pending"));
        assert!(check(&c, &o, "partitioned"));
        let d = fixture("daemonsets.yaml");
        let c = Check::RolledOut.condition("DaemonSet");
        assert!(check(&c, &d, "complete"));
        assert!(!check(&c, &d, "updating"));
    }

    #[test]
    fn job_on_fixtures() {
        let o = fixture("jobs.yaml");
        let c = job_complete();
        assert!(check(&c, &o, "complete"));
        assert!(!check(&c, &o, "running"));
        assert!(
            c.failed(Some(&o["failed"]))
                .unwrap()
                .contains("BackoffLimitExceeded")
        );
    }

    #[test]
    fn rollout_on_fixtures() {
        let o = fixture("rollouts.yaml");
        assert!(check(&rollout_healthy(), &o, "healthy"));
        assert!(!check(&rollout_healthy(), &o, "paused-at-1"));
        assert!(!check(&rollout_healthy(), &o, "healthy-but-stale"));
        assert!(check(&rollout_paused_at(1), &o, "paused-at-1"));
        assert!(!check(&rollout_paused_at(3), &o, "paused-at-1"));
        assert!(
            rollout_healthy()
                .failed(Some(&o["aborted"]))
                .unwrap()
                .contains("RolloutAborted")
        );
    }

    #[test]
    fn ready_programmed_accepted_synced_on_fixtures() {
        let o = fixture("statuses.yaml");
        let cases = [
            (Check::Ready, "Certificate", "cert-ready", true),
            (Check::Ready, "Certificate", "cert-issuing", false),
            (Check::Programmed, "Gateway", "gateway-programmed", true),
            (Check::Programmed, "Gateway", "gateway-stale", false),
            (Check::Accepted, "GatewayClass", "nginx", true),
            (
                Check::SyncedHealthy,
                "Application",
                "app-synced-healthy",
                true,
            ),
            (
                Check::SyncedHealthy,
                "Application",
                "app-synced-progressing",
                false,
            ),
        ];
        for (c, kind, name, want) in cases {
            assert_eq!(check(&c.condition(kind), &o, name), want, "{c} on {name}");
        }
    }

    #[test]
    fn combinators_compose() {
        let o = fixture("rollouts.yaml");
        let either = rollout_healthy().or(rollout_paused_at(1));
        assert!(check(&either, &o, "healthy"));
        assert!(check(&either, &o, "paused-at-1"));
        assert!(!check(
            &rollout_healthy().and(rollout_paused_at(1)),
            &o,
            "paused-at-1"
        ));
        assert!(check(&rollout_healthy().not(), &o, "paused-at-1"));
        let gone = is_deleted("uid-1".into());
        assert!(gone.matches(None));
        assert!(!gone.matches(Some(&o["healthy"])));
    }

    #[test]
    fn summaries_name_the_state_without_data() {
        let d = fixture("deployments.yaml");
        let s = summarize(Some(&d["deadline-exceeded"]));
        assert!(s.contains("generation 3, observed 3"), "{s}");
        assert!(s.contains("availableReplicas 0"), "{s}");
        assert!(
            s.contains("Progressing=False (ProgressDeadlineExceeded"),
            "{s}"
        );
        assert_eq!(summarize(None), "absent");
    }

    #[test]
    fn endpoint_counting_treats_missing_ready_as_ready() {
        let mut slices = BTreeMap::new();
        slices.insert(
            "a".to_string(),
            serde_json::json!({"endpoints": [{"conditions": {"ready": false}}, {"conditions": {}}]}),
        );
        assert_eq!(count_endpoints(&slices), (2, 1));
        slices.insert("b".to_string(), serde_json::json!({"endpoints": null}));
        assert_eq!(count_endpoints(&slices), (2, 1));
    }
}
