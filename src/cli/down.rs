//! `ephemera down`: Delete a PR's environment and everything ephemera created for it

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Delete a PR's environment and everything ephemera created for it")]
#[command(after_help = "Example:\n  ephemera down --env environments/pr-aks.yaml --pr 42")]
pub struct DownArgs {
    #[command(flatten)]
    pub target: super::TargetArgs,
}

pub fn run(args: DownArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented("down", &args.target)
}
