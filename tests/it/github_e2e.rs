//! GitHub reporting through the binary on a local environment: an outage leaves `up` healthy
//! with a warning; once GitHub answers, one deployment and one sticky comment follow; `down`
//! marks the deployment inactive. The token never reaches the output.

use serde_json::Value;

use crate::common::fake_github::{FakeGitHub, TOKEN};
use crate::common::lifecycle::{Sandbox, describe, local_env, manifests};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn a_github_outage_never_fails_up_and_a_working_github_gets_one_comment() {
    let Some(sb) = Sandbox::local() else {
        return;
    };
    let fake = FakeGitHub::start_in_thread();
    let env = sb.write("gh.yaml", &local_env("gh"));
    let env = env.to_str().expect("utf-8 path");
    let bundles = manifests();
    let run = |args: &[&str]| {
        let o = sb
            .command(args)
            .envs(fake.env(SHA))
            .output()
            .expect("ephemera runs");
        (o.status.success(), describe(args, &o), o)
    };

    fake.outage(500);
    let up = [
        "up",
        "--env",
        env,
        "--pr",
        "5",
        "--image",
        "ghcr.io/acme/cats:v1",
        "--manifests",
        &bundles,
        "--github",
        "--sha",
        SHA,
        "--output",
        "json",
    ];
    let (ok, what, o) = run(&up);
    assert!(ok, "a GitHub outage must not fail up: {what}");
    let report: Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(warnings.iter().any(|w| w.starts_with("GitHub ")), "{what}");
    assert!(!what.contains(TOKEN), "the token leaked: {what}");
    assert!(
        fake.comments(5).is_empty(),
        "nothing was written during the outage"
    );

    fake.restore();
    let up2 = [
        "up",
        "--env",
        env,
        "--pr",
        "5",
        "--image",
        "ghcr.io/acme/cats:v2",
        "--manifests",
        &bundles,
        "--github",
        "--sha",
        SHA,
        "--output",
        "json",
    ];
    let (ok, what, _) = run(&up2);
    assert!(ok, "{what}");
    let comments = fake.comments(5);
    assert_eq!(comments.len(), 1, "one sticky comment: {comments:?}");
    assert!(
        comments[0].body.contains("<!-- ephemera:pr-5 -->"),
        "{}",
        comments[0].body
    );
    let deployments = fake.deployments();
    assert!(
        deployments
            .iter()
            .any(|d| d.sha == SHA && d.environment == "preview/pr-5"),
        "{deployments:?}"
    );

    let down = ["down", "--env", env, "--pr", "5", "--github"];
    let (ok, what, _) = run(&down);
    assert!(ok, "{what}");
    let comments = fake.comments(5);
    assert_eq!(
        comments.len(),
        1,
        "down edits the same comment: {comments:?}"
    );
    assert!(
        sb.local_envs().is_empty(),
        "down left {:?}",
        sb.local_envs()
    );
}
