//! `ephemera deploy`: Roll a new image out to an environment as a canary

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Roll a new image out to an environment as a canary")]
#[command(
    after_help = "Example:\n  ephemera deploy --env environments/pr-aks.yaml --pr 42 --image ghcr.io/acme/cats:sha-5678"
)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// The image to roll out (default: app.image).
    #[arg(long, value_name = "REF", allow_hyphen_values = true)]
    pub image: Option<String>,
}

pub fn run(args: DeployArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented("deploy", &args.target)
}
