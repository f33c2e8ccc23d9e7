//! Add-ons as data: definitions under `templates/addons/<name>/`, sources (bundle, download,
//! cache), and the install graph.

pub mod catalog;
pub mod install;
pub mod lock;
pub mod sources;

pub use catalog::{
    Catalog, Dependency, ObjectCheck, Overlay, OverlayMode, ResolvedAddon, Source, Wait,
    ingress_exports,
};
pub use install::{
    AddonReport, InstallContext, InstallReport, install, template_values, uninstall,
};
pub use lock::Lock;
pub use sources::{SourceOptions, Unpinned};

/// A lock entry that contradicts its add-on definition's pin.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what}: {url}: {lock} records sha256 {locked}, but the add-on definition pins {pinned}; run `{command}` to write the lock again"
)]
pub struct LockConflict {
    pub what: String,
    pub url: String,
    pub lock: String,
    pub locked: String,
    pub pinned: String,
    pub command: String,
}

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
    /// A manifest whose bytes do not match the pinned sha256: never applied.
    #[error("{what}: {file}: sha256 mismatch: expected {expected}, got {actual}")]
    Checksum {
        what: String,
        file: String,
        expected: String,
        actual: String,
    },
    /// A lock file that cannot be read, parsed or written; names the file (and line when known).
    #[error("{file}{}: {message}", .pos.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Lock {
        file: String,
        pos: Option<(u64, u64)>,
        message: String,
    },
    /// A source pinned neither by its definition nor by the lock, with `--locked`.
    #[error(
        "{what}: {url} is pinned neither by its add-on definition nor by {lock}, and --locked refuses it; run `{command}` to lock it"
    )]
    Unpinned {
        what: String,
        url: String,
        lock: String,
        command: String,
    },
    /// The lock names another sha256 than the definition pins: stale or edited.
    #[error("{0}")]
    LockConflict(Box<LockConflict>),
    /// A manifest that cannot be read from the bundle, or may not be downloaded.
    #[error("{what}: {message}")]
    Source { what: String, message: String },
    #[error("{what}: downloading {url}: {message}")]
    Download {
        what: String,
        url: String,
        message: String,
    },
    /// An overlay template that does not render; the message names the template and line.
    #[error("{addon}: {error}")]
    Template {
        addon: String,
        error: crate::templates::TemplateError,
    },
    #[error("{addon}: overlay {overlay} {message}")]
    Overlay {
        addon: String,
        overlay: String,
        message: String,
    },
    /// A wait step that failed or timed out; the message names the object and its last state.
    #[error("{addon}: {error}")]
    Wait {
        addon: String,
        step: String,
        error: Box<crate::kube::KubeError>,
    },
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
}

impl AddonError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            AddonError::Invalid(_)
            | AddonError::Definition { .. }
            | AddonError::UnknownVersion { .. }
            | AddonError::Source { .. }
            | AddonError::Lock { .. }
            | AddonError::Unpinned { .. }
            | AddonError::LockConflict(_)
            | AddonError::Template { .. }
            | AddonError::Overlay { .. } => crate::ExitStatus::Usage,
            AddonError::Checksum { .. } | AddonError::Download { .. } => crate::ExitStatus::Failed,
            AddonError::Wait { error, .. } => error.exit_status(),
            AddonError::Kube(error) => error.exit_status(),
        }
    }
}
