//! `down`: delete everything the environment owns. Idempotent, safe while an `up` runs (down
//! takes the lease from it), and successful when nothing is left.
//!
//! What `down` does, in order (`teardown`, which `gc` runs too):
//! 1. the environment's DNS record, when ephemera manages the zone;
//! 2. the lease, taken from whoever holds it, so a running `up` stops;
//! 3. step `cluster`: the cluster and everything the provider made for it;
//! 4. the kubeconfig context and file;
//! 5. the federated credential on the DNS-01 identity (after the cluster, so an `up` that raced
//!    this `down` cannot put it back behind us);
//! 6. with `--github`, the PR's deployments and comment ([`down`] only).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::lease::Operation;
use super::runner::{Runner, Start};
use super::teardown;
use super::{EngineError, StepReport};
use crate::config::Environment;
use crate::deadline::Bounds;
use crate::progress::Progress;
use crate::providers::any::{AnyProvider, ProviderOptions};
use crate::providers::{Deleted, Provider};
use crate::slack::{Event, Message, Outcome};
use crate::templates::Renderer;

/// The steps of `down` that are reported, in order.
pub const STEPS: [&str; 1] = ["cluster"];

/// What `down` is asked to do.
#[derive(Clone, Debug)]
pub struct DownOptions {
    pub env_file: PathBuf,
    pub pr: Option<String>,
    pub name: Option<String>,
    pub templates: Option<PathBuf>,
    /// `--kubeconfig PATH`: remove the environment's context from this file too.
    pub kubeconfig: Option<PathBuf>,
    /// `--github`: mark the PR's deployments inactive and update the PR comment.
    pub github: bool,
    /// How the PR ended, for the Slack message (`--pr-state`, else the Actions event).
    pub pr_end: Option<super::ci::PrEnd>,
    /// `--timeout`: the longest `down` waits without progress.
    pub timeout: std::time::Duration,
    /// `--deadline`: the longest the whole of `down` runs.
    pub deadline: std::time::Duration,
}

/// What `down` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownReport {
    pub name: String,
    pub provider: String,
    /// `deleted`, or `already-gone`.
    pub outcome: &'static str,
    /// GitHub reporting problems; they never fail `down`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// A run of `up` this `down` took the lease from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded: Option<String>,
    pub steps: Vec<StepReport>,
}

/// The environment to tear down.
pub(crate) struct Target<'a> {
    pub env: &'a Environment,
    pub provider: &'a AnyProvider,
    pub name: &'a str,
    pub pr: Option<u64>,
    /// `--kubeconfig PATH`, whose context for the environment goes too.
    pub kubeconfig: Option<&'a Path>,
    pub progress: Arc<dyn Progress>,
    /// `--timeout` and `--deadline`.
    pub bounds: &'a Bounds,
}

/// Deletes everything `target` owns, in the order of the module comment.
///
/// # Errors
/// Provider and ARM errors; the environment may be partly deleted, and a rerun continues.
pub(crate) async fn teardown(target: &Target<'_>) -> Result<DownReport, crate::Error> {
    let (name, bounds) = (target.name, target.bounds);
    let dns = teardown::delete_dns_record(target.env, name, target.pr);
    let before = "before the first step, deleting the DNS record";
    bounds.run(before, dns).await.map_err(EngineError::from)??;
    let mut run = Runner::new(Start {
        provider: target.provider,
        name,
        operation: Operation::Down,
        order: &STEPS,
        progress: target.progress.clone(),
        keep_on_failure: false,
        bounds,
    });
    let superseded = run.take_over().await;
    let deleted = run.step(STEPS[0], target.provider.delete(name)).await?;
    teardown::forget_kubeconfig(name, target.kubeconfig);
    let credential = teardown::delete_federated_credential(target.env, target.provider, name);
    let after = "after step cluster, deleting the federated credential";
    bounds
        .run(after, credential)
        .await
        .map_err(EngineError::from)??;
    Ok(DownReport {
        name: name.to_string(),
        provider: target.provider.kind().to_string(),
        outcome: match deleted {
            Deleted::Deleted => "deleted",
            Deleted::AlreadyGone => "already-gone",
        },
        superseded,
        warnings: Vec::new(),
        steps: run.reports(),
    })
}

/// `down` from an environment file and a PR or name.
///
/// # Errors
/// Bad input (exit 2) before anything is deleted; then as `teardown`.
pub async fn down(
    opts: &DownOptions,
    progress: Arc<dyn Progress>,
) -> Result<DownReport, crate::Error> {
    let env = crate::config::load(&opts.env_file)?;
    let (name, pr) = crate::plan::target(&env, opts.pr.as_deref(), opts.name.as_deref())?;
    let github = crate::github::Settings::from_env(env.github.as_ref(), opts.github)
        .map_err(super::EngineError::from)?;
    let renderer = Arc::new(Renderer::new(opts.templates.as_deref())?);
    let provider = AnyProvider::from_env(&env, renderer, &ProviderOptions::default())?;
    let bounds = Bounds::new(opts.timeout, opts.deadline);
    // With a warm pool, the PR's environment may be a member claimed for it.
    let resolve = super::claim::resolve(&provider, &env, name.as_str());
    let resolved = bounds
        .run("before the first step", resolve)
        .await
        .map_err(super::EngineError::from)??;
    let name = crate::names::EnvName::from_name(&resolved)?;
    let started = std::time::Instant::now();
    let result = teardown(&Target {
        env: &env,
        provider: &provider,
        name: name.as_str(),
        pr,
        kubeconfig: opts.kubeconfig.as_deref(),
        progress,
        bounds: &bounds,
    })
    .await;
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            let mut msg = slack_message(name.as_str(), pr, Outcome::Failure, opts.pr_end);
            msg.title = format!("down of {name} failed");
            msg.error = Some(super::chain(&e));
            msg.duration = Some(started.elapsed());
            if let Some(w) = crate::slack::notify(env.notifications.slack.as_ref(), &msg).await {
                tracing::warn!("{w}");
            }
            return Err(e);
        }
    };
    if let (Some(settings), Some(pr)) = (github, pr) {
        let mut reporter = crate::github::Reporter::new(settings);
        let torn_down = reporter.torn_down(&name, pr);
        let warnings = match bounds
            .for_cleanup()
            .run("reporting to GitHub", torn_down)
            .await
        {
            Ok(w) => w.iter().map(ToString::to_string).collect(),
            Err(t) => vec![t.to_string()],
        };
        for w in warnings {
            tracing::warn!("{w}");
            report.warnings.push(w);
        }
    }
    let mut msg = slack_message(name.as_str(), pr, Outcome::Success, opts.pr_end);
    if report.outcome == "already-gone" {
        msg.title = format!("{name} was already gone");
    }
    msg.duration = Some(started.elapsed());
    if let Some(w) = crate::slack::notify(env.notifications.slack.as_ref(), &msg).await {
        tracing::warn!("{w}");
        report.warnings.push(w);
    }
    Ok(report)
}

/// The Slack message of a `down` of `name`: the environment is gone, and why when known.
fn slack_message(
    name: &str,
    pr: Option<u64>,
    outcome: Outcome,
    pr_end: Option<super::ci::PrEnd>,
) -> Message {
    let mut msg =
        Message::for_environment(Event::Down, outcome, format!("{name} is gone"), name, pr);
    msg.result = match (pr, pr_end) {
        (Some(n), Some(end)) => Some(format!("PR #{n} was {}", end.as_str())),
        _ => None,
    };
    msg.with_ci()
}
