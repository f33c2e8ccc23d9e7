//! Readiness waits against a real apiserver (kwok makes pods Ready and Job pods Succeed).

use std::time::Duration;

use ephemera::kube::wait::{Check, job_complete, wait_endpoints, wait_object};
use ephemera::kube::{Applier, ApplyOptions, KubeError, ObjectId, parse_manifest};
use kube::api::ApiResource;

use crate::common::testcluster::shared_namespace;

async fn apply(client: &kube::Client, namespace: &str, yaml: &str) -> Applier {
    let applier = Applier::new(client.clone());
    let opts = ApplyOptions {
        default_namespace: Some(namespace.to_string()),
        origin: "test".into(),
        ..ApplyOptions::default()
    };
    applier
        .apply(parse_manifest(yaml, "test").unwrap(), &opts)
        .await
        .expect("apply");
    applier
}

async fn resource(applier: &Applier, api_version: &str, kind: &str) -> ApiResource {
    let id = ObjectId {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: None,
        name: "x".into(),
    };
    applier.resolve(&id, "test").await.expect("served").0
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.invalid/web:1, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

#[tokio::test]
async fn a_deployment_rolls_out_and_its_service_gets_ready_endpoints() {
    let Some(ns) = shared_namespace() else { return };
    let client = ns.cluster().client().await;
    let applier = apply(&client, ns.name(), WEB).await;
    let ar = resource(&applier, "apps/v1", "Deployment").await;
    let cond = Check::RolledOut.condition("Deployment");
    let d = wait_object(
        &client,
        &ar,
        Some(ns.name()),
        "web",
        &cond,
        Duration::from_secs(60),
    )
    .await
    .expect("rolled out");
    assert_eq!(d.unwrap().data["status"]["availableReplicas"], 2);
    wait_endpoints(&client, ns.name(), "web", Duration::from_secs(60))
        .await
        .expect("ready endpoints");
}

#[tokio::test]
async fn a_timeout_names_the_object_and_the_state_it_was_last_seen_in() {
    let Some(ns) = shared_namespace() else { return };
    let client = ns.cluster().client().await;
    // No node matches, so the pods stay Pending.
    let stuck = WEB
        .replace(
            "spec:\n      containers:",
            "spec:\n      nodeSelector: {pool: none}\n      containers:",
        )
        .replace("name: web}", "name: stuck}")
        .replace("app: web", "app: stuck");
    let applier = apply(&client, ns.name(), &stuck).await;
    let ar = resource(&applier, "apps/v1", "Deployment").await;
    let cond = Check::RolledOut.condition("Deployment");
    let err = wait_object(
        &client,
        &ar,
        Some(ns.name()),
        "stuck",
        &cond,
        Duration::from_secs(4),
    )
    .await
    .unwrap_err();
    let KubeError::Timeout {
        object,
        seconds,
        last_state,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(object, &format!("Deployment {}/stuck", ns.name()));
    assert_eq!(*seconds, 4);
    assert!(last_state.contains("Available=False"), "{last_state}");
    assert!(
        err.to_string().starts_with(&format!(
            "timed out after 4s waiting for Deployment {}/stuck; last seen: ",
            ns.name()
        )),
        "{err}"
    );

    // A Service without ready pods names how many endpoints it saw.
    let err = wait_endpoints(&client, ns.name(), "stuck", Duration::from_secs(3))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("ready endpoints of Service {}/stuck", ns.name())),
        "{err}"
    );
    assert!(err.contains("0 ready"), "{err}");

    // An object that does not exist is reported absent.
    let err = wait_object(
        &client,
        &ar,
        Some(ns.name()),
        "nope",
        &cond,
        Duration::from_secs(2),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.ends_with("last seen: absent"), "{err}");
}

#[tokio::test]
async fn a_job_completes() {
    let Some(ns) = shared_namespace() else { return };
    let client = ns.cluster().client().await;
    let job = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: once, image: registry.invalid/once:1}]
"#;
    let applier = apply(&client, ns.name(), job).await;
    let ar = resource(&applier, "batch/v1", "Job").await;
    let done = wait_object(
        &client,
        &ar,
        Some(ns.name()),
        "once",
        &job_complete(),
        Duration::from_secs(60),
    )
    .await
    .expect("complete");
    assert_eq!(done.unwrap().data["status"]["succeeded"], 1);
}
