//! Helpers shared by the integration tests.
// Each test file uses a different subset of the helpers.
#![allow(dead_code)]

pub mod actions_runner;
pub mod argocd;
pub mod cli;
pub mod expr;
pub mod fake_arm;
pub mod fake_github;
pub mod fake_slack;
pub mod git_server;
pub mod lifecycle;
pub mod stand_ins;
pub mod testcluster;
pub mod upstream;

/// A current-thread tokio runtime, for a fake server on a thread of its own.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
