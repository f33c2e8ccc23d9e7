//! Chaos: `ephemera up` (the real binary) is killed with SIGKILL at a random point, then either
//! `up` runs again or `down` runs. Every run must end with exactly one healthy environment (after
//! the rerun) or none (after the down), and no cluster, resource group, state dir or process may
//! be leaked or duplicated.
//!
//! 50 runs in all:
//! - 44 against the fake ARM (fast: ARM answers in milliseconds; the cluster is the shared test
//!   plane with Argo Rollouts), in three lanes at once, each run an environment of its own;
//! - 6 against the local provider (a new control plane per environment, about ten seconds each),
//!   one after the other.
//!
//! The kill point is drawn per run: after a given log or progress line (the resource group PUT,
//! the cluster PUT, each step, the add-on wait) plus a random delay, or a random delay from the
//! start. Every run is derived from one seed, printed at the start and in every failure message;
//! `EPHEMERA_CHAOS_SEED=<seed>` replays a failing sequence.

use std::process::Output;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use crate::common::fake_arm::{Config, FakeArm};
use crate::common::lifecycle::{
    Followed, ROLLOUTS_ONLY, Sandbox, aks_env, describe, group_of, local_env, manifests,
    processes_naming, rollouts_kubeconfig, with_app,
};

const ARM_RUNS: usize = 44;
const ARM_LANES: usize = 3;
const LOCAL_RUNS: usize = 6;
const IMAGE: &str = "ghcr.io/acme/cats:v1";

/// Where a run's `up` is killed.
#[derive(Clone, Debug)]
enum Kill {
    /// This long after the start.
    After(Duration),
    /// This long after the first stderr line containing the text.
    AtLine(&'static str, Duration),
}

/// What follows the kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    Rerun,
    Down,
}

#[derive(Clone, Debug)]
struct Run {
    pr: u64,
    kill: Kill,
    then: Then,
}

/// The seed: `EPHEMERA_CHAOS_SEED`, else the clock.
fn seed() -> u64 {
    std::env::var("EPHEMERA_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        })
}

/// Draws `n` runs from `seed`: kill points among `lines` (with a delay up to `jitter`) or a
/// delay up to `horizon`, and rerun or down half and half.
fn draw(
    seed: u64,
    first_pr: u64,
    n: usize,
    lines: &[&'static str],
    jitter: Duration,
    horizon: Duration,
) -> Vec<Run> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let pick = rng.random_range(0..=lines.len());
            let kill = if pick == lines.len() {
                Kill::After(rng.random_range(Duration::ZERO..horizon))
            } else {
                Kill::AtLine(lines[pick], rng.random_range(Duration::ZERO..jitter))
            };
            let then = if rng.random_bool(0.5) {
                Then::Rerun
            } else {
                Then::Down
            };
            Run {
                pr: first_pr + i as u64,
                kill,
                then,
            }
        })
        .collect()
}

/// Starts `up`, kills it at `kill` (SIGKILL), and returns what it printed and its exit code
/// when it had already ended by itself.
fn up_and_kill(sb: &Sandbox, args: &[&str], kill: &Kill) -> (String, Option<i32>) {
    let mut run = Followed::start(sb, args);
    let t0 = Instant::now();
    let at = match kill {
        Kill::After(d) => Some(t0 + *d),
        // When the run ends (or hangs) before the line, there is nothing left to kill there.
        Kill::AtLine(text, extra) => run
            .wait_for(text, Duration::from_secs(60))
            .then(|| Instant::now() + *extra),
    };
    if let Some(at) = at {
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
    }
    let ended = run
        .child
        .try_wait()
        .expect("try_wait")
        .map(|s| s.code().unwrap_or(-1));
    if ended.is_none() {
        run.child.kill().expect("SIGKILL");
    }
    let (_, printed) = run.finish();
    (printed, ended)
}

/// The context of a failure: seed, run, and what the killed `up` printed.
fn ctx(seed: u64, run: &Run, killed: &str) -> String {
    format!(
        "chaos seed {seed} (replay with EPHEMERA_CHAOS_SEED={seed}), run pr-{} {:?} then {:?}\n--- the killed up printed ---\n{killed}",
        run.pr, run.kill, run.then
    )
}

fn assert_ok(o: &Output, args: &[&str], context: &str) {
    assert!(o.status.success(), "{context}\n{}", describe(args, o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_the_fake_arm() {
    let Some(kubeconfig) = rollouts_kubeconfig() else {
        return;
    };
    // Two polls per operation, no waiting between them: a rerun that finds an operation running
    // sees it finish at its next read.
    let fake = FakeArm::start(Config {
        polls: 2,
        kubeconfig: Some(kubeconfig),
        ..Config::default()
    })
    .await;
    let sb = Sandbox::aks(&fake);
    let env = sb.write("chaos.yaml", &aks_env("chaos", ROLLOUTS_ONLY, "24h"));
    let env = env.to_str().expect("UTF-8 path").to_string();
    let manifests = manifests();
    let seed = seed();
    eprintln!("chaos on the fake ARM: seed {seed} (EPHEMERA_CHAOS_SEED replays it)");
    let runs = draw(
        seed,
        1000,
        ARM_RUNS,
        &[
            "creating resource group",
            "creating cluster",
            "step kubeconfig: started",
            "step addons: started",
            "addon argo-rollouts: waiting",
            "step app: started",
        ],
        Duration::from_millis(40),
        Duration::from_millis(3000),
    );
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for lane in 0..ARM_LANES {
            let (sb, fake, manifests, runs) = (&sb, &fake, &manifests, &runs);
            s.spawn(move || {
                for run in runs.iter().skip(lane).step_by(ARM_LANES) {
                    arm_run(sb, fake, manifests, seed, run);
                }
            });
        }
    });
    eprintln!(
        "chaos on the fake ARM: {ARM_RUNS} runs in {:.1?}",
        t0.elapsed()
    );

    // Across all runs: exactly the rerun environments exist, each created once.
    let listed = sb.json(&["list", "--env", &env]);
    let mut names: Vec<String> = listed
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    let rerun: Vec<u64> = runs
        .iter()
        .filter(|r| r.then == Then::Rerun)
        .map(|r| r.pr)
        .collect();
    let mut want: Vec<String> = rerun.iter().map(|pr| format!("pr-{pr}")).collect();
    want.sort();
    assert_eq!(names, want, "chaos seed {seed}: what is left");
    fake.with_state(|st| {
        for (name, n) in &st.creates {
            assert_eq!(*n, 1, "chaos seed {seed}: cluster {name} created {n} times");
        }
        for (name, n) in &st.group_creates {
            assert_eq!(*n, 1, "chaos seed {seed}: group {name} created {n} times");
        }
    });
    for pr in rerun {
        sb.ok(&["down", "--env", &env, "--pr", &pr.to_string()]);
    }
}

fn arm_run(sb: &Sandbox, fake: &FakeArm, manifests: &str, seed: u64, run: &Run) {
    let pr = run.pr.to_string();
    let name = format!("pr-{pr}");
    // Every environment's cluster is the one shared plane: each gets an app of its own there.
    let env = sb.write(
        &format!("chaos-{pr}.yaml"),
        &with_app(
            &aks_env("chaos", ROLLOUTS_ONLY, "24h"),
            &format!("cats{pr}"),
        ),
    );
    let env = env.to_str().expect("UTF-8 path");
    let group = group_of("chaos", &name);
    let up = [
        "up",
        "-v",
        "--env",
        env,
        "--pr",
        &pr,
        "--image",
        IMAGE,
        "--manifests",
        manifests,
        "--timeout",
        "60s",
    ];
    let t0 = Instant::now();
    let (killed, ended) = up_and_kill(sb, &up, &run.kill);
    let t_kill = t0.elapsed();
    let context = ctx(seed, run, &killed);
    match run.then {
        Then::Rerun => {
            let o = sb.run(&up);
            assert_ok(&o, &up, &context);
            eprintln!(
                "chaos pr-{pr}: {:?} (ended by itself: {ended:?}) after {t_kill:.1?}, rerun took {:.1?}",
                run.kill,
                t0.elapsed() - t_kill
            );
            let report: Value = {
                let status = ["status", "--env", env, "--pr", &pr, "--output", "json"];
                let o = sb.run(&status);
                assert_ok(&o, &status, &context);
                serde_json::from_slice(&o.stdout).expect("status JSON")
            };
            assert_eq!(
                report["rollout"]["phase"], "Healthy",
                "{context}\n{report:#}"
            );
            assert_eq!(
                fake.cluster_state(&group, &name).as_deref(),
                Some("Succeeded"),
                "{context}"
            );
            let tags = fake.cluster_tags(&group, &name).expect("tags");
            assert!(
                tags.get("ephemera-lease").is_none(),
                "{context}\nthe rerun released the lease it took over: {tags:#}"
            );
        }
        Then::Down => {
            let down = ["down", "--env", env, "--pr", &pr];
            let o = sb.run(&down);
            assert_ok(&o, &down, &context);
            eprintln!(
                "chaos pr-{pr}: {:?} (ended by itself: {ended:?}) after {t_kill:.1?}, down took {:.1?}",
                run.kill,
                t0.elapsed() - t_kill
            );
            assert_eq!(fake.cluster_state(&group, &name), None, "{context}");
            assert!(!fake.group_exists(&group), "{context}: group {group} left");
        }
    }
    fake.with_state(|st| {
        assert!(
            st.creates.get(&name).copied().unwrap_or(0) <= 1,
            "{context}\ncluster created twice"
        );
        assert!(
            st.group_creates.get(&group).copied().unwrap_or(0) <= 1,
            "{context}\ngroup created twice"
        );
    });
}

#[test]
fn chaos_on_local() {
    let Some(sb) = Sandbox::local() else {
        return;
    };
    let env = sb.write("chaos-local.yaml", &local_env("chaos-local"));
    let env = env.to_str().expect("UTF-8 path").to_string();
    let manifests = manifests();
    let seed = seed();
    eprintln!("chaos on local: seed {seed} (EPHEMERA_CHAOS_SEED replays it)");
    let runs = draw(
        seed,
        2000,
        LOCAL_RUNS,
        &[
            "step cluster: started",
            "step kubeconfig: started",
            "step addons: started",
            "addon argo-rollouts: waiting",
            "step app: started",
        ],
        Duration::from_millis(2500),
        Duration::from_millis(10_000),
    );
    let _cleanup = Cleanup(&sb, &env, &runs);
    let t0 = Instant::now();
    for run in &runs {
        local_run(&sb, &env, &manifests, seed, run);
    }
    eprintln!("chaos on local: {LOCAL_RUNS} runs in {:.1?}", t0.elapsed());
    let want: Vec<String> = runs
        .iter()
        .filter(|r| r.then == Then::Rerun)
        .map(|r| format!("pr-{}", r.pr))
        .collect();
    assert_eq!(sb.local_envs(), want, "chaos seed {seed}: what is left");
}

/// Takes every environment of the runs down at the end, even after a failed assertion, and
/// checks that no process naming the sandbox is left.
struct Cleanup<'a>(&'a Sandbox, &'a str, &'a [Run]);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for run in self.2 {
            let pr = run.pr.to_string();
            let o = self.0.run(&["down", "--env", self.1, "--pr", &pr]);
            if !o.status.success() {
                eprintln!("cleanup: {}", describe(&["down"], &o));
            }
        }
        if !std::thread::panicking() {
            wait_gone(self.0.path(), "every local process");
        }
    }
}

/// Waits (up to 15 s) until no live process names `path`.
fn wait_gone(path: &std::path::Path, what: &str) {
    let t0 = Instant::now();
    loop {
        let left = processes_naming(path);
        if left.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{what}: processes {left:?} still name {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn local_run(sb: &Sandbox, env: &str, manifests: &str, seed: u64, run: &Run) {
    let pr = run.pr.to_string();
    let name = format!("pr-{pr}");
    let dir = sb.state().join("local").join(&name);
    let up = [
        "up",
        "--env",
        env,
        "--pr",
        &pr,
        "--image",
        IMAGE,
        "--manifests",
        manifests,
        "--timeout",
        "90s",
    ];
    let (killed, _) = up_and_kill(sb, &up, &run.kill);
    let context = ctx(seed, run, &killed);
    match run.then {
        Then::Rerun => {
            let o = sb.run(&up);
            assert_ok(&o, &up, &context);
            let status = ["status", "--env", env, "--pr", &pr, "--output", "json"];
            let o = sb.run(&status);
            assert_ok(&o, &status, &context);
            let report: Value = serde_json::from_slice(&o.stdout).expect("status JSON");
            assert_eq!(
                report["rollout"]["phase"], "Healthy",
                "{context}\n{report:#}"
            );
            // One set of processes: every recorded one alive, and no other naming the dir.
            let state: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("state.json")).expect("state.json"),
            )
            .expect("state.json is JSON");
            let mut recorded: Vec<u32> = state["processes"]
                .as_object()
                .expect("processes")
                .values()
                .filter_map(|p| p["pid"].as_u64().and_then(|p| u32::try_from(p).ok()))
                .collect();
            recorded.sort();
            let mut running = processes_naming(&dir);
            running.sort();
            assert_eq!(running, recorded, "{context}\none set of processes");
            assert_eq!(recorded.len(), 6, "{context}\n{state:#}");
        }
        Then::Down => {
            let down = ["down", "--env", env, "--pr", &pr];
            let o = sb.run(&down);
            assert_ok(&o, &down, &context);
            assert!(!dir.exists(), "{context}\n{} is left", dir.display());
            wait_gone(&dir, &context);
        }
    }
}
