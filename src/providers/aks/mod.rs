//! AKS: managed clusters over the Azure Resource Manager REST API (api-version 2026-08-01).

pub mod spec;

/// The swagger validator shared with the fake ARM server of the integration tests.
#[cfg(test)]
#[path = "../../../tests/it/common/fake_arm/swagger.rs"]
pub(crate) mod swagger;
