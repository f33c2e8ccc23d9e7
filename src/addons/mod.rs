//! Add-ons as data: definitions under `templates/addons/<name>/`, sources (bundle, download,
//! cache), and the install graph.

pub mod catalog;

pub use catalog::{
    Catalog, Dependency, ObjectCheck, Overlay, OverlayMode, ResolvedAddon, Source, Wait,
    ingress_exports,
};

/// Errors from add-on resolution and installation.
#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    /// A selection that cannot be installed (unknown provider, dependency cycle, ...).
    #[error("{0}")]
    Invalid(String),
    /// A definition file that is wrong; names the file, the line when known, and the field.
    #[error("{file}{}: {message}", .pos.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Definition {
        file: String,
        pos: Option<(u64, u64)>,
        message: String,
    },
    /// The environment asks for a version the definition does not pin.
    #[error("{addon} has no version {version}; known versions: {}", .known.join(", "))]
    UnknownVersion {
        addon: String,
        version: String,
        known: Vec<String>,
    },
}

impl AddonError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            AddonError::Invalid(_)
            | AddonError::Definition { .. }
            | AddonError::UnknownVersion { .. } => crate::ExitStatus::Usage,
        }
    }
}
