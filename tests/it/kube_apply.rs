//! Server-side apply against a real apiserver: conflicts, unknown kinds, webhooks that are not
//! ready yet, and an apiserver that dies mid-install.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ephemera::addons::{AddonError, install};
use ephemera::config::{Addon, Addons, IngressAddon};
use ephemera::kube::{Applier, ApplyOptions, FieldConflict, KubeError, parse_manifest};
use ephemera::progress::Recorder;
use kube::api::{Api, DynamicObject, Patch, PatchParams};

use crate::addons::{applied, context, renderer, resolve};
use crate::common::testcluster::{TestCluster, shared_namespace};

fn options(namespace: &str) -> ApplyOptions {
    ApplyOptions {
        default_namespace: Some(namespace.to_string()),
        origin: "test".into(),
        ..ApplyOptions::default()
    }
}

fn configmap(namespace: &str, color: &str) -> Vec<DynamicObject> {
    parse_manifest(
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: paint, namespace: {namespace}}}\ndata: {{color: {color}}}\n"),
        "test",
    )
    .unwrap()
}

#[tokio::test]
async fn a_field_owned_by_another_manager_is_a_conflict_naming_manager_and_field() {
    let Some(ns) = shared_namespace() else { return };
    let client = ns.cluster().client().await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns.name(),
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let theirs = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "paint"}, "data": {"color": "blue"}});
    api.patch(
        "paint",
        &PatchParams::apply("other-tool"),
        &Patch::Apply(&theirs),
    )
    .await
    .unwrap();

    let applier = Applier::new(client.clone());
    let err = applier
        .apply(configmap(ns.name(), "red"), &options(ns.name()))
        .await
        .unwrap_err();
    match &err {
        KubeError::Conflict { object, conflicts } => {
            assert_eq!(object, &format!("ConfigMap {}/paint", ns.name()));
            assert_eq!(
                conflicts,
                &vec![FieldConflict {
                    manager: "other-tool".into(),
                    field: ".data.color".into()
                }]
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("field .data.color is owned by field manager \"other-tool\""),
        "{err}"
    );
    assert_eq!(
        api.get("paint").await.unwrap().data["data"]["color"],
        "blue",
        "nothing changed"
    );

    // Only when asked, the field is taken over.
    let forced = ApplyOptions {
        force: true,
        ..options(ns.name())
    };
    applier
        .apply(configmap(ns.name(), "red"), &forced)
        .await
        .expect("forced apply");
    assert_eq!(api.get("paint").await.unwrap().data["data"]["color"], "red");
}

#[tokio::test]
async fn an_unknown_kind_is_an_error_naming_it() {
    let Some(ns) = shared_namespace() else { return };
    let client = ns.cluster().client().await;
    let mut objs = configmap(ns.name(), "green");
    objs.extend(
        parse_manifest(
            "apiVersion: example.dev/v1\nkind: Widget\nmetadata: {name: w}\n",
            "widgets.yaml",
        )
        .unwrap(),
    );
    let err = Applier::new(client)
        .apply(
            objs,
            &ApplyOptions {
                origin: "widgets.yaml".into(),
                ..options(ns.name())
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KubeError::UnknownKind { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "widgets.yaml: Widget w: the cluster serves no kind Widget in example.dev/v1 (is its CustomResourceDefinition installed?)"
    );
}

fn crd(group: &str, plural: &str, kind: &str) -> Vec<DynamicObject> {
    parse_manifest(
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
             metadata: {{name: {plural}.{group}}}\n\
             spec:\n  group: {group}\n  scope: Namespaced\n\
             \x20 names: {{plural: {plural}, kind: {kind}}}\n\
             \x20 versions:\n  - name: v1\n    served: true\n    storage: true\n\
             \x20   schema: {{openAPIV3Schema: {{type: object}}}}\n"
        ),
        &format!("{plural}.yaml"),
    )
    .unwrap()
}

#[tokio::test]
async fn a_crd_whose_names_are_refused_fails_at_once_naming_it() {
    let Some(ns) = shared_namespace() else { return };
    let client = ns.cluster().client().await;
    let group = format!("{}.example.dev", ns.name());
    let applier = Applier::new(client.clone());
    let opts = ApplyOptions {
        crd_timeout: Duration::from_secs(120),
        ..options(ns.name())
    };
    let first = applier
        .apply(crd(&group, "widgets", "Widget"), &opts)
        .await
        .expect("the first CRD is served");
    assert_eq!(first.objects.len(), 1);

    // The same kind under another plural: the apiserver refuses its names, which waiting does
    // not change, so the apply fails long before the CRD timeout.
    let started = std::time::Instant::now();
    let err = applier
        .apply(crd(&group, "gadgets", "Widget"), &opts)
        .await
        .unwrap_err();
    let took = started.elapsed();
    let crds: Api<DynamicObject> = Api::all_with(
        client,
        &kube::api::ApiResource::erase::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(&()),
    );
    for plural in ["widgets", "gadgets"] {
        let _ = crds
            .delete(&format!("{plural}.{group}"), &Default::default())
            .await;
    }
    match &err {
        KubeError::Failed { object, reason } => {
            assert_eq!(
                object,
                &format!("CustomResourceDefinition gadgets.{group} (from test)")
            );
            // The apiserver names the first clash it finds: the kind or its list kind.
            assert!(
                reason.starts_with("names not accepted: ")
                    && reason.contains("KindConflict: ")
                    && reason.ends_with("is already in use"),
                "{reason}"
            );
        }
        other => panic!("expected the CRD to fail, got {other:?}"),
    }
    assert!(took < Duration::from_secs(30), "failed after {took:?}");
}

#[tokio::test]
async fn a_webhook_that_is_not_ready_yet_is_retried_with_backoff() {
    let Some(ns) = shared_namespace() else { return };
    let client = ns.cluster().client().await;
    // A webhook on ConfigMaps of this test's namespace only, served at a loopback port where
    // nothing listens yet: the apiserver answers "failed calling webhook ... connection refused".
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook_name = format!("{}.hold.example.dev", ns.name());
    let hook = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": hook_name},
        "webhooks": [{
            "name": "hold.example.dev",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/validate")},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns.name()}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 2,
        }]
    });
    let hooks: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<
            k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
        >(&()),
    );
    hooks
        .patch(
            &hook_name,
            &PatchParams::apply("test"),
            &Patch::Apply(&hook),
        )
        .await
        .unwrap();

    let applier = Applier::new(client.clone());
    let opts = options(ns.name());
    let apply = tokio::spawn({
        let objs = configmap(ns.name(), "amber");
        async move { applier.apply(objs, &opts).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !apply.is_finished(),
        "the apply must wait for the webhook, not fail or pass"
    );
    // The webhook "becomes ready": here, by going away, as cert-manager's does once its CA is injected.
    hooks.delete(&hook_name, &Default::default()).await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), apply)
        .await
        .expect("apply finishes")
        .unwrap()
        .expect("apply succeeds");
    assert!(report.retries >= 1, "retried {} times", report.retries);
    let cm: Api<DynamicObject> = Api::namespaced_with(
        client,
        ns.name(),
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    assert_eq!(
        cm.get("paint").await.unwrap().data["data"]["color"],
        "amber"
    );
}

/// A kube-apiserver started by the test (after it killed the cluster's own), killed on drop.
struct Restarted(Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the apiserver's command line");
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

#[tokio::test]
async fn an_apiserver_killed_mid_install_then_started_again_lets_a_rerun_complete() {
    // With RUST_LOG=ephemera=debug the log shows the retries and any CRD nudges.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let Some(cluster) = TestCluster::start("apiserver-restart") else {
        return;
    };
    let client = cluster.client().await;
    let pid = cluster.pids()["kube-apiserver"];
    let argv = cmdline(pid);
    let r = renderer();
    let argo_cd_only = Addons {
        ingress: IngressAddon {
            enabled: false,
            ..Default::default()
        },
        cert_manager: Addon {
            enabled: false,
            ..Default::default()
        },
        argo_rollouts: Addon {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let addons = resolve(&r, &argo_cd_only);

    // First run: short budgets, and the apiserver dies once the first objects are in.
    let first = tokio::spawn({
        let client = client.clone();
        let addons = addons.clone();
        let r = renderer();
        async move {
            let mut ctx = context("restart", &r, Arc::new(Recorder::default()));
            ctx.retry_for = Duration::from_secs(3);
            ctx.request_timeout = Duration::from_secs(3);
            ctx.wait_timeout = Duration::from_secs(10);
            install(client, &addons, &ctx).await
        }
    });
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&()),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while crds
        .get_opt("applications.argoproj.io")
        .await
        .ok()
        .flatten()
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the install never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGKILL: no graceful shutdown, connections just drop.
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let err = first
        .await
        .unwrap()
        .expect_err("the first run cannot finish without an apiserver");
    assert!(
        matches!(
            &err,
            AddonError::Kube(KubeError::Api { .. } | KubeError::Timeout { .. })
                | AddonError::Wait { .. }
        ),
        "{err:?}"
    );

    // The same apiserver, started again with the same flags, on the same etcd.
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(cluster.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _apiserver = Restarted(cmd.spawn().expect("restart the apiserver"));

    // The rerun starts while the apiserver is still coming up, and converges.
    let mut ctx = context("restart", &r, Arc::new(Recorder::default()));
    ctx.retry_for = Duration::from_secs(120);
    ctx.request_timeout = Duration::from_secs(10);
    let report = install(client.clone(), &addons, &ctx)
        .await
        .expect("the rerun completes");
    assert_eq!(report.addons[0].name, "argo-cd");
    let objects = applied(&client, "ephemera.dev/environment=restart").await;
    assert_eq!(
        objects.len(),
        report.addons[0].objects,
        "every object is there once"
    );
    let by_kind: BTreeMap<String, usize> = objects.keys().fold(BTreeMap::new(), |mut m, id| {
        *m.entry(id.kind.clone()).or_default() += 1;
        m
    });
    assert_eq!(by_kind["Deployment"], 6);
    assert_eq!(by_kind["StatefulSet"], 1);
    assert_eq!(by_kind["CustomResourceDefinition"], 3);
}
