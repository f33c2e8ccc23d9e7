//! `ephemera abort`: abort a canary; traffic goes back to the stable version.

use clap::Args;
use ephemera::ExitStatus;

use super::announce::{Announce, rollout_result};
use super::{Settings, TargetArgs};
use ephemera::slack::Event;

#[derive(Debug, Args)]
#[command(about = "Abort a canary: traffic back to the stable version")]
#[command(after_help = "Example:\n  ephemera abort --env environments/pr-aks.yaml --pr 42")]
pub struct AbortArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub bounds: super::BoundArgs,
}

pub fn run(args: AbortArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let bounds = args.bounds.bounds()?;
    let (env, name, provider) = super::resolve(&args.target, settings)?;
    let app = env.app.name.clone();
    let ns = ephemera::engine::release::app_namespace(&env);
    let announce = Announce::start(&env, &name, &args.target, Event::Abort);
    let result = super::block_on_within(&bounds, "aborting the canary", async {
        let client = super::client(&provider, &name).await?;
        anyhow::Ok(ephemera::app::abort(&client, &ns, &app).await?)
    });
    let status = announce.finish(
        result,
        |_| format!("{name}: canary aborted"),
        |status, m| m.result = Some(rollout_result(status)),
    )?;
    super::emit(settings, &status, || status.to_string())?;
    Ok(ExitStatus::Ok)
}
