//! `ephemera gc`: Delete expired environments, and those whose PR is closed

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(about = "Delete expired environments, and those whose PR is closed")]
#[command(
    after_help = "Example:\n  ephemera gc --env environments/pr-aks.yaml --open-prs open-prs.txt --dry-run"
)]
pub struct GcArgs {
    /// Environment file whose environments to collect.
    #[arg(long, value_name = "FILE")]
    pub env: PathBuf,
    /// File listing open PR numbers, one per line (- for stdin); environments of other PRs go.
    #[arg(long, value_name = "FILE|-")]
    pub open_prs: Option<String>,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: GcArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented_env("gc", Some(&args.env))
}
