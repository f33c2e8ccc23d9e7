//! Step `identity`: the DNS-01 identity (`provider.aks.dns.identity`) trusts this cluster's OIDC
//! issuer, so cert-manager can sign in as it. Only when the environment file names one.

use std::sync::Arc;

use super::Context;
use crate::dns::identity::FederatedCredentials;
use crate::engine::EngineError;
use crate::providers::Ensured;

pub const NAME: &str = "identity";

/// The federated credential to ensure, for a cluster.
pub(crate) struct Identity {
    credentials: FederatedCredentials,
    cluster_id: String,
    oidc_issuer: Option<String>,
}

/// The credential to ensure; `None` when the file names no DNS-01 identity.
///
/// # Errors
/// An unusable identity configuration; a cluster without a resource id.
pub(crate) fn wanted(
    ctx: &Context<'_>,
    cluster: &Ensured,
) -> Result<Option<Identity>, crate::Error> {
    let probe = Arc::new(crate::providers::probe::SystemProbe);
    let Some(credentials) = FederatedCredentials::from_env(ctx.env, probe)? else {
        return Ok(None);
    };
    let cluster_id = cluster.resource_id.clone().ok_or_else(|| {
        EngineError::Invalid("provider.aks.dns.identity: the cluster has no resource id".into())
    })?;
    Ok(Some(Identity {
        credentials,
        cluster_id,
        oidc_issuer: cluster.oidc_issuer.clone(),
    }))
}

/// Ensures the federated credential for the cluster's OIDC issuer.
///
/// # Errors
/// ARM errors; a cluster without an OIDC issuer.
pub(crate) async fn ensure(ctx: &Context<'_>, identity: &Identity) -> Result<(), crate::Error> {
    let issuer =
        crate::dns::identity::issuer(&identity.cluster_id, identity.oidc_issuer.as_deref())?;
    identity
        .credentials
        .ensure(ctx.name, &identity.cluster_id, &issuer)
        .await?;
    Ok(())
}
