//! The one integration-test binary. Shared helpers live in `common/`, tests in one file per area.

mod addons;
mod aks;
mod aks_dns_e2e;
mod aks_e2e;
mod app;
mod bad_input;
mod chaos;
mod cli;
mod common;
mod dns;
mod doctor;
mod e2e_kind;
mod e2e_local;
mod github;
mod github_e2e;
mod kind;
mod kube_apply;
mod kube_delete;
mod kube_wait;
mod lifecycle;
mod local;
mod lock;
mod plan;
mod registry;
mod testcluster;
mod workflows;
