//! Azure Resource Manager: what the AKS provider and the Azure DNS and identity clients share.
//!
//! - [`cloud`]: ARM and authority endpoints per cloud;
//! - [`credentials`]: the credential chain;
//! - [`arm`]: requests with retries, ErrorResponse, long-running operations, paging;
//! - [`arm_client`], [`subscription_id`]: building a client and checking a subscription id.
//!
//! Nothing here knows about clusters: the AKS provider (`providers::aks`) and `dns` build on
//! this module, which imports only the foundation (`config`, `record`, `http`, `probe`, ...).
//! Its errors are [`AzureError`]; they become the callers' errors (a `ProviderError`, a
//! `DnsError`) variant for variant, with the same message and exit status.

use std::sync::Arc;

use crate::probe::Probe;

pub mod arm;
pub mod cloud;
pub mod credentials;

/// The swagger validator, for the unit tests of ARM and AKS and the fake ARM server of the
/// integration tests (which includes this file).
#[cfg(test)]
pub(crate) mod swagger;

use arm::ArmClient;
pub use arm::Timing;
use cloud::CloudEndpoints;
use credentials::CredentialChain;

/// `AZURE_SUBSCRIPTION_ID` overrides the environment file's subscription.
pub const ENV_SUBSCRIPTION: &str = "AZURE_SUBSCRIPTION_ID";

/// What can go wrong talking to Azure Resource Manager.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// The environment file or the process environment is unusable (subscription, cloud,
    /// credential settings).
    #[error("{0}")]
    Config(String),
    /// No credential could be obtained.
    #[error("no usable credential; tried: {tried}")]
    Credential { tried: String },
    /// ARM answered with an error.
    #[error("{operation}: {status} {code}: {message}")]
    Api {
        operation: String,
        status: u16,
        code: String,
        message: String,
    },
    /// A long-running operation ended in a terminal failure.
    #[error("{operation} ended {status}: {code}: {message}")]
    OperationFailed {
        operation: String,
        status: String,
        code: String,
        message: String,
    },
    /// A deadline passed; names the object and the state it was last seen in.
    #[error("timed out after {seconds}s waiting for {what}; last seen: {last_state}")]
    Timeout {
        what: String,
        seconds: u64,
        last_state: String,
    },
    /// The request could not be sent or its answer not read.
    #[error("{context}")]
    Transport {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl AzureError {
    /// The same status as the provider error it becomes: a configuration problem is a usage
    /// error, a deadline a timeout, everything else a failure.
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            AzureError::Config(_) => crate::ExitStatus::Usage,
            AzureError::Timeout { .. } => crate::ExitStatus::TimedOut,
            _ => crate::ExitStatus::Failed,
        }
    }
}

/// A subscription id, trimmed; `field` names where it came from in the error.
///
/// # Errors
/// [`AzureError::Config`] for a value that is not a GUID. The value is not repeated: a
/// variable set by mistake may hold anything, a secret included.
pub fn subscription_id(value: &str, field: &str) -> Result<String, AzureError> {
    let subscription = value.trim().to_string();
    if !crate::config::is_guid(&subscription) {
        return Err(AzureError::Config(format!(
            "{field}: is not a subscription id (a GUID: 8-4-4-4-12 hexadecimal digits)"
        )));
    }
    Ok(subscription)
}

/// An ARM client for `cloud`, authenticated by the credential chain over `probe`'s variables
/// (read again on every pass). The AKS provider and the Azure DNS zone client share it.
///
/// # Errors
/// [`AzureError::Config`] for an unusable `AZURE_TOKEN_CREDENTIALS`;
/// [`AzureError::Transport`] when no HTTP client can be built.
pub fn arm_client(
    cloud: &CloudEndpoints,
    probe: Arc<dyn Probe + Send + Sync>,
) -> Result<ArmClient, AzureError> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| AzureError::Transport {
            context: "building the HTTP client".into(),
            source: Box::new(e),
        })?;
    let chain = CredentialChain::new(probe, cloud.clone(), http.clone());
    chain.check()?;
    Ok(ArmClient::new(
        http,
        cloud.resource_manager.clone(),
        chain,
        Timing::default(),
    ))
}
