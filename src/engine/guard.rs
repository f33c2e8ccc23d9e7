//! Holding a lease while a run works: [`preflight`] before anything changes, [`guarded`]
//! around each step, [`taken_over`] to explain a failed step. The runner
//! ([`super::runner::Runner`]) is their only caller.

use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::EngineError;
use super::lease::{self, Decision, LeaseError, LeaseRecord, LeaseStore};
use crate::providers::any::AnyProvider;
use crate::providers::lease::AnyLeaseStore;
use crate::providers::{Provider, ProviderError};

/// How often a running step looks at its lease: a `down` or a newer `up` that took it stops the
/// step within this long.
pub const LEASE_CHECK: Duration = Duration::from_secs(3);

/// Reads the lease of an existing environment before anything is changed, and gives way to a
/// live `down` or newer `up` (down always wins: an `up` that starts while a `down` runs must not
/// repair or recreate the cluster under it). An environment that does not exist yet, or does not
/// answer, has nothing to give way to. Returns the store when it was made without the cluster
/// (ARM), so the run keeps using it.
///
/// # Errors
/// [`LeaseError::Held`] (exit 4) when another run wins.
pub async fn preflight<'a>(
    provider: &'a AnyProvider,
    name: &str,
    me: &LeaseRecord,
) -> Result<Option<AnyLeaseStore<'a>>, crate::Error> {
    let limit = Duration::from_secs(10);
    let Ok(Ok(store)) = tokio::time::timeout(limit, provider.lease_store(name, None)).await else {
        return Ok(None);
    };
    if let Ok(Ok(current)) = tokio::time::timeout(limit, store.read()).await
        && let Decision::GiveWay { holder } =
            lease::decide(current.as_ref().map(|(l, _)| l), me, Timestamp::now())
    {
        return Err(EngineError::from(LeaseError::Held {
            env: name.to_string(),
            holder_lease: holder,
        })
        .into());
    }
    Ok(store.on_provider_resource().then_some(store))
}

/// After a failed step: whether the environment was deleted (by a `down` or `gc`) or its lease
/// taken by another run meanwhile.
///
/// With `existed` (the cluster step had succeeded), a missing environment means someone deleted
/// it, and a cluster that does not answer is looked at again for up to 30 s, since a `down`
/// stops a cluster before it removes it. Without, the environment may never have existed, so
/// only a live lease of another run counts, read once.
pub async fn taken_over(
    provider: &AnyProvider,
    name: &str,
    me: &LeaseRecord,
    existed: bool,
) -> Option<LeaseError> {
    let until = Instant::now() + Duration::from_secs(if existed { 30 } else { 0 });
    loop {
        let verdict = match provider.lease_store(name, None).await {
            Err(ProviderError::NotFound(_)) => Ok(Some(gone(name))),
            Ok(store) => judge(&store, name, me).await,
            Err(e) => Err(e.to_string()),
        };
        match verdict {
            Ok(Some(LeaseError::Gone { .. })) if !existed => return None,
            Ok(v) => return v,
            // Unreadable for now: a cluster being torn down, or a passing hiccup.
            Err(_) if Instant::now() < until => {}
            Err(_) => return None,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn gone(name: &str) -> LeaseError {
    LeaseError::Gone {
        env: name.to_string(),
    }
}

/// Reads the lease once: `Some` when another live run holds it or the environment is gone.
async fn judge(
    store: &AnyLeaseStore<'_>,
    name: &str,
    me: &LeaseRecord,
) -> Result<Option<LeaseError>, String> {
    match store.read().await {
        Ok(Some((l, _))) if l.holder != me.holder && !l.is_expired(Timestamp::now()) => {
            Ok(Some(LeaseError::Lost {
                env: name.to_string(),
                by: l,
            }))
        }
        Ok(None) if store.on_provider_resource() => Ok(Some(gone(name))),
        Ok(_) => Ok(None),
        Err(ProviderError::NotFound(_)) => Ok(Some(gone(name))),
        Err(e) => Err(super::chain(&e)),
    }
}

/// Runs one step of `up` while watching its lease: the step's result, or the lease error as soon
/// as another run takes the environment or deletes it (the step is dropped there; every step is
/// an ensure, so that is safe). Renews the lease as it goes, so a step longer than the lease
/// never lets it lapse.
///
/// # Errors
/// The step's error; [`LeaseError::Lost`] or [`LeaseError::Gone`] (exit 4).
pub async fn guarded<T, E>(
    store: &AnyLeaseStore<'_>,
    provider: &AnyProvider,
    name: &str,
    me: &LeaseRecord,
    step: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, crate::Error>
where
    E: Into<crate::Error>,
{
    let watch = async {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(LEASE_CHECK).await;
            match judge(store, name, me).await {
                Ok(Some(lost)) => return lost,
                Ok(None) => {}
                // Unreadable: gone when the provider no longer has it, else a passing hiccup.
                Err(e) => {
                    if let Err(ProviderError::NotFound(_)) = provider.kubeconfig(name).await {
                        return gone(name);
                    }
                    tracing::debug!("reading the lease of {name}: {e}");
                }
            }
            let duration = Duration::from_secs(me.duration_seconds);
            if renewed.elapsed() >= duration / 3 {
                match lease::check_and_renew(store, name, me).await {
                    Ok(()) => renewed = Instant::now(),
                    Err(LeaseError::Store(e)) => {
                        tracing::debug!("renewing the lease of {name}: {}", super::chain(&e));
                    }
                    Err(lost) => return lost,
                }
            }
        }
    };
    tokio::select! {
        biased;
        r = step => r.map_err(Into::into),
        lost = watch => Err(EngineError::from(lost).into()),
    }
}
