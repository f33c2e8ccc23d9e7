//! `--timeout` and `--deadline` bound every wait, through the real binary: with ARM unreachable
//! (a closed port on 127.0.0.1), `up` and `down` exit 3 in time with one line naming what they
//! waited for, instead of retrying for minutes.

use std::time::{Duration, Instant};

use crate::common::cli::{ephemera, stderr, stdout};

/// A port on 127.0.0.1 that nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs `ephemera -q ARGS` against an ARM endpoint that refuses connections; returns the output
/// and how long it took.
fn against_unreachable_arm(args: &[&str]) -> (std::process::Output, Duration) {
    let home = tempfile::tempdir().unwrap();
    let arm = format!("http://127.0.0.1:{}/", closed_port());
    let t0 = Instant::now();
    let o = ephemera()
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("AZURE_RESOURCE_MANAGER_ENDPOINT", &arm)
        .env("AZURE_AUTHORITY_HOST", &arm)
        .env("EPHEMERA_AZURE_TOKEN", "opaque-test-token")
        // pr-aks.yaml's app.registry takes the GHCR pull token from here.
        .env("GITHUB_TOKEN", "opaque-registry-token")
        .env("PATH", "")
        .arg("-q")
        .args(args)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    (o, t0.elapsed())
}

fn assert_timed_out(o: &std::process::Output, took: Duration, within: Duration, expect: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(took < within, "took {took:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: timed out after "), "{err}");
    assert!(err.contains(expect), "{err}");
    // What it waited for: the ARM request and why it failed.
    assert!(err.contains("last waiting for: ARM "), "{err}");
    assert!(stdout(o).is_empty());
}

/// `up` of PR 7 from `environments/pr-aks.yaml`, with `bound` (e.g. `--timeout 20s`).
fn up_pr_aks(bound: [&str; 2]) -> (std::process::Output, Duration) {
    let mut args = vec!["up", "--env", "environments/pr-aks.yaml", "--pr", "7"];
    args.extend(["--image", "ghcr.io/acme/cats:sha-1234"]);
    args.extend(bound);
    against_unreachable_arm(&args)
}

#[test]
fn up_with_arm_unreachable_exits_3_within_its_timeout() {
    // The checks before the first step (the limit, the DNS record, the lease) wait on ARM.
    let (o, took) = up_pr_aks(["--timeout", "20s"]);
    let expect = "(--timeout 20s) before the first step";
    assert_timed_out(&o, took, Duration::from_secs(25), expect);
}

#[test]
fn up_stops_at_its_deadline_before_its_timeout() {
    let (o, took) = up_pr_aks(["--deadline", "5s"]);
    assert_timed_out(&o, took, Duration::from_secs(10), "(--deadline 5s)");
}

#[test]
fn down_with_arm_unreachable_exits_3_within_its_timeout() {
    // No DNS zone here, so the wait is in the step that deletes the cluster.
    let (o, took) = against_unreachable_arm(&[
        "down",
        "--env",
        "environments/adhoc-aks.yaml",
        "--name",
        "demo",
        "--timeout",
        "10s",
    ]);
    let expect = "(--timeout 10s) in step cluster; last waiting for: ARM deleting cluster demo";
    assert_timed_out(&o, took, Duration::from_secs(15), expect);
}

#[test]
fn a_zero_or_malformed_deadline_is_refused() {
    for (args, expect) in [
        (
            ["up", "--deadline", "0s"],
            "--deadline: \"0s\" would give up before starting",
        ),
        (["down", "--deadline", "soon"], "--deadline: "),
        (
            ["down", "--timeout", "0m"],
            "--timeout: \"0m\" would give up before starting",
        ),
    ] {
        let mut cmd = ephemera();
        cmd.args(args)
            .args(["--env", "environments/pr-aks.yaml", "--pr", "7"]);
        if args[0] == "up" {
            cmd.args(["--image", "ghcr.io/acme/cats:sha-1234"]);
        }
        let o = cmd.output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{err}");
    }
}

#[test]
fn every_other_command_ends_within_its_timeout_with_arm_unreachable() {
    let aks = ["--env", "environments/adhoc-aks.yaml", "--name", "demo"];
    let cases: [(&[&str], &str); 6] = [
        (&["status"], "reading the environment"),
        (&["promote", "--full"], "promoting the canary"),
        (&["abort"], "aborting the canary"),
        (&["extend", "--by", "2h"], "extending the environment"),
        (&["kubeconfig"], "fetching the kubeconfig"),
        (
            &["deploy", "--image", "ghcr.io/acme/cats:v2"],
            "deploying the image",
        ),
    ];
    for (command, what) in cases {
        let mut args = command.to_vec();
        args.extend(aks);
        args.extend(["--timeout", "5s"]);
        let (o, took) = against_unreachable_arm(&args);
        let expect = format!("(--timeout 5s) {what}");
        assert_timed_out(&o, took, Duration::from_secs(12), &expect);
    }
    let (o, took) = against_unreachable_arm(&[
        "list",
        "--env",
        "environments/adhoc-aks.yaml",
        "--deadline",
        "5s",
    ]);
    assert_timed_out(&o, took, Duration::from_secs(12), "(--deadline 5s) listing");
}
