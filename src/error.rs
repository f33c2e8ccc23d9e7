//! The crate's top-level error and the process exit status it maps to.
//!
//! Each module has its own small `thiserror` enum; this one wraps them so the CLI can pick an
//! exit code without string matching. Messages never repeat their source: chain printers show
//! each cause once.

/// Process exit statuses, documented in the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything asked for holds.
    Ok = 0,
    /// The operation failed.
    Failed = 1,
    /// Bad usage or configuration: nothing was created.
    Usage = 2,
    /// A deadline passed.
    TimedOut = 3,
    /// Another run holds the environment's lease.
    LeaseHeld = 4,
}

/// Errors that cross module boundaries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error(transparent)]
    Template(#[from] crate::templates::TemplateError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Provider(#[from] crate::providers::ProviderError),
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    #[error(transparent)]
    Addon(#[from] crate::addons::AddonError),
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Dns(#[from] crate::dns::DnsError),
}

impl Error {
    /// The exit status this error should end the process with.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Config(_) | Error::Name(_) | Error::Template(_) | Error::Plan(_) => {
                ExitStatus::Usage
            }
            Error::Provider(e) => e.exit_status(),
            Error::Kube(e) => e.exit_status(),
            Error::Addon(e) => e.exit_status(),
            Error::App(e) => e.exit_status(),
            Error::Engine(e) => e.exit_status(),
            Error::Dns(e) => e.exit_status(),
        }
    }
}
