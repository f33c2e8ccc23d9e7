//! [`AnyProvider`]: the provider an environment file names, behind one type, so the engine
//! never sees a provider-specific type.

use std::sync::Arc;

use super::kind::KindProvider;
use super::lease::AnyLeaseStore;
use super::local::LocalProvider;
use super::{ClusterRequest, Deleted, Ensured, Kubeconfig, Provider, ProviderError};
use crate::config::{Environment, ProviderConfig};
use crate::progress::Progress;
use crate::record::Record;
use crate::templates::Renderer;

/// Options that apply to every provider.
#[derive(Clone, Debug, Default)]
pub struct ProviderOptions {
    /// Keep a cluster whose creation failed, for debugging.
    pub keep_on_failure: bool,
}

/// One of the providers.
#[derive(Debug)]
pub enum AnyProvider {
    Aks(Box<super::aks::Aks>),
    Kind(KindProvider),
    Local(LocalProvider),
    Existing(Box<super::existing::Existing>),
}

impl AnyProvider {
    /// The provider `env` names, configured from the file and the process environment.
    ///
    /// # Errors
    /// A provider that cannot run here (missing tool, no credential source, bad endpoint).
    pub fn from_env(
        env: &Environment,
        renderer: Arc<Renderer>,
        opts: &ProviderOptions,
    ) -> Result<Self, ProviderError> {
        Ok(match &env.provider {
            ProviderConfig::Aks(cfg) => AnyProvider::Aks(Box::new(super::aks::from_config(
                cfg,
                &super::probe::SystemProbe,
            )?)),
            ProviderConfig::Kind(cfg) => AnyProvider::Kind(
                KindProvider::new(cfg, renderer)?.keep_on_failure(opts.keep_on_failure),
            ),
            ProviderConfig::Local(cfg) => AnyProvider::Local(
                LocalProvider::with_probe(cfg, &super::probe::SystemProbe, &renderer)?
                    .keep_on_failure(opts.keep_on_failure),
            ),
            ProviderConfig::Existing(cfg) => {
                AnyProvider::Existing(Box::new(super::existing::Existing::new(
                    &env.metadata.name,
                    cfg,
                    Arc::new(super::probe::SystemProbe),
                )?))
            }
        })
    }
}

macro_rules! each {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AnyProvider::Aks($p) => $e,
            AnyProvider::Kind($p) => $e,
            AnyProvider::Local($p) => $e,
            AnyProvider::Existing($p) => $e,
        }
    };
}

impl Provider for AnyProvider {
    fn kind(&self) -> &'static str {
        each!(self, p => p.kind())
    }

    async fn prepare(&self, progress: &dyn Progress) -> Result<(), ProviderError> {
        each!(self, p => p.prepare(progress).await)
    }

    async fn ensure(&self, req: &ClusterRequest) -> Result<Ensured, ProviderError> {
        each!(self, p => p.ensure(req).await)
    }

    async fn kubeconfig(&self, name: &str) -> Result<Kubeconfig, ProviderError> {
        each!(self, p => p.kubeconfig(name).await)
    }

    async fn delete(&self, name: &str) -> Result<Deleted, ProviderError> {
        each!(self, p => p.delete(name).await)
    }

    async fn list(&self) -> Result<Vec<Record>, ProviderError> {
        each!(self, p => p.list().await)
    }

    async fn update_record(&self, record: &Record) -> Result<(), ProviderError> {
        each!(self, p => p.update_record(record).await)
    }

    async fn hibernate(&self, name: &str) -> Result<(), ProviderError> {
        each!(self, p => p.hibernate(name).await)
    }

    async fn swap_record(&self, expected: &Record, new: &Record) -> Result<bool, ProviderError> {
        each!(self, p => p.swap_record(expected, new).await)
    }

    async fn lease_store<'a>(
        &'a self,
        name: &str,
        client: Option<&kube::Client>,
    ) -> Result<AnyLeaseStore<'a>, ProviderError> {
        each!(self, p => p.lease_store(name, client).await)
    }

    fn cluster_resource_id(&self, name: &str) -> Option<String> {
        each!(self, p => p.cluster_resource_id(name))
    }
}
