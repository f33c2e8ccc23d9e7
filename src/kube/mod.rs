//! Kubernetes engine: apply (server-side, with discovery), wait (conditions with deadlines) and
//! delete (by ownership label, in reverse dependency order).

pub mod wait;

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
}

impl KubeError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            KubeError::Timeout { .. } => crate::ExitStatus::TimedOut,
            KubeError::Api { .. } => crate::ExitStatus::Failed,
        }
    }
}
