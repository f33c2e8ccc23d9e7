//! Server-side apply against a real apiserver: conflicts, unknown kinds and webhooks that are not
//! ready yet.

use std::time::Duration;

use ephemera::kube::{Applier, ApplyOptions, FieldConflict, KubeError, parse_manifest};
use kube::api::{Api, DynamicObject, Patch, PatchParams};

use crate::common::testcluster::shared_namespace;

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
