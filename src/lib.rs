//! ephemera: short-lived preview environments for pull requests.
//!
//! The modules follow the data path of `up`:
//! config → plan → provider → kube → add-ons → app → engine.

pub mod addons;
pub mod app;
pub mod azure;
pub mod config;
pub mod deadline;
pub mod dns;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod github;
pub mod gitops;
pub mod http;
pub mod kube;
pub mod names;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod providers;
pub mod record;
pub mod slack;
pub mod templates;

pub use engine::Error;
pub use error::ExitStatus;

/// The version stamped on every record ephemera writes.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The field manager for server-side apply, and the value of `app.kubernetes.io/managed-by`.
pub const MANAGER: &str = "ephemera";

/// Label keys carried by every object ephemera creates.
pub mod labels {
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const ENVIRONMENT: &str = "ephemera.dev/environment";
    pub const ADDON: &str = "ephemera.dev/addon";
    pub const COMPONENT: &str = "ephemera.dev/component";
}
