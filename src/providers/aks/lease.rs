//! The lease for AKS environments: the managed cluster's ARM tag `ephemera-lease`, holding
//! [`LeaseRecord::to_tag`], read with the cluster GET (its ETag is the compare-and-swap token)
//! and written with `updateTags` under `If-Match`, so two runs can never both believe they hold
//! it. Every other tag (the ownership record, the file's tags) is written back unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use super::{self as aks, Aks, TagUpdate, spec};
use crate::azure::AzureError;
use crate::azure::arm::ArmClient;
use crate::providers::ProviderError;
use crate::providers::lease::{LeaseRecord, LeaseStore, Written};
use crate::providers::probe::SystemProbe;

/// The tag holding the lease.
pub const TAG: &str = "ephemera-lease";

/// How long a write waits when ARM refuses it because an operation runs on the cluster (a
/// create finishing, a `down` deleting it), before the caller reads again.
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// A lease held in an ARM tag of the environment's managed cluster.
pub struct ArmLease<'a> {
    aks: &'a Aks,
    name: String,
    /// A reader of its own: the provider's client is private to it, and reads need the ETag.
    arm: ArmClient,
}

impl<'a> ArmLease<'a> {
    /// The lease of environment `name`, whose cluster `aks` manages.
    ///
    /// # Errors
    /// The HTTP client cannot be built, or `AZURE_TOKEN_CREDENTIALS` is unusable.
    pub fn new(aks: &'a Aks, name: &str) -> Result<Self, ProviderError> {
        let mut arm = crate::azure::arm_client(aks.cloud(), Arc::new(SystemProbe))?;
        arm.timing.request_timeout = Duration::from_secs(30);
        Ok(ArmLease {
            aks,
            name: name.to_string(),
            arm,
        })
    }

    /// The cluster's tags and ETag; `None` when the cluster does not exist.
    async fn tags(&self) -> Result<Option<(BTreeMap<String, String>, String)>, ProviderError> {
        let op = format!("reading the lease of {}", self.name);
        let url = self.arm.url(&format!(
            "{}?api-version={}",
            self.aks.resource_id(&self.name),
            spec::MANAGED_CLUSTERS_API_VERSION
        ))?;
        let r = self.arm.get(&url, &op).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status.is_success() {
            return Err(r.into_error(&op).into());
        }
        let etag = r.etag().ok_or_else(|| AzureError::Api {
            operation: op.clone(),
            status: r.status.as_u16(),
            code: "MissingETag".into(),
            message: "the cluster came without an ETag, so its lease cannot be written safely"
                .into(),
        })?;
        Ok(Some((aks::tag_pairs(&r.body), etag)))
    }

    /// Writes `tags` if the cluster still has `etag`. An operation running on the cluster makes
    /// ARM refuse tag writes (409); that reads as a conflict after a pause, so the caller reads
    /// the cluster again and sees who is there.
    async fn put_tags(
        &self,
        tags: &BTreeMap<String, String>,
        etag: &str,
    ) -> Result<Written, ProviderError> {
        match self
            .aks
            .update_tags_if_match(&self.name, tags, Some(etag))
            .await
        {
            Ok(TagUpdate::Updated { .. }) => Ok(Written::Ok),
            Ok(TagUpdate::Conflict) => Ok(Written::Conflict),
            Err(ProviderError::Azure(AzureError::Api { status: 409, .. })) => {
                tokio::time::sleep(BUSY_WAIT).await;
                Ok(Written::Conflict)
            }
            Err(e) => Err(e),
        }
    }
}

impl LeaseStore for ArmLease<'_> {
    async fn read(&self) -> Result<Option<(LeaseRecord, String)>, ProviderError> {
        Ok(self.tags().await?.map(|(tags, etag)| {
            let lease = tags
                .get(TAG)
                .and_then(|v| LeaseRecord::from_tag(v))
                .unwrap_or_else(LeaseRecord::vacant);
            (lease, etag)
        }))
    }

    async fn write(
        &self,
        lease: &LeaseRecord,
        expected: Option<&str>,
    ) -> Result<Written, ProviderError> {
        // The lease is a tag of the cluster: with no cluster there is nothing to hold.
        let Some((mut tags, etag)) = self.tags().await? else {
            return Err(ProviderError::NotFound(self.name.clone()));
        };
        if expected != Some(etag.as_str()) {
            return Ok(Written::Conflict);
        }
        tags.insert(TAG.to_string(), lease.to_tag());
        self.put_tags(&tags, &etag).await
    }

    async fn release(&self, holder: &str) -> Result<(), ProviderError> {
        for _ in 0..5 {
            let Some((mut tags, etag)) = self.tags().await? else {
                return Ok(());
            };
            let ours = tags
                .get(TAG)
                .and_then(|v| LeaseRecord::from_tag(v))
                .is_some_and(|l| l.holder == holder);
            if !ours {
                return Ok(());
            }
            tags.remove(TAG);
            match self.put_tags(&tags, &etag).await {
                Ok(Written::Ok) | Err(ProviderError::NotFound(_)) => return Ok(()),
                Ok(Written::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        // It lapses by itself; a later run takes it as expired.
        tracing::warn!(
            "the lease of {} kept changing while being released; it lapses by itself",
            self.name
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_as_strings_and_a_missing_lease_is_free() {
        let body =
            serde_json::json!({"tags": {"team": "cats", "ephemera-lease": "garbage", "n": 3}});
        let tags = aks::tag_pairs(&body);
        assert_eq!(tags.get("team").map(String::as_str), Some("cats"));
        assert!(!tags.contains_key("n"), "non-string values are skipped");
        assert_eq!(tags.get(TAG).and_then(|v| LeaseRecord::from_tag(v)), None);
        assert!(LeaseRecord::vacant().is_expired(jiff::Timestamp::now()));
        assert!(aks::tag_pairs(&serde_json::json!({})).is_empty());
    }
}
