//! Acceptance tests for the test control plane: `scripts/testcluster` and its Rust helper.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::common::testcluster::{self, TestCluster, process_running, shared_namespace};

/// How long any one object may take to reach the state a test waits for.
const DEADLINE: Duration = Duration::from_secs(120);
const MANAGER: &str = "ephemera-tests";
const ROLLOUTS_MANIFEST: &str = "fixtures/manifests/argo-rollouts-v1.9.1/install.yaml";

/// Polls `name` until `done` holds. On timeout, panics naming the object, what was awaited and the
/// status it was last seen in.
async fn wait_until<K>(api: &Api<K>, name: &str, what: &str, done: impl Fn(&K) -> bool) -> K
where
    K: Clone + Debug + DeserializeOwned + Serialize,
{
    let start = Instant::now();
    loop {
        let last = match api.get_opt(name).await {
            Ok(Some(obj)) if done(&obj) => return obj,
            Ok(Some(obj)) => {
                let value = serde_json::to_value(&obj).unwrap_or_default();
                format!("with status {}", value["status"])
            }
            Ok(None) => "absent".to_string(),
            Err(e) => format!("unreadable: {e}"),
        };
        assert!(
            start.elapsed() < DEADLINE,
            "{name} did not become {what} within {DEADLINE:?}; last seen {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn deployment_with_two_replicas_becomes_available() {
    let Some(ns) = shared_namespace() else { return };
    let client = ns.cluster().client().await;
    let api: Api<Deployment> = Api::namespaced(client, ns.name());
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]}
            }
        }
    });
    api.patch(
        "web",
        &PatchParams::apply(MANAGER),
        &Patch::Apply(&deployment),
    )
    .await
    .expect("server-side apply of the Deployment");

    let done = wait_until(&api, "web", "Available with 2 replicas", |d| {
        let Some(status) = &d.status else {
            return false;
        };
        let available = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Available" && c.status == "True");
        available && status.available_replicas == Some(2) && status.ready_replicas == Some(2)
    })
    .await;
    assert_eq!(done.status.and_then(|s| s.replicas), Some(2));
}

/// The CustomResourceDefinition documents of a multi-document YAML file, as YAML text.
fn crd_documents(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest)
        .unwrap_or_else(|e| panic!("reading {}: {e}", manifest.display()));
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().expect("never empty");
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.retain(|doc| {
        doc.lines()
            .any(|l| l.trim_end() == "kind: CustomResourceDefinition")
    });
    docs
}

#[tokio::test]
async fn argo_rollouts_crds_apply_server_side_and_become_established() {
    // CRDs are cluster-scoped: installing them on the shared cluster would change what every other
    // test sees there (some check that the Rollouts API is absent), so this test gets its own.
    let Some(cluster) = TestCluster::start("crds") else {
        return;
    };
    let manifest = testcluster::shared_file(ROLLOUTS_MANIFEST);
    let crds = crd_documents(&manifest);
    assert_eq!(crds.len(), 5, "{} should hold 5 CRDs", manifest.display());
    let file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    std::fs::write(file.path(), crds.join("---\n")).expect("writing the CRDs");

    let applied = cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        MANAGER,
        "-o",
        "name",
        "-f",
        &file.path().display().to_string(),
    ]);
    let names: Vec<&str> = applied
        .lines()
        .filter_map(|l| l.strip_prefix("customresourcedefinition.apiextensions.k8s.io/"))
        .collect();
    assert_eq!(names.len(), 5, "kubectl applied:\n{applied}");

    let api: Api<CustomResourceDefinition> = Api::all(cluster.client().await);
    for name in names {
        wait_until(&api, name, "Established", |crd| {
            crd.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        })
        .await;
    }
}

fn rollouts_api(client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout");
    Api::namespaced_with(
        client,
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "rollouts"),
    )
}

fn rollout(image: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            },
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}
        }
    })
}

fn status(ro: &DynamicObject) -> &Value {
    &ro.data["status"]
}

#[tokio::test]
async fn rollout_pauses_at_step_one_and_finishes_after_promote() {
    let Some(cluster) = TestCluster::start_with_rollouts("rollout") else {
        return;
    };
    cluster.kubectl_ok(&["create", "namespace", "canary"]);
    let api = rollouts_api(cluster.client().await, "canary");
    let apply = PatchParams::apply(MANAGER);

    api.patch(
        "web",
        &apply,
        &Patch::Apply(rollout("registry.invalid/web:1")),
    )
    .await
    .expect("applying the Rollout");
    // The first revision skips the steps and goes straight to stable.
    wait_until(&api, "web", "Healthy at revision 1", |ro| {
        let s = status(ro);
        s["phase"] == "Healthy"
            && s["availableReplicas"] == 5
            && s["stableRS"] == s["currentPodHash"]
    })
    .await;

    api.patch(
        "web",
        &apply,
        &Patch::Apply(rollout("registry.invalid/web:2")),
    )
    .await
    .expect("changing the image");
    let paused = wait_until(&api, "web", "Paused at step 1", |ro| {
        let s = status(ro);
        s["phase"] == "Paused"
            && s["currentStepIndex"] == 1
            && s["pauseConditions"][0]["reason"] == "CanaryPauseStep"
            && s["updatedReplicas"] == 1
    })
    .await;
    let canary_hash = status(&paused)["currentPodHash"].clone();
    assert_ne!(
        canary_hash,
        status(&paused)["stableRS"],
        "the canary is not yet stable"
    );

    // ephemera's promote sends the plugin's patches (status.pauseConditions: null to the status
    // subresource, spec.paused: false only when set), and works around the controller's
    // lost-update bug in v1.9.1 (argoproj/argo-rollouts#4073) that can drop a write made while
    // it reconciles.
    ephemera::app::promote(&cluster.client().await, "canary", "web", false)
        .await
        .expect("promoting");
    wait_until(&api, "web", "Healthy at revision 2 after promote", |ro| {
        let s = status(ro);
        s["phase"] == "Healthy"
            && s["currentStepIndex"] == 2
            && s["stableRS"] == canary_hash
            && s["updatedReplicas"] == 5
            && s["availableReplicas"] == 5
    })
    .await;

    cluster.assert_listens_only_on_loopback();
    assert_down_leaves_nothing(cluster);
}

#[test]
fn two_clusters_run_side_by_side_without_sharing_anything() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| TestCluster::start("side-a"));
        let b = s.spawn(|| TestCluster::start("side-b"));
        (a.join().expect("start a"), b.join().expect("start b"))
    });
    let (Some(a), Some(b)) = (a, b) else { return };

    assert_ne!(a.dir(), b.dir());
    let (ka, kb) = (read(a.kubeconfig()), read(b.kubeconfig()));
    assert_ne!(
        server_of(&ka),
        server_of(&kb),
        "each apiserver has its own port"
    );
    assert_ne!(
        field(&ka, "certificate-authority-data"),
        field(&kb, "certificate-authority-data"),
        "each cluster has its own CA"
    );
    let (pa, pb) = (a.pids(), b.pids());
    let pids_a: BTreeSet<u32> = pa.values().copied().collect();
    assert!(
        pb.values().all(|pid| !pids_a.contains(pid)),
        "no shared process: {pa:?} vs {pb:?}"
    );

    // State written to one is invisible to the other.
    a.kubectl_ok(&["create", "namespace", "only-in-a"]);
    let in_b = b
        .kubectl()
        .args(["get", "namespace", "only-in-a"])
        .output()
        .expect("kubectl runs");
    assert!(!in_b.status.success(), "cluster b sees a's namespace");

    // One cluster's admin credentials are worthless on the other.
    let cross = b
        .kubectl()
        .arg(format!("--server={}", server_of(&ka)))
        .args(["get", "namespace", "only-in-a"])
        .output()
        .expect("kubectl runs");
    assert!(
        !cross.status.success(),
        "b's kubeconfig works against a's apiserver"
    );

    a.assert_listens_only_on_loopback();
    b.assert_listens_only_on_loopback();
    assert_down_leaves_nothing(a);
    assert_down_leaves_nothing(b);
}

#[test]
fn down_of_a_missing_cluster_succeeds() {
    let out = std::process::Command::new(testcluster::repo_root().join("scripts/testcluster"))
        .args(["down", &format!("never-started-{}", std::process::id())])
        .output()
        .expect("scripts/testcluster runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The value of the first `key: value` line in a kubeconfig, unquoted.
fn field(kubeconfig: &str, key: &str) -> String {
    kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in the kubeconfig"))
        .trim()
        .trim_matches('"')
        .to_string()
}

fn server_of(kubeconfig: &str) -> String {
    field(kubeconfig, "server")
}

fn assert_down_leaves_nothing(cluster: TestCluster) {
    let pids = cluster.pids();
    let dir = cluster.dir().to_path_buf();
    assert!(
        pids.values().all(|pid| process_running(*pid)),
        "all processes run before down: {pids:?}"
    );
    cluster.down().expect("down succeeds");
    let left: Vec<_> = pids
        .iter()
        .filter(|(_, pid)| process_running(**pid))
        .collect();
    assert!(left.is_empty(), "processes left after down: {left:?}");
    assert!(!dir.exists(), "{} is left after down", dir.display());
}
