//! `ephemera lock`: write the sha256 of every add-on source an environment file needs.

use std::path::PathBuf;

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Lock the sha256 of every add-on source an environment file needs (FILE.lock)")]
#[command(
    after_help = "Example:\n  ephemera lock --env environments/pr-kind.yaml    # writes environments/pr-kind.lock\n\n\
Sources their add-on definitions pin are locked at that pin; any other source is read like `up`\n\
reads it (--manifests bundle, cache, or a download over HTTPS) and locked at its sha256. Commit\n\
the lock; `up --locked` (or EPHEMERA_LOCKED=1) then refuses any source pinned nowhere."
)]
pub struct LockArgs {
    /// Environment file, e.g. environments/pr-kind.yaml.
    #[arg(long, value_name = "FILE")]
    pub env: PathBuf,
}

pub fn run(args: LockArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let env = ephemera::config::load(&args.env)?;
    let renderer = ephemera::templates::Renderer::new(settings.templates.as_deref())?;
    let addons =
        ephemera::addons::lock::addons_of(&env, &renderer).map_err(ephemera::Error::from)?;
    let opts = super::sources(settings, &args.env, false)?;
    let report = super::block_on(async {
        ephemera::addons::lock::update(&args.env, &addons, &opts)
            .await
            .map_err(ephemera::Error::from)
    })?;
    super::emit(settings, &report, || {
        let mut lines = vec![format!(
            "{}: {} sources, {}",
            report.path.display(),
            report.sources,
            if report.changed {
                "written"
            } else {
                "unchanged"
            }
        )];
        for s in &report.locked_here {
            lines.push(format!(
                "  {} {}: {} sha256 {} (pinned by this lock only)",
                s.addon, s.version, s.url, s.sha256
            ));
        }
        lines.join("\n")
    })?;
    Ok(ExitStatus::Ok)
}
