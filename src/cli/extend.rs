//! `ephemera extend`: Push an environment's expiry later

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Push an environment's expiry later")]
#[command(
    after_help = "Example:\n  ephemera extend --env environments/adhoc-aks.yaml --name alice-try --by 2h"
)]
pub struct ExtendArgs {
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// How much longer, e.g. 2h, 1d.
    #[arg(long, value_name = "DURATION")]
    pub by: String,
}

pub fn run(args: ExtendArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented("extend", &args.target)
}
