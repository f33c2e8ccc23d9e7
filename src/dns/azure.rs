//! Preview hosts in an Azure DNS zone, over ARM's REST API, api-version [`DNS_API_VERSION`]
//! (`Microsoft.Network/dnsZones`, the RecordSets operations):
//!
//! - `GET|PUT|DELETE .../dnsZones/{zone}/{A|CNAME}/{relativeRecordSetName}`: the body is a
//!   RecordSet, `{etag, properties: {metadata, TTL, ARecords: [{ipv4Address}], CNAMERecord:
//!   {cname}, fqdn, provisioningState}}`. PUT answers 201 (created) or 200 (updated), honours
//!   `If-None-Match: *` (create only) and `If-Match: <etag>` (update only if unchanged), and
//!   answers 412 when the condition fails. DELETE answers 200 (deleted) or 204 (there was none),
//!   and honours `If-Match` the same way.
//! - `GET .../dnsZones/{zone}/{A|CNAME}?$top=`: the record sets of one type, paged with
//!   `nextLink`.
//!
//! Ownership lives on the record, in its `metadata`: `ephemera-managed-by: ephemera`,
//! `ephemera-environment: <name>`, `ephemera-created-at`, and `ephemera-env-file: <profile>`
//! (so `gc` of one environment file never judges records of another sharing the zone). A record
//! without that metadata, or carrying another environment's, is never overwritten or deleted.
//!
//! Requests go through the AKS provider's [`ArmClient`]: retries with backoff on 429, 5xx and
//! connection errors, `Retry-After`, paging restricted to the ARM endpoint, and credentials read
//! again at the start of every call.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::DnsError;
use super::address::LbAddress;
use super::host::{fqdn, record_name};
use crate::azure::AzureError;
use crate::azure::Timing;
use crate::azure::arm::{ArmClient, ArmResponse};
use crate::azure::cloud::CloudEndpoints;
use crate::config::{AksConfig, Environment, ProviderConfig};
use crate::probe::Probe;
use crate::record::keys;

/// The DNS api-version: the stable `Microsoft.Network` DNS contract (dns.json of
/// azure-rest-api-specs, `stable/2018-05-01`).
pub const DNS_API_VERSION: &str = "2018-05-01";

/// How many times an ensure or delete re-reads a record that keeps changing under it.
const ROUNDS: usize = 8;

/// Record sets per list page asked for (ARM's default and maximum is 100).
const PAGE: u32 = 100;

/// The record types ephemera writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RecordKind {
    /// An IPv4 address: `properties.ARecords[].ipv4Address`.
    A,
    /// A host name: `properties.CNAMERecord.cname`.
    #[serde(rename = "CNAME")]
    Cname,
}

impl RecordKind {
    /// The `{recordType}` path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::A => "A",
            RecordKind::Cname => "CNAME",
        }
    }

    fn other(self) -> RecordKind {
        match self {
            RecordKind::A => RecordKind::Cname,
            RecordKind::Cname => RecordKind::A,
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record set as the zone holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecord {
    pub kind: RecordKind,
    /// The name relative to the zone (`@` for the apex).
    pub name: String,
    /// The fully qualified name, without the trailing dot.
    pub fqdn: String,
    pub ttl: Option<u64>,
    /// The IPv4 addresses (A), or the one canonical name (CNAME).
    pub targets: Vec<String>,
    /// Keys as the zone returned them.
    pub metadata: BTreeMap<String, String>,
    #[serde(skip)]
    pub etag: Option<String>,
}

impl DnsRecord {
    /// A RecordSet body read back, `None` when it is not one.
    pub fn from_arm(kind: RecordKind, zone: &str, body: &Value) -> Option<DnsRecord> {
        let name = body.get("name").and_then(Value::as_str)?.to_string();
        let props = body.get("properties").unwrap_or(&Value::Null);
        let targets = match kind {
            RecordKind::A => props
                .get("ARecords")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.get("ipv4Address").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            RecordKind::Cname => props
                .pointer("/CNAMERecord/cname")
                .and_then(Value::as_str)
                .map(|c| vec![c.to_string()])
                .unwrap_or_default(),
        };
        let metadata = props
            .get("metadata")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Some(DnsRecord {
            kind,
            fqdn: props
                .get("fqdn")
                .and_then(Value::as_str)
                .map(|f| f.trim_end_matches('.').to_ascii_lowercase())
                .unwrap_or_else(|| fqdn(&name, zone)),
            name,
            ttl: props.get("TTL").and_then(Value::as_u64),
            targets,
            metadata,
            etag: body.get("etag").and_then(Value::as_str).map(str::to_string),
        })
    }

    /// A metadata value; keys compare without case, as Azure DNS treats them.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the record carries ephemera's ownership metadata.
    pub fn is_ours(&self) -> bool {
        self.meta(keys::MANAGED_BY) == Some(crate::MANAGER)
    }

    /// The environment the record belongs to, when it is ours.
    pub fn environment(&self) -> Option<&str> {
        self.is_ours()
            .then(|| self.meta(keys::ENVIRONMENT))
            .flatten()
    }

    /// The environment file (profile) that made it, when it is ours.
    pub fn profile(&self) -> Option<&str> {
        self.is_ours().then(|| self.meta(keys::ENV_FILE)).flatten()
    }

    /// Why environment `env_name` may not change this record, if it may not.
    fn not_ours_for(&self, env_name: &str) -> Option<String> {
        if !self.is_ours() {
            return Some(format!(
                "exists and is not managed by ephemera (no {}={} metadata)",
                keys::MANAGED_BY,
                crate::MANAGER
            ));
        }
        match self.environment() {
            Some(e) if e == env_name => None,
            Some(e) => Some(format!("belongs to ephemera environment {e}")),
            None => Some(format!(
                "carries ephemera's metadata without {}",
                keys::ENVIRONMENT
            )),
        }
    }
}

/// What an ensure did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordOutcome {
    Created,
    Updated,
    /// The record was already as wanted: no write.
    Unchanged,
}

/// The record after an ensure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EnsuredRecord {
    pub record: DnsRecord,
    pub outcome: RecordOutcome,
}

/// One record looked at by the orphan sweep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Swept {
    pub record: DnsRecord,
    /// `deleted`, `already-gone`, `would-delete`, `changed-since-listed` (left for the next
    /// run) or `failed: ...`.
    pub outcome: String,
}

/// The records of an environment file whose environment no longer exists: ours, made by
/// `profile` (when given: records of other profiles sharing the zone are not judged), and
/// naming an environment not in `live`. Records without our metadata are never orphans.
pub fn orphans<'a>(
    records: &'a [DnsRecord],
    live: &BTreeSet<String>,
    profile: Option<&str>,
) -> Vec<&'a DnsRecord> {
    records
        .iter()
        .filter(|r| match (r.environment(), profile) {
            (None, _) => false,
            (Some(env), Some(p)) => r.profile() == Some(p) && !live.contains(env),
            (Some(env), None) => !live.contains(env),
        })
        .collect()
}

/// The Azure DNS zone of one environment file.
pub struct AzureDns {
    arm: ArmClient,
    subscription: String,
    resource_group: String,
    zone: String,
    ttl: u32,
    profile: Option<String>,
}

impl std::fmt::Debug for AzureDns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureDns")
            .field("subscription", &self.subscription)
            .field("resource_group", &self.resource_group)
            .field("zone", &self.zone)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl AzureDns {
    /// The zone of an AKS environment file with `provider.aks.dns`; `None` for other providers
    /// and without a zone. The process environment (`AZURE_*`) gives the cloud endpoints and the
    /// credentials, as for the AKS provider.
    ///
    /// # Errors
    /// As [`AzureDns::new`].
    pub fn from_env(
        env: &Environment,
        probe: Arc<dyn Probe + Send + Sync>,
    ) -> Result<Option<AzureDns>, DnsError> {
        match &env.provider {
            ProviderConfig::Aks(aks) if aks.dns.is_some() => {
                AzureDns::new(aks, Some(&env.metadata.name), probe).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The zone of `aks.dns`, in `aks.dns.subscription`, else `AZURE_SUBSCRIPTION_ID`, else the
    /// cluster's `aks.subscription`. `profile` is the environment file's `metadata.name`,
    /// recorded on every record and used to scope the orphan sweep.
    ///
    /// # Errors
    /// [`DnsError::Config`] without `aks.dns` or for an unusable zone or subscription;
    /// [`DnsError::Arm`] for an unusable cloud or credential selection.
    pub fn new(
        aks: &AksConfig,
        profile: Option<&str>,
        probe: Arc<dyn Probe + Send + Sync>,
    ) -> Result<AzureDns, DnsError> {
        let Some(dns) = aks.dns.as_ref() else {
            return Err(DnsError::Config(
                "provider.aks.dns: no zone is configured".into(),
            ));
        };
        let zone = dns.zone.trim_end_matches('.').to_ascii_lowercase();
        if !(crate::names::is_dns_name(&zone) && zone.contains('.')) {
            return Err(DnsError::Config(format!(
                "provider.aks.dns.zone: {:?} is not a DNS zone name such as previews.acme.dev",
                dns.zone
            )));
        }
        if dns.resource_group.is_empty()
            || !dns
                .resource_group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c))
        {
            return Err(DnsError::Config(format!(
                "provider.aks.dns.resourceGroup: {:?} is not a resource group name",
                dns.resource_group
            )));
        }
        let (subscription, field) = match (
            dns.subscription.as_deref(),
            probe.var_nonempty(crate::azure::ENV_SUBSCRIPTION),
        ) {
            (Some(s), _) => (s.to_string(), "provider.aks.dns.subscription"),
            (None, Some(s)) => (s, crate::azure::ENV_SUBSCRIPTION),
            (None, None) => (aks.subscription.clone(), "provider.aks.subscription"),
        };
        let subscription = crate::azure::subscription_id(&subscription, field)?;
        let cloud = CloudEndpoints::resolve(&aks.cloud, probe.as_ref())?;
        let arm = crate::azure::arm_client(&cloud, probe)?;
        Ok(AzureDns {
            arm,
            subscription,
            resource_group: dns.resource_group.clone(),
            zone,
            ttl: dns.ttl,
            profile: profile.map(str::to_string),
        })
    }

    /// Replaces the timing knobs (tests shrink them).
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.arm.timing = timing;
        self
    }

    /// The zone, lower case, without a trailing dot.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The zone's subscription.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The zone's resource group.
    pub fn resource_group(&self) -> &str {
        &self.resource_group
    }

    /// The TTL records are written with, in seconds.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    fn zone_path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/dnsZones/{}",
            self.subscription, self.resource_group, self.zone
        )
    }

    fn record_url(&self, kind: RecordKind, name: &str) -> Result<Url, DnsError> {
        Ok(self.arm.url(&format!(
            "{}/{}/{name}?api-version={DNS_API_VERSION}",
            self.zone_path(),
            kind.as_str()
        ))?)
    }

    /// The record name of `host` in this zone.
    ///
    /// # Errors
    /// [`DnsError::Config`] when `host` is not a DNS name in the zone.
    pub fn record_name(&self, host: &str) -> Result<String, DnsError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if !crate::names::is_dns_name(&host) {
            return Err(DnsError::Config(format!(
                "routing.host: {host:?} is not a DNS name"
            )));
        }
        record_name(&host, &self.zone).map_err(|_| {
            DnsError::Config(format!(
                "routing.host: {host} is not in the Azure DNS zone {} (provider.aks.dns.zone)",
                self.zone
            ))
        })
    }

    fn what(&self, kind: RecordKind, name: &str) -> String {
        format!("DNS record {kind} {}", fqdn(name, &self.zone))
    }

    fn foreign(&self, r: &DnsRecord, why: String) -> DnsError {
        DnsError::Foreign {
            kind: r.kind,
            fqdn: r.fqdn.clone(),
            zone: self.zone.clone(),
            why,
        }
    }

    async fn read(&self, kind: RecordKind, name: &str) -> Result<Option<DnsRecord>, DnsError> {
        let url = self.record_url(kind, name)?;
        let op = format!("reading {}", self.what(kind, name));
        let r = self.arm.get(&url, &op).await?;
        match r.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => DnsRecord::from_arm(kind, &self.zone, &r.body)
                .map(Some)
                .ok_or_else(|| invalid(&op, &r, "the answer is not a record set")),
            _ => Err(r.into_error(&op).into()),
        }
    }

    /// Checks, before anything is created, that `host` can be this environment's: in the zone,
    /// and without an A or CNAME record that is not ours for `env_name`.
    ///
    /// # Errors
    /// [`DnsError::Config`] for a host outside the zone, [`DnsError::Foreign`] naming the
    /// record in the way, ARM errors.
    pub async fn check_host(&self, host: &str, env_name: &str) -> Result<(), DnsError> {
        self.arm.new_pass().await;
        let name = self.record_name(host)?;
        for kind in [RecordKind::A, RecordKind::Cname] {
            if let Some(r) = self.read(kind, &name).await?
                && let Some(why) = r.not_ours_for(env_name)
            {
                return Err(self.foreign(&r, why));
            }
        }
        Ok(())
    }

    /// Makes `host` point at `address` for environment `env_name`: an A record for an IPv4
    /// address, a CNAME for a host name, with our metadata and the configured TTL. A record of
    /// the other type that is ours is replaced; one that is not ours stops the ensure. A record
    /// that already matches is left alone (no write).
    ///
    /// # Errors
    /// [`DnsError::Foreign`] naming a record that is not ours for `env_name`;
    /// [`DnsError::Address`] for an IPv6 address (this zone client writes A and CNAME only);
    /// [`DnsError::Config`] for a host outside the zone; ARM errors.
    pub async fn ensure(
        &self,
        host: &str,
        address: &LbAddress,
        env_name: &str,
    ) -> Result<EnsuredRecord, DnsError> {
        let (kind, target) = record_target(address, env_name)?;
        self.arm.new_pass().await;
        let name = self.record_name(host)?;
        let what = self.what(kind, &name);
        let mut sent_create = false;
        for _ in 0..ROUNDS {
            // An A and a CNAME cannot share a name: ours of the other type goes first.
            if let Some(other) = self.read(kind.other(), &name).await? {
                if let Some(why) = other.not_ours_for(env_name) {
                    return Err(self.foreign(&other, why));
                }
                tracing::info!(
                    "replacing {} of {env_name} with {what}",
                    self.what(other.kind, &name)
                );
                self.delete_one(&other).await?;
                continue;
            }
            let current = self.read(kind, &name).await?;
            let url = self.record_url(kind, &name)?;
            let (condition, created_at, mut metadata) = match &current {
                None => (
                    ("if-none-match", "*".to_string()),
                    now_stamp(),
                    BTreeMap::new(),
                ),
                Some(r) => {
                    if let Some(why) = r.not_ours_for(env_name) {
                        return Err(self.foreign(r, why));
                    }
                    if self.matches(r, &target) {
                        return Ok(EnsuredRecord {
                            record: r.clone(),
                            outcome: if sent_create {
                                RecordOutcome::Created
                            } else {
                                RecordOutcome::Unchanged
                            },
                        });
                    }
                    let Some(etag) = r.etag.clone() else {
                        return Err(missing_etag(&what));
                    };
                    (
                        ("if-match", etag),
                        r.meta(keys::CREATED_AT)
                            .map_or_else(now_stamp, str::to_string),
                        r.metadata.clone(),
                    )
                }
            };
            // Keep what others added; ours is rewritten.
            metadata.retain(|k, _| !k.to_ascii_lowercase().starts_with("ephemera-"));
            metadata.extend(self.ownership(env_name, created_at));
            let body = record_body(kind, &target, self.ttl, &metadata);
            let creating = current.is_none();
            let op = format!("{} {what}", if creating { "creating" } else { "updating" });
            tracing::info!("{op} -> {target}");
            let r = self
                .arm
                .send(
                    Method::PUT,
                    &url,
                    Some(&body),
                    &[condition, ("content-type", "application/json".into())],
                    &op,
                )
                .await?;
            match r.status.as_u16() {
                200 | 201 => {
                    let record = DnsRecord::from_arm(kind, &self.zone, &r.body)
                        .ok_or_else(|| invalid(&op, &r, "the answer is not a record set"))?;
                    return Ok(EnsuredRecord {
                        record,
                        outcome: if creating || sent_create {
                            RecordOutcome::Created
                        } else {
                            RecordOutcome::Updated
                        },
                    });
                }
                // Someone created or changed it since it was read: read it again.
                412 => sent_create |= creating,
                // A CNAME appeared at the name meanwhile (or an A, for a CNAME).
                409 if creating => {}
                _ => return Err(r.into_error(&op).into()),
            }
        }
        Err(not_converging(&format!("ensuring {what}")))
    }

    /// [`AzureDns::ensure`] for an IPv4 address.
    ///
    /// # Errors
    /// As [`AzureDns::ensure`].
    pub async fn ensure_a(
        &self,
        host: &str,
        ip: Ipv4Addr,
        env_name: &str,
    ) -> Result<EnsuredRecord, DnsError> {
        self.ensure(host, &LbAddress::Ip(ip.into()), env_name).await
    }

    fn matches(&self, r: &DnsRecord, target: &str) -> bool {
        let targets: BTreeSet<String> = r
            .targets
            .iter()
            .map(|t| t.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        targets == BTreeSet::from([target.to_string()])
            && r.ttl == Some(u64::from(self.ttl))
            && r.meta(keys::CREATED_AT).is_some()
            && r.meta(keys::ENV_FILE) == self.profile.as_deref()
    }

    fn ownership(&self, env_name: &str, created_at: String) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([
            (keys::MANAGED_BY.to_string(), crate::MANAGER.to_string()),
            (keys::ENVIRONMENT.to_string(), env_name.to_string()),
            (keys::CREATED_AT.to_string(), created_at),
        ]);
        if let Some(p) = &self.profile {
            m.insert(keys::ENV_FILE.to_string(), p.clone());
        }
        m
    }

    /// Deletes `r` if it is unchanged since it was read. Returns whether this call deleted it
    /// (`false`: it was already gone, or changed meanwhile and was left for the caller to read
    /// again).
    async fn delete_one(&self, r: &DnsRecord) -> Result<Deletion, DnsError> {
        let url = self.record_url(r.kind, &r.name)?;
        let op = format!("deleting {}", self.what(r.kind, &r.name));
        let mut headers = Vec::new();
        if let Some(e) = &r.etag {
            headers.push(("if-match", e.clone()));
        }
        let resp = self
            .arm
            .send(Method::DELETE, &url, None, &headers, &op)
            .await?;
        match resp.status.as_u16() {
            200 | 202 => Ok(Deletion::Deleted),
            204 | 404 => Ok(Deletion::AlreadyGone),
            412 => Ok(Deletion::Changed),
            _ => Err(resp.into_error(&op).into()),
        }
    }

    /// Removes the records of `host` that belong to environment `env_name`, for `down`. Gone is
    /// success; a record that is not ours is left in place with a warning. Returns the records
    /// deleted.
    ///
    /// # Errors
    /// [`DnsError::Config`] for a host outside the zone; ARM errors.
    pub async fn delete(&self, host: &str, env_name: &str) -> Result<Vec<DnsRecord>, DnsError> {
        self.arm.new_pass().await;
        let name = self.record_name(host)?;
        let mut deleted = Vec::new();
        for kind in [RecordKind::A, RecordKind::Cname] {
            let mut converged = false;
            for _ in 0..ROUNDS {
                let Some(r) = self.read(kind, &name).await? else {
                    converged = true;
                    break;
                };
                if let Some(why) = r.not_ours_for(env_name) {
                    tracing::warn!("leaving DNS record {kind} {} in place: it {why}", r.fqdn);
                    converged = true;
                    break;
                }
                match self.delete_one(&r).await? {
                    Deletion::Deleted => {
                        tracing::info!("deleted DNS record {kind} {}", r.fqdn);
                        deleted.push(r);
                        converged = true;
                        break;
                    }
                    Deletion::AlreadyGone => {
                        converged = true;
                        break;
                    }
                    Deletion::Changed => {}
                }
            }
            if !converged {
                return Err(not_converging(&format!(
                    "deleting {}",
                    self.what(kind, &name)
                )));
            }
        }
        Ok(deleted)
    }

    /// Removes every record of environment `env_name` made by this environment file, found by
    /// their metadata, for `down` when the host is not known beforehand (a `routing.host` that
    /// embeds the load balancer's IP, which only the running cluster knows). Gone is success;
    /// records without our metadata, of other environments or of other environment files are
    /// never touched. Returns the records deleted.
    ///
    /// # Errors
    /// A listing error, before anything is deleted; ARM errors.
    pub async fn delete_environment(&self, env_name: &str) -> Result<Vec<DnsRecord>, DnsError> {
        self.arm.new_pass().await;
        let mut deleted = Vec::new();
        for _ in 0..ROUNDS {
            let records = self.list_inner().await?;
            let mut changed = false;
            for r in records.iter().filter(|r| {
                r.environment() == Some(env_name)
                    && self
                        .profile
                        .as_deref()
                        .is_none_or(|p| r.profile() == Some(p))
            }) {
                match self.delete_one(r).await? {
                    Deletion::Deleted => {
                        tracing::info!("deleted DNS record {} {}", r.kind, r.fqdn);
                        deleted.push(r.clone());
                    }
                    Deletion::AlreadyGone => {}
                    // Changed since listed: read it again on the next round.
                    Deletion::Changed => changed = true,
                }
            }
            if !changed {
                return Ok(deleted);
            }
        }
        Err(not_converging(&format!(
            "deleting the DNS records of {env_name} in zone {}",
            self.zone
        )))
    }

    /// Every A and CNAME record set in the zone, ours or not.
    ///
    /// # Errors
    /// Any page's error: a partial listing is never returned as complete.
    pub async fn list_records(&self) -> Result<Vec<DnsRecord>, DnsError> {
        self.arm.new_pass().await;
        self.list_inner().await
    }

    async fn list_inner(&self) -> Result<Vec<DnsRecord>, DnsError> {
        let mut out = Vec::new();
        for kind in [RecordKind::A, RecordKind::Cname] {
            let url = self.arm.url(&format!(
                "{}/{}?api-version={DNS_API_VERSION}&%24top={PAGE}",
                self.zone_path(),
                kind.as_str()
            ))?;
            let op = format!("listing the {kind} records of zone {}", self.zone);
            for item in self.arm.list_all(url, &op).await? {
                match DnsRecord::from_arm(kind, &self.zone, &item) {
                    Some(r) => out.push(r),
                    None => {
                        return Err(DnsError::Arm(AzureError::Api {
                            operation: op,
                            status: 200,
                            code: "InvalidListResponse".into(),
                            message: "an item of the list is not a record set".into(),
                        }));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The orphan sweep for `gc`: deletes this environment file's records whose environment is
    /// not in `live` (with `dry_run`, only reports them). A record changed since it was listed
    /// is left for the next run. Records without our metadata are never touched.
    ///
    /// `live` must come from a complete listing of the environments: pass every name the
    /// provider listed, not only those `gc` keeps.
    ///
    /// # Errors
    /// A listing error, before anything is deleted. Failed deletions do not stop the sweep;
    /// they are reported as `failed: ...` outcomes.
    pub async fn gc_orphans(
        &self,
        live: &BTreeSet<String>,
        dry_run: bool,
    ) -> Result<Vec<Swept>, DnsError> {
        self.arm.new_pass().await;
        let records = self.list_inner().await?;
        let mut out = Vec::new();
        for r in orphans(&records, live, self.profile.as_deref()) {
            let outcome = if dry_run {
                "would-delete".to_string()
            } else {
                match self.delete_one(r).await {
                    Ok(Deletion::Deleted) => {
                        tracing::info!(
                            "deleted DNS record {} {} of environment {}",
                            r.kind,
                            r.fqdn,
                            r.environment().unwrap_or("?")
                        );
                        "deleted".into()
                    }
                    Ok(Deletion::AlreadyGone) => "already-gone".into(),
                    Ok(Deletion::Changed) => "changed-since-listed".into(),
                    Err(e) => format!("failed: {}", crate::error::chain(&e)),
                }
            };
            out.push(Swept {
                record: r.clone(),
                outcome,
            });
        }
        Ok(out)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deletion {
    Deleted,
    AlreadyGone,
    Changed,
}

/// The RecordSet body ephemera PUTs.
fn record_body(
    kind: RecordKind,
    target: &str,
    ttl: u32,
    metadata: &BTreeMap<String, String>,
) -> Value {
    let mut props = Map::new();
    props.insert("TTL".into(), json!(ttl));
    props.insert("metadata".into(), json!(metadata));
    match kind {
        RecordKind::A => props.insert("ARecords".into(), json!([{ "ipv4Address": target }])),
        RecordKind::Cname => props.insert("CNAMERecord".into(), json!({ "cname": target })),
    };
    json!({ "properties": props })
}

fn now_stamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn invalid(op: &str, r: &ArmResponse, message: &str) -> DnsError {
    DnsError::Arm(AzureError::Api {
        operation: op.to_string(),
        status: r.status.as_u16(),
        code: "InvalidResponse".into(),
        message: message.into(),
    })
}

/// The record type and target for the load balancer's address: A for IPv4, CNAME for a
/// hostname.
///
/// # Errors
/// [`DnsError::Address`] for an IPv6 address.
fn record_target(address: &LbAddress, env_name: &str) -> Result<(RecordKind, String), DnsError> {
    match address {
        LbAddress::Ip(std::net::IpAddr::V4(ip)) => Ok((RecordKind::A, ip.to_string())),
        LbAddress::Hostname(h) => Ok((
            RecordKind::Cname,
            h.trim_end_matches('.').to_ascii_lowercase(),
        )),
        LbAddress::Ip(ip) => Err(DnsError::Address {
            object: format!("the load balancer of {env_name}"),
            message: format!(
                "has only the IPv6 address {ip}; preview hosts get A or CNAME records"
            ),
        }),
    }
}

/// A record set that came without the etag an update must carry.
fn missing_etag(what: &str) -> DnsError {
    DnsError::Arm(AzureError::Api {
        operation: format!("reading {what}"),
        status: 200,
        code: "MissingEtag".into(),
        message: "the record set has no etag to update it safely".into(),
    })
}

fn not_converging(op: &str) -> DnsError {
    DnsError::Arm(AzureError::Api {
        operation: op.to_string(),
        status: 0,
        code: "NotConverging".into(),
        message: format!("the record kept changing over {ROUNDS} reads; run again"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(env: Option<&str>, profile: Option<&str>) -> DnsRecord {
        let mut metadata = BTreeMap::new();
        if let Some(e) = env {
            metadata.insert("Ephemera-Managed-By".into(), "ephemera".into());
            metadata.insert("ephemera-environment".into(), e.into());
        }
        if let Some(p) = profile {
            metadata.insert("ephemera-env-file".into(), p.into());
        }
        DnsRecord {
            kind: RecordKind::A,
            name: env.unwrap_or("www").into(),
            fqdn: format!("{}.z.dev", env.unwrap_or("www")),
            ttl: Some(300),
            targets: vec!["10.0.0.1".into()],
            metadata,
            etag: None,
        }
    }

    #[test]
    fn orphans_are_ours_of_this_profile_and_not_live() {
        let records = vec![
            rec(Some("pr-1"), Some("pr-aks")),
            rec(Some("pr-2"), Some("pr-aks")),
            rec(Some("pr-3"), Some("adhoc-aks")),
            rec(None, None),
        ];
        let live = BTreeSet::from(["pr-2".to_string()]);
        let names = |v: Vec<&DnsRecord>| v.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(orphans(&records, &live, Some("pr-aks"))), ["pr-1"]);
        assert_eq!(
            names(orphans(&records, &live, None)),
            ["pr-1", "pr-3"],
            "without a profile every environment's records are judged"
        );
        assert!(
            orphans(&records, &BTreeSet::new(), Some("pr-aks"))
                .iter()
                .all(|r| r.is_ours())
        );
    }

    #[test]
    fn ownership_is_judged_per_environment() {
        assert_eq!(rec(Some("pr-1"), None).not_ours_for("pr-1"), None);
        assert!(
            rec(Some("pr-1"), None)
                .not_ours_for("pr-2")
                .unwrap()
                .contains("environment pr-1")
        );
        assert!(
            rec(None, None)
                .not_ours_for("pr-1")
                .unwrap()
                .contains("not managed by ephemera")
        );
    }

    #[test]
    fn bodies_follow_the_record_set_contract() {
        let m = BTreeMap::from([("ephemera-environment".to_string(), "pr-1".to_string())]);
        let a = record_body(RecordKind::A, "10.1.2.3", 300, &m);
        assert_eq!(a["properties"]["ARecords"][0]["ipv4Address"], "10.1.2.3");
        assert_eq!(a["properties"]["TTL"], 300);
        assert_eq!(a["properties"]["metadata"]["ephemera-environment"], "pr-1");
        let c = record_body(RecordKind::Cname, "lb.example.net", 60, &m);
        assert_eq!(c["properties"]["CNAMERecord"]["cname"], "lb.example.net");
        assert!(c["properties"].get("ARecords").is_none());
    }
}
