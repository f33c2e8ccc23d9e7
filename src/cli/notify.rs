//! `ephemera notify`: report a CI run's result where `up` would have, for runs in which `up`
//! never ran (a failed build, a skipped or superseded preview, `down`, `gc`).

use clap::{Args, ValueEnum};
use ephemera::ExitStatus;
use ephemera::slack::{Delivery, Event, Message, Outcome};

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Report a run's result to Slack, and with --github a failure to the PR")]
#[command(
    after_help = "Example:\n  ephemera notify --env environments/pr-aks.yaml --pr 42 --outcome failure --message \"PR #42: the build failed\" --github"
)]
#[command(group = clap::ArgGroup::new("target").args(["pr", "name"]))]
pub struct NotifyArgs {
    /// Environment file; its notifications.slack names the variable holding the webhook URL.
    #[arg(long, value_name = "FILE")]
    pub env: std::path::PathBuf,
    /// The pull request the message is about (needed for --github).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pr: Option<String>,
    /// An environment name instead of a PR.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub name: Option<String>,
    /// How the run ended; the Slack `on` filter applies to it.
    #[arg(long, value_enum)]
    pub outcome: NotifyOutcome,
    /// The message (plain text, one line; Slack markup in it is escaped).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub message: String,
    /// On failure, also set the PR's GitHub Deployment to failure and say so in the PR comment
    /// (needs GITHUB_TOKEN and --pr).
    #[arg(long, requires = "pr")]
    pub github: bool,
    /// The commit the failure is about (default: from the GitHub Actions event).
    #[arg(long, value_name = "SHA")]
    pub sha: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NotifyOutcome {
    Success,
    Failure,
}

/// What `notify` did, for `--output json`.
#[derive(Debug, serde::Serialize)]
struct NotifyReport {
    slack: &'static str,
    github: &'static str,
    warnings: Vec<String>,
}

pub fn run(args: NotifyArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    if args.message.trim().is_empty() || args.message.chars().any(char::is_control) {
        return Err(invalid(
            "--message: must be one non-empty line without control characters",
        ));
    }
    let env = ephemera::config::load(&args.env)?;
    // The environment is named only when the message is about one (the PR comment needs it).
    let name = if args.pr.is_some() || args.name.is_some() {
        let (name, _) = ephemera::plan::target(&env, args.pr.as_deref(), args.name.as_deref())
            .map_err(ephemera::Error::from)?;
        Some(name)
    } else {
        None
    };
    if let Some(sha) = &args.sha {
        ephemera::github::check_sha("--sha", sha).map_err(|e| invalid(&e.to_string()))?;
    }
    let outcome = match args.outcome {
        NotifyOutcome::Success => Outcome::Success,
        NotifyOutcome::Failure => Outcome::Failure,
    };
    let github = if args.github {
        Some(
            ephemera::github::Settings::from_env(env.github.as_ref(), true)
                .map_err(|e| invalid(&e.to_string()))?,
        )
    } else {
        None
    };
    let pr = args.pr.as_deref().and_then(|p| p.parse::<u64>().ok());
    let mut msg = Message::new(Event::Notify, outcome, args.message.clone());
    msg.environment = name.as_ref().map(|n| n.as_str().to_string());
    msg.pr = pr;
    msg.commit.clone_from(&args.sha);
    let msg = msg.with_ci();
    let report = super::block_on(async {
        let mut warnings = Vec::new();
        let slack = match &env.notifications.slack {
            None => "not configured",
            Some(cfg) => match ephemera::slack::send(cfg, &msg).await {
                Delivery::Sent => "sent",
                Delivery::NotWanted => "not wanted (notifications.slack.on)",
                Delivery::Failed(w) => {
                    warnings.push(w);
                    "not sent"
                }
            },
        };
        let github = match (github.flatten(), pr.zip(name), outcome) {
            (Some(s), Some((pr, name)), Outcome::Failure) => {
                let mut reporter = ephemera::github::Reporter::new(s);
                let mut data = ephemera::github::CommentData::new(
                    name,
                    pr,
                    ephemera::github::CommentState::Failed,
                );
                data.sha = args.sha.clone();
                data.env_file = Some(args.env.display().to_string());
                let w = reporter.failed(&args.message, &data).await;
                warnings.extend(w.iter().map(ToString::to_string));
                if w.is_empty() { "reported" } else { "warned" }
            }
            (Some(_), _, Outcome::Success) => "nothing to report on success",
            _ => "off",
        };
        anyhow::Ok(NotifyReport {
            slack,
            github,
            warnings,
        })
    })?;
    let printer = super::printer::Printer::new(settings);
    for w in &report.warnings {
        printer.warn(w);
    }
    super::emit(settings, &report, || {
        format!("slack: {}\ngithub: {}", report.slack, report.github)
    })?;
    Ok(ExitStatus::Ok)
}

fn invalid(message: &str) -> anyhow::Error {
    ephemera::Error::from(ephemera::engine::EngineError::Invalid(message.to_string())).into()
}
