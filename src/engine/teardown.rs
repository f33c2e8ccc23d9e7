//! Deleting what an environment leaves outside its cluster: shared by `down` (and `gc`, which
//! runs it) and by `up`'s rollback of a cluster it created.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::chain;
use crate::config::Environment;
use crate::providers::any::AnyProvider;
use crate::providers::{Kubeconfig, Provider};

/// Removes environment `name`'s context from `kubeconfig` (`--kubeconfig`) and deletes the
/// default kubeconfig file `up` wrote for it. Failures are warnings: the cluster is gone already.
pub(crate) fn forget_kubeconfig(name: &str, kubeconfig: Option<&Path>) {
    for path in kubeconfig
        .map(PathBuf::from)
        .into_iter()
        .chain(super::default_kubeconfig_path(name).ok())
    {
        if let Err(e) = Kubeconfig::remove_from(&path, name) {
            tracing::warn!(
                "removing context {name} from {}: {}",
                path.display(),
                chain(&e)
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

/// Deletes the environment's federated credential on the DNS-01 identity
/// (`provider.aks.dns.identity`), once its cluster is gone: a credential left behind would count
/// against the identity's limit of 20. Already gone is success.
///
/// # Errors
/// ARM errors.
pub(crate) async fn delete_federated_credential(
    env: &Environment,
    provider: &AnyProvider,
    name: &str,
) -> Result<(), crate::Error> {
    let Some(credentials) = crate::dns::identity::FederatedCredentials::from_env(
        env,
        Arc::new(crate::providers::probe::SystemProbe),
    )?
    else {
        return Ok(());
    };
    // The credential is named after the cluster's resource id; a provider without one has none.
    let Some(cluster_id) = provider.cluster_resource_id(name) else {
        return Ok(());
    };
    if credentials.delete(name, &cluster_id).await? {
        tracing::info!(environment = name, "federated credential deleted");
    }
    Ok(())
}

/// Deletes the environment's record in the Azure DNS zone, when ephemera manages one. Only a
/// record carrying our metadata for this environment is deleted; already gone is success.
///
/// # Errors
/// ARM errors; a record that is not ours is left alone and reported.
pub(crate) async fn delete_dns_record(
    env: &Environment,
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
