//! `plan`: environment + PR → everything `up` would create. Pure: no cluster, no cloud, no
//! clock (the caller passes "now"), so the same input always gives the same bytes.
//!
//! The app manifests are the templates under `templates/app/`, rendered in name order (which is
//! also the order `up` applies them). Each template may render nothing (a `{{#if}}` around it)
//! or several documents.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::addons::{Catalog, ResolvedAddon, ingress_exports};
use crate::config::{CanaryStep, Environment, IngressImplementation, Loaded};
use crate::names::{EnvName, ImageRef, NameError, Untrusted};
use crate::providers::{ProviderError, ProviderPlan, plan_request};
use crate::record::Record;
use crate::templates::Renderer;

/// The directory of app templates, relative to `templates/`.
pub const APP_TEMPLATES: &str = "app/";
pub use crate::config::host::PENDING_IP;
/// Let's Encrypt issues at most this many certificates per registered domain per week.
pub const LETSENCRYPT_CERTS_PER_DOMAIN_PER_WEEK: u32 = 50;
/// ...and at most this many for the same set of names per week.
pub const LETSENCRYPT_DUPLICATES_PER_WEEK: u32 = 5;

/// Planning failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Invalid(String),
    /// A rendered template is not what `up` could apply.
    #[error("templates/{template}: {message}")]
    Rendered { template: String, message: String },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Template(#[from] crate::templates::TemplateError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Addon(#[from] crate::addons::AddonError),
}

impl PlanError {
    /// The exit status: bad input for planning's own errors, else the wrapped error's.
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            PlanError::Provider(e) => e.exit_status(),
            PlanError::Addon(e) => e.exit_status(),
            _ => crate::ExitStatus::Usage,
        }
    }
}

/// Where the plan's "now" came from. `plan` never reads the clock, so its output is the same on
/// every run; `up` stamps the real time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NowSource {
    /// `--now`.
    Flag,
    /// `SOURCE_DATE_EPOCH`.
    SourceDateEpoch,
    /// Neither: the Unix epoch stands in, and the output says so.
    Placeholder,
}

/// Picks the plan's "now": `--now` (RFC 3339), else `SOURCE_DATE_EPOCH` (seconds), else the
/// Unix epoch as a marked placeholder.
///
/// # Errors
/// A `--now` or `SOURCE_DATE_EPOCH` that does not parse.
pub fn plan_now(
    flag: Option<&str>,
    source_date_epoch: Option<&str>,
) -> Result<(Timestamp, NowSource), NameError> {
    if let Some(f) = flag {
        let t = f.parse::<Timestamp>().map_err(|_| NameError::Invalid {
            what: "--now".into(),
            message: format!("{f:?} is not an RFC 3339 time such as 2026-11-28T10:00:00Z"),
        })?;
        return Ok((t, NowSource::Flag));
    }
    if let Some(s) = source_date_epoch.filter(|s| !s.is_empty()) {
        let t = s
            .parse::<i64>()
            .ok()
            .and_then(|n| Timestamp::from_second(n).ok())
            .ok_or_else(|| NameError::Invalid {
                what: "SOURCE_DATE_EPOCH".into(),
                message: format!("{s:?} is not a number of seconds since 1970"),
            })?;
        return Ok((t, NowSource::SourceDateEpoch));
    }
    Ok((Timestamp::UNIX_EPOCH, NowSource::Placeholder))
}

/// The environment name from `--pr` or `--name`, and the PR number when there is one.
///
/// # Errors
/// A bad PR number or name, or neither given.
pub fn target(
    env: &Environment,
    pr: Option<&str>,
    name: Option<&str>,
) -> Result<(EnvName, Option<u64>), NameError> {
    match (pr, name) {
        (_, Some(n))
            if matches!(env.provider, crate::config::ProviderConfig::Existing(_))
                && n != env.metadata.name =>
        {
            Err(NameError::Invalid {
                what: "--name".into(),
                message: format!(
                    "{n:?}: this file's long-lived environment (provider.existing) is {:?}; pass --name {}",
                    env.metadata.name, env.metadata.name
                ),
            })
        }
        (Some(_), None) if matches!(env.provider, crate::config::ProviderConfig::Existing(_)) => {
            Err(NameError::Invalid {
                what: "--pr".into(),
                message: format!(
                    "this file names a long-lived environment (provider.existing), not previews; pass --name {}",
                    env.metadata.name
                ),
            })
        }
        (_, Some(n)) => {
            let pr = pr.map(crate::names::parse_pr).transpose()?;
            Ok((EnvName::from_name(n)?, pr))
        }
        (Some(p), None) => {
            let pr = crate::names::parse_pr(p)?;
            Ok((
                EnvName::from_pr(env.naming.prefix.as_deref(), pr)?,
                Some(pr),
            ))
        }
        (None, None) => Err(NameError::Invalid {
            what: "--pr/--name".into(),
            message: "one of them is needed to name the environment".into(),
        }),
    }
}

/// The image: `--image`, else `app.image`.
///
/// # Errors
/// Neither is set, or the reference is malformed.
pub fn image(env: &Environment, flag: Option<&str>) -> Result<ImageRef, NameError> {
    match (flag, env.app.image.as_deref()) {
        (Some(f), _) => ImageRef::parse("--image", f),
        (None, Some(i)) => ImageRef::parse("app.image", i),
        (None, None) => Err(NameError::Invalid {
            what: "--image".into(),
            message: "no image: pass --image or set app.image in the environment file".into(),
        }),
    }
}

/// What to plan for.
#[derive(Clone, Debug)]
pub struct PlanInput {
    pub name: EnvName,
    pub pr: Option<u64>,
    pub image: ImageRef,
    pub untrusted: Untrusted,
    pub now: Timestamp,
    pub now_source: NowSource,
    /// `--ttl`, overriding the file's.
    pub ttl: Option<Duration>,
    /// The registry Secret's `.dockerconfigjson` (base64), when `up` or `deploy` read the
    /// password; `None` shows it redacted.
    pub registry_auth: Option<String>,
}

/// The environment at a glance.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr: Option<u64>,
    /// The environment file's `metadata.name`.
    pub profile: String,
    pub env_file: String,
    pub provider: String,
    pub image: ImageRef,
    /// The preview host; with [`PENDING_IP`] in it when only `up` can know it.
    pub host: String,
    /// Why the host is not final, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_pending: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub ttl: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub now_source: NowSource,
    /// The ownership record as stored on the resources.
    pub record: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "is_default")]
    pub untrusted: Untrusted,
    /// With `pool:`, the idle capacity the warm pool keeps (what it costs while nobody uses it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<Capacity>,
}

/// What a warm pool holds while idle: members × nodes of one size.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub members: u32,
    pub nodes_per_member: u32,
    /// The VM size (AKS), or `simulated` / `container` for local and kind.
    pub node_size: String,
    /// AKS with `pool.stopped`: idle members are stopped and cost their disks only.
    pub stopped: bool,
    /// The same in words, e.g. `2 members x 3 Standard_D4s_v5 nodes = 6 nodes idle`.
    pub summary: String,
}

impl std::fmt::Display for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary)
    }
}

/// What `env`'s pool holds when full; `None` without a pool.
pub fn pool_capacity(env: &Environment) -> Option<Capacity> {
    use crate::config::ProviderConfig;
    let pool = env.pool.as_ref()?;
    let (nodes, size) = match &env.provider {
        ProviderConfig::Aks(a) => (a.system_pool.count, a.system_pool.vm_size.clone()),
        ProviderConfig::Kind(_) => (1, "container".to_string()),
        ProviderConfig::Local(l) => (l.nodes, "simulated".to_string()),
        // Validation refuses a pool on a long-lived cluster.
        ProviderConfig::Existing(_) => return None,
    };
    let summary = format!(
        "{} members x {nodes} {size} nodes = {} nodes idle{}",
        pool.size,
        pool.size * nodes,
        if pool.stopped {
            " (stopped: disks only)"
        } else {
            ""
        }
    );
    Some(Capacity {
        members: pool.size,
        nodes_per_member: nodes,
        node_size: size,
        stopped: pool.stopped,
        summary,
    })
}

fn is_default(u: &Untrusted) -> bool {
    *u == Untrusted::default()
}

/// One object `up` would apply, and the template it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    pub template: String,
    pub object: Value,
}

impl Manifest {
    fn field(&self, key: &str) -> &str {
        self.object
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `Kind/namespace/name` (or `Kind/name`).
    pub fn id(&self) -> String {
        let meta = self.object.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
        {
            Some(ns) => format!("{}/{ns}/{name}", self.field("kind")),
            None => format!("{}/{name}", self.field("kind")),
        }
    }
}

/// Everything `up` would create, and what `up` needs to create exactly that: `up` executes the
/// plan rather than reading the file and rendering a second time.
#[derive(Clone)]
pub struct Plan {
    pub summary: Summary,
    pub provider: ProviderPlan,
    pub addons: Vec<ResolvedAddon>,
    pub manifests: Vec<Manifest>,
    /// Things worth knowing before `up`; printed to stderr.
    pub warnings: Vec<String>,
    /// The environment file it was planned from.
    pub env: Environment,
    /// The templates it was rendered with, which `up` renders the rest with.
    pub renderer: Arc<Renderer>,
    /// The ownership record the cluster is created with (`summary.record` as pairs).
    pub record: Record,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("summary", &self.summary)
            .field("provider", &self.provider)
            .field("addons", &self.addons)
            .field("manifests", &self.manifests)
            .field("warnings", &self.warnings)
            .field("env", &self.env)
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// Plans environment `input.name` from `loaded`.
///
/// # Errors
/// Configuration errors placed at their field (a node resource group name too long, an
/// unknown add-on version), template errors naming the template and line, and rendered
/// manifests that are not Kubernetes objects.
pub fn plan(
    loaded: &Loaded,
    input: &PlanInput,
    renderer: &Arc<Renderer>,
) -> Result<Plan, PlanError> {
    let env = &loaded.env;
    let name = input.name.as_str();
    let ttl = input.ttl.unwrap_or_else(|| env.ttl_duration());
    let expires_at = input
        .now
        .checked_add(jiff::SignedDuration::from_secs(
            i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        ))
        .map_err(|_| {
            PlanError::Invalid(format!(
                "{} plus the TTL is past the end of time",
                input.now
            ))
        })?;

    let (host, host_pending) =
        host(env, name, input.pr).map_err(|m| loaded.source.error("routing.host", m))?;
    let scheme = if env.addons.cert_manager.enabled {
        "https"
    } else {
        "http"
    };
    let url = host_pending.is_none().then(|| format!("{scheme}://{host}"));
    let record = Record {
        name: name.to_string(),
        provider: env.provider.kind().to_string(),
        repository: input.untrusted.repository.clone(),
        pr: input.pr,
        created_at: input.now,
        expires_at,
        created_by: None,
        version: crate::VERSION.to_string(),
        url: url.clone(),
        env_file: Some(env.metadata.name.clone()),
        pool: None,
    };

    let provider = plan_request(env, name, &record, renderer).map_err(|e| match e {
        ProviderError::Config(m) => PlanError::Config(loaded.source.locate(&m)),
        other => other.into(),
    })?;

    let catalog = Catalog::load(renderer)?;
    let addons = catalog
        .resolve(&env.addons, env.provider.kind())
        .map_err(|e| match &e {
            crate::addons::AddonError::UnknownVersion { addon, .. } => {
                PlanError::Config(loaded.source.error(
                    &format!("addons.{}.version", addon_field(addon)),
                    e.to_string(),
                ))
            }
            _ => e.into(),
        })?;

    let data = app_data(env, input, &host, &addons);
    let manifests = render_app(renderer, &data)?;

    let summary = Summary {
        name: name.to_string(),
        pr: input.pr,
        profile: env.metadata.name.clone(),
        env_file: loaded.source.file.clone(),
        provider: env.provider.kind().to_string(),
        image: input.image.clone(),
        host,
        host_pending,
        url,
        ttl: if input.ttl.is_some() {
            crate::config::duration::human(ttl)
        } else {
            env.ttl.clone()
        },
        created_at: input.now,
        expires_at,
        now_source: input.now_source,
        record: record.to_pairs(),
        untrusted: input.untrusted.clone(),
        pool: pool_capacity(env),
    };
    let warnings = warnings(env, &addons);
    Ok(Plan {
        summary,
        provider,
        addons,
        manifests,
        warnings,
        env: env.clone(),
        renderer: renderer.clone(),
        record,
    })
}

/// The `addons.<field>` an add-on is configured under.
fn addon_field(addon: &str) -> &'static str {
    match addon {
        "cert-manager" => "certManager",
        "argo-cd" => "argoCd",
        "argo-rollouts" => "argoRollouts",
        _ => "ingress",
    }
}

/// The preview host, and why it is not final when it needs the load balancer's IP.
fn host(
    env: &Environment,
    name: &str,
    pr: Option<u64>,
) -> Result<(String, Option<String>), String> {
    let h = crate::config::host::preview_host(env, name, pr, None)?;
    Ok((h.host, h.pending))
}

/// How the canary's traffic is split: by the ingress through Argo Rollouts' traffic router when
/// one is available, else by replica count.
fn traffic_routing(env: &Environment, addons: &[ResolvedAddon]) -> &'static str {
    if !env.addons.ingress.enabled {
        return "none";
    }
    match env.addons.ingress.implementation {
        IngressImplementation::IngressNginx => "nginx",
        IngressImplementation::GatewayApi => {
            // The Gateway API router is a plugin; it is used only when the argo-rollouts add-on
            // installs it (and says so in its exports).
            let plugin = addons
                .iter()
                .find(|a| a.name == "argo-rollouts")
                .and_then(|a| a.exports.get("gatewayApiPlugin"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if plugin { "gatewayApi" } else { "none" }
        }
    }
}

/// The annotations on every app object: the PR, the image, and the untrusted branch, title and
/// repository.
fn annotations(input: &PlanInput) -> Map<String, Value> {
    let mut annotations = Map::new();
    if let Some(pr) = input.pr {
        annotations.insert("ephemera.dev/pr".into(), pr.to_string().into());
    }
    annotations.insert(
        "ephemera.dev/image".into(),
        input.image.reference.clone().into(),
    );
    for (key, v) in [
        ("ephemera.dev/branch", &input.untrusted.branch),
        ("ephemera.dev/title", &input.untrusted.title),
        ("ephemera.dev/repository", &input.untrusted.repository),
    ] {
        if let Some(v) = v {
            annotations.insert(key.into(), v.clone().into());
        }
    }
    annotations
}

/// The Rollout's canary steps as Argo Rollouts spells them.
fn canary_steps(steps: &[CanaryStep]) -> Vec<Value> {
    steps
        .iter()
        .map(|s| match s {
            CanaryStep::SetWeight(w) => json!({ "setWeight": w }),
            CanaryStep::Pause(p) => match &p.duration {
                Some(d) => json!({ "pause": { "duration": d } }),
                None => json!({ "pause": {} }),
            },
        })
        .collect()
}

/// The container's resources: requests and limits, each only when set.
fn resources(app: &crate::config::App) -> Option<Value> {
    app.resources.as_ref().map(|r| {
        let mut m = Map::new();
        if !r.requests.is_empty() {
            m.insert("requests".into(), json!(r.requests));
        }
        if !r.limits.is_empty() {
            m.insert("limits".into(), json!(r.limits));
        }
        Value::Object(m)
    })
}

/// The data every app template sees. Untrusted strings are only in `annotations` and are
/// rendered through the `yaml` helper like every other value.
pub fn app_data(
    env: &Environment,
    input: &PlanInput,
    host: &str,
    addons: &[ResolvedAddon],
) -> Value {
    use crate::labels;
    let app = &env.app;
    let name = input.name.as_str();
    let mut selector = Map::new();
    selector.insert("app.kubernetes.io/name".into(), app.name.clone().into());
    let mut common = Map::new();
    common.insert(labels::MANAGED_BY.into(), crate::MANAGER.into());
    common.insert(labels::ENVIRONMENT.into(), name.into());
    let mut obj_labels = selector.clone();
    obj_labels.extend(common.clone());
    let mut pod_labels = selector.clone();
    pod_labels.extend(common);

    let annotations = annotations(input);

    let steps = canary_steps(&app.canary.steps);
    let env_vars: Vec<Value> = app
        .env
        .iter()
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    let resources = resources(app);

    let ingress = if env.addons.ingress.enabled {
        ingress_exports(addons)
            .cloned()
            .map(Value::Object)
            .unwrap_or_else(|| json!({ "implementation": "none" }))
    } else {
        json!({ "implementation": "none" })
    };
    let cert_manager = addons.iter().find(|a| a.name == "cert-manager");
    let issuer_name = cert_manager
        .and_then(|a| a.exports.get("clusterIssuer"))
        .and_then(Value::as_str)
        .unwrap_or("ephemera");
    let wildcard = env.tls.wildcard.then(|| env.base_domain()).flatten();
    let gitops = app.gitops.as_ref().map(|g| {
        json!({
            "repoUrl": g.repo_url,
            "path": g.path,
            "targetRevision": g.target_revision,
            "imageParameter": g.image_parameter,
            "imageVersion": input.image.version(),
            "argoNamespace": addons.iter().find(|a| a.name == "argo-cd").map_or("argocd", |a| a.namespace.as_str()),
        })
    });

    json!({
        "env": name,
        "pr": input.pr,
        "namespace": app.name,
        "host": host,
        "labels": obj_labels,
        "podLabels": pod_labels,
        "selector": selector,
        "annotations": annotations,
        "app": {
            "name": app.name,
            "canaryService": format!("{}-canary", app.name),
            "image": input.image.reference,
            "port": app.port,
            "replicas": app.replicas,
            "healthPath": app.health_path,
            "env": env_vars,
            "resources": resources,
            "steps": steps,
        },
        "tls": {
            "enabled": env.addons.cert_manager.enabled,
            "issuerName": issuer_name,
            "secretName": format!("{}-tls", app.name),
            "dnsName": wildcard.map_or_else(|| host.to_string(), |d| format!("*.{d}")),
            // One Certificate per zone, copied in by up, instead of one per environment.
            "wildcard": wildcard.is_some(),
        },
        "ingress": ingress,
        "trafficRouting": traffic_routing(env, addons),
        "gitops": gitops,
        "registry": app.registry.as_ref().map(|r| json!({
            "secretName": crate::app::registry::secret_name(&app.name),
            "server": r.server,
            "passwordEnv": r.password_env,
            "dockerconfigjson": input.registry_auth.as_deref().unwrap_or(crate::app::registry::REDACTED),
        })),
    })
}

/// Renders every app template in name order into objects.
///
/// # Errors
/// Template errors, YAML that does not parse, and documents that are not Kubernetes objects.
pub fn render_app(renderer: &Renderer, data: &Value) -> Result<Vec<Manifest>, PlanError> {
    let mut out = Vec::new();
    for template in renderer.names_under(APP_TEMPLATES) {
        let text = renderer.render(&template, data)?;
        let bad = |message: String| PlanError::Rendered {
            template: template.clone(),
            message,
        };
        let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).map_err(|e| {
            bad(format!(
                "the rendered text is not YAML: {}",
                one_line(&e.to_string())
            ))
        })?;
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            let m = Manifest {
                template: template.clone(),
                object: doc,
            };
            let named = m
                .object
                .get("metadata")
                .and_then(|md| md.get("name"))
                .and_then(Value::as_str)
                .is_some();
            if m.field("apiVersion").is_empty() || m.field("kind").is_empty() || !named {
                return Err(bad(
                    "rendered a document without apiVersion, kind and metadata.name".into(),
                ));
            }
            out.push(m);
        }
    }
    Ok(out)
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn warnings(env: &Environment, addons: &[ResolvedAddon]) -> Vec<String> {
    let mut w: Vec<String> = addons.iter().filter_map(|a| a.notice.clone()).collect();
    if env.addons.ingress.enabled
        && env.addons.ingress.implementation == IngressImplementation::IngressNginx
        && !addons
            .iter()
            .any(|a| a.name == "ingress-nginx" && a.notice.is_some())
    {
        w.push("ingress-nginx was retired in March 2026: no more releases or security fixes; prefer gateway-api".into());
    }
    if !env.addons.cert_manager.enabled {
        w.push("cert-manager is disabled: no certificate is issued and the preview is served over plain HTTP".into());
        return w;
    }
    if let crate::config::ProviderConfig::Aks(aks) = &env.provider
        && aks.dns.as_ref().is_some_and(|d| d.identity.is_none())
        && crate::config::aks::dns01_client_id(env).is_some()
    {
        w.push(
            "tls: DNS-01 signs in through workload identity, but provider.aks.dns.identity is not set: \
             the clusters' OIDC issuer and the identity's federated credentials are left to you"
                .into(),
        );
    }
    let prs = env.tls.expected_prs_per_week;
    if env.tls.issuer == crate::config::Issuer::Letsencrypt {
        if !env.tls.wildcard && prs > LETSENCRYPT_CERTS_PER_DOMAIN_PER_WEEK {
            w.push(format!(
                "tls: {prs} pull requests a week means {prs} certificates a week, over Let's Encrypt's \
                 {LETSENCRYPT_CERTS_PER_DOMAIN_PER_WEEK} per registered domain; set tls.wildcard or use letsencrypt-staging"
            ));
        }
        if env.tls.wildcard && prs > LETSENCRYPT_DUPLICATES_PER_WEEK {
            w.push(format!(
                "tls: a new cluster reuses the wildcard certificate of a live environment, but orders a new one \
                 when none is live; Let's Encrypt allows {LETSENCRYPT_DUPLICATES_PER_WEEK} identical orders a week and \
                 {prs} pull requests a week are expected"
            ));
        }
        if env.base_domain().is_none() {
            w.push(format!(
                "tls: Let's Encrypt counts every {} host against one shared registered domain; expect rate limits",
                env.routing.wildcard_dns
            ));
        }
    }
    if !matches!(env.provider, crate::config::ProviderConfig::Aks(_))
        && matches!(
            env.tls.issuer,
            crate::config::Issuer::Letsencrypt | crate::config::Issuer::LetsencryptStaging
        )
    {
        w.push(format!(
            "tls: {} clusters are not reachable from the internet, so ACME HTTP-01 challenges cannot succeed; use selfsigned",
            env.provider.kind()
        ));
    }
    w
}

impl Plan {
    /// The plan as one YAML stream: provider requests, then the add-on list, then every app
    /// manifest, each document after `---` with a comment saying what it is.
    ///
    /// # Errors
    /// A value that cannot be written as YAML (not expected for JSON values).
    pub fn to_yaml(&self) -> Result<String, PlanError> {
        let s = &self.summary;
        let mut out = format!(
            "# ephemera plan for {} ({}, from {:?}); nothing has been created.\n",
            s.name, s.provider, s.env_file
        );
        out.push_str(&format!("# host: {}\n", s.host));
        if let Some(p) = &s.host_pending {
            out.push_str(&format!("# host pending: {p}\n"));
        }
        out.push_str(&format!(
            "# created-at {} / expires-at {} (ttl {})",
            s.created_at, s.expires_at, s.ttl
        ));
        out.push_str(match s.now_source {
            NowSource::Placeholder => {
                ": placeholder times; plan never reads the clock (pass --now or set SOURCE_DATE_EPOCH), up stamps the real ones\n"
            }
            _ => "\n",
        });
        for (title, body) in &self.provider.documents {
            push_doc(
                &mut out,
                &format!("provider {}: {title}", self.provider.kind),
                body,
            )?;
        }
        push_doc(
            &mut out,
            "add-ons, in install order, with versions and sources",
            &self.addons_value(),
        )?;
        for m in &self.manifests {
            push_doc(
                &mut out,
                &format!("{} (templates/{})", m.id(), m.template),
                &m.object,
            )?;
        }
        Ok(out)
    }

    fn addons_value(&self) -> Value {
        let list: Vec<Value> = self
            .addons
            .iter()
            .map(|a| {
                json!({
                    "name": a.name,
                    "version": a.version,
                    "namespace": a.namespace,
                    "components": a.components,
                    "sources": a.sources,
                    "dependsOn": a.depends_on,
                    "waits": a.waits.iter().map(|w| &w.id).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "addons": list })
    }

    /// The machine-readable plan.
    pub fn to_json(&self) -> Value {
        json!({
            "environment": self.summary,
            "provider": {
                "kind": self.provider.kind,
                "clusterName": self.provider.cluster_name,
                "documents": self.provider.documents.iter().map(|(t, b)| json!({"title": t, "body": b})).collect::<Vec<_>>(),
            },
            "addons": self.addons_value()["addons"],
            "manifests": self.manifests.iter().map(|m| json!({"template": m.template, "object": m.object})).collect::<Vec<_>>(),
            "warnings": self.warnings,
        })
    }

    /// One file per object for `--out DIR`: `(file name, YAML)`, numbered in apply order.
    ///
    /// # Errors
    /// As [`Plan::to_yaml`].
    pub fn files(&self) -> Result<Vec<(String, String)>, PlanError> {
        let mut files = Vec::new();
        let mut n = 0;
        let mut next =
            |stem: String, title: &str, body: &Value| -> Result<(String, String), PlanError> {
                n += 1;
                let mut text = String::new();
                push_doc(&mut text, title, body)?;
                Ok((format!("{n:02}-{stem}.yaml"), text))
            };
        for (i, (title, body)) in self.provider.documents.iter().enumerate() {
            files.push(next(
                format!("provider-{}-{}", self.provider.kind, i + 1),
                title,
                body,
            )?);
        }
        files.push(next("addons".into(), "add-ons", &self.addons_value())?);
        for m in &self.manifests {
            let stem = m.id().to_ascii_lowercase().replace('/', "-");
            files.push(next(stem, &format!("templates/{}", m.template), &m.object)?);
        }
        Ok(files)
    }

    /// Writes [`Plan::files`] into `dir`, creating it.
    ///
    /// # Errors
    /// I/O errors naming the path.
    pub fn write_files(&self, dir: &Path) -> Result<Vec<std::path::PathBuf>, PlanError> {
        std::fs::create_dir_all(dir).map_err(|e| PlanError::Io {
            context: format!("creating {}", dir.display()),
            source: e,
        })?;
        let mut written = Vec::new();
        for (name, text) in self.files()? {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| PlanError::Io {
                context: format!("writing {}", p.display()),
                source: e,
            })?;
            written.push(p);
        }
        Ok(written)
    }
}

fn push_doc(out: &mut String, title: &str, body: &Value) -> Result<(), PlanError> {
    // Long single-line strings (URLs) stay on one line; multi-line ones become literal blocks.
    let options = serde_saphyr::ser_options! { folded_wrap_chars: 4096 };
    let yaml = serde_saphyr::to_string_with_options(body, options)
        .map_err(|e| PlanError::Invalid(format!("writing {title} as YAML: {e}")))?;
    out.push_str("---\n# ");
    out.push_str(&one_line(title));
    out.push('\n');
    out.push_str(&yaml);
    if !yaml.ends_with('\n') {
        out.push('\n');
    }
    Ok(())
}

/// The raw inputs of `plan` (and of `up`, which plans first), as given on the command line.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub env_file: std::path::PathBuf,
    pub pr: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    pub branch: Option<String>,
    pub title: Option<String>,
    pub repository: Option<String>,
    /// `--now`, RFC 3339.
    pub now: Option<String>,
    /// `--ttl`.
    pub ttl: Option<String>,
    /// `--templates DIR`.
    pub templates: Option<std::path::PathBuf>,
    /// Read secrets from the environment (the registry password of `app.registry`), as `up` and
    /// `deploy` do; `plan` leaves them out and shows them redacted.
    pub resolve_secrets: bool,
}

/// Checks every input, then plans. Variables read: `GITHUB_HEAD_REF`, `GITHUB_REPOSITORY`,
/// `SOURCE_DATE_EPOCH`, and with [`Request::resolve_secrets`] the one `app.registry.passwordEnv`
/// names.
///
/// # Errors
/// Every bad input (file, PR, name, image, untrusted strings, time, TTL, templates) with a
/// one-line message naming it; then as [`plan`].
pub fn run(req: &Request) -> Result<Plan, PlanError> {
    let loaded = crate::config::load_with_source(&req.env_file)?;
    let (name, pr) = target(&loaded.env, req.pr.as_deref(), req.name.as_deref())?;
    let image = image(&loaded.env, req.image.as_deref())?;
    let untrusted = Untrusted::collect(
        req.branch.clone(),
        req.title.clone(),
        req.repository.clone(),
        |k| std::env::var(k).ok(),
    )?;
    let (now, now_source) = plan_now(
        req.now.as_deref(),
        std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
    )?;
    let ttl = req
        .ttl
        .as_deref()
        .map(|t| {
            crate::config::duration::parse_ttl(t).map_err(|message| NameError::Invalid {
                what: "--ttl".into(),
                message,
            })
        })
        .transpose()?;
    let registry_auth = match (&loaded.env.app.registry, req.resolve_secrets) {
        (Some(r), true) => Some(
            crate::app::registry::password(r)
                .map(|p| crate::app::registry::dockerconfigjson(r, &p))
                .map_err(|m| loaded.source.error("app.registry.passwordEnv", m))?,
        ),
        _ => None,
    };
    let renderer = Arc::new(Renderer::new(req.templates.as_deref())?);
    tracing::info!(environment = %name, file = %loaded.source.file, provider = loaded.env.provider.kind(), "planning");
    let plan = plan(
        &loaded,
        &PlanInput {
            name,
            pr,
            image,
            untrusted,
            now,
            now_source,
            ttl,
            registry_auth,
        },
        &renderer,
    )?;
    tracing::debug!(
        provider_documents = plan.provider.documents.len(),
        addons = plan.addons.len(),
        manifests = plan.manifests.len(),
        "planned"
    );
    Ok(plan)
}
