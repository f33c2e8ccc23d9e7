//! `ephemera plan`: everything `up` would create, touching no cluster and no cloud.

use std::path::PathBuf;

use clap::Args;
use ephemera::ExitStatus;

use super::printer::Printer;
use super::{EnvInputArgs, OutputFormat, Settings};

#[derive(Debug, Args)]
#[command(about = "Show everything `up` would create, without touching any cluster or cloud")]
#[command(
    after_help = "Example:\n  ephemera plan --env environments/pr-aks.yaml --pr 42 --image ghcr.io/acme/cats:sha-1234\n\n\
The output is the same on every run: plan never reads the clock. Times are relative to --now\n\
(or SOURCE_DATE_EPOCH), else to a placeholder marked as such."
)]
pub struct PlanArgs {
    #[command(flatten)]
    pub input: EnvInputArgs,
    /// Write one file per object into DIR instead of YAML on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The time to plan at (RFC 3339), e.g. 2026-11-28T10:00:00Z.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

pub fn run(args: PlanArgs, settings: &Settings, printer: &Printer) -> anyhow::Result<ExitStatus> {
    if let Some(dir) = &args.out {
        out_dir(dir)?;
    }
    let request = args.input.request(args.now, settings);
    let plan = ephemera::plan::run(&request).map_err(ephemera::Error::from)?;
    for w in &plan.warnings {
        printer.warn(w);
    }
    let text = match (&args.out, settings.output) {
        (Some(dir), format) => {
            let written = plan.write_files(dir).map_err(|e| {
                usage(
                    "--out",
                    format!("{}: {}", dir.display(), ephemera::error::chain(&e)),
                )
            })?;
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

/// `--out DIR`: a directory, or a path one can be made at; checked before planning, so a wrong
/// path names the flag instead of failing halfway through the writing.
fn out_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(usage(
            "--out",
            format!("{} exists and is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(usage("--out", format!("{}: {e}", dir.display()))),
    }
}

/// A one-line usage error (exit 2) naming `flag`.
fn usage(flag: &str, message: String) -> anyhow::Error {
    anyhow::Error::from(ephemera::Error::from(ephemera::names::NameError::Invalid {
        what: flag.into(),
        message: ephemera::config::cut(&message, 300),
    }))
}
