//! Add-ons as data: definitions under `templates/addons/<name>/`, sources (bundle, download,
//! cache), and the install graph.

/// Errors from add-on resolution and installation.
#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    #[error("{0}")]
    Invalid(String),
}

impl AddonError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            AddonError::Invalid(_) => crate::ExitStatus::Usage,
        }
    }
}
