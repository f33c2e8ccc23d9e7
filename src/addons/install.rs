//! Installing add-ons as a dependency graph of steps.
//!
//! Before touching the cluster, every source is fetched and verified, every manifest parsed and
//! every overlay rendered and merged, so bad input fails with nothing created. Then each add-on
//! is a set of steps: `apply` (its manifests, with patch overlays merged in), one step per wait,
//! and one per `after` overlay. A step starts as soon as the steps it needs are done: `apply` after
//! the add-on's dependencies, a wait after `apply` (or after the overlay whose objects it checks),
//! an `after` overlay after the waits it names. Independent add-ons therefore run concurrently,
//! and, for example, the ClusterIssuer waits for cert-manager's webhook and for nothing else.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::kube::api::DynamicObject;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde_json::{Map, Value, json};

use super::AddonError;
use super::catalog::{APPLY_STEP, ObjectCheck, OverlayMode, ResolvedAddon, ingress_exports};
use super::sources::{Fetched, Origin, SourceOptions, fetch};
use crate::kube::manifest::{ObjectId, merge_patch, parse_manifest, parse_values, strip_nulls};
use crate::kube::wait::{Check, wait_endpoints, wait_object};
use crate::kube::{
    Applier, ApplyOptions, DeleteOptions, DeleteReport, KubeError, delete_environment,
};
use crate::progress::{Progress, State};
use crate::templates::Renderer;

/// The progress scope of add-on items.
pub const SCOPE: &str = "addon";

/// Everything an install needs besides the cluster and the add-ons.
#[derive(Clone)]
pub struct InstallContext<'a> {
    /// The environment name, stamped on every object (`ephemera.dev/environment`).
    pub environment: String,
    /// `aks`, `kind` or `local`.
    pub provider: String,
    /// Extra template values, merged at the top of every overlay's data (the engine passes
    /// `{"tls": {"issuer": ..., "email": ...}}`, see [`template_values`]).
    pub values: Value,
    pub renderer: &'a Renderer,
    pub sources: SourceOptions,
    pub progress: Arc<dyn Progress>,
    /// How long each wait step may take.
    pub wait_timeout: Duration,
    /// When every wait must have ended, whenever it starts (the engine's `--deadline`); a wait
    /// that reaches it reports its object and last state.
    pub wait_until: Option<tokio::time::Instant>,
    /// Total backoff for transient apply errors (apiserver restarting, webhook not ready).
    pub retry_for: Duration,
    /// How long one API request may go unanswered before it is retried.
    pub request_timeout: Duration,
    /// Take over fields owned by other field managers.
    pub force: bool,
}

impl<'a> InstallContext<'a> {
    /// A context with default timeouts: 10 minutes per wait, 5 minutes of retrying.
    pub fn new(
        environment: &str,
        provider: &str,
        renderer: &'a Renderer,
        sources: SourceOptions,
        progress: Arc<dyn Progress>,
    ) -> Self {
        InstallContext {
            environment: environment.to_string(),
            provider: provider.to_string(),
            values: json!({}),
            renderer,
            sources,
            progress,
            wait_timeout: Duration::from_secs(600),
            wait_until: None,
            retry_for: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            force: false,
        }
    }
}

/// The template values the environment file contributes: its TLS settings.
pub fn template_values(env: &crate::config::Environment) -> Value {
    let mut tls = Map::new();
    tls.insert(
        "issuer".into(),
        serde_json::to_value(env.tls.issuer).unwrap_or(Value::Null),
    );
    if let Some(email) = &env.tls.email {
        tls.insert("email".into(), Value::String(email.clone()));
    }
    json!({ "tls": tls })
}

/// One manifest used, for the record: where it came from and whether its sha256 was pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsedSource {
    pub origin: String,
    pub sha256: String,
    pub verified: bool,
}

/// What installing one add-on did.
#[derive(Clone, Debug)]
pub struct AddonReport {
    pub name: String,
    pub version: String,
    pub objects: usize,
    pub retries: usize,
    pub sources: Vec<UsedSource>,
    /// From the start of the install until its last step finished.
    pub elapsed: Duration,
}

/// What an install did.
#[derive(Clone, Debug, Default)]
pub struct InstallReport {
    pub addons: Vec<AddonReport>,
    pub elapsed: Duration,
}

/// An add-on ready to install: its objects, labelled, overlays merged or rendered.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub addon: ResolvedAddon,
    /// Applied by the `apply` step.
    pub objects: Vec<DynamicObject>,
    /// Objects of each `after` overlay, by overlay name.
    pub after: BTreeMap<String, Vec<DynamicObject>>,
    pub sources: Vec<UsedSource>,
}

/// Fetches, verifies, parses, renders and merges everything, without a cluster.
///
/// # Errors
/// Source errors (missing, unpinned, checksum mismatch), manifests that do not parse, overlay
/// templates that do not render, and patch overlays that match no upstream object.
pub async fn prepare(
    addons: &[ResolvedAddon],
    ctx: &InstallContext<'_>,
) -> Result<Vec<Prepared>, AddonError> {
    let fetches = addons.iter().map(|a| async move {
        let what = format!("{} {}", a.name, a.version);
        ctx.progress
            .update(SCOPE, &a.name, State::Waiting("manifests".into()));
        let mut out = Vec::new();
        for s in &a.sources {
            out.push(fetch(&what, s, &ctx.sources).await?);
        }
        Ok::<Vec<Fetched>, AddonError>(out)
    });
    let fetched = futures::future::try_join_all(fetches).await?;
    let ingress = ingress_exports(addons).cloned().unwrap_or_else(|| {
        let mut m = Map::new();
        m.insert("implementation".into(), Value::String("none".into()));
        m
    });
    let mut prepared = Vec::new();
    for (addon, files) in addons.iter().zip(fetched) {
        prepared.push(prepare_one(addon, files, &ingress, ctx)?);
    }
    Ok(prepared)
}

fn prepare_one(
    addon: &ResolvedAddon,
    files: Vec<Fetched>,
    ingress: &Map<String, Value>,
    ctx: &InstallContext<'_>,
) -> Result<Prepared, AddonError> {
    let mut objects: Vec<DynamicObject> = Vec::new();
    let mut sources = Vec::new();
    for f in files {
        let origin = f.origin.to_string();
        objects.extend(parse_manifest(&f.text, &origin)?);
        sources.push(UsedSource {
            origin: match &f.origin {
                Origin::Download(u) => u.clone(),
                other => other.to_string(),
            },
            sha256: f.sha256,
            verified: f.verified,
        });
    }
    // A later source wins for the same object.
    let mut values: Vec<Value> = Vec::new();
    let mut index: BTreeMap<(String, String, Option<String>, String), usize> = BTreeMap::new();
    for o in &objects {
        let key = identity(&ObjectId::of(o), &addon.namespace);
        let v = crate::kube::manifest::to_value(o);
        match index.get(&key) {
            Some(&i) => values[i] = v,
            None => {
                index.insert(key, values.len());
                values.push(v);
            }
        }
    }
    let data = template_data(addon, ingress, ctx);
    let mut after = BTreeMap::new();
    for overlay in &addon.overlays {
        let rendered = ctx
            .renderer
            .render(&overlay.template, &data)
            .map_err(|error| AddonError::Template {
                addon: addon.name.clone(),
                error,
            })?;
        let origin = format!("templates/{}", overlay.template);
        let docs = parse_values(&rendered, &origin)?;
        match overlay.mode {
            OverlayMode::Patch => {
                for (_, patch) in docs {
                    let id = value_id(&patch);
                    let Some(&i) = index.get(&identity(&id, &addon.namespace)) else {
                        return Err(AddonError::Overlay {
                            addon: addon.name.clone(),
                            overlay: overlay.name.clone(),
                            message: format!(
                                "patches {id}, which is not in the add-on's manifests"
                            ),
                        });
                    };
                    merge_patch(&mut values[i], &patch);
                }
            }
            OverlayMode::After => {
                let objs = docs
                    .into_iter()
                    .map(|(_, mut v)| {
                        strip_nulls(&mut v);
                        label(v, addon, ctx, &origin)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                after.insert(overlay.name.clone(), objs);
            }
        }
    }
    let has_namespace = values.iter().any(|v| {
        v["kind"] == "Namespace"
            && v["apiVersion"] == "v1"
            && v["metadata"]["name"] == addon.namespace.as_str()
    });
    if !has_namespace {
        values.insert(
            0,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": addon.namespace}}),
        );
    }
    let objects = values
        .into_iter()
        .map(|mut v| {
            strip_nulls(&mut v);
            label(v, addon, ctx, &format!("{} {}", addon.name, addon.version))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Prepared {
        addon: addon.clone(),
        objects,
        after,
        sources,
    })
}

fn value_id(v: &Value) -> ObjectId {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    ObjectId {
        api_version: s("/apiVersion").unwrap_or_default(),
        kind: s("/kind").unwrap_or_default(),
        namespace: s("/metadata/namespace"),
        name: s("/metadata/name").unwrap_or_default(),
    }
}

/// Identity for matching overlays to upstream objects: group, kind, namespace (the add-on's when
/// absent, since upstream manifests such as Argo CD's name none) and name.
fn identity(id: &ObjectId, namespace: &str) -> (String, String, Option<String>, String) {
    (
        id.group().to_string(),
        id.kind.clone(),
        Some(
            id.namespace
                .clone()
                .unwrap_or_else(|| namespace.to_string()),
        ),
        id.name.clone(),
    )
}

fn label(
    v: Value,
    addon: &ResolvedAddon,
    ctx: &InstallContext<'_>,
    origin: &str,
) -> Result<DynamicObject, AddonError> {
    let mut o = crate::kube::manifest::from_value(v).map_err(|message| {
        AddonError::Kube(KubeError::Parse {
            origin: origin.to_string(),
            document: 0,
            message,
        })
    })?;
    crate::kube::manifest::add_labels(
        &mut o,
        &ownership_labels(&ctx.environment, Some(&addon.name)),
    );
    Ok(o)
}

/// The labels on everything ephemera creates for `environment` (and add-on).
pub fn ownership_labels(environment: &str, addon: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(
        crate::labels::MANAGED_BY.to_string(),
        crate::MANAGER.to_string(),
    );
    l.insert(
        crate::labels::ENVIRONMENT.to_string(),
        environment.to_string(),
    );
    if let Some(a) = addon {
        l.insert(crate::labels::ADDON.to_string(), a.to_string());
    }
    l
}

/// The data an add-on's overlay templates see.
pub fn template_data(
    addon: &ResolvedAddon,
    ingress: &Map<String, Value>,
    ctx: &InstallContext<'_>,
) -> Value {
    let mut data = Map::new();
    data.insert("env".into(), Value::String(ctx.environment.clone()));
    data.insert("provider".into(), Value::String(ctx.provider.clone()));
    data.insert(
        "addon".into(),
        json!({"name": addon.name, "version": addon.version, "namespace": addon.namespace}),
    );
    data.insert("values".into(), Value::Object(addon.values.clone()));
    data.insert("exports".into(), Value::Object(addon.exports.clone()));
    data.insert("ingress".into(), Value::Object(ingress.clone()));
    if let Value::Object(extra) = &ctx.values {
        super::catalog::merge_values(&mut data, extra);
    }
    Value::Object(data)
}

type Step = Shared<BoxFuture<'static, bool>>;

/// What every step of an install holds: the applier, the bookkeeping and the progress sink.
type Shared3 = (Applier, Arc<Tracker>, Arc<dyn Progress>);

/// Per add-on bookkeeping shared by its steps.
struct Tracker {
    started: Instant,
    remaining: Mutex<BTreeMap<String, usize>>,
    errors: Mutex<Vec<(String, AddonError)>>,
    reports: Mutex<BTreeMap<String, AddonReport>>,
}

impl Tracker {
    fn finish(&self, addon: &str, progress: &dyn Progress) {
        let done = {
            let Ok(mut r) = self.remaining.lock() else {
                return;
            };
            let left = r.entry(addon.to_string()).or_insert(0);
            *left = left.saturating_sub(1);
            *left == 0
        };
        if done {
            if let Ok(mut reports) = self.reports.lock()
                && let Some(rep) = reports.get_mut(addon)
            {
                rep.elapsed = self.started.elapsed();
            }
            progress.update(SCOPE, addon, State::Done);
        }
    }

    fn fail(&self, addon: &str, err: AddonError, progress: &dyn Progress) {
        progress.update(SCOPE, addon, State::Failed(err.to_string()));
        if let Ok(mut e) = self.errors.lock() {
            e.push((addon.to_string(), err));
        }
    }

    fn count(&self, addon: &str, objects: usize, retries: usize) {
        if let Ok(mut reports) = self.reports.lock()
            && let Some(rep) = reports.get_mut(addon)
        {
            rep.objects += objects;
            rep.retries += retries;
        }
    }
}

/// Installs the add-ons: prepares everything, then runs the step graph. Rerunning after any
/// failure converges (every step is an ensure).
///
/// # Errors
/// The first failure of the add-ons in `addons` order (a failed apply, a wait that timed out naming
/// its object and last state, ...); add-ons that did not depend on it still ran to the end.
pub async fn install(
    client: ::kube::Client,
    addons: &[ResolvedAddon],
    ctx: &InstallContext<'_>,
) -> Result<InstallReport, AddonError> {
    let started = Instant::now();
    let prepared = prepare(addons, ctx).await?;
    let applier = Applier::new(client);
    let tracker = Arc::new(Tracker {
        started,
        remaining: Mutex::new(
            prepared
                .iter()
                .map(|p| (p.addon.name.clone(), p.addon.steps().len()))
                .collect(),
        ),
        errors: Mutex::new(Vec::new()),
        reports: Mutex::new(
            prepared
                .iter()
                .map(|p| {
                    let r = AddonReport {
                        name: p.addon.name.clone(),
                        version: p.addon.version.clone(),
                        objects: 0,
                        retries: 0,
                        sources: p.sources.clone(),
                        elapsed: Duration::ZERO,
                    };
                    (p.addon.name.clone(), r)
                })
                .collect(),
        ),
    });
    let mut steps: BTreeMap<(String, String), Step> = BTreeMap::new();
    for p in prepared {
        add_steps(&mut steps, p, &applier, &tracker, ctx);
    }
    futures::future::join_all(steps.values().cloned()).await;
    drop(steps);
    let mut errors = std::mem::take(
        &mut *tracker
            .errors
            .lock()
            .map_err(|_| AddonError::Invalid("install state was poisoned".into()))?,
    );
    if !errors.is_empty() {
        let order = |name: &str| {
            addons
                .iter()
                .position(|a| a.name == name)
                .unwrap_or(usize::MAX)
        };
        errors.sort_by_key(|(a, _)| order(a));
        let (_, first) = errors.remove(0);
        for (addon, other) in errors {
            tracing::error!(addon = %addon, "{other}");
        }
        return Err(first);
    }
    let reports = std::mem::take(
        &mut *tracker
            .reports
            .lock()
            .map_err(|_| AddonError::Invalid("install state was poisoned".into()))?,
    );
    let addons_out = addons
        .iter()
        .filter_map(|a| reports.get(&a.name).cloned())
        .collect();
    Ok(InstallReport {
        addons: addons_out,
        elapsed: started.elapsed(),
    })
}

fn options(ctx: &InstallContext<'_>, addon: &ResolvedAddon, origin: String) -> ApplyOptions {
    ApplyOptions {
        force: ctx.force,
        default_namespace: Some(addon.namespace.clone()),
        retry_for: ctx.retry_for,
        request_timeout: ctx.request_timeout,
        crd_timeout: ctx.wait_timeout,
        crd_until: ctx.wait_until,
        origin,
        ..ApplyOptions::default()
    }
}

fn add_steps(
    steps: &mut BTreeMap<(String, String), Step>,
    p: Prepared,
    applier: &Applier,
    tracker: &Arc<Tracker>,
    ctx: &InstallContext<'_>,
) {
    let name = p.addon.name.clone();
    let shared: Shared3 = (applier.clone(), tracker.clone(), ctx.progress.clone());
    let key = |step: &str| (name.clone(), step.to_string());
    let deps_of_addon = addon_deps(steps, &p);
    let apply_step = apply_step(&p, deps_of_addon, applier, tracker, ctx);
    steps.insert(key(APPLY_STEP), apply_step.clone());

    // after-overlays are created first as placeholders would need cycles; waits that follow an
    // overlay are built after it, so build in an order that respects both: overlays whose needs
    // are plain waits, then the waits that follow overlays.
    let mut pending_waits: Vec<_> = p.addon.waits.clone();
    let mut pending_overlays: Vec<_> = p
        .addon
        .overlays
        .iter()
        .filter(|o| o.mode == OverlayMode::After)
        .cloned()
        .collect();
    while !pending_waits.is_empty() || !pending_overlays.is_empty() {
        let before = pending_waits.len() + pending_overlays.len();
        pending_waits.retain(|w| {
            let mut deps = vec![apply_step.clone()];
            if let Some(after) = &w.after {
                match steps.get(&key(after)) {
                    Some(s) => deps.push(s.clone()),
                    None => return true,
                }
            }
            let step = wait_step(
                &name,
                w.id.clone(),
                w.objects.clone(),
                deps,
                &shared,
                (ctx.wait_timeout, ctx.wait_until),
            );
            steps.insert(key(&w.id), step);
            false
        });
        pending_overlays.retain(|o| {
            let mut deps = vec![apply_step.clone()];
            for n in &o.needs {
                match steps.get(&key(n)) {
                    Some(s) => deps.push(s.clone()),
                    None => return true,
                }
            }
            let objects = p.after.get(&o.name).cloned().unwrap_or_default();
            let opts = options(
                ctx,
                &p.addon,
                format!("{} overlay {}", p.addon.name, o.name),
            );
            let step = overlay_step(&p.addon, o.name.clone(), objects, deps, &shared, opts);
            steps.insert(key(&o.name), step);
            false
        });
        if pending_waits.len() + pending_overlays.len() == before {
            // The catalog refuses such cycles; fail the add-on rather than hang.
            tracker.fail(
                &name,
                AddonError::Invalid(format!(
                    "{name}: its waits and overlays need each other in a cycle"
                )),
                &*ctx.progress,
            );
            break;
        }
    }
}

/// The steps of other add-ons that `p` depends on: a named step, or all of an add-on's steps.
fn addon_deps(steps: &BTreeMap<(String, String), Step>, p: &Prepared) -> Vec<Step> {
    p.addon
        .depends_on
        .iter()
        .flat_map(|d| -> Vec<Step> {
            match &d.step {
                Some(s) => steps
                    .get(&(d.addon.clone(), s.clone()))
                    .cloned()
                    .into_iter()
                    .collect(),
                None => steps
                    .iter()
                    .filter(|((a, _), _)| *a == d.addon)
                    .map(|(_, f)| f.clone())
                    .collect(),
            }
        })
        .collect()
}

/// The add-on's apply step: once every add-on it depends on is in, apply its objects.
fn apply_step(
    p: &Prepared,
    deps_of_addon: Vec<Step>,
    applier: &Applier,
    tracker: &Arc<Tracker>,
    ctx: &InstallContext<'_>,
) -> Step {
    let applier = applier.clone();
    let tracker = tracker.clone();
    let progress = ctx.progress.clone();
    let opts = options(
        ctx,
        &p.addon,
        format!("{} {}", p.addon.name, p.addon.version),
    );
    let objects = p.objects.clone();
    let name = p.addon.name.clone();
    async move {
        if !all_ok(deps_of_addon).await {
            tracker.fail(
                &name,
                AddonError::Invalid(format!(
                    "{name} was not installed: an add-on it depends on failed"
                )),
                &*progress,
            );
            return false;
        }
        progress.update(SCOPE, &name, State::Started);
        apply_and_count(&applier, objects, &opts, &tracker, &name, &*progress).await
    }
    .boxed()
    .shared()
}

/// Applies one step's objects and records the outcome on the add-on.
async fn apply_and_count(
    applier: &Applier,
    objects: Vec<DynamicObject>,
    opts: &ApplyOptions,
    tracker: &Tracker,
    addon: &str,
    progress: &dyn Progress,
) -> bool {
    match applier.apply(objects, opts).await {
        Ok(report) => {
            tracker.count(addon, report.objects.len(), report.retries);
            tracker.finish(addon, progress);
            true
        }
        Err(e) => {
            tracker.fail(addon, e.into(), progress);
            false
        }
    }
}

async fn all_ok(deps: Vec<Step>) -> bool {
    futures::future::join_all(deps)
        .await
        .into_iter()
        .all(|ok| ok)
}

/// How long a wait starting now may take: `timeout`, but never past `until`.
fn wait_limit(timeout: Duration, until: Option<tokio::time::Instant>) -> Duration {
    until.map_or(timeout, |u| {
        timeout.min(u.saturating_duration_since(tokio::time::Instant::now()))
    })
}

fn wait_step(
    addon: &str,
    id: String,
    objects: Vec<ObjectCheck>,
    deps: Vec<Step>,
    shared: &Shared3,
    (timeout, until): (Duration, Option<tokio::time::Instant>),
) -> Step {
    let (applier, tracker, progress) = shared.clone();
    let addon = addon.to_string();
    async move {
        if !all_ok(deps).await {
            return false;
        }
        let timeout = wait_limit(timeout, until);
        let what: Vec<String> = objects.iter().map(|o| format!("{o} {}", o.check)).collect();
        progress.update(SCOPE, &addon, State::Waiting(what.join(", ")));
        let checks = objects
            .iter()
            .map(|o| check_object(&applier, o, &addon, timeout));
        match futures::future::try_join_all(checks).await {
            Ok(_) => {
                tracker.finish(&addon, &*progress);
                true
            }
            Err(e) => {
                tracker.fail(
                    &addon,
                    AddonError::Wait {
                        addon: addon.clone(),
                        step: id,
                        error: Box::new(e),
                    },
                    &*progress,
                );
                false
            }
        }
    }
    .boxed()
    .shared()
}

async fn check_object(
    applier: &Applier,
    o: &ObjectCheck,
    addon: &str,
    timeout: Duration,
) -> Result<(), KubeError> {
    if o.check == Check::EndpointsReady {
        let ns = o.namespace.as_deref().unwrap_or("default");
        return wait_endpoints(applier.client(), ns, &o.name, timeout).await;
    }
    let id = ObjectId {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        namespace: o.namespace.clone(),
        name: o.name.clone(),
    };
    let (ar, _) = applier.resolve(&id, addon).await?;
    let condition = o.check.condition(&o.kind);
    wait_object(
        applier.client(),
        &ar,
        o.namespace.as_deref(),
        &o.name,
        &condition,
        timeout,
    )
    .await
    .map(|_| ())
}

fn overlay_step(
    addon: &ResolvedAddon,
    overlay: String,
    objects: Vec<DynamicObject>,
    deps: Vec<Step>,
    shared: &Shared3,
    opts: ApplyOptions,
) -> Step {
    let (applier, tracker, progress) = shared.clone();
    let name = addon.name.clone();
    async move {
        if !all_ok(deps).await {
            return false;
        }
        progress.update(SCOPE, &name, State::Waiting(format!("applying {overlay}")));
        apply_and_count(&applier, objects, &opts, &tracker, &name, &*progress).await
    }
    .boxed()
    .shared()
}

/// Deletes the add-ons' objects from the environment, in reverse install order.
///
/// # Errors
/// As [`delete_environment`]: stuck namespaces, objects that do not go, API failures.
pub async fn uninstall(
    client: &::kube::Client,
    environment: &str,
    addons: &[ResolvedAddon],
    progress: &dyn Progress,
) -> Result<DeleteReport, AddonError> {
    let mut opts = DeleteOptions::new(environment);
    opts.addon_order = addons.iter().map(|a| a.name.clone()).collect();
    opts.only_addons = Some(addons.iter().map(|a| a.name.clone()).collect());
    for a in addons.iter().rev() {
        progress.update(SCOPE, &a.name, State::Waiting("deletion".into()));
    }
    match delete_environment(client, &opts).await {
        Ok(report) => {
            for a in addons.iter().rev() {
                progress.update(SCOPE, &a.name, State::Done);
            }
            Ok(report)
        }
        Err(e) => {
            for a in addons.iter().rev() {
                progress.update(
                    SCOPE,
                    &a.name,
                    State::Failed("deletion did not finish".into()),
                );
            }
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addons::Catalog;
    use crate::config::{Addons, IngressAddon, IngressImplementation};

    /// The shared upstream manifests, then cert-manager's controllers as `scripts/testcluster
    /// build` renders them from the upstream chart (`EPHEMERA_TC_MANIFESTS`).
    fn bundles() -> SourceOptions {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let env = std::process::Command::new(root.join("scripts/testcluster"))
            .arg("env")
            .output()
            .expect("scripts/testcluster env runs");
        let rendered = String::from_utf8_lossy(&env.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("EPHEMERA_TC_MANIFESTS=").map(str::to_string))
            .expect("scripts/testcluster env prints EPHEMERA_TC_MANIFESTS");
        let rendered = std::path::PathBuf::from(rendered);
        assert!(
            rendered
                .join("cert-manager-v1.21.1/cert-manager.yaml")
                .is_file(),
            "{} has no cert-manager.yaml: run scripts/testcluster build",
            rendered.display()
        );
        SourceOptions {
            bundles: vec![root.join("../shared/fixtures/manifests"), rendered],
            cache_dir: None,
            ..Default::default()
        }
    }

    fn ctx<'a>(r: &'a Renderer, provider: &str, issuer: &str) -> InstallContext<'a> {
        let mut c = InstallContext::new(
            "pr-7",
            provider,
            r,
            bundles(),
            Arc::new(crate::progress::Silent),
        );
        c.values = json!({"tls": {"issuer": issuer, "email": "ops@example.dev"}});
        c
    }

    fn find<'a>(p: &'a [Prepared], addon: &str, kind: &str, name: &str) -> &'a DynamicObject {
        let a = p.iter().find(|x| x.addon.name == addon).unwrap();
        a.objects
            .iter()
            .chain(a.after.values().flatten())
            .find(|o| ObjectId::of(o).kind == kind && o.metadata.name.as_deref() == Some(name))
            .unwrap()
    }

    #[tokio::test]
    async fn every_object_is_labelled_for_every_provider_and_ingress() {
        let r = Renderer::new(None).unwrap();
        let c = Catalog::load(&r).unwrap();
        for implementation in [
            IngressImplementation::GatewayApi,
            IngressImplementation::IngressNginx,
        ] {
            for provider in ["aks", "kind", "local"] {
                let addons = Addons {
                    ingress: IngressAddon {
                        implementation,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let resolved = c.resolve(&addons, provider).unwrap();
                let p = prepare(&resolved, &ctx(&r, provider, "selfsigned"))
                    .await
                    .unwrap();
                for a in &p {
                    for o in a.objects.iter().chain(a.after.values().flatten()) {
                        let l = o.metadata.labels.as_ref().unwrap();
                        assert_eq!(l[crate::labels::ENVIRONMENT], "pr-7");
                        assert_eq!(l[crate::labels::MANAGED_BY], "ephemera");
                        assert_eq!(l[crate::labels::ADDON], a.addon.name);
                    }
                }
            }
        }
    }

    #[test]
    fn the_cluster_issuer_follows_tls_issuer_and_ingress() {
        let r = Renderer::new(None).unwrap();
        let c = Catalog::load(&r).unwrap();
        for implementation in [
            IngressImplementation::GatewayApi,
            IngressImplementation::IngressNginx,
        ] {
            let addons = Addons {
                ingress: IngressAddon {
                    implementation,
                    ..Default::default()
                },
                ..Default::default()
            };
            let resolved = c.resolve(&addons, "aks").unwrap();
            let cm = resolved.iter().find(|a| a.name == "cert-manager").unwrap();
            let ingress = ingress_exports(&resolved).unwrap();
            for issuer in ["selfsigned", "letsencrypt-staging", "letsencrypt"] {
                let data = template_data(cm, ingress, &ctx(&r, "aks", issuer));
                let text = r
                    .render("addons/cert-manager/cluster-issuer.yaml.hbs", &data)
                    .unwrap();
                let objs = parse_manifest(&text, "issuer").unwrap();
                assert_eq!(objs.len(), 1);
                let spec = &objs[0].data["spec"];
                if issuer == "selfsigned" {
                    assert_eq!(spec, &json!({"selfSigned": {}}));
                    continue;
                }
                let acme = &spec["acme"];
                assert_eq!(acme["email"], "ops@example.dev");
                assert!(
                    acme["server"]
                        .as_str()
                        .unwrap()
                        .starts_with(if issuer == "letsencrypt" {
                            "https://acme-v02."
                        } else {
                            "https://acme-staging-v02."
                        })
                );
                let solver = &acme["solvers"][0]["http01"];
                match implementation {
                    IngressImplementation::GatewayApi => {
                        assert_eq!(
                            solver["gatewayHTTPRoute"]["parentRefs"][0]["name"],
                            "ephemera"
                        );
                        assert_eq!(
                            solver["gatewayHTTPRoute"]["parentRefs"][0]["namespace"],
                            "nginx-gateway"
                        );
                    }
                    IngressImplementation::IngressNginx => {
                        assert_eq!(solver["ingress"]["ingressClassName"], "nginx")
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn provider_overlays_change_what_they_should() {
        let r = Renderer::new(None).unwrap();
        let c = Catalog::load(&r).unwrap();
        let kind = c.resolve(&Addons::default(), "kind").unwrap();
        let p = prepare(&kind, &ctx(&r, "kind", "selfsigned"))
            .await
            .unwrap();
        let proxy = find(
            &p,
            "gateway-api",
            "NginxProxy",
            "nginx-gateway-proxy-config",
        );
        assert_eq!(
            proxy.data["spec"]["kubernetes"]["service"]["type"],
            "NodePort"
        );
        assert_eq!(
            proxy.data["spec"]["kubernetes"]["deployment"]["container"]["hostPorts"][0]["port"],
            80
        );
        let job = find(&p, "gateway-api", "Job", "nginx-gateway-cert-generator");
        assert!(job.data["spec"].get("ttlSecondsAfterFinished").is_none());
        let cm = find(&p, "cert-manager", "Deployment", "cert-manager");
        let args = cm.data["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap();
        assert!(args.iter().any(|a| a == "--enable-gateway-api"));
        assert!(args.len() > 1, "upstream args are kept: {args:?}");
        let argocd = find(&p, "argo-cd", "ConfigMap", "argocd-cmd-params-cm");
        assert_eq!(argocd.data["data"]["server.insecure"], "true");
        // Argo CD names no namespace; its own Namespace object is added.
        assert!(
            find(&p, "argo-cd", "Namespace", "argocd")
                .metadata
                .labels
                .is_some()
        );
        let rollouts = find(&p, "argo-rollouts", "Deployment", "argo-rollouts");
        assert_eq!(
            rollouts.data["spec"]["template"]["spec"]["containers"][0]["image"],
            "quay.io/argoproj/argo-rollouts:v1.9.1"
        );

        let local = c
            .resolve(
                &Addons {
                    ingress: IngressAddon {
                        implementation: IngressImplementation::IngressNginx,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "local",
            )
            .unwrap();
        let p = prepare(&local, &ctx(&r, "local", "selfsigned"))
            .await
            .unwrap();
        let svc = find(&p, "ingress-nginx", "Service", "ingress-nginx-controller");
        assert_eq!(svc.data["spec"]["type"], "ClusterIP");
        assert!(svc.data["spec"].get("externalTrafficPolicy").is_none());
        let hook = find(
            &p,
            "ingress-nginx",
            "ValidatingWebhookConfiguration",
            "ingress-nginx-admission",
        );
        assert_eq!(hook.data["webhooks"][0]["failurePolicy"], "Ignore");
        assert_eq!(
            hook.data["webhooks"][0]["clientConfig"]["service"]["name"],
            "ingress-nginx-controller-admission"
        );
    }

    #[tokio::test]
    async fn a_patch_that_matches_nothing_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("addons/argo-cd");
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("server.yaml.hbs"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nope, namespace: argocd}\ndata: {a: b}\n").unwrap();
        let r = Renderer::new(Some(dir.path())).unwrap();
        let c = Catalog::load(&r).unwrap();
        let addons = Addons {
            ingress: IngressAddon {
                enabled: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let resolved: Vec<_> = c
            .resolve(&addons, "local")
            .unwrap()
            .into_iter()
            .filter(|a| a.name == "argo-cd")
            .collect();
        let err = prepare(&resolved, &ctx(&r, "local", "selfsigned"))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "argo-cd: overlay server-settings patches ConfigMap argocd/nope, which is not in the add-on's manifests"
        );
    }

    #[tokio::test]
    async fn acme_without_email_is_a_template_error_naming_the_variable() {
        let r = Renderer::new(None).unwrap();
        let c = Catalog::load(&r).unwrap();
        let resolved = c.resolve(&Addons::default(), "aks").unwrap();
        let mut cx = ctx(&r, "aks", "letsencrypt");
        cx.values = json!({"tls": {"issuer": "letsencrypt"}});
        let err = prepare(&resolved, &cx).await.unwrap_err().to_string();
        assert!(
            err.contains("templates/addons/cert-manager/cluster-issuer.yaml.hbs"),
            "{err}"
        );
        assert!(err.contains("tls.email"), "{err}");
    }
}
