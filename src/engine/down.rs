//! `down`: delete everything the environment owns. Idempotent, safe while an `up` runs (down
//! takes the lease from it), and successful when nothing is left.

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use super::arm_lease::lease_store;
use super::lease::{self, LeaseRecord, Operation};
use super::{StepReport, Steps};
use crate::progress::Progress;
use crate::providers::any::{AnyProvider, ProviderOptions};
use crate::providers::{Deleted, Kubeconfig, Provider, ProviderError};
use crate::templates::Renderer;

/// What `down` is asked to do.
#[derive(Clone, Debug)]
pub struct DownOptions {
    pub env_file: PathBuf,
    pub pr: Option<String>,
    pub name: Option<String>,
    pub templates: Option<PathBuf>,
    /// `--kubeconfig PATH`: remove the environment's context from this file too.
    pub kubeconfig: Option<PathBuf>,
    /// `--github`: mark the PR's deployments inactive and update the PR comment.
    pub github: bool,
}

/// What `down` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownReport {
    pub name: String,
    pub provider: String,
    /// `deleted`, or `already-gone`.
    pub outcome: &'static str,
    /// GitHub reporting problems; they never fail `down`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// A run of `up` this `down` took the lease from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded: Option<String>,
    pub steps: Vec<StepReport>,
}

/// Deletes environment `name` through `provider`, taking its lease first when the cluster is
/// reachable (down always wins over up).
///
/// # Errors
/// Provider errors; the environment may be partly deleted, and a rerun continues.
pub async fn down_with(
    provider: &AnyProvider,
    name: &str,
    kubeconfig: Option<&std::path::Path>,
    progress: Arc<dyn Progress>,
) -> Result<DownReport, crate::Error> {
    let mut steps = Steps::new(progress);
    let mut superseded = None;
    // The lease tells a running `up` to stop at its next step. An unreachable or missing cluster
    // has no lease to take, which is fine: there is nothing for an `up` to continue with.
    match take_lease(provider, name).await {
        Ok(prev) => superseded = prev.map(|p| p.holder),
        Err(
            crate::Error::Provider(ProviderError::NotFound(_))
            | crate::Error::Engine(super::EngineError::Lease(lease::LeaseError::Gone { .. })),
        ) => {}
        Err(e) => tracing::warn!(
            "could not take the lease of {name} (deleting anyway): {}",
            super::chain(&e)
        ),
    }
    let deleted = steps.run("cluster", provider.delete(name)).await?;
    forget_kubeconfig(name, kubeconfig);
    Ok(DownReport {
        name: name.to_string(),
        provider: provider.kind().to_string(),
        outcome: match deleted {
            Deleted::Deleted => "deleted",
            Deleted::AlreadyGone => "already-gone",
        },
        superseded,
        warnings: Vec::new(),
        steps: steps.done,
    })
}

/// Removes environment `name`'s context from `kubeconfig` (`--kubeconfig`) and deletes the
/// default kubeconfig file `up` wrote for it. Failures are warnings: the cluster is gone already.
pub(crate) fn forget_kubeconfig(name: &str, kubeconfig: Option<&std::path::Path>) {
    for path in kubeconfig
        .map(PathBuf::from)
        .into_iter()
        .chain(super::default_kubeconfig_path(name).ok())
    {
        if let Err(e) = Kubeconfig::remove_from(&path, name) {
            tracing::warn!(
                "removing context {name} from {}: {}",
                path.display(),
                super::chain(&e)
            );
        }
        if path
            .file_name()
            .is_some_and(|f| f == format!("{name}.yaml").as_str())
        {
            let _ = std::fs::remove_file(&path);
        }
    }
}

async fn take_lease(
    provider: &AnyProvider,
    name: &str,
) -> Result<Option<LeaseRecord>, crate::Error> {
    let me = LeaseRecord::new(
        lease::run_id(Timestamp::now()),
        Operation::Down,
        Timestamp::now(),
        super::up::LEASE_DURATION,
    );
    let fut = async {
        let store = lease_store(provider, name, None).await?;
        Ok::<_, crate::Error>(
            lease::acquire(&store, name, &me)
                .await
                .map_err(super::EngineError::from)?,
        )
    };
    // A cluster that hangs, or an operation running on it, must not keep `down` from deleting
    // it.
    match tokio::time::timeout(std::time::Duration::from_secs(20), fut).await {
        Ok(r) => r,
        Err(_) => Err(super::EngineError::Invalid("timed out taking the lease".into()).into()),
    }
}

/// `down` from an environment file and a PR or name.
///
/// # Errors
/// Bad input (exit 2) before anything is deleted; then as [`down_with`].
pub async fn down(
    opts: &DownOptions,
    progress: Arc<dyn Progress>,
) -> Result<DownReport, crate::Error> {
    let env = crate::config::load(&opts.env_file)?;
    let (name, pr) = crate::plan::target(&env, opts.pr.as_deref(), opts.name.as_deref())?;
    let github = crate::github::Settings::from_env(env.github.as_ref(), opts.github)
        .map_err(|e| super::EngineError::Invalid(super::chain(&e)))?;
    let renderer = Arc::new(Renderer::new(opts.templates.as_deref())?);
    let provider = AnyProvider::from_env(&env, renderer, &ProviderOptions::default())?;
    delete_dns_record(&env, name.as_str(), pr).await?;
    let mut report = down_with(
        &provider,
        name.as_str(),
        opts.kubeconfig.as_deref(),
        progress,
    )
    .await?;
    // After the cluster: an up that raced this down cannot put it back behind us.
    delete_federated_credential(&env, &provider, name.as_str()).await?;
    if let (Some(settings), Some(pr)) = (github, pr) {
        let mut reporter = crate::github::Reporter::new(settings);
        for w in reporter.torn_down(&name, pr).await {
            tracing::warn!("{w}");
            report.warnings.push(w.to_string());
        }
    }
    Ok(report)
}

/// Deletes the environment's federated credential on the DNS-01 identity
/// (`provider.aks.dns.identity`), once its cluster is gone: a credential left behind would count
/// against the identity's limit of 20. Already gone is success.
///
/// # Errors
/// ARM errors.
pub async fn delete_federated_credential(
    env: &crate::config::Environment,
    provider: &AnyProvider,
    name: &str,
) -> Result<(), crate::Error> {
    let AnyProvider::Aks(aks) = provider else {
        return Ok(());
    };
    let Some(credentials) = crate::dns::identity::FederatedCredentials::from_env(
        env,
        Arc::new(crate::providers::probe::SystemProbe),
    )?
    else {
        return Ok(());
    };
    if credentials.delete(name, &aks.resource_id(name)).await? {
        tracing::info!(environment = name, "federated credential deleted");
    }
    Ok(())
}

/// Deletes the environment's record in the Azure DNS zone, when ephemera manages one. Only a
/// record carrying our metadata for this environment is deleted; already gone is success.
///
/// # Errors
/// ARM errors; a record that is not ours is left alone and reported.
pub async fn delete_dns_record(
    env: &crate::config::Environment,
    name: &str,
    pr: Option<u64>,
) -> Result<(), crate::Error> {
    let Some(dns) =
        crate::dns::azure::AzureDns::from_env(env, Arc::new(crate::providers::probe::SystemProbe))?
    else {
        return Ok(());
    };
    let host = crate::dns::host::preview_host(env, name, pr, None)
        .map_err(|m| super::EngineError::Invalid(format!("routing.host: {m}")))?;
    let deleted = if host.is_final() {
        dns.delete(&host.host, name).await?
    } else {
        // The host embeds the load balancer's IP, which only the running cluster knows (and
        // which may have changed while it ran): the records are found by their metadata.
        dns.delete_environment(name).await?
    };
    tracing::info!(
        environment = name,
        records = deleted.len(),
        "DNS records deleted"
    );
    Ok(())
}
