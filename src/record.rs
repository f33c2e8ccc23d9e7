//! The environment record: what ephemera knows about one environment.
//!
//! Records live on the resources themselves (ARM tags on the managed cluster, the `ephemera`
//! ConfigMap in `kube-system`, labels on every object), never in a local file: CI runners are
//! stateless, and a record that lives next to the cluster cannot drift from it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Keys used when a record is stored as flat string pairs (ConfigMap data, ARM tags).
///
/// ARM tag names may not contain `/`, so the same short keys serve both stores.
pub mod keys {
    pub const MANAGED_BY: &str = "ephemera-managed-by";
    pub const ENVIRONMENT: &str = "ephemera-environment";
    pub const PROVIDER: &str = "ephemera-provider";
    pub const REPOSITORY: &str = "ephemera-repository";
    pub const PR: &str = "ephemera-pr";
    pub const CREATED_AT: &str = "ephemera-created-at";
    pub const EXPIRES_AT: &str = "ephemera-expires-at";
    pub const CREATED_BY: &str = "ephemera-created-by";
    pub const VERSION: &str = "ephemera-version";
    pub const URL: &str = "ephemera-url";
    pub const ENV_FILE: &str = "ephemera-env-file";
    /// `idle` or `claimed`: the environment was made as a warm-pool member.
    pub const POOL: &str = "ephemera-pool";
    /// The pool fingerprint (provider settings, add-on versions, values) it was made with.
    pub const POOL_FINGERPRINT: &str = "ephemera-pool-fingerprint";
    /// On a claimed member: the name the PR's environment would have had (`pr-42`), by which
    /// `down`, `status`, `kubeconfig` and a rerun of `up` find it.
    pub const POOL_ALIAS: &str = "ephemera-pool-alias";
}

/// Whether a warm-pool member is waiting for a PR or bound to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PoolState {
    /// Made ahead, bound to no PR; `up` may claim it.
    Idle,
    /// Bound to a PR by an `up`; never goes back to the pool.
    Claimed,
    /// Taken out of the pool by `pool ensure` (too old, a stale fingerprint, one too many) and
    /// being deleted; never claimed.
    Retiring,
}

impl PoolState {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolState::Idle => "idle",
            PoolState::Claimed => "claimed",
            PoolState::Retiring => "retiring",
        }
    }
}

/// What a warm-pool member's record says about its membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub state: PoolState,
    pub fingerprint: String,
    /// The PR environment's usual name, once claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// One environment as recorded on its resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The environment name, a DNS-1123 label such as `pr-42`.
    pub name: String,
    /// `aks`, `kind` or `local`.
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<u64>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Who created it: the credential's principal, or the local user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The ephemera version that wrote the record.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment file's `metadata.name`, so `gc` and `list` can tell profiles apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<String>,
    /// Set on warm-pool members (docs/pool.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Membership>,
}

/// A stored record could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "record is not managed by ephemera (no {} = ephemera)",
        keys::MANAGED_BY
    )]
    NotOurs,
    #[error("record field {key} is missing")]
    Missing { key: &'static str },
    #[error("record field {key} has an invalid value {value:?}")]
    Invalid { key: &'static str, value: String },
}

impl Record {
    /// Whether the environment's TTL has passed at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at <= now
    }

    /// The expiry after activity (an `up` or `deploy`) at `now`: at least `now + ttl`, capped at
    /// `created_at + max_lifetime`, and never earlier than it is (an `extend` beyond the cap
    /// stays).
    pub fn renewed_expiry(
        &self,
        now: Timestamp,
        ttl: std::time::Duration,
        max_lifetime: Option<std::time::Duration>,
    ) -> Timestamp {
        let after = |t: Timestamp, d: std::time::Duration| {
            let d = jiff::SignedDuration::from_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            t.checked_add(d).unwrap_or(Timestamp::MAX)
        };
        let mut wanted = after(now, ttl);
        if let Some(max) = max_lifetime {
            wanted = wanted.min(after(self.created_at, max));
        }
        self.expires_at.max(wanted)
    }

    /// The record as flat string pairs, for ConfigMap data and ARM tags.
    pub fn to_pairs(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(keys::MANAGED_BY.into(), crate::MANAGER.into());
        m.insert(keys::ENVIRONMENT.into(), self.name.clone());
        m.insert(keys::PROVIDER.into(), self.provider.clone());
        if let Some(r) = &self.repository {
            m.insert(keys::REPOSITORY.into(), r.clone());
        }
        if let Some(pr) = self.pr {
            m.insert(keys::PR.into(), pr.to_string());
        }
        m.insert(keys::CREATED_AT.into(), self.created_at.to_string());
        m.insert(keys::EXPIRES_AT.into(), self.expires_at.to_string());
        if let Some(c) = &self.created_by {
            m.insert(keys::CREATED_BY.into(), c.clone());
        }
        m.insert(keys::VERSION.into(), self.version.clone());
        if let Some(u) = &self.url {
            m.insert(keys::URL.into(), u.clone());
        }
        if let Some(f) = &self.env_file {
            m.insert(keys::ENV_FILE.into(), f.clone());
        }
        if let Some(p) = &self.pool {
            m.insert(keys::POOL.into(), p.state.as_str().into());
            m.insert(keys::POOL_FINGERPRINT.into(), p.fingerprint.clone());
            if let Some(a) = &p.alias {
                m.insert(keys::POOL_ALIAS.into(), a.clone());
            }
        }
        m
    }

    /// Whether this is an idle warm-pool member.
    pub fn is_idle_member(&self) -> bool {
        self.pool.as_ref().map(|p| p.state) == Some(PoolState::Idle)
    }

    /// Whether this record answers to environment name `name`: its own, or, on a claimed
    /// warm-pool member, the PR environment's name it was claimed for.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name
            || self
                .pool
                .as_ref()
                .and_then(|p| p.alias.as_deref())
                .is_some_and(|a| a == name)
    }

    /// Reads a record back from flat string pairs.
    ///
    /// # Errors
    /// [`RecordError::NotOurs`] when the ownership key is absent or names another manager, so
    /// callers such as `gc` can skip foreign resources; `Missing`/`Invalid` for damaged records.
    pub fn from_pairs(m: &BTreeMap<String, String>) -> Result<Self, RecordError> {
        if m.get(keys::MANAGED_BY).map(String::as_str) != Some(crate::MANAGER) {
            return Err(RecordError::NotOurs);
        }
        let get = |key: &'static str| m.get(key).cloned().ok_or(RecordError::Missing { key });
        let time = |key: &'static str| -> Result<Timestamp, RecordError> {
            let v = get(key)?;
            v.parse()
                .map_err(|_| RecordError::Invalid { key, value: v })
        };
        let pr = match m.get(keys::PR) {
            Some(v) => Some(v.parse().map_err(|_| RecordError::Invalid {
                key: keys::PR,
                value: v.clone(),
            })?),
            None => None,
        };
        let pool = match m.get(keys::POOL).map(String::as_str) {
            None => None,
            Some(v) => Some(Membership {
                state: match v {
                    "idle" => PoolState::Idle,
                    "claimed" => PoolState::Claimed,
                    "retiring" => PoolState::Retiring,
                    _ => {
                        return Err(RecordError::Invalid {
                            key: keys::POOL,
                            value: v.to_string(),
                        });
                    }
                },
                fingerprint: get(keys::POOL_FINGERPRINT)?,
                alias: m.get(keys::POOL_ALIAS).cloned(),
            }),
        };
        Ok(Record {
            pool,
            name: get(keys::ENVIRONMENT)?,
            provider: get(keys::PROVIDER)?,
            repository: m.get(keys::REPOSITORY).cloned(),
            pr,
            created_at: time(keys::CREATED_AT)?,
            expires_at: time(keys::EXPIRES_AT)?,
            created_by: m.get(keys::CREATED_BY).cloned(),
            version: get(keys::VERSION)?,
            url: m.get(keys::URL).cloned(),
            env_file: m.get(keys::ENV_FILE).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            name: "pr-42".into(),
            provider: "aks".into(),
            repository: Some("acme/cats".into()),
            pr: Some(42),
            created_at: "2026-11-28T10:00:00Z".parse().unwrap(),
            expires_at: "2026-11-29T10:00:00Z".parse().unwrap(),
            created_by: Some("ci@acme".into()),
            version: "0.1.0".into(),
            url: None,
            env_file: Some("pr-aks".into()),
            pool: None,
        }
    }

    #[test]
    fn pairs_round_trip() {
        let r = sample();
        assert_eq!(Record::from_pairs(&r.to_pairs()).unwrap(), r);
    }

    #[test]
    fn pool_membership_round_trips_and_a_claimed_member_answers_to_its_alias() {
        let mut r = sample();
        r.name = "pool-1a2b3c4d".into();
        r.pool = Some(Membership {
            state: PoolState::Claimed,
            fingerprint: "ab12".into(),
            alias: Some("pr-42".into()),
        });
        assert_eq!(Record::from_pairs(&r.to_pairs()).unwrap(), r);
        assert!(r.answers_to("pr-42") && r.answers_to("pool-1a2b3c4d"));
        assert!(!r.answers_to("pr-4") && !r.is_idle_member());
        let mut p = r.to_pairs();
        p.insert(keys::POOL.into(), "spare".into());
        assert!(
            matches!(Record::from_pairs(&p), Err(RecordError::Invalid { key, .. }) if key == keys::POOL)
        );
    }

    #[test]
    fn foreign_pairs_are_not_ours() {
        let mut p = sample().to_pairs();
        p.insert(keys::MANAGED_BY.into(), "terraform".into());
        assert!(matches!(Record::from_pairs(&p), Err(RecordError::NotOurs)));
        p.remove(keys::MANAGED_BY);
        assert!(matches!(Record::from_pairs(&p), Err(RecordError::NotOurs)));
    }

    #[test]
    fn damaged_time_is_invalid() {
        let mut p = sample().to_pairs();
        p.insert(keys::EXPIRES_AT.into(), "tomorrow".into());
        assert!(
            matches!(Record::from_pairs(&p), Err(RecordError::Invalid { key, .. }) if key == keys::EXPIRES_AT)
        );
    }

    #[test]
    fn activity_moves_the_expiry_to_now_plus_ttl_within_the_lifetime() {
        let r = sample(); // created 11-28 10:00, expires 11-29 10:00
        let h = |n: u64| std::time::Duration::from_secs(n * 3600);
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let now = t("2026-11-29T08:00:00Z");
        assert_eq!(
            r.renewed_expiry(now, h(24), None),
            t("2026-11-30T08:00:00Z")
        );
        // Never earlier than it is.
        assert_eq!(r.renewed_expiry(now, h(1), None), r.expires_at);
        // Capped at created + maxLifetime (48h: 11-30 10:00).
        let later = t("2026-11-30T06:00:00Z");
        assert_eq!(
            r.renewed_expiry(later, h(24), Some(h(48))),
            t("2026-11-30T10:00:00Z")
        );
        // An expiry already past the cap (extend) stays.
        let extended = Record {
            expires_at: t("2026-12-05T00:00:00Z"),
            ..r
        };
        assert_eq!(
            extended.renewed_expiry(later, h(24), Some(h(48))),
            extended.expires_at
        );
    }

    #[test]
    fn expiry_is_inclusive() {
        let r = sample();
        assert!(r.is_expired(r.expires_at));
        assert!(!r.is_expired(r.created_at));
    }
}
