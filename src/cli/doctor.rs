//! `ephemera doctor`: Check this machine for what a provider needs (tools, credentials, binaries)

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(about = "Check this machine for what a provider needs (tools, credentials, binaries)")]
#[command(after_help = "Example:\n  ephemera doctor --env environments/pr-kind.yaml")]
pub struct DoctorArgs {
    /// Environment file whose provider to check.
    #[arg(long, value_name = "FILE")]
    pub env: Option<PathBuf>,
}

pub fn run(args: DoctorArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented_env("doctor", args.env.as_deref())
}
