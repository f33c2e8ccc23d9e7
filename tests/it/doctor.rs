//! `doctor` on described machines: which providers can run, why not, and what fixes it.

use ephemera::ExitStatus;
use ephemera::doctor::{FakeProbe, doctor};

use crate::common::testcluster::repo_root;

const K8S: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];

fn env(file: &str) -> ephemera::config::Environment {
    ephemera::config::load(&repo_root().join("environments").join(file)).unwrap()
}

/// A machine with `bin` on PATH holding `tools`, and the control-plane binaries in /opt/k8s when
/// `local_bin` is set.
fn machine(vars: &[(&str, &str)], tools: &[&str], local_bin: bool) -> FakeProbe {
    let mut p = FakeProbe::new([("PATH", "/usr/local/bin:/usr/bin"), ("HOME", "/users/dev")]);
    for (k, v) in vars {
        p.vars.insert(k.to_string(), v.to_string());
    }
    for t in tools {
        p = p.with_executable(format!("/usr/bin/{t}"));
    }
    if local_bin {
        p.vars
            .insert("EPHEMERA_LOCAL_BIN".into(), "/opt/k8s".into());
        for c in K8S {
            p = p.with_executable(format!("/opt/k8s/{c}"));
        }
    }
    p
}

#[test]
fn doctor_on_a_bare_machine_names_every_missing_tool_and_fix() {
    let report = doctor(None, &machine(&[], &[], false));
    assert!(report.providers.iter().all(|p| !p.ready));
    assert_eq!(
        report.exit_status(),
        ExitStatus::Ok,
        "without --env the report alone does not fail"
    );
    insta::assert_snapshot!(report.to_string());
    insta::assert_json_snapshot!(report);
}

#[test]
fn doctor_kind_without_a_container_runtime() {
    let report = doctor(
        Some(&env("pr-kind.yaml")),
        &machine(&[], &["kind", "az"], true),
    );
    assert_eq!(
        report.exit_status(),
        ExitStatus::Failed,
        "pr-kind needs docker or podman"
    );
    insta::assert_snapshot!(report.to_string());
}

#[test]
fn doctor_kind_without_kind() {
    let report = doctor(
        Some(&env("pr-kind.yaml")),
        &machine(&[], &["docker"], false),
    );
    assert_eq!(report.exit_status(), ExitStatus::Failed);
    insta::assert_snapshot!(report.to_string());
}

#[test]
fn doctor_local_binaries_not_built() {
    let report = doctor(
        Some(&env("local.yaml")),
        &machine(&[("XDG_CACHE_HOME", "/cache")], &["kind", "docker"], false),
    );
    assert_eq!(report.exit_status(), ExitStatus::Failed);
    let local = report
        .providers
        .iter()
        .find(|p| p.provider == "local")
        .unwrap();
    assert_eq!(
        local.checks[0].fix.as_deref(),
        Some(
            "run `scripts/testcluster build`, or set EPHEMERA_LOCAL_BIN to a directory holding them"
        )
    );
    insta::assert_snapshot!(report.to_string());
}

#[test]
fn doctor_half_configured_azure_credential() {
    let report = doctor(
        Some(&env("pr-aks.yaml")),
        &machine(&[("AZURE_CLIENT_SECRET", "s3cr3t-value")], &["az"], false),
    );
    assert_eq!(
        report.exit_status(),
        ExitStatus::Failed,
        "a half-configured source stops the chain"
    );
    let text = report.to_string();
    assert!(
        !text.contains("s3cr3t-value"),
        "secrets never reach the report"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn doctor_every_provider_ready() {
    let probe = machine(
        &[
            ("AZURE_CLIENT_ID", "id"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
        ],
        &["kind", "podman"],
        true,
    );
    for file in ["local.yaml", "pr-kind.yaml", "pr-aks.yaml"] {
        let report = doctor(Some(&env(file)), &probe);
        assert_eq!(report.exit_status(), ExitStatus::Ok, "{file}:\n{report}");
    }
    insta::assert_snapshot!(doctor(None, &probe).to_string());
}
