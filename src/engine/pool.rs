//! The warm pool: clusters made ahead with every add-on installed, that `up` claims instead of
//! creating one (docs/pool.md).
//!
//! A member is an ordinary environment whose record (ARM tags, the `kube-system` record) says
//! `ephemera-pool: idle` with the fingerprint it was made with; `up` claims it (see
//! [`super::claim`]). This module keeps the pool filled: `pool ensure`. Nothing is kept on the
//! runner.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use super::claim::{fingerprint, resolve};
use super::claim::{of_profile, stem, too_old};
use super::lease::Operation;
use super::runner::{Runner, Start};
use super::up::steps::{self, Context};
use super::up::{UpOptions, rollback};
use crate::config::Environment;
use crate::plan::Plan;
pub use crate::plan::{Capacity, pool_capacity as capacity};
use crate::progress::Progress;
use crate::providers::Provider;
use crate::providers::any::{AnyProvider, ProviderOptions};
use crate::record::{Membership, PoolState, Record};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// The image a member's plan is made with when the file names none: members get no app, so
/// it is never pulled.
const NO_IMAGE: &str = "ephemera.invalid/pool-member:none";

/// What `pool ensure` is asked to do.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    pub env_file: PathBuf,
    pub templates: Option<PathBuf>,
    pub sources: crate::addons::SourceOptions,
    /// Per member: the longest to wait without progress, and the longest in all.
    pub timeout: Duration,
    pub deadline: Duration,
}

/// One member as `pool ensure` left it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub name: String,
    /// `idle`, `claimed`, `retiring`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub created_at: Timestamp,
}

/// What `pool ensure` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolReport {
    pub profile: String,
    pub size: u32,
    pub fingerprint: String,
    /// Members made by this run.
    pub created: Vec<String>,
    /// Members this run deleted, with why.
    pub deleted: Vec<Retired>,
    /// Every member afterwards, claimed ones included.
    pub members: Vec<Member>,
    /// What the idle members hold, e.g. `2 x 3 Standard_D4s_v5 nodes`.
    pub capacity: Capacity,
    /// Members that could not be made or deleted (the run exits 1).
    pub failures: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retired {
    pub name: String,
    pub reason: &'static str,
}

/// The plan request of member `name`: no PR, nothing from a PR.
fn member_request(opts: &PoolOptions, name: &str) -> crate::plan::Request {
    crate::plan::Request {
        env_file: opts.env_file.clone(),
        pr: None,
        name: Some(name.to_string()),
        image: None,
        branch: None,
        title: None,
        repository: None,
        now: None,
        ttl: None,
        templates: opts.templates.clone(),
        resolve_secrets: false,
    }
}

/// The plan a member named `name` is made from: the file's, with no PR, no app to run and a
/// record marking it idle with `fingerprint`, expiring at `maxAge` (so `gc` collects a member
/// nothing replaced).
fn member_plan(opts: &PoolOptions, name: Option<&str>) -> Result<Plan, crate::Error> {
    let env = crate::config::load(&opts.env_file)?;
    let mut request = member_request(opts, name.unwrap_or("pool-00000000-0"));
    request.image = Some(
        env.app
            .image
            .clone()
            .unwrap_or_else(|| NO_IMAGE.to_string()),
    );
    request.now = Some(Timestamp::now().to_string());
    let mut plan = crate::plan::run(&request)?;
    let max_age = env
        .pool
        .as_ref()
        .map_or(Duration::ZERO, |p| p.max_age_duration());
    let fp = fingerprint(&plan);
    let r = &mut plan.record;
    r.pr = None;
    r.expires_at = r
        .created_at
        .checked_add(SignedDuration::from_secs(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .unwrap_or(Timestamp::MAX);
    r.pool = Some(Membership {
        state: PoolState::Idle,
        fingerprint: fp,
        alias: None,
    });
    Ok(plan)
}

/// Brings the pool of `opts.env_file` to `pool.size` idle, current members: idle members with a
/// stale fingerprint, older than `maxAge`, or beyond `size` are taken out (a compare-and-swap to
/// `retiring`, so a member an `up` claims at the same moment is never deleted) and deleted, and
/// missing ones are made (in parallel) up to the size and `limits.maxEnvironments`. Claimed
/// members are never touched. Safe to run concurrently: members are named by slot, so two runs
/// that see the same pool make the same clusters, and each member is made under its own lease.
///
/// # Errors
/// Bad input (exit 2); the provider's listing error. A member that cannot be made or deleted is
/// reported in [`PoolReport::failures`].
pub async fn ensure(
    opts: &PoolOptions,
    progress: Arc<dyn Progress>,
) -> Result<PoolReport, crate::Error> {
    let template = member_plan(opts, None)?;
    let env = &template.env;
    let Some(pool) = env.pool.clone() else {
        return Err(super::EngineError::Invalid(format!(
            "{}: has no pool: section; add pool: {{size: N}} to keep a warm pool",
            opts.env_file.display()
        ))
        .into());
    };
    crate::addons::sources::check(&template.addons, &opts.sources)?;
    let provider =
        AnyProvider::from_env(env, template.renderer.clone(), &ProviderOptions::default())?;
    let fp = fingerprint(&template);
    let stem = stem(&env.metadata.name, &fp);
    let now = Timestamp::now();
    let records = provider.list().await?;
    let (keep, retire) = sort_members(&records, env, &fp, now);
    let mut report = PoolReport {
        profile: env.metadata.name.clone(),
        size: pool.size,
        fingerprint: fp,
        created: Vec::new(),
        deleted: Vec::new(),
        members: Vec::new(),
        capacity: capacity(env)
            .ok_or_else(|| super::EngineError::Invalid("a pool without capacity".into()))?,
        failures: Vec::new(),
    };
    for (member, reason) in retire {
        retire_one(&provider, member, reason, &mut report).await?;
    }
    let wanted = to_make(&records, env, keep, &report);
    let names = free_slots(&records, &stem, wanted);
    let makes = names.iter().map(|n| make(opts, n, progress.clone()));
    for (name, made) in names.iter().zip(futures::future::join_all(makes).await) {
        match made {
            Ok(()) => report.created.push(name.clone()),
            Err(e) => report
                .failures
                .push(format!("making {name}: {}", super::chain(&e))),
        }
    }
    report.members = provider
        .list()
        .await?
        .iter()
        .filter(|r| of_profile(r, env))
        .map(|r| Member {
            name: r.name.clone(),
            state: r.pool.as_ref().map_or("idle", |p| p.state.as_str()),
            alias: r.pool.as_ref().and_then(|p| p.alias.clone()),
            created_at: r.created_at,
        })
        .collect();
    report.members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(report)
}

/// Splits this profile's idle and retiring members into those kept (current, at most `size`,
/// newest first) and those to retire, with why.
fn sort_members<'r>(
    records: &'r [Record],
    env: &Environment,
    fingerprint: &str,
    now: Timestamp,
) -> (usize, Vec<(&'r Record, &'static str)>) {
    let size = env.pool.as_ref().map_or(0, |p| p.size as usize);
    let max_age = env
        .pool
        .as_ref()
        .map_or(Duration::ZERO, |p| p.max_age_duration());
    let mut current: Vec<&Record> = Vec::new();
    let mut retire = Vec::new();
    for r in records.iter().filter(|r| of_profile(r, env)) {
        let Some(m) = &r.pool else { continue };
        match m.state {
            PoolState::Claimed => {}
            PoolState::Retiring => retire.push((r, "left retiring by an interrupted run")),
            PoolState::Idle if m.fingerprint != fingerprint => {
                retire.push((
                    r,
                    "stale fingerprint (provider settings or add-ons changed)",
                ));
            }
            PoolState::Idle if too_old(r, max_age, now) || r.is_expired(now) => {
                retire.push((r, "older than pool.maxAge"));
            }
            PoolState::Idle => current.push(r),
        }
    }
    current.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.name.cmp(&b.name)));
    for extra in current.iter().skip(size) {
        retire.push((extra, "more idle members than pool.size"));
    }
    (current.len().min(size), retire)
}

/// How many members to make: up to `size`, within `limits.maxEnvironments` (which counts every
/// environment of the profile, members included, less the ones just deleted).
fn to_make(records: &[Record], env: &Environment, kept: usize, report: &PoolReport) -> usize {
    let size = env.pool.as_ref().map_or(0, |p| p.size as usize);
    let mut wanted = size.saturating_sub(kept);
    if let Some(limit) = env.limits.max_environments {
        let existing = records
            .iter()
            .filter(|r| r.env_file.as_deref() == Some(env.metadata.name.as_str()))
            .filter(|r| !report.deleted.iter().any(|d| d.name == r.name))
            .count();
        let room = (limit as usize).saturating_sub(existing);
        if room < wanted {
            tracing::warn!(
                "limits.maxEnvironments is {limit} and {existing} environments of profile {} exist: making {room} of {wanted} missing pool members",
                env.metadata.name
            );
        }
        wanted = wanted.min(room);
    }
    wanted
}

/// The first `n` names `<stem>-<slot>` no environment has.
fn free_slots(records: &[Record], stem: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{stem}-{i}"))
        .filter(|name| !records.iter().any(|r| &r.name == name))
        .take(n)
        .collect()
}

/// Takes `member` out of the pool (unless an `up` claimed it first) and deletes it.
async fn retire_one(
    provider: &AnyProvider,
    member: &Record,
    reason: &'static str,
    report: &mut PoolReport,
) -> Result<(), crate::Error> {
    let mut retiring = member.clone();
    if let Some(m) = retiring.pool.as_mut() {
        m.state = PoolState::Retiring;
    }
    if member.is_idle_member() && !provider.swap_record(member, &retiring).await? {
        tracing::info!(
            "warm-pool member {} changed meanwhile (claimed?); left as it is",
            member.name
        );
        return Ok(());
    }
    tracing::info!("deleting warm-pool member {}: {reason}", member.name);
    match provider.delete(&member.name).await {
        Ok(_) => {
            super::teardown::forget_kubeconfig(&member.name, None);
            report.deleted.push(Retired {
                name: member.name.clone(),
                reason,
            });
        }
        Err(e) => report
            .failures
            .push(format!("deleting {}: {}", member.name, super::chain(&e))),
    }
    Ok(())
}

/// Makes member `name`: the steps of `up` up to the add-ons, under the member's lease; a member
/// whose making fails is deleted again.
async fn make(
    opts: &PoolOptions,
    name: &str,
    progress: Arc<dyn Progress>,
) -> Result<(), crate::Error> {
    let plan = member_plan(opts, Some(name))?;
    let up = UpOptions {
        request: member_request(opts, name),
        sources: opts.sources.clone(),
        kubeconfig: None,
        keep_on_failure: false,
        timeout: opts.timeout,
        deadline: opts.deadline,
        insecure: false,
        github: false,
        sha: None,
    };
    let provider = AnyProvider::from_env(
        &plan.env,
        plan.renderer.clone(),
        &ProviderOptions::default(),
    )?;
    let bounds = crate::deadline::Bounds::new(opts.timeout, opts.deadline);
    let ctx = Context {
        opts: &up,
        env: &plan.env,
        plan: &plan,
        renderer: &plan.renderer,
        provider: &provider,
        record: &plan.record,
        name,
        progress,
        bounds: &bounds,
    };
    let mut run = Runner::new(Start {
        provider: &provider,
        name,
        operation: Operation::Up,
        order: &steps::STEPS,
        progress: ctx.progress.clone(),
        keep_on_failure: false,
        bounds: &bounds,
    });
    run.preflight().await?;
    let result = steps::prepare(&ctx, &mut run).await;
    run.finish(result, || rollback(&ctx)).await?;
    // Hibernated: stopped once ready; the claiming up's cluster step starts it.
    if plan.env.pool.as_ref().is_some_and(|p| p.stopped) {
        provider.hibernate(name).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::claim::{bound, claimable};

    fn env(size: u32) -> Environment {
        let yaml = format!(
            "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata: {{name: p}}\nprovider: {{local: {{nodes: 2}}}}\napp: {{name: cats, image: ghcr.io/acme/cats:v1, port: 8080}}\npool: {{size: {size}, maxAge: 2h}}\n"
        );
        serde_saphyr::from_str(&yaml).expect("environment")
    }

    fn member(name: &str, state: PoolState, fp: &str, age_min: i64, now: Timestamp) -> Record {
        let created = now - SignedDuration::from_mins(age_min);
        Record {
            name: name.into(),
            provider: "local".into(),
            repository: None,
            pr: None,
            created_at: created,
            expires_at: created + SignedDuration::from_hours(2),
            created_by: None,
            version: "0".into(),
            url: None,
            env_file: Some("p".into()),
            pool: Some(Membership {
                state,
                fingerprint: fp.into(),
                alias: (state == PoolState::Claimed).then(|| "pr-1".to_string()),
            }),
        }
    }

    #[test]
    fn stale_old_extra_and_left_retiring_members_go_and_claimed_ones_stay() {
        let now = Timestamp::now();
        let records = vec![
            member("a", PoolState::Idle, "new", 10, now),
            member("b", PoolState::Idle, "old", 10, now),
            member("c", PoolState::Idle, "new", 200, now),
            member("d", PoolState::Claimed, "old", 500, now),
            member("e", PoolState::Retiring, "new", 5, now),
            member("f", PoolState::Idle, "new", 20, now),
            member("g", PoolState::Idle, "new", 30, now),
        ];
        let (kept, retire) = sort_members(&records, &env(2), "new", now);
        assert_eq!(kept, 2);
        let mut gone: Vec<(&str, &str)> = retire
            .iter()
            .map(|(r, why)| (r.name.as_str(), *why))
            .collect();
        gone.sort();
        let names: Vec<&str> = gone.iter().map(|g| g.0).collect();
        // a and f are the newest current ones; g is one too many.
        assert_eq!(names, ["b", "c", "e", "g"], "{gone:?}");
        assert!(gone[0].1.contains("fingerprint") && gone[1].1.contains("maxAge"));
        assert!(gone[3].1.contains("pool.size"));
    }

    #[test]
    fn a_claimed_member_answers_to_its_prs_name_and_slots_skip_taken_names() {
        let now = Timestamp::now();
        let records = vec![
            member("pool-x-0", PoolState::Claimed, "f", 1, now),
            member("pool-x-2", PoolState::Idle, "f", 1, now),
        ];
        let e = env(3);
        assert_eq!(
            bound(&records, &e, "pr-1").map(|r| r.name.as_str()),
            Some("pool-x-0")
        );
        assert!(bound(&records, &e, "pr-2").is_none());
        assert_eq!(free_slots(&records, "pool-x", 2), ["pool-x-1", "pool-x-3"]);
        assert!(claimable(&records[1], &e, "f", now));
        assert!(!claimable(&records[1], &e, "g", now), "another fingerprint");
        assert!(!claimable(&records[0], &e, "f", now), "claimed already");
    }

    #[test]
    fn capacity_is_members_times_nodes() {
        let c = capacity(&env(3)).expect("a pool");
        assert_eq!((c.members, c.nodes_per_member), (3, 2));
        assert!(
            c.to_string()
                .starts_with("3 members x 2 simulated nodes = 6 nodes idle"),
            "{c}"
        );
    }
}
