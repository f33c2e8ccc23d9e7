//! Benchmark: `up` with a warm pool against the same `up` without one, on AKS served by the fake
//! ARM, whose cluster creation is made slow, and the test control plane with Argo Rollouts as
//! every cluster. Run with `cargo bench --bench pool`. Targets: the warm `up` reaches the app's
//! readiness (the Rollout Healthy; `up` returns only then) in under 60 s, and at least 10x
//! faster than the cold one.
//!
//! How slow the creation is: the fake answers the cluster PUT with an operation that takes 10
//! polls, with `Retry-After: S` on each, and ephemera really waits S seconds between polls. There
//! is no fake clock: the cold `up` waits the whole creation out. S is 60, so the creation takes
//! 600 s (10 minutes). Set
//! `EPHEMERA_BENCH_CREATE_SECONDS` to scale the creation (the printed figures say which was
//! used). The pool is filled first with the fake answering at once (`Retry-After: 0`): filling
//! the pool is not what is measured, and it happens ahead of any PR.
//!
//! The warm `up` uses an environment file with `pool: {size: 1}`; the cold one the same file
//! without `pool:`, and an app of its own (the plane is shared). Both are measured in one run,
//! one after the other, through the real binary.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) the creation is scaled to 20 s, the
//! figures are printed and the targets are not checked. Without the control-plane binaries it
//! prints that it was skipped, unless `EPHEMERA_REQUIRE_CLUSTER=1`.

#[allow(dead_code)]
#[path = "../tests/it/common/fake_arm/mod.rs"]
mod fake_arm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fake_arm::{Config, FakeArm, SUBSCRIPTION};
use serde_json::Value;

const POLLS: u32 = 10;
const WARM_TARGET: Duration = Duration::from_secs(60);
const RATIO_TARGET: f64 = 10.0;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An AKS environment file for the fake: one group per environment, Argo Rollouts alone, the
/// app named `app`, and `pool` appended as it is.
fn env_file(dir: &Path, file: &str, app: &str, pool: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "apiVersion: ephemera.dev/v1alpha1
kind: Environment
metadata:
  name: benchpool
provider:
  aks:
    subscription: {SUBSCRIPTION}
    location: westeurope
    resourceGroup:
      strategy: perEnvironment
      name: rg-benchpool
    kubernetesVersion: \"1.34\"
    systemPool:
      vmSize: Standard_D4s_v5
      count: 1
addons:
  ingress:
    enabled: false
  certManager:
    enabled: false
  argoCd:
    enabled: false
app:
  name: {app}
  replicas: 1
tls:
  issuer: selfsigned
ttl: 2h
{pool}"
        ),
    )
    .expect("writing the environment file");
    path
}

/// The test control plane with the Argo Rollouts controller, taken down when this process
/// exits; `None` (after saying so) when its binaries are missing and no cluster is required.
fn control_plane() -> Option<String> {
    let pid = std::process::id().to_string();
    let name = format!("bench-pool-{pid}");
    let out = Command::new(repo().join("scripts/testcluster"))
        .args(["up", &name, "--owner-pid", &pid, "--with-rollouts"])
        .output()
        .expect("scripts/testcluster runs");
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            std::env::var("EPHEMERA_REQUIRE_CLUSTER").as_deref() != Ok("1"),
            "scripts/testcluster up failed: {why}"
        );
        eprintln!("*** SKIPPED: the pool benchmark needs `scripts/testcluster build`: {why}");
        return None;
    }
    let kubeconfig = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Some(std::fs::read_to_string(&kubeconfig).expect("the plane's kubeconfig"))
}

/// `ephemera ARGS` against `fake`, with a HOME and XDG dirs under `home`.
fn ephemera(fake: &FakeArm, home: &Path, args: &[&str]) -> (Duration, Output) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ephemera"))
        .current_dir(repo())
        .env_clear()
        .envs(fake.env())
        .env("HOME", home.join("home"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("CI", "1")
        .args(args)
        .output()
        .expect("ephemera runs");
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "ephemera {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    (took, out)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

/// `step outcome seconds` of every step of an `up` report, on one line.
fn steps(report: &Value) -> String {
    report["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    format!(
                        "{} {} {:.1}s",
                        s["step"].as_str().unwrap_or("?"),
                        s["outcome"].as_str().unwrap_or("?"),
                        s["seconds"].as_f64().unwrap_or(0.0)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let create_seconds: u64 = std::env::var("EPHEMERA_BENCH_CREATE_SECONDS")
        .ok()
        .map(|v| {
            v.parse()
                .expect("EPHEMERA_BENCH_CREATE_SECONDS: whole seconds")
        })
        .unwrap_or(if bench { 600 } else { 20 });
    let Some(kubeconfig) = control_plane() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = rt.block_on(FakeArm::start(Config {
        kubeconfig: Some(kubeconfig),
        polls: 1,
        create_polls: Some(POLLS),
        retry_after: Some("0".into()),
        ..Config::default()
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    for d in ["home", "state", "cache"] {
        std::fs::create_dir(dir.path().join(d)).expect("sandbox dir");
    }
    let warm = env_file(dir.path(), "warm.yaml", "warmcats", "pool:\n  size: 1\n");
    let cold = env_file(dir.path(), "cold.yaml", "coldcats", "");
    let manifests = repo().join("../shared/fixtures/manifests");
    let manifests = manifests.to_str().expect("UTF-8 path");
    let (warm, cold) = (warm.to_str().expect("UTF-8"), cold.to_str().expect("UTF-8"));
    let home = dir.path();

    // The pool is filled ahead of any PR, with the fake answering at once.
    let (fill, out) = ephemera(
        &fake,
        home,
        &[
            "pool",
            "ensure",
            "--env",
            warm,
            "--manifests",
            manifests,
            "--output",
            "json",
        ],
    );
    let filled = json(&out);
    eprintln!(
        "pool filled in {:.1} s: {}",
        fill.as_secs_f64(),
        filled["capacity"]["summary"]
    );

    // From here on a creation takes POLLS polls of create_seconds / POLLS each.
    let wait = create_seconds / u64::from(POLLS);
    fake.set_retry_after(Some(&wait.to_string()));
    let up = |env: &str, pr: &str| {
        let args = [
            "up",
            "--env",
            env,
            "--pr",
            pr,
            "--image",
            "ghcr.io/acme/cats:v1",
            "--manifests",
            manifests,
            "--timeout",
            "15m",
            "--output",
            "json",
        ];
        let (took, out) = ephemera(&fake, home, &args);
        (took, json(&out))
    };
    let (warm_took, warm_report) = up(warm, "1");
    assert_eq!(
        warm_report["claimed"], true,
        "the warm up claims: {warm_report:#}"
    );
    let (cold_took, cold_report) = up(cold, "2");
    assert_eq!(
        cold_report["created"], true,
        "the cold up creates: {cold_report:#}"
    );
    let ratio = cold_took.as_secs_f64() / warm_took.as_secs_f64();

    println!(
        "simulated cluster creation: {POLLS} polls x Retry-After {wait} s = {} s",
        u64::from(POLLS) * wait
    );
    println!(
        "up with a warm pool (claim, app Healthy): {:.1} s",
        warm_took.as_secs_f64()
    );
    println!(
        "up without a pool (create, add-ons, app Healthy): {:.1} s",
        cold_took.as_secs_f64()
    );
    println!("  warm steps: {}", steps(&warm_report));
    println!("  cold steps: {}", steps(&cold_report));
    println!("  warm Rollout: {}", warm_report["rollout"]["phase"]);
    println!(
        "ratio: {ratio:.1}x (targets: warm < {} s, ratio >= {RATIO_TARGET}x)",
        WARM_TARGET.as_secs()
    );

    fake.set_retry_after(Some("0"));
    ephemera(&fake, home, &["down", "--env", warm, "--pr", "1"]);
    ephemera(&fake, home, &["down", "--env", cold, "--pr", "2"]);
    if bench {
        assert!(warm_took < WARM_TARGET, "the warm up took {warm_took:?}");
        assert!(
            ratio >= RATIO_TARGET,
            "the warm up is only {ratio:.1}x faster"
        );
    }
}
