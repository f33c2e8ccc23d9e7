//! The `kind` provider end to end against the kind test double (tests/kind-double), which answers
//! with kind's own texts and is backed by real control planes from `scripts/testcluster`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ephemera::config::{KindConfig, ProviderConfig};
use ephemera::providers::kind::KindProvider;
use ephemera::providers::probe::FakeProbe;
use ephemera::providers::{ClusterRequest, Deleted, Provider, ProviderError, configmap};
use ephemera::record::Record;
use ephemera::templates::Renderer;

use crate::common::testcluster::{binary, cluster_required, repo_root};

const KEYS: [&str; 5] = [
    "ETCD",
    "KUBE_APISERVER",
    "KUBE_CONTROLLER_MANAGER",
    "KUBE_SCHEDULER",
    "KWOK",
];

/// A directory with the kind double (and the docker stand-in) first on its own PATH.
struct Double {
    tmp: tempfile::TempDir,
}

impl Double {
    /// `None` (after a loud message) when the control-plane binaries are missing, unless a
    /// cluster is required.
    fn new(faults: &str) -> Option<Double> {
        let missing: Vec<PathBuf> = KEYS
            .iter()
            .map(|k| binary(k))
            .filter(|p| !p.exists())
            .collect();
        if !missing.is_empty() {
            assert!(
                !cluster_required(),
                "the kind double needs {missing:?}; run scripts/testcluster build"
            );
            eprintln!(
                "\n*** SKIPPED: the kind double needs {missing:?}; run scripts/testcluster build ***\n"
            );
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let double = repo_root().join("tests/kind-double");
        // The double reads its settings from the environment; a wrapper gives each test its own
        // without touching this process's environment.
        let wrapper = format!(
            "#!/bin/sh\nexec env KIND_DOUBLE_STATE='{}' KIND_DOUBLE_LOG='{}' KIND_DOUBLE_OWNER_PID='{}' \
             KIND_DOUBLE_FAIL='{faults}' '{}' \"$@\"\n",
            tmp.path().join("state").display(),
            tmp.path().join("kind.log").display(),
            std::process::id(),
            double.join("kind").display(),
        );
        write_executable(&bin.join("kind"), &wrapper);
        std::os::unix::fs::symlink(double.join("docker"), bin.join("docker")).unwrap();
        Some(Double { tmp })
    }

    fn bin(&self) -> PathBuf {
        self.tmp.path().join("bin")
    }

    fn provider(&self, cfg: &KindConfig) -> KindProvider {
        let path = self.bin().display().to_string();
        let mut probe = FakeProbe::new([("PATH", path.as_str())]);
        probe.real_files = true;
        KindProvider::with_probe(cfg, Arc::new(Renderer::new(None).unwrap()), &probe)
            .unwrap()
            .with_wait(Duration::from_secs(60))
    }

    /// The double's log with this test's temporary paths replaced by `<tmp>`.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.tmp.path().join("kind.log")).unwrap_or_default();
        let tmp = std::env::temp_dir().display().to_string();
        text.lines()
            .map(|l| {
                l.split(' ')
                    .map(|w| {
                        if w.starts_with(&tmp) {
                            "<tmp>/".to_string() + w.rsplit('/').next().unwrap()
                        } else {
                            w.into()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Clusters the double knows, by asking it as a user would.
    fn clusters(&self) -> Vec<String> {
        let out = std::process::Command::new(self.bin().join("kind"))
            .args(["get", "clusters"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The cluster config the double was given at `create`.
    fn config(&self, cluster: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(
            self.tmp
                .path()
                .join("state/clusters")
                .join(cluster)
                .join("config.yaml"),
        )
        .unwrap();
        serde_saphyr::from_str(&text).unwrap()
    }
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn pr_kind() -> KindConfig {
    let env = ephemera::config::load(&repo_root().join("environments/pr-kind.yaml")).unwrap();
    match env.provider {
        ProviderConfig::Kind(cfg) => cfg,
        other => panic!("environments/pr-kind.yaml uses {}", other.kind()),
    }
}

fn request(name: &str, pr: u64) -> ClusterRequest {
    ClusterRequest {
        name: name.into(),
        record: Record {
            name: name.into(),
            provider: "kind".into(),
            repository: Some("acme/cats".into()),
            pr: Some(pr),
            created_at: "2026-11-28T10:00:00Z".parse().unwrap(),
            expires_at: "2026-11-28T18:00:00Z".parse().unwrap(),
            created_by: Some("ci".into()),
            version: ephemera::VERSION.into(),
            url: None,
            env_file: Some("pr-kind".into()),
            pool: None,
        },
    }
}

#[tokio::test]
async fn kind_lifecycle_through_the_double() {
    let Some(double) = Double::new("") else {
        return;
    };
    let p = double.provider(&pr_kind());
    let req = request("pr-7", 7);

    let first = p.ensure(&req).await.unwrap();
    assert!(first.created);
    assert!(first.serves_traffic);
    assert_eq!(first.record, req.record);
    let again = p.ensure(&req).await.unwrap();
    assert!(!again.created, "a rerun finds the cluster");

    // The config kind got: the environment's node image, ingress-ready, host ports 80 and 443.
    let config = double.config("ephemera-pr-7");
    let node = &config["nodes"][0];
    assert_eq!(node["image"], "kindest/node:v1.34.0");
    assert!(
        node["kubeadmConfigPatches"][0]
            .as_str()
            .unwrap()
            .contains("ingress-ready=true"),
        "{config}"
    );
    let host_ports: Vec<u64> = node["extraPortMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["hostPort"].as_u64().unwrap())
        .collect();
    assert_eq!(host_ports, [80, 443]);

    // The record is the ConfigMap on the cluster; list reads it; update_record rewrites it.
    let kubeconfig = p.kubeconfig("pr-7").await.unwrap();
    let client = kubeconfig.client().await.unwrap();
    assert_eq!(
        configmap::read(client.clone(), "t").await.unwrap(),
        Some(req.record.clone())
    );
    assert_eq!(p.list().await.unwrap(), vec![req.record.clone()]);
    let mut updated = req.record.clone();
    updated.url = Some("https://pr-7.127.0.0.1.nip.io".into());
    p.update_record(&updated).await.unwrap();
    assert_eq!(p.list().await.unwrap(), vec![updated]);

    assert_eq!(p.delete("pr-7").await.unwrap(), Deleted::Deleted);
    assert!(double.clusters().is_empty());
    assert_eq!(p.delete("pr-7").await.unwrap(), Deleted::AlreadyGone);
    assert!(p.list().await.unwrap().is_empty());
    assert!(matches!(
        p.kubeconfig("pr-7").await,
        Err(ProviderError::NotFound(_))
    ));
    insta::assert_snapshot!(double.log());
}

#[tokio::test]
async fn kind_create_that_fails_after_creation_leaves_no_cluster() {
    let Some(double) = Double::new("create-after-creation") else {
        return;
    };
    let p = double.provider(&pr_kind());
    let err = p.ensure(&request("pr-8", 8)).await.unwrap_err();
    let ProviderError::Command {
        command,
        status,
        output,
    } = &err
    else {
        panic!("{err}")
    };
    assert!(
        command.starts_with("kind create cluster --name ephemera-pr-8 --config /"),
        "{command}"
    );
    assert_eq!(status, "exit status 1");
    assert!(
        output.contains("failed to init node with kubeadm"),
        "{output}"
    );
    assert!(
        double
            .log()
            .ends_with("kind delete cluster --name ephemera-pr-8"),
        "{}",
        double.log()
    );
    assert!(
        double.clusters().is_empty(),
        "the half-made cluster was deleted"
    );
}

#[tokio::test]
async fn kind_keep_on_failure_keeps_the_half_made_cluster() {
    let Some(double) = Double::new("create-after-creation") else {
        return;
    };
    let p = double.provider(&pr_kind()).keep_on_failure(true);
    assert!(matches!(
        p.ensure(&request("pr-9", 9)).await,
        Err(ProviderError::Command { .. })
    ));
    assert_eq!(
        double.clusters(),
        ["ephemera-pr-9"],
        "--keep-on-failure keeps it for debugging"
    );
    assert!(!double.log().contains("delete"), "{}", double.log());
    assert_eq!(p.delete("pr-9").await.unwrap(), Deleted::Deleted);
    assert!(double.clusters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_concurrent_ensures_make_one_cluster() {
    let Some(double) = Double::new("") else {
        return;
    };
    let p = double.provider(&KindConfig::default());
    let req = request("pr-10", 10);
    let (a, b) = tokio::join!(p.ensure(&req), p.ensure(&req));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        u8::from(a.created) + u8::from(b.created),
        1,
        "one run creates, the other finds it"
    );
    assert_eq!(a.record, b.record);
    let log = double.log();
    assert!(
        (1..=2).contains(&log.matches("kind create cluster").count()),
        "{log}"
    );
    assert_eq!(double.clusters(), ["ephemera-pr-10"]);
    assert_eq!(p.delete("pr-10").await.unwrap(), Deleted::Deleted);
}

#[test]
fn kind_provider_names_missing_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().display().to_string();
    let mut probe = FakeProbe::new([("PATH", path.as_str())]);
    probe.real_files = true;
    write_executable(&tmp.path().join("docker"), "#!/bin/sh\n");
    let err = KindProvider::with_probe(
        &KindConfig::default(),
        Arc::new(Renderer::new(None).unwrap()),
        &probe,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("kind is not available: install kind: `go install sigs.k8s.io/kind@"),
        "{err}"
    );
}
