//! `ephemera list`: List the environments made from an environment file

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(about = "List the environments made from an environment file")]
#[command(after_help = "Example:\n  ephemera list --env environments/pr-aks.yaml --output json")]
pub struct ListArgs {
    /// Environment file whose provider and profile to list.
    #[arg(long, value_name = "FILE")]
    pub env: PathBuf,
}

pub fn run(args: ListArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented_env("list", Some(&args.env))
}
