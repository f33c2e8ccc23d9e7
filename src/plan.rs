//! `plan`: environment + PR → everything `up` would create. Pure: no cluster, no cloud.

/// Planning failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Invalid(String),
}
