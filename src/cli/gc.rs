//! `ephemera gc`: delete expired environments and those of closed PRs.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use ephemera::ExitStatus;
use ephemera::engine::gc::OpenPrs;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Delete expired environments, and those whose PR is closed")]
#[command(
    after_help = "Example:\n  ephemera gc --env environments/pr-aks.yaml --open-prs open-prs.txt --dry-run\n  \
gh pr list --json number | ephemera gc --env environments/pr-aks.yaml --open-prs -"
)]
pub struct GcArgs {
    /// Environment file whose environments to collect.
    #[arg(long, value_name = "FILE")]
    pub env: PathBuf,
    /// Open PR numbers, one per line or as `gh pr list --json number` prints them (- for stdin);
    /// environments of other PRs of this repository are deleted.
    #[arg(long, value_name = "FILE|-")]
    pub open_prs: Option<String>,
    /// Repository the open PRs belong to (default: GITHUB_REPOSITORY).
    #[arg(long, value_name = "OWNER/NAME")]
    pub repository: Option<String>,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Mark the deployments of deleted PR environments inactive and edit their PR comments: an
    /// open PR's expired preview says how to bring it back (needs GITHUB_TOKEN).
    #[arg(long)]
    pub github: bool,
}

pub fn run(args: GcArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    // A long-lived cluster is never collected: refused before anything is listed.
    ephemera::engine::release::refuse_existing(&args.env, "gc")?;
    let open_prs = match &args.open_prs {
        None => None,
        Some(source) => {
            let text = if source == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| invalid(format!("--open-prs -: {e}")))?;
                s
            } else {
                std::fs::read_to_string(source)
                    .map_err(|e| invalid(format!("--open-prs {source}: {e}")))?
            };
            let repository = args
                .repository
                .clone()
                .or_else(|| std::env::var("GITHUB_REPOSITORY").ok());
            let name = if source == "-" {
                "stdin"
            } else {
                source.as_str()
            };
            Some(OpenPrs::parse(name, &text, repository).map_err(|e| invalid(e.to_string()))?)
        }
    };
    let opts = ephemera::engine::inventory::GcOptions {
        list: super::list_options(&args.env, settings),
        open_prs,
        dry_run: args.dry_run,
        github: args.github,
        refill: Some(super::sources(settings, &args.env, false)?),
    };
    let progress = ephemera::progress::for_terminal(settings.quiet);
    let report = super::block_on(ephemera::engine::inventory::gc(&opts, progress))?;
    super::emit(settings, &report, || {
        let verb = if report.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        let mut lines: Vec<String> = report
            .collected
            .iter()
            .map(|c| format!("{verb} {}: {} ({})", c.name, c.reason, c.outcome))
            .collect();
        for o in &report.dns_orphans {
            lines.push(format!("orphaned DNS record {o}"));
        }
        for o in &report.credential_orphans {
            lines.push(format!("orphaned federated credential {o}"));
        }
        lines.push(format!(
            "{} examined, {} collected",
            report.examined,
            report.collected.len()
        ));
        if let Some(p) = &report.pool {
            lines.push(format!(
                "pool {}: {} created, {} deleted; {}",
                p.profile,
                p.created.len(),
                p.deleted.len(),
                p.capacity
            ));
            lines.extend(p.failures.iter().map(|f| format!("pool failed: {f}")));
        }
        lines.join("\n")
    })?;
    match &report.pool {
        Some(p) if !p.failures.is_empty() => Ok(ExitStatus::Failed),
        _ => Ok(ExitStatus::Ok),
    }
}

fn invalid(message: String) -> ephemera::Error {
    ephemera::engine::EngineError::Invalid(message).into()
}
