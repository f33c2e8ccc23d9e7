//! `ephemera kubeconfig`: Write an environment's kubeconfig (mode 0600) to --kubeconfig or stdout

use clap::Args;
use ephemera::ExitStatus;

use super::Settings;

#[derive(Debug, Args)]
#[command(about = "Write an environment's kubeconfig (mode 0600) to --kubeconfig or stdout")]
#[command(
    after_help = "Example:\n  ephemera kubeconfig --env environments/pr-kind.yaml --pr 42 --kubeconfig ./pr-42.kubeconfig"
)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    pub target: super::TargetArgs,
}

pub fn run(args: KubeconfigArgs, _settings: &Settings) -> anyhow::Result<ExitStatus> {
    super::not_implemented("kubeconfig", &args.target)
}
