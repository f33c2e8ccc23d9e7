//! `up`: plan, then cluster → kubeconfig → add-ons → app → report, each step an ensure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::arm_lease::{AnyLeaseStore, guarded, lease_store, preflight, taken_over};
use super::lease::{self, LeaseRecord, LeaseStore, Operation};
use super::{EngineError, StepReport, Steps};
use crate::addons::ResolvedAddon;
use crate::config::Environment;
use crate::plan::{Manifest, Plan};
use crate::progress::Progress;
use crate::providers::any::{AnyProvider, ProviderOptions};
use crate::providers::{ClusterRequest, Kubeconfig, Provider};
use crate::record::Record;
use crate::templates::Renderer;

/// How long a run's lease lasts without renewal; a killed run frees it after this.
pub const LEASE_DURATION: Duration = Duration::from_secs(300);

/// The ConfigMap in `kube-system` that remembers which add-ons are installed, for the fast path.
pub const ADDONS_CONFIGMAP: &str = "ephemera-addons";

/// What `up` is asked to do.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The plan inputs: env file, PR or name, image, untrusted metadata, ttl, templates.
    pub request: crate::plan::Request,
    /// Where add-on manifests come from (`--manifests`, the mirror) and what they are checked
    /// against (the lock, `--locked`).
    pub sources: crate::addons::SourceOptions,
    /// `--kubeconfig PATH`: merge the environment's context into this file.
    pub kubeconfig: Option<PathBuf>,
    /// Keep a cluster this run created when a later step fails.
    pub keep_on_failure: bool,
    /// Deadline for each waiting step (add-ons ready, rollout settled, URL answering).
    pub timeout: Duration,
    /// Accept an invalid certificate when probing the URL (selfsigned or staging issuers only).
    pub insecure: bool,
    /// `--github`: report a GitHub Deployment and the sticky PR comment (also on with `github:`
    /// in the environment file).
    pub github: bool,
    /// `--sha`: the PR head commit to deploy for (default: from the Actions event).
    pub sha: Option<String>,
}

/// What `up` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpReport {
    pub name: String,
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr: Option<u64>,
    pub image: String,
    /// This run created the cluster.
    pub created: bool,
    pub url: Option<String>,
    /// Pods are simulated and nothing serves traffic (the local provider).
    pub simulated: bool,
    pub kubeconfig: PathBuf,
    pub expires_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub portal_url: Option<String>,
    pub addons: Vec<AddonVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::app::RolloutStatus>,
    pub steps: Vec<StepReport>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AddonVersion {
    pub name: String,
    pub version: String,
}

/// Plans and creates (or converges) an environment.
///
/// # Errors
/// Bad input before anything is created (exit 2); a step's failure wrapped as
/// [`EngineError::Step`] (its cause decides the exit status); [`EngineError::Lease`] when a
/// newer run or a `down` holds the environment (exit 4). When this run created the cluster and a
/// later step fails, the cluster is deleted unless `keep_on_failure`.
pub async fn up(opts: &UpOptions, progress: Arc<dyn Progress>) -> Result<UpReport, crate::Error> {
    // Everything that can be wrong with the input is found here, before anything is created.
    let mut request = opts.request.clone();
    // `up` stamps the real time; `plan` uses `--now` or a placeholder to stay reproducible.
    request.now = Some(Timestamp::now().to_string());
    let plan = crate::plan::run(&request)?;
    crate::addons::sources::check(&plan.addons, &opts.sources)?;
    let env = crate::config::load(&request.env_file)?;
    let renderer = Arc::new(Renderer::new(request.templates.as_deref())?);
    let record = Record::from_pairs(&plan.summary.record)
        .map_err(|e| EngineError::Invalid(format!("planned record is unreadable: {e}")))?;
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    let github = crate::github::Settings::from_env(env.github.as_ref(), opts.github)
        .map_err(|e| EngineError::Invalid(super::chain(&e)))?;
    if let Some(sha) = &opts.sha {
        crate::github::check_sha("--sha", sha)
            .map_err(|e| EngineError::Invalid(super::chain(&e)))?;
    }
    let provider = AnyProvider::from_env(
        &env,
        renderer.clone(),
        &ProviderOptions {
            keep_on_failure: opts.keep_on_failure,
        },
    )?;
    check_limit(&env, &request, &provider, &record.name).await?;
    // A DNS record in the way that is not ours stops up before anything is created.
    if plan.summary.host_pending.is_none()
        && let Some(d) = crate::dns::azure::AzureDns::from_env(
            &env,
            Arc::new(crate::providers::probe::SystemProbe),
        )?
    {
        d.check_host(&plan.summary.host, &record.name).await?;
    }

    let env_name = crate::names::EnvName::from_name(&record.name)?;
    let mut warnings: Vec<String> = Vec::new();
    // GitHub reporting needs a PR; its failures are warnings, never a failed or rolled-back up.
    let mut reporter = match (github, record.pr) {
        (Some(settings), Some(pr)) => {
            let mut r = crate::github::Reporter::new(settings);
            warnings.extend(
                r.started(&env_name, pr, opts.sha.as_deref())
                    .await
                    .iter()
                    .map(ToString::to_string),
            );
            Some((r, pr))
        }
        (Some(_), None) => {
            warnings.push("GitHub reporting skipped: the environment has no PR".into());
            None
        }
        (None, _) => None,
    };

    let result =
        create_or_converge(opts, &env, &plan, &renderer, &provider, &record, progress).await;
    let comment = |state, report: Option<&UpReport>| {
        let pr = record.pr.unwrap_or_default();
        let mut c = crate::github::CommentData::new(env_name.clone(), pr, state);
        c.provider = Some(provider.kind().to_string());
        c.addons = plan
            .addons
            .iter()
            .map(|a| (a.name.clone(), a.version.clone()))
            .collect();
        c.expires_at = Some(report.map_or(record.expires_at, |r| r.expires_at));
        c.env_file = Some(request.env_file.display().to_string());
        c.image = Some(plan.summary.image.reference.clone());
        c.branch = plan.summary.untrusted.branch.clone();
        c.sha = opts.sha.clone();
        c.url = report
            .and_then(|r| r.url.clone())
            .or_else(|| plan.summary.url.clone());
        c.canary_step = report.and_then(|r| r.rollout.as_ref()).map(canary_step);
        c
    };
    match result {
        Ok(mut report) => {
            if let Some((r, _)) = reporter.as_mut() {
                let data = comment(crate::github::CommentState::Up, Some(&report));
                let url = report.url.clone().unwrap_or_default();
                warnings.extend(
                    r.succeeded(&url, &data)
                        .await
                        .iter()
                        .map(ToString::to_string),
                );
            }
            if let Some(slack) = &env.notifications.slack {
                let text = format!(
                    "ephemera: {} is up at {}",
                    report.name,
                    report.url.as_deref().unwrap_or("(no URL yet)")
                );
                warnings.extend(
                    super::notify::slack(slack, super::notify::Outcome::Success, &text).await,
                );
            }
            warnings.extend(write_ci_outputs(&report));
            for w in &warnings {
                tracing::warn!("{w}");
            }
            report.warnings.extend(warnings);
            Ok(report)
        }
        Err(e) => {
            let message = super::chain(&e);
            if let Some((r, _)) = reporter.as_mut() {
                let mut data = comment(crate::github::CommentState::Failed, None);
                data.message = Some(message.clone());
                for w in r.failed(&message, &data).await {
                    tracing::warn!("{w}");
                }
            }
            if let Some(slack) = &env.notifications.slack
                && let Some(w) = super::notify::slack(
                    slack,
                    super::notify::Outcome::Failure,
                    &format!("ephemera: up of {} failed: {message}", record.name),
                )
                .await
            {
                tracing::warn!("{w}");
            }
            Err(e)
        }
    }
}

/// `2/5 (setWeight 50)`-style position of the canary, for the PR comment.
fn canary_step(s: &crate::app::RolloutStatus) -> String {
    match &s.step {
        Some(step) => format!(
            "{} ({:?}, weight {}%)",
            serde_json::to_string(step).unwrap_or_default(),
            s.phase,
            s.actual_weight
        ),
        None => format!("{:?}", s.phase),
    }
}

/// Writes GitHub Actions outputs and the job summary when running in Actions.
fn write_ci_outputs(report: &UpReport) -> Vec<String> {
    let outputs = [
        ("name", report.name.clone()),
        ("url", report.url.clone().unwrap_or_default()),
        ("kubeconfig", report.kubeconfig.display().to_string()),
        ("expires-at", report.expires_at.to_string()),
    ];
    let mut warnings = Vec::new();
    if let Err(e) = super::ci::write_outputs(&outputs) {
        warnings.push(format!("writing GITHUB_OUTPUT failed: {e}"));
    }
    let cell = super::ci::md_cell;
    let summary = format!(
        "### Preview environment `{}`\n\n| | |\n|---|---|\n| URL | {}{} |\n| provider | {} |\n| image | `{}` |\n| expires | {} |\n| add-ons | {} |\n\n",
        cell(&report.name),
        cell(report.url.as_deref().unwrap_or("(pending)")),
        if report.simulated {
            " (simulated: pods do not run)"
        } else {
            ""
        },
        cell(&report.provider),
        cell(&report.image),
        report.expires_at,
        cell(
            &report
                .addons
                .iter()
                .map(|a| format!("{} {}", a.name, a.version))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if let Err(e) = super::ci::write_summary(&summary) {
        warnings.push(format!("writing GITHUB_STEP_SUMMARY failed: {e}"));
    }
    warnings
}

/// Ensures the cluster, then converges it; deletes a cluster this run created when a later step
/// fails, unless `keep_on_failure`.
async fn create_or_converge(
    opts: &UpOptions,
    env: &Environment,
    plan: &Plan,
    renderer: &Arc<Renderer>,
    provider: &AnyProvider,
    record: &Record,
    progress: Arc<dyn Progress>,
) -> Result<UpReport, crate::Error> {
    let mut steps = Steps::new(progress.clone());
    let name = record.name.clone();
    let me = LeaseRecord::new(
        lease::run_id(Timestamp::now()),
        Operation::Up,
        Timestamp::now(),
        LEASE_DURATION,
    );
    // Down always wins: an up that starts while a down (or a newer up) holds the environment
    // gives way before it repairs or recreates anything.
    let early_store = preflight(provider, &name, &me).await?;
    let req = ClusterRequest {
        name: name.clone(),
        record: record.clone(),
    };
    let ensured = match steps.run("cluster", provider.ensure(&req)).await {
        Ok(ensured) => ensured,
        Err(e) => return Err(explain(provider, &name, &me, false, e).await),
    };
    let created = ensured.created;
    let rest = converge(
        opts,
        env,
        plan,
        renderer,
        provider,
        ensured,
        &me,
        early_store,
        &mut steps,
        progress,
    )
    .await;
    let rest = match rest {
        Err(e) => Err(explain(provider, &name, &me, true, e).await),
        ok => ok,
    };
    match rest {
        Ok(report) => Ok(report),
        Err(e) if created && !opts.keep_on_failure && !is_superseded(&e) => {
            tracing::warn!(
                "up failed after creating {name}; deleting it (pass --keep-on-failure to keep it)"
            );
            if let Err(cleanup) =
                super::down::delete_federated_credential(env, provider, &name).await
            {
                tracing::error!(
                    "deleting the federated credential of {name} failed: {}",
                    super::chain(&cleanup)
                );
            }
            match provider.delete(&name).await {
                // The kubeconfig step may have written a context for the cluster just deleted.
                Ok(_) => super::down::forget_kubeconfig(&name, opts.kubeconfig.as_deref()),
                Err(cleanup) => tracing::error!(
                    "deleting the half-made environment {name} failed: {}",
                    super::chain(&cleanup)
                ),
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// A step that failed because a down deleted the environment, or another run took it over,
/// reports that (exit 4) rather than its symptom, so the loser leaves the environment to the
/// winner.
async fn explain(
    provider: &AnyProvider,
    name: &str,
    me: &LeaseRecord,
    existed: bool,
    e: crate::Error,
) -> crate::Error {
    if is_superseded(&e) {
        return e;
    }
    match taken_over(provider, name, me, existed).await {
        Some(why) => {
            tracing::warn!("{}", super::chain(&e));
            EngineError::from(why).into()
        }
        None => e,
    }
}

/// A run that lost its lease to a newer `up` or a `down` must not delete what the winner uses.
fn is_superseded(e: &crate::Error) -> bool {
    match e {
        crate::Error::Engine(EngineError::Lease(lease::LeaseError::Store(_))) => false,
        crate::Error::Engine(EngineError::Lease(_)) => true,
        crate::Error::Engine(EngineError::Step { source, .. }) => is_superseded(source),
        _ => false,
    }
}

async fn check_limit(
    env: &Environment,
    request: &crate::plan::Request,
    provider: &AnyProvider,
    name: &str,
) -> Result<(), crate::Error> {
    let Some(limit) = env.limits.max_environments else {
        return Ok(());
    };
    let existing: Vec<String> = provider
        .list()
        .await?
        .into_iter()
        .filter(|r| r.env_file.as_deref() == Some(env.metadata.name.as_str()) && r.name != name)
        .map(|r| r.name)
        .collect();
    if existing.len() >= limit as usize {
        return Err(EngineError::LimitReached {
            file: request.env_file.display().to_string(),
            profile: env.metadata.name.clone(),
            limit,
            count: existing.len(),
            names: existing.join(", "),
        }
        .into());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn converge(
    opts: &UpOptions,
    env: &Environment,
    plan: &Plan,
    renderer: &Arc<Renderer>,
    provider: &AnyProvider,
    ensured: crate::providers::Ensured,
    me: &LeaseRecord,
    early_store: Option<AnyLeaseStore<'_>>,
    steps: &mut Steps,
    progress: Arc<dyn Progress>,
) -> Result<UpReport, crate::Error> {
    let name = ensured.record.name.clone();
    let mut warnings = Vec::new();

    let (kubeconfig, path) = steps
        .run(
            "kubeconfig",
            write_kubeconfig(provider, &name, opts.kubeconfig.as_deref()),
        )
        .await?;
    let client = kubeconfig.client().await?;

    let store = match early_store {
        Some(s) => s,
        None => lease_store(provider, &name, Some(&client)).await?,
    };
    if let Some(previous) = lease::acquire(&store, &name, me)
        .await
        .map_err(EngineError::from)?
    {
        let w = format!(
            "superseding an older up of {name} ({}); it stops at its next step",
            previous.holder
        );
        tracing::warn!("{w}");
        warnings.push(w);
    }

    // The lease is released whatever happens next, except when another run took it.
    let steps_result: Result<(Record, Option<crate::app::RolloutStatus>), crate::Error> = async {
        // cert-manager signs in as the DNS-01 identity only once the identity trusts this
        // cluster's OIDC issuer.
        if let Some(credentials) = crate::dns::identity::FederatedCredentials::from_env(
            env,
            Arc::new(crate::providers::probe::SystemProbe),
        )? {
            let cluster_id = ensured.resource_id.clone().ok_or_else(|| {
                EngineError::Invalid("provider.aks.dns.identity: the cluster has no resource id".into())
            })?;
            steps
                .run(
                    "identity",
                    guarded(&store, provider, &name, me, async {
                        let issuer = crate::dns::identity::issuer(&cluster_id, ensured.oidc_issuer.as_deref())?;
                        credentials.ensure(&name, &cluster_id, &issuer).await?;
                        Ok::<_, crate::Error>(())
                    }),
                )
                .await?;
        }
        let fingerprint = addons_fingerprint(&plan.addons);
        let installed = installed_fingerprint(&client).await;
        if !ensured.created && installed.as_deref() == Some(fingerprint.as_str()) {
            steps.skip("addons", "already installed at these versions");
        } else {
            steps
                .run(
                    "addons",
                    guarded(
                        &store,
                        provider,
                        &name,
                        me,
                        install_addons(
                            &client,
                            &name,
                            env,
                            plan,
                            renderer,
                            opts,
                            progress.clone(),
                            &fingerprint,
                        ),
                    ),
                )
                .await?;
        }
        lease::check_and_renew(&store, &name, me)
            .await
            .map_err(EngineError::from)?;

        // The preview host: final from the plan, or (AKS without a base domain) known only once
        // the ingress load balancer has an address. With an Azure DNS zone, the record follows it.
        let mut manifests = plan.manifests.clone();
        let mut url = plan.summary.url.clone();
        let dns = crate::dns::azure::AzureDns::from_env(env, Arc::new(crate::providers::probe::SystemProbe))?;
        if !env.addons.ingress.enabled {
            // Without an ingress nothing routes to the app, so there is no URL to report.
            url = None;
        } else if dns.is_some() || plan.summary.host_pending.is_some() {
            let host = steps
                .run(
                    "dns",
                    guarded(&store, provider, &name, me, async {
                        let source = crate::dns::address::AddressSource::from_addons(&plan.addons).ok_or_else(|| {
                            EngineError::Invalid(
                                "the preview host needs the ingress load balancer's address, but no ingress add-on is enabled"
                                    .into(),
                            )
                        })?;
                        let address = crate::dns::address::wait_for_address(&client, &source, opts.timeout).await?;
                        let host = match &plan.summary.host_pending {
                            None => plan.summary.host.clone(),
                            Some(_) => {
                                let ip = address.ipv4().ok_or_else(|| {
                                    EngineError::Invalid(format!(
                                        "the load balancer has no IPv4 address ({address:?}), which the wildcard-DNS host needs; configure provider.aks.dns or routing.baseDomain"
                                    ))
                                })?;
                                crate::dns::host::preview_host(env, &name, ensured.record.pr, Some(ip))
                                    .map_err(|m| EngineError::Invalid(format!("routing.host: {m}")))?
                                    .host
                            }
                        };
                        if let Some(d) = &dns {
                            d.ensure(&host, &address, &name).await?;
                        }
                        Ok::<_, crate::Error>(host)
                    }),
                )
                .await?;
            if host != plan.summary.host {
                replace_in_strings(&mut manifests, &plan.summary.host, &host);
            }
            url = Some(crate::dns::host::url_for(env, &host));
        }
        let wildcard_zone = env.tls.wildcard.then(|| env.base_domain()).flatten().filter(|_| env.addons.cert_manager.enabled);
        if let Some(zone) = wildcard_zone {
            steps
                .run(
                    "certificate",
                    guarded(&store, provider, &name, me, async {
                        let issuer_name = plan
                            .addons
                            .iter()
                            .find(|a| a.name == "cert-manager")
                            .and_then(|a| a.exports.get("clusterIssuer"))
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or("ephemera");
                        crate::dns::tls::ensure_wildcard_certificate(&client, zone, issuer_name, env.tls.issuer).await?;
                        let cert = crate::dns::tls::WildcardCertificate::for_zone(zone)?;
                        if ensured.serves_traffic {
                            crate::dns::tls::wait_certificate(&client, crate::dns::tls::CERTS_NAMESPACE, &cert.name, opts.timeout).await?;
                            crate::dns::tls::copy_wildcard_secret(&client, zone, &env.app.name, &format!("{}-tls", env.app.name), &name).await?;
                        }
                        Ok::<_, crate::Error>(())
                    }),
                )
                .await?;
        }
        lease::check_and_renew(&store, &name, me).await.map_err(EngineError::from)?;

        let deadline = Instant::now() + opts.timeout;
        let rollout = steps
            .run("app", guarded(&store, provider, &name, me, apply_app(&client, &name, env, &manifests, deadline)))
            .await?;
        // With real pods, the preview's own certificate is part of the wait; a failed ACME order
        // is reported with cert-manager's reason. Simulated clusters run no cert-manager.
        if ensured.serves_traffic && env.addons.cert_manager.enabled && wildcard_zone.is_none() {
            steps
                .run(
                    "certificate",
                    guarded(
                        &store,
                        provider,
                        &name,
                        me,
                        crate::dns::tls::wait_certificate(&client, &env.app.name, &env.app.name, opts.timeout),
                    ),
                )
                .await?;
        }
        lease::check_and_renew(&store, &name, me).await.map_err(EngineError::from)?;

        let mut record = ensured.record.clone();
        let report_deadline = Instant::now() + opts.timeout;
        if let Some(u) = &url {
            let insecure = opts.insecure;
            let issuer = env.tls.issuer;
            let health = env.app.health_path.clone();
            let serves = ensured.serves_traffic;
            steps
                .run(
                    "report",
                    guarded(&store, provider, &name, me, async {
                        let accept_invalid = crate::app::accept_invalid_certs(issuer, insecure)?;
                        crate::app::report_url(u, &health, serves, report_deadline, accept_invalid)
                            .await
                    }),
                )
                .await?;
            if record.url.as_deref() != Some(u) {
                record.url = Some(u.clone());
                provider.update_record(&record).await?;
            }
        } else {
            steps.skip("report", "no ingress is enabled, so nothing routes to the app");
        }
        Ok((record, rollout))
    }
    .await;
    if !matches!(&steps_result, Err(e) if is_superseded(e))
        && let Err(e) = store.release(&me.holder).await
    {
        tracing::warn!("releasing the lease of {name}: {}", super::chain(&e));
    }
    let (record, rollout) = steps_result?;
    let url = record.url.clone().or_else(|| plan.summary.url.clone());

    Ok(UpReport {
        name,
        provider: provider.kind().to_string(),
        pr: record.pr,
        image: plan.summary.image.reference.clone(),
        created: ensured.created,
        url,
        simulated: !ensured.serves_traffic,
        kubeconfig: path,
        expires_at: record.expires_at,
        resource_id: ensured.resource_id,
        portal_url: ensured.portal_url,
        addons: plan
            .addons
            .iter()
            .map(|a| AddonVersion {
                name: a.name.clone(),
                version: a.version.clone(),
            })
            .collect(),
        rollout,
        steps: steps.done.clone(),
        warnings,
    })
}

async fn write_kubeconfig(
    provider: &AnyProvider,
    name: &str,
    target: Option<&std::path::Path>,
) -> Result<(Kubeconfig, PathBuf), crate::Error> {
    let kc = provider.kubeconfig(name).await?.renamed(name);
    let path = match target {
        Some(p) => {
            kc.merge_into(p)?;
            p.to_path_buf()
        }
        None => {
            let p = super::default_kubeconfig_path(name)?;
            kc.write_to(&p)?;
            p
        }
    };
    Ok((kc, path))
}

/// A digest of what the add-on step would install: versions, sources, values and overlays.
pub fn addons_fingerprint(addons: &[ResolvedAddon]) -> String {
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

#[allow(clippy::too_many_arguments)]
async fn install_addons(
    client: &kube::Client,
    name: &str,
    env: &Environment,
    plan: &Plan,
    renderer: &Arc<Renderer>,
    opts: &UpOptions,
    progress: Arc<dyn Progress>,
    fingerprint: &str,
) -> Result<(), crate::Error> {
    if !plan.addons.is_empty() {
        let sources = opts.sources.clone();
        let mut ctx = crate::addons::install::InstallContext::new(
            name,
            env.provider.kind(),
            renderer,
            sources,
            progress,
        );
        ctx.values = crate::addons::install::template_values(env);
        ctx.wait_timeout = opts.timeout;
        let report = crate::addons::install::install(client.clone(), &plan.addons, &ctx).await?;
        tracing::info!(
            environment = name,
            seconds = report.elapsed.as_secs_f64(),
            "add-ons installed"
        );
    }
    record_fingerprint(client, name, &plan.addons, fingerprint).await
}

async fn apply_app(
    client: &kube::Client,
    name: &str,
    env: &Environment,
    manifests: &[Manifest],
    deadline: Instant,
) -> Result<Option<crate::app::RolloutStatus>, crate::Error> {
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
    let status = crate::app::wait_for(
        client,
        &env.app.name,
        &env.app.name,
        crate::app::Goal::Settled,
        deadline,
    )
    .await?;
    Ok(Some(status))
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
