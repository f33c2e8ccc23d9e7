//! Cluster providers: AKS, kind and local.
//!
//! Every provider implements [`Provider`]: ensure, kubeconfig, delete, list, record updates, and
//! what the engine needs beyond those: where the environment's lease is kept and the id of its
//! cluster. No provider-specific type leaks out of this module; callers hold an
//! [`any::AnyProvider`] and never branch on which provider it is. What AKS shares with the Azure
//! DNS and identity clients (the ARM client, clouds, credentials) lives below, in
//! [`crate::azure`]; the machine's variables and tools in [`crate::probe`].

use std::future::Future;
use std::path::Path;

use crate::progress::Progress;
use crate::record::Record;
use lease::{AnyLeaseStore, KubeLease};

pub mod aks;
pub mod any;
pub mod configmap;
pub mod existing;
pub mod kind;
pub mod kube_lease;
pub mod kubeconfig;
pub mod lease;
pub mod local;
pub mod plan;

/// The machine's variables and tools, kept at this path for the providers' callers.
pub use crate::probe;

pub use kubeconfig::Kubeconfig;
pub use plan::{ProviderPlan, plan_request};

/// What the provider is asked to ensure.
#[derive(Clone, Debug)]
pub struct ClusterRequest {
    /// The environment name (also the cluster's name, with the provider's own prefix rules).
    pub name: String,
    /// The ownership record written on creation.
    pub record: Record,
}

/// The outcome of [`Provider::ensure`].
#[derive(Clone, Debug)]
pub struct Ensured {
    /// This run created the cluster, so a failure later in the same run should delete it.
    pub created: bool,
    /// The record as stored on the cluster (the existing one when the cluster already existed).
    pub record: Record,
    /// A provider resource id, such as the ARM id of the managed cluster.
    pub resource_id: Option<String>,
    /// A link for people, such as the Azure portal page.
    pub portal_url: Option<String>,
    /// Whether pods really run (false for `local`, whose pods are simulated).
    pub serves_traffic: bool,
    /// The cluster's OIDC issuer URL, when it has one (AKS with `dns.identity`).
    pub oidc_issuer: Option<String>,
}

/// The outcome of [`Provider::delete`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    AlreadyGone,
}

/// What every provider offers. Every mutation is an ensure: a rerun converges.
pub trait Provider: Send + Sync {
    /// `aks`, `kind` or `local`.
    fn kind(&self) -> &'static str;

    /// Makes sure the cluster exists and is ready, creating it when missing.
    fn ensure(
        &self,
        req: &ClusterRequest,
    ) -> impl Future<Output = Result<Ensured, ProviderError>> + Send;

    /// Fetches an admin kubeconfig for the environment's cluster.
    fn kubeconfig(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Kubeconfig, ProviderError>> + Send;

    /// Deletes the cluster and everything the provider created for it. Already gone is success.
    fn delete(&self, name: &str) -> impl Future<Output = Result<Deleted, ProviderError>> + Send;

    /// Lists the environments this provider can see that carry our ownership record.
    /// An error here must never be read as "nothing exists".
    fn list(&self) -> impl Future<Output = Result<Vec<Record>, ProviderError>> + Send;

    /// Rewrites the stored record (for `extend`, and to stamp the URL).
    fn update_record(
        &self,
        record: &Record,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send;

    /// Stops environment `name`'s cluster so that it costs little while idle (a hibernated
    /// warm-pool member); [`Provider::ensure`] starts it again. Only AKS clusters can be stopped.
    ///
    /// # Errors
    /// [`ProviderError::Config`] on providers that cannot stop a cluster; the provider's own.
    fn hibernate(&self, _name: &str) -> impl Future<Output = Result<(), ProviderError>> + Send {
        let kind = self.kind();
        async move {
            Err(ProviderError::Config(format!(
                "pool.stopped: {kind} clusters cannot be stopped; only aks"
            )))
        }
    }

    /// Replaces the stored record of `new.name` with `new` only while it still is `expected`: a
    /// compare-and-swap on the record's own store (the record ConfigMap's `resourceVersion` on
    /// kind and local, the cluster's ETag with `If-Match` on AKS), so two runs claiming one
    /// warm-pool member cannot both win. The record's other copies (the local state dir, the
    /// AKS resource group's tags) follow after a successful swap.
    ///
    /// # Errors
    /// The store cannot be reached; `Ok(false)` means another writer changed it first or it is
    /// gone.
    fn swap_record(
        &self,
        expected: &Record,
        new: &Record,
    ) -> impl Future<Output = Result<bool, ProviderError>> + Send {
        async move {
            let client = self.kubeconfig(&new.name).await?.client().await?;
            if !configmap::swap(client, &new.name, expected, new).await? {
                return Ok(false);
            }
            self.update_record(new).await?;
            Ok(true)
        }
    }

    /// Where environment `name`'s lease is kept. By default a `coordination.k8s.io` Lease in
    /// the cluster, reached with `client`, or with a client made from the provider's kubeconfig
    /// when none is given.
    ///
    /// # Errors
    /// [`ProviderError::NotFound`] when the environment does not exist; kubeconfig and client
    /// errors.
    fn lease_store<'a>(
        &'a self,
        name: &str,
        client: Option<&kube::Client>,
    ) -> impl Future<Output = Result<AnyLeaseStore<'a>, ProviderError>> + Send {
        let client = client.cloned();
        async move {
            let client = match client {
                Some(c) => c,
                None => self.kubeconfig(name).await?.client().await?,
            };
            Ok(AnyLeaseStore::Kube(KubeLease::new(client, name)))
        }
    }

    /// Makes what [`Provider::ensure`] needs on this machine before it runs (the local provider
    /// builds missing control-plane binaries), reporting progress as `step cluster`. Most
    /// providers need nothing.
    ///
    /// # Errors
    /// What was needed cannot be made.
    fn prepare(
        &self,
        _progress: &dyn Progress,
    ) -> impl Future<Output = Result<(), ProviderError>> + Send {
        async { Ok(()) }
    }

    /// The provider's id of environment `name`'s cluster (the ARM id on AKS), which what the
    /// environment owns elsewhere is named after (the DNS-01 identity's federated credential);
    /// `None` where clusters have none.
    fn cluster_resource_id(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Errors from providers.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The environment file or the process environment is unusable for this provider.
    #[error("{0}")]
    Config(String),
    /// A tool the provider needs is missing.
    #[error("{tool} is not available: {hint}")]
    MissingTool { tool: String, hint: String },
    /// A deadline passed; names the object and the state it was last seen in.
    #[error("timed out after {seconds}s waiting for {what}; last seen: {last_state}")]
    Timeout {
        what: String,
        seconds: u64,
        last_state: String,
    },
    /// A subprocess failed; keeps the command line and its output.
    #[error("`{command}` exited with {status}:\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    /// The environment does not exist.
    #[error("environment {0} does not exist")]
    NotFound(String),
    /// What this run was creating was deleted meanwhile (a `down` or `gc` ran): it is not
    /// created again.
    #[error(
        "{0} was deleted by another run (a down or gc) while this run was creating it; stopping here"
    )]
    DeletedMeanwhile(String),
    /// Another run holds the environment's lease.
    #[error("environment {name} is locked by {holder} until {until}")]
    LeaseHeld {
        name: String,
        holder: String,
        until: String,
    },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}")]
    Kube {
        context: String,
        #[source]
        source: crate::kube::KubeError,
    },
    #[error("{context}")]
    Transport {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// ARM's errors, as the AKS provider (and what else talks to ARM) met them.
    #[error(transparent)]
    Azure(#[from] crate::azure::AzureError),
}

impl ProviderError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        use crate::ExitStatus::*;
        match self {
            ProviderError::Config(_)
            | ProviderError::MissingTool { .. }
            | ProviderError::NotFound(_) => Usage,
            ProviderError::Timeout { .. } => TimedOut,
            ProviderError::LeaseHeld { .. } | ProviderError::DeletedMeanwhile(_) => LeaseHeld,
            ProviderError::Kube { source, .. } => source.exit_status(),
            ProviderError::Azure(e) => e.exit_status(),
            _ => Failed,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ProviderError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Writes `contents` to `path` with mode 0600, atomically (temp file + rename). Directories it
/// has to create are made 0700; existing ones are left as they are.
///
/// # Errors
/// Any I/O error, with the path in the message.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), ProviderError> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| ProviderError::io(format!("creating {}", dir.display()), e))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = opts
        .open(&tmp)
        .map_err(|e| ProviderError::io(format!("writing {}", tmp.display()), e))?;
    f.write_all(contents)
        .map_err(|e| ProviderError::io(format!("writing {}", tmp.display()), e))?;
    f.sync_all()
        .map_err(|e| ProviderError::io(format!("writing {}", tmp.display()), e))?;
    drop(f);
    std::fs::rename(&tmp, path)
        .map_err(|e| ProviderError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_files_and_the_directories_made_for_them_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("state/kubeconfig/pr-1.yaml");
        write_private(&file, b"secret").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&root.path().join("state/kubeconfig")), 0o700);
        assert_eq!(mode(&root.path().join("state")), 0o700);
        assert_eq!(std::fs::read(&file).unwrap(), b"secret");
        // Rewriting replaces the contents and keeps the mode.
        write_private(&file, b"newer").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"newer");
        assert_eq!(mode(&file), 0o600);
    }
}
