//! `ephemera pool ensure`: keep an environment file's warm pool at its size.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Manage the warm pool of an environment file (pool: in the file)")]
pub struct PoolArgs {
    #[command(subcommand)]
    pub command: PoolCommand,
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Make missing members up to pool.size; replace members older than pool.maxAge or made
    /// with other provider settings or add-ons; delete extras. Claimed members are never touched.
    #[command(
        after_help = "Example:\n  ephemera pool ensure --env environments/pr-aks.yaml --output json"
    )]
    Ensure(EnsureArgs),
}

#[derive(Debug, Args)]
pub struct EnsureArgs {
    /// Environment file with a pool: section.
    #[arg(long, value_name = "FILE")]
    pub env: PathBuf,
    /// Per member: the longest to wait without progress. Exit 3 when it runs out.
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub timeout: String,
    /// Per member: the longest its making runs.
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    pub deadline: String,
    /// Refuse any add-on source whose sha256 neither its definition nor the lock file pins.
    #[arg(long, env = ephemera::addons::lock::LOCKED_ENV, value_parser = clap::builder::BoolishValueParser::new())]
    pub locked: bool,
}

pub fn run(args: PoolArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let PoolCommand::Ensure(args) = args.command;
    let opts = ephemera::engine::pool::PoolOptions {
        env_file: args.env.clone(),
        templates: settings.templates.clone(),
        sources: super::sources(settings, &args.env, args.locked)?,
        timeout: super::up::duration("--timeout", &args.timeout)?,
        deadline: super::up::duration("--deadline", &args.deadline)?,
    };
    let progress = ephemera::progress::for_terminal(settings.quiet);
    let report = super::block_on(ephemera::engine::pool::ensure(&opts, progress))?;
    super::emit(settings, &report, || {
        let mut lines = vec![format!(
            "pool {} (size {}): {}",
            report.profile, report.size, report.capacity
        )];
        for m in &report.members {
            let alias = m
                .alias
                .as_deref()
                .map(|a| format!(" for {a}"))
                .unwrap_or_default();
            lines.push(format!("  {}\t{}{alias}", m.name, m.state));
        }
        for c in &report.created {
            lines.push(format!("created {c}"));
        }
        for d in &report.deleted {
            lines.push(format!("deleted {} ({})", d.name, d.reason));
        }
        for f in &report.failures {
            lines.push(format!("failed: {f}"));
        }
        lines.join("\n")
    })?;
    Ok(if report.failures.is_empty() {
        ExitStatus::Ok
    } else {
        ExitStatus::Failed
    })
}
