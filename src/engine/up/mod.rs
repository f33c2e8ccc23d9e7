//! `up`: plan, check what can be checked before anything is created, then execute the plan
//! with the steps of [`steps::STEPS`] (cluster → kubeconfig → identity → add-ons → DNS →
//! certificate → app → report), each an ensure, and announce the outcome. The steps read the
//! plan's environment, templates and record, so `up` creates exactly what `plan` shows.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::lease::Operation;
use super::runner::{Runner, Start};
use super::{EngineError, StepReport};
use crate::progress::Progress;
use crate::providers::Provider;
use crate::providers::any::{AnyProvider, ProviderOptions};

mod announce;
pub mod steps;

use announce::Announcer;
use steps::{Context, Converged};

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
    /// `--timeout`: the longest `up` waits without progress (add-ons ready, rollout
    /// settled, URL answering, a cloud that does not answer).
    pub timeout: Duration,
    /// `--deadline`: the longest the whole of `up` runs.
    pub deadline: Duration,
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
    /// This run claimed a warm-pool member instead of creating a cluster.
    pub claimed: bool,
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
    /// Set when the new image does not serve 100% yet: with `app.canary.preview: steps`, the
    /// canary's pause, in words (e.g. `paused at step 1/5 (pause (until promoted)) with 20% on
    /// the new image`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_paused: Option<String>,
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
    let bounds = crate::deadline::Bounds::new(opts.timeout, opts.deadline);
    // Everything that can be wrong with the input is found here, before anything is created.
    let mut request = opts.request.clone();
    // `up` stamps the real time; `plan` uses `--now` or a placeholder to stay reproducible.
    request.now = Some(Timestamp::now().to_string());
    // `up` executes this plan: the environment, the templates and the record are the plan's.
    let plan = crate::plan::run(&request)?;
    crate::addons::sources::check(&plan.addons, &opts.sources)?;
    let (env, record) = (&plan.env, &plan.record);
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    let github = crate::github::Settings::from_env(env.github.as_ref(), opts.github)
        .map_err(EngineError::from)?;
    if let Some(sha) = &opts.sha {
        crate::github::check_sha("--sha", sha).map_err(EngineError::from)?;
    }
    let provider = AnyProvider::from_env(
        env,
        plan.renderer.clone(),
        &ProviderOptions {
            keep_on_failure: opts.keep_on_failure,
        },
    )?;
    let before = "before the first step";
    // With a warm pool, a member already bound to this PR or an idle one claimed now stands in
    // for the PR's own cluster; neither adds an environment, so the limit is not checked.
    let target = bounds
        .run(before, super::claim::claim(&provider, &plan))
        .await
        .map_err(EngineError::from)??;
    let mut claimed_now = false;
    let (record, pooled) = match &target {
        super::claim::Target::Own => (record, false),
        super::claim::Target::Member { record, claimed } => {
            claimed_now = *claimed;
            (&**record, true)
        }
    };
    let ctx = Context {
        opts,
        env,
        plan: &plan,
        renderer: &plan.renderer,
        provider: &provider,
        record,
        name: &record.name,
        progress,
        bounds: &bounds,
    };
    if !pooled {
        bounds
            .run(before, check_limit(&ctx))
            .await
            .map_err(EngineError::from)??;
    }
    // A DNS record in the way that is not ours stops up before anything is created.
    if plan.summary.host_pending.is_none()
        && let Some(d) = crate::dns::azure::AzureDns::from_env(
            env,
            Arc::new(crate::providers::probe::SystemProbe),
        )?
    {
        let check = d.check_host(&plan.summary.host, &record.name);
        bounds
            .run(before, check)
            .await
            .map_err(EngineError::from)??;
    }

    let start = Announcer::start(&ctx, github);
    let announcer = bounds
        .run(before, start)
        .await
        .map_err(EngineError::from)??;
    let result = create_or_converge(&ctx).await.map(|mut r| {
        r.claimed = claimed_now;
        r
    });
    // Telling GitHub how it went is bounded like any cleanup: a fresh --timeout.
    let cleanup = bounds.for_cleanup();
    match result {
        Ok(report) => {
            let succeeded = announcer.succeeded(&ctx, report.clone());
            Ok(cleanup
                .run("reporting to GitHub", succeeded)
                .await
                .unwrap_or(report))
        }
        Err(e) => {
            let ended = announcer.ended(&ctx, &e);
            if let Err(t) = cleanup.run("reporting how up ended", ended).await {
                tracing::warn!("{t}");
            }
            Err(e)
        }
    }
}

/// Runs the steps under one runner, which deletes a cluster this run created when a later step
/// fails, unless `keep_on_failure`.
async fn create_or_converge(ctx: &Context<'_>) -> Result<UpReport, crate::Error> {
    let mut run = Runner::new(Start {
        provider: ctx.provider,
        name: ctx.name,
        operation: Operation::Up,
        order: &steps::STEPS,
        progress: ctx.progress.clone(),
        keep_on_failure: ctx.opts.keep_on_failure,
        bounds: ctx.bounds,
    });
    // Down always wins: an up that starts while a down (or a newer up) holds the environment
    // gives way before it repairs or recreates anything.
    run.preflight().await?;
    let result = steps::run(ctx, &mut run).await;
    let converged = run.finish(result, || rollback(ctx)).await?;
    Ok(report(ctx, converged, &run))
}

/// Deletes what this run created: the federated credential, the cluster, and the kubeconfig
/// context the kubeconfig step may have written for it. Failures are logged.
pub(crate) async fn rollback(ctx: &Context<'_>) {
    let name = ctx.name;
    let credential = super::teardown::delete_federated_credential(ctx.env, ctx.provider, name);
    if let Err(cleanup) = credential.await {
        tracing::error!(
            "deleting the federated credential of {name} failed: {}",
            super::chain(&cleanup)
        );
    }
    match ctx.provider.delete(name).await {
        Ok(_) => super::teardown::forget_kubeconfig(name, ctx.opts.kubeconfig.as_deref()),
        Err(cleanup) => tracing::error!(
            "deleting the half-made environment {name} failed: {}",
            super::chain(&cleanup)
        ),
    }
}

/// The report of a run whose steps all went through.
fn report(ctx: &Context<'_>, done: Converged, run: &Runner<'_>) -> UpReport {
    let Converged {
        cluster,
        kubeconfig,
        record,
        rollout,
    } = done;
    let plan = ctx.plan;
    UpReport {
        name: ctx.name.to_string(),
        provider: ctx.provider.kind().to_string(),
        pr: record.pr,
        image: plan.summary.image.reference.clone(),
        created: cluster.created,
        claimed: false,
        url: record.url.clone().or_else(|| plan.summary.url.clone()),
        simulated: !cluster.serves_traffic,
        kubeconfig,
        expires_at: record.expires_at,
        resource_id: cluster.resource_id,
        portal_url: cluster.portal_url,
        addons: plan
            .addons
            .iter()
            .map(|a| AddonVersion {
                name: a.name.clone(),
                version: a.version.clone(),
            })
            .collect(),
        canary_paused: rollout
            .as_ref()
            .and_then(crate::app::RolloutStatus::paused_canary),
        rollout,
        steps: run.reports(),
        warnings: run.warnings.clone(),
    }
}

/// Refuses a new environment when `limits.maxEnvironments` of its profile exist already.
async fn check_limit(ctx: &Context<'_>) -> Result<(), crate::Error> {
    let (env, name) = (ctx.env, ctx.name);
    let Some(limit) = env.limits.max_environments else {
        return Ok(());
    };
    let existing: Vec<String> = ctx
        .provider
        .list()
        .await?
        .into_iter()
        .filter(|r| r.env_file.as_deref() == Some(env.metadata.name.as_str()) && r.name != name)
        .map(|r| r.name)
        .collect();
    if existing.len() >= limit as usize {
        return Err(EngineError::LimitReached {
            file: ctx.opts.request.env_file.display().to_string(),
            profile: env.metadata.name.clone(),
            limit,
            count: existing.len(),
            names: existing.join(", "),
        }
        .into());
    }
    Ok(())
}
