//! A lease's record and the stores that keep it with the environment, as each provider does:
//! the managed cluster's ARM tag for AKS ([`super::aks::lease::ArmLease`]), a
//! `coordination.k8s.io` Lease in the cluster ([`KubeLease`]) for kind and local. A store only
//! reads and compare-and-swaps; the rules of who may take a lease live in the engine.

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ProviderError;
use super::aks::lease::ArmLease;
pub use super::kube_lease::KubeLease;

/// What a run is doing with the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Up,
    Down,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Up => "up",
            Operation::Down => "down",
        })
    }
}

/// One holder's claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    /// A unique id of the run (host, pid and start time), never a secret.
    pub holder: String,
    pub operation: Operation,
    /// When the holding run started; decides which of two `up`s is newer.
    pub started_at: Timestamp,
    /// Last renewal.
    pub renewed_at: Timestamp,
    /// The lease lapses this long after the last renewal (a killed run frees it by itself).
    pub duration_seconds: u64,
}

impl LeaseRecord {
    pub fn new(
        holder: impl Into<String>,
        operation: Operation,
        now: Timestamp,
        duration: Duration,
    ) -> Self {
        LeaseRecord {
            holder: holder.into(),
            operation,
            started_at: now,
            renewed_at: now,
            duration_seconds: duration.as_secs().max(1),
        }
    }

    /// A lease nobody holds, long lapsed: what a missing or damaged stored lease reads as, so
    /// the store's version still guards the write that takes it.
    pub fn vacant() -> Self {
        LeaseRecord {
            holder: String::new(),
            operation: Operation::Up,
            started_at: Timestamp::UNIX_EPOCH,
            renewed_at: Timestamp::UNIX_EPOCH,
            duration_seconds: 1,
        }
    }

    /// When the lease lapses if not renewed.
    pub fn expires_at(&self) -> Timestamp {
        let secs = i64::try_from(self.duration_seconds).unwrap_or(i64::MAX / 2);
        self.renewed_at
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap_or(Timestamp::MAX)
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at() <= now
    }

    /// The compact form stored in an ARM tag: `op;holder;started;renewed;seconds`.
    pub fn to_tag(&self) -> String {
        format!(
            "{};{};{};{};{}",
            self.operation, self.holder, self.started_at, self.renewed_at, self.duration_seconds
        )
    }

    /// Parses [`LeaseRecord::to_tag`]; `None` for anything else (a damaged lease is a free one).
    pub fn from_tag(s: &str) -> Option<Self> {
        let mut it = s.split(';');
        let operation = match it.next()? {
            "up" => Operation::Up,
            "down" => Operation::Down,
            _ => return None,
        };
        let holder = it.next()?.to_string();
        let started_at = it.next()?.parse().ok()?;
        let renewed_at = it.next()?.parse().ok()?;
        let duration_seconds = it.next()?.parse().ok()?;
        if it.next().is_some() || holder.is_empty() {
            return None;
        }
        Some(LeaseRecord {
            holder,
            operation,
            started_at,
            renewed_at,
            duration_seconds,
        })
    }
}

/// The outcome of a compare-and-swap write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Ok,
    /// Someone wrote in between; read again.
    Conflict,
}

/// Where a lease is stored. `version` is the store's optimistic-concurrency token
/// (a resourceVersion, an ETag).
pub trait LeaseStore: Send + Sync {
    fn read(
        &self,
    ) -> impl Future<Output = Result<Option<(LeaseRecord, String)>, ProviderError>> + Send;
    /// Writes `lease` only if the stored version is still `expected` (`None`: only if absent).
    fn write(
        &self,
        lease: &LeaseRecord,
        expected: Option<&str>,
    ) -> impl Future<Output = Result<Written, ProviderError>> + Send;
    /// Removes the lease if it is still `holder`'s. Already gone is success.
    fn release(&self, holder: &str) -> impl Future<Output = Result<(), ProviderError>> + Send;
}

/// The lease store of an environment, as its provider keeps it.
// One per run, never in a collection: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum AnyLeaseStore<'a> {
    Arm(ArmLease<'a>),
    Kube(KubeLease),
}

impl AnyLeaseStore<'_> {
    /// Whether the lease lives with the provider's resource (so it can be read before the
    /// cluster answers), rather than inside the cluster.
    pub fn on_provider_resource(&self) -> bool {
        matches!(self, AnyLeaseStore::Arm(_))
    }
}

impl LeaseStore for AnyLeaseStore<'_> {
    async fn read(&self) -> Result<Option<(LeaseRecord, String)>, ProviderError> {
        match self {
            AnyLeaseStore::Arm(s) => s.read().await,
            AnyLeaseStore::Kube(s) => s.read().await,
        }
    }

    async fn write(
        &self,
        lease: &LeaseRecord,
        expected: Option<&str>,
    ) -> Result<Written, ProviderError> {
        match self {
            AnyLeaseStore::Arm(s) => s.write(lease, expected).await,
            AnyLeaseStore::Kube(s) => s.write(lease, expected).await,
        }
    }

    async fn release(&self, holder: &str) -> Result<(), ProviderError> {
        match self {
            AnyLeaseStore::Arm(s) => s.release(holder).await,
            AnyLeaseStore::Kube(s) => s.release(holder).await,
        }
    }
}
