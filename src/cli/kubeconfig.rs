//! `ephemera kubeconfig`: an environment's admin kubeconfig.

use std::sync::Arc;

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
}

pub fn run(args: KubeconfigArgs, settings: &Settings) -> anyhow::Result<ExitStatus> {
    let env = ephemera::config::load(&args.target.env).map_err(ephemera::Error::from)?;
    let (name, _) =
        ephemera::plan::target(&env, args.target.pr.as_deref(), args.target.name.as_deref())
            .map_err(ephemera::Error::from)?;
    let renderer = Arc::new(
        ephemera::templates::Renderer::new(settings.templates.as_deref())
            .map_err(ephemera::Error::from)?,
    );
    let provider =
        ephemera::providers::any::AnyProvider::from_env(&env, renderer, &Default::default())
            .map_err(ephemera::Error::from)?;
    let kubeconfig = super::block_on(async {
        provider
            .kubeconfig(name.as_str())
            .await
            .map_err(ephemera::Error::from)
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
