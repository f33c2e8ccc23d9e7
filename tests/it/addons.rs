//! Add-ons against a real control plane: the real upstream manifests from the shared bundle,
//! installed, re-applied, and deleted; sources from bundles and from a local HTTP server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ephemera::addons::{
    AddonError, Catalog, InstallContext, ResolvedAddon, Source, SourceOptions, install, uninstall,
};
use ephemera::config::{Addon, Addons, IngressAddon, IngressImplementation};
use ephemera::kube::ObjectId;
use ephemera::progress::{Recorder, State};
use ephemera::templates::Renderer;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::Discovery;
use serde_json::json;

use crate::common::testcluster::{TestCluster, repo_root, shared_cluster};

/// The offline bundle: the shared upstream manifests, then cert-manager's controllers rendered
/// from the upstream chart by `scripts/testcluster build`.
pub fn bundles() -> SourceOptions {
    SourceOptions {
        bundles: vec![
            repo_root().join("../shared/fixtures/manifests"),
            crate::common::testcluster::rendered_manifests(),
        ],
        cache_dir: None,
        ..Default::default()
    }
}

pub fn renderer() -> Renderer {
    Renderer::new(None).expect("embedded templates parse")
}

/// An install context for the simulated (`local`) provider, which is what the test cluster is.
pub fn context<'a>(env: &str, r: &'a Renderer, progress: Arc<Recorder>) -> InstallContext<'a> {
    let mut ctx = InstallContext::new(env, "local", r, bundles(), progress);
    ctx.values = json!({"tls": {"issuer": "selfsigned"}});
    ctx.wait_timeout = Duration::from_secs(180);
    ctx
}

pub fn resolve(r: &Renderer, addons: &Addons) -> Vec<ResolvedAddon> {
    Catalog::load(r)
        .expect("definitions load")
        .resolve(addons, "local")
        .expect("add-ons resolve")
}

/// Every object in the cluster carrying `selector`, with its resourceVersion and generation.
/// Includes objects controllers made from ours and labelled alike (EndpointSlices copy their
/// Service's labels); [`applied`] keeps only what ephemera applied.
pub async fn labelled(
    client: &kube::Client,
    selector: &str,
) -> BTreeMap<ObjectId, (String, Option<i64>)> {
    labelled_by(client, selector, false).await
}

/// The objects carrying `selector` that ephemera applied (its field manager owns fields).
pub async fn applied(
    client: &kube::Client,
    selector: &str,
) -> BTreeMap<ObjectId, (String, Option<i64>)> {
    labelled_by(client, selector, true).await
}

async fn labelled_by(
    client: &kube::Client,
    selector: &str,
    only_ours: bool,
) -> BTreeMap<ObjectId, (String, Option<i64>)> {
    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("discovery");
    let mut out = BTreeMap::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if !caps.supports_operation("list") || ar.plural == "events" {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let list = api
                .list(&ListParams::default().labels(selector))
                .await
                .unwrap_or_else(|e| panic!("listing {}: {e}", ar.plural));
            for o in list.items {
                let ours = o
                    .metadata
                    .managed_fields
                    .iter()
                    .flatten()
                    .any(|m| m.manager.as_deref() == Some("ephemera"));
                if only_ours && !ours {
                    continue;
                }
                let mut id = ObjectId::of(&o);
                id.api_version = ar.api_version.clone();
                id.kind = ar.kind.clone();
                out.insert(
                    id,
                    (
                        o.metadata.resource_version.unwrap_or_default(),
                        o.metadata.generation,
                    ),
                );
            }
        }
    }
    out
}

/// Every Deployment and StatefulSet in `namespace` has all its replicas available, and every
/// Job has completed; returns how many workloads were checked.
async fn assert_available(client: &kube::Client, namespace: &str) -> usize {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::batch::v1::Job;
    let mut n = 0;
    for d in Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let s = d.status.clone().unwrap_or_default();
        assert_eq!(
            s.available_replicas.unwrap_or(0),
            want,
            "Deployment {namespace}/{:?}: {s:?}",
            d.metadata.name
        );
        n += 1;
    }
    for d in Api::<StatefulSet>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let s = d.status.clone().unwrap_or_default();
        assert_eq!(
            s.available_replicas.unwrap_or(0),
            want,
            "StatefulSet {namespace}/{:?}: {s:?}",
            d.metadata.name
        );
        n += 1;
    }
    for j in Api::<Job>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        let complete = j
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            });
        assert!(
            complete,
            "Job {namespace}/{:?} is not complete: {:?}",
            j.metadata.name, j.status
        );
        n += 1;
    }
    n
}

fn selector(env: &str) -> String {
    format!("app.kubernetes.io/managed-by=ephemera,ephemera.dev/environment={env}")
}

#[tokio::test]
async fn every_addon_installs_reapplies_as_a_no_op_and_deletes_without_leftovers() {
    let Some(cluster) = TestCluster::start("addons") else {
        return;
    };
    let client = cluster.client().await;
    let r = renderer();

    // Gateway API + NGF, cert-manager, Argo CD and Argo Rollouts: the defaults.
    let progress = Arc::new(Recorder::default());
    let addons = resolve(&r, &Addons::default());
    let report = install(
        client.clone(),
        &addons,
        &context("pr-1", &r, progress.clone()),
    )
    .await
    .expect("install");
    let names: Vec<&str> = report.addons.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["gateway-api", "cert-manager", "argo-cd", "argo-rollouts"]
    );
    for ns in ["nginx-gateway", "cert-manager", "argocd", "argo-rollouts"] {
        assert!(
            assert_available(&client, ns).await > 0,
            "no workloads in {ns}"
        );
    }
    // The big CRDs (over 300 KB as JSON, past client-side apply's 256 KiB annotation limit) went
    // in with server-side apply.
    let crds: Api<DynamicObject> = Api::all_with(client.clone(), &kube::api::ApiResource::erase::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&()));
    for name in [
        "applicationsets.argoproj.io",
        "nginxproxies.gateway.nginx.org",
    ] {
        let big = crds
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            serde_json::to_vec(&big.data).unwrap().len() > 300_000,
            "{name}"
        );
    }
    crds.get("clusterissuers.cert-manager.io")
        .await
        .expect("cert-manager CRD");
    // Progress: one line per add-on state change, ending in Done for each.
    let events = progress.events.lock().unwrap().clone();
    for a in &names {
        assert!(
            events
                .iter()
                .any(|(s, i, st)| s == "addon" && i == a && *st == State::Done),
            "{a}: {events:?}"
        );
    }

    // ingress-nginx, as a second environment on the same cluster.
    let nginx_only = Addons {
        ingress: IngressAddon {
            implementation: IngressImplementation::IngressNginx,
            ..Default::default()
        },
        cert_manager: Addon {
            enabled: false,
            ..Default::default()
        },
        argo_cd: Addon {
            enabled: false,
            ..Default::default()
        },
        argo_rollouts: Addon {
            enabled: false,
            ..Default::default()
        },
    };
    let nginx = resolve(&r, &nginx_only);
    install(
        client.clone(),
        &nginx,
        &context("pr-2", &r, Arc::new(Recorder::default())),
    )
    .await
    .expect("ingress-nginx");
    assert!(
        assert_available(&client, "ingress-nginx").await >= 3,
        "controller and two admission Jobs"
    );

    // Re-applying unchanged input changes nothing: no generation moves on any rerun, and from the
    // second rerun on no resourceVersion moves either. (The first update of an object persists
    // what the apiserver otherwise adds on every read, such as the status defaults of the
    // Gateway API CRDs, so a few resourceVersions move once; see docs/addons.md.)
    let before = applied(&client, &selector("pr-1")).await;
    assert!(before.len() > 100, "{} objects", before.len());
    let rerun = || async {
        install(
            client.clone(),
            &addons,
            &context("pr-1", &r, Arc::new(Recorder::default())),
        )
        .await
        .expect("rerun");
        applied(&client, &selector("pr-1")).await
    };
    let first = rerun().await;
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    let bumped: Vec<String> = before
        .iter()
        .filter(|(id, (_, generation))| first.get(*id).map(|(_, g)| g) != Some(generation))
        .map(|(id, (_, g))| format!("{id}: generation {g:?} -> {:?}", first.get(id)))
        .collect();
    assert!(
        bumped.is_empty(),
        "the rerun bumped generations:\n{}",
        bumped.join("\n")
    );
    let second = rerun().await;
    let changed: Vec<String> = first
        .iter()
        .filter(|(id, v)| second.get(*id) != Some(*v))
        .map(|(id, (rv, g))| format!("{id}: rv {rv} gen {g:?} -> {:?}", second.get(id)))
        .collect();
    assert!(
        changed.is_empty(),
        "the second rerun changed {} objects:\n{}",
        changed.len(),
        changed.join("\n")
    );

    // Delete: nothing labelled and no namespace of ours is left.
    let gone = uninstall(&client, "pr-1", &addons, &*Arc::new(Recorder::default()))
        .await
        .expect("uninstall");
    let deleted: std::collections::BTreeSet<&ObjectId> = gone.deleted.iter().collect();
    assert!(
        before.keys().all(|id| deleted.contains(id)),
        "every applied object was deleted"
    );
    let again = uninstall(&client, "pr-1", &addons, &*Arc::new(Recorder::default()))
        .await
        .expect("already gone is success");
    assert!(again.deleted.is_empty());
    ephemera::kube::delete_environment(&client, &ephemera::kube::DeleteOptions::new("pr-2"))
        .await
        .expect("delete pr-2");
    for env in ["pr-1", "pr-2"] {
        let left = labelled(&client, &selector(env)).await;
        assert!(
            left.is_empty(),
            "left behind for {env}: {:?}",
            left.keys().collect::<Vec<_>>()
        );
    }
    let namespaces: Vec<String> = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(
        namespaces,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}

#[tokio::test]
async fn a_checksum_mismatch_in_the_bundle_fails_before_anything_is_created() {
    let Some(cluster) = shared_cluster() else {
        return;
    };
    let client = cluster.client().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("argo-rollouts-v1.9.1/install.yaml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let real = std::fs::read_to_string(
        repo_root().join("../shared/fixtures/manifests/argo-rollouts-v1.9.1/install.yaml"),
    )
    .unwrap();
    std::fs::write(
        &file,
        real.replace("argo-rollouts-metrics", "argo-rollouts-metricz"),
    )
    .unwrap();
    let r = renderer();
    let only_rollouts = Addons {
        ingress: IngressAddon {
            enabled: false,
            ..Default::default()
        },
        cert_manager: Addon {
            enabled: false,
            ..Default::default()
        },
        argo_cd: Addon {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let addons = resolve(&r, &only_rollouts);
    let mut ctx = context("tampered", &r, Arc::new(Recorder::default()));
    ctx.sources = SourceOptions {
        bundles: vec![dir.path().to_path_buf()],
        cache_dir: None,
        ..Default::default()
    };
    let err = install(client.clone(), &addons, &ctx).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AddonError::Checksum { .. }), "{msg}");
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(
        msg.contains(
            "expected 2701f5ff276e2a41b41d4d7cf8beeb7a62c6c850a34b71f031a29bbb656d543b, got "
        ),
        "{msg}"
    );
    assert!(
        labelled(&client, &selector("tampered")).await.is_empty(),
        "nothing may be created"
    );
}

#[tokio::test]
async fn a_file_missing_from_every_bundle_names_its_path_and_url() {
    let dir = tempfile::tempdir().unwrap();
    let source = Source {
        url: "https://example.invalid/x.yaml".into(),
        sha256: Some("0".repeat(64)),
        bundle: "x-v1/x.yaml".into(),
    };
    let opts = SourceOptions {
        bundles: vec![dir.path().to_path_buf()],
        cache_dir: None,
        ..Default::default()
    };
    let err = ephemera::addons::sources::fetch("x v1", &source, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("x v1: x-v1/x.yaml is in no manifest bundle"),
        "{err}"
    );
    assert!(err.contains("https://example.invalid/x.yaml"), "{err}");
}

/// A manifest server on 127.0.0.1: serves `body` at /m.yaml, failing the first `fail_first`
/// requests with 503, and counts requests.
async fn serve(
    body: &'static str,
    fail_first: usize,
) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/m.yaml",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n < fail_first {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy").into_response()
                } else {
                    body.into_response()
                }
            }
        }),
    );
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/m.yaml", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hits, task)
}

const MANIFEST: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: downloaded}\ndata: {a: b}\n";

fn sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn downloads_are_verified_retried_and_cached_by_sha256() {
    let cache = tempfile::tempdir().unwrap();
    let opts = SourceOptions {
        bundles: vec![],
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let (url, hits, server) = serve(MANIFEST, 2).await;
    let source = Source {
        url: url.clone(),
        sha256: Some(sha256(MANIFEST)),
        bundle: "x/m.yaml".into(),
    };

    let got = ephemera::addons::sources::fetch("x v1", &source, &opts)
        .await
        .expect("download after two 503s");
    assert_eq!(got.text, MANIFEST);
    assert!(got.verified);
    assert_eq!(hits.load(Ordering::SeqCst), 3, "two 503s were retried");
    let cached: PathBuf = cache.path().join(sha256(MANIFEST));
    assert_eq!(std::fs::read_to_string(&cached).unwrap(), MANIFEST);

    // The cache serves it with the server gone.
    server.abort();
    let again = ephemera::addons::sources::fetch("x v1", &source, &opts)
        .await
        .expect("from the cache");
    assert_eq!(again.text, MANIFEST);
    assert!(matches!(
        again.origin,
        ephemera::addons::sources::Origin::Cache(_)
    ));

    // A damaged cache entry is not trusted.
    std::fs::write(&cached, "tampered").unwrap();
    let err = ephemera::addons::sources::fetch("x v1", &source, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&url),
        "it downloads again, and the server is gone: {err}"
    );
}

#[tokio::test]
async fn a_download_that_does_not_match_its_sha256_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    let opts = SourceOptions {
        bundles: vec![],
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let (url, _, _server) = serve(MANIFEST, 0).await;
    let pinned = sha256("something else");
    let source = Source {
        url: url.clone(),
        sha256: Some(pinned.clone()),
        bundle: "x/m.yaml".into(),
    };
    let err = ephemera::addons::sources::fetch("x v1", &source, &opts)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "x v1: {url}: sha256 mismatch: expected {pinned}, got {}",
            sha256(MANIFEST)
        )
    );
    assert_eq!(
        std::fs::read_dir(cache.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "nothing cached"
    );
}

/// A source nothing pins: refused outright with `--locked`, and otherwise never fetched over plain
/// http, even from a loopback server (over https it is used with a warning, see `lock::`).
#[tokio::test]
async fn an_unpinned_source_is_refused_when_locked_and_never_fetched_over_http() {
    let mut opts = SourceOptions {
        cache_dir: Some(tempfile::tempdir().unwrap().path().to_path_buf()),
        unpinned: ephemera::addons::Unpinned::Refuse,
        ..Default::default()
    };
    let (url, hits, _server) = serve(MANIFEST, 0).await;
    let source = Source {
        url: url.clone(),
        sha256: None,
        bundle: "cert-manager-v1.21.1/cert-manager.yaml".into(),
    };
    let err = ephemera::addons::sources::fetch("cert-manager v1.21.1", &source, &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, AddonError::Unpinned { .. }), "{err}");
    let err = err.to_string();
    assert!(
        err.starts_with(&format!(
            "cert-manager v1.21.1: {url} is pinned neither by its add-on definition nor by "
        )),
        "{err}"
    );
    assert!(err.contains("--locked refuses it"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    opts.unpinned = ephemera::addons::Unpinned::Warn;
    let err = ephemera::addons::sources::fetch("cert-manager v1.21.1", &source, &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("downloaded only over https"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
