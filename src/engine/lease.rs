//! Leases: which run may change an environment right now.
//!
//! The lease lives on the environment's own resources (a `coordination.k8s.io` Lease in
//! `kube-system` for kind and local, an ARM tag written with `If-Match` for AKS), never in a
//! local file. The rules are pure and tested here; the record and the stores, which only read
//! and compare-and-swap, are the providers' ([`crate::providers::lease`]).
//!
//! - A free or expired lease is taken.
//! - `down` always wins: it takes the lease from any `up`.
//! - A newer `up` supersedes an older one; the older one notices at its next safe point.
//! - An older `up` that finds a newer one, or any `up` that finds a live `down`, gives way.

use std::time::Duration;

use jiff::Timestamp;

use crate::providers::ProviderError;
pub use crate::providers::lease::{LeaseRecord, LeaseStore, Operation, Written};

/// How long a run's lease lasts without renewal; a killed run frees it after this.
pub const LEASE_DURATION: Duration = Duration::from_secs(300);

/// What to do about the current lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Free, expired or already ours: take (or renew) it.
    Take,
    /// Held by a run we override (down over up, newer up over older up).
    Supersede { previous: LeaseRecord },
    /// Held by a run that wins over us.
    GiveWay { holder: LeaseRecord },
}

/// Decides whether `me` may take the lease `current` at `now`.
pub fn decide(current: Option<&LeaseRecord>, me: &LeaseRecord, now: Timestamp) -> Decision {
    let Some(cur) = current else {
        return Decision::Take;
    };
    if cur.holder == me.holder || cur.is_expired(now) {
        return Decision::Take;
    }
    match (me.operation, cur.operation) {
        (Operation::Down, _) => Decision::Supersede {
            previous: cur.clone(),
        },
        (Operation::Up, Operation::Down) => Decision::GiveWay {
            holder: cur.clone(),
        },
        (Operation::Up, Operation::Up) => {
            if (me.started_at, &me.holder) > (cur.started_at, &cur.holder) {
                Decision::Supersede {
                    previous: cur.clone(),
                }
            } else {
                Decision::GiveWay {
                    holder: cur.clone(),
                }
            }
        }
    }
}

/// Why a lease could not be held.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("environment {env} is held by {op} run {holder} (started {started}, lapses {expires})", op = .holder_lease.operation, holder = .holder_lease.holder, started = .holder_lease.started_at, expires = .holder_lease.expires_at())]
    Held {
        env: String,
        holder_lease: LeaseRecord,
    },
    #[error("environment {env} was taken over by {op} run {holder}; stopping here", op = .by.operation, holder = .by.holder)]
    Lost { env: String, by: LeaseRecord },
    /// The environment (and its lease with it) was deleted under this run.
    #[error("environment {env} was deleted by another run (a down or gc); stopping here")]
    Gone { env: String },
    #[error(transparent)]
    Store(#[from] ProviderError),
}

/// A store error, except that a missing environment means another run deleted it.
fn store_error(env: &str, e: ProviderError) -> LeaseError {
    match e {
        ProviderError::NotFound(_) => LeaseError::Gone {
            env: env.to_string(),
        },
        e => LeaseError::Store(e),
    }
}

/// Takes the lease for `me`, retrying compare-and-swap conflicts.
///
/// # Errors
/// [`LeaseError::Held`] when another run wins over us; store errors as they come.
pub async fn acquire<S: LeaseStore>(
    store: &S,
    env: &str,
    me: &LeaseRecord,
) -> Result<Option<LeaseRecord>, LeaseError> {
    for _ in 0..20 {
        let current = store.read().await.map_err(|e| store_error(env, e))?;
        let now = Timestamp::now();
        let superseded = match decide(current.as_ref().map(|(l, _)| l), me, now) {
            Decision::Take => None,
            Decision::Supersede { previous } => Some(previous),
            Decision::GiveWay { holder } => {
                return Err(LeaseError::Held {
                    env: env.to_string(),
                    holder_lease: holder,
                });
            }
        };
        let mut mine = me.clone();
        mine.renewed_at = now;
        match store
            .write(&mine, current.as_ref().map(|(_, v)| v.as_str()))
            .await
            .map_err(|e| store_error(env, e))?
        {
            Written::Ok => return Ok(superseded),
            Written::Conflict => continue,
        }
    }
    Err(LeaseError::Store(ProviderError::Config(format!(
        "lease for {env} kept changing under us; try again"
    ))))
}

/// Renews the lease if it is still ours; at every safe point of a run.
///
/// # Errors
/// [`LeaseError::Lost`] when another run has taken it.
pub async fn check_and_renew<S: LeaseStore>(
    store: &S,
    env: &str,
    me: &LeaseRecord,
) -> Result<(), LeaseError> {
    for _ in 0..20 {
        let current = store.read().await.map_err(|e| store_error(env, e))?;
        match &current {
            Some((l, _)) if l.holder != me.holder && !l.is_expired(Timestamp::now()) => {
                return Err(LeaseError::Lost {
                    env: env.to_string(),
                    by: l.clone(),
                });
            }
            // Lapsed under a slow step, or removed: take it back unless someone else did.
            _ => {}
        }
        let mut mine = me.clone();
        mine.renewed_at = Timestamp::now();
        match store
            .write(&mine, current.as_ref().map(|(_, v)| v.as_str()))
            .await
            .map_err(|e| store_error(env, e))?
        {
            Written::Ok => return Ok(()),
            Written::Conflict => continue,
        }
    }
    Err(LeaseError::Store(ProviderError::Config(format!(
        "lease for {env} kept changing under us"
    ))))
}

/// A run id: host name, process id and start time. Unique enough across CI runners.
pub fn run_id(now: Timestamp) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(40)
        .collect();
    format!("{host}-{}-{}", std::process::id(), now.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn lease(holder: &str, op: Operation, started: &str) -> LeaseRecord {
        LeaseRecord::new(holder, op, t(started), Duration::from_secs(60))
    }

    const NOW: &str = "2026-11-28T12:00:30Z";

    #[test]
    fn free_expired_or_own_lease_is_taken() {
        let me = lease("me", Operation::Up, NOW);
        assert_eq!(decide(None, &me, t(NOW)), Decision::Take);
        let old = lease("other", Operation::Up, "2026-11-28T11:00:00Z");
        assert_eq!(decide(Some(&old), &me, t(NOW)), Decision::Take);
        let mine = lease("me", Operation::Up, "2026-11-28T12:00:00Z");
        assert_eq!(decide(Some(&mine), &me, t(NOW)), Decision::Take);
    }

    #[test]
    fn down_always_wins() {
        let me = lease("d", Operation::Down, "2026-11-28T12:00:00Z");
        let newer_up = lease("u", Operation::Up, "2026-11-28T12:00:20Z");
        assert!(matches!(
            decide(Some(&newer_up), &me, t(NOW)),
            Decision::Supersede { .. }
        ));
        let up = lease("u2", Operation::Up, NOW);
        assert!(matches!(
            decide(Some(&me), &up, t(NOW)),
            Decision::GiveWay { .. }
        ));
    }

    #[test]
    fn newer_up_supersedes_older_and_older_gives_way() {
        let older = lease("a", Operation::Up, "2026-11-28T12:00:00Z");
        let newer = lease("b", Operation::Up, "2026-11-28T12:00:10Z");
        assert!(matches!(
            decide(Some(&older), &newer, t(NOW)),
            Decision::Supersede { .. }
        ));
        assert!(matches!(
            decide(Some(&newer), &older, t(NOW)),
            Decision::GiveWay { .. }
        ));
    }

    #[test]
    fn tag_round_trips_and_rejects_garbage() {
        let l = lease("runner-1-42-1700000000000", Operation::Down, NOW);
        assert_eq!(LeaseRecord::from_tag(&l.to_tag()), Some(l));
        for bad in [
            "",
            "up",
            "sideways;a;2026-11-28T12:00:00Z;2026-11-28T12:00:00Z;60",
            "up;;2026-11-28T12:00:00Z;2026-11-28T12:00:00Z;60",
            "up;a;x;y;z",
        ] {
            assert_eq!(LeaseRecord::from_tag(bad), None, "{bad}");
        }
    }

    /// An in-memory store with versions, to test the CAS loops.
    #[derive(Default)]
    struct Mem {
        inner: Mutex<Option<(LeaseRecord, u64)>>,
    }

    impl LeaseStore for Mem {
        async fn read(&self) -> Result<Option<(LeaseRecord, String)>, ProviderError> {
            Ok(self
                .inner
                .lock()
                .unwrap()
                .as_ref()
                .map(|(l, v)| (l.clone(), v.to_string())))
        }
        async fn write(
            &self,
            lease: &LeaseRecord,
            expected: Option<&str>,
        ) -> Result<Written, ProviderError> {
            let mut g = self.inner.lock().unwrap();
            let current = g.as_ref().map(|(_, v)| v.to_string());
            if current.as_deref() != expected {
                return Ok(Written::Conflict);
            }
            let next = g.as_ref().map(|(_, v)| v + 1).unwrap_or(1);
            *g = Some((lease.clone(), next));
            Ok(Written::Ok)
        }
        async fn release(&self, holder: &str) -> Result<(), ProviderError> {
            let mut g = self.inner.lock().unwrap();
            if g.as_ref().is_some_and(|(l, _)| l.holder == holder) {
                *g = None;
            }
            Ok(())
        }
    }

    /// A store whose environment was deleted: reads find nothing, writes find no cluster.
    struct Vanished;

    impl LeaseStore for Vanished {
        async fn read(&self) -> Result<Option<(LeaseRecord, String)>, ProviderError> {
            Ok(None)
        }
        async fn write(&self, _: &LeaseRecord, _: Option<&str>) -> Result<Written, ProviderError> {
            Err(ProviderError::NotFound("pr-3".into()))
        }
        async fn release(&self, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_deleted_environment_means_another_run_won_not_bad_input() {
        let me = LeaseRecord::new(
            "u",
            Operation::Up,
            Timestamp::now(),
            Duration::from_secs(60),
        );
        for err in [
            acquire(&Vanished, "pr-3", &me).await.unwrap_err(),
            check_and_renew(&Vanished, "pr-3", &me).await.unwrap_err(),
        ] {
            assert!(matches!(err, LeaseError::Gone { .. }), "{err}");
            assert_eq!(
                crate::engine::EngineError::from(err).exit_status(),
                crate::ExitStatus::LeaseHeld
            );
        }
    }

    #[tokio::test]
    async fn newer_up_takes_over_and_older_notices_at_safe_point() {
        let store = Mem::default();
        let now = Timestamp::now();
        let older = LeaseRecord::new("a", Operation::Up, now, Duration::from_secs(120));
        let newer = LeaseRecord::new(
            "b",
            Operation::Up,
            now + jiff::SignedDuration::from_secs(1),
            Duration::from_secs(120),
        );
        assert_eq!(acquire(&store, "pr-1", &older).await.unwrap(), None);
        check_and_renew(&store, "pr-1", &older).await.unwrap();
        let prev = acquire(&store, "pr-1", &newer).await.unwrap();
        assert_eq!(prev.map(|p| p.holder), Some("a".to_string()));
        let err = check_and_renew(&store, "pr-1", &older).await.unwrap_err();
        assert!(
            matches!(err, LeaseError::Lost { ref by, .. } if by.holder == "b"),
            "{err}"
        );
        // The older run cannot take it back either.
        assert!(matches!(
            acquire(&store, "pr-1", &older).await,
            Err(LeaseError::Held { .. })
        ));
    }

    #[tokio::test]
    async fn down_takes_over_a_live_up_and_up_gives_way() {
        let store = Mem::default();
        let now = Timestamp::now();
        let up = LeaseRecord::new("u", Operation::Up, now, Duration::from_secs(120));
        let down = LeaseRecord::new("d", Operation::Down, now, Duration::from_secs(120));
        acquire(&store, "pr-2", &up).await.unwrap();
        acquire(&store, "pr-2", &down).await.unwrap();
        assert!(matches!(
            check_and_renew(&store, "pr-2", &up).await,
            Err(LeaseError::Lost { .. })
        ));
        let later_up = LeaseRecord::new(
            "u2",
            Operation::Up,
            now + jiff::SignedDuration::from_secs(5),
            Duration::from_secs(120),
        );
        assert!(matches!(
            acquire(&store, "pr-2", &later_up).await,
            Err(LeaseError::Held { .. })
        ));
        store.release("d").await.unwrap();
        assert_eq!(acquire(&store, "pr-2", &later_up).await.unwrap(), None);
    }
}
