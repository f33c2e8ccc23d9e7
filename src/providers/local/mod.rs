//! The `local` provider: a simulated cluster per environment on this machine.
//!
//! It runs the test control plane's components (etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler and kwok) as detached processes on free 127.0.0.1 ports, with state under
//! `$XDG_STATE_HOME/ephemera/local/<name>` (default `~/.local/state`). Pods are scheduled and
//! reported Running by kwok, but nothing runs, so nothing serves traffic.
//!
//! - `ensure` is idempotent and race-safe: a per-name lock file decides between concurrent runs,
//!   and the loser finds the winner's cluster up. Processes that died (reboot, `kill -9`) are
//!   restarted on the same etcd data.
//! - The record is the ConfigMap `ephemera` in `kube-system`; a copy in the state dir lets `list`
//!   report a stopped cluster (with a warning) instead of dropping it.
//! - `delete` stops the processes (SIGTERM, then SIGKILL) and removes the state dir.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::config::LocalConfig;
use crate::progress::Progress;
use crate::providers::probe::{Probe, SystemProbe};
use crate::providers::{
    ClusterRequest, Deleted, Ensured, Kubeconfig, Provider, ProviderError, configmap,
};
use crate::record::Record;
use crate::templates::Renderer;

pub mod bins;
mod cluster;
mod pki;
mod process;
mod state;

pub use cluster::Timeouts;

use state::{ClusterDir, Lock, Root};

/// The kwok stages file under `templates/`.
pub const STAGES_FILE: &str = "providers/local/kwok-stages.yaml";

/// The `local` provider.
#[derive(Debug)]
pub struct LocalProvider {
    root: Root,
    search: bins::Search,
    stages: Cow<'static, [u8]>,
    nodes: u32,
    keep_on_failure: bool,
    timeouts: Timeouts,
}

impl LocalProvider {
    /// A provider for `cfg`, finding binaries through `EPHEMERA_LOCAL_BIN`, `cfg.bin_dir` or the
    /// testcluster cache, with the embedded kwok stages. Binaries are checked when a cluster is
    /// ensured, so `list` and `delete` work without them.
    ///
    /// # Errors
    /// `nodes` is 0, or no state directory can be determined (neither `XDG_STATE_HOME` nor
    /// `HOME` is set).
    pub fn new(cfg: &LocalConfig) -> Result<Self, ProviderError> {
        let renderer = Renderer::new(None).map_err(|e| ProviderError::Config(e.to_string()))?;
        Self::with_probe(cfg, &SystemProbe, &renderer)
    }

    /// Like [`LocalProvider::new`], with the machine described by `probe` and the kwok stages from
    /// `renderer` (so `--templates` can override them).
    ///
    /// # Errors
    /// As [`LocalProvider::new`], or the stages file is missing from the templates.
    pub fn with_probe(
        cfg: &LocalConfig,
        probe: &impl Probe,
        renderer: &Renderer,
    ) -> Result<Self, ProviderError> {
        if cfg.nodes == 0 {
            return Err(ProviderError::Config(
                "provider.local.nodes: must be at least 1".into(),
            ));
        }
        let search = bins::Search::resolve(cfg.bin_dir.as_deref(), probe)?;
        let root = state_root(probe)?;
        let stages = renderer.data_file(STAGES_FILE).ok_or_else(|| {
            ProviderError::Config(format!("templates/{STAGES_FILE}: no such file"))
        })?;
        Ok(LocalProvider {
            root: Root { path: root },
            search,
            stages,
            nodes: cfg.nodes,
            keep_on_failure: false,
            timeouts: Timeouts::default(),
        })
    }

    /// Keeps the state directory in place elsewhere than the XDG default (tests, sandboxes).
    pub fn with_state_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Root { path: root.into() };
        self
    }

    /// Keeps a cluster this run created when `ensure` fails, for debugging (`--keep-on-failure`).
    pub fn keep_on_failure(mut self, keep: bool) -> Self {
        self.keep_on_failure = keep;
        self
    }

    /// Where every local cluster keeps its state.
    pub fn state_root(&self) -> &Path {
        &self.root.path
    }

    fn dir(&self, name: &str) -> Result<ClusterDir, ProviderError> {
        // Names become directory names: only DNS labels, so never `..` or `/`.
        if !crate::names::is_dns_label(name) {
            return Err(ProviderError::Config(format!(
                "local environment name {name:?} is not a DNS-1123 label"
            )));
        }
        Ok(self.root.cluster(name))
    }

    async fn lock(&self, name: &str) -> Result<Lock, ProviderError> {
        let root = self.root.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || root.lock(&name))
            .await
            .map_err(|e| {
                ProviderError::Config(format!("waiting for the lock of local environment: {e}"))
            })?
    }

    async fn ensure_locked(
        &self,
        dir: &ClusterDir,
        req: &ClusterRequest,
        bins: &bins::Binaries,
    ) -> Result<Record, ProviderError> {
        if dir.read_record()?.is_none() {
            dir.write_record(&req.record)?;
        }
        let spec = cluster::Spec {
            bins,
            stages: &self.stages,
            nodes: self.nodes,
            timeouts: self.timeouts,
        };
        let kubeconfig = cluster::converge(dir, &spec).await?;
        let client = kubeconfig.client().await?;
        let record = configmap::ensure(client, &dir.name, &req.record).await?;
        dir.write_record(&record)?;
        Ok(record)
    }

    /// Whether every recorded process of the cluster runs.
    fn running(dir: &ClusterDir) -> Result<bool, ProviderError> {
        Ok(dir.read_state()?.is_some_and(|s| {
            bins::COMPONENTS
                .iter()
                .all(|c| s.processes.get(*c).is_some_and(process::Proc::alive))
        }))
    }

    async fn remove(&self, dir: &ClusterDir) -> Result<(), ProviderError> {
        match dir.read_state() {
            Ok(Some(state)) => cluster::stop_all(&state).await?,
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}; removing the state dir anyway"),
        }
        match std::fs::remove_dir_all(&dir.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ProviderError::io(
                format!("removing {}", dir.path.display()),
                e,
            )),
        }
    }

    async fn list_one(&self, dir: &ClusterDir) -> Result<Option<Record>, ProviderError> {
        let copy = dir.read_record()?;
        if Self::running(dir)? {
            let live = async {
                let kubeconfig = Kubeconfig::read(&dir.join("kubeconfig"))?;
                configmap::read(kubeconfig.client().await?, &dir.name).await
            };
            match live.await {
                Ok(Some(record)) => return Ok(Some(record)),
                Ok(None) => tracing::warn!(
                    "local environment {}: no record on the cluster yet; using the local copy",
                    dir.name
                ),
                Err(e) => tracing::warn!(
                    "local environment {}: cannot read its record ({e}); using the local copy",
                    dir.name
                ),
            }
        } else {
            tracing::warn!(
                "local environment {} is stopped (its processes are not running); `up` restarts it, `down` removes it",
                dir.name
            );
        }
        if copy.is_none() {
            tracing::warn!(
                "local environment {} has no record ({} has no {}); `down` removes it",
                dir.name,
                dir.path.display(),
                state::RECORD_FILE
            );
        }
        Ok(copy)
    }
}

/// `$XDG_STATE_HOME/ephemera/local`, default `~/.local/state/ephemera/local`.
///
/// # Errors
/// Neither variable is set.
pub fn state_root(probe: &impl Probe) -> Result<PathBuf, ProviderError> {
    probe
        .xdg_dir("XDG_STATE_HOME", ".local/state")
        .map(|d| d.join("ephemera").join("local"))
        .ok_or_else(|| {
            ProviderError::Config(
                "cannot place local clusters: neither XDG_STATE_HOME nor HOME is set".into(),
            )
        })
}

impl Provider for LocalProvider {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn prepare(&self, progress: &dyn Progress) -> Result<(), ProviderError> {
        self.search.build_missing(&SystemProbe, progress).await
    }

    async fn ensure(&self, req: &ClusterRequest) -> Result<Ensured, ProviderError> {
        let dir = self.dir(&req.name)?;
        let mut bins = self.search.find(&SystemProbe)?;
        if let Some(p) = self.search.optional(&SystemProbe, bins::ROLLOUTS) {
            bins.insert(bins::ROLLOUTS, p);
        }
        let lock = self.lock(&req.name).await?;
        let created = !dir.exists();
        match self.ensure_locked(&dir, req, &bins).await {
            Ok(record) => {
                drop(lock);
                Ok(Ensured {
                    created,
                    record,
                    resource_id: Some(dir.path.display().to_string()),
                    portal_url: None,
                    serves_traffic: false,
                    oidc_issuer: None,
                })
            }
            Err(e) if created && !self.keep_on_failure => {
                tracing::warn!(
                    "local environment {}: ensure failed; removing the half-made cluster",
                    req.name
                );
                if let Err(cleanup) = self.remove(&dir).await {
                    tracing::warn!(
                        "local environment {}: removing the half-made cluster failed: {cleanup}",
                        req.name
                    );
                } else {
                    lock.remove();
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn kubeconfig(&self, name: &str) -> Result<Kubeconfig, ProviderError> {
        let dir = self.dir(name)?;
        if !dir.exists() {
            return Err(ProviderError::NotFound(name.to_string()));
        }
        Kubeconfig::read(&dir.join("kubeconfig"))
    }

    async fn delete(&self, name: &str) -> Result<Deleted, ProviderError> {
        let dir = self.dir(name)?;
        let lock = self.lock(name).await?;
        if !dir.exists() {
            lock.remove();
            return Ok(Deleted::AlreadyGone);
        }
        self.remove(&dir).await?;
        lock.remove();
        Ok(Deleted::Deleted)
    }

    async fn list(&self) -> Result<Vec<Record>, ProviderError> {
        let mut out = Vec::new();
        for name in self.root.names()? {
            let Ok(dir) = self.dir(&name) else {
                tracing::warn!(
                    "{}: not an environment name; ignoring it",
                    self.root.path.join(&name).display()
                );
                continue;
            };
            if let Some(record) = self.list_one(&dir).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    async fn update_record(&self, record: &Record) -> Result<(), ProviderError> {
        let dir = self.dir(&record.name)?;
        let _lock = self.lock(&record.name).await?;
        if !dir.exists() {
            return Err(ProviderError::NotFound(record.name.clone()));
        }
        if !Self::running(&dir)? {
            return Err(ProviderError::Config(format!(
                "local environment {} is stopped; `up` restarts it before its record can change",
                record.name
            )));
        }
        let kubeconfig = Kubeconfig::read(&dir.join("kubeconfig"))?;
        configmap::write(kubeconfig.client().await?, &record.name, record).await?;
        dir.write_record(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::probe::FakeProbe;

    fn renderer() -> Renderer {
        Renderer::new(None).unwrap()
    }

    #[test]
    fn state_root_follows_xdg() {
        let p = FakeProbe::new([("HOME", "/h")]);
        assert_eq!(
            state_root(&p).unwrap(),
            PathBuf::from("/h/.local/state/ephemera/local")
        );
        let p = FakeProbe::new([("HOME", "/h"), ("XDG_STATE_HOME", "/s")]);
        assert_eq!(state_root(&p).unwrap(), PathBuf::from("/s/ephemera/local"));
    }

    #[test]
    fn zero_nodes_is_a_config_error() {
        let cfg = LocalConfig {
            nodes: 0,
            bin_dir: None,
        };
        let err = LocalProvider::with_probe(&cfg, &FakeProbe::new([("HOME", "/h")]), &renderer())
            .unwrap_err();
        assert_eq!(err.to_string(), "provider.local.nodes: must be at least 1");
    }

    #[test]
    fn stages_are_embedded() {
        let p = LocalProvider::with_probe(
            &LocalConfig::default(),
            &FakeProbe::new([("HOME", "/h")]),
            &renderer(),
        )
        .unwrap();
        let text = String::from_utf8_lossy(&p.stages);
        assert!(text.contains("name: pod-running"), "{text}");
    }

    #[tokio::test]
    async fn missing_binaries_fail_before_anything_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("empty-bin");
        let bin = bin.to_str().unwrap();
        let probe = FakeProbe::new([("HOME", "/h"), (bins::BIN_ENV, bin)]);
        let p = LocalProvider::with_probe(&LocalConfig::default(), &probe, &renderer())
            .unwrap()
            .with_state_root(dir.path().join("state"));
        let req = ClusterRequest {
            name: "pr-1".into(),
            record: Record {
                name: "pr-1".into(),
                provider: "local".into(),
                repository: None,
                pr: Some(1),
                created_at: "2026-11-28T10:00:00Z".parse().unwrap(),
                expires_at: "2026-11-28T12:00:00Z".parse().unwrap(),
                created_by: None,
                version: crate::VERSION.into(),
                url: None,
                env_file: None,
                pool: None,
            },
        };
        let err = p.ensure(&req).await.unwrap_err();
        assert!(matches!(err, ProviderError::MissingTool { .. }), "{err}");
        assert!(
            !dir.path().join("state").exists(),
            "nothing is created on bad input"
        );
        assert!(p.list().await.unwrap().is_empty());
        assert_eq!(p.delete("pr-1").await.unwrap(), Deleted::AlreadyGone);
        assert!(matches!(
            p.kubeconfig("pr-1").await,
            Err(ProviderError::NotFound(_))
        ));
        assert!(matches!(p.dir("../x"), Err(ProviderError::Config(_))));
    }
}
