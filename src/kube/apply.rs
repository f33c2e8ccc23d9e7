//! Server-side apply of arbitrary objects, in a safe order, with one field manager.
//!
//! Order: CustomResourceDefinitions and Namespaces first; then, while the CRDs become Established
//! (and discovery serves their kinds), the objects of built-in kinds, configuration before
//! workloads; then the objects of the new kinds; admission webhooks last, so a webhook never blocks
//! the objects installed with it. Inside each phase objects are applied concurrently, with bounded
//! parallelism. Transient errors (apiserver restarting or overloaded, a webhook not serving yet) are
//! retried with capped exponential backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ::kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use ::kube::core::GroupVersionKind;
use ::kube::discovery::{ApiCapabilities, Discovery, Scope};
use backon::Retryable;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use tokio::sync::{Mutex, RwLock};

use super::manifest::ObjectId;
use super::wait::{self, Condition, crd_established};
use super::{FieldConflict, KubeError, backoff, is_transient};

/// How long a CRD may stay not Established before it is nudged, and how often it is nudged.
const NUDGE_EVERY: Duration = Duration::from_secs(10);
/// When CRDs that discovery does not serve yet are first read, to fail early on refused names.
const FIRST_CHECK: Duration = Duration::from_secs(2);
/// The annotation a nudge sets and removes again.
const NUDGE_ANNOTATION: &str = "ephemera.dev/establish-nudge";

/// How to apply.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// The server-side apply field manager.
    pub field_manager: String,
    /// Take over fields owned by other managers. Off unless explicitly asked for.
    pub force: bool,
    /// Objects applied at once.
    pub parallelism: usize,
    /// Added to every object's `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// Namespace for namespaced objects that name none.
    pub default_namespace: Option<String>,
    /// How long CRDs may take to become Established.
    pub crd_timeout: Duration,
    /// When waiting for CRDs must have ended, whenever it starts (the engine's `--deadline`).
    pub crd_until: Option<tokio::time::Instant>,
    /// How long one request may take before it is retried.
    pub request_timeout: Duration,
    /// Total backoff for transient errors of one object.
    pub retry_for: Duration,
    /// Where the objects came from, for messages (e.g. `argo-cd v3.5.1`).
    pub origin: String,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            field_manager: crate::MANAGER.to_string(),
            force: false,
            parallelism: 8,
            labels: BTreeMap::new(),
            default_namespace: None,
            crd_timeout: Duration::from_secs(60),
            crd_until: None,
            request_timeout: Duration::from_secs(30),
            retry_for: Duration::from_secs(120),
            origin: "manifest".into(),
        }
    }
}

/// One applied object as the apiserver returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub id: ObjectId,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
}

/// What an apply did.
#[derive(Clone, Debug, Default)]
pub struct ApplyReport {
    pub objects: Vec<Applied>,
    /// Transient errors that were retried.
    pub retries: usize,
}

impl ApplyReport {
    fn absorb(&mut self, other: ApplyReport) {
        self.objects.extend(other.objects);
        self.retries += other.retries;
    }
}

/// Applies objects to one cluster. Holds a discovery cache shared by concurrent applies, refreshed
/// when a kind is missing (after CRDs are installed).
#[derive(Clone)]
pub struct Applier {
    client: ::kube::Client,
    discovery: Arc<RwLock<Option<Discovery>>>,
    refresh: Arc<Mutex<u64>>,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Phase {
    Crds,
    Namespaces,
    Config,
    Workloads,
    /// Objects of kinds defined by CRDs in the same batch.
    Custom,
    Admission,
}

fn phase(id: &ObjectId) -> Phase {
    match (id.group(), id.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Phase::Crds,
        ("", "Namespace") => Phase::Namespaces,
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job" | "CronJob")
        | ("", "Pod" | "ReplicationController") => Phase::Workloads,
        ("admissionregistration.k8s.io", _) => Phase::Admission,
        _ => Phase::Config,
    }
}

/// One attempt's failure: the API's, or no answer within the request timeout.
#[derive(Debug)]
enum Attempt {
    Kube(::kube::Error),
    NoAnswer,
}

impl Attempt {
    fn transient(&self) -> bool {
        match self {
            Attempt::Kube(e) => is_transient(e) && !is_field_conflict(e),
            Attempt::NoAnswer => true,
        }
    }
}

fn is_field_conflict(err: &::kube::Error) -> bool {
    matches!(err, ::kube::Error::Api(s) if s.code == 409)
}

/// The conflicts of a server-side apply 409, from the status causes (or the message).
fn field_conflicts(err: &::kube::Error) -> Vec<FieldConflict> {
    let ::kube::Error::Api(status) = err else {
        return Vec::new();
    };
    let mut out: Vec<FieldConflict> = status
        .details
        .as_ref()
        .map(|d| {
            d.causes
                .iter()
                .filter(|c| c.reason == "FieldManagerConflict")
                .map(|c| FieldConflict {
                    manager: manager_of(&c.message),
                    field: c.field.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    if out.is_empty() {
        // `Apply failed with 1 conflict: conflict with "kubectl" using v1: .data.color`
        for part in status.message.split("conflict with ").skip(1) {
            let manager = manager_of(&format!("conflict with {part}"));
            let field = part
                .rsplit(": ")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            out.push(FieldConflict { manager, field });
        }
    }
    out
}

/// The manager named in `conflict with "NAME" ...`.
fn manager_of(message: &str) -> String {
    message.split('"').nth(1).unwrap_or(message).to_string()
}

impl Applier {
    pub fn new(client: ::kube::Client) -> Self {
        Applier {
            client,
            discovery: Arc::new(RwLock::new(None)),
            refresh: Arc::new(Mutex::new(0)),
            generation: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    pub fn client(&self) -> &::kube::Client {
        &self.client
    }

    /// Re-reads the API groups the cluster serves, unless another task did so since `seen`.
    async fn refresh(&self, seen: u64, retry_for: Duration) -> Result<(), KubeError> {
        let mut refreshed = self.refresh.lock().await;
        if *refreshed != seen {
            return Ok(());
        }
        tracing::debug!(generation = seen + 1, "refreshing discovery");
        let client = self.client.clone();
        let fresh = (|| async {
            match Discovery::new(client.clone()).run_aggregated().await {
                Ok(d) => Ok(d),
                // Clusters before 1.26 have no aggregated discovery.
                Err(e)
                    if super::status_code(&e) == Some(404)
                        || super::status_code(&e) == Some(406) =>
                {
                    Discovery::new(client.clone()).run().await
                }
                Err(e) => Err(e),
            }
        })
        .retry(backoff(retry_for))
        .when(is_transient)
        .await
        .map_err(|e| KubeError::api("discovering the cluster's API resources", e))?;
        *self.discovery.write().await = Some(fresh);
        *refreshed += 1;
        self.generation
            .store(*refreshed, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn lookup(&self, gvk: &GroupVersionKind) -> Option<(ApiResource, ApiCapabilities)> {
        self.discovery
            .read()
            .await
            .as_ref()
            .and_then(|d| d.resolve_gvk(gvk))
    }

    /// The API resource serving `api_version`/`kind`, refreshing discovery once on a miss.
    ///
    /// # Errors
    /// [`KubeError::UnknownKind`] when the cluster does not serve it; discovery failures.
    pub async fn resolve(
        &self,
        id: &ObjectId,
        origin: &str,
    ) -> Result<(ApiResource, ApiCapabilities), KubeError> {
        let (group, version) = match id.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), id.api_version.clone()),
        };
        let gvk = GroupVersionKind {
            group,
            version,
            kind: id.kind.clone(),
        };
        let seen = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        if let Some(found) = self.lookup(&gvk).await {
            return Ok(found);
        }
        self.refresh(seen, Duration::from_secs(60)).await?;
        self.lookup(&gvk)
            .await
            .ok_or_else(|| KubeError::UnknownKind {
                origin: origin.to_string(),
                object: id.to_string(),
                api_version: id.api_version.clone(),
                kind: id.kind.clone(),
            })
    }

    fn api(&self, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        }
    }

    /// Applies `objects` with server-side apply. A later object with the same identity replaces an
    /// earlier one. Every object gets `opts.labels`.
    ///
    /// # Errors
    /// - [`KubeError::UnknownKind`] for a kind the cluster does not serve (never skipped);
    /// - [`KubeError::Conflict`] naming the other field manager and the field, unless `force`;
    /// - [`KubeError::Timeout`] for CRDs that do not become Established;
    /// - [`KubeError::Api`] naming the object for anything else, after retrying transient errors.
    pub async fn apply(
        &self,
        objects: Vec<DynamicObject>,
        opts: &ApplyOptions,
    ) -> Result<ApplyReport, KubeError> {
        let mut unique: Vec<DynamicObject> = Vec::new();
        let mut index: BTreeMap<(String, String, Option<String>, String), usize> = BTreeMap::new();
        for mut obj in objects {
            super::manifest::add_labels(&mut obj, &opts.labels);
            let key = ObjectId::of(&obj).group_kind_key();
            match index.get(&key) {
                Some(&i) => unique[i] = obj,
                None => {
                    index.insert(key, unique.len());
                    unique.push(obj);
                }
            }
        }
        // Kinds this batch's own CRDs define: their objects wait until the CRDs are served.
        let defined: BTreeSet<(String, String)> = unique
            .iter()
            .filter(|o| phase(&ObjectId::of(o)) == Phase::Crds)
            .map(|o| {
                let spec = &o.data["spec"];
                let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
                (s(&spec["group"]), s(&spec["names"]["kind"]))
            })
            .collect();
        let mut phases: BTreeMap<Phase, Vec<DynamicObject>> = BTreeMap::new();
        for obj in unique {
            let id = ObjectId::of(&obj);
            let p = match phase(&id) {
                Phase::Config | Phase::Workloads
                    if defined.contains(&(id.group().to_string(), id.kind.clone())) =>
                {
                    Phase::Custom
                }
                p => p,
            };
            phases.entry(p).or_default().push(obj);
        }
        let mut take = |p: Phase| phases.remove(&p).unwrap_or_default();
        let (crds, namespaces, config, workloads, custom, admission) = (
            take(Phase::Crds),
            take(Phase::Namespaces),
            take(Phase::Config),
            take(Phase::Workloads),
            take(Phase::Custom),
            take(Phase::Admission),
        );
        let served_kinds: Vec<(String, GroupVersionKind, String)> =
            crds.iter().flat_map(served_kinds).collect();
        let mut report = ApplyReport::default();

        // CRDs and Namespaces first, together. Then, while the CRDs become Established, the
        // objects of built-in kinds (configuration before workloads). Then the objects of the new
        // kinds, and admission webhooks last.
        let (a, b) = futures::try_join!(
            self.apply_phase(Phase::Crds, crds, opts),
            self.apply_phase(Phase::Namespaces, namespaces, opts)
        )?;
        report.absorb(a);
        report.absorb(b);
        let builtins = async {
            let c = self.apply_phase(Phase::Config, config, opts).await?;
            let w = self.apply_phase(Phase::Workloads, workloads, opts).await?;
            Ok::<_, KubeError>((c, w))
        };
        let established = async {
            if served_kinds.is_empty() {
                return Ok(());
            }
            self.await_crds(&served_kinds, opts).await
        };
        let ((c, w), ()) = futures::try_join!(builtins, established)?;
        report.absorb(c);
        report.absorb(w);
        report.absorb(self.apply_phase(Phase::Custom, custom, opts).await?);
        report.absorb(self.apply_phase(Phase::Admission, admission, opts).await?);
        Ok(report)
    }

    /// Applies one phase's objects concurrently, `parallelism` at a time.
    async fn apply_phase(
        &self,
        p: Phase,
        objs: Vec<DynamicObject>,
        opts: &ApplyOptions,
    ) -> Result<ApplyReport, KubeError> {
        let mut report = ApplyReport::default();
        if objs.is_empty() {
            return Ok(report);
        }
        let started = std::time::Instant::now();
        let count = objs.len();
        let futs: Vec<BoxFuture<'_, Result<(Applied, usize), KubeError>>> = objs
            .into_iter()
            .map(|o| self.apply_one(o, opts).boxed())
            .collect();
        let applied: Vec<(Applied, usize)> = futures::stream::iter(futs)
            .buffer_unordered(opts.parallelism.max(1))
            .try_collect()
            .await?;
        for (a, retries) in applied {
            report.objects.push(a);
            report.retries += retries;
        }
        tracing::debug!(origin = %opts.origin, phase = ?p, objects = count, elapsed = ?started.elapsed(), "applied");
        Ok(report)
    }

    /// Waits until discovery serves every kind in `wanted` (CRD name, served group/version/kind,
    /// plural).
    ///
    /// Discovery lists a CRD's kinds only once it is Established, so polling it (one shared,
    /// cheap request for all CRDs at once) replaces a watch per CRD, each of which made the
    /// apiserver encode the whole CRD, hundreds of kilobytes, at every status change. The CRDs
    /// still missing are read now and then: one whose names were refused fails at once, and one
    /// that stays "Installing" is nudged every [`NUDGE_EVERY`] (an apiserver restarted while
    /// establishing it does not queue it again until the object changes).
    async fn await_crds(
        &self,
        wanted: &[(String, GroupVersionKind, String)],
        opts: &ApplyOptions,
    ) -> Result<(), KubeError> {
        let crd_ar = ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        };
        let api = self.api(&crd_ar, None);
        let started = tokio::time::Instant::now();
        let deadline = opts.crd_until.map_or(started + opts.crd_timeout, |u| {
            u.min(started + opts.crd_timeout)
        });
        let mut next_check = started + FIRST_CHECK;
        let mut delay = Duration::from_millis(50);
        loop {
            let seen = self.generation.load(std::sync::atomic::Ordering::SeqCst);
            let mut missing: BTreeMap<&str, &GroupVersionKind> = BTreeMap::new();
            for (crd, gvk, plural) in wanted {
                // The kind alone is not enough: another CRD of the group may serve it.
                if self
                    .lookup(gvk)
                    .await
                    .is_none_or(|(ar, _)| ar.plural != *plural)
                {
                    missing.entry(crd.as_str()).or_insert(gvk);
                }
            }
            if missing.is_empty() {
                tracing::debug!(origin = %opts.origin, crds = wanted.len(), elapsed = ?started.elapsed(), "CRDs served");
                crate::deadline::progress();
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= next_check || now >= deadline {
                let nudge = now >= started + NUDGE_EVERY;
                let states = futures::future::join_all(
                    missing
                        .keys()
                        .map(|name| self.check_crd(&api, name, nudge, opts)),
                )
                .await;
                let mut first = None;
                for (name, state) in missing.keys().zip(states) {
                    first.get_or_insert((*name, state?));
                }
                if now >= deadline {
                    let (name, state) = first.unwrap_or_default();
                    let gvk = missing.get(name).copied();
                    return Err(KubeError::Timeout {
                        object: format!("CustomResourceDefinition {name}"),
                        seconds: (deadline - started).as_secs(),
                        last_state: match (state.is_empty(), gvk) {
                            (false, _) => state,
                            (true, Some(g)) => format!(
                                "Established, but discovery does not list {}/{} {} yet",
                                g.group, g.version, g.kind
                            ),
                            (true, None) => "not served".into(),
                        },
                    });
                }
                next_check = now + NUDGE_EVERY;
            }
            crate::deadline::note(|| {
                let names: Vec<&str> = missing.keys().copied().collect();
                format!("CustomResourceDefinitions served: {}", names.join(", "))
            });
            tokio::time::sleep(delay.min(deadline.saturating_duration_since(now))).await;
            delay = (delay * 2).min(Duration::from_millis(500));
            self.refresh(seen, opts.retry_for).await?;
        }
    }

    /// Reads a CRD that discovery does not serve yet. Returns its state for a timeout message
    /// (empty once it is Established: then only discovery lags). Fails when its names were
    /// refused; nudges it when asked to and it is "Installing".
    async fn check_crd(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        nudge: bool,
        opts: &ApplyOptions,
    ) -> Result<String, KubeError> {
        let crd = match api.get_opt(name).await {
            Ok(crd) => crd.map(|o| super::manifest::to_value(&o)),
            Err(e) if is_transient(&e) => return Ok(format!("unreadable: {}", short(&e))),
            Err(e) => {
                return Err(KubeError::api(
                    format!("reading CustomResourceDefinition {name}"),
                    e,
                ));
            }
        };
        let condition = crd_established();
        if let Some(reason) = condition.failed(crd.as_ref()) {
            return Err(KubeError::Failed {
                object: format!("CustomResourceDefinition {name} (from {})", opts.origin),
                reason,
            });
        }
        if condition.matches(crd.as_ref()) {
            return Ok(String::new());
        }
        if nudge && crd.as_ref().is_some_and(wait::crd_installing) {
            tracing::debug!(crd = name, "CRD not established yet; nudging it");
            self.nudge(api, name, opts).await;
        }
        Ok(wait::summarize(crd.as_ref()))
    }

    /// Touches a CRD (annotation added, then removed) so the apiserver queues it for
    /// establishing. Failures are logged only: waiting goes on either way.
    async fn nudge(&self, api: &Api<DynamicObject>, name: &str, opts: &ApplyOptions) {
        let params = PatchParams {
            field_manager: Some(format!("{}-nudge", opts.field_manager)),
            ..PatchParams::default()
        };
        let stamp = jiff::Timestamp::now().to_string();
        for value in [serde_json::Value::String(stamp), serde_json::Value::Null] {
            let patch = serde_json::json!({"metadata": {"annotations": {NUDGE_ANNOTATION: value}}});
            if let Err(e) = api.patch(name, &params, &Patch::Merge(&patch)).await {
                tracing::debug!(crd = name, "nudge failed: {}", short(&e));
                return;
            }
        }
    }

    async fn apply_one(
        &self,
        mut obj: DynamicObject,
        opts: &ApplyOptions,
    ) -> Result<(Applied, usize), KubeError> {
        let id = ObjectId::of(&obj);
        let (ar, caps) = self.resolve(&id, &opts.origin).await?;
        let namespace = match caps.scope {
            Scope::Namespaced => Some(
                obj.metadata
                    .namespace
                    .clone()
                    .or_else(|| opts.default_namespace.clone())
                    .unwrap_or_else(|| "default".to_string()),
            ),
            Scope::Cluster => None,
        };
        obj.metadata.namespace = namespace.clone();
        let id = ObjectId::of(&obj);
        let name = id.name.clone();
        let api = self.api(&ar, namespace.as_deref());
        let mut params = PatchParams::apply(&opts.field_manager);
        params.force = opts.force;
        let retries = std::sync::atomic::AtomicUsize::new(0);
        let result = (|| async {
            match tokio::time::timeout(
                opts.request_timeout,
                api.patch(&name, &params, &Patch::Apply(&obj)),
            )
            .await
            {
                Ok(Ok(o)) => Ok(o),
                Ok(Err(e)) => Err(Attempt::Kube(e)),
                Err(_) => Err(Attempt::NoAnswer),
            }
        })
        .retry(backoff(opts.retry_for))
        .when(Attempt::transient)
        .notify(|e, after| {
            retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let why = match e {
                Attempt::Kube(e) => short(e),
                Attempt::NoAnswer => {
                    format!("no answer within {}s", opts.request_timeout.as_secs())
                }
            };
            tracing::debug!(object = %id, retry_in = ?after, "applying: {why}");
            crate::deadline::note(|| format!("applying {id}: {why}"));
        })
        .await;
        let retries = retries.into_inner();
        match result {
            Ok(o) => {
                // An object applied is progress: it opens a new --timeout window.
                crate::deadline::progress();
                Ok((
                    Applied {
                        id,
                        uid: o.metadata.uid,
                        resource_version: o.metadata.resource_version,
                        generation: o.metadata.generation,
                    },
                    retries,
                ))
            }
            Err(Attempt::Kube(e)) if is_field_conflict(&e) => Err(KubeError::Conflict {
                object: id.to_string(),
                conflicts: field_conflicts(&e),
            }),
            Err(Attempt::Kube(e)) => Err(KubeError::api(
                format!("applying {id} (from {})", opts.origin),
                e,
            )),
            Err(Attempt::NoAnswer) => Err(KubeError::Timeout {
                object: format!("the apiserver to apply {id}"),
                seconds: opts.retry_for.as_secs(),
                last_state: format!(
                    "no answer within {}s per attempt",
                    opts.request_timeout.as_secs()
                ),
            }),
        }
    }
}

/// The kinds a CRD object serves: (its name, group/version/kind, plural) for each served version.
fn served_kinds(crd: &DynamicObject) -> Vec<(String, GroupVersionKind, String)> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let spec = &crd.data["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let kind = spec["names"]["kind"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|v| v["served"].as_bool() == Some(true))
        .filter_map(|v| v["name"].as_str())
        .map(|version| {
            (
                name.clone(),
                GroupVersionKind {
                    group: group.into(),
                    version: version.into(),
                    kind: kind.into(),
                },
                plural.to_string(),
            )
        })
        .collect()
}

/// One line about an API error, without the Debug dump kube's Display appends.
pub(crate) fn short(err: &::kube::Error) -> String {
    match err {
        ::kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::kube::core::{Status, response::StatusCause, response::StatusDetails};

    #[test]
    fn conflicts_are_read_from_status_causes() {
        let status = Status {
            code: 409,
            reason: "Conflict".into(),
            message:
                "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.color"
                    .into(),
            details: Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: "FieldManagerConflict".into(),
                    message: "conflict with \"kubectl-edit\" using v1".into(),
                    field: ".data.color".into(),
                }],
                name: "web".into(),
                group: String::new(),
                kind: "configmaps".into(),
                uid: String::new(),
                retry_after_seconds: 0,
            }),
            ..Status::failure("", "")
        };
        let e = ::kube::Error::Api(Box::new(status.clone()));
        assert_eq!(
            field_conflicts(&e),
            vec![FieldConflict {
                manager: "kubectl-edit".into(),
                field: ".data.color".into()
            }]
        );
        let bare = ::kube::Error::Api(Box::new(Status {
            details: None,
            ..status
        }));
        assert_eq!(
            field_conflicts(&bare),
            vec![FieldConflict {
                manager: "kubectl-edit".into(),
                field: ".data.color".into()
            }]
        );
    }

    #[test]
    fn phases_put_crds_first_and_webhooks_last() {
        let id = |api_version: &str, kind: &str| ObjectId {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: None,
            name: "x".into(),
        };
        let mut v = [
            phase(&id(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
            )),
            phase(&id("apps/v1", "Deployment")),
            phase(&id("v1", "ConfigMap")),
            phase(&id("v1", "Namespace")),
            phase(&id("apiextensions.k8s.io/v1", "CustomResourceDefinition")),
        ];
        v.sort();
        assert_eq!(
            v,
            [
                Phase::Crds,
                Phase::Namespaces,
                Phase::Config,
                Phase::Workloads,
                Phase::Admission
            ]
        );
    }
}
