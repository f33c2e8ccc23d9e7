//! `ephemera doctor`: what this machine offers each provider, and how to fix what is missing.

use std::path::PathBuf;

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Check this machine for what a provider needs (tools, credentials, binaries)")]
#[command(after_help = "Example:\n  ephemera doctor --env environments/pr-kind.yaml")]
pub struct DoctorArgs {
    /// Environment file whose provider must be ready (exit 1 when it is not).
    #[arg(long, value_name = "FILE")]
    pub env: Option<PathBuf>,
}

pub fn run(args: DoctorArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let env = args
        .env
        .as_deref()
        .map(ephemera::config::load)
        .transpose()
        .map_err(ephemera::Error::from)?;
    let report = ephemera::doctor::doctor(env.as_ref(), &ephemera::doctor::SystemProbe);
    super::emit(settings, &report, || report.to_string())?;
    Ok(report.exit_status())
}
