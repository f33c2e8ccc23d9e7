//! Preview URLs that resolve, with TLS.
//!
//! - [`host`]: the preview host and URL, the same in `plan` and `up` (pure): a host in the
//!   configured zone, or the wildcard-DNS fallback `<name>.<ip>.<service-domain>`;
//! - [`address`]: the ingress load balancer's address, from the controller Service or the
//!   Gateway, waited for with a deadline;
//! - [`azure`]: A and CNAME records in an Azure DNS zone over ARM (api-version
//!   [`azure::DNS_API_VERSION`]), carrying our ownership metadata; ensure, delete, and the orphan
//!   sweep for `gc`;
//! - [`tls`]: the wildcard certificate per zone, its copies into environments, the Certificate
//!   wait with cert-manager's own failure reason, and the DNS-01 issuer values;
//! - [`identity`]: the federated credential per AKS cluster that lets cert-manager sign in as the
//!   DNS-01 managed identity.
//!
//! Every mutation is an ensure: a rerun converges and makes no write when nothing changed. A
//! record that is not ours is never overwritten or deleted.

pub mod address;
pub mod azure;
pub mod identity;
pub mod tls;

pub use crate::config::host;
pub use address::{AddressSource, LbAddress, wait_for_address};
pub use azure::{AzureDns, DnsRecord, RecordKind, RecordOutcome, orphans};
pub use host::{PreviewHost, preview_host, url_for};
pub use tls::{certificate_failure_reason, copy_wildcard_secret, wait_certificate};

use crate::azure::AzureError;
use crate::kube::KubeError;

/// Errors from DNS records, load-balancer addresses and certificates.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A configuration that cannot give a working host, record or certificate.
    #[error("{0}")]
    Config(String),
    /// A record at the preview host that is not this environment's: never overwritten.
    #[error("DNS record {kind} {fqdn} in zone {zone} {why}; refusing to change it")]
    Foreign {
        kind: RecordKind,
        fqdn: String,
        zone: String,
        why: String,
    },
    /// The load balancer published an address a record cannot point at.
    #[error("{object}: {message}")]
    Address { object: String, message: String },
    /// cert-manager gave up on a certificate; `reason` is cert-manager's own.
    #[error("Certificate {object} was not issued: {reason}")]
    Certificate { object: String, reason: String },
    /// ARM answered with an error, timed out, or could not be reached.
    #[error(transparent)]
    Arm(#[from] AzureError),
    #[error(transparent)]
    Kube(#[from] KubeError),
}

impl DnsError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        use crate::ExitStatus::*;
        match self {
            // Both need someone to change the configuration or the zone; a rerun cannot fix them.
            DnsError::Config(_) | DnsError::Foreign { .. } => Usage,
            DnsError::Address { .. } | DnsError::Certificate { .. } => Failed,
            DnsError::Arm(e) => e.exit_status(),
            DnsError::Kube(e) => e.exit_status(),
        }
    }

    pub(crate) fn kube(context: impl Into<String>, source: ::kube::Error) -> Self {
        DnsError::Kube(KubeError::api(context, source))
    }
}
