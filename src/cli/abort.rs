//! `ephemera abort`: Abort a canary: traffic back to the stable version

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Abort a canary: traffic back to the stable version")]
#[command(after_help = "Example:\n  ephemera abort --env environments/pr-aks.yaml --pr 42")]
pub struct AbortArgs {
    #[command(flatten)]
    pub target: super::TargetArgs,
}

pub fn run(args: AbortArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented("abort", &args.target)
}
