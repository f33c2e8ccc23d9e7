//! `ephemera up` then `down` on an AKS environment, end to end through the real binary: ARM is
//! the fake on 127.0.0.1 (client-secret credential, stateful, counting every PUT), and the
//! cluster's kubeconfig (listClusterAdminCredential) is a real control plane's with the Argo
//! Rollouts controller, so the add-ons and the app really get applied and waited for.
//!
//! The add-ons are Argo Rollouts alone: the test plane simulates pods, and on a provider that
//! serves traffic the gateway and cert-manager add-ons wait for their controllers (a GatewayClass
//! accepted, the webhook answering), which only run on a real cluster. Argo Rollouts' controller
//! does run beside the test plane.

use jiff::Timestamp;
use serde_json::Value;

use crate::common::fake_arm::{self, Config, FakeArm};
use crate::common::lifecycle::{ROLLOUTS_ONLY, Sandbox, aks_env, describe, group_of, manifests};
use crate::common::testcluster::TestCluster;

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {report:#}"))
}

fn puts(fake: &FakeArm) -> usize {
    fake.calls("PUT", "/subscriptions/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aks_up_rerun_and_down_through_the_cli() {
    // A control plane of this test's own: the add-on record it checks must not be rewritten by
    // the other AKS tests, which share theirs.
    let Some(plane) = TestCluster::start_with_rollouts("aks-e2e") else {
        return;
    };
    let kubeconfig = std::fs::read_to_string(plane.kubeconfig()).expect("the plane's kubeconfig");
    let fake = FakeArm::start(Config {
        polls: 2,
        kubeconfig: Some(kubeconfig),
        ..Config::default()
    })
    .await;
    let sb = Sandbox::aks(&fake);
    let env = sb.write("e2e.yaml", &aks_env("e2e", ROLLOUTS_ONLY, "24h"));
    let env = env.to_str().expect("UTF-8 path");
    let manifests = manifests();
    let group = group_of("e2e", "pr-42");
    let up = [
        "up",
        "--env",
        env,
        "--pr",
        "42",
        "--image",
        "ghcr.io/acme/cats:v1",
        "--manifests",
        &manifests,
        "--timeout",
        "120s",
    ];

    // First up: the group and the cluster are created (one PUT each), then the kubeconfig, the
    // add-ons and the app, which reaches Healthy (a first image has no canary).
    let t0 = std::time::Instant::now();
    let first = sb.json(&up);
    eprintln!("aks e2e: first up took {:.1?}", t0.elapsed());
    assert_eq!(first["name"], "pr-42", "{first:#}");
    assert_eq!(first["provider"], "aks");
    assert_eq!(first["pr"], 42);
    assert_eq!(first["created"], true);
    assert_eq!(first["simulated"], false);
    let id = format!(
        "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/pr-42",
        fake_arm::SUBSCRIPTION
    );
    assert_eq!(first["resourceId"], id.as_str(), "{first:#}");
    assert_eq!(
        first["portalUrl"],
        format!("https://portal.azure.com/#@/resource{id}").as_str(),
        "{first:#}"
    );
    let kc_path = sb.state().join("kubeconfig/pr-42.yaml");
    assert_eq!(first["kubeconfig"], kc_path.display().to_string().as_str());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kc_path)
            .expect("kubeconfig")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds a client key");
    }
    let expires: Timestamp = first["expiresAt"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("expiresAt: {first:#}"));
    let ttl = expires.duration_since(Timestamp::now());
    assert!(
        ttl > jiff::SignedDuration::from_hours(23) && ttl <= jiff::SignedDuration::from_hours(24),
        "expires-at is stamped at creation from the file's ttl: {expires}"
    );
    for s in ["cluster", "kubeconfig", "addons", "app"] {
        assert_eq!(step(&first, s)["outcome"], "done", "{first:#}");
    }
    assert_eq!(first["rollout"]["phase"], "Healthy", "{first:#}");
    let names: Vec<&str> = first["addons"]
        .as_array()
        .expect("addons")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["argo-rollouts"]);
    fake.with_state(|s| {
        assert_eq!(s.creates.get("pr-42"), Some(&1), "one cluster creation");
        assert_eq!(s.group_creates.get(&group), Some(&1), "one group creation");
        assert_eq!(s.missing_request_ids, 0);
    });
    assert_eq!(
        fake.cluster_state(&group, "pr-42").as_deref(),
        Some("Succeeded")
    );
    let tags = fake.cluster_tags(&group, "pr-42").expect("cluster tags");
    assert_eq!(tags["ephemera-managed-by"], "ephemera", "{tags:#}");
    assert_eq!(tags["ephemera-pr"], "42", "{tags:#}");
    assert_eq!(tags["ephemera-expires-at"], first["expiresAt"], "{tags:#}");
    assert_eq!(tags["team"], "cats", "the file's tags: {tags:#}");
    assert!(
        tags.get("ephemera-lease").is_none(),
        "a finished up releases its lease: {tags:#}"
    );

    // The app really is on the cluster the kubeconfig names.
    let ro = plane.kubectl_ok(&[
        "get",
        "rollouts.argoproj.io",
        "-n",
        "cats",
        "cats",
        "-o",
        "json",
    ]);
    let ro: Value = serde_json::from_str(&ro).expect("rollout JSON");
    assert_eq!(
        ro["metadata"]["labels"]["ephemera.dev/environment"],
        "pr-42"
    );

    // A rerun on the ready cluster: no PUT at all (cluster and group are read, not written; only
    // their tags move, by PATCH), the add-ons are skipped, the app converges again.
    let before = puts(&fake);
    let t0 = std::time::Instant::now();
    let again = sb.json(&up);
    eprintln!("aks e2e: rerun took {:.1?}", t0.elapsed());
    assert_eq!(
        puts(&fake),
        before,
        "a rerun on a ready cluster makes no PUT"
    );
    assert_eq!(again["created"], false, "{again:#}");
    assert_eq!(step(&again, "addons")["outcome"], "skipped", "{again:#}");
    // The rerun is activity: the expiry moves to now + ttl, later than the first one.
    let time = |v: &Value| -> Timestamp {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{v} is not a time"))
    };
    assert!(
        time(&again["expiresAt"]) > time(&first["expiresAt"]),
        "a rerun moves the expiry: {} then {}",
        first["expiresAt"],
        again["expiresAt"]
    );
    assert_eq!(again["resourceId"], first["resourceId"]);

    // list and status read the record from the tags, and the app from the cluster.
    let listed = sb.json(&["list", "--env", env]);
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["name"], "pr-42");
    assert_eq!(listed[0]["provider"], "aks");
    assert_eq!(listed[0]["state"], "active");
    assert_eq!(listed[0]["envFile"], "e2e");
    assert_eq!(
        listed[0]["expiresAt"], again["expiresAt"],
        "the moved expiry is on the tags"
    );
    let status = sb.json(&["status", "--env", env, "--pr", "42"]);
    assert_eq!(status["rollout"]["phase"], "Healthy", "{status:#}");
    assert!(status.get("lease").is_none(), "no run holds it: {status:#}");

    // down deletes the cluster, then the group, and the kubeconfig file; a second down finds
    // nothing and succeeds.
    let down = ["down", "--env", env, "--pr", "42"];
    let gone = sb.json(&down);
    assert_eq!(gone["outcome"], "deleted", "{gone:#}");
    assert_eq!(fake.cluster_state(&group, "pr-42"), None);
    assert!(
        !fake.group_exists(&group),
        "the environment's group is deleted"
    );
    assert!(!kc_path.exists(), "{} is removed", kc_path.display());
    let again = sb.json(&down);
    assert_eq!(again["outcome"], "already-gone", "{again:#}");
    let o = sb.run(&["list", "--env", env, "--output", "json"]);
    assert!(o.status.success(), "{}", describe(&["list"], &o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
    fake.with_state(|s| {
        assert_eq!(s.creates.get("pr-42"), Some(&1), "never a second cluster");
        assert_eq!(
            s.group_creates.get(&group),
            Some(&1),
            "never a second group"
        );
    });
}
