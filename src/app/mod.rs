//! App delivery: the Rollout, Services, route and Certificate; deploy, promote and abort.

/// Errors from app delivery.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(String),
}

impl AppError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            AppError::Invalid(_) => crate::ExitStatus::Usage,
        }
    }
}
