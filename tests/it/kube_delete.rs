//! Deleting an environment by label against a real apiserver.

use std::collections::BTreeMap;
use std::time::Duration;

use ephemera::kube::{
    Applier, ApplyOptions, DeleteOptions, KubeError, delete_environment, parse_manifest,
};
use kube::api::{Api, DynamicObject, Patch, PatchParams};

use crate::addons::labelled;
use crate::common::testcluster::shared_cluster;

fn labels(env: &str, addon: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "ephemera".to_string(),
        ),
        ("ephemera.dev/environment".to_string(), env.to_string()),
    ]);
    if let Some(a) = addon {
        l.insert("ephemera.dev/addon".into(), a.into());
    }
    l
}

async fn apply(client: &kube::Client, env: &str, addon: Option<&str>, yaml: &str) {
    let opts = ApplyOptions {
        labels: labels(env, addon),
        origin: "test".into(),
        ..ApplyOptions::default()
    };
    Applier::new(client.clone())
        .apply(parse_manifest(yaml, "test").unwrap(), &opts)
        .await
        .expect("apply");
}

#[tokio::test]
async fn deletes_in_reverse_dependency_order_and_leaves_nothing() {
    let Some(cluster) = shared_cluster() else {
        return;
    };
    let client = cluster.client().await;
    let env = format!("order-{}", std::process::id());
    let (a, b) = (format!("{env}-a"), format!("{env}-b"));
    let kind = format!("Gadget{}", std::process::id());
    let plural = format!("gadget{}s", std::process::id());
    apply(&client, &env, Some("first"), &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {a}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: first, namespace: {a}}}\n")).await;
    apply(
        &client,
        &env,
        Some("second"),
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {b}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: second, namespace: {b}}}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {env}-second}}\nrules: []\n---\n\
             apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {plural}.example.dev}}\n\
             spec:\n  group: example.dev\n  scope: Namespaced\n  names: {{kind: {kind}, plural: {plural}}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {{openAPIV3Schema: {{type: object}}}}\n---\n\
             apiVersion: example.dev/v1\nkind: {kind}\nmetadata: {{name: g, namespace: {b}}}\n"
        ),
    )
    .await;
    apply(
        &client,
        &env,
        None,
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app, namespace: {a}}}\n"),
    )
    .await;

    let mut opts = DeleteOptions::new(&env);
    opts.addon_order = vec!["first".into(), "second".into()];
    let report = delete_environment(&client, &opts).await.expect("delete");
    let order: Vec<String> = report
        .deleted
        .iter()
        .map(|id| format!("{} {}", id.kind, id.name))
        .collect();
    let pos = |what: &str| {
        order
            .iter()
            .position(|x| x == what)
            .unwrap_or_else(|| panic!("{what} not deleted: {order:?}"))
    };
    assert!(
        pos("ConfigMap app") < pos(&format!("{kind} g")),
        "the app first: {order:?}"
    );
    assert!(
        pos(&format!("{kind} g")) < pos("ConfigMap second"),
        "custom resources before the rest of their add-on: {order:?}"
    );
    assert!(
        pos("ConfigMap second") < pos(&format!("ClusterRole {env}-second")),
        "namespaced before cluster-scoped: {order:?}"
    );
    assert!(
        pos(&format!("ClusterRole {env}-second")) < pos("ConfigMap first"),
        "add-ons in reverse order: {order:?}"
    );
    assert!(
        pos("ConfigMap first") < pos(&format!("CustomResourceDefinition {plural}.example.dev")),
        "CRDs late: {order:?}"
    );
    assert!(
        pos(&format!("CustomResourceDefinition {plural}.example.dev"))
            < pos(&format!("Namespace {a}")),
        "namespaces last: {order:?}"
    );
    assert!(labelled(&client, &opts.selector()).await.is_empty());

    let again = delete_environment(&client, &opts)
        .await
        .expect("already gone is success");
    assert!(again.deleted.is_empty() && again.already_gone.is_empty());
}

#[tokio::test]
async fn a_namespace_stuck_terminating_is_reported_with_what_holds_it_and_a_rerun_finishes() {
    let Some(cluster) = shared_cluster() else {
        return;
    };
    let client = cluster.client().await;
    let env = format!("stuck-{}", std::process::id());
    apply(
        &client,
        &env,
        None,
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {env}}}\n"),
    )
    .await;
    // Something else put an object with a finalizer nobody removes into our namespace.
    let cms: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &env,
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let held = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.dev/hold"]}});
    cms.patch(
        "held",
        &PatchParams::apply("someone-else"),
        &Patch::Apply(&held),
    )
    .await
    .unwrap();

    let mut opts = DeleteOptions::new(&env);
    opts.timeout = Duration::from_secs(8);
    let err = delete_environment(&client, &opts).await.unwrap_err();
    let KubeError::StuckNamespace { namespace, detail } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(namespace, &env);
    assert!(detail.contains("example.dev/hold"), "{detail}");
    assert!(
        err.to_string()
            .starts_with(&format!("namespace {env} is stuck in Terminating: ")),
        "{err}"
    );

    // Once the finalizer goes, the same delete finishes.
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    cms.patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    opts.timeout = Duration::from_secs(120);
    delete_environment(&client, &opts).await.expect("rerun");
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    assert!(nss.get_opt(&env).await.unwrap().is_none());
}
