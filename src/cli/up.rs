//! `ephemera up`: Create or update a PR's environment: cluster, add-ons, the image as a canary

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Create or update a PR's environment: cluster, add-ons, the image as a canary")]
#[command(
    after_help = "Example:\n  ephemera up --env environments/pr-aks.yaml --pr 42 --image ghcr.io/acme/cats:sha-1234"
)]
pub struct UpArgs {
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// The PR's image (default: app.image).
    #[arg(long, value_name = "REF", allow_hyphen_values = true)]
    pub image: Option<String>,
    /// Lifetime instead of the file's ttl, e.g. 4h.
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Keep a cluster this run created when a later step fails (for debugging).
    #[arg(long)]
    pub keep_on_failure: bool,
    #[command(flatten)]
    pub pr_data: super::PrDataArgs,
}

pub fn run(args: UpArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented("up", &args.target)
}
