//! `app.registry` through the real binary: `plan` shows the pull Secret redacted and the Rollout
//! referencing it; `up` and `deploy` refuse a missing password variable before touching anything;
//! on the local provider `up` writes the `kubernetes.io/dockerconfigjson` Secret, the Rollout's
//! pods reference it, `deploy` refreshes it with a rotated token, and no output carries a token.

use base64::Engine as _;
use serde_json::Value;

use crate::common::cli::{NOW, stderr, stdout, yaml_docs};
use crate::common::lifecycle::{Sandbox, describe, local_bin_dirs, local_env, manifests};

const TOKEN_ENV: &str = "EPHEMERA_TEST_REGISTRY_TOKEN";
const REGISTRY: &str = "  registry:\n    server: ghcr.io\n    username: octocat\n    passwordEnv: EPHEMERA_TEST_REGISTRY_TOKEN\n";

/// A local environment file (Argo Rollouts alone) whose app pulls from GHCR with a token.
fn env_with_registry() -> String {
    let yaml = local_env("reg");
    let app = "app:\n  name: cats\n  replicas: 1\n";
    assert!(yaml.contains(app), "{yaml}");
    yaml.replace(app, &format!("{app}{REGISTRY}"))
}

/// `COMMAND --env ENV --pr 3 --image ghcr.io/acme/cats:TAG`, then `extra`.
fn args<'a>(command: &'a str, env: &'a str, tag: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let image = match tag {
        "v1" => "ghcr.io/acme/cats:v1",
        _ => "ghcr.io/acme/cats:v2",
    };
    let mut all = vec![command, "--env", env, "--pr", "3", "--image", image];
    all.extend_from_slice(extra);
    all
}

fn decode(data: &str) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::from_slice(&b64.decode(data).expect("base64")).expect("JSON")
}

#[test]
fn plan_shows_the_pull_secret_redacted_and_the_rollout_referencing_it() {
    let sb = Sandbox::with_vars(vec![(TOKEN_ENV.into(), "tok-plan-s3cr3t".into())]);
    let env = sb.write("reg.yaml", &env_with_registry());
    let env = env.display().to_string();
    let args = [
        "plan",
        "--env",
        &env,
        "--pr",
        "3",
        "--image",
        "ghcr.io/acme/cats:v1",
        "--now",
        NOW,
    ];
    let o = sb.run(&args);
    assert!(o.status.success(), "{}", describe(&args, &o));
    let out = stdout(&o);
    assert!(
        !out.contains("s3cr3t"),
        "plan never reads the token:\n{out}"
    );
    let docs = yaml_docs(&out);
    let secret = crate::common::cli::find(&docs, "Secret", "cats-registry");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(secret["metadata"]["namespace"], "cats");
    assert_eq!(secret["data"][".dockerconfigjson"], "<redacted>");
    assert_eq!(
        secret["metadata"]["annotations"]["ephemera.dev/password-env"],
        TOKEN_ENV
    );
    let rollout = crate::common::cli::find(&docs, "Rollout", "cats");
    assert_eq!(
        rollout["spec"]["template"]["spec"]["imagePullSecrets"],
        serde_json::json!([{ "name": "cats-registry" }])
    );
}

#[test]
fn a_missing_password_variable_stops_up_and_deploy_before_anything() {
    let sb = Sandbox::with_vars(vec![]);
    let env = sb.write("reg.yaml", &env_with_registry());
    let env = env.display().to_string();
    for args in [args("up", &env, "v1", &[]), args("deploy", &env, "v2", &[])] {
        let o = sb.run(&args);
        assert_eq!(o.status.code(), Some(2), "{}", describe(&args, &o));
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("error: {env}:"))
                && err.contains(&format!(
                    "app.registry.passwordEnv: the environment variable {TOKEN_ENV} is not set"
                )),
            "{}",
            describe(&args, &o)
        );
        assert!(!sb.state().join("local").exists(), "nothing is created");
    }
}

#[test]
fn up_writes_the_pull_secret_and_deploy_refreshes_it() {
    let Some(bins) = local_bin_dirs() else {
        return;
    };
    let sb = Sandbox::with_vars(vec![
        ("EPHEMERA_LOCAL_BIN".into(), bins),
        ("PATH".into(), "/usr/bin:/bin".into()),
    ]);
    let env = sb.write("reg.yaml", &env_with_registry());
    let env = env.display().to_string();
    struct Down<'a>(&'a Sandbox, &'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = self.0.run(&["down", "--env", self.1, "--pr", "3"]);
        }
    }

    let with_token = |sb: &Sandbox, token: &str, args: &[&str]| {
        let o = sb
            .command(args)
            .env(TOKEN_ENV, token)
            .output()
            .expect("ephemera runs");
        assert!(o.status.success(), "{}", describe(args, &o));
        for (what, text) in [("stdout", stdout(&o)), ("stderr", stderr(&o))] {
            assert!(!text.contains(token), "the token is on {what}:\n{text}");
        }
    };
    let manifests = manifests();
    let up = args("up", &env, "v1", &["--manifests", &manifests, "-vv"]);
    let _down = Down(&sb, &env);
    with_token(&sb, "tok-one-s3cr3t", &up);

    let kubeconfig = sb.state().join("kubeconfig/pr-3.yaml");
    let kubectl = |args: &[&str]| -> Value {
        let out = std::process::Command::new(crate::common::testcluster::binary("KUBECTL"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .args(["-o", "json"])
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("kubectl JSON")
    };
    let secret = kubectl(&["-n", "cats", "get", "secret", "cats-registry"]);
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(
        secret["metadata"]["labels"]["ephemera.dev/environment"],
        "pr-3"
    );
    let auth = decode(secret["data"][".dockerconfigjson"].as_str().expect("data"));
    assert_eq!(auth["auths"]["ghcr.io"]["username"], "octocat");
    assert_eq!(auth["auths"]["ghcr.io"]["password"], "tok-one-s3cr3t");
    let rollout = kubectl(&["-n", "cats", "get", "rollout", "cats"]);
    assert_eq!(
        rollout["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
        "cats-registry"
    );

    // deploy with a rotated token: the Secret follows.
    let deploy = args("deploy", &env, "v2", &["--timeout", "2m", "-vv"]);
    with_token(&sb, "tok-two-s3cr3t", &deploy);
    let secret = kubectl(&["-n", "cats", "get", "secret", "cats-registry"]);
    let auth = decode(secret["data"][".dockerconfigjson"].as_str().expect("data"));
    assert_eq!(auth["auths"]["ghcr.io"]["password"], "tok-two-s3cr3t");
}
