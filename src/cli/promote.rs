//! `ephemera promote`: move a paused canary on, one step or all the way.

use clap::Args;
use ephemera::ExitStatus;

use super::{Settings, TargetArgs};

#[derive(Debug, Args)]
#[command(about = "Promote a canary one step, or fully")]
#[command(
    after_help = "Example:\n  ephemera promote --env environments/pr-aks.yaml --pr 42 --full"
)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Promote past the current pause only (the default).
    #[arg(long, conflicts_with = "full")]
    pub step: bool,
    /// Skip the remaining steps and pauses.
    #[arg(long)]
    pub full: bool,
}

pub fn run(args: PromoteArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let (env, name, provider) = super::resolve(&args.target, settings)?;
    let app = env.app.name.clone();
    let status = super::block_on(async {
        let client = super::client(&provider, &name).await?;
        anyhow::Ok(ephemera::app::promote(&client, &app, &app, args.full).await?)
    })?;
    super::emit(settings, &status, || status.to_string())?;
    Ok(ExitStatus::Ok)
}
