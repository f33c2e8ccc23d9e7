//! `ephemera release`: commit a new image to the release repository (GitOps), wait for Argo CD
//! to sync it and for the Rollout's canary to reach its first pause, and report the canary.

use std::path::PathBuf;

use clap::Args;
use ephemera::ExitStatus;
use ephemera::engine::release::{self as rel, Report};
use ephemera::gitops::Committed;
use ephemera::slack::Event;

use super::Settings;
use super::announce::Announce;

#[derive(Debug, Args)]
#[command(about = "Release an image to a long-lived environment through its GitOps repository")]
#[command(
    after_help = "Example:\n  ephemera release --env environments/production.yaml --image ghcr.io/acme/cats:sha-5678 --source-commit 5678abc"
)]
pub struct ReleaseArgs {
    /// Environment file with a release: block, e.g. environments/production.yaml.
    #[arg(long, value_name = "FILE")]
    pub env: PathBuf,
    /// The image to release.
    #[arg(long, value_name = "REF", allow_hyphen_values = true)]
    pub image: String,
    /// The source commit the image was built from, named in the commit message.
    #[arg(long, value_name = "SHA")]
    pub source_commit: Option<String>,
    /// Commit only; do not wait for Argo CD and the Rollout.
    #[arg(long)]
    pub no_wait: bool,
    /// How many rejected pushes (someone else pushed first) to retry on the new head.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub attempts: u32,
    /// The longest to wait for the sync and the canary's first pause. Exit 3 when it runs out.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub timeout: String,
    /// The longest the whole command runs. Exit 3 when it runs out.
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub deadline: String,
}

pub fn run(args: ReleaseArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let timeout = super::up::duration("--timeout", &args.timeout)?;
    let bounds = super::bounds(&args.timeout, &args.deadline)?;
    let env = ephemera::config::load(&args.env)?;
    let image = ephemera::names::ImageRef::parse("--image", &args.image)?;
    if let Some(c) = &args.source_commit
        && (!(7..=64).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        anyhow::bail!(usage(format!(
            "--source-commit: {:?} is not a commit SHA (7 to 64 hex digits)",
            cut(c)
        )));
    }
    let r = rel::settings(&env)?;
    // Configuration problems (no token, an image without a tag) stop here, before git runs.
    rel::repository(r, &image)?;
    let name = ephemera::names::EnvName::from_name(&env.metadata.name)?;
    let provider = match settings.kubeconfig {
        Some(_) => None,
        None if args.no_wait => None,
        None => Some(ephemera::providers::any::AnyProvider::from_env(
            &env,
            std::sync::Arc::new(ephemera::templates::Renderer::new(
                settings.templates.as_deref(),
            )?),
            &Default::default(),
        )?),
    };
    let req = rel::Request {
        image: image.clone(),
        source_commit: args.source_commit.clone(),
        no_wait: args.no_wait || r.mode == ephemera::config::ReleaseMode::PullRequest,
        timeout,
        attempts: args.attempts,
    };
    let target = super::TargetArgs {
        env: args.env.clone(),
        pr: None,
        name: Some(env.metadata.name.clone()),
    };
    let announce = Announce::start(&env, &name, &target, Event::Release);
    let workdir = rel::Workdir::new()?;
    let result = super::block_on_within(&bounds, "releasing the image", async {
        let (git, pull_request) = rel::commit(&env, &req, workdir.path()).await?;
        let mut report = Report {
            image: image.reference.clone(),
            repository: ephemera::gitops::git::scrub_urls(&r.repository.url),
            file: r.file.clone(),
            git,
            pull_request,
            application: None,
            synced_revision: None,
            canary: None,
        };
        if req.no_wait {
            return anyhow::Ok(report);
        }
        let deadline = std::time::Instant::now() + req.timeout;
        let client = match (&settings.kubeconfig, &provider) {
            (Some(path), _) => {
                ephemera::providers::Kubeconfig::read(path)?
                    .client()
                    .await?
            }
            (None, Some(p)) => super::client(p, &name).await?,
            (None, None) => unreachable_client()?,
        };
        let commit = report.git.commit().to_string();
        let synced =
            rel::wait_synced(&client, &env, &image, &commit, workdir.path(), req.timeout).await?;
        report.application = Some(synced.application);
        report.synced_revision = Some(synced.revision);
        report.canary = Some(rel::wait_rollout(&client, &env, deadline).await?);
        anyhow::Ok(report)
    });
    let source_commit = args.source_commit.clone();
    let report = announce.finish(
        result,
        |r| match &r.git {
            Committed::AlreadyAt { .. } => format!("{}: already at {}", env.metadata.name, r.image),
            Committed::Pushed { .. } => format!("{}: released {}", env.metadata.name, r.image),
        },
        |r, m| describe(r, source_commit.as_deref(), m),
    )?;
    super::emit(settings, &report, || {
        report.to_string().trim_end().to_string()
    })?;
    Ok(ExitStatus::Ok)
}

/// The Slack message's facts about a release.
fn describe(r: &Report, source_commit: Option<&str>, m: &mut ephemera::slack::Message) {
    m.image = Some(r.image.clone());
    m.fields
        .push(("Release commit".into(), r.git.commit().to_string()));
    if let Some(c) = source_commit {
        m.fields.push(("Source commit".into(), c.to_string()));
    }
    if let Some(pr) = &r.pull_request {
        m.fields.push(("Pull request".into(), pr.clone()));
    }
    m.result = Some(match &r.canary {
        Some(c) if c.phase == "Paused" => {
            format!("canary paused at {}%: promote to continue", c.weight)
        }
        Some(c) => format!("{}, {}% on the new image", c.phase, c.actual_weight),
        None => "committed; not waited for".into(),
    });
}

fn unreachable_client() -> anyhow::Result<::kube::Client> {
    anyhow::bail!(usage(
        "no cluster to wait on: give --kubeconfig, a provider with a kubeconfig, or --no-wait"
            .into()
    ))
}

fn usage(message: String) -> rel::ReleaseError {
    rel::ReleaseError::Config(message)
}

fn cut(s: &str) -> String {
    ephemera::config::cut(s, 80)
}
