//! The lifecycle engine's races, garbage collection and exit codes, through the real binary.
//!
//! - Two `up`s of one PR at once end with one cluster (AKS: one create, one group; local: one
//!   state dir, one set of processes), healthy.
//! - `down` while `up` runs leaves nothing: `down` exits 0, `up` exits 4 (it lost the
//!   environment to the down, whether it noticed at its lease or by the cluster vanishing).
//! - `gc` over 200+ environments in the fake ARM deletes exactly the expired ones and those of
//!   closed PRs, never one without our tags; `--dry-run` lists the same and deletes nothing.
//! - Exit codes 0 to 4, each from a real cause.

use std::collections::BTreeSet;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use ephemera::engine::lease::{LeaseRecord, Operation};
use ephemera::record::Record;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::common::fake_arm::{self, Config, FakeArm};
use crate::common::lifecycle::{
    Followed, ROLLOUTS_ONLY, Sandbox, aks_env, describe, group_of, kube_lease, kubectl, local_env,
    manifests, processes_naming, rollouts_kubeconfig, with_app,
};

const IMAGE: &str = "ghcr.io/acme/cats:v1";

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `up --env FILE --pr N` with the test bundles and a short deadline.
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
        "90s",
    ]
}

fn spawn(sb: &Sandbox, args: &[&str]) -> Child {
    sb.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ephemera starts")
}

/// Starts `up` and returns once its stderr shows `line`.
fn start_until(sb: &Sandbox, args: &[&str], line: &str) -> Followed {
    let mut run = Followed::start(sb, args);
    if !run.wait_for(line, Duration::from_secs(60)) {
        let _ = run.child.kill();
        let (_, printed) = run.finish();
        panic!("up never printed {line:?}:\n{printed}");
    }
    run
}

/// The ARM URL of a managed cluster on the fake.
fn cluster_url(fake: &FakeArm, group: &str, name: &str) -> String {
    format!(
        "{}/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}?api-version=2026-08-01",
        fake.url,
        fake_arm::SUBSCRIPTION
    )
}

/// Sets one tag on a cluster of the fake, as another run would (PATCH with a token).
async fn set_tag(fake: &FakeArm, group: &str, name: &str, key: &str, value: &str) {
    let mut tags = fake.cluster_tags(group, name).expect("the cluster exists");
    tags[key] = json!(value);
    let r = reqwest::Client::new()
        .patch(cluster_url(fake, group, name))
        .bearer_auth(fake.issue_token())
        .header("x-ms-client-request-id", "lifecycle-test")
        .json(&json!({ "tags": tags }))
        .send()
        .await
        .expect("PATCH reaches the fake");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

/// A lease of another run, as the engine writes it.
fn lease(op: Operation, holder: &str, started: Timestamp, renewed: Timestamp) -> String {
    let mut l = LeaseRecord::new(holder, op, started, Duration::from_secs(300));
    l.renewed_at = renewed;
    l.to_tag()
}

/// Waits until `cond` holds, polling every 20 ms, for at most `limit`.
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An AKS sandbox on a fake ARM whose clusters are the shared plane with Argo Rollouts, an
/// environment file with Argo Rollouts alone; `None` when the plane cannot start (skipped).
async fn aks_sandbox(profile: &str, cfg: Config) -> Option<(FakeArm, Sandbox, String)> {
    let kubeconfig = rollouts_kubeconfig()?;
    let fake = FakeArm::start(Config {
        kubeconfig: Some(kubeconfig),
        ..cfg
    })
    .await;
    let sb = Sandbox::aks(&fake);
    // The tests share the plane: each gets an app of its own there, named after its profile.
    let env = sb.write(
        &format!("{profile}.yaml"),
        &with_app(&aks_env(profile, ROLLOUTS_ONLY, "24h"), profile),
    );
    let env = env.to_str().expect("UTF-8 path").to_string();
    Some((fake, sb, env))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ups_of_one_pr_on_aks_make_one_cluster() {
    // Operations take two polls a second apart, so both runs are inside the cluster step at
    // once: one creates, the other waits for that creation instead of sending a second PUT.
    let Some((fake, sb, env)) = aks_sandbox(
        "race",
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
    let args = up_args(&env, "11", &manifests);
    let runs: Vec<Child> = (0..2).map(|_| spawn(&sb, &args)).collect();
    let outs: Vec<Output> = runs
        .into_iter()
        .map(|c| c.wait_with_output().expect("up ends"))
        .collect();
    let codes: Vec<i32> = outs.iter().map(code).collect();
    let all = outs
        .iter()
        .map(|o| describe(&args, o))
        .collect::<Vec<_>>()
        .join("\n");
    // The newer run supersedes the older, which gives way (4) at its next safe point, or has
    // already finished (0) by then.
    assert!(
        codes.contains(&0) && codes.iter().all(|c| [0, 4].contains(c)),
        "{codes:?}\n{all}"
    );
    for o in outs.iter().filter(|o| code(o) == 4) {
        let e = stderr(o);
        assert!(
            e.contains("held by up run") || e.contains("taken over by up run"),
            "{e}"
        );
    }
    let group = group_of("race", "pr-11");
    fake.with_state(|s| {
        assert_eq!(s.creates.get("pr-11"), Some(&1), "one cluster: {all}");
        assert_eq!(s.group_creates.get(&group), Some(&1), "one group: {all}");
    });
    let listed = sb.json(&["list", "--env", &env]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    let status = sb.json(&["status", "--env", &env, "--pr", "11"]);
    assert_eq!(status["rollout"]["phase"], "Healthy", "{status:#}");
    let tags = fake.cluster_tags(&group, "pr-11").expect("tags");
    assert!(
        tags.get("ephemera-lease").is_none(),
        "the winner released the lease and the loser never touched it: {tags:#}"
    );
    sb.ok(&["down", "--env", &env, "--pr", "11"]);
    assert!(!fake.group_exists(&group));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_while_up_works_on_aks_leaves_nothing() {
    let Some((fake, sb, env)) = aks_sandbox(
        "racedown",
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
    let args = up_args(&env, "12", &manifests);
    let group = group_of("racedown", "pr-12");
    // The cluster exists and up is past its cluster step, working inside the environment.
    let up = start_until(&sb, &args, "step addons: started");
    let down = sb.run(&["down", "--env", &env, "--pr", "12"]);
    let (up, e) = up.finish();
    assert_eq!(code(&down), 0, "{}", describe(&["down"], &down));
    assert_eq!(up, Some(4), "up lost the environment:\n{e}");
    assert!(
        e.contains("held by down run")
            || e.contains("taken over by down run")
            || e.contains("deleted by another run"),
        "{e}"
    );
    assert_eq!(fake.cluster_state(&group, "pr-12"), None, "no cluster left");
    assert!(!fake.group_exists(&group), "no group left");
    let o = sb.run(&["list", "--env", &env, "--output", "json"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
    fake.with_state(|s| assert_eq!(s.creates.get("pr-12"), Some(&1), "never recreated"));
}

/// Checks that exactly one local environment `name` runs: one state dir, every recorded
/// process alive, and no other process naming the sandbox.
fn one_local_environment(sb: &Sandbox, name: &str) {
    assert_eq!(sb.local_envs(), [name], "one state dir");
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(sb.state().join("local").join(name).join("state.json"))
            .expect("state.json"),
    )
    .expect("state.json is JSON");
    let recorded: BTreeSet<u32> = state["processes"]
        .as_object()
        .expect("processes")
        .values()
        .filter_map(|p| p["pid"].as_u64().and_then(|p| u32::try_from(p).ok()))
        .collect();
    let running: BTreeSet<u32> = processes_naming(sb.path()).into_iter().collect();
    assert_eq!(running, recorded, "exactly the recorded processes run");
    assert_eq!(recorded.len(), 6, "{state:#}");
}

#[test]
fn two_ups_of_one_pr_on_local_make_one_environment_and_a_live_lease_wins() {
    let Some(sb) = Sandbox::local() else {
        return;
    };
    let env = sb.write("race-local.yaml", &local_env("race-local"));
    let env = env.to_str().expect("UTF-8 path");
    let manifests = manifests();
    let args = up_args(env, "21", &manifests);
    let _cleanup = Down(&sb, env, "21");
    let runs: Vec<Child> = (0..2).map(|_| spawn(&sb, &args)).collect();
    let outs: Vec<Output> = runs
        .into_iter()
        .map(|c| c.wait_with_output().expect("up ends"))
        .collect();
    let codes: Vec<i32> = outs.iter().map(code).collect();
    let all = outs
        .iter()
        .map(|o| describe(&args, o))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        codes.contains(&0) && codes.iter().all(|c| [0, 4].contains(c)),
        "{codes:?}\n{all}"
    );
    one_local_environment(&sb, "pr-21");
    let status = sb.json(&["status", "--env", env, "--pr", "21"]);
    assert_eq!(status["rollout"]["phase"], "Healthy", "{status:#}");

    // A live down's Lease in the cluster: up gives way before touching anything (exit 4).
    let kubeconfig = sb.state().join("local/pr-21/kubeconfig");
    let now = Timestamp::now();
    let held_by = |op: Operation, holder: &str| {
        let lease = LeaseRecord::new(holder, op, now, Duration::from_secs(300));
        kubectl(&kubeconfig, &["apply", "-f", "-"], &kube_lease(&lease));
    };
    held_by(Operation::Down, "ci-runner-7-1");
    let o = sb.run(&args);
    assert_eq!(code(&o), 4, "{}", describe(&args, &o));
    let e = stderr(&o);
    assert!(
        e.contains("environment pr-21 is held by down run ci-runner-7-1"),
        "names the holder: {e}"
    );
    assert!(!e.contains("step cluster"), "nothing was touched: {e}");

    // down always wins: it takes the lease from a live up and deletes.
    held_by(Operation::Up, "ci-runner-8-2");
    let gone = sb.json(&["down", "--env", env, "--pr", "21"]);
    assert_eq!(gone["outcome"], "deleted", "{gone:#}");
    assert_eq!(gone["superseded"], "ci-runner-8-2", "{gone:#}");
    assert!(sb.local_envs().is_empty());
    wait_until("the processes to end", Duration::from_secs(10), || {
        processes_naming(sb.path()).is_empty()
    });
}

/// Runs `down` on drop, so no local cluster outlives a failed assertion.
struct Down<'a>(&'a Sandbox, &'a str, &'a str);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let o = self.0.run(&["down", "--env", self.1, "--pr", self.2]);
        if !o.status.success() {
            eprintln!("cleanup: {}", describe(&["down"], &o));
        }
    }
}

#[test]
fn down_while_up_installs_on_local_leaves_nothing() {
    let Some(sb) = Sandbox::local() else {
        return;
    };
    let env = sb.write("racedown-local.yaml", &local_env("racedown-local"));
    let env = env.to_str().expect("UTF-8 path");
    let manifests = manifests();
    let args = up_args(env, "22", &manifests);
    let _cleanup = Down(&sb, env, "22");
    // The cluster exists and up is past its cluster step, installing the add-ons.
    let up = start_until(&sb, &args, "step addons: started");
    let down = sb.run(&["down", "--env", env, "--pr", "22"]);
    let (up, up_err) = up.finish();
    assert_eq!(code(&down), 0, "{}", describe(&["down"], &down));
    assert_eq!(up, Some(4), "up lost the environment to down:\n{up_err}");
    assert!(
        up_err.contains("taken over by down run") || up_err.contains("deleted by another run"),
        "{up_err}"
    );
    assert!(sb.local_envs().is_empty(), "no state dir left");
    wait_until("the processes to end", Duration::from_secs(10), || {
        processes_naming(sb.path()).is_empty()
    });
}

/// One environment of the gc population.
struct Seeded {
    name: String,
    tags: Value,
    /// Whether gc must delete it.
    doomed: bool,
}

fn record(name: &str, pr: Option<u64>, repo: &str, expires: Timestamp) -> Record {
    Record {
        name: name.into(),
        provider: "aks".into(),
        repository: Some(repo.into()),
        pr,
        created_at: "2026-11-01T00:00:00Z".parse().expect("time"),
        expires_at: expires,
        created_by: Some("app:ci".into()),
        version: ephemera::VERSION.into(),
        url: None,
        env_file: Some("gc".into()),
        pool: None,
    }
}

fn tags_of(r: &Record) -> Value {
    let mut t: serde_json::Map<String, Value> = r
        .to_pairs()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    t.insert("team".into(), json!("cats"));
    Value::Object(t)
}

/// 230 environments: expired, closed PRs, open PRs, another repository's, ad-hoc, and
/// clusters that only look like ours or are not ours at all.
fn population() -> (Vec<Seeded>, String) {
    let now = Timestamp::now();
    let past = now - SignedDuration::from_hours(2);
    let future = now + SignedDuration::from_hours(20);
    let mut out = Vec::new();
    let mut open = Vec::new();
    let mut add = |name: String, tags: Value, doomed: bool| out.push(Seeded { name, tags, doomed });
    for pr in 1..=60 {
        // Expired, though the PR is open.
        open.push(pr);
        let name = format!("pr-{pr}");
        add(
            name.clone(),
            tags_of(&record(&name, Some(pr), "acme/cats", past)),
            true,
        );
    }
    for pr in 61..=110 {
        // Alive, but the PR is closed.
        let name = format!("pr-{pr}");
        add(
            name.clone(),
            tags_of(&record(&name, Some(pr), "acme/cats", future)),
            true,
        );
    }
    for pr in 111..=170 {
        // Alive and open.
        open.push(pr);
        let name = format!("pr-{pr}");
        add(
            name.clone(),
            tags_of(&record(&name, Some(pr), "acme/cats", future)),
            false,
        );
    }
    for pr in 171..=190 {
        // Another repository's PRs: the open list does not speak for them; alive.
        let name = format!("pr-{pr}");
        add(
            name.clone(),
            tags_of(&record(&name, Some(pr), "acme/dogs", future)),
            false,
        );
    }
    for i in 0..10 {
        // Ad-hoc environments without a PR: only their TTL counts.
        let name = format!("adhoc-{i}");
        let expires = if i < 3 { past } else { future };
        add(
            name.clone(),
            tags_of(&record(&name, None, "acme/cats", expires)),
            i < 3,
        );
    }
    for pr in 191..=210 {
        // Not ours: no ownership tag, though every other tag says expired and closed.
        let name = format!("pr-{pr}");
        let mut t = tags_of(&record(&name, Some(pr), "acme/cats", past));
        t.as_object_mut()
            .expect("object")
            .remove("ephemera-managed-by");
        add(name, t, false);
    }
    for pr in 211..=230 {
        // Someone else's clusters with no tags at all.
        add(format!("pr-{pr}"), json!({"team": "dogs"}), false);
    }
    let open = open
        .iter()
        .map(|n| json!({ "number": n }))
        .collect::<Vec<_>>();
    (out, Value::Array(open).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_over_230_environments_deletes_exactly_the_expired_and_the_closed() {
    let fake = FakeArm::start(Config {
        polls: 1,
        ..Config::default()
    })
    .await;
    let sb = Sandbox::aks(&fake);
    let env = sb.write("gc.yaml", &aks_env("gc", ROLLOUTS_ONLY, "24h"));
    let env = env.to_str().expect("UTF-8 path");
    let (population, open) = population();
    for s in &population {
        let group = group_of("gc", &s.name);
        fake.seed_group(&group, s.tags.clone());
        fake.seed_cluster(&group, &s.name, s.tags.clone());
    }
    // A group an interrupted delete left behind (its cluster is gone), expired: collected too.
    let orphan = record(
        "pr-300",
        Some(300),
        "acme/cats",
        Timestamp::now() - SignedDuration::from_hours(1),
    );
    fake.seed_group(&group_of("gc", "pr-300"), tags_of(&orphan));
    // A cluster of ours in a group this file would not use: another profile's; never touched.
    let elsewhere = record(
        "pr-61",
        Some(61),
        "acme/cats",
        Timestamp::now() - SignedDuration::from_hours(1),
    );
    fake.seed_group("rg-other-pr-61", tags_of(&elsewhere));
    fake.seed_cluster("rg-other-pr-61", "pr-61", tags_of(&elsewhere));
    let open_file = sb.write("open.json", &open);
    let open_file = open_file.to_str().expect("UTF-8 path");

    let mut expected: BTreeSet<String> = population
        .iter()
        .filter(|s| s.doomed)
        .map(|s| s.name.clone())
        .collect();
    expected.insert("pr-300".into());
    assert_eq!(expected.len(), 60 + 50 + 3 + 1);

    let gc = |dry: bool| {
        let mut args = vec![
            "gc",
            "--env",
            env,
            "--open-prs",
            open_file,
            "--repository",
            "acme/cats",
        ];
        if dry {
            args.push("--dry-run");
        }
        sb.json(&args)
    };
    let collected = |report: &Value| -> BTreeSet<String> {
        report["collected"]
            .as_array()
            .expect("collected")
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };

    // Dry run: exactly the doomed ones are listed, and nothing is written.
    let writes = |fake: &FakeArm| {
        ["PUT", "PATCH", "DELETE", "POST"]
            .iter()
            .map(|m| fake.calls(m, "/subscriptions/"))
            .sum::<usize>()
    };
    let dry = gc(true);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(collected(&dry), expected, "{dry:#}");
    assert_eq!(dry["examined"], 200 + 1, "ours in this profile: {dry:#}");
    assert!(
        dry["collected"]
            .as_array()
            .expect("collected")
            .iter()
            .all(|c| c["outcome"] == "would-delete")
    );
    assert_eq!(writes(&fake), 0, "a dry run deletes nothing");
    let closed = dry["collected"]
        .as_array()
        .expect("collected")
        .iter()
        .find(|c| c["name"] == "pr-61")
        .expect("pr-61 is collected");
    assert_eq!(closed["reason"], json!({"reason": "prClosed", "pr": 61}));

    // The real run deletes exactly those, clusters and groups, and nothing else.
    let t0 = Instant::now();
    let done = gc(false);
    eprintln!(
        "gc of {} environments took {:.1?}",
        expected.len(),
        t0.elapsed()
    );
    assert_eq!(collected(&done), expected, "{done:#}");
    assert!(
        done["collected"]
            .as_array()
            .expect("collected")
            .iter()
            .all(|c| c["outcome"] == "deleted"),
        "{done:#}"
    );
    for s in &population {
        let group = group_of("gc", &s.name);
        let present = fake.cluster_state(&group, &s.name).is_some();
        assert_eq!(present, !s.doomed, "cluster {}", s.name);
        assert_eq!(fake.group_exists(&group), !s.doomed, "group {group}");
    }
    assert!(!fake.group_exists(&group_of("gc", "pr-300")));
    assert!(fake.cluster_state("rg-other-pr-61", "pr-61").is_some());
    assert!(fake.group_exists("rg-other-pr-61"));

    // A second gc finds nothing more to do.
    let again = gc(false);
    assert!(collected(&again).is_empty(), "{again:#}");
}

/// An ARM endpoint that refuses everything with 403, as for a credential without list rights.
async fn forbidding_arm() -> String {
    use axum::http::StatusCode;
    let app = axum::Router::new().fallback(|| async {
        (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": {
                "code": "AuthorizationFailed",
                "message": "The client does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/read'."
            }})),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_aborts_on_a_listing_error_and_deletes_nothing() {
    // Tokens come from the fake; ARM itself refuses the listing.
    let fake = FakeArm::start(Config::default()).await;
    let sb = Sandbox::aks(&fake);
    let env = sb.write("gc.yaml", &aks_env("gc", ROLLOUTS_ONLY, "24h"));
    let env = env.to_str().expect("UTF-8 path");
    let past = Timestamp::now() - SignedDuration::from_hours(2);
    let r = record("pr-1", Some(1), "acme/cats", past);
    fake.seed_group(&group_of("gc", "pr-1"), tags_of(&r));
    fake.seed_cluster(&group_of("gc", "pr-1"), "pr-1", tags_of(&r));
    let refusing = forbidding_arm().await;
    for dry in [true, false] {
        let mut args = vec!["gc", "--env", env];
        if dry {
            args.push("--dry-run");
        }
        let mut cmd = sb.command(&args);
        cmd.env("AZURE_RESOURCE_MANAGER_ENDPOINT", &refusing);
        let o = cmd.output().expect("gc runs");
        assert_eq!(code(&o), 1, "{}", describe(&args, &o));
        let e = stderr(&o);
        assert!(e.contains("AuthorizationFailed"), "{e}");
        assert!(o.stdout.is_empty(), "no report of an empty listing: {e}");
    }
    assert!(
        fake.cluster_state(&group_of("gc", "pr-1"), "pr-1")
            .is_some()
    );
    assert_eq!(fake.calls("DELETE", "/subscriptions/"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_0_to_4_from_real_causes() {
    let Some((fake, sb, env)) = aks_sandbox(
        "codes",
        Config {
            polls: 1,
            ..Config::default()
        },
    )
    .await
    else {
        return;
    };
    let manifests = manifests();
    let group = group_of("codes", "pr-31");

    // 2: a bad environment file; the error names file, line and field; nothing is called.
    let bad = sb.write(
        "bad.yaml",
        &aks_env("codes", ROLLOUTS_ONLY, "24h").replace("replicas: 1", "replicas: lots"),
    );
    let bad = bad.to_str().expect("UTF-8 path");
    let o = sb.run(&up_args(bad, "31", &manifests));
    assert_eq!(code(&o), 2, "{}", describe(&["up"], &o));
    let e = stderr(&o);
    assert!(e.contains("bad.yaml:") && e.contains("replicas"), "{e}");
    assert!(
        fake.with_state(|s| s.log.is_empty()),
        "nothing is created on bad input"
    );

    // 1: a failure: the credential is refused. The secret is never printed.
    let mut cmd = sb.command(&up_args(&env, "31", &manifests));
    cmd.env("AZURE_CLIENT_SECRET", "a-wrong-secret-value");
    let o = cmd.output().expect("up runs");
    assert_eq!(code(&o), 1, "{}", describe(&["up"], &o));
    let e = stderr(&o);
    assert!(e.contains("no usable credential"), "{e}");
    assert!(!e.contains("a-wrong-secret-value"), "{e}");
    assert_eq!(fake.cluster_state(&group, "pr-31"), None);

    // 0: up, then a rerun.
    let args = up_args(&env, "31", &manifests);
    sb.ok(&args);
    sb.ok(&args);

    // 4: a live down holds the lease; up gives way before any write, naming the holder.
    let now = Timestamp::now();
    set_tag(
        &fake,
        &group,
        "pr-31",
        "ephemera-lease",
        &lease(Operation::Down, "runner-9-100", now, now),
    )
    .await;
    let writes_before =
        fake.calls("PUT", "/subscriptions/") + fake.calls("PATCH", "/subscriptions/");
    let o = sb.run(&args);
    assert_eq!(code(&o), 4, "{}", describe(&args, &o));
    let e = stderr(&o);
    assert!(
        e.contains("environment pr-31 is held by down run runner-9-100"),
        "{e}"
    );
    assert_eq!(
        fake.calls("PUT", "/subscriptions/") + fake.calls("PATCH", "/subscriptions/"),
        writes_before,
        "an up that gives way writes nothing"
    );
    // 4 again for a newer up's lease; a lapsed lease is taken over (0).
    let later = now + SignedDuration::from_mins(5);
    set_tag(
        &fake,
        &group,
        "pr-31",
        "ephemera-lease",
        &lease(Operation::Up, "runner-9-101", later, now),
    )
    .await;
    let o = sb.run(&args);
    assert_eq!(code(&o), 4, "{}", describe(&args, &o));
    assert!(
        stderr(&o).contains("held by up run runner-9-101"),
        "{}",
        stderr(&o)
    );
    let long_ago = now - SignedDuration::from_hours(1);
    set_tag(
        &fake,
        &group,
        "pr-31",
        "ephemera-lease",
        &lease(Operation::Down, "runner-9-102", long_ago, long_ago),
    )
    .await;
    sb.ok(&args);
    let tags = fake.cluster_tags(&group, "pr-31").expect("tags");
    assert!(tags.get("ephemera-lease").is_none(), "{tags:#}");
    assert_eq!(
        tags["ephemera-managed-by"], "ephemera",
        "the record survives lease writes"
    );
    assert_eq!(tags["team"], "cats", "other tags survive lease writes");

    // down wins over a live up's lease.
    set_tag(
        &fake,
        &group,
        "pr-31",
        "ephemera-lease",
        &lease(Operation::Up, "runner-9-103", now, Timestamp::now()),
    )
    .await;
    let gone = sb.json(&["down", "--env", &env, "--pr", "31"]);
    assert_eq!(gone["superseded"], "runner-9-103", "{gone:#}");
    assert_eq!(fake.cluster_state(&group, "pr-31"), None);

    // 3: a wait that cannot finish. The gateway add-on waits for its controller, which the
    // simulated plane does not run; the deadline names the object and its last state, and the
    // cluster this run created is deleted again.
    let gw = sb.write(
        "gateway.yaml",
        &with_app(
            &aks_env(
                "codes",
                "  ingress:\n    implementation: gateway-api\n  certManager:\n    enabled: false\n  argoCd:\n    enabled: false\n",
                "24h",
            ),
            "codes",
        ),
    );
    let gw = gw.to_str().expect("UTF-8 path");
    let mut args = up_args(gw, "32", &manifests);
    let last = args.len() - 1;
    args[last] = "2s";
    let o = sb.run(&args);
    assert_eq!(code(&o), 3, "{}", describe(&args, &o));
    let e = stderr(&o);
    assert!(
        e.contains("timed out after") && e.contains("last seen"),
        "{e}"
    );
    assert_eq!(
        fake.cluster_state(&group_of("codes", "pr-32"), "pr-32"),
        None,
        "the cluster this run created is deleted on failure"
    );
    // With --keep-on-failure it stays, for debugging; down removes it.
    args.push("--keep-on-failure");
    let o = sb.run(&args);
    assert_eq!(code(&o), 3, "{}", describe(&args, &o));
    assert_eq!(
        fake.cluster_state(&group_of("codes", "pr-32"), "pr-32")
            .as_deref(),
        Some("Succeeded")
    );
    sb.ok(&["down", "--env", gw, "--pr", "32"]);
    assert!(!fake.group_exists(&group_of("codes", "pr-32")));
}

/// `--timeout` is the longest wait without progress, and ARM answering "still deleting" is
/// progress: a deletion whose operations take longer than `--timeout` (six polls one second
/// apart, for the cluster and again for its resource group) still ends, where a silent cloud
/// would end the command with exit 3 (tests/it/deadline.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_arm_operation_keeps_the_timeout_window_open() {
    let fake = FakeArm::start(Config {
        polls: 6,
        retry_after: Some("1".into()),
        ..Config::default()
    })
    .await;
    let sb = Sandbox::aks(&fake);
    let env = sb.write("slow.yaml", &aks_env("slow", ROLLOUTS_ONLY, "24h"));
    let env = env.to_str().expect("UTF-8 path");
    let r = record("pr-1", Some(1), "acme/cats", Timestamp::now());
    fake.seed_group(&group_of("slow", "pr-1"), tags_of(&r));
    fake.seed_cluster(&group_of("slow", "pr-1"), "pr-1", tags_of(&r));
    let args = ["down", "--env", env, "--pr", "1", "--timeout", "3s"];
    let started = std::time::Instant::now();
    let o = sb.run(&args);
    assert_eq!(code(&o), 0, "{}", describe(&args, &o));
    assert!(
        started.elapsed() > std::time::Duration::from_secs(5),
        "the deletion outlasted --timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(fake.cluster_state(&group_of("slow", "pr-1"), "pr-1"), None);
}
