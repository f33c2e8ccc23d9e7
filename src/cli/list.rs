//! `ephemera list`: the environments made from an environment file's provider.

use std::path::PathBuf;

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "List the environments made from an environment file")]
#[command(after_help = "Example:\n  ephemera list --env environments/pr-aks.yaml --output json")]
pub struct ListArgs {
    /// Environment file whose provider and profile to list.
    #[arg(long, value_name = "FILE")]
    pub env: PathBuf,
    #[command(flatten)]
    pub bounds: super::BoundArgs,
}

pub fn run(args: ListArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let bounds = args.bounds.bounds()?;
    let opts = super::list_options(&args.env, settings);
    let rows = super::block_on_within(
        &bounds,
        "listing the environments",
        ephemera::engine::inventory::list(&opts),
    )?;
    super::emit(settings, &rows, || {
        let mut lines = vec!["NAME\tPROVIDER\tPR\tSTATE\tEXPIRES\tURL".to_string()];
        for r in &rows {
            lines.push(format!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                r.record.name,
                r.record.provider,
                r.record
                    .pr
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.state,
                r.record.expires_at,
                r.record.url.as_deref().unwrap_or("-"),
            ));
        }
        lines.join("\n")
    })?;
    Ok(ExitStatus::Ok)
}
