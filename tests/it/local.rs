//! The `local` provider against real control-plane binaries: the lifecycle, races between two
//! ensures, crash safety after `kill -9`, and cleanup that leaves no process and no state dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ephemera::config::LocalConfig;
use ephemera::providers::local::LocalProvider;
use ephemera::providers::probe::FakeProbe;
use ephemera::providers::{ClusterRequest, Deleted, Provider, configmap};
use ephemera::record::Record;
use ephemera::templates::Renderer;

use crate::common::testcluster::{binary, cluster_required, shared_file};

const KEYS: [&str; 6] = [
    "ETCD",
    "KUBE_APISERVER",
    "KUBE_CONTROLLER_MANAGER",
    "KUBE_SCHEDULER",
    "KWOK",
    "ROLLOUTS_CONTROLLER",
];

/// A provider whose state lives in `state`, using the binaries `scripts/testcluster build` made.
/// `None` (after a loud message) when they are missing, unless a cluster is required.
fn provider(state: &Path, nodes: u32) -> Option<LocalProvider> {
    let paths: Vec<PathBuf> = KEYS.iter().map(|k| binary(k)).collect();
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        assert!(
            !cluster_required(),
            "the local provider tests need {missing:?}; run scripts/testcluster build"
        );
        eprintln!(
            "\n*** SKIPPED: the local provider tests need {missing:?}; run scripts/testcluster build ***\n"
        );
        return None;
    }
    let dirs = paths
        .iter()
        .filter_map(|p| p.parent())
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let home = state.join("home");
    let probe = FakeProbe::new([
        ("EPHEMERA_LOCAL_BIN", dirs.as_str()),
        ("HOME", home.to_str().unwrap()),
    ]);
    let cfg = LocalConfig {
        nodes,
        bin_dir: None,
    };
    let p = LocalProvider::with_probe(&cfg, &probe, &Renderer::new(None).unwrap()).unwrap();
    assert_eq!(
        p.state_root(),
        home.join(".local/state/ephemera/local"),
        "state follows XDG defaults"
    );
    Some(p)
}

fn request(name: &str, pr: u64) -> ClusterRequest {
    ClusterRequest {
        name: name.into(),
        record: Record {
            name: name.into(),
            provider: "local".into(),
            repository: Some("acme/cats".into()),
            pr: Some(pr),
            created_at: "2026-11-28T10:00:00Z".parse().unwrap(),
            expires_at: "2026-11-28T12:00:00Z".parse().unwrap(),
            created_by: Some("tester".into()),
            version: ephemera::VERSION.into(),
            url: None,
            env_file: Some("local".into()),
            pool: None,
        },
    }
}

/// Component name to (pid, start time) from the state file.
fn processes(dir: &Path) -> BTreeMap<String, (u32, u64)> {
    let text = std::fs::read_to_string(dir.join("state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["processes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, p)| {
            (
                k.clone(),
                (
                    p["pid"].as_u64().unwrap() as u32,
                    p["started"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

fn kill9(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -9 {pid}");
}

/// Deletes the environment even when an assertion fails midway, so no cluster outlives a test.
struct Cleanup<'a>(&'a LocalProvider, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let (p, name) = (self.0, self.1);
        // A runtime of its own on a thread of its own: drop runs inside the test's runtime.
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                if let Err(e) = rt.block_on(p.delete(name)) {
                    eprintln!("cleanup of local environment {name}: {e}");
                }
            });
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_lifecycle_race_record_list_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(p) = provider(tmp.path(), 2) else {
        return;
    };
    let _cleanup = Cleanup(&p, "pr-7");
    let req = request("pr-7", 7);

    // Two ensures at once: one creates, the other waits and finds it up.
    let t0 = Instant::now();
    let (a, b) = tokio::join!(p.ensure(&req), p.ensure(&req));
    let took = t0.elapsed();
    eprintln!("local: two concurrent ensures of a new cluster took {took:.1?}");
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        u8::from(a.created) + u8::from(b.created),
        1,
        "exactly one ensure created the cluster"
    );
    for e in [&a, &b] {
        assert!(!e.serves_traffic, "local pods are simulated");
        assert_eq!(e.record, req.record);
    }

    // The record is the ConfigMap kube-system/ephemera, labelled.
    let kubeconfig = p.kubeconfig("pr-7").await.unwrap();
    let server = kubeconfig.server().unwrap();
    assert!(server.starts_with("https://127.0.0.1:"), "{server}");
    let client = kubeconfig.client().await.unwrap();
    let stored = configmap::read(client.clone(), "pr-7").await.unwrap();
    assert_eq!(stored.as_ref(), Some(&req.record));
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), "kube-system");
    let cm = api.get("ephemera").await.unwrap();
    let labels = cm.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "ephemera");
    assert_eq!(labels["ephemera.dev/environment"], "pr-7");

    // Both simulated nodes are Ready.
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let names: Vec<String> = nodes
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, ["kwok-node-0", "kwok-node-1"]);

    // Rerun: nothing new, same processes.
    let dir = p.state_root().join("pr-7");
    let before = processes(&dir);
    let t0 = Instant::now();
    let again = p.ensure(&req).await.unwrap();
    eprintln!(
        "local: ensure of a running cluster took {:.1?}",
        t0.elapsed()
    );
    assert!(!again.created);
    assert_eq!(processes(&dir), before, "a rerun restarts nothing");

    // Nothing listens beyond loopback: every component's sockets are on 127.0.0.1.
    assert_listens_on_loopback_only(before.values().map(|(pid, _)| *pid));

    // The Argo Rollouts controller runs beside the control plane (kwok runs no pods) and
    // reconciles a Rollout once the add-on's CRDs exist.
    assert!(before.contains_key("rollouts-controller"), "{before:?}");
    assert_rollouts_reconcile(tmp.path(), &kubeconfig);

    // list shows it; update_record rewrites the ConfigMap; list shows the change.
    assert_eq!(p.list().await.unwrap(), vec![req.record.clone()]);
    let mut updated = req.record.clone();
    updated.url = Some("https://pr-7.example.test".into());
    p.update_record(&updated).await.unwrap();
    assert_eq!(p.list().await.unwrap(), vec![updated.clone()]);
    assert_eq!(
        configmap::read(client, "pr-7").await.unwrap(),
        Some(updated)
    );

    // delete: no process, no state dir; again: already gone.
    assert_eq!(p.delete("pr-7").await.unwrap(), Deleted::Deleted);
    for (component, (pid, _)) in &before {
        assert!(
            !running(*pid),
            "{component} (pid {pid}) still runs after delete"
        );
    }
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(p.list().await.unwrap().is_empty());
    assert_eq!(p.delete("pr-7").await.unwrap(), Deleted::AlreadyGone);
}

/// Every TCP socket listening in `pids` is bound to 127.0.0.1.
fn assert_listens_on_loopback_only(pids: impl Iterator<Item = u32>) {
    let mut inodes = std::collections::BTreeSet::new();
    for pid in pids {
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
        {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    inodes.insert(inode.to_string());
                }
            }
        }
    }
    let mut listening = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state (0A = LISTEN), inode
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                listening += 1;
                let addr = f[1].split(':').next().unwrap();
                assert!(
                    addr == "0100007F",
                    "a component listens on {} ({table}), not 127.0.0.1",
                    f[1]
                );
            }
        }
    }
    assert!(
        listening >= 3,
        "expected etcd and kube-apiserver listeners, found {listening}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rerun_after_kill_9_converges_on_the_same_data() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(p) = provider(tmp.path(), 1) else {
        return;
    };
    let _cleanup = Cleanup(&p, "pr-8");
    let req = request("pr-8", 8);
    assert!(p.ensure(&req).await.unwrap().created);
    let dir = p.state_root().join("pr-8");
    let first = processes(&dir);

    // The apiserver dies hard: a rerun restarts it alone, and the record (in etcd) is still there.
    kill9(first["kube-apiserver"].0);
    let again = p.ensure(&req).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.record, req.record);
    let second = processes(&dir);
    assert_ne!(
        second["kube-apiserver"], first["kube-apiserver"],
        "the apiserver was restarted"
    );
    assert_eq!(second["etcd"], first["etcd"], "etcd kept running");

    // Everything dies (a reboot): list still reports the environment, from its local copy...
    for (pid, _) in second.values() {
        kill9(*pid);
    }
    for (pid, _) in second.values() {
        for _ in 0..100 {
            if !running(*pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    assert_eq!(
        p.list().await.unwrap(),
        vec![req.record.clone()],
        "a stopped cluster is still listed"
    );
    let err = p.update_record(&req.record).await.unwrap_err().to_string();
    assert!(err.contains("pr-8 is stopped"), "{err}");
    // ...and a rerun brings it back on the same etcd data.
    let third = p.ensure(&req).await.unwrap();
    assert!(!third.created);
    let client = p.kubeconfig("pr-8").await.unwrap().client().await.unwrap();
    assert_eq!(
        configmap::read(client, "pr-8").await.unwrap(),
        Some(req.record.clone()),
        "etcd data survived"
    );
    assert_eq!(p.delete("pr-8").await.unwrap(), Deleted::Deleted);
    assert!(!dir.exists());
}

/// The start time (field 22 of `/proc/<pid>/stat`) of a running process.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// A recorded process that is still alive when a rerun looks at it, and so is kept, but exits
/// while the rerun waits for readiness (as a process does in the moment after `kill -9`): the
/// rerun starts it again instead of failing. Deterministic: the apiserver's record is pointed at
/// a process that exits on its own a moment later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_rerun_restarts_a_kept_process_that_exits_while_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(p) = provider(tmp.path(), 1) else {
        return;
    };
    let _cleanup = Cleanup(&p, "pr-9");
    let req = request("pr-9", 9);
    assert!(p.ensure(&req).await.unwrap().created);
    let dir = p.state_root().join("pr-9");
    let first = processes(&dir);
    let apiserver = first["kube-apiserver"].0;
    kill9(apiserver);
    while running(apiserver) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let mut dying = std::process::Command::new("sleep")
        .arg("2")
        .spawn()
        .unwrap();
    let state_path = dir.join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["processes"]["kube-apiserver"] =
        serde_json::json!({"pid": dying.id(), "started": start_time(dying.id())});
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    // Reap it when it exits, as the provider does for its own children.
    let reaper = std::thread::spawn(move || dying.wait());

    let again = p.ensure(&req).await.unwrap();
    assert!(!again.created);
    let second = processes(&dir);
    assert!(
        running(second["kube-apiserver"].0),
        "a new apiserver runs: {second:?}"
    );
    assert_eq!(second["etcd"], first["etcd"], "etcd kept running");
    reaper.join().unwrap().unwrap();
    assert_eq!(p.delete("pr-9").await.unwrap(), Deleted::Deleted);
}

/// Applies the Argo Rollouts CRDs and a Rollout with the built kubectl, and waits for the
/// controller to give the Rollout a phase.
fn assert_rollouts_reconcile(tmp: &Path, kubeconfig: &ephemera::providers::Kubeconfig) {
    let kc = tmp.join("admin.kubeconfig");
    kubeconfig.write_to(&kc).unwrap();
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new(binary("KUBECTL"))
            .arg(format!("--kubeconfig={}", kc.display()))
            .arg(format!(
                "--cache-dir={}",
                tmp.join("kubectl-cache").display()
            ))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let install = shared_file("fixtures/manifests/argo-rollouts-v1.9.1/install.yaml");
    let text = std::fs::read_to_string(install).unwrap();
    let crds: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| d.lines().any(|l| l == "kind: CustomResourceDefinition"))
        .collect();
    assert!(!crds.is_empty());
    let crd_file = tmp.join("crds.yaml");
    std::fs::write(&crd_file, crds.join("\n---\n")).unwrap();
    let crd_path = crd_file.display().to_string();
    kubectl(&["apply", "--server-side", "-f", &crd_path]);
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        &crd_path,
    ]);
    let rollout = tmp.join("rollout.yaml");
    std::fs::write(
        &rollout,
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: cats, namespace: default}\nspec:\n  \
         replicas: 1\n  selector: {matchLabels: {app: cats}}\n  template:\n    metadata: {labels: {app: cats}}\n    \
         spec: {containers: [{name: cats, image: ghcr.io/acme/cats:1}]}\n  strategy:\n    canary:\n      \
         steps: [{setWeight: 20}, {pause: {}}]\n",
    )
    .unwrap();
    kubectl(&["apply", "-f", &rollout.display().to_string()]);
    let deadline = Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let phase = kubectl(&["get", "rollout", "cats", "-o", "jsonpath={.status.phase}"]);
        if !phase.is_empty() {
            eprintln!("local: the Rollout reached phase {phase}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Rollouts controller never reconciled the Rollout"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
