//! Kubeconfigs: held in memory without ever being logged, written with mode 0600.

use std::fmt;
use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig as KubeFile};

use super::{ProviderError, write_private};

/// An admin kubeconfig. Its `Debug` output is redacted, so it cannot reach a log by accident.
#[derive(Clone)]
pub struct Kubeconfig {
    file: KubeFile,
}

impl fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kubeconfig(<redacted>)")
    }
}

impl Kubeconfig {
    /// Parses a kubeconfig document.
    ///
    /// # Errors
    /// [`ProviderError::Config`] when it is not a kubeconfig; the message never quotes its content.
    pub fn from_yaml(yaml: &str) -> Result<Self, ProviderError> {
        let file = KubeFile::from_yaml(yaml).map_err(|_| {
            ProviderError::Config("the cluster returned a kubeconfig that does not parse".into())
        })?;
        if file.contexts.is_empty() || file.clusters.is_empty() {
            return Err(ProviderError::Config(
                "the cluster returned a kubeconfig without contexts".into(),
            ));
        }
        Ok(Kubeconfig { file })
    }

    /// Reads a kubeconfig file.
    ///
    /// # Errors
    /// I/O errors, or a file that is not a kubeconfig.
    pub fn read(path: &Path) -> Result<Self, ProviderError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProviderError::io(format!("reading kubeconfig {}", path.display()), e))?;
        Self::from_yaml(&text)
            .map_err(|_| ProviderError::Config(format!("{}: not a kubeconfig", path.display())))
    }

    /// This kubeconfig with `context` as its current context; `None` when it has no such context.
    pub fn with_context(&self, context: &str) -> Option<Self> {
        self.file
            .contexts
            .iter()
            .any(|c| c.name == context)
            .then(|| {
                let mut file = self.file.clone();
                file.current_context = Some(context.to_string());
                Kubeconfig { file }
            })
    }

    /// The API server URL of the current (or first) context's cluster.
    pub fn server(&self) -> Option<String> {
        let ctx_name = self
            .file
            .current_context
            .clone()
            .or_else(|| self.file.contexts.first().map(|c| c.name.clone()))?;
        let ctx = self
            .file
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)?
            .context
            .as_ref()?;
        let cluster = self.file.clusters.iter().find(|c| c.name == ctx.cluster)?;
        cluster.cluster.as_ref()?.server.clone()
    }

    /// The same credentials with the cluster, user and context all named `name`, which becomes
    /// the current context. Used so a merged kubeconfig has one context per environment.
    pub fn renamed(&self, name: &str) -> Self {
        let mut file = self.file.clone();
        let current = file
            .current_context
            .clone()
            .or_else(|| file.contexts.first().map(|c| c.name.clone()));
        let ctx = file
            .contexts
            .iter()
            .find(|c| Some(&c.name) == current.as_ref())
            .cloned();
        if let Some(mut ctx) = ctx {
            let inner = ctx.context.clone().unwrap_or_default();
            let mut cluster = file
                .clusters
                .iter()
                .find(|c| c.name == inner.cluster)
                .cloned();
            let mut user = inner
                .user
                .as_ref()
                .and_then(|u| file.auth_infos.iter().find(|a| &a.name == u).cloned());
            ctx.name = name.to_string();
            let mut new_inner = inner;
            new_inner.cluster = name.to_string();
            if user.is_some() {
                new_inner.user = Some(name.to_string());
            }
            ctx.context = Some(new_inner);
            if let Some(c) = cluster.as_mut() {
                c.name = name.to_string();
            }
            if let Some(u) = user.as_mut() {
                u.name = name.to_string();
            }
            file.contexts = vec![ctx];
            file.clusters = cluster.into_iter().collect();
            file.auth_infos = user.into_iter().collect();
            file.current_context = Some(name.to_string());
        }
        Kubeconfig { file }
    }

    /// Serialises to YAML. Only for writing to files with [`write_private`]: never log this.
    pub fn to_yaml(&self) -> Result<String, ProviderError> {
        serde_saphyr::to_string(&self.file)
            .map_err(|e| ProviderError::Config(format!("cannot serialise kubeconfig: {e}")))
    }

    /// Writes this kubeconfig alone to `path`, mode 0600.
    ///
    /// # Errors
    /// I/O errors, naming the path.
    pub fn write_to(&self, path: &Path) -> Result<(), ProviderError> {
        write_private(path, self.to_yaml()?.as_bytes())
    }

    /// Merges this kubeconfig into the file at `path` (created when missing), replacing entries
    /// of the same names, and makes its context current. The file is rewritten with mode 0600.
    ///
    /// # Errors
    /// I/O errors, or an existing file that is not a kubeconfig.
    pub fn merge_into(&self, path: &Path) -> Result<(), ProviderError> {
        let mut base = if path.exists() {
            Kubeconfig::read(path)?.file
        } else {
            KubeFile::default()
        };
        for c in &self.file.clusters {
            base.clusters.retain(|x| x.name != c.name);
            base.clusters.push(c.clone());
        }
        for a in &self.file.auth_infos {
            base.auth_infos.retain(|x| x.name != a.name);
            base.auth_infos.push(a.clone());
        }
        for c in &self.file.contexts {
            base.contexts.retain(|x| x.name != c.name);
            base.contexts.push(c.clone());
        }
        base.current_context = self.file.current_context.clone();
        if base.api_version.is_none() {
            base.api_version = Some("v1".into());
            base.kind = Some("Config".into());
        }
        Kubeconfig { file: base }.write_to(path)
    }

    /// Removes the named context, and its cluster and user, from the file at `path`.
    /// A missing file or entry is fine.
    ///
    /// # Errors
    /// I/O errors.
    pub fn remove_from(path: &Path, name: &str) -> Result<(), ProviderError> {
        if !path.exists() {
            return Ok(());
        }
        let mut file = Kubeconfig::read(path)?.file;
        let before = file.contexts.len() + file.clusters.len() + file.auth_infos.len();
        file.contexts.retain(|c| c.name != name);
        file.clusters.retain(|c| c.name != name);
        file.auth_infos.retain(|a| a.name != name);
        if file.contexts.len() + file.clusters.len() + file.auth_infos.len() == before {
            return Ok(());
        }
        if file.current_context.as_deref() == Some(name) {
            file.current_context = None;
        }
        Kubeconfig { file }.write_to(path)
    }

    /// A kube client for this kubeconfig's current context.
    ///
    /// # Errors
    /// When the kubeconfig cannot make a client (bad certificates, unknown auth).
    pub async fn client(&self) -> Result<kube::Client, ProviderError> {
        let config =
            kube::Config::from_custom_kubeconfig(self.file.clone(), &KubeConfigOptions::default())
                .await
                .map_err(|e| ProviderError::Config(format!("kubeconfig is unusable: {e}")))?;
        kube::Client::try_from(config)
            .map_err(|e| ProviderError::Config(format!("kubeconfig is unusable: {e}")))
    }
}
