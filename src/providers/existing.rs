//! `provider.existing`: a long-lived cluster (production) that ephemera reaches but never
//! creates or deletes.
//!
//! Its kubeconfig is a file (with an optional context), or an AKS cluster's user credentials
//! fetched over ARM (`listClusterUserCredential`). `ensure` only checks the cluster answers and
//! keeps the environment's record in the ConfigMap kind and local clusters use; `delete` refuses.

use std::path::Path;
use std::sync::Arc;

use reqwest::{Method, StatusCode};

use super::probe::Probe;
use super::{ClusterRequest, Deleted, Ensured, Kubeconfig, Provider, ProviderError, configmap};
use crate::azure::arm::ArmClient;
use crate::azure::cloud::CloudEndpoints;
use crate::config::ExistingConfig;
use crate::record::Record;

/// The API version of `listClusterUserCredential`.
const API_VERSION: &str = super::aks::spec::MANAGED_CLUSTERS_API_VERSION;

/// How the cluster is reached.
pub struct Existing {
    cfg: ExistingConfig,
    arm: Option<ArmClient>,
    /// The environment file's `metadata.name`: the one environment this cluster is.
    name: String,
}

impl std::fmt::Debug for Existing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Existing")
            .field("name", &self.name)
            .field("kubeconfig", &self.cfg.kubeconfig)
            .field("aks_cluster", &self.cfg.aks_cluster)
            .finish_non_exhaustive()
    }
}

impl Existing {
    /// # Errors
    /// [`ProviderError::Config`] when the ARM client cannot be made for `aksCluster`.
    pub fn new(
        name: &str,
        cfg: &ExistingConfig,
        probe: Arc<dyn Probe + Send + Sync>,
    ) -> Result<Self, ProviderError> {
        let arm = match &cfg.aks_cluster {
            Some(_) => {
                let cloud = CloudEndpoints::resolve(&cfg.cloud, probe.as_ref())?;
                Some(crate::azure::arm_client(&cloud, probe)?)
            }
            None => None,
        };
        Ok(Existing {
            cfg: cfg.clone(),
            arm,
            name: name.to_string(),
        })
    }

    async fn fetch_kubeconfig(&self) -> Result<Kubeconfig, ProviderError> {
        if let (Some(id), Some(arm)) = (&self.cfg.aks_cluster, &self.arm) {
            let url = arm.url(&format!(
                "{id}/listClusterUserCredential?api-version={API_VERSION}"
            ))?;
            let op = format!("fetching the user kubeconfig of {id} (listClusterUserCredential)");
            let r = arm.send(Method::POST, &url, None, &[], &op).await?;
            if r.status == StatusCode::NOT_FOUND {
                return Err(ProviderError::Config(format!(
                    "provider.existing.aksCluster: {id} does not exist (ARM answered 404)"
                )));
            }
            if !r.status.is_success() {
                return Err(r.into_error(&op).into());
            }
            return super::aks::decode_kubeconfig(&r.body).map_err(|m| {
                crate::azure::AzureError::Api {
                    operation: op,
                    status: r.status.as_u16(),
                    code: "InvalidCredentialResult".into(),
                    message: m,
                }
                .into()
            });
        }
        let path = self.cfg.kubeconfig.as_deref().unwrap_or_default();
        let kc = Kubeconfig::read(Path::new(path)).map_err(|e| match e {
            ProviderError::Io { source, .. } => ProviderError::Config(format!(
                "provider.existing.kubeconfig: {path}: {}",
                if source.kind() == std::io::ErrorKind::NotFound {
                    "no such file".to_string()
                } else {
                    source.to_string()
                }
            )),
            other => other,
        })?;
        match &self.cfg.context {
            Some(ctx) => kc.with_context(ctx).ok_or_else(|| {
                ProviderError::Config(format!(
                    "provider.existing.context: {path} has no context {ctx:?}"
                ))
            }),
            None => Ok(kc),
        }
    }
}

impl Provider for Existing {
    fn kind(&self) -> &'static str {
        "existing"
    }

    async fn ensure(&self, req: &ClusterRequest) -> Result<Ensured, ProviderError> {
        let client = self.fetch_kubeconfig().await?.client().await?;
        let record = configmap::ensure(client, &req.name, &req.record).await?;
        Ok(Ensured {
            created: false,
            record,
            resource_id: self.cfg.aks_cluster.clone(),
            portal_url: None,
            serves_traffic: true,
            oidc_issuer: None,
        })
    }

    async fn kubeconfig(&self, _name: &str) -> Result<Kubeconfig, ProviderError> {
        self.fetch_kubeconfig().await
    }

    async fn delete(&self, name: &str) -> Result<Deleted, ProviderError> {
        Err(ProviderError::Config(format!(
            "provider.existing: {name} is a long-lived cluster; ephemera never deletes it"
        )))
    }

    /// The stored record (after an `up`), else one that says what this cluster is: it never
    /// expires, and `gc` refuses this provider anyway.
    async fn list(&self) -> Result<Vec<Record>, ProviderError> {
        let client = self.fetch_kubeconfig().await?.client().await?;
        let stored = configmap::read(client, &self.name).await?;
        Ok(vec![stored.unwrap_or_else(|| Record {
            name: self.name.clone(),
            provider: "existing".into(),
            repository: None,
            pr: None,
            created_at: jiff::Timestamp::now(),
            expires_at: jiff::Timestamp::MAX,
            created_by: None,
            version: crate::VERSION.into(),
            url: None,
            env_file: Some(self.name.clone()),
            pool: None,
        })])
    }

    async fn update_record(&self, record: &Record) -> Result<(), ProviderError> {
        let client = self.fetch_kubeconfig().await?.client().await?;
        configmap::write(client, &record.name, record).await
    }

    fn cluster_resource_id(&self, _name: &str) -> Option<String> {
        self.cfg.aks_cluster.clone()
    }
}
