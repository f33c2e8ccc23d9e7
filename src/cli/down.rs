//! `ephemera down`: delete an environment; already gone is success.

use clap::Args;
use ephemera::ExitStatus;
use ephemera::engine::ci::PrEnd;

use super::{Settings, TargetArgs};

#[derive(Debug, Args)]
#[command(about = "Delete a PR's environment and everything ephemera created for it")]
#[command(after_help = "Example:\n  ephemera down --env environments/pr-aks.yaml --pr 42")]
pub struct DownArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Mark the PR's GitHub Deployments inactive and say so in the PR comment (needs GITHUB_TOKEN).
    #[arg(long)]
    pub github: bool,
    /// How the PR ended, for the Slack message (default: from the GitHub Actions event).
    #[arg(long, value_enum, value_name = "STATE")]
    pub pr_state: Option<PrState>,
    /// The longest to wait without progress (a cloud that does not answer, a cluster
    /// being deleted). Exit 3 when it runs out.
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub timeout: String,
    /// The longest the whole command runs. Exit 3 when it runs out.
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    pub deadline: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PrState {
    Merged,
    Closed,
}

pub fn run(args: DownArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    // A long-lived cluster is never deleted: refused before it is reached.
    ephemera::engine::release::refuse_existing(&args.target.env, "down")?;
    let timeout = super::up::duration("--timeout", &args.timeout)?;
    let deadline = super::up::duration("--deadline", &args.deadline)?;
    let opts = ephemera::engine::down::DownOptions {
        env_file: args.target.env,
        pr: args.target.pr,
        name: args.target.name,
        templates: settings.templates.clone(),
        kubeconfig: settings.kubeconfig.clone(),
        github: args.github,
        pr_end: match args.pr_state {
            Some(PrState::Merged) => Some(PrEnd::Merged),
            Some(PrState::Closed) => Some(PrEnd::Closed),
            None => ephemera::engine::ci::closed_pr_from_event(),
        },
        timeout,
        deadline,
    };
    let progress = ephemera::progress::for_terminal(settings.quiet);
    let report = super::block_on(ephemera::engine::down::down(&opts, progress))?;
    super::emit(settings, &report, || {
        format!("{}: {}", report.name, report.outcome)
    })?;
    Ok(ExitStatus::Ok)
}
