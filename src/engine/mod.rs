//! The lifecycle engine: up, down, list, status, gc and extend.
//!
//! `up` is an ordered list of named steps ([`up::steps::STEPS`]), run by one runner
//! (`runner.rs`) that holds the lease around them and rolls back on failure; `down` is the
//! ordered teardown in [`down`]. Every step is an ensure, so a rerun after any failure, or after
//! `kill -9` at any point, converges. Records live on the resources, and so does the lease.

use std::path::PathBuf;

pub mod ci;
pub mod claim;
pub mod down;
mod error;
pub mod gc;
mod guard;
pub mod inventory;
pub mod lease;
pub mod pool;
pub mod release;
mod runner;
mod teardown;
pub mod up;

pub use crate::error::chain;
pub use down::{DownOptions, DownReport, down};
pub use error::Error;
pub use inventory::{
    ExtendOptions, GcOptions, GcReport, ListOptions, StatusReport, extend, gc, list, renew, status,
};
pub use up::{UpOptions, UpReport, up};

/// Errors from the lifecycle engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Invalid(String),
    /// The environment does not exist (for commands that need it to).
    #[error("environment {name} does not exist ({provider}); create it with `ephemera up`")]
    NotFound { name: String, provider: String },
    /// `limits.maxEnvironments` is reached.
    #[error(
        "{file}: limits.maxEnvironments is {limit} and {count} environments of profile {profile} exist ({names}); delete one or raise the limit"
    )]
    LimitReached {
        file: String,
        profile: String,
        limit: u32,
        count: usize,
        names: String,
    },
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
    /// GitHub reporting cannot be set up: no token, no repository, a bad SHA or setting.
    #[error(transparent)]
    GitHub(#[from] crate::github::GitHubError),
    /// `--timeout` or `--deadline` ran out (exit 3).
    #[error(transparent)]
    TimedOut(#[from] crate::deadline::TimedOut),
    /// A step of a pipeline failed.
    #[error("step {step} failed")]
    Step {
        step: &'static str,
        #[source]
        source: Box<crate::Error>,
    },
    /// `gc` deleted some environments and failed on others.
    #[error("gc failed to delete {failed} of {total} environments: {names}")]
    GcIncomplete {
        failed: usize,
        total: usize,
        names: String,
    },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        use crate::ExitStatus::*;
        match self {
            EngineError::Invalid(_)
            | EngineError::NotFound { .. }
            | EngineError::LimitReached { .. }
            | EngineError::GitHub(_) => Usage,
            EngineError::Lease(lease::LeaseError::Store(e)) => e.exit_status(),
            EngineError::Lease(_) => LeaseHeld,
            EngineError::Step { source, .. } => source.exit_status(),
            EngineError::TimedOut(_) => TimedOut,
            EngineError::GcIncomplete { .. } | EngineError::Io { .. } => Failed,
        }
    }
}

/// One finished step, for reports and `--output json`.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub step: &'static str,
    /// `done`, `skipped` or `failed`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub seconds: f64,
}

/// Where `up` writes an environment's kubeconfig when `--kubeconfig` is not given:
/// `$XDG_STATE_HOME/ephemera/kubeconfig/<name>.yaml` (default `~/.local/state`).
///
/// # Errors
/// Neither `XDG_STATE_HOME` nor `HOME` is set.
pub fn default_kubeconfig_path(name: &str) -> Result<PathBuf, EngineError> {
    use crate::providers::probe::{Probe, SystemProbe};
    SystemProbe
        .xdg_dir("XDG_STATE_HOME", ".local/state")
        .map(|d| {
            d.join("ephemera")
                .join("kubeconfig")
                .join(format!("{name}.yaml"))
        })
        .ok_or_else(|| {
            EngineError::Invalid(
                "cannot place the kubeconfig: set --kubeconfig, XDG_STATE_HOME or HOME".into(),
            )
        })
}
