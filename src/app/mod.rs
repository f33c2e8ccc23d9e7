//! App delivery: the Rollout, Services, route and Certificate; deploy, promote and abort.
//!
//! - [`rollout`]: the Rollout as data: status summary, phase and weights, wait goals (pure).
//! - [`ops`]: deploy, promote, abort, status and wait against the Kubernetes API.
//! - [`probe`]: the URL report, after an HTTP probe of the health path.

pub mod ops;
pub mod probe;
pub mod registry;
pub mod rollout;

pub use ops::{DEPLOY_MANAGER, abort, complete, deploy, promote, status, wait_for};
pub use probe::{Probed, UrlReport, accept_invalid_certs, probe_url, report_url};
pub use rollout::{Goal, Phase, RolloutStatus};

/// Errors from app delivery. Messages name the object (`namespace/name`) and never repeat their
/// source.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input: a URL, a path, a flag.
    #[error("{0}")]
    Invalid(String),
    #[error("no such environment: namespace {namespace} does not exist")]
    NoNamespace { namespace: String },
    #[error(
        "no such environment: rollout {object} does not exist (was the environment created by `ephemera up`?)"
    )]
    NoRollout { object: String },
    #[error(
        "this cluster does not serve the Argo Rollouts API (argoproj.io/v1alpha1 rollouts): the argo-rollouts add-on is not installed"
    )]
    NoRolloutsApi,
    #[error(
        "rollout {object} is managed by Argo CD application {application}: an image set here would be reverted; change the image parameter of the application instead"
    )]
    GitOpsManaged { object: String, application: String },
    #[error(
        "rollout {object} has several containers ({names}) and none is named like the rollout: cannot tell which one runs the app"
    )]
    AmbiguousContainer { object: String, names: String },
    #[error("rollout {object} has no containers")]
    NoContainer { object: String },
    #[error("rollout {object} cannot {goal}: {why}")]
    Stuck {
        object: String,
        goal: String,
        why: String,
    },
    #[error(
        "timed out after {seconds}s waiting for rollout {object} to {goal}; last seen: {last_state}"
    )]
    Timeout {
        object: String,
        goal: String,
        seconds: u64,
        last_state: String,
    },
    #[error("rollout {object} is not a readable Rollout")]
    Malformed {
        object: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("waiting for rollout {object}")]
    Wait {
        object: String,
        #[source]
        source: crate::kube::KubeError,
    },
    #[error("applying {object}")]
    Apply {
        object: String,
        #[source]
        source: Box<crate::kube::KubeError>,
    },
    #[error("{context}")]
    Api {
        context: String,
        #[source]
        source: ::kube::Error,
    },
    #[error(
        "accepting invalid certificates is allowed only with the selfsigned and letsencrypt-staging issuers; with letsencrypt a certificate error is a real problem"
    )]
    InsecureNotAllowed,
    #[error("timed out after {seconds}s probing {url} ({attempts} attempts); last: {last}")]
    ProbeTimeout {
        url: String,
        seconds: u64,
        attempts: u32,
        last: String,
    },
}

impl AppError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        use crate::ExitStatus;
        match self {
            AppError::Invalid(_)
            | AppError::NoNamespace { .. }
            | AppError::NoRollout { .. }
            | AppError::GitOpsManaged { .. }
            | AppError::AmbiguousContainer { .. }
            | AppError::InsecureNotAllowed => ExitStatus::Usage,
            AppError::Timeout { .. } | AppError::ProbeTimeout { .. } => ExitStatus::TimedOut,
            AppError::NoRolloutsApi
            | AppError::NoContainer { .. }
            | AppError::Stuck { .. }
            | AppError::Malformed { .. }
            | AppError::Api { .. } => ExitStatus::Failed,
            AppError::Wait { source, .. } => source.exit_status(),
            AppError::Apply { source, .. } => source.exit_status(),
        }
    }
}
