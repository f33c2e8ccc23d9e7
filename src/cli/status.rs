//! `ephemera status`: Show an environment: its record, add-ons, rollout and URL

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Show an environment: its record, add-ons, rollout and URL")]
#[command(
    after_help = "Example:\n  ephemera status --env environments/pr-aks.yaml --pr 42 --output json"
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: super::TargetArgs,
}

pub fn run(args: StatusArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented("status", &args.target)
}
