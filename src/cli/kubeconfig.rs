//! `ephemera kubeconfig`: an environment's admin kubeconfig.

use clap::Args;
use ephemera::ExitStatus;
use ephemera::providers::Provider;

use super::{Settings, TargetArgs};

#[derive(Debug, Args)]
#[command(about = "Merge an environment's kubeconfig into --kubeconfig (mode 0600), or print it")]
#[command(
    after_help = "Example:\n  ephemera kubeconfig --env environments/pr-kind.yaml --pr 42 --kubeconfig ./pr-42.kubeconfig"
)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub bounds: super::BoundArgs,
}

pub fn run(args: KubeconfigArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let bounds = args.bounds.bounds()?;
    let (_, name, provider) = super::resolve(&args.target, settings)?;
    let kubeconfig = super::block_on_within(&bounds, "fetching the kubeconfig", async {
        anyhow::Ok(provider.kubeconfig(name.as_str()).await?)
    })?
    .renamed(name.as_str());
    let printer = super::printer::Printer::new(settings);
    match &settings.kubeconfig {
        Some(path) => {
            kubeconfig.merge_into(path).map_err(ephemera::Error::from)?;
            printer.result(&format!("context {name} written to {}", path.display()))?;
        }
        // Asked for on stdout: the credentials are the result.
        None => printer.result(&kubeconfig.to_yaml().map_err(ephemera::Error::from)?)?,
    }
    Ok(ExitStatus::Ok)
}
