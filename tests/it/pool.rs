//! The warm pool through the real binary: `pool ensure` fills, replaces and trims; concurrent
//! `up`s claim each member at most once and fall back to creating; `down --pr` finds a claimed
//! member; `pool ensure` twice at once ends with exactly `size` idle members; kill -9 around a
//! claim leaks nothing and claims nothing twice.
//!
//! AKS runs on the fake ARM, whose clusters are all the one shared control plane with Argo
//! Rollouts; local runs on the real control-plane binaries, one cluster per member.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::fake_arm::{Config, FakeArm};
use crate::common::lifecycle::{
    Followed, ROLLOUTS_ONLY, Sandbox, aks_env, describe, local_env, manifests, rollouts_kubeconfig,
    with_app,
};

const IMAGE: &str = "ghcr.io/acme/cats:v1";

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// `yaml` with a pool section.
fn with_pool(yaml: &str, size: u32) -> String {
    format!("{yaml}pool:\n  size: {size}\n  maxAge: 12h\n")
}

fn up_args<'a>(env: &'a str, pr: &'a str, manifests: &'a str) -> Vec<&'a str> {
    vec![
        "up",
        "--env",
        env,
        "--pr",
        pr,
        "--image",
        IMAGE,
        "--manifests",
        manifests,
        "--timeout",
        "300s",
    ]
}

/// `up_args` with `--output json`, for runs whose stdout is read directly.
fn up_json<'a>(env: &'a str, pr: &'a str, manifests: &'a str) -> Vec<&'a str> {
    let mut a = up_args(env, pr, manifests);
    a.extend(["--output", "json"]);
    a
}

fn spawn(sb: &Sandbox, args: &[&str]) -> Child {
    sb.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ephemera starts")
}

/// Every record of the profile `list` shows, by name.
fn listed(sb: &Sandbox, env: &str) -> BTreeMap<String, Value> {
    sb.json(&["list", "--env", env])
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| (r["name"].as_str().expect("name").to_string(), r.clone()))
        .collect()
}

/// Names of members in `state` (`idle`, `claimed`, `retiring`).
fn members(rows: &BTreeMap<String, Value>, state: &str) -> BTreeSet<String> {
    rows.iter()
        .filter(|(_, r)| r["pool"]["state"] == state)
        .map(|(n, _)| n.clone())
        .collect()
}

/// An AKS sandbox whose profile has a pool of `size`, and its environment file; `None` when the
/// plane cannot start.
async fn aks_pool(profile: &str, size: u32, cfg: Config) -> Option<(FakeArm, Sandbox, String)> {
    let kubeconfig = rollouts_kubeconfig()?;
    let fake = FakeArm::start(Config {
        kubeconfig: Some(kubeconfig),
        ..cfg
    })
    .await;
    let sb = Sandbox::aks(&fake);
    let env = pr_env(&sb, profile, size, "pool");
    Some((fake, sb, env))
}

/// The profile's file for one PR: every AKS cluster here is the one shared plane, so each PR's
/// app needs a name (and namespace) of its own there; the pool is the profile's, and the app is
/// no part of a member's fingerprint, so all these files share one pool.
fn pr_env(sb: &Sandbox, profile: &str, size: u32, pr: &str) -> String {
    let yaml = with_pool(
        &with_app(
            &aks_env(profile, ROLLOUTS_ONLY, "24h"),
            &format!("{profile}{pr}"),
        ),
        size,
    );
    let env = sb.write(&format!("{profile}-{pr}.yaml"), &yaml);
    env.to_str().expect("UTF-8").to_string()
}

fn pool_ensure(sb: &Sandbox, env: &str, manifests: &str) -> Value {
    sb.json(&["pool", "ensure", "--env", env, "--manifests", manifests])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_ups_against_a_pool_of_three_make_three_claims_and_seven_creates() {
    let Some((fake, sb, env)) = aks_pool("claims", 3, Config::default()).await else {
        return;
    };
    let manifests = manifests();
    let filled = pool_ensure(&sb, &env, &manifests);
    let made: BTreeSet<String> = filled["created"]
        .as_array()
        .expect("created")
        .iter()
        .map(|n| n.as_str().expect("name").to_string())
        .collect();
    assert_eq!(made.len(), 3, "{filled:#}");
    assert_eq!(members(&listed(&sb, &env), "idle"), made);
    assert!(
        filled["capacity"]["members"] == 3 && filled["capacity"]["nodeSize"] == "Standard_D4s_v5",
        "{filled:#}"
    );

    let prs: Vec<String> = (1..=10).map(|n| n.to_string()).collect();
    let files: BTreeMap<String, String> = prs
        .iter()
        .map(|pr| (pr.clone(), pr_env(&sb, "claims", 3, pr)))
        .collect();
    let runs: Vec<(String, Child)> = prs
        .iter()
        .map(|pr| (pr.clone(), spawn(&sb, &up_json(&files[pr], pr, &manifests))))
        .collect();
    let mut claimed_by: BTreeMap<String, String> = BTreeMap::new();
    let mut created = BTreeSet::new();
    for (pr, child) in runs {
        let o = child.wait_with_output().expect("up ends");
        let args = up_json(&files[&pr], &pr, &manifests);
        assert_eq!(code(&o), 0, "{}", describe(&args, &o));
        let report: Value = serde_json::from_slice(&o.stdout).expect("JSON report");
        let name = report["name"].as_str().expect("name").to_string();
        if report["claimed"] == true {
            assert!(
                made.contains(&name),
                "claimed a non-member {name}: {report:#}"
            );
            assert_eq!(report["created"], false);
            let before = claimed_by.insert(name.clone(), pr.clone());
            assert!(
                before.is_none(),
                "{name} claimed twice: by {before:?} and {pr}"
            );
        } else {
            assert_eq!(name, format!("pr-{pr}"));
            assert_eq!(report["created"], true, "{report:#}");
            created.insert(name);
        }
    }
    assert_eq!(claimed_by.len(), 3, "three claims: {claimed_by:?}");
    assert_eq!(created.len(), 7, "seven creates: {created:?}");
    // The fake saw exactly 3 + 7 creations, one per cluster.
    fake.with_state(|s| {
        assert_eq!(s.creates.values().sum::<usize>(), 10, "{:?}", s.creates);
        assert!(s.creates.values().all(|n| *n == 1), "{:?}", s.creates);
    });
    // The records agree: each member bound to the PR that claimed it, none idle any more.
    let rows = listed(&sb, &env);
    assert!(members(&rows, "idle").is_empty(), "{rows:#?}");
    for (member, pr) in &claimed_by {
        let r = &rows[member];
        assert_eq!(r["pool"]["alias"], format!("pr-{pr}"), "{r:#}");
        assert_eq!(r["pr"], pr.parse::<u64>().expect("pr"), "{r:#}");
        // status, kubeconfig and down find the member by the PR.
        let st = sb.json(&["status", "--env", &env, "--pr", pr]);
        assert_eq!(st["record"]["name"], member.as_str(), "{st:#}");
    }
    // A rerun of a claimed PR converges on its member: no claim, no create.
    let (member, pr) = claimed_by.iter().next().expect("a claim");
    let again = sb.json(&up_args(&files[pr], pr, &manifests));
    assert_eq!(again["name"], member.as_str());
    assert_eq!(
        (again["claimed"].as_bool(), again["created"].as_bool()),
        (Some(false), Some(false))
    );
    for pr in &prs {
        sb.ok(&["down", "--env", &env, "--pr", pr]);
    }
    assert!(
        listed(&sb, &env).is_empty(),
        "down --pr removed members and PR clusters alike"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_ensure_twice_at_once_ends_with_exactly_size_idle_members() {
    let Some((fake, sb, env)) = aks_pool(
        "twice",
        2,
        Config {
            polls: 2,
            retry_after: Some("1".into()),
            ..Config::default()
        },
    )
    .await
    else {
        return;
    };
    let manifests = manifests();
    let args = [
        "pool",
        "ensure",
        "--env",
        env.as_str(),
        "--manifests",
        manifests.as_str(),
    ];
    let runs: Vec<Child> = (0..2).map(|_| spawn(&sb, &args)).collect();
    for c in runs {
        let o = c.wait_with_output().expect("pool ensure ends");
        // A run that lost a member's lease to the other gives way (the member is made anyway).
        assert!([0, 1].contains(&code(&o)), "{}", describe(&args, &o));
    }
    let rows = listed(&sb, &env);
    assert_eq!(members(&rows, "idle").len(), 2, "{rows:#?}");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    fake.with_state(|s| {
        assert!(
            s.creates.values().all(|n| *n == 1),
            "each member created once: {:?}",
            s.creates
        );
    });
    // A third run finds the pool full and changes nothing.
    let third = pool_ensure(&sb, &env, &manifests);
    assert_eq!(third["created"], serde_json::json!([]), "{third:#}");
    assert_eq!(third["deleted"], serde_json::json!([]), "{third:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_addon_version_replaces_idle_members_and_never_touches_claimed_ones() {
    let Some((_fake, sb, env)) = aks_pool("stale", 2, Config::default()).await else {
        return;
    };
    let manifests = manifests();
    let first = pool_ensure(&sb, &env, &manifests);
    assert_eq!(
        first["created"].as_array().map(Vec::len),
        Some(2),
        "{first:#}"
    );
    let claim = sb.json(&up_args(&pr_env(&sb, "stale", 2, "5"), "5", &manifests));
    assert_eq!(claim["claimed"], true, "{claim:#}");
    let claimed = claim["name"].as_str().expect("name").to_string();
    let idle_before = members(&listed(&sb, &env), "idle");
    assert_eq!(idle_before.len(), 1);

    // The same file with other add-on values: a new fingerprint.
    let yaml = std::fs::read_to_string(&env).expect("env file");
    let changed = yaml.replace(
        "  argoCd:\n    enabled: false\n",
        "  argoCd:\n    enabled: false\n  argoRollouts:\n    values:\n      pool-test: changed\n",
    );
    assert_ne!(changed, yaml);
    std::fs::write(&env, changed).expect("env file");
    let second = pool_ensure(&sb, &env, &manifests);
    assert_ne!(second["fingerprint"], first["fingerprint"], "{second:#}");
    let deleted: BTreeSet<String> = second["deleted"]
        .as_array()
        .expect("deleted")
        .iter()
        .map(|d| d["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(deleted, idle_before, "{second:#}");
    assert_eq!(
        second["created"].as_array().map(Vec::len),
        Some(2),
        "{second:#}"
    );
    let rows = listed(&sb, &env);
    assert_eq!(rows[&claimed]["pool"]["state"], "claimed", "{rows:#?}");
    assert_eq!(rows[&claimed]["pool"]["alias"], "pr-5");
    assert_eq!(members(&rows, "idle").len(), 2);
    assert!(members(&rows, "idle").is_disjoint(&idle_before));
    sb.ok(&["down", "--env", &env, "--pr", "5"]);
    assert!(!listed(&sb, &env).contains_key(&claimed));
}

/// kill -9 of `up` at each point of a claim (before it, right after the record swap), and of
/// one that had to create, then a rerun or `down`: a member is either idle or bound to exactly one PR, a rerun
/// ends on the member it claimed, and `down` leaves nothing of the PR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_around_a_claim_then_rerun_or_down_leaks_nothing_and_claims_nothing_twice() {
    let Some((fake, sb, env)) = aks_pool("killclaim", 3, Config::default()).await else {
        return;
    };
    let manifests = manifests();
    pool_ensure(&sb, &env, &manifests);
    let points = [
        // Before or during the swap: the member stays idle or is bound; the rerun finishes.
        ("looking for an idle warm-pool member", true),
        // Right after the swap: down finds the member by its alias.
        ("claimed warm-pool member", false),
        ("claimed warm-pool member", true),
        // The pool is used up by now: this one creates, and is killed in its app step.
        ("step app: started", true),
    ];
    for (i, (line, rerun)) in points.iter().enumerate() {
        let pr = (20 + i).to_string();
        let file = pr_env(&sb, "killclaim", 3, &pr);
        let args = up_args(&file, &pr, &manifests);
        let mut verbose = args.clone();
        verbose.push("-v");
        let run = Followed::start(&sb, &verbose);
        let seen = run.wait_for(line, Duration::from_secs(60));
        let mut run = run;
        let _ = run.child.kill();
        let (_, printed) = run.finish();
        assert!(seen, "never printed {line:?}:\n{printed}");
        let rows = listed(&sb, &env);
        let bound: Vec<String> = rows
            .iter()
            .filter(|(_, r)| r["pool"]["alias"] == format!("pr-{pr}"))
            .map(|(n, _)| n.clone())
            .collect();
        assert!(bound.len() <= 1, "pr-{pr} bound to {bound:?}");
        if *rerun {
            let report = sb.json(&args);
            let name = report["name"].as_str().expect("name");
            if let Some(b) = bound.first() {
                assert_eq!(
                    name,
                    b.as_str(),
                    "the rerun ends on the member the killed run claimed"
                );
            }
        } else {
            sb.ok(&["down", "--env", &env, "--pr", &pr]);
            let rows = listed(&sb, &env);
            assert!(
                !rows
                    .values()
                    .any(|r| r["pool"]["alias"] == format!("pr-{pr}")
                        || r["name"] == format!("pr-{pr}")),
                "down left pr-{pr}: {rows:#?}"
            );
        }
    }
    // No member answers to two PRs, and every PR environment exists once.
    let rows = listed(&sb, &env);
    let aliases: Vec<&Value> = rows
        .values()
        .map(|r| &r["pool"]["alias"])
        .filter(|a| !a.is_null())
        .collect();
    let unique: BTreeSet<String> = aliases.iter().map(|a| a.to_string()).collect();
    assert_eq!(aliases.len(), unique.len(), "{rows:#?}");
    fake.with_state(|s| assert!(s.creates.values().all(|n| *n == 1), "{:?}", s.creates));
}

/// The same pool on `local` with the real control plane: `pool ensure` starts a member with its
/// add-ons, `up` claims it without creating a cluster, the app turns Healthy there, `status`
/// and `down` find it by the PR.
#[test]
fn a_local_pool_member_is_claimed_by_up_and_removed_by_down() {
    let Some(sb) = Sandbox::local() else { return };
    let manifests = manifests();
    let env = sb.write("lpool.yaml", &with_pool(&local_env("lpool"), 1));
    let env = env.to_str().expect("UTF-8");
    let filled = pool_ensure(&sb, env, &manifests);
    let member = filled["created"][0].as_str().expect("a member").to_string();
    assert_eq!(sb.local_envs(), std::slice::from_ref(&member));
    let report = sb.json(&up_args(env, "7", &manifests));
    assert_eq!(report["name"], member.as_str(), "{report:#}");
    assert_eq!(
        (report["claimed"].as_bool(), report["created"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(
        report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .any(|s| s["step"] == "addons" && s["outcome"] == "skipped"),
        "the member's add-ons were ready: {report:#}"
    );
    assert_eq!(
        sb.local_envs(),
        std::slice::from_ref(&member),
        "no cluster was created"
    );
    let st = sb.json(&["status", "--env", env, "--pr", "7"]);
    assert_eq!(st["record"]["name"], member.as_str());
    assert_eq!(st["rollout"]["phase"], "Healthy", "{st:#}");
    // No idle member is left, so the next PR creates its own cluster.
    let second = sb.json(&up_args(env, "8", &manifests));
    assert_eq!(
        (second["name"].as_str(), second["created"].as_bool()),
        (Some("pr-8"), Some(true))
    );
    for pr in ["7", "8"] {
        sb.ok(&["down", "--env", env, "--pr", pr]);
    }
    assert!(sb.local_envs().is_empty(), "{:?}", sb.local_envs());
}

/// `pool.stopped: true` on AKS: `pool ensure` stops each member once it is ready (the managed
/// cluster `stop` operation, on the fake ARM), and the claiming `up` starts it again before
/// binding it to the PR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hibernated_member_is_stopped_while_idle_and_started_by_the_claim() {
    let Some((fake, sb, _)) = aks_pool("sleepy", 1, Config::default()).await else {
        return;
    };
    let file = |pr: &str| {
        let env = pr_env(&sb, "sleepy", 1, pr);
        let yaml = std::fs::read_to_string(&env).expect("env file");
        std::fs::write(&env, format!("{yaml}  stopped: true\n")).expect("env file");
        env
    };
    let manifests = manifests();
    let pool = file("pool");
    let filled = pool_ensure(&sb, &pool, &manifests);
    assert_eq!(filled["capacity"]["stopped"], true, "{filled:#}");
    let member = filled["created"][0].as_str().expect("a member").to_string();
    let group = crate::common::lifecycle::group_of("sleepy", &member);
    assert_eq!(
        fake.cluster_power(&group, &member).as_deref(),
        Some("Stopped")
    );

    let report = sb.json(&up_args(&file("3"), "3", &manifests));
    assert_eq!(
        (report["name"].as_str(), report["claimed"].as_bool()),
        (Some(member.as_str()), Some(true))
    );
    assert_eq!(report["rollout"]["phase"], "Healthy", "{report:#}");
    assert_eq!(
        fake.cluster_power(&group, &member).as_deref(),
        Some("Running")
    );
    sb.ok(&["down", "--env", &pool, "--pr", "3"]);
    assert_eq!(fake.cluster_power(&group, &member), None);
}

/// `gc` (which the shipped scheduled workflow runs) refills the pool after collecting, and
/// `gc --dry-run` makes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_refills_the_pool_and_a_dry_run_does_not() {
    let Some((_fake, sb, env)) = aks_pool("gcfill", 2, Config::default()).await else {
        return;
    };
    let manifests = manifests();
    let dry = sb.json(&["gc", "--env", &env, "--dry-run", "--manifests", &manifests]);
    assert!(dry.get("pool").is_none(), "{dry:#}");
    assert!(listed(&sb, &env).is_empty());
    let report = sb.json(&["gc", "--env", &env, "--manifests", &manifests]);
    assert_eq!(
        report["pool"]["created"].as_array().map(Vec::len),
        Some(2),
        "{report:#}"
    );
    assert_eq!(members(&listed(&sb, &env), "idle").len(), 2);
}
