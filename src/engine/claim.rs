//! Claiming a warm-pool member (docs/pool.md): what `up` runs on when the file has `pool:`, and
//! how `down`, `status`, `extend` and `kubeconfig` find the member a PR claimed.
//!
//! Claiming is one compare-and-swap of the member's record ([`Provider::swap_record`]) from
//! idle to claimed, bound to the PR by `ephemera-pool-alias` (the name the PR's environment
//! would have had): of two `up`s only one wins a member, and an `up` killed around the claim
//! leaves either an idle member or a claimed one that `down` and `gc` find like any environment.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::config::Environment;
use crate::plan::Plan;
use crate::providers::Provider;
use crate::providers::any::AnyProvider;
use crate::record::{Membership, PoolState, Record};

/// What makes two members interchangeable: the provider settings and everything the add-on
/// step installs (versions, sources, values, overlays), as a hex SHA-256.
pub fn fingerprint(plan: &Plan) -> String {
    let json = serde_json::json!({ "provider": plan.env.provider, "addons": plan.addons });
    hex::encode(Sha256::digest(json.to_string().as_bytes()))
}

/// The name stem of this profile's members at `fingerprint`: `pool-<8 hex>`. Members are
/// `<stem>-<slot>`, slots counted from 0, so two `pool ensure`s that see the same pool pick the
/// same names and converge on the same clusters instead of making twice as many.
pub(crate) fn stem(profile: &str, fingerprint: &str) -> String {
    let h = Sha256::digest(format!("{profile}\n{fingerprint}").as_bytes());
    format!("pool-{}", &hex::encode(h)[..8])
}

/// Whether `r` is a member of this file's pool.
pub(crate) fn of_profile(r: &Record, env: &Environment) -> bool {
    r.pool.is_some() && r.env_file.as_deref() == Some(env.metadata.name.as_str())
}

/// An idle member `up` may claim: the same fingerprint, younger than `maxAge`, not expired.
pub(crate) fn claimable(r: &Record, env: &Environment, fingerprint: &str, now: Timestamp) -> bool {
    let Some(pool) = &env.pool else { return false };
    of_profile(r, env)
        && r.is_idle_member()
        && r.pool
            .as_ref()
            .is_some_and(|p| p.fingerprint == fingerprint)
        && !too_old(r, pool.max_age_duration(), now)
        && !r.is_expired(now)
}

pub(crate) fn too_old(r: &Record, max_age: Duration, now: Timestamp) -> bool {
    let age = SignedDuration::from_secs(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
    r.created_at.checked_add(age).is_ok_and(|t| t <= now)
}

/// The name environment `name` is kept under: itself, or, with a pool, the claimed member bound
/// to it. Without `pool:` in the file nothing is listed and `name` is returned as it is.
///
/// # Errors
/// The provider's listing error (never read as "nothing exists").
pub async fn resolve(
    provider: &AnyProvider,
    env: &Environment,
    name: &str,
) -> Result<String, crate::Error> {
    if env.pool.is_none() {
        return Ok(name.to_string());
    }
    let records = provider.list().await?;
    Ok(bound(&records, env, name).map_or_else(|| name.to_string(), |r| r.name.clone()))
}

/// The environment `name` answers to among `records`: its own, else a member claimed for it.
pub(crate) fn bound<'r>(
    records: &'r [Record],
    env: &Environment,
    name: &str,
) -> Option<&'r Record> {
    records.iter().find(|r| r.name == name).or_else(|| {
        records
            .iter()
            .find(|r| of_profile(r, env) && r.answers_to(name))
    })
}

/// The record of a member claimed for the plan's environment: its name and fingerprint kept,
/// everything else the plan's (PR, repository, who, expiry counted from now).
fn claimed(member: &Record, plan: &Plan) -> Record {
    let planned = &plan.record;
    Record {
        name: member.name.clone(),
        provider: member.provider.clone(),
        repository: planned.repository.clone(),
        pr: planned.pr,
        created_at: planned.created_at,
        expires_at: planned.expires_at,
        created_by: planned.created_by.clone(),
        version: planned.version.clone(),
        url: None,
        env_file: member.env_file.clone(),
        pool: Some(Membership {
            state: PoolState::Claimed,
            fingerprint: member
                .pool
                .as_ref()
                .map(|p| p.fingerprint.clone())
                .unwrap_or_default(),
            alias: Some(planned.name.clone()),
        }),
    }
}

/// What `up` runs on.
pub(crate) enum Target {
    /// No member: the plan's own environment, created or converged as always.
    Own,
    /// A member bound to this PR, claimed now (`claimed`) or by an earlier run.
    Member { record: Box<Record>, claimed: bool },
}

/// Finds what `up` of the plan's environment runs on: the environment itself when it exists,
/// else a member already claimed for it (a rerun), else an idle member claimed now, else `Own`
/// (a normal create). Claims go in random order, so concurrent `up`s rarely race for the same
/// member; a lost race moves on to the next.
///
/// # Errors
/// The provider's listing or record-writing errors.
pub(crate) async fn claim(provider: &AnyProvider, plan: &Plan) -> Result<Target, crate::Error> {
    let env = &plan.env;
    if env.pool.is_none() {
        return Ok(Target::Own);
    }
    let name = plan.record.name.as_str();
    let records = provider.list().await?;
    match bound(&records, env, name) {
        Some(r) if r.name == name => return Ok(Target::Own),
        Some(r) => {
            return Ok(Target::Member {
                record: Box::new(r.clone()),
                claimed: false,
            });
        }
        None => {}
    }
    let fp = fingerprint(plan);
    let now = Timestamp::now();
    let mut idle: Vec<&Record> = records
        .iter()
        .filter(|r| claimable(r, env, &fp, now))
        .collect();
    use rand::seq::SliceRandom as _;
    idle.shuffle(&mut rand::rng());
    tracing::info!(
        "looking for an idle warm-pool member for {name}: {} usable",
        idle.len()
    );
    for member in idle {
        let wanted = claimed(member, plan);
        if provider.swap_record(member, &wanted).await? {
            tracing::info!(
                environment = name,
                member = member.name.as_str(),
                "claimed warm-pool member {} for {name}",
                member.name
            );
            return Ok(Target::Member {
                record: Box::new(wanted),
                claimed: true,
            });
        }
        tracing::info!(
            "warm-pool member {} was taken first; trying the next",
            member.name
        );
    }
    Ok(Target::Own)
}
