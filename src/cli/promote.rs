//! `ephemera promote`: move a paused canary on, one step or all the way.

use clap::Args;
use ephemera::ExitStatus;

use super::announce::{Announce, rollout_result};
use super::{Settings, TargetArgs};
use ephemera::slack::Event;

#[derive(Debug, Args)]
#[command(about = "Promote a canary one step, or fully")]
#[command(
    after_help = "Example:\n  ephemera promote --env environments/pr-aks.yaml --pr 42 --full"
)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub bounds: super::BoundArgs,
    /// Promote past the current pause only (the default).
    #[arg(long, conflicts_with = "full")]
    pub step: bool,
    /// Skip the remaining steps and pauses.
    #[arg(long)]
    pub full: bool,
}

pub fn run(args: PromoteArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let bounds = args.bounds.bounds()?;
    let (env, name, provider) = super::resolve(&args.target, settings)?;
    let app = env.app.name.clone();
    let ns = ephemera::engine::release::app_namespace(&env);
    let announce = Announce::start(&env, &name, &args.target, Event::Promote);
    let result = super::block_on_within(&bounds, "promoting the canary", async {
        let client = super::client(&provider, &name).await?;
        anyhow::Ok(ephemera::app::promote(&client, &ns, &app, args.full).await?)
    });
    let how = if args.full { "fully" } else { "one step" };
    let status = announce.finish(
        result,
        |_| format!("{name}: canary promoted {how}"),
        |status, m| m.result = Some(rollout_result(status)),
    )?;
    super::emit(settings, &status, || status.to_string())?;
    Ok(ExitStatus::Ok)
}
