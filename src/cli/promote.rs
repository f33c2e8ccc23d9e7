//! `ephemera promote`: Promote a canary one step, or fully

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Promote a canary one step, or fully")]
#[command(
    after_help = "Example:\n  ephemera promote --env environments/pr-aks.yaml --pr 42 --full"
)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// Promote past the current pause only (the default).
    #[arg(long, conflicts_with = "full")]
    pub step: bool,
    /// Skip the remaining steps and pauses.
    #[arg(long)]
    pub full: bool,
}

pub fn run(args: PromoteArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented("promote", &args.target)
}
