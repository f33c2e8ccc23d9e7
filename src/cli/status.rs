//! `ephemera status`: one environment's record, lease, add-ons and rollout.

use clap::Args;
use ephemera::ExitStatus;

use super::{Settings, TargetArgs};

#[derive(Debug, Args)]
#[command(about = "Show an environment: its record, add-ons, rollout and URL")]
#[command(
    after_help = "Example:\n  ephemera status --env environments/pr-aks.yaml --pr 42 --output json"
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub bounds: super::BoundArgs,
}

pub fn run(args: StatusArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let opts = super::list_options(&args.target.env, settings);
    let bounds = args.bounds.bounds()?;
    let report = super::block_on_within(
        &bounds,
        "reading the environment",
        ephemera::engine::inventory::status(
            &opts,
            args.target.pr.as_deref(),
            args.target.name.as_deref(),
        ),
    )?;
    super::emit(settings, &report, || {
        let r = &report.record;
        let mut lines = vec![
            format!("environment: {} ({})", r.name, report.state),
            format!("provider: {}", r.provider),
            format!("expires: {}", r.expires_at),
        ];
        if let Some(u) = &r.url {
            lines.push(format!("url: {u}"));
        }
        if !report.addons.is_empty() {
            lines.push(format!("add-ons: {}", report.addons.join(", ")));
        }
        if let Some(l) = &report.lease {
            lines.push(format!(
                "lease: held by {} ({} since {}, lapses at {} unless renewed)",
                l.holder,
                l.operation,
                l.started_at,
                l.expires_at()
            ));
        }
        if let Some(rollout) = &report.rollout {
            lines.push(rollout.to_string());
        }
        for n in &report.notes {
            lines.push(format!("note: {n}"));
        }
        lines.join("\n")
    })?;
    Ok(ExitStatus::Ok)
}
