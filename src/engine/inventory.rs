//! `list`, `status`, `extend` and `gc`: reading and changing records that live on resources.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use serde::Serialize;

use super::EngineError;
use super::gc::{OpenPrs, Reason, select};
use super::lease::{LeaseRecord, LeaseStore};
use crate::config::Environment;
use crate::progress::Progress;
use crate::providers::Provider;
use crate::providers::any::{AnyProvider, ProviderOptions};
use crate::record::Record;
use crate::templates::Renderer;

/// Which environments to look at.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub env_file: PathBuf,
    pub templates: Option<PathBuf>,
}

fn provider_for(
    env_file: &std::path::Path,
    templates: Option<&std::path::Path>,
) -> Result<(Environment, AnyProvider), crate::Error> {
    let env = crate::config::load(env_file)?;
    let renderer = Arc::new(Renderer::new(templates)?);
    let provider = AnyProvider::from_env(&env, renderer, &ProviderOptions::default())?;
    Ok((env, provider))
}

/// One row of `list`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    #[serde(flatten)]
    pub record: Record,
    /// `active` or `expired`; a warm-pool member not bound to a PR is `idle` (or `retiring`
    /// while `pool ensure` deletes it).
    pub state: &'static str,
    pub age_seconds: i64,
}

/// The state `list` and `status` show for `r` at `now`.
fn state(r: &Record, now: Timestamp) -> &'static str {
    use crate::record::PoolState;
    match r.pool.as_ref().map(|p| p.state) {
        _ if r.is_expired(now) => "expired",
        Some(PoolState::Idle) => "idle",
        Some(PoolState::Retiring) => "retiring",
        _ => "active",
    }
}

/// Lists the environments the provider of `opts.env_file` can see, sorted by name.
///
/// # Errors
/// A listing error: it never means "nothing exists".
pub async fn list(opts: &ListOptions) -> Result<Vec<Listed>, crate::Error> {
    let (_, provider) = provider_for(&opts.env_file, opts.templates.as_deref())?;
    let now = Timestamp::now();
    let mut out: Vec<Listed> = provider
        .list()
        .await?
        .into_iter()
        .map(|r| Listed {
            state: state(&r, now),
            age_seconds: now.duration_since(r.created_at).as_secs(),
            record: r,
        })
        .collect();
    out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    Ok(out)
}

async fn find(provider: &AnyProvider, name: &str) -> Result<Record, crate::Error> {
    provider
        .list()
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| {
            EngineError::NotFound {
                name: name.to_string(),
                provider: provider.kind().to_string(),
            }
            .into()
        })
}

/// What `status` shows.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub record: Record,
    pub state: &'static str,
    /// The run holding the lease right now, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseRecord>,
    /// Installed add-ons as `name=version`, from the add-on record in `kube-system`.
    pub addons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::app::RolloutStatus>,
    /// Why a part could not be read (the cluster is stopped, the app is not deployed yet).
    pub notes: Vec<String>,
}

/// The status of environment `name` (from `--pr`/`--name`).
///
/// # Errors
/// [`EngineError::NotFound`] (exit 2) when the provider has no such environment.
pub async fn status(
    opts: &ListOptions,
    pr: Option<&str>,
    name: Option<&str>,
) -> Result<StatusReport, crate::Error> {
    let (env, provider) = provider_for(&opts.env_file, opts.templates.as_deref())?;
    let (name, _) = crate::plan::target(&env, pr, name)?;
    let name = super::claim::resolve(&provider, &env, name.as_str()).await?;
    let record = find(&provider, name.as_str()).await?;
    let now = Timestamp::now();
    let mut report = StatusReport {
        state: state(&record, now),
        record,
        lease: None,
        addons: Vec::new(),
        rollout: None,
        notes: Vec::new(),
    };
    let client = match provider.kubeconfig(name.as_str()).await {
        Ok(kc) => kc.client().await?,
        Err(e) => {
            report
                .notes
                .push(format!("cluster not reachable: {}", super::chain(&e)));
            return Ok(report);
        }
    };
    let lease = match provider.lease_store(name.as_str(), Some(&client)).await {
        Ok(store) => store.read().await,
        Err(e) => Err(e),
    };
    match lease {
        Ok(l) => report.lease = l.map(|(l, _)| l).filter(|l| !l.is_expired(now)),
        Err(e) => report
            .notes
            .push(format!("lease unreadable: {}", super::chain(&e))),
    }
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "kube-system");
    match cms
        .get_opt(super::up::steps::addons::ADDONS_CONFIGMAP)
        .await
    {
        Ok(Some(cm)) => {
            if let Some(list) = cm.data.as_ref().and_then(|d| d.get("addons")) {
                report.addons = list
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
        }
        Ok(None) => report.notes.push("add-ons not installed yet".into()),
        Err(e) => report.notes.push(format!("add-on record unreadable: {e}")),
    }
    match crate::app::status(&client, &super::release::app_namespace(&env), &env.app.name).await {
        Ok(s) => report.rollout = Some(s),
        Err(e) => report.notes.push(format!("app: {}", super::chain(&e))),
    }
    Ok(report)
}

/// What `extend` changes.
#[derive(Clone, Debug)]
pub struct ExtendOptions {
    pub list: ListOptions,
    pub pr: Option<String>,
    pub name: Option<String>,
    /// How much later the environment expires; counted from the later of now and the current
    /// expiry, so extending an expired environment revives it.
    pub by: std::time::Duration,
}

/// Moves an environment's `expires-at`.
///
/// # Errors
/// [`EngineError::NotFound`] (exit 2); provider errors writing the record.
pub async fn extend(opts: &ExtendOptions) -> Result<Record, crate::Error> {
    let (env, provider) = provider_for(&opts.list.env_file, opts.list.templates.as_deref())?;
    let (name, _) = crate::plan::target(&env, opts.pr.as_deref(), opts.name.as_deref())?;
    let name = super::claim::resolve(&provider, &env, name.as_str()).await?;
    let mut record = find(&provider, name.as_str()).await?;
    let base = record.expires_at.max(Timestamp::now());
    let by = SignedDuration::from_secs(i64::try_from(opts.by.as_secs()).unwrap_or(i64::MAX));
    record.expires_at = base
        .checked_add(by)
        .map_err(|_| EngineError::Invalid("--by is too large".into()))?;
    provider.update_record(&record).await?;
    Ok(record)
}

/// Moves the expiry of environment `name` after activity on it (`deploy`) to at least now + the
/// file's `ttl`, within its `maxLifetime`, never earlier ([`Record::renewed_expiry`]). The
/// record is written only when it changes.
///
/// # Errors
/// [`EngineError::NotFound`] (exit 2); provider errors reading or writing the record.
pub async fn renew(
    env: &Environment,
    provider: &AnyProvider,
    name: &str,
) -> Result<Record, crate::Error> {
    let mut record = find(provider, name).await?;
    let max = env.max_lifetime_duration();
    let expires = record.renewed_expiry(Timestamp::now(), env.ttl_duration(), max);
    if expires != record.expires_at {
        record.expires_at = expires;
        provider.update_record(&record).await?;
    }
    Ok(record)
}

/// What `gc` is asked to do.
#[derive(Clone, Debug)]
pub struct GcOptions {
    pub list: ListOptions,
    pub open_prs: Option<OpenPrs>,
    pub dry_run: bool,
    /// `--github`: mark the deployments of collected PR environments inactive, and edit their
    /// PR comments (expired, or gone).
    pub github: bool,
    /// With `pool:` in the file and not `dry_run`: refill the warm pool afterwards, with add-on
    /// sources from here (what `pool ensure` does; see docs/pool.md).
    pub refill: Option<crate::addons::SourceOptions>,
}

/// What `gc` did (or would do, with `dry_run`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub dry_run: bool,
    pub examined: usize,
    pub collected: Vec<Collected>,
    /// DNS records deleted (or, with `dry_run`, that would be) because their environment is gone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_orphans: Vec<String>,
    /// Federated credentials on the DNS-01 identity deleted (or, with `dry_run`, that would be)
    /// because their environment is gone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credential_orphans: Vec<String>,
    /// The warm pool's refill, when the file has `pool:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<super::pool::PoolReport>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collected {
    pub name: String,
    pub reason: Reason,
    /// `deleted`, `already-gone`, `would-delete` or `failed: ...`.
    pub outcome: String,
}

/// Deletes expired environments, and with `open_prs`, those whose PR is no longer open.
///
/// # Errors
/// A listing error aborts before anything is deleted. Failed deletions are reported and make the
/// run fail ([`EngineError::GcIncomplete`]) after the others are done.
pub async fn gc(opts: &GcOptions, progress: Arc<dyn Progress>) -> Result<GcReport, crate::Error> {
    let (env, provider) = provider_for(&opts.list.env_file, opts.list.templates.as_deref())?;
    // Only with --github: a scheduled gc needs no token unless it reports.
    let github = match opts.github {
        true => crate::github::Settings::from_env(env.github.as_ref(), true)
            .map_err(|e| EngineError::Invalid(super::chain(&e)))?,
        false => None,
    };
    let started = std::time::Instant::now();
    let mut result = collect(opts, &env, &provider, github, progress.clone()).await;
    if let (Ok(report), Some(sources), Some(_)) = (&mut result, &opts.refill, &env.pool)
        && !opts.dry_run
    {
        let refill = super::pool::PoolOptions {
            env_file: opts.list.env_file.clone(),
            templates: opts.list.templates.clone(),
            sources: sources.clone(),
            timeout: std::time::Duration::from_secs(15 * 60),
            deadline: std::time::Duration::from_secs(2 * 3600),
        };
        report.pool = Some(super::pool::ensure(&refill, progress).await?);
    }
    if let Some(msg) = gc_message(opts, &result, started.elapsed())
        && let Some(w) = crate::slack::notify(env.notifications.slack.as_ref(), &msg).await
    {
        tracing::warn!("{w}");
    }
    result
}

/// The Slack message of a `gc` run: only when it deleted something or failed, so a scheduled
/// run that finds nothing to do stays quiet; never for `dry_run`.
fn gc_message(
    opts: &GcOptions,
    result: &Result<GcReport, crate::Error>,
    took: std::time::Duration,
) -> Option<crate::slack::Message> {
    use crate::slack::{Event, Message, Outcome};
    let mut msg = match result {
        Ok(r) if r.dry_run || r.collected.is_empty() => return None,
        Ok(r) => {
            let n = r.collected.len();
            let s = if n == 1 { "" } else { "s" };
            let mut m = Message::new(
                Event::Gc,
                Outcome::Success,
                format!("gc deleted {n} environment{s}"),
            );
            m.result = Some(format!("{} examined, {n} deleted", r.examined));
            m.fields = collected_fields(r);
            m
        }
        Err(_) if opts.dry_run => return None,
        Err(e) => {
            let mut m = Message::new(Event::Gc, Outcome::Failure, "gc failed");
            m.error = Some(super::chain(e));
            m
        }
    };
    msg.duration = Some(took);
    Some(msg.with_ci())
}

/// One Slack field per collected environment: why, and what became of it.
fn collected_fields(r: &GcReport) -> Vec<(String, String)> {
    r.collected
        .iter()
        .map(|c| (c.name.clone(), format!("{} ({})", c.reason, c.outcome)))
        .collect()
}

/// `gc`'s work: select, tear down, tell GitHub, sweep orphans.
async fn collect(
    opts: &GcOptions,
    env: &Environment,
    provider: &AnyProvider,
    github: Option<crate::github::Settings>,
    progress: Arc<dyn Progress>,
) -> Result<GcReport, crate::Error> {
    let records = provider.list().await?;
    let chosen = select(&records, Timestamp::now(), opts.open_prs.as_ref());
    let mut reporter = github.map(crate::github::Reporter::new);
    let dns =
        crate::dns::azure::AzureDns::from_env(env, Arc::new(crate::providers::probe::SystemProbe))?;
    let mut report = GcReport {
        dry_run: opts.dry_run,
        examined: records.len(),
        collected: Vec::new(),
        dns_orphans: Vec::new(),
        credential_orphans: Vec::new(),
        pool: None,
    };
    let mut failed = Vec::new();
    for (record, reason) in chosen {
        let outcome = if opts.dry_run {
            "would-delete".to_string()
        } else {
            let result = super::down::teardown(&super::down::Target {
                env,
                provider,
                name: &record.name,
                pr: record.pr,
                kubeconfig: None,
                progress: progress.clone(),
                bounds: &crate::deadline::Bounds::defaults(),
            })
            .await;
            match result {
                Ok(r) => {
                    if let Some(reporter) = reporter.as_mut() {
                        tell_github(reporter, opts, &record, &reason).await;
                    }
                    r.outcome.to_string()
                }
                Err(e) => {
                    failed.push(record.name.clone());
                    format!("failed: {}", super::chain(&e))
                }
            }
        };
        report.collected.push(Collected {
            name: record.name,
            reason,
            outcome,
        });
    }
    // What is left of environments that no longer exist (an interrupted down, a cluster deleted
    // by hand): their DNS records and federated credentials.
    let live: std::collections::BTreeSet<String> = records
        .iter()
        .map(|r| r.name.clone())
        .filter(|n| {
            opts.dry_run
                || !report
                    .collected
                    .iter()
                    .any(|c| &c.name == n && !c.outcome.starts_with("failed"))
        })
        .collect();
    // Records without our metadata are never touched.
    if let Some(d) = &dns {
        sweep_dns(d, &live, &mut report, &mut failed).await;
    }
    sweep_credentials(env, provider, &live, &mut report, &mut failed).await?;
    if !failed.is_empty() {
        return Err(EngineError::GcIncomplete {
            failed: failed.len(),
            total: report.collected.len(),
            names: failed.join(", "),
        }
        .into());
    }
    Ok(report)
}

/// Tells GitHub that `record`'s environment was collected: for a PR that is still open (or not
/// known to be closed) whose TTL ran out, that it expired and how to bring it back; for a closed
/// PR, that it is gone. Either way its deployments become inactive. Problems are warnings.
async fn tell_github(
    reporter: &mut crate::github::Reporter,
    opts: &GcOptions,
    record: &Record,
    reason: &super::gc::Reason,
) {
    let Some(pr) = record.pr else {
        return;
    };
    let Ok(name) = crate::names::EnvName::from_name(&record.name) else {
        return;
    };
    let still_open = opts.open_prs.as_ref().is_none_or(|o| o.is_open(record));
    let warnings = match reason {
        super::gc::Reason::Expired { expires_at } if still_open => {
            let mut data =
                crate::github::CommentData::new(name, pr, crate::github::CommentState::Expired);
            data.expires_at = Some(*expires_at);
            data.env_file = Some(opts.list.env_file.display().to_string());
            reporter.expired(&data).await
        }
        _ => reporter.torn_down(&name, pr).await,
    };
    for w in warnings {
        tracing::warn!("{}: {w}", record.name);
    }
}

/// Deletes DNS records whose environment is gone (an interrupted `down`, a cluster deleted by
/// hand); records without our metadata are never touched. With `report.dry_run`, only lists
/// them.
async fn sweep_dns(
    dns: &crate::dns::azure::AzureDns,
    live: &std::collections::BTreeSet<String>,
    report: &mut GcReport,
    failed: &mut Vec<String>,
) {
    match dns.gc_orphans(live, report.dry_run).await {
        Ok(swept) => {
            for sw in swept {
                if sw.outcome.starts_with("failed") {
                    failed.push(format!("DNS record {}", sw.record.name));
                }
                report.dns_orphans.push(format!(
                    "{} ({}): {}",
                    sw.record.name,
                    sw.record.environment().unwrap_or("?"),
                    sw.outcome
                ));
            }
        }
        Err(e) => {
            failed.push("DNS records".to_string());
            tracing::error!("collecting orphaned DNS records: {}", super::chain(&e));
        }
    }
}

/// Deletes the federated credentials on the DNS-01 identity whose environment is gone, for the
/// same reasons; only those this file's provider would have named are touched.
///
/// # Errors
/// An unusable identity configuration.
async fn sweep_credentials(
    env: &Environment,
    provider: &AnyProvider,
    live: &std::collections::BTreeSet<String>,
    report: &mut GcReport,
    failed: &mut Vec<String>,
) -> Result<(), crate::Error> {
    let probe = Arc::new(crate::providers::probe::SystemProbe);
    if let Some(credentials) = crate::dns::identity::FederatedCredentials::from_env(env, probe)? {
        // Only AKS files name a DNS-01 identity, and AKS clusters always have a resource id.
        let cluster_id = |n: &str| provider.cluster_resource_id(n).unwrap_or_default();
        match credentials
            .gc_orphans(live, cluster_id, report.dry_run)
            .await
        {
            Ok(swept) => {
                for (name, outcome) in swept {
                    if outcome.starts_with("failed") {
                        failed.push(format!("federated credential {name}"));
                    }
                    report.credential_orphans.push(format!("{name}: {outcome}"));
                }
            }
            Err(e) => {
                failed.push("federated credentials".to_string());
                tracing::error!(
                    "collecting orphaned federated credentials: {}",
                    super::chain(&e)
                );
            }
        }
    }
    Ok(())
}
