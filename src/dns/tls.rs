//! TLS for preview hosts, without Let's Encrypt rate-limit trouble.
//!
//! - Issuers (`tls.issuer`): `selfsigned` (kind, local: nothing leaves the machine),
//!   `letsencrypt-staging` (the default for PR environments: untrusted by browsers, generous
//!   limits), `letsencrypt` (opt-in: 50 certificates per registered domain per week, 5 per
//!   identical set of names). The cert-manager add-on renders them as the ClusterIssuer
//!   `ephemera`; HTTP-01 goes through the chosen ingress or Gateway, DNS-01 through Azure DNS
//!   with the cert-manager workload identity ([`dns01_values`]).
//! - The wildcard option (`tls.wildcard`): ONE Certificate `*.<zone>` per zone, in namespace
//!   [`CERTS_NAMESPACE`] and named after the zone ([`WildcardCertificate`]), copied into each
//!   environment as a Secret ([`copy_wildcard_secret`]) instead of a Certificate per
//!   environment. With a cluster per environment, [`seed_wildcard_secret`] hands a still-valid
//!   wildcard certificate from a live environment's cluster to a new one before its Certificate
//!   exists, so cert-manager adopts it instead of ordering a duplicate.
//! - Readiness: [`wait_certificate`] waits for `Ready`, fails as soon as cert-manager reports
//!   the issuance failed (`Issuing=False`, reason `Failed`: cert-manager then backs off for an
//!   hour or more), and [`certificate_failure_reason`] says why in cert-manager's words, from
//!   the Certificate, its latest CertificateRequest, and the ACME Order and Challenges.
//!
//! Secret data is copied, never logged, and never part of an error.

use std::collections::BTreeMap;
use std::time::Duration;

use ::kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use super::DnsError;
pub use crate::config::aks::dns01_client_id;
use crate::config::{Environment, Issuer, ProviderConfig};
use crate::kube::KubeError;
use crate::kube::manifest::{conditions, to_value};
use crate::kube::wait::{Condition, condition_true, wait_object};

/// The namespace holding the wildcard Certificates, one per zone.
pub const CERTS_NAMESPACE: &str = "ephemera-certs";
/// The `ephemera.dev/component` of the wildcard Certificate and of its copies.
pub const COMPONENT: &str = "wildcard-certificate";
/// On a copied Secret: the zone whose wildcard certificate it holds.
pub const WILDCARD_OF: &str = "ephemera.dev/wildcard-of";
/// On the wildcard Certificate: the `tls.issuer` it was issued by, so a staging certificate is
/// never handed to a production environment.
pub const ISSUER_ANNOTATION: &str = "ephemera.dev/issuer";
/// A seeded certificate must stay valid for at least this long before cert-manager renews it.
pub const SEED_MARGIN: Duration = Duration::from_secs(24 * 3600);

fn ar(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn certificates() -> ApiResource {
    ar("cert-manager.io", "Certificate", "certificates")
}

/// The wildcard certificate of one zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WildcardCertificate {
    /// The zone, lower case.
    pub zone: String,
    /// The Certificate's name in [`CERTS_NAMESPACE`]: the zone itself.
    pub name: String,
    /// The Secret cert-manager writes: `<zone>-tls`.
    pub secret: String,
}

impl WildcardCertificate {
    /// The wildcard certificate of `zone`.
    ///
    /// # Errors
    /// [`DnsError::Config`] when `zone` is not a DNS name that can also name the objects.
    pub fn for_zone(zone: &str) -> Result<Self, DnsError> {
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        let secret = format!("{zone}-tls");
        if !(crate::names::is_dns_name(&zone)
            && zone.contains('.')
            && crate::names::is_dns_name(&secret))
        {
            return Err(DnsError::Config(format!(
                "tls.wildcard: {zone:?} cannot name a wildcard certificate (a DNS zone of at most 249 characters)"
            )));
        }
        Ok(WildcardCertificate {
            name: zone.clone(),
            zone,
            secret,
        })
    }

    /// `*.<zone>`.
    pub fn dns_name(&self) -> String {
        format!("*.{}", self.zone)
    }

    /// The objects to apply: the namespace and the Certificate, from ClusterIssuer
    /// `issuer_name`, marked with `tls.issuer` `issuer`.
    pub fn objects(&self, issuer_name: &str, issuer: Issuer) -> Vec<Value> {
        let labels = json!({
            crate::labels::MANAGED_BY: crate::MANAGER,
            crate::labels::COMPONENT: COMPONENT,
        });
        vec![
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": CERTS_NAMESPACE, "labels": labels },
            }),
            json!({
                "apiVersion": "cert-manager.io/v1",
                "kind": "Certificate",
                "metadata": {
                    "name": self.name,
                    "namespace": CERTS_NAMESPACE,
                    "labels": labels,
                    "annotations": { ISSUER_ANNOTATION: issuer_label(issuer) },
                },
                "spec": {
                    "secretName": self.secret,
                    "dnsNames": [self.dns_name()],
                    "issuerRef": {
                        "group": "cert-manager.io",
                        "kind": "ClusterIssuer",
                        "name": issuer_name,
                    },
                },
            }),
        ]
    }
}

fn issuer_label(issuer: Issuer) -> &'static str {
    match issuer {
        Issuer::Selfsigned => "selfsigned",
        Issuer::LetsencryptStaging => "letsencrypt-staging",
        Issuer::Letsencrypt => "letsencrypt",
    }
}

/// Checks the TLS settings against the rest of the file, for `plan` (before anything exists).
/// Messages start with the field path, as `config::Source::locate` expects.
///
/// # Errors
/// `tls.wildcard` without a base domain to be the wildcard of, or with an ACME issuer but no
/// DNS-01 solver (Let's Encrypt issues wildcard certificates only through DNS-01).
pub fn check(env: &Environment) -> Result<(), String> {
    if !env.tls.wildcard || !env.addons.cert_manager.enabled {
        return Ok(());
    }
    let Some(domain) = env.base_domain() else {
        return Err(
            "tls.wildcard: needs a base domain to be the wildcard of (routing.baseDomain or provider.aks.dns.zone); \
             wildcard-DNS hosts get a certificate each"
                .into(),
        );
    };
    if env.tls.issuer != Issuer::Selfsigned && dns01_client_id(env).is_none() {
        return Err(format!(
            "tls.wildcard: Let's Encrypt issues *.{domain} only through DNS-01; set provider.aks.dns and \
             addons.certManager.values.azureDNS.clientID (the managed identity cert-manager uses), or use tls.issuer: selfsigned"
        ));
    }
    Ok(())
}

/// The DNS-01 solver settings for the ClusterIssuer (`tls.dns01` in the cert-manager add-on's
/// template data, rendered by `templates/addons/cert-manager/cluster-issuer.yaml.hbs`):
/// cert-manager's `azureDNS` fields for the zone of `provider.aks.dns`, authenticated as the
/// workload identity `addons.certManager.values.azureDNS.clientID`. `subscription` is the
/// zone's (see `AzureDns::subscription`). `None` without a zone or a client id: HTTP-01 only.
pub fn dns01_values(env: &Environment, subscription: &str) -> Option<Value> {
    let ProviderConfig::Aks(aks) = &env.provider else {
        return None;
    };
    let dns = aks.dns.as_ref()?;
    let client_id = dns01_client_id(env)?;
    let mut azure = json!({
        "subscriptionID": subscription,
        "resourceGroupName": dns.resource_group,
        "hostedZoneName": dns.zone.trim_end_matches('.').to_ascii_lowercase(),
        "managedIdentity": { "clientID": client_id },
    });
    let environment = match aks.cloud.name.to_ascii_lowercase().as_str() {
        "azurecloud" => Some("AzurePublicCloud"),
        "azurechinacloud" => Some("AzureChinaCloud"),
        "azureusgovernment" => Some("AzureUSGovernmentCloud"),
        _ => None,
    };
    if let Some(e) = environment {
        azure["environment"] = e.into();
    }
    Some(json!({ "azureDNS": azure }))
}

/// Applies [`CERTS_NAMESPACE`] and the zone's wildcard Certificate (server-side apply, field
/// manager `ephemera`). Applying it again for another environment changes nothing: there is one
/// Certificate per zone, not one per environment.
///
/// # Errors
/// [`DnsError::Config`] for a zone that cannot name it; apply errors (the cert-manager CRDs
/// missing is [`KubeError::UnknownKind`]).
pub async fn ensure_wildcard_certificate(
    client: &::kube::Client,
    zone: &str,
    issuer_name: &str,
    issuer: Issuer,
) -> Result<WildcardCertificate, DnsError> {
    let cert = WildcardCertificate::for_zone(zone)?;
    let mut objects = Vec::new();
    for v in cert.objects(issuer_name, issuer) {
        objects.push(
            crate::kube::manifest::from_value(v).map_err(|m| {
                DnsError::Config(format!("the wildcard certificate of {zone}: {m}"))
            })?,
        );
    }
    let opts = crate::kube::ApplyOptions {
        origin: format!("the wildcard certificate of {}", cert.zone),
        ..Default::default()
    };
    crate::kube::Applier::new(client.clone())
        .apply(objects, &opts)
        .await?;
    Ok(cert)
}

fn secret_data_ready(s: &Secret) -> bool {
    s.data.as_ref().is_some_and(|d| {
        ["tls.crt", "tls.key"]
            .iter()
            .all(|k| d.get(*k).is_some_and(|v| !v.0.is_empty()))
    })
}

fn is_ours(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(crate::labels::MANAGED_BY))
        .map(String::as_str)
        == Some(crate::MANAGER)
}

/// Copies the zone's wildcard certificate (the Secret of its Certificate in
/// [`CERTS_NAMESPACE`]) into `target_ns` as the `kubernetes.io/tls` Secret `secret_name`, which
/// the app's route references. The copy carries the ownership labels of environment
/// `env_name`, so deleting the environment deletes it. Copying again refreshes it after
/// cert-manager renewed the certificate; an unchanged copy is not rewritten.
///
/// # Errors
/// [`DnsError::Certificate`] while the wildcard Secret holds no certificate yet (wait for the
/// Certificate first); [`DnsError::Config`] when `target_ns/secret_name` exists and is not
/// ours; API errors.
pub async fn copy_wildcard_secret(
    client: &::kube::Client,
    zone: &str,
    target_ns: &str,
    secret_name: &str,
    env_name: &str,
) -> Result<(), DnsError> {
    let cert = WildcardCertificate::for_zone(zone)?;
    let source: Api<Secret> = Api::namespaced(client.clone(), CERTS_NAMESPACE);
    let what = format!("Secret {CERTS_NAMESPACE}/{}", cert.secret);
    let Some(secret) = source
        .get_opt(&cert.secret)
        .await
        .map_err(|e| DnsError::kube(format!("reading {what}"), e))?
        .filter(secret_data_ready)
    else {
        return Err(DnsError::Certificate {
            object: format!("{CERTS_NAMESPACE}/{}", cert.name),
            reason: format!(
                "{what} holds no certificate yet; wait for the Certificate to be Ready"
            ),
        });
    };
    let target: Api<Secret> = Api::namespaced(client.clone(), target_ns);
    let target_what = format!("Secret {target_ns}/{secret_name}");
    let existing = target
        .get_opt(secret_name)
        .await
        .map_err(|e| DnsError::kube(format!("reading {target_what}"), e))?;
    if let Some(e) = &existing {
        if !is_ours(&e.metadata) {
            return Err(DnsError::Config(format!(
                "{target_what} exists and is not managed by ephemera; refusing to replace it with the wildcard \
                 certificate of {}",
                cert.zone
            )));
        }
        if e.data == secret.data
            && e.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(WILDCARD_OF))
                == Some(&cert.zone)
        {
            return Ok(());
        }
    }
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name,
            "namespace": target_ns,
            "labels": {
                crate::labels::MANAGED_BY: crate::MANAGER,
                crate::labels::ENVIRONMENT: env_name,
                crate::labels::COMPONENT: COMPONENT,
            },
            "annotations": { WILDCARD_OF: cert.zone },
        },
        "type": "kubernetes.io/tls",
        "data": secret.data,
    });
    target
        .patch(
            secret_name,
            &PatchParams::apply(crate::MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| DnsError::kube(format!("writing {target_what}"), e))?;
    tracing::info!(
        "copied the wildcard certificate of {} into {target_what}",
        cert.zone
    );
    Ok(())
}

/// With a cluster per environment, hands the wildcard certificate of `zone` from `source` (a
/// live environment's cluster) to `target` before the target's Certificate exists: cert-manager
/// then finds a valid Secret with matching issuer annotations and names, and issues nothing.
/// Returns whether it seeded. Nothing is seeded when the target already has the Secret, when
/// the source's Certificate is not Ready, was issued by another `tls.issuer`, or is due for
/// renewal within [`SEED_MARGIN`].
///
/// # Errors
/// API errors on either cluster; a missing source Certificate or Secret is not an error.
pub async fn seed_wildcard_secret(
    source: &::kube::Client,
    target: &::kube::Client,
    zone: &str,
    issuer: Issuer,
) -> Result<bool, DnsError> {
    let cert = WildcardCertificate::for_zone(zone)?;
    let certs: Api<DynamicObject> =
        Api::namespaced_with(source.clone(), CERTS_NAMESPACE, &certificates());
    let what = format!("Certificate {CERTS_NAMESPACE}/{} of the source", cert.name);
    let Some(c) = certs
        .get_opt(&cert.name)
        .await
        .map_err(|e| DnsError::kube(format!("reading {what}"), e))?
    else {
        return Ok(false);
    };
    if !reusable(&to_value(&c), issuer) {
        return Ok(false);
    }
    let from: Api<Secret> = Api::namespaced(source.clone(), CERTS_NAMESPACE);
    let Some(secret) = from
        .get_opt(&cert.secret)
        .await
        .map_err(|e| DnsError::kube(format!("reading Secret {} of the source", cert.secret), e))?
        .filter(secret_data_ready)
    else {
        return Ok(false);
    };
    let to: Api<Secret> = Api::namespaced(target.clone(), CERTS_NAMESPACE);
    let target_what = format!("Secret {CERTS_NAMESPACE}/{}", cert.secret);
    if to
        .get_opt(&cert.secret)
        .await
        .map_err(|e| DnsError::kube(format!("reading {target_what}"), e))?
        .is_some()
    {
        return Ok(false);
    }
    ensure_certs_namespace(target).await?;
    // cert-manager's own annotations (issuer, names, certificate name) make it adopt the Secret.
    let annotations: BTreeMap<String, String> = secret
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with("cert-manager.io/"))
        .collect();
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": cert.secret,
            "namespace": CERTS_NAMESPACE,
            "labels": {
                crate::labels::MANAGED_BY: crate::MANAGER,
                crate::labels::COMPONENT: COMPONENT,
            },
            "annotations": annotations,
        },
        "type": "kubernetes.io/tls",
        "data": secret.data,
    });
    to.patch(
        &cert.secret,
        &PatchParams::apply(crate::MANAGER),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| DnsError::kube(format!("writing {target_what}"), e))?;
    tracing::info!(
        "seeded the wildcard certificate of {} from a live environment",
        cert.zone
    );
    Ok(true)
}

/// Whether the source's wildcard Certificate `c` can be copied: Ready, not due for renewal within
/// [`SEED_MARGIN`], and issued by the same issuer.
fn reusable(c: &Value, issuer: Issuer) -> bool {
    let renew_at = c
        .pointer("/status/renewalTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let margin = jiff::SignedDuration::try_from(SEED_MARGIN).unwrap_or_default();
    let fresh = renew_at.is_some_and(|t| {
        jiff::Timestamp::now()
            .checked_add(margin)
            .is_ok_and(|soon| t > soon)
    });
    let same_issuer = c
        .pointer(&format!(
            "/metadata/annotations/{}",
            ISSUER_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        == Some(issuer_label(issuer));
    condition_true("Ready").matches(Some(c)) && fresh && same_issuer
}

/// The namespace the wildcard Secret lives in, on the target cluster.
async fn ensure_certs_namespace(target: &::kube::Client) -> Result<(), DnsError> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(target.clone());
    let ns = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": CERTS_NAMESPACE, "labels": {
            crate::labels::MANAGED_BY: crate::MANAGER,
            crate::labels::COMPONENT: COMPONENT,
        }},
    });
    namespaces
        .patch(
            CERTS_NAMESPACE,
            &PatchParams::apply(crate::MANAGER),
            &Patch::Apply(&ns),
        )
        .await
        .map_err(|e| DnsError::kube(format!("creating namespace {CERTS_NAMESPACE}"), e))?;
    Ok(())
}

/// A Certificate is Ready; issuance that cert-manager reports failed fails the wait.
struct CertificateReady;

impl Condition for CertificateReady {
    fn matches(&self, obj: Option<&Value>) -> bool {
        condition_true("Ready").matches(obj)
    }

    fn failed(&self, obj: Option<&Value>) -> Option<String> {
        issuing_failed(obj?)
    }
}

/// cert-manager's account of a failed issuance: `Issuing=False` with reason `Failed`.
fn issuing_failed(cert: &Value) -> Option<String> {
    let (status, reason, message) = conditions(cert).remove("Issuing")?;
    let failed = status == "False" && reason == "Failed";
    let why = if message.is_empty() { reason } else { message };
    failed.then_some(why)
}

/// Waits for Certificate `namespace/name` to be Ready, for at most `timeout`.
///
/// # Errors
/// - [`DnsError::Certificate`] as soon as cert-manager reports the issuance failed, with
///   [`certificate_failure_reason`] (the ACME order's reason, e.g. a rate limit);
/// - [`KubeError::Timeout`] (exit 3) naming the Certificate, with its conditions and what its
///   CertificateRequest, Order and Challenges last said.
pub async fn wait_certificate(
    client: &::kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), DnsError> {
    let condition = CertificateReady;
    let object = format!("{namespace}/{name}");
    match wait_object(
        client,
        &certificates(),
        Some(namespace),
        name,
        &condition,
        timeout,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(KubeError::Failed { reason, .. }) => {
            let reason = certificate_failure_reason(client, namespace, name)
                .await
                .unwrap_or(reason);
            Err(DnsError::Certificate { object, reason })
        }
        Err(KubeError::Timeout {
            object,
            seconds,
            last_state,
        }) => {
            let last_state = match certificate_failure_reason(client, namespace, name).await {
                Some(why) => format!("{last_state}; {why}"),
                None => last_state,
            };
            Err(KubeError::Timeout {
                object,
                seconds,
                last_state,
            }
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Why Certificate `namespace/name` is not Ready, in cert-manager's words: its Ready and
/// Issuing conditions, then its latest CertificateRequest's conditions, the ACME Order's state
/// and reason, and every Challenge that is not valid. `None` when it is Ready. Best effort:
/// objects that cannot be read are left out.
pub async fn certificate_failure_reason(
    client: &::kube::Client,
    namespace: &str,
    name: &str,
) -> Option<String> {
    let list = |ar: ApiResource| {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        async move {
            api.list(&ListParams::default())
                .await
                .map(|l| l.items.iter().map(to_value).collect::<Vec<_>>())
                .unwrap_or_default()
        }
    };
    let certs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &certificates());
    let cert = match certs.get_opt(name).await {
        Ok(Some(c)) => to_value(&c),
        Ok(None) => return Some(format!("Certificate {namespace}/{name} does not exist")),
        Err(_) => return None,
    };
    let requests = list(ar(
        "cert-manager.io",
        "CertificateRequest",
        "certificaterequests",
    ))
    .await;
    let orders = list(ar("acme.cert-manager.io", "Order", "orders")).await;
    let challenges = list(ar("acme.cert-manager.io", "Challenge", "challenges")).await;
    describe_failure(&cert, &requests, &orders, &challenges)
}

/// [`certificate_failure_reason`] on objects already read (as JSON): pure, for tests.
pub fn describe_failure(
    cert: &Value,
    requests: &[Value],
    orders: &[Value],
    challenges: &[Value],
) -> Option<String> {
    if condition_true("Ready").matches(Some(cert)) {
        return None;
    }
    let name = str_at(cert, "/metadata/name").unwrap_or_default();
    let mut parts = Vec::new();
    let conds = conditions(cert);
    for kind in ["Ready", "Issuing"] {
        if let Some((status, reason, message)) = conds.get(kind) {
            parts.push(format!(
                "Certificate {kind}={status}{}",
                reason_text(reason, message)
            ));
        }
    }
    if conds.is_empty() {
        parts.push("Certificate has no conditions yet (is cert-manager running?)".into());
    }
    // The latest request: the highest revision among those made for this Certificate.
    let request = requests
        .iter()
        .filter(|r| {
            str_at(r, "/metadata/annotations/cert-manager.io~1certificate-name") == Some(name)
        })
        .max_by_key(|r| {
            str_at(
                r,
                "/metadata/annotations/cert-manager.io~1certificate-revision",
            )
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
        });
    if let Some(r) = request {
        let rname = str_at(r, "/metadata/name").unwrap_or_default();
        for (kind, (status, reason, message)) in conditions(r) {
            if kind == "Approved" && status == "True" {
                continue;
            }
            parts.push(format!(
                "CertificateRequest {rname} {kind}={status}{}",
                reason_text(&reason, &message)
            ));
        }
        let ruid = str_at(r, "/metadata/uid");
        for o in orders.iter().filter(|o| owned_by(o, ruid)) {
            let state = str_at(o, "/status/state").unwrap_or("pending");
            let reason = str_at(o, "/status/reason").unwrap_or_default();
            parts.push(format!(
                "Order {} is {state}{}",
                str_at(o, "/metadata/name").unwrap_or_default(),
                reason_text("", reason)
            ));
            let ouid = str_at(o, "/metadata/uid");
            for c in challenges.iter().filter(|c| owned_by(c, ouid)) {
                let state = str_at(c, "/status/state").unwrap_or("pending");
                if state == "valid" {
                    continue;
                }
                parts.push(format!(
                    "Challenge {} ({} for {}) is {state}{}",
                    str_at(c, "/metadata/name").unwrap_or_default(),
                    str_at(c, "/spec/type").unwrap_or("?"),
                    str_at(c, "/spec/dnsName").unwrap_or("?"),
                    reason_text("", str_at(c, "/status/reason").unwrap_or_default())
                ));
            }
        }
    }
    Some(parts.join("; "))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn owned_by(obj: &Value, uid: Option<&str>) -> bool {
    let Some(uid) = uid else { return false };
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        })
}

fn reason_text(reason: &str, message: &str) -> String {
    let message: String = message
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(400)
        .collect();
    match (reason.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" ({reason})"),
        (true, false) => format!(": {message}"),
        (false, false) => format!(" ({reason}): {message}"),
    }
}
