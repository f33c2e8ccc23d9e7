//! Step `cluster`: the cluster exists, is ready, and carries the ownership record. It runs
//! before the lease is held: the lease lives on (or in) the cluster.

use super::Context;
use crate::providers::{ClusterRequest, Ensured, Provider, ProviderError};

pub const NAME: &str = "cluster";

/// Ensures the cluster; [`Ensured::created`] says whether this run created it.
///
/// # Errors
/// The provider's.
pub(crate) async fn ensure(ctx: &Context<'_>) -> Result<Ensured, ProviderError> {
    ctx.provider.prepare(ctx.progress.as_ref()).await?;
    let req = ClusterRequest {
        name: ctx.name.to_string(),
        record: ctx.record.clone(),
    };
    ctx.provider.ensure(&req).await
}
