//! `ephemera deploy`: roll a new image out to an environment's Rollout: fully promoted, or with
//! `app.canary.preview: steps` to the canary's first pause.

use std::time::Instant;

use clap::Args;
use ephemera::ExitStatus;

use super::announce::{Announce, rollout_result};
use super::{Settings, TargetArgs};
use ephemera::slack::Event;

#[derive(Debug, Args)]
#[command(about = "Roll a new image out to an environment (to 100%, or to the first canary pause)")]
#[command(
    after_help = "Example:\n  ephemera deploy --env environments/pr-aks.yaml --pr 42 --image ghcr.io/acme/cats:sha-5678"
)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The image to roll out (default: app.image).
    #[arg(long, value_name = "REF", allow_hyphen_values = true)]
    pub image: Option<String>,
    /// How long to wait for the rollout to finish (or reach its first pause).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub timeout: String,
    /// The longest the whole command runs. Exit 3 when it runs out.
    #[arg(long, value_name = "DURATION", default_value = "2h")]
    pub deadline: String,
}

pub fn run(args: DeployArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let timeout = super::up::duration("--timeout", &args.timeout)?;
    // The rollout's wait ends at --timeout and names the Rollout; the bounds also cover reaching
    // the cluster (an unreachable cloud), which that wait does not.
    let bounds = super::bounds(&args.timeout, &args.deadline)?;
    let (env, name, provider) = super::resolve(&args.target, settings)?;
    let image =
        ephemera::plan::image(&env, args.image.as_deref()).map_err(ephemera::Error::from)?;
    let app = env.app.name.clone();
    // The registry Secret as up writes it, with the password read now: a rotated token reaches
    // the cluster with the new image. A missing variable stops here, before the cluster is touched.
    let registry_secret = match &env.app.registry {
        Some(_) => {
            let plan = ephemera::plan::run(&ephemera::plan::Request {
                env_file: args.target.env.clone(),
                pr: args.target.pr.clone(),
                name: args.target.name.clone(),
                image: Some(image.reference.clone()),
                templates: settings.templates.clone(),
                resolve_secrets: true,
                ..Default::default()
            })
            .map_err(ephemera::Error::from)?;
            let wanted = ephemera::app::registry::secret_name(&app);
            plan.manifests
                .into_iter()
                .map(|m| m.object)
                .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == wanted.as_str())
        }
        None => None,
    };
    let deadline = Instant::now() + timeout;
    let announce = Announce::start(&env, &name, &args.target, Event::Deploy);
    let result = super::block_on_within(&bounds, "deploying the image", async {
        let client = super::client(&provider, &name).await?;
        if let Some(secret) = &registry_secret {
            ephemera::app::registry::refresh(&client, name.as_str(), secret).await?;
        }
        let settled = ephemera::app::deploy(&client, &app, &app, &image, deadline).await?;
        let preview = env.app.canary.preview;
        let done = ephemera::app::complete(&client, &app, &app, settled, preview, deadline);
        let status = done.await?;
        // Activity keeps the preview alive: its expiry moves to at least now + ttl.
        let record = ephemera::engine::renew(&env, &provider, name.as_str()).await?;
        tracing::info!("{} expires at {}", record.name, record.expires_at);
        anyhow::Ok((status, record))
    });
    let (status, _) = announce.finish(
        result,
        |_| format!("{name}: new image rolled out"),
        |(status, record), m| {
            m.image = Some(image.reference.clone());
            m.repository.clone_from(&record.repository);
            m.url.clone_from(&record.url);
            m.result = Some(rollout_result(status));
            m.fields.push((
                "Expires".into(),
                record.expires_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
            ));
        },
    )?;
    super::emit(settings, &status, || status.to_string())?;
    Ok(ExitStatus::Ok)
}
