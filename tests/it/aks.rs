//! The AKS provider against the fake ARM server (and, for the kubeconfig, the real test control
//! plane).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ephemera::azure::AzureError;
use ephemera::config::{AksConfig, Cloud, NodePool, ResourceGroup, ResourceGroupStrategy};
use ephemera::providers::aks::{self, Aks, TagUpdate, Timing};
use ephemera::providers::probe::FakeProbe;
use ephemera::providers::{ClusterRequest, Deleted, Provider, ProviderError};
use ephemera::record::Record;
use serde_json::{Value, json};

use crate::common::fake_arm::{self, Config, FakeArm, Fault, LroStyle};

fn cfg(strategy: ResourceGroupStrategy) -> AksConfig {
    AksConfig {
        subscription: "ignored-env-wins".into(),
        location: "westeurope".into(),
        resource_group: ResourceGroup {
            strategy,
            name: (strategy == ResourceGroupStrategy::Shared).then(|| "rg-previews".into()),
        },
        kubernetes_version: Some("1.34".into()),
        system_pool: NodePool::default(),
        network_plugin: "azure".into(),
        tags: BTreeMap::from([("team".into(), "cats".into())]),
        cloud: Cloud::default(),
        entra_id: false,
        dns: None,
        dns_prefix: None,
        tier: "Free".into(),
    }
}

fn fast() -> Timing {
    Timing {
        retry_min: Duration::from_millis(2),
        retry_max: Duration::from_millis(20),
        retry_times: 8,
        retry_after_cap: Duration::from_secs(5),
        poll_interval: Duration::from_millis(5),
        request_timeout: Duration::from_secs(10),
        create_deadline: Duration::from_secs(60),
        delete_deadline: Duration::from_secs(60),
    }
}

fn probe(vars: Vec<(String, String)>) -> FakeProbe {
    FakeProbe {
        vars: vars.into_iter().collect(),
        executables: Vec::new(),
        real_files: false,
    }
}

fn provider(fake: &FakeArm, cfg: &AksConfig) -> Aks {
    aks::from_config(cfg, &probe(fake.env()))
        .expect("provider")
        .with_timing(fast())
}

fn record(name: &str) -> Record {
    Record {
        name: name.into(),
        provider: "aks".into(),
        repository: Some("acme/cats".into()),
        pr: Some(42),
        created_at: "2026-11-28T10:00:00Z".parse().unwrap(),
        expires_at: "2026-11-29T10:00:00Z".parse().unwrap(),
        created_by: None,
        version: "0.1.0".into(),
        url: None,
        env_file: Some("pr-aks".into()),
        pool: None,
    }
}

fn request(name: &str) -> ClusterRequest {
    ClusterRequest {
        name: name.into(),
        record: record(name),
    }
}

fn writes(fake: &FakeArm) -> usize {
    ["PUT", "PATCH", "DELETE", "POST"]
        .iter()
        .map(|m| fake.calls(m, "/subscriptions/"))
        .sum()
}

#[tokio::test]
async fn ensure_creates_over_several_polls_and_a_rerun_makes_no_write() {
    let fake = FakeArm::start(Config {
        polls: 4,
        ..Config::default()
    })
    .await;
    let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    let ensured = aks.ensure(&request("pr-42")).await.unwrap();

    assert!(ensured.created);
    let id = format!(
        "/subscriptions/{}/resourceGroups/rg-ephemera-pr-42/providers/Microsoft.ContainerService/managedClusters/pr-42",
        fake_arm::SUBSCRIPTION
    );
    assert_eq!(ensured.resource_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        ensured.portal_url,
        Some(format!("https://portal.azure.com/#@/resource{id}"))
    );
    assert_eq!(
        fake.cluster_state("rg-ephemera-pr-42", "pr-42").as_deref(),
        Some("Succeeded")
    );
    assert!(
        fake.calls("GET", "/operationStatus/") >= 4,
        "the operation was polled until it finished"
    );
    let mut want = record("pr-42");
    want.created_by = Some(format!("app:{}", fake_arm::CLIENT_ID));
    assert_eq!(
        ensured.record, want,
        "created-by is the credential's principal"
    );
    let tags = fake.cluster_tags("rg-ephemera-pr-42", "pr-42").unwrap();
    assert_eq!(tags["team"], "cats");
    assert_eq!(tags["ephemera-environment"], "pr-42");
    assert!(fake.group_exists("rg-ephemera-pr-42"));

    let before = writes(&fake);
    let again = aks.ensure(&request("pr-42")).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.record, want, "a rerun reports the stored record");
    assert_eq!(
        writes(&fake),
        before,
        "a rerun on a ready cluster makes no write"
    );
    fake.with_state(|s| {
        assert_eq!(s.puts.get("pr-42"), Some(&1));
        assert_eq!(s.group_creates.get("rg-ephemera-pr-42"), Some(&1));
        assert_eq!(
            s.missing_request_ids, 0,
            "every call carries x-ms-client-request-id"
        );
    });
}

#[tokio::test]
async fn kubeconfig_is_decoded_and_written_private() {
    let fake = FakeArm::start(Config::default()).await;
    let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    assert!(matches!(aks.kubeconfig("pr-7").await, Err(ProviderError::NotFound(n)) if n == "pr-7"));
    aks.ensure(&request("pr-7")).await.unwrap();
    let kc = aks.kubeconfig("pr-7").await.unwrap();
    assert_eq!(
        kc.server().as_deref(),
        Some("https://pr-7-abc123.hcp.westeurope.azmk8s.io:443")
    );
    assert!(!format!("{kc:?}").contains("fake-admin-token"));
    assert_eq!(fake.calls("POST", "/listClusterAdminCredential"), 2);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    kc.renamed("pr-7").write_to(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("fake-admin-token-pr-7")
    );

    let mut entra = cfg(ResourceGroupStrategy::PerEnvironment);
    entra.entra_id = true;
    let aks = provider(&fake, &entra);
    aks.kubeconfig("pr-7").await.unwrap();
    assert_eq!(
        fake.calls("POST", "/listClusterUserCredential"),
        1,
        "Entra ID uses the user credential"
    );
}

#[tokio::test]
async fn kubeconfig_reaches_the_real_control_plane() {
    let Some(cluster) = crate::common::testcluster::shared_cluster() else {
        return;
    };
    let text = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    let fake = FakeArm::start(Config {
        kubeconfig: Some(text),
        ..Config::default()
    })
    .await;
    let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    aks.ensure(&request("pr-8")).await.unwrap();
    let kc = aks.kubeconfig("pr-8").await.unwrap();
    let client = kc.client().await.unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.iter().any(|n| n == "kube-system"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_deleted_while_being_created_is_not_created_again() {
    // As AKS may: a DELETE during the creation cancels it. The ensure that was creating must
    // stop (exit 4 in up), not put the cluster back.
    for (strategy, group, lro) in [
        (
            ResourceGroupStrategy::PerEnvironment,
            "rg-ephemera-pr-9",
            LroStyle::AsyncOperation,
        ),
        (
            ResourceGroupStrategy::Shared,
            "rg-previews",
            LroStyle::Location,
        ),
        (ResourceGroupStrategy::Shared, "rg-previews", LroStyle::None),
    ] {
        let fake = FakeArm::start(Config {
            create_polls: Some(100_000),
            delete_preempts_create: true,
            lro,
            ..Config::default()
        })
        .await;
        if strategy == ResourceGroupStrategy::Shared {
            fake.seed_group(group, json!({"owner": "platform"}));
        }
        let up = provider(&fake, &cfg(strategy));
        let creating = tokio::spawn(async move { up.ensure(&request("pr-9")).await });
        let t0 = Instant::now();
        while fake.cluster_state(group, "pr-9").as_deref() != Some("Creating") {
            if creating.is_finished() || t0.elapsed() > Duration::from_secs(20) {
                panic!("never creating: {:?}", creating.await);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let down = provider(&fake, &cfg(strategy));
        assert_eq!(down.delete("pr-9").await.unwrap(), Deleted::Deleted);
        let err = tokio::time::timeout(Duration::from_secs(20), creating)
            .await
            .expect("the ensure stops")
            .expect("no panic")
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::DeletedMeanwhile(_)),
            "{strategy:?} {lro:?}: {err}"
        );
        assert_eq!(
            err.to_string(),
            "cluster pr-9 was deleted by another run (a down or gc) while this run was creating it; stopping here"
        );
        assert_eq!(err.exit_status(), ephemera::ExitStatus::LeaseHeld);
        assert_eq!(fake.cluster_state(group, "pr-9"), None, "{strategy:?}");
        fake.with_state(|s| {
            assert_eq!(
                s.creates.get("pr-9"),
                Some(&1),
                "{strategy:?}: created once"
            )
        });
        assert_eq!(
            fake.group_exists(group),
            strategy == ResourceGroupStrategy::Shared,
            "only the environment's own group goes with it"
        );
    }
}

#[tokio::test]
async fn delete_polls_to_the_end_and_gone_is_success() {
    for lro in [LroStyle::AsyncOperation, LroStyle::Location, LroStyle::None] {
        let fake = FakeArm::start(Config {
            lro,
            ..Config::default()
        })
        .await;
        let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
        aks.ensure(&request("pr-3")).await.unwrap();
        assert_eq!(
            aks.delete("pr-3").await.unwrap(),
            Deleted::Deleted,
            "{lro:?}"
        );
        assert_eq!(fake.cluster_state("rg-ephemera-pr-3", "pr-3"), None);
        assert!(
            !fake.group_exists("rg-ephemera-pr-3"),
            "the environment's own group is deleted"
        );
        let deletes = fake.calls("DELETE", "/");
        assert_eq!(aks.delete("pr-3").await.unwrap(), Deleted::AlreadyGone);
        assert_eq!(
            fake.calls("DELETE", "/"),
            deletes,
            "nothing to delete the second time"
        );
    }
}

#[tokio::test]
async fn delete_in_a_shared_group_keeps_the_group_and_refuses_foreign_clusters() {
    let fake = FakeArm::start(Config::default()).await;
    fake.seed_group("rg-previews", json!({"owner": "platform"}));
    let aks = provider(&fake, &cfg(ResourceGroupStrategy::Shared));
    aks.ensure(&request("pr-4")).await.unwrap();
    assert_eq!(aks.delete("pr-4").await.unwrap(), Deleted::Deleted);
    assert!(fake.group_exists("rg-previews"));

    fake.seed_cluster("rg-previews", "pr-5", json!({"owner": "someone"}));
    let err = aks.delete("pr-5").await.unwrap_err().to_string();
    assert!(err.contains("not managed by ephemera"), "{err}");
    let err = aks.ensure(&request("pr-5")).await.unwrap_err().to_string();
    assert!(err.contains("not managed by ephemera"), "{err}");
    assert_eq!(
        fake.cluster_state("rg-previews", "pr-5").as_deref(),
        Some("Succeeded")
    );
    assert_eq!(fake.calls("DELETE", "/pr-5"), 0);
    assert_eq!(fake.calls("PUT", "/pr-5"), 0);

    let mut missing = cfg(ResourceGroupStrategy::Shared);
    missing.resource_group.name = Some("rg-nope".into());
    let err = provider(&fake, &missing)
        .ensure(&request("pr-6"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("provider.aks.resourceGroup.name: resource group rg-nope does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn list_follows_pages_and_keeps_only_ours() {
    let fake = FakeArm::start(Config {
        page_size: 100,
        ..Config::default()
    })
    .await;
    let ours = |name: &str| -> Value {
        let mut r = record(name);
        r.created_by = Some("ci@acme".into());
        serde_json::to_value(r.to_pairs()).unwrap()
    };
    for i in 0..500 {
        let name = format!("pr-{i}");
        match i % 10 {
            // Someone else's clusters.
            0..=2 => fake.seed_cluster("rg-other", &name, json!({"owner": "team-b"})),
            // Ours, made by another configuration (another group naming).
            3 => fake.seed_cluster("rg-elsewhere", &name, ours(&name)),
            _ => fake.seed_cluster(&format!("rg-ephemera-{name}"), &name, ours(&name)),
        }
    }
    // A group left behind by an interrupted delete.
    fake.seed_group("rg-ephemera-pr-orphan", ours("pr-orphan"));
    fake.seed_group("rg-unrelated", json!({}));

    let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    let records = aks.list().await.unwrap();
    assert_eq!(records.len(), 301);
    assert!(records.iter().any(|r| r.name == "pr-orphan"));
    assert!(records.iter().all(|r| r.name == "pr-orphan"
        || r.name.trim_start_matches("pr-").parse::<u32>().unwrap() % 10 >= 4));
    assert_eq!(
        fake.calls("GET", "/managedClusters"),
        5,
        "500 clusters in pages of 100"
    );

    fake.set_faults(1.0, &[Fault::ServerError]);
    let err = aks.list().await.unwrap_err();
    assert!(err.to_string().contains("500 InternalServerError"), "{err}");
}

/// Everything the chaos test checks for one seed; returns (calls, faults, faults lost after a
/// create PUT took effect).
async fn survives_chaos(seed: u64) -> (usize, usize, usize) {
    let fake = FakeArm::start(Config {
        fault_rate: 0.3,
        fault_kinds: vec![
            Fault::Throttle,
            Fault::ServerError,
            Fault::Reset,
            Fault::ResetAfter,
            Fault::ServerErrorAfter,
        ],
        seed,
        ..Config::default()
    })
    .await;
    let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    let first = aks
        .ensure(&request("pr-77"))
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert!(
        first.created,
        "seed {seed}: a create whose answer was lost is still recognised as ours"
    );
    let second = aks
        .ensure(&request("pr-77"))
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert!(!second.created);
    assert_eq!(first.record, second.record);
    assert_eq!(
        fake.cluster_state("rg-ephemera-pr-77", "pr-77").as_deref(),
        Some("Succeeded")
    );
    assert_eq!(
        aks.kubeconfig("pr-77")
            .await
            .unwrap()
            .server()
            .map(|s| s.contains("pr-77")),
        Some(true)
    );
    assert_eq!(
        aks.list()
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
            .len(),
        1
    );
    fake.with_state(|s| {
        assert_eq!(
            s.creates.get("pr-77"),
            Some(&1),
            "seed {seed}: exactly one create"
        );
        assert_eq!(
            s.group_creates.get("rg-ephemera-pr-77"),
            Some(&1),
            "seed {seed}: one resource group"
        );
    });
    let stats = fake.with_state(|s| {
        let lost_creates = s
            .fault_log
            .iter()
            .filter(|(f, m, p)| {
                f.ends_with("After") && m == "PUT" && p.ends_with("/managedClusters/pr-77")
            })
            .count();
        (s.log.len(), s.fault_log.len(), lost_creates)
    });
    aks.delete("pr-77")
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(fake.cluster_state("rg-ephemera-pr-77", "pr-77"), None);
    assert!(!fake.group_exists("rg-ephemera-pr-77"));
    assert_eq!(aks.delete("pr-77").await.unwrap(), Deleted::AlreadyGone);
    stats
}

#[tokio::test]
async fn thirty_percent_failing_calls_converge_without_a_second_create() {
    let (mut calls, mut faults, mut lost_creates) = (0, 0, 0);
    for seed in 1..=16 {
        let (c, f, l) = survives_chaos(seed).await;
        (calls, faults, lost_creates) = (calls + c, faults + f, lost_creates + l);
    }
    let share = faults as f64 / calls as f64;
    assert!(
        (0.2..0.4).contains(&share),
        "{faults} faults in {calls} calls"
    );
    assert!(
        lost_creates >= 1,
        "some create PUT took effect but its answer was lost"
    );
}

#[tokio::test]
async fn racing_creators_make_one_cluster() {
    let fake = FakeArm::start(Config::default()).await;
    let a = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    let b = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    // Two runs started a moment apart carry different records.
    let (req_a, mut req_b) = (request("pr-9"), request("pr-9"));
    req_b.record.created_at = "2026-11-28T10:00:01Z".parse().unwrap();
    let (ra, rb) = tokio::join!(a.ensure(&req_a), b.ensure(&req_b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    fake.with_state(|s| assert_eq!(s.creates.get("pr-9"), Some(&1)));
    assert_eq!(
        fake.cluster_state("rg-ephemera-pr-9", "pr-9").as_deref(),
        Some("Succeeded")
    );
    assert_eq!(ra.record, rb.record, "both report the record that won");
    assert!(ra.created ^ rb.created, "exactly one of them created it");
}

#[tokio::test]
async fn an_operation_in_progress_is_waited_out_not_put_again() {
    let fake = FakeArm::start(Config {
        polls: 3,
        ..Config::default()
    })
    .await;
    let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    aks.ensure(&request("pr-10")).await.unwrap();
    fake.start_foreign_update("rg-ephemera-pr-10", "pr-10");
    let puts = fake.calls("PUT", "/pr-10");
    aks.ensure(&request("pr-10")).await.unwrap();
    assert_eq!(
        fake.calls("PUT", "/pr-10"),
        puts,
        "no PUT while someone else's operation runs"
    );
    assert_eq!(
        fake.cluster_state("rg-ephemera-pr-10", "pr-10").as_deref(),
        Some("Succeeded")
    );

    // Delete during a running operation: 409, wait, delete.
    fake.start_foreign_update("rg-ephemera-pr-10", "pr-10");
    fake.set_cluster_state("rg-ephemera-pr-10", "pr-10", "Succeeded", "Running");
    assert_eq!(aks.delete("pr-10").await.unwrap(), Deleted::Deleted);
    assert!(fake.with_state(|s| {
        s.log
            .iter()
            .any(|(m, p, st)| m == "DELETE" && p.ends_with("/pr-10") && *st == 409)
    }));
}

#[tokio::test]
async fn drift_updates_with_if_match_and_a_stopped_cluster_is_started() {
    let fake = FakeArm::start(Config::default()).await;
    let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    aks.ensure(&request("pr-11")).await.unwrap();

    let mut bigger = cfg(ResourceGroupStrategy::PerEnvironment);
    bigger.tier = "Standard".into();
    bigger.system_pool.count = 3;
    let aks2 = provider(&fake, &bigger);
    let e = aks2.ensure(&request("pr-11")).await.unwrap();
    assert!(!e.created);
    let spec = fake.cluster_spec("rg-ephemera-pr-11", "pr-11").unwrap();
    assert_eq!(spec["sku"]["tier"], "Standard");
    assert_eq!(spec["properties"]["agentPoolProfiles"][0]["count"], 3);
    assert_eq!(fake.calls("PUT", "/pr-11"), 2);

    let mut renamed = bigger.clone();
    renamed.dns_prefix = Some("other".into());
    let err = provider(&fake, &renamed)
        .ensure(&request("pr-11"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fields AKS cannot change (properties.dnsPrefix"),
        "{err}"
    );
    assert_eq!(fake.calls("PUT", "/pr-11"), 2);

    fake.set_cluster_state("rg-ephemera-pr-11", "pr-11", "Succeeded", "Stopped");
    aks2.ensure(&request("pr-11")).await.unwrap();
    assert_eq!(fake.calls("POST", "/pr-11/start"), 1);
    assert_eq!(fake.calls("PUT", "/pr-11"), 2);
}

#[tokio::test]
async fn retry_after_is_honoured_in_seconds_and_as_an_http_date() {
    let fake = FakeArm::start(Config::default()).await;
    let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    aks.ensure(&request("pr-12")).await.unwrap();

    fake.throttle_next(1, "1");
    let t = Instant::now();
    aks.ensure(&request("pr-12")).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "429 Retry-After: 1 waited {:?}",
        t.elapsed()
    );

    let at = std::time::SystemTime::now() + Duration::from_secs(2);
    fake.throttle_next(1, &httpdate::fmt_http_date(at));
    let t = Instant::now();
    aks.ensure(&request("pr-12")).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "429 Retry-After as a date waited {:?}",
        t.elapsed()
    );

    // Operation polls honour Retry-After too: 2 polls, 1 s apart at least.
    let fake = FakeArm::start(Config {
        polls: 2,
        retry_after: Some("1".into()),
        ..Config::default()
    })
    .await;
    let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    let t = Instant::now();
    aks.ensure(&request("pr-13")).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "LRO waited {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_failed_operation_reports_arms_code_and_message() {
    for lro in [LroStyle::AsyncOperation, LroStyle::Location, LroStyle::None] {
        let fake = FakeArm::start(Config {
            lro,
            ..Config::default()
        })
        .await;
        fake.fail_create(
            "pr-14",
            "QuotaExceeded",
            "Operation results in exceeding approved standardDSv5Family Cores quota.",
        );
        let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
        let err = aks.ensure(&request("pr-14")).await.unwrap_err();
        assert!(
            matches!(
                err,
                ProviderError::Azure(AzureError::OperationFailed { .. })
            ),
            "{lro:?}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("QuotaExceeded"), "{lro:?}: {text}");
        assert!(
            text.contains("exceeding approved standardDSv5Family Cores quota"),
            "{lro:?}: {text}"
        );
        fake.with_state(|s| assert_eq!(s.creates.get("pr-14"), Some(&1)));
    }
}

#[tokio::test]
async fn a_deadline_names_the_cluster_and_its_last_state() {
    // A poll a second: the operation cannot finish within the deadline however fast the machine.
    let fake = FakeArm::start(Config {
        polls: 1000,
        retry_after: Some("1".into()),
        ..Config::default()
    })
    .await;
    let aks = aks::from_config(
        &cfg(ResourceGroupStrategy::PerEnvironment),
        &probe(fake.env()),
    )
    .unwrap()
    .with_timing(Timing {
        create_deadline: Duration::from_secs(2),
        ..fast()
    });
    let err = aks.ensure(&request("pr-15")).await.unwrap_err();
    assert!(matches!(
        err,
        ProviderError::Azure(AzureError::Timeout { .. })
    ));
    assert_eq!(
        err.to_string(),
        "timed out after 2s waiting for creation of cluster pr-15; last seen: InProgress"
    );
}

#[tokio::test]
async fn records_are_updated_with_if_match() {
    let fake = FakeArm::start(Config::default()).await;
    let aks = provider(&fake, &cfg(ResourceGroupStrategy::PerEnvironment));
    let e = aks.ensure(&request("pr-16")).await.unwrap();
    let mut r = e.record.clone();
    r.expires_at = "2026-12-01T10:00:00Z".parse().unwrap();
    r.url = Some("https://pr-16.previews.acme.dev".into());
    aks.update_record(&r).await.unwrap();
    assert_eq!(aks.list().await.unwrap(), vec![r.clone()]);
    let tags = fake.cluster_tags("rg-ephemera-pr-16", "pr-16").unwrap();
    assert_eq!(tags["team"], "cats", "tags others rely on are kept");

    let pairs = r.to_pairs();
    assert_eq!(
        aks.update_tags_if_match("pr-16", &pairs, Some("\"stale\""))
            .await
            .unwrap(),
        TagUpdate::Conflict
    );
    assert!(matches!(
        aks.update_tags_if_match("pr-16", &pairs, None)
            .await
            .unwrap(),
        TagUpdate::Updated { .. }
    ));
    assert!(matches!(
        aks.update_record(&record("pr-404")).await,
        Err(ProviderError::NotFound(_))
    ));
}

#[tokio::test]
async fn bad_input_creates_nothing() {
    let fake = FakeArm::start(Config::default()).await;
    let mut bad = cfg(ResourceGroupStrategy::PerEnvironment);
    bad.tier = "Gold".into();
    let err = provider(&fake, &bad)
        .ensure(&request("pr-17"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "provider.aks.tier: \"Gold\" is not one of Free, Standard, Premium"
    );
    assert_eq!(err.exit_status(), ephemera::ExitStatus::Usage);
    assert!(
        fake.with_state(|s| s.log.is_empty()),
        "no ARM call on bad input"
    );

    let mut vars = fake.env();
    vars.push((
        "AZURE_RESOURCE_MANAGER_ENDPOINT".into(),
        "http://arm.example.test".into(),
    ));
    let err = aks::from_config(&cfg(ResourceGroupStrategy::PerEnvironment), &probe(vars))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "AZURE_RESOURCE_MANAGER_ENDPOINT: \"http://arm.example.test\" uses plain http"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn credential_errors_list_the_sources_tried_and_never_the_secret() {
    let fake = FakeArm::start(Config::default()).await;
    let base: Vec<(String, String)> = fake
        .env()
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("AZURE_RESOURCE")
                || k.starts_with("AZURE_AUTHORITY")
                || k == "AZURE_SUBSCRIPTION_ID"
        })
        .collect();

    let mut none = base.clone();
    none.extend([
        ("AZURE_TOKEN_CREDENTIALS".to_string(), "dev".to_string()),
        ("PATH".into(), String::new()),
    ]);
    let err = provider_with(&none)
        .ensure(&request("pr-18"))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "no usable credential; tried: EPHEMERA_AZURE_TOKEN: not set; workload identity: excluded by \
         AZURE_TOKEN_CREDENTIALS; client secret: excluded by AZURE_TOKEN_CREDENTIALS; managed identity: excluded by \
         AZURE_TOKEN_CREDENTIALS; Azure CLI: az not found on PATH"
    );

    let mut wrong = fake.env();
    wrong.retain(|(k, _)| k != "AZURE_CLIENT_SECRET");
    wrong.push(("AZURE_CLIENT_SECRET".into(), "not-the-secret".into()));
    let err = provider_with(&wrong)
        .ensure(&request("pr-18"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("no usable credential; tried: EPHEMERA_AZURE_TOKEN: not set; workload identity: AZURE_FEDERATED_TOKEN_FILE not set; client secret: "), "{err}");
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert!(!err.contains("not-the-secret"));
    assert!(
        fake.with_state(|s| s.log.is_empty()),
        "nothing reached ARM without a token"
    );
}

fn provider_with(vars: &[(String, String)]) -> Aks {
    aks::from_config(
        &cfg(ResourceGroupStrategy::PerEnvironment),
        &probe(vars.to_vec()),
    )
    .unwrap()
    .with_timing(fast())
}

#[tokio::test]
async fn workload_identity_and_prefetched_tokens_work() {
    let fake = FakeArm::start(Config::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("oidc-token");
    std::fs::write(&file, fake_arm::FEDERATED_ASSERTION).unwrap();
    let mut vars = fake.env();
    vars.retain(|(k, _)| k != "AZURE_CLIENT_SECRET");
    vars.push((
        "AZURE_FEDERATED_TOKEN_FILE".into(),
        file.display().to_string(),
    ));
    let aks = provider_with(&vars);
    aks.ensure(&request("pr-19")).await.unwrap();
    assert!(aks.principal().await.unwrap().is_some());

    // The token file is read again on every call: a rotated, wrong assertion is refused.
    std::fs::write(&file, "rotated-but-wrong").unwrap();
    let err = aks.list().await.unwrap_err().to_string();
    assert!(
        err.contains("workload identity: ") && err.contains("AADSTS7000215"),
        "{err}"
    );

    let token = fake.issue_token();
    let mut vars: Vec<(String, String)> = fake
        .env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AZURE_CLIENT"))
        .collect();
    vars.push(("EPHEMERA_AZURE_TOKEN".into(), token));
    let records = provider_with(&vars).list().await.unwrap();
    assert_eq!(records.len(), 1);
}

/// `provider.existing.aksCluster`: the user kubeconfig comes from listClusterUserCredential on
/// the cluster's resource id, and the existing provider never deletes it.
#[tokio::test]
async fn an_existing_aks_cluster_is_reached_with_its_user_credentials() {
    use ephemera::providers::existing::Existing;
    let fake = FakeArm::start(Config::default()).await;
    fake.seed_cluster("rg-prod", "aks-prod", json!({}));
    let id = format!(
        "/subscriptions/{}/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/aks-prod",
        fake_arm::SUBSCRIPTION
    );
    let cfg = ephemera::config::ExistingConfig {
        aks_cluster: Some(id.clone()),
        ..Default::default()
    };
    let existing =
        Existing::new("production", &cfg, std::sync::Arc::new(probe(fake.env()))).unwrap();
    let kc = existing.kubeconfig("production").await.unwrap();
    assert!(
        kc.server().is_some_and(|s| s.contains("aks-prod")),
        "{:?}",
        kc.server()
    );
    assert_eq!(fake.calls("POST", "/listClusterUserCredential"), 1);
    assert_eq!(fake.calls("POST", "/listClusterAdminCredential"), 0);
    assert!(matches!(
        existing.delete("production").await,
        Err(ProviderError::Config(_))
    ));
    assert_eq!(existing.cluster_resource_id("production"), Some(id));

    let missing = ephemera::config::ExistingConfig {
        aks_cluster: Some(format!(
            "/subscriptions/{}/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/gone",
            fake_arm::SUBSCRIPTION
        )),
        ..Default::default()
    };
    let gone = Existing::new(
        "production",
        &missing,
        std::sync::Arc::new(probe(fake.env())),
    )
    .unwrap();
    let err = gone.kubeconfig("production").await.unwrap_err();
    assert!(
        err.to_string().contains("provider.existing.aksCluster")
            && err.to_string().contains("does not exist"),
        "{err}"
    );
}
