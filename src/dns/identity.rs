//! The federated credential that lets cert-manager on an AKS preview sign in as the DNS-01
//! managed identity (`provider.aks.dns.identity`), over ARM (Microsoft.ManagedIdentity,
//! api-version [`IDENTITY_API_VERSION`]).
//!
//! Workload identity trusts a token only from an issuer the identity has a federated credential
//! for, and every AKS cluster has an OIDC issuer URL of its own. So each preview gets one
//! credential on the identity: issuer = its cluster's issuer URL, subject = cert-manager's
//! ServiceAccount. `up` ensures it once the cluster exists; `down` and `gc` delete it before the
//! cluster. The credential's name is derived from the cluster's resource id, so two repositories
//! sharing one identity never touch each other's credentials.
//!
//! A managed identity holds at most 20 federated credentials, which caps the number of AKS
//! previews that use DNS-01 at once with one identity; ARM's refusal is reported as it is.

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use sha2::Digest;

use super::DnsError;
use crate::azure::AzureError;
use crate::azure::Timing;
use crate::azure::arm::ArmClient;
use crate::azure::cloud::CloudEndpoints;
pub use crate::config::aks::check_identity_id;
use crate::config::{AksConfig, Environment, ProviderConfig};
use crate::probe::Probe;

/// The Microsoft.ManagedIdentity API version for federated identity credentials.
pub const IDENTITY_API_VERSION: &str = "2023-01-31";
/// The audience workload identity tokens are issued for.
pub const AUDIENCE: &str = "api://AzureADTokenExchange";
/// cert-manager's ServiceAccount, as the add-on installs it.
pub const CERT_MANAGER_SUBJECT: &str = "system:serviceaccount:cert-manager:cert-manager";
/// How often a write refused because another write to the same identity runs is tried.
const CONCURRENT_WRITE_TRIES: usize = 10;
/// The first pause before such a write is tried again (at most the ARM client's `retry_max`).
const CONCURRENT_WRITE_PAUSE: Duration = Duration::from_millis(500);

/// Why one try of a write ended without a result.
enum WriteTry {
    /// ARM refused it because another write to the identity runs (409): try again.
    Busy,
    /// Any other failure: final.
    Failed(DnsError),
}

/// The DNS-01 identity of an environment file, and the ARM client to reach it.
pub struct FederatedCredentials {
    arm: ArmClient,
    /// `/subscriptions/…/userAssignedIdentities/<name>`, as configured.
    identity: String,
    subject: String,
}

impl std::fmt::Debug for FederatedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederatedCredentials")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The OIDC issuer URL the provider reported for the cluster with resource id `cluster_id`
/// ([`crate::providers::Ensured::oidc_issuer`]).
///
/// # Errors
/// [`DnsError::Config`] when it reported none: cert-manager could not sign in.
pub fn issuer(cluster_id: &str, reported: Option<&str>) -> Result<String, DnsError> {
    reported
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            DnsError::Config(format!(
                "{cluster_id} reports no OIDC issuer URL, so cert-manager cannot sign in as provider.aks.dns.identity; \
                 its oidcIssuerProfile is enabled by up's cluster step, so run up again once AKS shows the issuer"
            ))
        })
}

/// The federated credential's name for the cluster with resource id `cluster_id`: the
/// environment's name and a digest of the id, within ARM's pattern (3 to 120 of `[A-Za-z0-9-_]`).
pub fn credential_name(env_name: &str, cluster_id: &str) -> String {
    let digest = sha2::Sha256::digest(cluster_id.to_ascii_lowercase().as_bytes());
    let short: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!("ephemera-{env_name}-{short}")
}

impl FederatedCredentials {
    /// The DNS-01 identity of an AKS environment file with `provider.aks.dns.identity`; `None`
    /// otherwise.
    ///
    /// # Errors
    /// [`DnsError::Config`] for an unusable identity id; [`DnsError::Arm`] for an unusable cloud or
    /// credential selection.
    pub fn from_env(
        env: &Environment,
        probe: Arc<dyn Probe + Send + Sync>,
    ) -> Result<Option<FederatedCredentials>, DnsError> {
        match &env.provider {
            ProviderConfig::Aks(aks) => FederatedCredentials::new(aks, probe),
            _ => Ok(None),
        }
    }

    /// The DNS-01 identity of `aks.dns.identity`; `None` without one.
    ///
    /// # Errors
    /// As [`FederatedCredentials::from_env`].
    pub fn new(
        aks: &AksConfig,
        probe: Arc<dyn Probe + Send + Sync>,
    ) -> Result<Option<FederatedCredentials>, DnsError> {
        let Some(identity) = aks.dns.as_ref().and_then(|d| d.identity.as_deref()) else {
            return Ok(None);
        };
        check_identity_id(identity).map_err(DnsError::Config)?;
        let cloud = CloudEndpoints::resolve(&aks.cloud, probe.as_ref())?;
        let arm = crate::azure::arm_client(&cloud, probe)?;
        Ok(Some(FederatedCredentials {
            arm,
            identity: identity.trim_end_matches('/').to_string(),
            subject: CERT_MANAGER_SUBJECT.to_string(),
        }))
    }

    /// Replaces the timing knobs (tests shrink them).
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.arm.timing = timing;
        self
    }

    fn url(&self, name: &str) -> Result<Url, AzureError> {
        self.arm.url(&format!(
            "{}/federatedIdentityCredentials/{name}?api-version={IDENTITY_API_VERSION}",
            self.identity
        ))
    }

    /// Makes sure the credential for environment `env_name` (cluster `cluster_id`) trusts
    /// `issuer` for cert-manager. No write when it already does. Returns whether it wrote.
    ///
    /// # Errors
    /// ARM's refusal, e.g. the identity's limit of 20 federated credentials.
    pub async fn ensure(
        &self,
        env_name: &str,
        cluster_id: &str,
        issuer: &str,
    ) -> Result<bool, DnsError> {
        let name = credential_name(env_name, cluster_id);
        let url = self.url(&name)?;
        let what = format!("federated credential {name} of {}", self.identity);
        let op = format!("ensuring {what}");
        let r = self.arm.get(&url, &op).await?;
        if r.status.is_success() {
            let p = &r.body["properties"];
            let same = p["issuer"].as_str() == Some(issuer)
                && p["subject"].as_str() == Some(self.subject.as_str())
                && p["audiences"] == json!([AUDIENCE]);
            if same {
                return Ok(false);
            }
        } else if r.status != StatusCode::NOT_FOUND {
            return Err(r.into_error(&op).into());
        }
        let body = json!({
            "properties": {
                "issuer": issuer,
                "subject": self.subject,
                "audiences": [AUDIENCE],
            }
        });
        self.write(Method::PUT, &url, Some(&body), &op).await?;
        tracing::info!("{what} trusts {issuer} for cert-manager");
        Ok(true)
    }

    /// Deletes the credential of environment `env_name` (cluster `cluster_id`). Gone is success.
    /// Returns whether it was there.
    ///
    /// # Errors
    /// ARM errors.
    pub async fn delete(&self, env_name: &str, cluster_id: &str) -> Result<bool, DnsError> {
        let name = credential_name(env_name, cluster_id);
        let url = self.url(&name)?;
        let op = format!("deleting federated credential {name} of {}", self.identity);
        let status = self.write(Method::DELETE, &url, None, &op).await?;
        Ok(status != StatusCode::NOT_FOUND && status != StatusCode::NO_CONTENT)
    }

    /// The names of the identity's federated credentials, every page.
    ///
    /// # Errors
    /// Any page's error: a partial listing is never returned as complete.
    pub async fn list(&self) -> Result<Vec<String>, DnsError> {
        let op = format!("listing the federated credentials of {}", self.identity);
        let mut url = self.arm.url(&format!(
            "{}/federatedIdentityCredentials?api-version={IDENTITY_API_VERSION}",
            self.identity
        ))?;
        let mut names = Vec::new();
        for _ in 0..1000 {
            let r = self.arm.get(&url, &op).await?;
            if !r.status.is_success() {
                return Err(r.into_error(&op).into());
            }
            names.extend(
                r.body["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str().map(str::to_string)),
            );
            match r.body["nextLink"].as_str().filter(|l| !l.is_empty()) {
                Some(next) => url = self.arm.trusted(next, &op)?,
                None => return Ok(names),
            }
        }
        Err(DnsError::Config(format!("{op}: more than 1000 pages")))
    }

    /// For `gc`: deletes the credentials this environment file made for environments that no
    /// longer exist (a cluster deleted behind ephemera's back, an interrupted `down`), since each
    /// counts against the identity's limit of 20. A credential is this file's when its name is
    /// exactly [`credential_name`] of its environment and `cluster_id(environment)`, the
    /// provider's resource id for that name; others (another repository's, made by hand) are
    /// never touched. Returns (name, outcome) per credential, `would-delete` with `dry_run`.
    ///
    /// # Errors
    /// A listing error, before anything is deleted.
    pub async fn gc_orphans(
        &self,
        live: &std::collections::BTreeSet<String>,
        cluster_id: impl Fn(&str) -> String,
        dry_run: bool,
    ) -> Result<Vec<(String, String)>, DnsError> {
        let mut out = Vec::new();
        for name in self.list().await? {
            let Some(env) = name
                .strip_prefix("ephemera-")
                .and_then(|rest| rest.rsplit_once('-'))
                .map(|(env, _)| env.to_string())
            else {
                continue;
            };
            if live.contains(&env) || credential_name(&env, &cluster_id(&env)) != name {
                continue;
            }
            let outcome = if dry_run {
                "would-delete".to_string()
            } else {
                match self.delete(&env, &cluster_id(&env)).await {
                    Ok(_) => "deleted".to_string(),
                    Err(e) => format!("failed: {e}"),
                }
            };
            out.push((name, outcome));
        }
        Ok(out)
    }

    /// Sends a write. ARM refuses concurrent writes of federated credentials under one identity
    /// (409); those are tried again with [`crate::http::backoff`] (jittered, so runs that collided
    /// do not collide again), since previews start and end concurrently.
    async fn write(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        op: &str,
    ) -> Result<StatusCode, DnsError> {
        let max = self.arm.timing.retry_max;
        let backoff = crate::http::backoff(
            CONCURRENT_WRITE_PAUSE.min(max),
            max,
            CONCURRENT_WRITE_TRIES - 1,
        );
        let once = || async {
            let r = self
                .arm
                .send(method.clone(), url, body, &[], op)
                .await
                .map_err(|e| WriteTry::Failed(e.into()))?;
            match r.status.as_u16() {
                200 | 201 | 204 => Ok(r.status),
                404 if method == Method::DELETE => Ok(r.status),
                409 => Err(WriteTry::Busy),
                _ => Err(WriteTry::Failed(r.into_error(op).into())),
            }
        };
        let result = once
            .retry(backoff)
            .when(|e| matches!(e, WriteTry::Busy))
            .notify(|_, _| {
                tracing::debug!("{op}: another write to the identity runs; trying again");
            })
            .await;
        match result {
            Ok(status) => Ok(status),
            Err(WriteTry::Failed(e)) => Err(e),
            Err(WriteTry::Busy) => Err(DnsError::Arm(AzureError::Api {
                operation: op.to_string(),
                status: 409,
                code: "ConcurrentWrites".into(),
                message: format!(
                    "other writes to the identity kept running through {CONCURRENT_WRITE_TRIES} tries"
                ),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_ids_are_checked() {
        let good = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-dns/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cert-manager-dns";
        assert_eq!(check_identity_id(good), Ok(()));
        for bad in [
            "cert-manager-dns",
            "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/dnszones/z",
            "/subscriptions//resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/n",
            "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/n/extra",
            "/subscriptions/x/resourceGroups/r g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/n",
        ] {
            let e = check_identity_id(bad).unwrap_err();
            assert!(e.starts_with("provider.aks.dns.identity: "), "{e}");
        }
    }

    #[test]
    fn credential_names_differ_per_cluster_and_fit_arms_pattern() {
        let id = |rg: &str| {
            format!(
                "/subscriptions/a/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/pr-12"
            )
        };
        let a = credential_name("pr-12", &id("rg-1"));
        assert_ne!(
            a,
            credential_name("pr-12", &id("rg-2")),
            "two repositories' pr-12 never share a credential"
        );
        assert_eq!(a, credential_name("pr-12", &id("rg-1")), "stable");
        assert_eq!(
            a,
            credential_name("pr-12", &id("RG-1")),
            "ARM ids are case-insensitive"
        );
        assert_eq!(a.len(), "ephemera-pr-12-".len() + 10);
        let n = credential_name(&"a".repeat(40), "id");
        assert!((3..=120).contains(&n.len()));
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
