//! `ephemera plan`: everything `up` would create, touching no cluster and no cloud.

use std::path::PathBuf;

use clap::Args;
use ephemera::ExitStatus;

use super::printer::Printer;
use super::{OutputFormat, PrDataArgs, Settings, TargetArgs};

#[derive(Debug, Args)]
#[command(about = "Show everything `up` would create, without touching any cluster or cloud")]
#[command(
    after_help = "Example:\n  ephemera plan --env environments/pr-aks.yaml --pr 42 --image ghcr.io/acme/cats:sha-1234\n\n\
The output is the same on every run: plan never reads the clock. Times are relative to --now\n\
(or SOURCE_DATE_EPOCH), else to a placeholder marked as such."
)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The PR's image (default: app.image).
    #[arg(long, value_name = "REF", allow_hyphen_values = true)]
    pub image: Option<String>,
    /// Lifetime instead of the file's ttl, e.g. 4h, 2d.
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Write one file per object into DIR instead of YAML on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The time to plan at (RFC 3339), e.g. 2026-11-28T10:00:00Z.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    #[command(flatten)]
    pub pr_data: PrDataArgs,
}

pub fn run(args: PlanArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let request = ephemera::plan::Request {
        env_file: args.target.env,
        pr: args.target.pr,
        name: args.target.name,
        image: args.image,
        branch: args.pr_data.branch,
        title: args.pr_data.title,
        repository: args.pr_data.repository,
        now: args.now,
        ttl: args.ttl,
        templates: settings.templates.clone(),
    };
    let plan = ephemera::plan::run(&request)?;
    for w in &plan.warnings {
        printer.warn(w);
    }
    let text = match (&args.out, settings.output) {
        (Some(dir), format) => {
            let written = plan.write_files(dir).map_err(ephemera::Error::from)?;
            let paths: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            match format {
                OutputFormat::Json => serde_json::to_string_pretty(&paths)?,
                OutputFormat::Text => paths.join("\n"),
            }
        }
        (None, OutputFormat::Json) => serde_json::to_string_pretty(&plan.to_json())?,
        (None, OutputFormat::Text) => plan.to_yaml().map_err(ephemera::Error::from)?,
    };
    printer.result(&text)?;
    Ok(ExitStatus::Ok)
}
