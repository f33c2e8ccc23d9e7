//! AKS: managed clusters over the Azure Resource Manager REST API (api-version 2026-08-01).
//!
//! - [`spec`]: the desired PUT bodies, names and ids (pure);
//! - [`crate::azure`]: the ARM client, clouds and credentials it shares with `dns`;
//! - [`Aks`]: the [`Provider`]: ensure, kubeconfig, delete, list and record updates.
//!
//! Every mutation is an ensure. The cluster is created with `If-None-Match: *`, so two racing
//! runs cannot both create it; a rerun on a ready cluster whose spec matches makes no write; an
//! operation already running on the cluster is waited out, never answered with a second PUT.
//! Clusters and resource groups without our ownership tags are never changed or deleted.

use std::sync::Arc;

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::config::{AksConfig, ResourceGroupStrategy};
use crate::providers::lease::AnyLeaseStore;
use crate::providers::probe::Probe;
use crate::providers::{ClusterRequest, Deleted, Ensured, Kubeconfig, Provider, ProviderError};
use crate::record::{Record, RecordError, keys};

pub mod lease;
pub mod spec;

pub use crate::azure::Timing;
use crate::azure::arm::{ArmClient, ArmResponse, Deadline, State, classify, provisioning_state};
use crate::azure::cloud::CloudEndpoints;
use crate::azure::{AzureError, ENV_SUBSCRIPTION, arm_client, subscription_id};

/// How many times ensure, delete and record updates re-read the cluster before giving up on a
/// state that keeps changing under them.
const ROUNDS: usize = 8;

/// The outcome of a conditional tag update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagUpdate {
    /// The tags were written; the resource's new entity tag, when ARM returned one.
    Updated { etag: Option<String> },
    /// `If-Match` did not match: someone else changed the cluster since it was read.
    Conflict,
}

/// The AKS provider for one environment file.
pub struct Aks {
    cfg: AksConfig,
    subscription: String,
    cloud: CloudEndpoints,
    arm: ArmClient,
}

impl std::fmt::Debug for Aks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aks")
            .field("subscription", &self.subscription)
            .field("cloud", &self.cloud.name)
            .field("resource_manager", &self.cloud.resource_manager.as_str())
            .finish_non_exhaustive()
    }
}

/// Builds the AKS provider from the environment file's settings and the machine's variables
/// (`AZURE_*`, `EPHEMERA_AZURE_TOKEN`, `PATH` for the Azure CLI), which are read again on every
/// call for credentials.
///
/// # Errors
/// [`ProviderError::Config`] for an unusable subscription, cloud or `AZURE_TOKEN_CREDENTIALS`.
pub fn from_config<P>(cfg: &AksConfig, probe: &P) -> Result<Aks, ProviderError>
where
    P: Probe + Clone + Send + Sync + 'static,
{
    Aks::new(cfg, Arc::new(probe.clone()))
}

impl Aks {
    /// As [`from_config`], with a shared probe.
    ///
    /// # Errors
    /// As [`from_config`].
    pub fn new(
        cfg: &AksConfig,
        probe: Arc<dyn Probe + Send + Sync>,
    ) -> Result<Self, ProviderError> {
        let (subscription, field) = match probe.var_nonempty(ENV_SUBSCRIPTION) {
            Some(s) => (s, ENV_SUBSCRIPTION),
            None => (cfg.subscription.clone(), "provider.aks.subscription"),
        };
        let subscription = subscription_id(&subscription, field)?;
        let cloud = CloudEndpoints::resolve(&cfg.cloud, probe.as_ref())?;
        let arm = arm_client(&cloud, probe)?;
        Ok(Aks {
            cfg: cfg.clone(),
            subscription,
            cloud,
            arm,
        })
    }

    /// Replaces the timing knobs (tests shrink them).
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.arm.timing = timing;
        self
    }

    /// The subscription in use (after `AZURE_SUBSCRIPTION_ID`).
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The resolved cloud.
    pub fn cloud(&self) -> &CloudEndpoints {
        &self.cloud
    }

    /// The resource group of environment `name`.
    pub fn resource_group(&self, name: &str) -> String {
        spec::resource_group_name(&self.cfg, name)
    }

    /// The ARM id of environment `name`'s cluster.
    pub fn resource_id(&self, name: &str) -> String {
        spec::cluster_resource_id(&self.subscription, &self.resource_group(name), name)
    }

    /// The portal page of environment `name`'s cluster, when the cloud has a portal.
    pub fn portal_url(&self, name: &str) -> Option<String> {
        self.cloud.portal_link(&self.resource_id(name))
    }

    /// Who the current credential speaks for (recorded as `created-by`).
    ///
    /// # Errors
    /// [`AzureError::Credential`] when no credential works.
    pub async fn principal(&self) -> Result<Option<String>, ProviderError> {
        Ok(self.arm.token().await?.principal)
    }

    fn cluster_url(&self, name: &str, suffix: &str) -> Result<Url, ProviderError> {
        self.arm
            .url(&format!(
                "{}{suffix}?api-version={}",
                self.resource_id(name),
                spec::MANAGED_CLUSTERS_API_VERSION
            ))
            .map_err(Into::into)
    }

    fn rg_url(&self, rg: &str) -> Result<Url, ProviderError> {
        self.arm
            .url(&format!(
                "{}?api-version={}",
                spec::resource_group_id(&self.subscription, rg),
                spec::RESOURCE_GROUPS_API_VERSION
            ))
            .map_err(Into::into)
    }

    fn deadline(&self, create: bool) -> Deadline {
        let t = self.arm.timing;
        Deadline::after(if create {
            t.create_deadline
        } else {
            t.delete_deadline
        })
    }

    /// The ownership record on a resource, or why it is not ours.
    fn owned(body: &Value, name: &str, what: &str) -> Result<Record, ProviderError> {
        let pairs = tag_pairs(body);
        match Record::from_pairs(&pairs) {
            Ok(r) if r.name == name => Ok(r),
            Ok(r) => Err(ProviderError::Config(format!(
                "{what} carries the record of environment {} not {name}; refusing to touch it",
                r.name
            ))),
            Err(RecordError::NotOurs) => Err(ProviderError::Config(format!(
                "{what} exists and is not managed by ephemera (no {} tag); refusing to touch it",
                keys::MANAGED_BY
            ))),
            Err(e) => Err(ProviderError::Config(format!(
                "{what} has a damaged ephemera record: {e}"
            ))),
        }
    }

    async fn ensure_resource_group(
        &self,
        name: &str,
        record: &Record,
        deadline: Deadline,
    ) -> Result<(), ProviderError> {
        let rg = self.resource_group(name);
        let url = self.rg_url(&rg)?;
        let op = format!("resource group {rg}");
        for _ in 0..ROUNDS {
            let r = self.arm.get(&url, &op).await?;
            match (self.cfg.resource_group.strategy, r.status) {
                (ResourceGroupStrategy::Shared, StatusCode::OK) => return Ok(()),
                (ResourceGroupStrategy::Shared, StatusCode::NOT_FOUND) => {
                    return Err(ProviderError::Config(format!(
                        "provider.aks.resourceGroup.name: resource group {rg} does not exist in subscription {} (the \
                         shared strategy never creates it)",
                        self.subscription
                    )));
                }
                (ResourceGroupStrategy::PerEnvironment, StatusCode::OK) => {
                    Self::owned(&r.body, name, &format!("resource group {rg}"))?;
                    if provisioning_state(&r.body)
                        .is_some_and(|s| s.eq_ignore_ascii_case("Deleting"))
                    {
                        self.arm
                            .settle(
                                &url,
                                &format!("resource group {rg} (being deleted)"),
                                deadline,
                            )
                            .await?;
                        continue;
                    }
                    return Ok(());
                }
                (ResourceGroupStrategy::PerEnvironment, StatusCode::NOT_FOUND) => {
                    let body = spec::resource_group_body(&self.cfg, record)?;
                    tracing::info!("creating resource group {rg}");
                    let put = self
                        .arm
                        .send(
                            Method::PUT,
                            &url,
                            Some(&body),
                            &[],
                            &format!("creating {op}"),
                        )
                        .await?;
                    if put.status.is_success() {
                        return Ok(());
                    }
                    if put.status == StatusCode::CONFLICT {
                        // ResourceGroupBeingDeleted: wait for the deletion, then create it again.
                        self.arm.settle(&url, &op, deadline).await?;
                        continue;
                    }
                    return Err(put.into_error(&format!("creating {op}")).into());
                }
                _ => return Err(r.into_error(&op).into()),
            }
        }
        Err(not_converging(&op))
    }

    /// The body to PUT over an existing cluster: the desired spec under its existing record,
    /// keeping tags others added.
    fn update_body(
        &self,
        name: &str,
        existing: &Record,
        actual: &Value,
    ) -> Result<Value, ProviderError> {
        let mut body = spec::managed_cluster_body(&self.cfg, name, existing)?;
        if let (Some(Value::Object(have)), Some(Value::Object(want))) =
            (actual.get("tags"), body.get_mut("tags"))
        {
            for (k, v) in have {
                if !want.contains_key(k) && (!k.starts_with("ephemera-") || k == LEASE_TAG) {
                    want.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(body)
    }

    async fn put_cluster(
        &self,
        url: &Url,
        body: &Value,
        condition: (&'static str, String),
        op: &str,
    ) -> Result<ArmResponse, ProviderError> {
        self.arm
            .send(
                Method::PUT,
                url,
                Some(body),
                &[condition, ("content-type", "application/json".into())],
                op,
            )
            .await
            .map_err(Into::into)
    }

    /// Conditionally replaces the cluster's tags (the ARM `updateTags` operation, a PATCH), for
    /// record updates and leases: with `etag`, the write happens only if the cluster is
    /// unchanged since it was read.
    ///
    /// # Errors
    /// [`ProviderError::NotFound`] when the cluster is gone; ARM errors.
    pub async fn update_tags_if_match(
        &self,
        name: &str,
        tags: &std::collections::BTreeMap<String, String>,
        etag: Option<&str>,
    ) -> Result<TagUpdate, ProviderError> {
        let url = self.cluster_url(name, "")?;
        let op = format!("updating the tags of cluster {name}");
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(e) = etag {
            headers.push(("if-match", e.to_string()));
        }
        let r = self
            .arm
            .send(
                Method::PATCH,
                &url,
                Some(&json!({ "tags": tags })),
                &headers,
                &op,
            )
            .await?;
        match r.status.as_u16() {
            200 | 201 => Ok(TagUpdate::Updated { etag: r.etag() }),
            202 => {
                self.arm
                    .wait(
                        &r,
                        &url,
                        false,
                        &format!("tag update of cluster {name}"),
                        self.deadline(false),
                    )
                    .await?;
                let now = self.arm.get(&url, &op).await?;
                Ok(TagUpdate::Updated { etag: now.etag() })
            }
            404 => Err(ProviderError::NotFound(name.to_string())),
            412 => Ok(TagUpdate::Conflict),
            _ => Err(r.into_error(&op).into()),
        }
    }

    async fn delete_cluster(&self, name: &str, deadline: Deadline) -> Result<bool, ProviderError> {
        let url = self.cluster_url(name, "")?;
        self.delete_owned(&url, name, &format!("cluster {name}"), true, deadline)
            .await
    }

    async fn delete_resource_group(
        &self,
        name: &str,
        deadline: Deadline,
    ) -> Result<bool, ProviderError> {
        if self.cfg.resource_group.strategy != ResourceGroupStrategy::PerEnvironment {
            return Ok(false);
        }
        let rg = self.resource_group(name);
        let url = self.rg_url(&rg)?;
        self.delete_owned(&url, name, &format!("resource group {rg}"), false, deadline)
            .await
    }

    /// Deletes the resource at `url` if it carries environment `name`'s record, and polls to
    /// the end. Gone (404, 204) is success. A resource that is not ours is an error when
    /// `foreign_is_error`, else it is left in place with a warning. Returns whether this call
    /// saw it deleted.
    async fn delete_owned(
        &self,
        url: &Url,
        name: &str,
        what: &str,
        foreign_is_error: bool,
        deadline: Deadline,
    ) -> Result<bool, ProviderError> {
        let op = format!("deleting {what}");
        let mut deleted = false;
        for _ in 0..ROUNDS {
            let r = self.arm.get(url, &op).await?;
            if r.status == StatusCode::NOT_FOUND {
                return Ok(deleted);
            }
            if !r.status.is_success() {
                return Err(r.into_error(&op).into());
            }
            match Self::owned(&r.body, name, what) {
                Ok(_) => {}
                Err(e) if foreign_is_error => return Err(e),
                Err(e) => {
                    tracing::warn!("{e}; leaving it in place");
                    return Ok(deleted);
                }
            }
            if provisioning_state(&r.body).is_some_and(|s| s.eq_ignore_ascii_case("Deleting")) {
                self.arm
                    .settle(url, &format!("{what} (already being deleted)"), deadline)
                    .await?;
                deleted = true;
                continue;
            }
            tracing::info!("deleting {what}");
            let d = self.arm.send(Method::DELETE, url, None, &[], &op).await?;
            match d.status.as_u16() {
                204 | 404 => return Ok(deleted),
                200 | 202 => {
                    self.arm
                        .wait(&d, url, true, &format!("deletion of {what}"), deadline)
                        .await?;
                    deleted = true;
                }
                409 => {
                    // Another operation (a create, an update) is running: wait it out, then
                    // delete again.
                    self.arm.settle(url, what, deadline).await?;
                }
                _ => return Err(d.into_error(&op).into()),
            }
        }
        Err(not_converging(&op))
    }

    async fn ensure_inner(&self, req: &ClusterRequest) -> Result<Ensured, ProviderError> {
        let name = req.name.as_str();
        spec::validate(&self.cfg, name)?;
        let deadline = self.deadline(true);
        let mut record = req.record.clone();
        if record.created_by.is_none() {
            record.created_by = self.arm.token().await?.principal;
        }
        // Bad input fails here, before anything is created.
        let desired = spec::managed_cluster_body(&self.cfg, name, &record)?;
        self.ensure_resource_group(name, &record, deadline).await?;

        let url = self.cluster_url(name, "")?;
        let what = format!("cluster {name}");
        let op = format!("ensuring {what}");
        let mut created = false;
        // A create whose answer was lost reads back as someone else's (412): it was ours if the
        // record on the cluster is exactly the one we sent.
        let mut attempted = false;
        let mut repaired = false;
        for _ in 0..ROUNDS {
            let r = self.arm.get(&url, &op).await?;
            if r.status == StatusCode::NOT_FOUND && attempted {
                // Our create went through (or found the cluster being made), and the cluster
                // is gone again: a down or gc deleted it. Creating it again would undo that.
                return Err(ProviderError::DeletedMeanwhile(what));
            }
            if r.status == StatusCode::NOT_FOUND {
                tracing::info!("creating {what} in {}", self.resource_group(name));
                attempted = true;
                created |= self
                    .create_cluster(&url, &desired, &what, &op, deadline)
                    .await?;
                continue;
            }
            if !r.status.is_success() {
                return Err(r.into_error(&op).into());
            }
            let existing = Self::owned(&r.body, name, &what)?;
            let state = provisioning_state(&r.body)
                .unwrap_or("Succeeded")
                .to_string();
            let etag = r.etag();
            match classify(&state) {
                State::Running if attempted && state.eq_ignore_ascii_case("Deleting") => {
                    return Err(ProviderError::DeletedMeanwhile(what));
                }
                State::Running => {
                    // Someone's operation is running (or ours, resumed): wait for it, never PUT.
                    self.arm
                        .settle(&url, &format!("{what} ({state})"), deadline)
                        .await?;
                }
                State::Failed | State::Canceled if !repaired => {
                    // A PUT of the same spec is how AKS reconciles a failed cluster.
                    repaired = true;
                    tracing::warn!("{what} is {state}; putting its spec again to reconcile it");
                    let body = self.update_body(name, &existing, &r.body)?;
                    self.update_cluster(&url, &body, etag, "reconciling", &what, deadline)
                        .await?;
                }
                State::Failed | State::Canceled => {
                    return Err(provisioning_failed(&r.body, &what, state));
                }
                State::Succeeded => {
                    if self
                        .start_if_stopped(name, &url, &what, &r.body, deadline)
                        .await?
                    {
                        continue;
                    }
                    let body = self.update_body(name, &existing, &r.body)?;
                    let drift = spec::drift(&body, &r.body);
                    if drift.is_empty() {
                        return Ok(Ensured {
                            created: created || (attempted && existing == record),
                            record: existing,
                            resource_id: Some(self.resource_id(name)),
                            portal_url: self.portal_url(name),
                            serves_traffic: true,
                            oidc_issuer: oidc_issuer(&r.body),
                        });
                    }
                    let fixed = spec::immutable_drift(&drift);
                    if !fixed.is_empty() {
                        return Err(immutable_drift(&what, &fixed));
                    }
                    tracing::info!("updating {what}: {}", drift.join(", "));
                    self.update_cluster(&url, &body, etag, "updating", &what, deadline)
                        .await?;
                }
            }
        }
        Err(not_converging(&op))
    }

    /// Creates the cluster with an `if-none-match` PUT and waits for the creation; true when
    /// this PUT created it. A 412 (made meanwhile, perhaps by our own PUT whose answer was lost)
    /// or a running operation leaves it to the next read.
    async fn create_cluster(
        &self,
        url: &Url,
        desired: &Value,
        what: &str,
        op: &str,
        deadline: Deadline,
    ) -> Result<bool, ProviderError> {
        let put = self
            .put_cluster(
                url,
                desired,
                ("if-none-match", "*".into()),
                &format!("creating {what}"),
            )
            .await?;
        match put.status.as_u16() {
            200 | 201 => {
                if let Err(e) = self
                    .arm
                    .wait(&put, url, false, &format!("creation of {what}"), deadline)
                    .await
                {
                    // A deletion may have cut the creation short (Canceled, or the
                    // operation gone with the cluster): that is no failure of ours.
                    if self.being_deleted(url, op).await {
                        return Err(ProviderError::DeletedMeanwhile(what.to_string()));
                    }
                    return Err(e.into());
                }
                Ok(true)
            }
            // Created between our GET and PUT (by someone else, or by our own PUT
            // whose answer was lost): read it again.
            412 => Ok(false),
            409 if put.is_operation_in_progress() => {
                self.arm.settle(url, what, deadline).await?;
                Ok(false)
            }
            _ => Err(put.into_error(&format!("creating {what}")).into()),
        }
    }

    /// PUTs `body` over the existing cluster, conditional on `etag` (any version without
    /// one), and waits for the update; `verb` names the operation (`updating`).
    async fn update_cluster(
        &self,
        url: &Url,
        body: &Value,
        etag: Option<String>,
        verb: &str,
        what: &str,
        deadline: Deadline,
    ) -> Result<(), ProviderError> {
        let cond = etag.map_or(("if-match", "*".to_string()), |e| ("if-match", e));
        let put = self
            .put_cluster(url, body, cond, &format!("{verb} {what}"))
            .await?;
        self.after_update(&put, url, what, deadline).await
    }

    /// Starts a stopped cluster and waits for it; false when it is not stopped.
    async fn start_if_stopped(
        &self,
        name: &str,
        url: &Url,
        what: &str,
        body: &Value,
        deadline: Deadline,
    ) -> Result<bool, ProviderError> {
        let power = body
            .pointer("/properties/powerState/code")
            .and_then(Value::as_str);
        if !power.is_some_and(|p| p.eq_ignore_ascii_case("Stopped")) {
            return Ok(false);
        }
        tracing::info!("{what} is stopped; starting it");
        let start_url = self.cluster_url(name, "/start")?;
        let s = self
            .arm
            .send(
                Method::POST,
                &start_url,
                None,
                &[],
                &format!("starting {what}"),
            )
            .await?;
        self.after_update(&s, url, what, deadline).await?;
        Ok(true)
    }

    /// Stops the cluster (ManagedClusters_Stop) and waits for the operation: a stopped cluster
    /// costs its disks only, and `ensure` starts it again. Already stopped is success.
    ///
    /// # Errors
    /// ARM's, and [`ProviderError::NotFound`] when the cluster does not exist.
    pub async fn stop(&self, name: &str) -> Result<(), ProviderError> {
        let url = self.cluster_url(name, "")?;
        let what = format!("cluster {name}");
        let r = self.arm.get(&url, &format!("reading {what}")).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Err(ProviderError::NotFound(name.to_string()));
        }
        let stopped = r
            .body
            .pointer("/properties/powerState/code")
            .and_then(Value::as_str)
            .is_some_and(|p| p.eq_ignore_ascii_case("Stopped"));
        if stopped {
            return Ok(());
        }
        tracing::info!("stopping {what}");
        let stop_url = self.cluster_url(name, "/stop")?;
        let s = self
            .arm
            .send(
                Method::POST,
                &stop_url,
                None,
                &[],
                &format!("stopping {what}"),
            )
            .await?;
        self.after_update(&s, &url, &what, self.deadline(false))
            .await
    }

    /// Whether the resource at `url` is gone or being deleted (read failures count as no).
    async fn being_deleted(&self, url: &Url, op: &str) -> bool {
        match self.arm.get(url, op).await {
            Ok(r) if r.status == StatusCode::NOT_FOUND => true,
            Ok(r) if r.status.is_success() => {
                provisioning_state(&r.body).is_some_and(|s| s.eq_ignore_ascii_case("Deleting"))
            }
            _ => false,
        }
    }

    /// Follows an update PUT (or start); a lost `If-Match` race or a running operation just
    /// sends the caller round to read the cluster again.
    async fn after_update(
        &self,
        r: &ArmResponse,
        url: &Url,
        what: &str,
        deadline: Deadline,
    ) -> Result<(), ProviderError> {
        match r.status.as_u16() {
            200..=202 => self
                .arm
                .wait(r, url, false, &format!("update of {what}"), deadline)
                .await
                .map_err(Into::into),
            412 => Ok(()),
            409 if r.is_operation_in_progress() => {
                self.arm.settle(url, what, deadline).await?;
                Ok(())
            }
            _ => Err(r.into_error(&format!("updating {what}")).into()),
        }
    }

    async fn kubeconfig_inner(&self, name: &str) -> Result<Kubeconfig, ProviderError> {
        let action = if self.cfg.entra_id {
            "listClusterUserCredential"
        } else {
            "listClusterAdminCredential"
        };
        let url = self.cluster_url(name, &format!("/{action}"))?;
        let op = format!("fetching the kubeconfig of cluster {name} ({action})");
        let r = self.arm.send(Method::POST, &url, None, &[], &op).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Err(ProviderError::NotFound(name.to_string()));
        }
        if !r.status.is_success() {
            return Err(r.into_error(&op).into());
        }
        decode_kubeconfig(&r.body).map_err(|m| {
            AzureError::Api {
                operation: op,
                status: r.status.as_u16(),
                code: "InvalidCredentialResult".into(),
                message: m,
            }
            .into()
        })
    }

    async fn list_inner(&self) -> Result<Vec<Record>, ProviderError> {
        let api = spec::MANAGED_CLUSTERS_API_VERSION;
        let path = match self.cfg.resource_group.strategy {
            ResourceGroupStrategy::PerEnvironment => format!(
                "/subscriptions/{}/providers/Microsoft.ContainerService/managedClusters?api-version={api}",
                self.subscription
            ),
            ResourceGroupStrategy::Shared => format!(
                "{}/providers/Microsoft.ContainerService/managedClusters?api-version={api}",
                spec::resource_group_id(&self.subscription, &self.resource_group(""))
            ),
        };
        let items = self
            .arm
            .list_all(self.arm.url(&path)?, "listing managed clusters")
            .await?;
        let mut out = std::collections::BTreeMap::new();
        for item in &items {
            let Some(record) = self.listed_record(item, "cluster") else {
                continue;
            };
            // Only what this configuration would delete: the cluster sits in the group our
            // naming gives it.
            let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
            if id.eq_ignore_ascii_case(&self.resource_id(&record.name)) {
                out.insert(record.name.clone(), record);
            }
        }
        if self.cfg.resource_group.strategy == ResourceGroupStrategy::PerEnvironment {
            // Groups left behind by an interrupted delete still cost and still need deleting.
            let path = format!(
                "/subscriptions/{}/resourcegroups?api-version={}&%24filter=tagName%20eq%20%27{}%27%20and%20tagValue%20eq%20%27{}%27",
                self.subscription,
                spec::RESOURCE_GROUPS_API_VERSION,
                keys::MANAGED_BY,
                crate::MANAGER
            );
            let groups = self
                .arm
                .list_all(self.arm.url(&path)?, "listing resource groups")
                .await?;
            for g in &groups {
                let Some(record) = self.listed_record(g, "resource group") else {
                    continue;
                };
                let gname = g.get("name").and_then(Value::as_str).unwrap_or_default();
                if gname.eq_ignore_ascii_case(&self.resource_group(&record.name)) {
                    out.entry(record.name.clone()).or_insert(record);
                }
            }
        }
        Ok(out.into_values().collect())
    }

    fn listed_record(&self, item: &Value, kind: &str) -> Option<Record> {
        match Record::from_pairs(&tag_pairs(item)) {
            Ok(r) if r.provider == "aks" => Some(r),
            Ok(_) | Err(RecordError::NotOurs) => None,
            Err(e) => {
                let id = item.get("id").and_then(Value::as_str).unwrap_or("?");
                tracing::warn!("{kind} {id} has a damaged ephemera record ({e}); not listing it");
                None
            }
        }
    }

    /// The record in the cluster's tags replaced by `new` while it is `expected`, under
    /// `If-Match` on the ETag it was read with. A write in between (a lease, a claim) makes ARM
    /// answer 412, and the record is read again; a record that changed is not swapped.
    async fn swap_record_inner(
        &self,
        expected: &Record,
        new: &Record,
    ) -> Result<bool, ProviderError> {
        let name = new.name.as_str();
        let url = self.cluster_url(name, "")?;
        let what = format!("cluster {name}");
        for _ in 0..ROUNDS {
            let r = self.arm.get(&url, &format!("reading {what}")).await?;
            if r.status == StatusCode::NOT_FOUND {
                return Ok(false);
            }
            if !r.status.is_success() {
                return Err(r.into_error(&format!("reading {what}")).into());
            }
            if Record::from_pairs(&tag_pairs(&r.body)).ok().as_ref() != Some(expected) {
                return Ok(false);
            }
            let tags = merged_tags(&r.body, new);
            match self
                .update_tags_if_match(name, &tags, r.etag().as_deref())
                .await
            {
                Ok(TagUpdate::Updated { .. }) => return Ok(true),
                Ok(TagUpdate::Conflict) => continue,
                // An operation runs on the cluster (a stop, a start, a delete): not claimable now.
                Err(ProviderError::Azure(AzureError::Api { status: 409, .. })) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    async fn update_record_inner(&self, record: &Record) -> Result<(), ProviderError> {
        let name = record.name.as_str();
        let url = self.cluster_url(name, "")?;
        let what = format!("cluster {name}");
        for _ in 0..ROUNDS {
            let r = self.arm.get(&url, &format!("reading {what}")).await?;
            if r.status == StatusCode::NOT_FOUND {
                return Err(ProviderError::NotFound(name.to_string()));
            }
            if !r.status.is_success() {
                return Err(r.into_error(&format!("reading {what}")).into());
            }
            Self::owned(&r.body, name, &what)?;
            let tags = merged_tags(&r.body, record);
            match self
                .update_tags_if_match(name, &tags, r.etag().as_deref())
                .await?
            {
                TagUpdate::Updated { .. } => {
                    if self.cfg.resource_group.strategy == ResourceGroupStrategy::PerEnvironment {
                        self.update_group_tags(record).await?;
                    }
                    return Ok(());
                }
                TagUpdate::Conflict => continue,
            }
        }
        Err(not_converging(&format!("updating the record of {what}")))
    }

    async fn update_group_tags(&self, record: &Record) -> Result<(), ProviderError> {
        let rg = self.resource_group(&record.name);
        let url = self.rg_url(&rg)?;
        let op = format!("updating the tags of resource group {rg}");
        let r = self.arm.get(&url, &op).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        if !r.status.is_success() {
            return Err(r.into_error(&op).into());
        }
        if let Err(e) = Self::owned(&r.body, &record.name, &format!("resource group {rg}")) {
            tracing::warn!("{e}; its tags are left as they are");
            return Ok(());
        }
        let body = json!({ "tags": merged_tags(&r.body, record) });
        let p = self
            .arm
            .send(
                Method::PATCH,
                &url,
                Some(&body),
                &[("content-type", "application/json".into())],
                &op,
            )
            .await?;
        if p.status.is_success() {
            Ok(())
        } else {
            Err(p.into_error(&op).into())
        }
    }
}

/// The resource's tags as string pairs (non-string values are skipped).
pub(crate) fn tag_pairs(body: &Value) -> std::collections::BTreeMap<String, String> {
    body.get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Existing tags with every ephemera tag replaced by `record`'s.
/// The lease tag of the lifecycle engine, kept whenever the record's tags are rewritten.
const LEASE_TAG: &str = "ephemera-lease";

fn merged_tags(body: &Value, record: &Record) -> std::collections::BTreeMap<String, String> {
    let mut tags = tag_pairs(body);
    // The record's own tags are replaced; a live run's lease is not part of the record.
    tags.retain(|k, _| !k.starts_with("ephemera-") || k == LEASE_TAG);
    tags.extend(record.to_pairs());
    tags
}

/// The first kubeconfig of a CredentialResults body, base64-decoded and parsed.
pub(crate) fn decode_kubeconfig(body: &Value) -> Result<Kubeconfig, String> {
    use base64::Engine as _;
    let value = body
        .pointer("/kubeconfigs/0/value")
        .and_then(Value::as_str)
        .ok_or("the answer has no kubeconfigs[0].value")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| "kubeconfigs[0].value is not base64".to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "the kubeconfig is not UTF-8".to_string())?;
    Kubeconfig::from_yaml(&text).map_err(|e| e.to_string())
}

fn not_converging(op: &str) -> ProviderError {
    AzureError::Api {
        operation: op.to_string(),
        status: 0,
        code: "NotConverging".into(),
        message: format!("the resource kept changing over {ROUNDS} reads; run again"),
    }
    .into()
}

impl Provider for Aks {
    fn kind(&self) -> &'static str {
        "aks"
    }

    async fn ensure(&self, req: &ClusterRequest) -> Result<Ensured, ProviderError> {
        self.arm.new_pass().await;
        self.ensure_inner(req).await
    }

    async fn kubeconfig(&self, name: &str) -> Result<Kubeconfig, ProviderError> {
        self.arm.new_pass().await;
        self.kubeconfig_inner(name).await
    }

    async fn delete(&self, name: &str) -> Result<Deleted, ProviderError> {
        self.arm.new_pass().await;
        let deadline = self.deadline(false);
        let cluster = self.delete_cluster(name, deadline).await?;
        let group = self.delete_resource_group(name, deadline).await?;
        Ok(if cluster || group {
            Deleted::Deleted
        } else {
            Deleted::AlreadyGone
        })
    }

    async fn list(&self) -> Result<Vec<Record>, ProviderError> {
        self.arm.new_pass().await;
        self.list_inner().await
    }

    async fn update_record(&self, record: &Record) -> Result<(), ProviderError> {
        self.arm.new_pass().await;
        self.update_record_inner(record).await
    }

    async fn hibernate(&self, name: &str) -> Result<(), ProviderError> {
        self.arm.new_pass().await;
        self.stop(name).await
    }

    async fn swap_record(&self, expected: &Record, new: &Record) -> Result<bool, ProviderError> {
        self.arm.new_pass().await;
        if !self.swap_record_inner(expected, new).await? {
            return Ok(false);
        }
        if self.cfg.resource_group.strategy == ResourceGroupStrategy::PerEnvironment {
            self.update_group_tags(new).await?;
        }
        Ok(true)
    }

    /// The cluster's ARM tag: readable before the cluster answers, and gone with the cluster.
    async fn lease_store<'a>(
        &'a self,
        name: &str,
        _client: Option<&kube::Client>,
    ) -> Result<AnyLeaseStore<'a>, ProviderError> {
        Ok(AnyLeaseStore::Arm(lease::ArmLease::new(self, name)?))
    }

    fn cluster_resource_id(&self, name: &str) -> Option<String> {
        Some(self.resource_id(name))
    }
}

/// A cluster left Failed or Canceled after one repair, with AKS's own error.
fn provisioning_failed(body: &Value, what: &str, state: String) -> ProviderError {
    let e = body.pointer("/properties/status/provisioningError");
    let field = |k: &str| {
        e.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("Unknown")
            .to_string()
    };
    AzureError::OperationFailed {
        operation: format!("reconciling {what}"),
        status: state,
        code: field("code"),
        message: field("message"),
    }
    .into()
}

/// The cluster's OIDC issuer URL, when it has one.
fn oidc_issuer(body: &Value) -> Option<String> {
    body.pointer("/properties/oidcIssuerProfile/issuerURL")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
}

/// The cluster differs in fields AKS cannot change in place.
fn immutable_drift(what: &str, fixed: &[&String]) -> ProviderError {
    ProviderError::Config(format!(
        "{what} differs from the environment file in fields AKS cannot change ({}); delete the \
         environment to recreate it",
        fixed
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_credential_examples_decode_to_kubeconfigs_or_say_why() {
        for name in [
            "ManagedClustersListClusterAdminCredentials.json",
            "ManagedClustersListClusterUserCredentials.json",
        ] {
            let ex = crate::azure::swagger::example(name).unwrap();
            let body = &ex["responses"]["200"]["body"];
            // The examples carry a placeholder value, not a real kubeconfig.
            let err = decode_kubeconfig(body).unwrap_err();
            assert!(!err.is_empty());
        }
        use base64::Engine as _;
        let yaml = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://x:443\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\ncurrent-context: c\n";
        let body = json!({"kubeconfigs": [{"name": "clusterAdmin", "value": base64::engine::general_purpose::STANDARD.encode(yaml)}]});
        assert_eq!(
            decode_kubeconfig(&body).unwrap().server().as_deref(),
            Some("https://x:443")
        );
        assert!(decode_kubeconfig(&json!({"kubeconfigs": []})).is_err());
    }

    #[test]
    fn merged_tags_replace_the_record_and_keep_the_rest() {
        let body = json!({"tags": {"team": "cats", "ephemera-url": "https://old", "ephemera-pr": "1", "ephemera-lease": "up;run;x;y;60"}});
        let record = Record {
            name: "pr-2".into(),
            provider: "aks".into(),
            repository: None,
            pr: None,
            created_at: "2026-11-28T10:00:00Z".parse().unwrap(),
            expires_at: "2026-11-29T10:00:00Z".parse().unwrap(),
            created_by: None,
            version: "0.1.0".into(),
            url: None,
            env_file: None,
            pool: None,
        };
        let t = merged_tags(&body, &record);
        assert_eq!(t.get("team").map(String::as_str), Some("cats"));
        assert!(!t.contains_key("ephemera-url") && !t.contains_key("ephemera-pr"));
        assert_eq!(
            t.get("ephemera-lease").map(String::as_str),
            Some("up;run;x;y;60"),
            "a live lease survives"
        );
        assert_eq!(Record::from_pairs(&t).unwrap(), record);
    }
}
