//! The error that crosses module boundaries: every module's own error, wrapped so the CLI can
//! pick an exit code without string matching. It lives in the engine because it wraps the
//! engine's errors and those of every layer below.

use crate::ExitStatus;

/// Errors that cross module boundaries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error(transparent)]
    Template(#[from] crate::templates::TemplateError),
    /// Planning's own failures; the errors it passes through from the layers below are
    /// unwrapped into their own variants (see the `From` below).
    #[error(transparent)]
    Plan(crate::plan::PlanError),
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

impl From<crate::plan::PlanError> for Error {
    /// A plan error from a layer below planning becomes that layer's variant, so a caller sees
    /// the same error (and exit status) whether it came through `plan` or not.
    fn from(e: crate::plan::PlanError) -> Self {
        use crate::plan::PlanError as P;
        match e {
            P::Config(e) => Error::Config(e),
            P::Name(e) => Error::Name(e),
            P::Template(e) => Error::Template(e),
            P::Provider(e) => Error::Provider(e),
            P::Addon(e) => Error::Addon(e),
            own => Error::Plan(own),
        }
    }
}
