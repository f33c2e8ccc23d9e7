//! Helpers shared by the integration tests.
// Each test file uses a different subset of the helpers.
#![allow(dead_code)]

pub mod cli;
pub mod fake_arm;
pub mod fake_github;
pub mod lifecycle;
pub mod stand_ins;
pub mod testcluster;
pub mod upstream;
