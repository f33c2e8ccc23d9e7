//! The lease for kind and local environments: a `coordination.k8s.io/v1` Lease named
//! `ephemera` in `kube-system`, written with the resourceVersion as compare-and-swap token.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

use super::lease::{LeaseRecord, LeaseStore, Operation, Written};
use crate::providers::ProviderError;

const NAME: &str = "ephemera";
const NAMESPACE: &str = "kube-system";
const OPERATION: &str = "ephemera.dev/operation";
const STARTED: &str = "ephemera.dev/started-at";

/// A lease held in the environment's own cluster.
pub struct KubeLease {
    api: Api<Lease>,
    env: String,
}

impl KubeLease {
    pub fn new(client: kube::Client, env: &str) -> Self {
        KubeLease {
            api: Api::namespaced(client, NAMESPACE),
            env: env.to_string(),
        }
    }

    fn err(&self, what: &str, e: kube::Error) -> ProviderError {
        ProviderError::Transport {
            context: format!("{what} the lease of {}", self.env),
            source: Box::new(e),
        }
    }
}

fn to_object(l: &LeaseRecord, env: &str, resource_version: Option<&str>) -> Lease {
    let ts = |t: jiff::Timestamp| {
        MicroTime(
            k8s_openapi::jiff::Timestamp::from_microsecond(t.as_microsecond()).unwrap_or_default(),
        )
    };
    Lease {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NAMESPACE.into()),
            resource_version: resource_version.map(str::to_string),
            labels: Some(
                [
                    (
                        crate::labels::MANAGED_BY.to_string(),
                        crate::MANAGER.to_string(),
                    ),
                    (crate::labels::ENVIRONMENT.to_string(), env.to_string()),
                ]
                .into(),
            ),
            annotations: Some(
                [
                    (OPERATION.to_string(), l.operation.to_string()),
                    (STARTED.to_string(), l.started_at.to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(l.holder.clone()),
            lease_duration_seconds: Some(i32::try_from(l.duration_seconds).unwrap_or(i32::MAX)),
            acquire_time: Some(ts(l.started_at)),
            renew_time: Some(ts(l.renewed_at)),
            ..Default::default()
        }),
    }
}

fn from_object(o: &Lease) -> Option<LeaseRecord> {
    let spec = o.spec.as_ref()?;
    let ann = o.metadata.annotations.as_ref()?;
    let operation = match ann.get(OPERATION)?.as_str() {
        "up" => Operation::Up,
        "down" => Operation::Down,
        _ => return None,
    };
    let micros = |t: &MicroTime| jiff::Timestamp::from_microsecond(t.0.as_microsecond()).ok();
    Some(LeaseRecord {
        holder: spec.holder_identity.clone()?,
        operation,
        started_at: ann.get(STARTED)?.parse().ok()?,
        renewed_at: micros(spec.renew_time.as_ref()?)?,
        duration_seconds: u64::try_from(spec.lease_duration_seconds?).ok()?,
    })
}

impl LeaseStore for KubeLease {
    async fn read(&self) -> Result<Option<(LeaseRecord, String)>, ProviderError> {
        match self
            .api
            .get_opt(NAME)
            .await
            .map_err(|e| self.err("reading", e))?
        {
            None => Ok(None),
            Some(o) => {
                let version = o.metadata.resource_version.clone().unwrap_or_default();
                // A lease we cannot read is treated as free, but the CAS still guards the write.
                Ok(Some((
                    from_object(&o).unwrap_or_else(LeaseRecord::vacant),
                    version,
                )))
            }
        }
    }

    async fn write(
        &self,
        lease: &LeaseRecord,
        expected: Option<&str>,
    ) -> Result<Written, ProviderError> {
        let res = match expected {
            None => {
                self.api
                    .create(&PostParams::default(), &to_object(lease, &self.env, None))
                    .await
            }
            Some(v) => {
                self.api
                    .replace(
                        NAME,
                        &PostParams::default(),
                        &to_object(lease, &self.env, Some(v)),
                    )
                    .await
            }
        };
        match res {
            Ok(_) => Ok(Written::Ok),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Written::Conflict),
            Err(kube::Error::Api(s)) if s.code == 404 && expected.is_some() => {
                Ok(Written::Conflict)
            }
            Err(e) => Err(self.err("writing", e)),
        }
    }

    async fn release(&self, holder: &str) -> Result<(), ProviderError> {
        let Some((l, version)) = self.read().await? else {
            return Ok(());
        };
        if l.holder != holder {
            return Ok(());
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(version),
                uid: None,
            }),
            ..Default::default()
        };
        match self.api.delete(NAME, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(self.err("releasing", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn object_round_trips() {
        let l = LeaseRecord::new(
            "host-1-2",
            Operation::Down,
            "2026-11-28T12:00:00.123456Z".parse().unwrap(),
            Duration::from_secs(90),
        );
        let o = to_object(&l, "pr-1", Some("42"));
        assert_eq!(from_object(&o), Some(l));
        assert_eq!(
            o.metadata
                .labels
                .unwrap()
                .get(crate::labels::ENVIRONMENT)
                .map(String::as_str),
            Some("pr-1")
        );
    }
}
