//! Delete an environment's objects by ownership label, in reverse dependency order.
//!
//! Order: the app's objects (no `ephemera.dev/addon` label) first, then each add-on in reverse
//! install order; inside each, custom resources first (their controller is still running to
//! remove its finalizers), then other namespaced objects, then cluster-scoped ones. Then every
//! CustomResourceDefinition, and Namespaces last. Each group is deleted with foreground
//! propagation and waited for until gone, so finalizers run while what serves them still exists.
//! Already gone is success.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ::kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};
use ::kube::discovery::{ApiCapabilities, Discovery, Scope};
use backon::Retryable;
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::manifest::ObjectId;
use super::wait::{is_deleted, wait_object};
use super::{KubeError, backoff, is_transient, status_code};
use crate::labels;

/// What to delete and how long to wait.
#[derive(Clone, Debug)]
pub struct DeleteOptions {
    /// The environment whose objects go.
    pub environment: String,
    /// Add-on names in install order; deleted in reverse. Add-ons not listed go right after the app.
    pub addon_order: Vec<String>,
    /// Only these add-ons' objects (and no app objects); `None` deletes everything labelled.
    pub only_addons: Option<BTreeSet<String>>,
    /// How long each group may take to disappear.
    pub timeout: Duration,
    pub parallelism: usize,
    /// Total backoff for transient errors.
    pub retry_for: Duration,
}

impl DeleteOptions {
    pub fn new(environment: &str) -> Self {
        DeleteOptions {
            environment: environment.to_string(),
            addon_order: Vec::new(),
            only_addons: None,
            timeout: Duration::from_secs(300),
            parallelism: 8,
            retry_for: Duration::from_secs(60),
        }
    }

    /// The label selector for the environment's objects.
    pub fn selector(&self) -> String {
        format!(
            "{}={},{}={}",
            labels::MANAGED_BY,
            crate::MANAGER,
            labels::ENVIRONMENT,
            self.environment
        )
    }
}

/// What a delete did.
#[derive(Clone, Debug, Default)]
pub struct DeleteReport {
    /// Deleted by this run, in the order the deletes were issued.
    pub deleted: Vec<ObjectId>,
    /// Found by the listing but gone before the delete call.
    pub already_gone: Vec<ObjectId>,
    /// Resource types that could not be listed because their API is unavailable (an aggregated
    /// API without a backend); named so nobody reads their absence as "nothing there".
    pub unlistable: Vec<String>,
}

struct Found {
    id: ObjectId,
    ar: ApiResource,
    uid: Option<String>,
    addon: Option<String>,
}

/// Deletes every object labelled with the environment (and `managed-by: ephemera`).
///
/// # Errors
/// - [`KubeError::StuckNamespace`] for a namespace that stays Terminating, naming the finalizers
///   and remaining resources its status reports;
/// - [`KubeError::Timeout`] for another object that does not go, with its finalizers;
/// - [`KubeError::Api`] for listing or delete failures other than "already gone".
pub async fn delete_environment(
    client: &::kube::Client,
    opts: &DeleteOptions,
) -> Result<DeleteReport, KubeError> {
    let discovery = (|| async { Discovery::new(client.clone()).run_aggregated().await })
        .retry(backoff(opts.retry_for))
        .when(is_transient)
        .await
        .map_err(|e| KubeError::api("discovering the cluster's API resources", e))?;
    let mut resources: Vec<(ApiResource, ApiCapabilities)> = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            let skip = ar.group == "events.k8s.io" || (ar.group.is_empty() && ar.kind == "Event");
            if !skip && caps.supports_operation("list") && caps.supports_operation("delete") {
                resources.push((ar, caps));
            }
        }
    }
    let custom = custom_kinds(client, opts).await?;
    let selector = opts.selector();
    let mut report = DeleteReport::default();
    let listed: Vec<Result<Vec<Found>, String>> =
        futures::stream::iter(resources.iter().map(|(ar, caps)| {
            let selector = selector.clone();
            async move { list(client, ar, caps, &selector, opts).await }
        }))
        .buffer_unordered(opts.parallelism.max(1))
        .try_collect()
        .await?;
    let mut found: Vec<Found> = Vec::new();
    for l in listed {
        match l {
            Ok(f) => found.extend(f),
            Err(unavailable) => report.unlistable.push(unavailable),
        }
    }
    if let Some(only) = &opts.only_addons {
        found.retain(|f| f.addon.as_ref().is_some_and(|a| only.contains(a)));
    }

    // Buckets: the app, add-ons not in the order, then the ordered add-ons in reverse.
    let rank = |f: &Found| -> usize {
        match &f.addon {
            None => 0,
            Some(a) => match opts.addon_order.iter().position(|x| x == a) {
                None => 1,
                Some(i) => 2 + (opts.addon_order.len() - 1 - i),
            },
        }
    };
    let is_crd =
        |f: &Found| f.ar.group == "apiextensions.k8s.io" && f.ar.kind == "CustomResourceDefinition";
    let is_ns = |f: &Found| f.ar.group.is_empty() && f.ar.kind == "Namespace";
    let mut groups: BTreeMap<(usize, u8), Vec<Found>> = BTreeMap::new();
    let last = usize::MAX;
    for f in found {
        let key = if is_ns(&f) {
            (last, 1)
        } else if is_crd(&f) {
            (last, 0)
        } else {
            let step = if custom.contains(&(f.ar.group.clone(), f.ar.kind.clone())) {
                0
            } else if f.id.namespace.is_some() {
                1
            } else {
                2
            };
            (rank(&f), step)
        };
        groups.entry(key).or_default().push(f);
    }
    for (key, group) in groups {
        let started = std::time::Instant::now();
        let count = group.len();
        delete_group(client, group, opts, &mut report).await?;
        tracing::debug!(group = ?key, objects = count, elapsed = ?started.elapsed(), "deleted");
    }
    Ok(report)
}

/// Every (group, kind) served by a CustomResourceDefinition, ours or not.
async fn custom_kinds(
    client: &::kube::Client,
    opts: &DeleteOptions,
) -> Result<BTreeSet<(String, String)>, KubeError> {
    let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    let crds = (|| async { api.list(&ListParams::default()).await })
        .retry(backoff(opts.retry_for))
        .when(is_transient)
        .await
        .map_err(|e| KubeError::api("listing CustomResourceDefinitions", e))?;
    Ok(crds
        .items
        .into_iter()
        .map(|c| (c.spec.group, c.spec.names.kind))
        .collect())
}

async fn list(
    client: &::kube::Client,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    selector: &str,
    opts: &DeleteOptions,
) -> Result<Result<Vec<Found>, String>, KubeError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    let params = ListParams::default().labels(selector);
    let result = (|| async { api.list(&params).await })
        .retry(backoff(opts.retry_for.min(Duration::from_secs(15))))
        .when(is_transient)
        .await;
    let items = match result {
        Ok(list) => list.items,
        Err(e) if status_code(&e) == Some(503) => {
            tracing::warn!(resource = %ar.plural, group = %ar.group, "cannot list: its API is unavailable");
            return Ok(Err(format!("{}.{}", ar.plural, ar.group)));
        }
        // Gone since discovery (a CRD deleted meanwhile): nothing of that kind is left.
        Err(e) if status_code(&e) == Some(404) => return Ok(Ok(Vec::new())),
        Err(e) => {
            return Err(KubeError::api(
                format!("listing {} with {selector}", ar.plural),
                e,
            ));
        }
    };
    Ok(Ok(items
        .into_iter()
        .map(|mut o| {
            if caps.scope == Scope::Cluster {
                o.metadata.namespace = None;
            }
            let mut id = ObjectId::of(&o);
            id.api_version = ar.api_version.clone();
            id.kind = ar.kind.clone();
            let addon = o
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::ADDON))
                .cloned();
            Found {
                id,
                ar: ar.clone(),
                uid: o.metadata.uid.clone(),
                addon,
            }
        })
        .collect()))
}

/// Watches at once while a group drains; deletes are issued `parallelism` at a time.
const MAX_WATCHES: usize = 64;

async fn delete_group(
    client: &::kube::Client,
    group: Vec<Found>,
    opts: &DeleteOptions,
    report: &mut DeleteReport,
) -> Result<(), KubeError> {
    // Issue every delete first, then wait for all of them together: finalizers and the garbage
    // collector work on the whole group at once.
    let issued: Vec<(Found, bool)> = futures::stream::iter(group.into_iter().map(|f| async move {
        let api: Api<DynamicObject> = match &f.id.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &f.ar),
            None => Api::all_with(client.clone(), &f.ar),
        };
        let params = DeleteParams::foreground();
        let deleted = (|| async { api.delete(&f.id.name, &params).await })
            .retry(backoff(opts.retry_for))
            .when(is_transient)
            .await;
        let namespace = f.ar.group.is_empty() && f.ar.kind == "Namespace";
        match deleted {
            Ok(_) => Ok((f, true)),
            Err(e) if status_code(&e) == Some(404) => Ok((f, false)),
            // A namespace already Terminating answers 409 ("ensuring all content is removed").
            Err(e) if namespace && status_code(&e) == Some(409) => Ok((f, true)),
            Err(e) => Err(KubeError::api(format!("deleting {}", f.id), e)),
        }
    }))
    .buffer_unordered(opts.parallelism.max(1))
    .try_collect()
    .await?;
    let mut waiting = Vec::new();
    for (f, deleted) in issued {
        if deleted {
            waiting.push(f);
        } else {
            report.already_gone.push(f.id);
        }
    }
    let gone: Vec<ObjectId> = futures::stream::iter(waiting.into_iter().map(|f| async move {
        let gone = is_deleted(f.uid.clone().unwrap_or_default());
        let ns = f.id.namespace.as_deref();
        match wait_object(client, &f.ar, ns, &f.id.name, &gone, opts.timeout).await {
            Ok(_) => Ok(f.id),
            Err(KubeError::Timeout {
                object,
                seconds,
                last_state,
            }) if f.ar.kind == "Namespace" && f.ar.group.is_empty() => {
                let timeout = KubeError::Timeout {
                    object,
                    seconds,
                    last_state,
                };
                Err(stuck_namespace(client, &f.id.name).await.unwrap_or(timeout))
            }
            Err(e) => Err(e),
        }
    }))
    .buffer_unordered(MAX_WATCHES)
    .try_collect()
    .await?;
    report.deleted.extend(gone);
    Ok(())
}

/// Reads why a namespace is still Terminating from its status conditions.
async fn stuck_namespace(client: &::kube::Client, name: &str) -> Option<KubeError> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = api.get_opt(name).await.ok()??;
    let value = serde_json::to_value(&ns).ok()?;
    Some(KubeError::StuckNamespace {
        namespace: name.to_string(),
        detail: namespace_detail(&value),
    })
}

/// The namespace controller's own account of what is left: finalizers and remaining content.
pub(crate) fn namespace_detail(ns: &Value) -> String {
    let mut parts = Vec::new();
    for (kind, (status, _reason, message)) in super::manifest::conditions(ns) {
        let relevant = matches!(
            kind.as_str(),
            "NamespaceContentRemaining"
                | "NamespaceFinalizersRemaining"
                | "NamespaceDeletionContentFailure"
                | "NamespaceDeletionDiscoveryFailure"
                | "NamespaceDeletionGroupVersionParsingFailure"
        );
        if relevant && status == "True" {
            parts.push(format!("{kind}: {message}"));
        }
    }
    let finalizers: Vec<&str> = ns
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !finalizers.is_empty() {
        parts.push(format!("namespace finalizers: {}", finalizers.join(", ")));
    }
    if parts.is_empty() {
        "no reason reported yet".into()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stuck_namespace_names_finalizers_and_remaining_resources() {
        let ns = json!({
            "metadata": {"name": "argocd", "deletionTimestamp": "2026-11-28T10:00:00Z"},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {
                "phase": "Terminating",
                "conditions": [
                    {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered"},
                    {"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain",
                     "message": "Some resources are remaining: applications.argoproj.io has 1 resource instances"},
                    {"type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
                     "message": "Some content in the namespace has finalizers remaining: resources-finalizer.argocd.argoproj.io in 1 resource instances"},
                ]
            }
        });
        let d = namespace_detail(&ns);
        assert!(
            d.contains("applications.argoproj.io has 1 resource instances"),
            "{d}"
        );
        assert!(d.contains("resources-finalizer.argocd.argoproj.io"), "{d}");
        assert!(!d.contains("ResourcesDiscovered"), "{d}");
        let e = KubeError::StuckNamespace {
            namespace: "argocd".into(),
            detail: d,
        };
        assert!(
            e.to_string()
                .starts_with("namespace argocd is stuck in Terminating: NamespaceContentRemaining")
        );
    }

    #[test]
    fn selector_names_manager_and_environment() {
        assert_eq!(
            DeleteOptions::new("pr-42").selector(),
            "app.kubernetes.io/managed-by=ephemera,ephemera.dev/environment=pr-42"
        );
    }
}
