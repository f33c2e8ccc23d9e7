//! Acceptance of the `local` provider through the real `ephemera` binary: `up` (first run and the
//! fast path), `list`, `status`, `deploy`/`promote`/`abort`, and `down` twice, on
//! `environments/local.yaml`, with every bit of state in a directory of the test's own.
//!
//! One environment is reused across the steps of one test function: a new local cluster with its
//! add-ons costs tens of seconds on a 2-core machine.

use std::path::Path;
use std::time::{Duration, Instant};

use ephemera::engine::lease::{self, LeaseRecord, LeaseStore, Operation};
use ephemera::providers::kube_lease::KubeLease;
use serde_json::{Value, json};

use crate::common::cli::{ephemera, stderr, stdout};
use crate::common::lifecycle::{Sandbox, describe, manifests, processes_naming};

const ENV_FILE: &str = "environments/local.yaml";

/// Takes the environment down even when an assertion fails midway, so no process outlives the
/// test.
struct Down<'a>(&'a Sandbox, &'a str);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let o = self.0.run(&["down", "--env", ENV_FILE, "--pr", self.1]);
        if !o.status.success() {
            eprintln!("cleanup: down of pr-{} failed: {}", self.1, stderr(&o));
        }
    }
}

/// A client for the environment, from the kubeconfig `up` wrote.
async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig");
    kube::Client::try_from(config).expect("client")
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Takes environment `env`'s lease as an `up` run named `holder` would, for a minute.
fn hold_lease(kubeconfig: &Path, env: &str, holder: &str) -> LeaseRecord {
    block_on(async {
        let store = KubeLease::new(client(kubeconfig).await, env);
        let me = LeaseRecord::new(
            holder,
            Operation::Up,
            jiff::Timestamp::now(),
            Duration::from_secs(60),
        );
        let previous = lease::acquire(&store, env, &me)
            .await
            .expect("taking the lease");
        assert!(previous.is_none(), "the lease was held: {previous:?}");
        me
    })
}

fn release_lease(kubeconfig: &Path, env: &str, holder: &str) {
    block_on(async {
        KubeLease::new(client(kubeconfig).await, env)
            .release(holder)
            .await
            .expect("releasing the lease")
    })
}

/// Polls `status` until `done` holds, for at most a minute; panics with the last status.
fn wait_for(status: &dyn Fn() -> Value, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status();
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the rollout is not {what} after 60s; last status:\n{s:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {report:#}"))
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn local_up_list_status_deploy_promote_abort_and_down_through_the_cli() {
    let Some(sb) = Sandbox::local() else {
        return;
    };
    let manifests = manifests();
    // The same profile (same environment), rehearsing the canary steps on a preview, and with
    // a lifetime no longer than its ttl (2h), so activity cannot move its expiry.
    let steps_file = sb.path().join("local-steps.yaml");
    let shipped = std::fs::read_to_string(ENV_FILE).expect("environments/local.yaml");
    let with_steps = shipped
        .replace(
            "  replicas: 1\n",
            "  replicas: 1\n  canary:\n    preview: steps\n",
        )
        .replace("ttl: 2h\n", "ttl: 2h\nmaxLifetime: 2h\n");
    assert_eq!(
        with_steps.len(),
        shipped.len() + "  canary:\n    preview: steps\nmaxLifetime: 2h\n".len(),
        "{ENV_FILE} has app.replicas: 1 and ttl: 2h"
    );
    std::fs::write(&steps_file, with_steps).expect("write the steps file");
    let steps_file = steps_file.display().to_string();
    let up_with = |file: &str, image: &str, output: &str| {
        let t0 = Instant::now();
        let args = [
            "up",
            "--env",
            file,
            "--pr",
            "7",
            "--image",
            image,
            "--manifests",
            &manifests,
            "--output",
            output,
        ];
        let o = sb.run(&args);
        let took = t0.elapsed();
        assert!(o.status.success(), "{}", describe(&args, &o));
        (o, took)
    };
    let up = |image: &str, output: &str| up_with(ENV_FILE, image, output);
    let _down = Down(&sb, "7");

    // First up: cluster, add-ons, the app to Healthy (a first image has no canary).
    let (o, took) = up("ghcr.io/acme/cats:v1", "json");
    let first: Value = serde_json::from_str(&stdout(&o)).expect("up --output json");
    let err = stderr(&o);
    assert!(err.contains("step addons: done"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "logs carry no terminal escapes when stderr is not a terminal: {err:?}"
    );
    let per_step: Vec<String> = first["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| format!("{} {}s", s["step"].as_str().unwrap_or("?"), s["seconds"]))
                .collect()
        })
        .unwrap_or_default();
    eprintln!(
        "e2e local: first up (new cluster, add-ons, app) took {took:.1?} ({}; target: under 60s)",
        per_step.join(", ")
    );
    assert_eq!(first["name"], "pr-7");
    assert_eq!(first["provider"], "local");
    assert_eq!(first["created"], true);
    assert_eq!(first["simulated"], true);
    assert_eq!(first["url"], "https://pr-7.127.0.0.1.nip.io");
    for s in ["cluster", "kubeconfig", "addons", "app", "report"] {
        assert_eq!(step(&first, s)["outcome"], "done", "{first:#}");
    }
    assert_eq!(first["rollout"]["phase"], "Healthy", "{first:#}");
    assert_eq!(
        first["rollout"]["desiredImages"],
        json!(["ghcr.io/acme/cats:v1"])
    );
    let kubeconfig = sb.state().join("kubeconfig/pr-7.yaml");
    assert_eq!(first["kubeconfig"], kubeconfig.display().to_string());
    assert_eq!(
        mode(&kubeconfig),
        0o600,
        "the kubeconfig holds a client key"
    );
    let env_dir = sb.state().join("local/pr-7");
    assert!(env_dir.is_dir(), "{} is missing", env_dir.display());

    // list, as text and JSON, shows the environment.
    let text = sb.ok(&["list", "--env", ENV_FILE]);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[0], "NAME\tPROVIDER\tPR\tSTATE\tEXPIRES\tURL");
    assert!(
        rows[1].starts_with("pr-7\tlocal\t7\tactive\t")
            && rows[1].ends_with("\thttps://pr-7.127.0.0.1.nip.io"),
        "{text}"
    );
    let listed = sb.json(&["list", "--env", ENV_FILE]);
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["name"], "pr-7");
    assert_eq!(listed[0]["pr"], 7);
    assert_eq!(listed[0]["provider"], "local");
    assert_eq!(listed[0]["state"], "active");
    assert_eq!(listed[0]["envFile"], "local");
    assert_eq!(listed[0]["expiresAt"], first["expiresAt"]);

    // status shows the add-ons and the rollout.
    let status = sb.json(&["status", "--env", ENV_FILE, "--pr", "7"]);
    let addons: Vec<&str> = status["addons"]
        .as_array()
        .expect("add-ons")
        .iter()
        .filter_map(|a| a.as_str()?.split_once('=').map(|(n, _)| n))
        .collect();
    assert_eq!(
        addons,
        ["gateway-api", "cert-manager", "argo-rollouts"],
        "{status:#}"
    );
    assert_eq!(status["rollout"]["phase"], "Healthy", "{status:#}");
    assert_eq!(status["notes"], json!([]), "{status:#}");
    let text = sb.ok(&["status", "--env", ENV_FILE, "--pr", "7"]);
    assert!(text.starts_with("environment: pr-7 (active)\n"), "{text}");
    assert!(text.contains("provider: local\n"), "{text}");
    assert!(
        text.contains("url: https://pr-7.127.0.0.1.nip.io\n"),
        "{text}"
    );
    assert!(
        text.contains("add-ons: gateway-api=") && text.contains("argo-rollouts="),
        "{text}"
    );
    assert!(text.contains("rollout   cats/cats"), "{text}");
    assert!(text.contains("phase     Healthy"), "{text}");
    assert!(text.contains("stable    ghcr.io/acme/cats:v1"), "{text}");

    // While a run holds the environment's lease, status says who, in words.
    let held = hold_lease(&kubeconfig, "pr-7", "e2e-test-run");
    let text = sb.ok(&["status", "--env", ENV_FILE, "--pr", "7"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("lease: "))
        .unwrap_or_else(|| panic!("no lease line:\n{text}"));
    let prefix = format!(
        "lease: held by e2e-test-run (up since {}, lapses at ",
        held.started_at
    );
    let lapses: jiff::Timestamp = line
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(" unless renewed)"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{line:?} is not {prefix:?}<time> unless renewed)"));
    let ahead = lapses.duration_since(held.started_at).as_secs();
    assert!((60..=70).contains(&ahead), "{line}");
    let status = sb.json(&["status", "--env", ENV_FILE, "--pr", "7"]);
    assert_eq!(status["lease"]["holder"], "e2e-test-run", "{status:#}");
    release_lease(&kubeconfig, "pr-7", "e2e-test-run");
    let text = sb.ok(&["status", "--env", ENV_FILE, "--pr", "7"]);
    assert!(!text.contains("lease: "), "{text}");

    // Second up with a new image (app.canary.preview defaults to full): the fast path skips the
    // add-ons, and the Rollout ends Healthy with v2 serving 100%, nothing left on v1.
    let (o, took) = up("ghcr.io/acme/cats:v2", "json");
    eprintln!("e2e local: second up (fast path, new image fully promoted) took {took:.1?}");
    let second: Value = serde_json::from_str(&stdout(&o)).expect("up --output json");
    let r = &second["rollout"];
    assert_eq!(r["phase"], "Healthy", "{second:#}");
    assert_eq!(r["setWeight"], 100, "{second:#}");
    assert_eq!(r["paused"], false, "{second:#}");
    assert_eq!(r["stable"]["images"], json!(["ghcr.io/acme/cats:v2"]));
    assert_eq!(r["canary"], Value::Null, "no canary is left: {second:#}");
    assert_eq!(second["canaryPaused"], Value::Null, "{second:#}");
    // Activity moves the expiry: to at least now + ttl (2h), so later than the first up's.
    let time = |v: &Value| -> jiff::Timestamp {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{v} is not a time"))
    };
    let (created_expiry, moved) = (time(&first["expiresAt"]), time(&second["expiresAt"]));
    assert!(
        moved > created_expiry,
        "{moved} is not after {created_expiry}"
    );
    let ahead = moved.duration_since(jiff::Timestamp::now()).as_secs();
    assert!((7100..=7200).contains(&ahead), "expires {ahead}s from now");
    let listed_expiry = || time(&sb.json(&["list", "--env", ENV_FILE])[0]["expiresAt"]);
    assert_eq!(listed_expiry(), moved, "the record on the cluster moved");
    let status = sb.json(&["status", "--env", ENV_FILE, "--pr", "7"]);
    assert_eq!(status["rollout"]["phase"], "Healthy", "{status:#}");
    assert_eq!(
        status["rollout"]["stable"]["images"],
        json!(["ghcr.io/acme/cats:v2"])
    );
    assert_eq!(status["rollout"]["replicas"]["updated"], 1, "{status:#}");

    // Third up, with app.canary.preview: steps: the canary stops at its first pause (step 1,
    // 20%). The text summary and the plain progress lines say so, and that nothing serves the
    // URL.
    let (o, took) = up_with(&steps_file, "ghcr.io/acme/cats:v3", "text");
    eprintln!("e2e local: third up (fast path, new image to the first pause) took {took:.1?}");
    // maxLifetime 2h caps the expiry at created + 2h, which is before the current one: it stays.
    assert_eq!(
        listed_expiry(),
        moved,
        "maxLifetime caps, and never moves it earlier"
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        out.contains(
            "canary: paused at step 1/5 (pause (until promoted)) with 20% on the new image (app.canary.preview: steps)"
        ),
        "{out}"
    );
    assert!(out.starts_with("environment: pr-7\n"), "{out}");
    assert!(
        out.contains("url: https://pr-7.127.0.0.1.nip.io (simulated: pods do not run)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("kubeconfig: {}", kubeconfig.display())),
        "{out}"
    );
    let progress: Vec<&str> = err.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(
        progress,
        [
            "step cluster: started",
            "step cluster: done",
            "step kubeconfig: started",
            "step kubeconfig: done",
            "step addons: skipped (already installed at these versions)",
            "step app: started",
            "step app: done",
            "step report: started",
            "step report: done",
        ],
        "{err}"
    );
    assert!(!err.contains("addon "), "no add-on is touched: {err}");
    let status = sb.json(&["status", "--env", ENV_FILE, "--pr", "7"]);
    let r = &status["rollout"];
    assert_eq!(r["phase"], "Paused", "{status:#}");
    assert_eq!(r["step"]["index"], 1, "{status:#}");
    assert_eq!(r["setWeight"], 20, "{status:#}");
    assert_eq!(r["paused"], true);
    assert_eq!(r["stable"]["images"], json!(["ghcr.io/acme/cats:v2"]));
    assert_eq!(r["canary"]["images"], json!(["ghcr.io/acme/cats:v3"]));
    let text = sb.ok(&["status", "--env", ENV_FILE, "--pr", "7"]);
    assert!(text.contains("phase     Paused: CanaryPauseStep"), "{text}");
    assert!(
        text.contains("step      1/5: pause (until promoted)"),
        "{text}"
    );
    assert!(text.contains("weight    20% set"), "{text}");

    // promote one step: past the pause to setWeight 50, then the timed pause (step 3).
    let status_json = || sb.json(&["status", "--env", ENV_FILE, "--pr", "7"]);
    let promoted = sb.json(&["promote", "--env", ENV_FILE, "--pr", "7"]);
    assert_eq!(promoted["name"], "cats", "{promoted:#}");
    let s = wait_for(&status_json, "paused at step 3 with 50%", |s| {
        s["rollout"]["step"]["index"] == 3 && s["rollout"]["setWeight"] == 50
    });
    assert_eq!(
        s["rollout"]["canary"]["images"],
        json!(["ghcr.io/acme/cats:v3"])
    );
    // promote --full: every remaining step skipped, v3 becomes stable.
    let o = sb.ok(&["promote", "--env", ENV_FILE, "--pr", "7", "--full"]);
    assert!(o.starts_with("rollout   cats/cats\n"), "{o}");
    wait_for(&status_json, "Healthy on v3", |s| {
        s["rollout"]["phase"] == "Healthy"
            && s["rollout"]["stable"]["images"] == json!(["ghcr.io/acme/cats:v3"])
    });

    // deploy with app.canary.preview: steps waits for the first pause and prints where the
    // canary stands.
    let t0 = Instant::now();
    let deployed = sb.json(&[
        "deploy",
        "--env",
        &steps_file,
        "--pr",
        "7",
        "--image",
        "ghcr.io/acme/cats:v4",
        "--timeout",
        "2m",
    ]);
    eprintln!(
        "e2e local: deploy of v4 to the first pause took {:.1?}",
        t0.elapsed()
    );
    assert_eq!(deployed["phase"], "Paused", "{deployed:#}");
    assert_eq!(deployed["step"]["index"], 1, "{deployed:#}");
    assert_eq!(deployed["setWeight"], 20, "{deployed:#}");
    assert_eq!(
        deployed["canary"]["images"],
        json!(["ghcr.io/acme/cats:v4"])
    );
    assert_eq!(
        deployed["stable"]["images"],
        json!(["ghcr.io/acme/cats:v3"])
    );

    // abort: back to the stable v3, canary scaled away.
    let aborted = sb.json(&["abort", "--env", ENV_FILE, "--pr", "7"]);
    assert_eq!(aborted["name"], "cats", "{aborted:#}");
    let s = wait_for(&status_json, "aborted and back on v3", |s| {
        s["rollout"]["aborted"] == true && s["rollout"]["replicas"]["updated"] == 0
    });
    assert_eq!(
        s["rollout"]["stable"]["images"],
        json!(["ghcr.io/acme/cats:v3"])
    );
    let text = sb.ok(&["status", "--env", ENV_FILE, "--pr", "7"]);
    assert!(text.contains("aborted   yes"), "{text}");
    assert!(
        text.contains("phase     Degraded: RolloutAborted"),
        "{text}"
    );

    // deploy with the default (full): the new image ends serving 100%, Healthy.
    let t0 = Instant::now();
    let deployed = sb.json(&[
        "deploy",
        "--env",
        ENV_FILE,
        "--pr",
        "7",
        "--image",
        "ghcr.io/acme/cats:v5",
        "--timeout",
        "2m",
    ]);
    eprintln!(
        "e2e local: deploy of v5, fully promoted, took {:.1?}",
        t0.elapsed()
    );
    assert_eq!(deployed["phase"], "Healthy", "{deployed:#}");
    assert_eq!(deployed["setWeight"], 100, "{deployed:#}");
    assert_eq!(deployed["aborted"], false, "{deployed:#}");
    assert_eq!(deployed["canary"], Value::Null, "{deployed:#}");
    assert_eq!(
        deployed["stable"]["images"],
        json!(["ghcr.io/acme/cats:v5"])
    );
    // deploy is activity too: without maxLifetime the expiry moves on.
    let deployed_expiry = listed_expiry();
    assert!(
        deployed_expiry > moved,
        "{deployed_expiry} is not after {moved}"
    );

    // down: exit 0, no process, no state dir, no kubeconfig; then already gone.
    let before = processes_naming(sb.path());
    assert!(
        before.len() >= 5,
        "the cluster's processes name the sandbox: {before:?}"
    );
    let out = sb.ok(&["down", "--env", ENV_FILE, "--pr", "7"]);
    assert_eq!(out.trim(), "pr-7: deleted");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_naming(sb.path()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        processes_naming(sb.path()),
        Vec::<u32>::new(),
        "processes left after down"
    );
    assert!(
        !env_dir.exists(),
        "{} is left after down",
        env_dir.display()
    );
    assert!(!kubeconfig.exists(), "{} is left", kubeconfig.display());
    assert_eq!(sb.json(&["list", "--env", ENV_FILE]), json!([]));
    let out = sb.ok(&["down", "--env", ENV_FILE, "--pr", "7"]);
    assert_eq!(out.trim(), "pr-7: already-gone");
}

/// The app commands and `status` on an environment that does not exist: exit 2, a message naming
/// it, and nothing created on this machine.
#[test]
fn app_commands_on_a_missing_local_environment_exit_2_and_create_nothing() {
    // No binaries are needed to find that an environment does not exist.
    let tmp = tempfile::tempdir().expect("tempdir");
    for args in [
        &["deploy", "--image", "ghcr.io/acme/cats:v9"][..],
        &["promote", "--full"],
        &["abort"],
        &["status"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--env", ENV_FILE, "--pr", "404"]);
        let o = ephemera()
            .env("HOME", tmp.path().join("home"))
            .env("XDG_STATE_HOME", tmp.path().join("state"))
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .env("EPHEMERA_LOCAL_BIN", tmp.path().join("no-binaries"))
            .env("CI", "1")
            .args(&all)
            .output()
            .expect("ephemera runs");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{}", describe(&all, &o));
        assert!(
            err.starts_with("error: ") && err.contains("pr-404") && err.contains("does not exist"),
            "{}",
            describe(&all, &o)
        );
        assert!(stdout(&o).is_empty(), "{}", describe(&all, &o));
        let made: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("tempdir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            made.is_empty(),
            "ephemera {} created {made:?}",
            all.join(" ")
        );
    }
}
