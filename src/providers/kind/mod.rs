//! The `kind` provider: a kind cluster per environment, driven through kind's documented CLI
//! (`create cluster`, `get clusters`, `get kubeconfig`, `delete cluster`), never through a shell.
//!
//! - Clusters are named `ephemera-<environment>`; `list` keeps only names with that prefix.
//! - The record is the ConfigMap `ephemera` in `kube-system` of the cluster itself.
//! - The cluster config comes from `templates/providers/kind/cluster.yaml.hbs`: the
//!   `ingress-ready=true` node label, host ports 80/443 (or the configured mappings) and an
//!   optional registry mirror, and any `kubeadmConfigPatches` of the environment.
//! - `loadImages` are copied from the local container engine into the cluster on every `ensure`
//!   (`kind load docker-image`; kind skips what the node has).
//! - `ensure` treats kind's "node(s) already exist" as "someone else made it" and waits for it; a
//!   create that fails otherwise deletes what kind left behind, unless `keep_on_failure`. A
//!   cluster that exists but does not answer within a create's whole wait was left half-made by a
//!   killed run: it is deleted and made again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::KindConfig;
use crate::providers::plan::{kind_cluster_config, kind_hosts_toml, kind_mirror_dir};
use crate::providers::probe::{Probe, SystemProbe};
use crate::providers::{
    ClusterRequest, Deleted, Ensured, Kubeconfig, Provider, ProviderError, configmap, write_private,
};
use crate::record::Record;
use crate::templates::Renderer;

mod cli;
pub mod tools;

use cli::{ALREADY_EXISTS, Kind, args, path_arg};

/// Every kind cluster ephemera makes is named `<PREFIX><environment>`.
pub const PREFIX: &str = "ephemera-";

/// How long `kind create cluster --wait` waits for the control plane by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// The `kind` provider.
pub struct KindProvider {
    cfg: KindConfig,
    renderer: Arc<Renderer>,
    kind: Kind,
    keep_on_failure: bool,
    wait: Duration,
}

impl std::fmt::Debug for KindProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindProvider")
            .field("kind", &self.kind.path)
            .field("keep_on_failure", &self.keep_on_failure)
            .finish()
    }
}

/// The kind cluster name of environment `name`.
pub fn cluster_name(name: &str) -> String {
    format!("{PREFIX}{name}")
}

impl KindProvider {
    /// A provider for `cfg`, after checking that kind and docker (or podman) are on `PATH`.
    ///
    /// # Errors
    /// [`ProviderError::MissingTool`] naming every missing tool and how to install it.
    pub fn new(cfg: &KindConfig, renderer: Arc<Renderer>) -> Result<Self, ProviderError> {
        Self::with_probe(cfg, renderer, &SystemProbe)
    }

    /// Like [`KindProvider::new`], looking for the tools on the machine `probe` describes.
    ///
    /// # Errors
    /// As [`KindProvider::new`].
    pub fn with_probe(
        cfg: &KindConfig,
        renderer: Arc<Renderer>,
        probe: &impl Probe,
    ) -> Result<Self, ProviderError> {
        let tools = tools::find(probe).map_err(|m| tools::missing_error(&m))?;
        // Validation has checked the value; an unparsable one here falls back to the default.
        let wait = cfg
            .wait
            .as_deref()
            .and_then(|w| crate::config::duration::parse(w, &['s', 'm', 'h']).ok())
            .unwrap_or(DEFAULT_WAIT);
        Ok(KindProvider {
            cfg: cfg.clone(),
            renderer,
            kind: Kind { path: tools.kind },
            keep_on_failure: false,
            wait,
        })
    }

    /// Keeps a cluster whose creation failed, for debugging (`--keep-on-failure`).
    pub fn keep_on_failure(mut self, keep: bool) -> Self {
        self.keep_on_failure = keep;
        self
    }

    /// How long `create cluster --wait` (and a run that lost a race) waits for the control plane.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    fn check_name(name: &str) -> Result<(), ProviderError> {
        if crate::names::is_dns_label(name) && name.len() <= crate::names::MAX_NAME_LEN {
            Ok(())
        } else {
            Err(ProviderError::Config(format!(
                "kind environment name {name:?} is not a valid environment name"
            )))
        }
    }

    /// Creates the cluster. `Ok(true)` when this call made it, `Ok(false)` when kind says it
    /// exists already (another run won the race).
    async fn create(&self, name: &str, cluster: &str) -> Result<bool, ProviderError> {
        let config = kind_cluster_config(&self.cfg, cluster, &self.renderer)?;
        if let Some(m) = &self.cfg.registry_mirror {
            let dir = kind_mirror_dir(cluster, &m.host);
            write_private(
                &dir.join("hosts.toml"),
                kind_hosts_toml(&m.host, &m.endpoint).as_bytes(),
            )?;
        }
        let work = PrivateDir::new(cluster)?;
        let config_path = work.0.join("cluster.yaml");
        write_private(&config_path, config.as_bytes())?;
        let mut argv = args(["create", "cluster", "--name", cluster, "--config"]);
        argv.push(path_arg(&config_path));
        if let Some(image) = &self.cfg.node_image {
            argv.extend(["--image".to_string(), image.clone()]);
        }
        argv.extend(["--wait".to_string(), format!("{}s", self.wait.as_secs())]);
        // A kubeconfig of our own, so kind never touches the user's ~/.kube/config.
        argv.extend([
            "--kubeconfig".to_string(),
            path_arg(&work.0.join("kubeconfig")),
        ]);
        tracing::info!("creating kind cluster {cluster} for environment {name}");
        match self.kind.run(&argv, false).await {
            Ok(_) => Ok(true),
            Err(Ok(f)) if f.contains(ALREADY_EXISTS) => {
                tracing::info!("kind cluster {cluster} already exists; using it");
                Ok(false)
            }
            Err(Ok(f)) => {
                self.cleanup_failed(cluster).await;
                Err(f.into_error())
            }
            Err(Err(e)) => Err(e),
        }
    }

    /// Deletes what a failed creation left behind, unless asked to keep it. Best effort: the
    /// creation's own error is what the caller reports.
    async fn cleanup_failed(&self, cluster: &str) {
        if self.keep_on_failure {
            tracing::warn!(
                "kind cluster {cluster}: creation failed; keeping it (--keep-on-failure)"
            );
            return;
        }
        tracing::warn!("kind cluster {cluster}: creation failed; deleting what was made");
        if let Err(e) = self.kind.delete(cluster).await {
            tracing::warn!("kind cluster {cluster}: deleting the half-made cluster failed: {e}");
        }
        self.remove_mirror(cluster);
    }

    fn remove_mirror(&self, cluster: &str) {
        if let Some(m) = &self.cfg.registry_mirror
            && let Some(root) = kind_mirror_dir(cluster, &m.host)
                .parent()
                .and_then(|p| p.parent())
        {
            let _ = std::fs::remove_dir_all(root);
        }
    }

    /// The stored record of a cluster (written from `record` when it has none), retried until
    /// `deadline`: the cluster may still be coming up in another run.
    async fn record_of(
        &self,
        cluster: &str,
        record: &Record,
        deadline: Instant,
    ) -> Result<Record, ProviderError> {
        loop {
            let attempt = async {
                let text = self
                    .kind
                    .kubeconfig(cluster)
                    .await?
                    .ok_or_else(|| ProviderError::NotFound(cluster.to_string()))?;
                let client = Kubeconfig::from_yaml(&text)?.client().await?;
                configmap::ensure(client, cluster, record).await
            };
            match attempt.await {
                Ok(r) => return Ok(r),
                // A damaged or foreign record (Config) will not heal by waiting.
                Err(e) if Instant::now() < deadline && !matches!(e, ProviderError::Config(_)) => {
                    tracing::debug!("kind cluster {cluster} not ready yet: {e}");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A directory only we can read, removed on drop: the config and kubeconfig of one `create`.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new(cluster: &str) -> Result<Self, ProviderError> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!(
            "ephemera-{cluster}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| ProviderError::io(format!("creating {}", path.display()), e))?;
        Ok(PrivateDir(path))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Provider for KindProvider {
    fn kind(&self) -> &'static str {
        "kind"
    }

    async fn ensure(&self, req: &ClusterRequest) -> Result<Ensured, ProviderError> {
        Self::check_name(&req.name)?;
        let cluster = cluster_name(&req.name);
        let exists = self.kind.clusters().await?.contains(&cluster);
        let mut created = if exists {
            false
        } else {
            self.create(&req.name, &cluster).await?
        };
        // Another run may still be making the cluster: it gets the time a create would wait.
        let deadline = Instant::now() + self.wait;
        let mut record = self.record_of(&cluster, &req.record, deadline).await;
        if let Err(e) = &record
            && !created
            && !matches!(e, ProviderError::Config(_))
        {
            // No creation takes longer than that wait, so this one's creator is gone (killed
            // mid-create): the half-made cluster never answers. Make it again.
            tracing::warn!(
                "kind cluster {cluster} exists but did not answer within {}s ({e}); deleting it and creating it again",
                self.wait.as_secs()
            );
            self.kind.delete(&cluster).await?;
            created = self.create(&req.name, &cluster).await?;
            let deadline = Instant::now() + self.wait;
            record = self.record_of(&cluster, &req.record, deadline).await;
        }
        let record = match record {
            Ok(r) => self
                .kind
                .load(&cluster, &self.cfg.load_images)
                .await
                .map(|()| r),
            Err(e) => Err(e),
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                if created {
                    self.cleanup_failed(&cluster).await;
                }
                return Err(e);
            }
        };
        Ok(Ensured {
            created,
            record,
            resource_id: Some(format!("kind-{cluster}")),
            portal_url: None,
            serves_traffic: true,
            oidc_issuer: None,
        })
    }

    async fn kubeconfig(&self, name: &str) -> Result<Kubeconfig, ProviderError> {
        Self::check_name(name)?;
        let text = self
            .kind
            .kubeconfig(&cluster_name(name))
            .await?
            .ok_or_else(|| ProviderError::NotFound(name.to_string()))?;
        Kubeconfig::from_yaml(&text)
    }

    async fn delete(&self, name: &str) -> Result<Deleted, ProviderError> {
        Self::check_name(name)?;
        let cluster = cluster_name(name);
        if !self.kind.clusters().await?.contains(&cluster) {
            self.remove_mirror(&cluster);
            return Ok(Deleted::AlreadyGone);
        }
        self.kind.delete(&cluster).await?;
        self.remove_mirror(&cluster);
        Ok(Deleted::Deleted)
    }

    async fn list(&self) -> Result<Vec<Record>, ProviderError> {
        let mut out = Vec::new();
        for cluster in self.kind.clusters().await? {
            if !cluster.starts_with(PREFIX) {
                continue;
            }
            let read = async {
                let text = self
                    .kind
                    .kubeconfig(&cluster)
                    .await?
                    .ok_or_else(|| ProviderError::NotFound(cluster.clone()))?;
                configmap::read(Kubeconfig::from_yaml(&text)?.client().await?, &cluster).await
            };
            match read.await {
                Ok(Some(record)) => out.push(record),
                Ok(None) => tracing::warn!(
                    "kind cluster {cluster} has ephemera's name prefix but no record; `kind delete cluster --name {cluster}` \
                     removes it"
                ),
                Err(e) => tracing::warn!("kind cluster {cluster}: cannot read its record: {e}"),
            }
        }
        Ok(out)
    }

    async fn update_record(&self, record: &Record) -> Result<(), ProviderError> {
        Self::check_name(&record.name)?;
        let cluster = cluster_name(&record.name);
        let text = self
            .kind
            .kubeconfig(&cluster)
            .await?
            .ok_or_else(|| ProviderError::NotFound(record.name.clone()))?;
        configmap::write(
            Kubeconfig::from_yaml(&text)?.client().await?,
            &cluster,
            record,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::probe::FakeProbe;

    #[test]
    fn new_names_missing_tools() {
        let r = Arc::new(Renderer::new(None).unwrap());
        let err = KindProvider::with_probe(
            &KindConfig::default(),
            r,
            &FakeProbe::new([("PATH", "/none")]),
        )
        .unwrap_err();
        assert!(matches!(err, ProviderError::MissingTool { .. }), "{err}");
        assert!(err.to_string().contains("kind"), "{err}");
    }

    #[test]
    fn names_carry_the_prefix() {
        assert_eq!(cluster_name("pr-7"), "ephemera-pr-7");
        assert!(KindProvider::check_name("../x").is_err());
    }
}
