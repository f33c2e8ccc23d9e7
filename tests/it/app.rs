//! App delivery: deploy, promote, abort and status against a real control plane with the
//! out-of-cluster Argo Rollouts controller, and the URL probe against 127.0.0.1 servers.
//!
//! The Rollout and Services are the ones `plan` renders from the shipped templates, applied the
//! way `up` applies them (server-side, field manager `ephemera`, forced). No traffic router runs
//! on the test control plane, so the environment has no ingress and the Rollout is a replica-count
//! canary (no `trafficRouting`): weights are shares of available pods, which kwok makes Ready.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ephemera::ExitStatus;
use ephemera::app::{self, AppError, Goal, Phase};
use ephemera::config::PreviewCanary;
use ephemera::names::ImageRef;
use kube::Api;
use kube::api::DynamicObject;

use crate::common::testcluster::TestCluster;

/// `up` puts the app in a namespace named after it.
const NS: &str = "web";
const NAME: &str = "web";

fn image(tag: &str) -> ImageRef {
    ImageRef::parse("--image", &format!("registry.example.com/acme/web:{tag}"))
        .expect("a valid image reference")
}

fn deadline(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// The source pipeline's steps, with the last pause shortened from 30s to 2s; the first pause
/// stays indefinite.
const ENVIRONMENT: &str = r#"apiVersion: ephemera.dev/v1alpha1
kind: Environment
metadata:
  name: app-test
provider:
  local: {}
addons:
  ingress:
    enabled: false
  argoCd:
    enabled: false
app:
  name: web
  replicas: 2
  canary:
    steps:
    - setWeight: 20
    - pause: {}
    - setWeight: 50
    - pause: {duration: 2s}
    - setWeight: 100
tls:
  issuer: selfsigned
"#;

/// Plans the environment with image `tag` and applies its Namespace, Services and Rollout as
/// `up` does.
async fn up_like(client: &kube::Client, dir: &Path, tag: &str) {
    let env_file = dir.join("app-test.yaml");
    std::fs::write(&env_file, ENVIRONMENT).expect("write the environment file");
    let plan = ephemera::plan::run(&ephemera::plan::Request {
        env_file,
        pr: Some("8".into()),
        image: Some(image(tag).reference),
        now: Some("2026-11-28T10:00:00Z".into()),
        ..Default::default()
    })
    .expect("plan");
    let objects: Vec<DynamicObject> = plan
        .manifests
        .iter()
        .filter(|m| {
            matches!(
                m.object["kind"].as_str(),
                Some("Namespace" | "Service" | "Rollout")
            )
        })
        .map(|m| ephemera::kube::manifest::from_value(m.object.clone()).expect("an object"))
        .collect();
    let kinds: Vec<&str> = objects
        .iter()
        .filter_map(|o| o.types.as_ref())
        .map(|t| t.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        ["Namespace", "Service", "Service", "Rollout"],
        "the plan changed shape"
    );
    let opts = ephemera::kube::ApplyOptions {
        force: true,
        ..Default::default()
    };
    ephemera::kube::Applier::new(client.clone())
        .apply(objects, &opts)
        .await
        .expect("up-like apply");
}

fn rollouts(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &app::ops::rollout_resource())
}

fn stable_images(s: &app::RolloutStatus) -> Option<Vec<String>> {
    s.stable.as_ref().map(|r| r.images.clone())
}

fn canary_images(s: &app::RolloutStatus) -> Option<Vec<String>> {
    s.canary.as_ref().map(|r| r.images.clone())
}

/// Snapshot settings that replace the pod-template hashes and timestamps, which change per run.
fn redactions() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r#"(rs |"hash": ")[0-9a-z]{5,12}"#, "${1}[hash]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[time]");
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_deploy_promote_abort_on_a_real_control_plane() {
    // ephemera's logs (patches sent, controller nudges) show with the output of a failed test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("ephemera=info")
        .with_test_writer()
        .try_init();
    let Some(cluster) = TestCluster::start_with_rollouts("app") else {
        return;
    };
    let client = cluster.client().await;
    let dir = tempfile::tempdir().expect("tempdir");
    up_like(&client, dir.path(), "v1").await;
    let api = rollouts(&client, NS);

    // v1: the first template goes straight to Healthy (no steps for the first revision).
    let s = app::deploy(&client, NS, NAME, &image("v1"), deadline(60))
        .await
        .expect("deploy v1");
    assert_eq!(s.phase, Phase::Healthy, "{s}");
    assert_eq!(stable_images(&s), Some(vec![image("v1").reference]));
    assert!(s.canary.is_none(), "{s}");

    // v2: paused at step 1 with 20% set.
    let s = app::deploy(&client, NS, NAME, &image("v2"), deadline(60))
        .await
        .expect("deploy v2");
    assert_eq!(s.phase, Phase::Paused, "{s}");
    assert_eq!(s.step.as_ref().map(|st| (st.index, st.total)), Some((1, 5)));
    assert_eq!(s.set_weight, 20);
    assert_eq!(stable_images(&s), Some(vec![image("v1").reference]));
    assert_eq!(canary_images(&s), Some(vec![image("v2").reference]));
    assert_eq!(
        s.pause_reasons
            .iter()
            .map(|p| p.reason.as_str())
            .collect::<Vec<_>>(),
        ["CanaryPauseStep"]
    );
    let json = serde_json::to_string_pretty(&s).expect("status serializes");
    redactions().bind(|| {
        insta::assert_snapshot!("status_paused_at_step_1", s.to_string());
        insta::assert_snapshot!("status_paused_at_step_1_json", json);
    });

    // The image is the only field deploy took: `up`'s apply still owns the rest.
    let obj = api.get(NAME).await.expect("rollout");
    let spec = &obj.data["spec"];
    assert_eq!(
        spec["strategy"]["canary"]["steps"].as_array().map(Vec::len),
        Some(5)
    );
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        8080
    );
    let managers: Vec<(String, String)> = obj
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            let fields = m
                .fields_v1
                .as_ref()
                .map(|f| f.0.to_string())
                .unwrap_or_default();
            (m.manager.clone().unwrap_or_default(), fields)
        })
        .collect();
    let deploy_fields = managers
        .iter()
        .find(|(m, _)| m == app::DEPLOY_MANAGER)
        .map(|(_, f)| f.clone())
        .unwrap_or_default();
    assert!(deploy_fields.contains("f:image"), "{managers:?}");
    assert!(!deploy_fields.contains("f:strategy"), "{managers:?}");
    let up_fields = managers
        .iter()
        .find(|(m, _)| m == ephemera::MANAGER)
        .map(|(_, f)| f.clone())
        .unwrap_or_default();
    assert!(
        up_fields.contains("f:strategy") && !up_fields.contains("f:image"),
        "{managers:?}"
    );

    // Deploying the same image again changes nothing and returns at once.
    let generation = obj.metadata.generation;
    let again = app::deploy(&client, NS, NAME, &image("v2"), deadline(10))
        .await
        .expect("deploy v2 again");
    assert_eq!(
        (again.phase, again.step.as_ref().map(|st| st.index)),
        (Phase::Paused, Some(1))
    );
    assert_eq!(
        api.get(NAME).await.expect("rollout").metadata.generation,
        generation
    );

    // A wait that cannot finish names the goal and the last state seen.
    let err = app::wait_for(&client, NS, NAME, Goal::PausedAt(3), deadline(1))
        .await
        .expect_err("stays at step 1");
    assert_eq!(err.exit_status(), ExitStatus::TimedOut);
    let msg = err.to_string();
    assert!(
        msg.contains("web/web to pause at step 3")
            && msg.contains("Paused (CanaryPauseStep), step 1/5"),
        "{msg}"
    );

    // Promote one step: the pause ends, 50%, the 2s pause, 100%: Healthy on v2.
    app::promote(&client, NS, NAME, false)
        .await
        .expect("promote");
    let s = app::wait_for(&client, NS, NAME, Goal::Healthy, deadline(60))
        .await
        .expect("healthy after promote");
    assert_eq!(stable_images(&s), Some(vec![image("v2").reference]));
    assert!(s.canary.is_none() && !s.paused && !s.aborted, "{s}");
    assert_eq!((s.set_weight, s.actual_weight), (100, 100));
    redactions().bind(|| insta::assert_snapshot!("status_healthy_on_v2", s.to_string()));

    // v3, then abort: back on v2, aborted, canary scaled to zero.
    let s = app::deploy(&client, NS, NAME, &image("v3"), deadline(60))
        .await
        .expect("deploy v3");
    assert_eq!(
        (s.phase, s.step.as_ref().map(|st| st.index)),
        (Phase::Paused, Some(1)),
        "{s}"
    );
    app::abort(&client, NS, NAME).await.expect("abort");
    let s = app::wait_for(&client, NS, NAME, Goal::Aborted, deadline(60))
        .await
        .expect("aborted");
    assert!(s.aborted, "{s}");
    assert_eq!(s.phase, Phase::Degraded);
    assert_eq!(
        s.stable.as_ref().map(|r| (r.images.clone(), r.available)),
        Some((vec![image("v2").reference], 2))
    );
    assert_eq!(
        s.canary.as_ref().map(|r| (r.images.clone(), r.replicas)),
        Some((vec![image("v3").reference], 0))
    );
    assert_eq!(s.set_weight, 0);
    redactions().bind(|| insta::assert_snapshot!("status_aborted_back_on_v2", s.to_string()));

    // Deploying the aborted image again cannot restart it; saying so beats waiting forever.
    let err = app::deploy(&client, NS, NAME, &image("v3"), deadline(20))
        .await
        .expect_err("aborted image");
    assert!(err.to_string().contains("deploy another image"), "{err}");

    // A new image leaves the aborted state; a full promote skips the remaining steps.
    let s = app::deploy(&client, NS, NAME, &image("v4"), deadline(60))
        .await
        .expect("deploy v4");
    assert_eq!((s.phase, s.aborted), (Phase::Paused, false), "{s}");
    app::promote(&client, NS, NAME, true)
        .await
        .expect("promote --full");
    let s = app::wait_for(&client, NS, NAME, Goal::Healthy, deadline(60))
        .await
        .expect("healthy after --full");
    assert_eq!(stable_images(&s), Some(vec![image("v4").reference]));

    // What `up` and `deploy` do on a preview: `complete` leaves a paused canary as it is with
    // `steps`, and with `full` promotes it until the new image serves 100%.
    let settled = app::deploy(&client, NS, NAME, &image("v5"), deadline(60))
        .await
        .expect("deploy v5");
    assert_eq!(settled.phase, Phase::Paused, "{settled}");
    let s = app::complete(
        &client,
        NS,
        NAME,
        settled,
        PreviewCanary::Steps,
        deadline(60),
    )
    .await
    .expect("complete, steps");
    assert_eq!((s.phase, s.set_weight), (Phase::Paused, 20), "{s}");
    let s = app::complete(&client, NS, NAME, s, PreviewCanary::Full, deadline(60))
        .await
        .expect("complete, full");
    assert_eq!(
        (s.phase, s.set_weight, s.paused),
        (Phase::Healthy, 100, false),
        "{s}"
    );
    assert_eq!(stable_images(&s), Some(vec![image("v5").reference]));
    assert!(s.canary.is_none(), "{s}");
    assert_eq!(s.paused_canary(), None);

    // Environments that do not exist: exit 2, a message naming what is missing, nothing created.
    let err = app::deploy(&client, "pr-404", NAME, &image("v5"), deadline(10))
        .await
        .expect_err("no namespace");
    assert_eq!(err.exit_status(), ExitStatus::Usage);
    assert_eq!(
        err.to_string(),
        "no such environment: namespace pr-404 does not exist"
    );
    let err = app::deploy(&client, NS, "ghost", &image("v5"), deadline(10))
        .await
        .expect_err("no rollout");
    assert_eq!(err.exit_status(), ExitStatus::Usage);
    assert!(
        matches!(&err, AppError::NoRollout { object } if object == "web/ghost"),
        "{err}"
    );
    assert!(
        api.get_opt("ghost").await.expect("get").is_none(),
        "deploy created a Rollout"
    );
    for err in [
        app::promote(&client, NS, "ghost", false)
            .await
            .expect_err("promote"),
        app::abort(&client, NS, "ghost").await.expect_err("abort"),
        app::status(&client, NS, "ghost").await.expect_err("status"),
    ] {
        assert_eq!(err.exit_status(), ExitStatus::Usage, "{err}");
    }
    assert!(
        api.get_opt("ghost").await.expect("get").is_none(),
        "promote/abort created a Rollout"
    );
}

#[tokio::test]
async fn without_the_rollouts_api_the_error_says_the_add_on_is_missing() {
    let Some(ns) = crate::common::testcluster::shared_namespace() else {
        return;
    };
    let client = ns.cluster().client().await;
    let err = app::status(&client, ns.name(), NAME)
        .await
        .expect_err("no CRD on the shared cluster");
    assert!(matches!(err, AppError::NoRolloutsApi), "{err:?}");
    assert_eq!(err.exit_status(), ExitStatus::Failed);
}

/// A 127.0.0.1 server whose `/healthz` answers 503 `failures` times, then 200.
async fn flaky_server(failures: u32) -> (String, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    let router = axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < failures {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn the_probe_retries_until_the_health_path_answers() {
    let (url, hits) = flaky_server(3).await;
    let probed = app::probe_url(&url, "/healthz", deadline(20), false)
        .await
        .expect("answers after 3 failures");
    assert_eq!((probed.status, probed.attempts), (200, 4));
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert_eq!(probed.target, format!("{url}/healthz"));

    let report = app::report_url(&url, "/healthz", true, deadline(5), false)
        .await
        .expect("verified");
    assert!(matches!(report, app::UrlReport::Verified { .. }));
    assert_eq!(
        report.to_string(),
        format!("{url} (health check answered 200 at {url}/healthz)")
    );
}

#[tokio::test]
async fn the_probe_gives_up_at_the_deadline_with_the_last_answer() {
    let (url, hits) = flaky_server(u32::MAX).await;
    let started = Instant::now();
    let err = app::probe_url(&url, "/healthz", deadline(2), false)
        .await
        .expect_err("never healthy");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the deadline was not honoured"
    );
    assert_eq!(err.exit_status(), ExitStatus::TimedOut);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("probing {url}/healthz"))
            && msg.contains("last: answered 503 Service Unavailable"),
        "{msg}"
    );
    assert!(hits.load(Ordering::SeqCst) >= 3, "it retried");

    // Nothing listens: the last error is the connection failure.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let err = app::probe_url(&format!("http://{closed}"), "/healthz", deadline(1), false)
        .await
        .expect_err("refused");
    assert!(err.to_string().to_lowercase().contains("connect"), "{err}");
}

#[tokio::test]
async fn local_reports_the_route_as_simulated_without_a_request() {
    // Nothing serves this host; a probe would time out instead of returning at once.
    let report = app::report_url(
        "https://pr-8.127.0.0.1.nip.io",
        "/healthz",
        false,
        deadline(1),
        false,
    )
    .await
    .expect("simulated");
    assert_eq!(
        report.to_string(),
        "https://pr-8.127.0.0.1.nip.io (simulated: the local provider runs no pods, so nothing answers at this URL)"
    );
    let err = app::report_url("pr-8.example.com", "/healthz", false, deadline(1), false)
        .await
        .expect_err("no scheme");
    assert_eq!(err.exit_status(), ExitStatus::Usage);
}

/// A 127.0.0.1 HTTPS server with a self-signed certificate that answers every request with 200.
async fn self_signed_server() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;

    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("self-signed certificate");
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://{addr}")
}

#[tokio::test]
async fn a_self_signed_certificate_needs_the_explicit_insecure_flag() {
    let url = self_signed_server().await;
    let err = app::probe_url(&url, "/healthz", deadline(2), false)
        .await
        .expect_err("untrusted certificate");
    let msg = err.to_string();
    assert!(
        msg.contains("certificate") && msg.contains("selfsigned and letsencrypt-staging"),
        "{msg}"
    );

    let insecure =
        app::accept_invalid_certs(ephemera::config::Issuer::Selfsigned, true).expect("allowed");
    let probed = app::probe_url(&url, "/healthz", deadline(10), insecure)
        .await
        .expect("accepted when insecure");
    assert_eq!(probed.status, 200);
}
