//! Readiness: named checks that add-on definitions refer to, and the conditions behind them.

use serde::{Deserialize, Serialize};

/// A readiness check by name, as add-on definitions spell it (`check: rolledOut`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Check {
    /// A CustomResourceDefinition is Established (its API is served).
    Established,
    /// A Deployment, StatefulSet or DaemonSet has rolled out its current generation.
    RolledOut,
    /// A Job has completed.
    Complete,
    /// A Service has at least one ready endpoint.
    EndpointsReady,
    /// An Argo Rollout is Healthy.
    Healthy,
    /// An Argo Rollout is Paused at this canary step index.
    PausedAt(u32),
    /// A cert-manager Certificate, Issuer or ClusterIssuer is Ready.
    Ready,
    /// A Gateway API Gateway is Programmed.
    Programmed,
    /// A Gateway API GatewayClass is Accepted.
    Accepted,
    /// An Argo CD Application is Synced and Healthy.
    SyncedHealthy,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Established => f.write_str("established"),
            Check::RolledOut => f.write_str("rolled out"),
            Check::Complete => f.write_str("complete"),
            Check::EndpointsReady => f.write_str("ready endpoints"),
            Check::Healthy => f.write_str("healthy"),
            Check::PausedAt(step) => write!(f, "paused at step {step}"),
            Check::Ready => f.write_str("ready"),
            Check::Programmed => f.write_str("programmed"),
            Check::Accepted => f.write_str("accepted"),
            Check::SyncedHealthy => f.write_str("synced and healthy"),
        }
    }
}
