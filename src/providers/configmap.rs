//! The environment record stored in the cluster itself: ConfigMap `ephemera` in `kube-system`.
//!
//! kind and local clusters have no cloud resource to tag, so the record lives on the cluster:
//! its data is [`Record::to_pairs`], its labels say who manages it and which environment it is.

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::Api;
use ::kube::api::{Patch, PatchParams};
use k8s_openapi::api::core::v1::ConfigMap;

use super::ProviderError;
use crate::record::{Record, RecordError};

/// The ConfigMap's name.
pub const NAME: &str = "ephemera";
/// The ConfigMap's namespace.
pub const NAMESPACE: &str = "kube-system";

/// How long one request to the cluster may take before it counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn transport(context: String, e: ::kube::Error) -> ProviderError {
    ProviderError::Transport {
        context,
        source: Box::new(e),
    }
}

fn timed_out(what: &str, cluster: &str) -> ProviderError {
    ProviderError::Timeout {
        what: format!("{what} ConfigMap {NAMESPACE}/{NAME} on cluster {cluster}"),
        seconds: REQUEST_TIMEOUT.as_secs(),
        last_state: "no answer from the API server".into(),
    }
}

/// Reads the record. `Ok(None)` when the ConfigMap does not exist.
///
/// # Errors
/// The API server is unreachable or refuses, or the ConfigMap exists but does not hold a record
/// of ours (named, so a foreign or damaged ConfigMap is never overwritten silently).
pub async fn read(client: ::kube::Client, cluster: &str) -> Result<Option<Record>, ProviderError> {
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let cm = tokio::time::timeout(REQUEST_TIMEOUT, api.get_opt(NAME))
        .await
        .map_err(|_| timed_out("reading", cluster))?
        .map_err(|e| {
            transport(
                format!("reading ConfigMap {NAMESPACE}/{NAME} on cluster {cluster}"),
                e,
            )
        })?;
    let Some(cm) = cm else { return Ok(None) };
    let data = cm.data.unwrap_or_default();
    Record::from_pairs(&data)
        .map(Some)
        .map_err(|e| damaged(cluster, &e))
}

fn damaged(cluster: &str, e: &RecordError) -> ProviderError {
    ProviderError::Config(format!(
        "cluster {cluster}: ConfigMap {NAMESPACE}/{NAME} does not hold an ephemera record: {e}"
    ))
}

/// Writes `record` (server-side apply, ephemera's field manager), replacing what was there.
///
/// # Errors
/// The API server is unreachable or refuses.
pub async fn write(
    client: ::kube::Client,
    cluster: &str,
    record: &Record,
) -> Result<(), ProviderError> {
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let body = desired(record);
    let params = PatchParams::apply(crate::MANAGER).force();
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        api.patch(NAME, &params, &Patch::Apply(&body)),
    )
    .await
    .map_err(|_| timed_out("writing", cluster))?
    .map_err(|e| {
        transport(
            format!("writing ConfigMap {NAMESPACE}/{NAME} on cluster {cluster}"),
            e,
        )
    })?;
    Ok(())
}

/// Replaces the stored record with `new` only while it is still `expected` (compared field by
/// field, written under the ConfigMap's `resourceVersion`): a compare-and-swap, so of two
/// writers starting from the same record exactly one succeeds. `Ok(false)` when the stored
/// record is missing or no longer `expected`.
///
/// # Errors
/// The API server is unreachable or refuses for another reason.
pub async fn swap(
    client: ::kube::Client,
    cluster: &str,
    expected: &Record,
    new: &Record,
) -> Result<bool, ProviderError> {
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let context = || format!("swapping ConfigMap {NAMESPACE}/{NAME} on cluster {cluster}");
    // A conflict from a write that left the record as it was (another field manager) is retried.
    for _ in 0..5 {
        let cm = tokio::time::timeout(REQUEST_TIMEOUT, api.get_opt(NAME))
            .await
            .map_err(|_| timed_out("reading", cluster))?
            .map_err(|e| transport(context(), e))?;
        let Some(mut cm) = cm else { return Ok(false) };
        let data = cm.data.clone().unwrap_or_default();
        if Record::from_pairs(&data).ok().as_ref() != Some(expected) {
            return Ok(false);
        }
        cm.data = Some(new.to_pairs());
        let replaced =
            tokio::time::timeout(REQUEST_TIMEOUT, api.replace(NAME, &Default::default(), &cm))
                .await
                .map_err(|_| timed_out("writing", cluster))?;
        match replaced {
            Ok(_) => return Ok(true),
            Err(::kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(transport(context(), e)),
        }
    }
    Ok(false)
}

/// The stored record if there is one, else `record` written and returned.
///
/// # Errors
/// As [`read`] and [`write`].
pub async fn ensure(
    client: ::kube::Client,
    cluster: &str,
    record: &Record,
) -> Result<Record, ProviderError> {
    if let Some(existing) = read(client.clone(), cluster).await? {
        return Ok(existing);
    }
    write(client, cluster, record).await?;
    Ok(record.clone())
}

/// The ConfigMap as ephemera wants it.
pub fn desired(record: &Record) -> serde_json::Value {
    let labels: BTreeMap<&str, &str> = [
        (crate::labels::MANAGED_BY, crate::MANAGER),
        (crate::labels::ENVIRONMENT, record.name.as_str()),
    ]
    .into();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": NAME, "namespace": NAMESPACE, "labels": labels },
        "data": record.to_pairs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_carries_labels_and_pairs() {
        let record = Record {
            name: "pr-7".into(),
            provider: "local".into(),
            repository: Some("acme/cats".into()),
            pr: Some(7),
            created_at: "2026-11-28T10:00:00Z".parse().unwrap(),
            expires_at: "2026-11-28T12:00:00Z".parse().unwrap(),
            created_by: None,
            version: "0.1.0".into(),
            url: None,
            env_file: Some("local".into()),
            pool: None,
        };
        let cm: ConfigMap = serde_json::from_value(desired(&record)).unwrap();
        let labels = cm.metadata.labels.unwrap();
        assert_eq!(labels[crate::labels::MANAGED_BY], "ephemera");
        assert_eq!(labels[crate::labels::ENVIRONMENT], "pr-7");
        assert_eq!(Record::from_pairs(&cm.data.unwrap()).unwrap(), record);
    }
}
