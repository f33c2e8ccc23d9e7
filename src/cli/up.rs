//! `ephemera up`: create or converge a PR's environment.

use std::time::Duration;

use clap::Args;
use ephemera::ExitStatus;

use super::{EnvInputArgs, Settings};

#[derive(Debug, Args)]
#[command(about = "Create or update a PR's environment: cluster, add-ons, the image as a canary")]
#[command(
    after_help = "Example:\n  ephemera up --env environments/pr-aks.yaml --pr 42 --image ghcr.io/acme/cats:sha-1234"
)]
pub struct UpArgs {
    #[command(flatten)]
    pub input: EnvInputArgs,
    /// Keep a cluster this run created when a later step fails (for debugging).
    #[arg(long)]
    pub keep_on_failure: bool,
    /// The longest to wait without progress: add-ons ready, rollout settled, URL
    /// answering, a cloud or API that does not answer. Exit 3 when it runs out.
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub timeout: String,
    /// The longest the whole command runs. Exit 3 when it runs out.
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    pub deadline: String,
    /// Accept the self-signed or staging certificate when checking the URL.
    #[arg(long)]
    pub insecure: bool,
    /// Report a GitHub Deployment and keep one PR comment current (needs GITHUB_TOKEN).
    #[arg(long)]
    pub github: bool,
    /// The PR's head commit (default: from the GitHub Actions event).
    #[arg(long, value_name = "SHA")]
    pub sha: Option<String>,
    /// Refuse any add-on source whose sha256 neither its definition nor the lock file pins.
    #[arg(long, env = ephemera::addons::lock::LOCKED_ENV, value_parser = clap::builder::BoolishValueParser::new())]
    pub locked: bool,
}

pub fn run(args: UpArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let timeout = duration("--timeout", &args.timeout)?;
    let deadline = duration("--deadline", &args.deadline)?;
    let opts = ephemera::engine::UpOptions {
        sources: super::sources(settings, &args.input.target.env, args.locked)?,
        request: ephemera::plan::Request {
            // up writes the registry Secret with the real password.
            resolve_secrets: true,
            ..args.input.request(None, settings)
        },
        kubeconfig: settings.kubeconfig.clone(),
        keep_on_failure: args.keep_on_failure,
        timeout,
        deadline,
        insecure: args.insecure,
        github: args.github,
        sha: args.sha,
    };
    let progress = ephemera::progress::for_terminal(settings.quiet);
    let report = super::block_on(ephemera::engine::up(&opts, progress))?;
    let printer = super::printer::Printer::new(settings);
    for w in &report.warnings {
        printer.warn(w);
    }
    super::emit(settings, &report, || {
        let mut lines = vec![format!("environment: {}", report.name)];
        match &report.url {
            Some(u) if report.simulated => {
                lines.push(format!("url: {u} (simulated: pods do not run)"))
            }
            Some(u) => lines.push(format!("url: {u}")),
            None => {}
        }
        lines.push(format!("kubeconfig: {}", report.kubeconfig.display()));
        lines.push(format!("expires: {}", report.expires_at));
        if let Some(paused) = &report.canary_paused {
            lines.push(format!(
                "canary: {paused} (app.canary.preview: steps); `ephemera promote` moves it on"
            ));
        }
        lines.join("\n")
    })?;
    Ok(ExitStatus::Ok)
}

/// A waiting deadline given on the command line: a duration of at least one second.
pub(super) fn duration(flag: &str, value: &str) -> anyhow::Result<Duration> {
    let invalid = |message| {
        anyhow::Error::from(ephemera::Error::from(ephemera::names::NameError::Invalid {
            what: flag.into(),
            message,
        }))
    };
    let d = ephemera::config::duration::parse(value, &['s', 'm', 'h', 'd']).map_err(invalid)?;
    if d.is_zero() {
        return Err(invalid(format!(
            "{value:?} would give up before starting; give at least 1s"
        )));
    }
    Ok(d)
}
