//! Telling people about an `up`: the GitHub Deployment and the sticky PR comment, Slack, and the
//! GitHub Actions outputs and job summary. Their failures are warnings, never a failed or
//! rolled-back `up`.

use std::time::Instant;

use super::UpReport;
use super::steps::Context;
use crate::engine::{chain, ci};
use crate::github::{CommentData, CommentState, Reporter, Settings};
use crate::names::EnvName;
use crate::providers::Provider;
use crate::slack::{Event, Message, Outcome};

/// The reporting of one `up`, from its start to its outcome.
pub(crate) struct Announcer {
    env_name: EnvName,
    /// GitHub reporting, which needs a PR.
    github: Option<(Reporter, u64)>,
    warnings: Vec<String>,
    started: Instant,
}

impl Announcer {
    /// Marks the GitHub Deployment as started, when `github` reporting is on and the environment
    /// has a PR.
    ///
    /// # Errors
    /// An environment name that is not valid.
    pub(crate) async fn start(
        ctx: &Context<'_>,
        github: Option<Settings>,
    ) -> Result<Self, crate::Error> {
        let env_name = EnvName::from_name(ctx.name)?;
        let mut warnings: Vec<String> = Vec::new();
        let github = match (github, ctx.record.pr) {
            (Some(settings), Some(pr)) => {
                let mut r = Reporter::new(settings);
                let sha = ctx.opts.sha.as_deref();
                let started = r.started(&env_name, pr, sha).await;
                warnings.extend(started.iter().map(ToString::to_string));
                Some((r, pr))
            }
            (Some(_), None) => {
                warnings.push("GitHub reporting skipped: the environment has no PR".into());
                None
            }
            (None, _) => None,
        };
        Ok(Announcer {
            env_name,
            github,
            warnings,
            started: Instant::now(),
        })
    }

    /// Reports a successful `up` to GitHub, Slack and the Actions outputs; their warnings join
    /// the report's.
    pub(crate) async fn succeeded(mut self, ctx: &Context<'_>, mut report: UpReport) -> UpReport {
        if let Some((r, _)) = self.github.as_mut() {
            let data = comment(ctx, &self.env_name, CommentState::Up, Some(&report));
            let url = report.url.clone().unwrap_or_default();
            let done = r.succeeded(&url, &data).await;
            self.warnings.extend(done.iter().map(ToString::to_string));
        }
        let mut msg = self.slack(ctx, Outcome::Success, format!("{} is up", report.name));
        msg.url.clone_from(&report.url);
        msg.result = Some(match (&report.canary_paused, &report.rollout) {
            (Some(paused), _) => format!("canary {paused}"),
            (None, Some(_)) => "the new image serves 100%".into(),
            (None, None) => "converged".into(),
        });
        msg.fields.push((
            "Expires".into(),
            report.expires_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        ));
        let slack = ctx.env.notifications.slack.as_ref();
        self.warnings
            .extend(crate::slack::notify(slack, &msg).await);
        self.warnings.extend(write_ci_outputs(&report));
        for w in &self.warnings {
            tracing::warn!("{w}");
        }
        report.warnings.extend(self.warnings);
        report
    }

    /// Reports an `up` that ended with `e`: a failure, or (exit 4) a run that gave way to a newer
    /// run or a teardown, which is no failure.
    pub(crate) async fn ended(self, ctx: &Context<'_>, e: &crate::Error) {
        if e.exit_status() == crate::ExitStatus::LeaseHeld {
            self.superseded(ctx, e).await;
        } else {
            self.failed(ctx, e).await;
        }
    }

    /// Reports an `up` that gave way: its GitHub Deployment becomes `inactive` (the comment
    /// stays the winner's) and Slack hears it as superseded; their warnings are logged.
    async fn superseded(mut self, ctx: &Context<'_>, e: &crate::Error) {
        let message = chain(e);
        if let Some((r, _)) = self.github.as_mut() {
            for w in r.superseded(&message).await {
                tracing::warn!("{w}");
            }
        }
        let mut msg = self.slack(
            ctx,
            Outcome::Superseded,
            format!("up of {} gave way", ctx.name),
        );
        msg.result = Some(message);
        if let Some(w) = crate::slack::notify(ctx.env.notifications.slack.as_ref(), &msg).await {
            tracing::warn!("{w}");
        }
    }

    /// Reports a failed `up` to GitHub and Slack; their warnings are logged.
    async fn failed(mut self, ctx: &Context<'_>, e: &crate::Error) {
        let message = chain(e);
        if let Some((r, _)) = self.github.as_mut() {
            let mut data = comment(ctx, &self.env_name, CommentState::Failed, None);
            data.message = Some(message.clone());
            for w in r.failed(&message, &data).await {
                tracing::warn!("{w}");
            }
        }
        let mut msg = self.slack(ctx, Outcome::Failure, format!("up of {} failed", ctx.name));
        msg.error = Some(message);
        if let Some(w) = crate::slack::notify(ctx.env.notifications.slack.as_ref(), &msg).await {
            tracing::warn!("{w}");
        }
    }

    /// The Slack message of this run, with what every outcome shows.
    fn slack(&self, ctx: &Context<'_>, outcome: Outcome, title: String) -> Message {
        let mut m = Message::for_environment(Event::Up, outcome, title, ctx.name, ctx.record.pr);
        m.repository.clone_from(&ctx.record.repository);
        m.url.clone_from(&ctx.plan.summary.url);
        m.image = Some(ctx.plan.summary.image.reference.clone());
        m.commit.clone_from(&ctx.opts.sha);
        m.duration = Some(self.started.elapsed());
        m.with_ci()
    }
}

/// The PR comment for `state`, from the plan and, after a successful run, its `report`.
fn comment(
    ctx: &Context<'_>,
    env_name: &EnvName,
    state: CommentState,
    report: Option<&UpReport>,
) -> CommentData {
    let (plan, record) = (ctx.plan, ctx.record);
    let mut c = CommentData::new(env_name.clone(), record.pr.unwrap_or_default(), state);
    c.provider = Some(ctx.provider.kind().to_string());
    c.addons = plan
        .addons
        .iter()
        .map(|a| (a.name.clone(), a.version.clone()))
        .collect();
    c.expires_at = Some(report.map_or(record.expires_at, |r| r.expires_at));
    c.env_file = Some(ctx.opts.request.env_file.display().to_string());
    c.image = Some(plan.summary.image.reference.clone());
    c.branch = plan.summary.untrusted.branch.clone();
    c.sha = ctx.opts.sha.clone();
    c.url = report
        .and_then(|r| r.url.clone())
        .or_else(|| plan.summary.url.clone());
    // Only a canary that stopped short of 100% has a step to show.
    c.canary_step = report.and_then(|r| r.canary_paused.clone());
    c
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
    if let Err(e) = ci::write_outputs(&outputs) {
        warnings.push(format!("writing GITHUB_OUTPUT failed: {e}"));
    }
    let cell = ci::md_cell;
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
    if let Err(e) = ci::write_summary(&summary) {
        warnings.push(format!("writing GITHUB_STEP_SUMMARY failed: {e}"));
    }
    warnings
}
