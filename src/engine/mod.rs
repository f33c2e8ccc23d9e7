//! The lifecycle engine: up, down, list, status, gc and extend.

pub mod ci;
pub mod gc;
pub mod kube_lease;
pub mod lease;
pub mod notify;

/// Errors from the lifecycle engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Invalid(String),
}

impl EngineError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            EngineError::Invalid(_) => crate::ExitStatus::Usage,
        }
    }
}
