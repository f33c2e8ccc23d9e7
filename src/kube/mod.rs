//! Kubernetes engine: apply (server-side, with discovery), wait (conditions with deadlines) and
//! delete (by ownership label, in reverse dependency order).

use std::time::Duration;

pub mod apply;
pub mod delete;
pub mod manifest;
pub mod wait;

pub use apply::{Applier, ApplyOptions, ApplyReport};
pub use delete::{DeleteOptions, DeleteReport, delete_environment};
pub use manifest::{ObjectId, parse_manifest};

/// One field owned by another field manager, from a server-side apply conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldConflict {
    pub manager: String,
    pub field: String,
}

/// Errors from the Kubernetes engine.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("timed out after {seconds}s waiting for {object}; last seen: {last_state}")]
    Timeout {
        object: String,
        seconds: u64,
        last_state: String,
    },
    #[error("{context}")]
    Api {
        context: String,
        #[source]
        source: ::kube::Error,
    },
    /// A manifest that is not a list of Kubernetes objects.
    #[error("{origin}: document {document}: {message}")]
    Parse {
        origin: String,
        document: usize,
        message: String,
    },
    /// The cluster serves no such kind; never skipped.
    #[error(
        "{origin}: {object}: the cluster serves no kind {kind} in {api_version} (is its CustomResourceDefinition installed?)"
    )]
    UnknownKind {
        origin: String,
        object: String,
        api_version: String,
        kind: String,
    },
    /// Server-side apply found fields owned by another field manager.
    #[error("{object}: {} (apply with force to take them over)", describe_conflicts(.conflicts))]
    Conflict {
        object: String,
        conflicts: Vec<FieldConflict>,
    },
    /// An object reached a state it will not recover from by waiting.
    #[error("{object} failed: {reason}")]
    Failed { object: String, reason: String },
    /// Namespaces that stay in Terminating; names what holds each of them.
    #[error("namespace {namespace} is stuck in Terminating: {detail}")]
    StuckNamespace { namespace: String, detail: String },
}

fn describe_conflicts(conflicts: &[FieldConflict]) -> String {
    let parts: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "field {} is owned by field manager {:?}",
                c.field, c.manager
            )
        })
        .collect();
    if parts.is_empty() {
        "conflict with another field manager".to_string()
    } else {
        parts.join("; ")
    }
}

impl KubeError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            KubeError::Timeout { .. } => crate::ExitStatus::TimedOut,
            KubeError::Parse { .. } => crate::ExitStatus::Usage,
            _ => crate::ExitStatus::Failed,
        }
    }

    pub(crate) fn api(context: impl Into<String>, source: ::kube::Error) -> Self {
        KubeError::Api {
            context: context.into(),
            source,
        }
    }
}

/// Messages of errors the apiserver returns while a webhook it must call is not serving yet.
const WEBHOOK_NOT_READY: &[&str] = &[
    "failed calling webhook",
    "no endpoints available for service",
    "connection refused",
    "failed to call webhook",
];

/// Whether an error is worth retrying: the apiserver is restarting or overloaded (connection
/// errors, 5xx, 429), or a webhook it calls is not serving yet.
pub fn is_transient(err: &::kube::Error) -> bool {
    match err {
        ::kube::Error::Api(status) => {
            let code = status.code;
            code == 429
                || (500..=504).contains(&code)
                || WEBHOOK_NOT_READY.iter().any(|m| status.message.contains(m))
        }
        ::kube::Error::HyperError(_) | ::kube::Error::Service(_) => true,
        ::kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// Capped exponential backoff for transient errors: 200ms doubling to 5s, with jitter, for at
/// most `total` of sleeping.
pub fn backoff(total: Duration) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .with_total_delay(Some(total))
}

/// The HTTP status of an API error, if it is one.
pub(crate) fn status_code(err: &::kube::Error) -> Option<u16> {
    match err {
        ::kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::kube::core::Status;

    fn api(code: u16, message: &str) -> ::kube::Error {
        ::kube::Error::Api(Box::new(Status {
            code,
            message: message.into(),
            ..Status::failure(message, "")
        }))
    }

    #[test]
    fn transient_errors_are_retried_and_others_are_not() {
        assert!(is_transient(&api(
            503,
            "the server is currently unable to handle the request"
        )));
        assert!(is_transient(&api(429, "too many requests")));
        assert!(is_transient(&api(
            500,
            "Internal error occurred: failed calling webhook \"webhook.cert-manager.io\": failed to call webhook: Post \"https://cert-manager-webhook.cert-manager.svc:443/validate?timeout=30s\": no endpoints available for service \"cert-manager-webhook\""
        )));
        assert!(!is_transient(&api(422, "Deployment.apps \"x\" is invalid")));
        assert!(!is_transient(&api(409, "Apply failed with 1 conflict")));
        assert!(!is_transient(&api(403, "forbidden")));
    }

    #[test]
    fn conflict_message_names_manager_and_field() {
        let e = KubeError::Conflict {
            object: "ConfigMap default/web".into(),
            conflicts: vec![FieldConflict {
                manager: "kubectl".into(),
                field: ".data.color".into(),
            }],
        };
        assert_eq!(
            e.to_string(),
            "ConfigMap default/web: field .data.color is owned by field manager \"kubectl\" (apply with force to take them over)"
        );
    }
}
