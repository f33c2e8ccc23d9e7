//! The one integration-test binary. Shared helpers live in `common/`, tests in one file per area.

mod common;
mod testcluster;
mod local;
mod github;
mod kind;
mod doctor;
mod bad_input;
mod cli;
mod plan;
mod aks;
mod app;
mod dns;
mod addons;
mod kube_apply;
mod kube_wait;
mod kube_delete;
mod e2e_local;
mod e2e_kind;
mod aks_e2e;
mod lifecycle;
mod chaos;
mod aks_dns_e2e;
