//! Finding the control-plane binaries: `EPHEMERA_LOCAL_BIN`, else the environment file's
//! `local.binDir`, else the cache that `scripts/testcluster build` fills.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::providers::ProviderError;
use crate::providers::probe::Probe;

/// The variable naming the binaries' directory (or a colon-separated list of directories).
pub const BIN_ENV: &str = "EPHEMERA_LOCAL_BIN";

/// The versions `scripts/testcluster` pins; its cache keeps each under `<component>-<version>`.
pub const KUBERNETES_VERSION: &str = "v1.36.3";
pub const ETCD_VERSION: &str = "v3.6.16";
pub const KWOK_VERSION: &str = "v0.8.0";
pub const ARGO_ROLLOUTS_VERSION: &str = "v1.9.1";

/// Optional: the Argo Rollouts controller, run beside the control plane when it is found, because
/// kwok runs no pods and the add-on's in-cluster controller would never reconcile a Rollout.
pub const ROLLOUTS: &str = "rollouts-controller";

/// The binaries a local cluster runs, in start order.
pub const COMPONENTS: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];

/// The command that fills the default cache.
pub const BUILD_COMMAND: &str = "scripts/testcluster build";

/// Where the binaries were looked for, and why there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    /// `EPHEMERA_LOCAL_BIN`, `provider.local.binDir` or the testcluster cache.
    pub source: &'static str,
    pub dirs: Vec<PathBuf>,
}

/// Every component found: component name to path.
pub type Binaries = BTreeMap<&'static str, PathBuf>;

impl Search {
    /// Picks the directories, by precedence.
    ///
    /// # Errors
    /// No override is set and neither `EPHEMERA_TESTCLUSTER_CACHE`, `XDG_CACHE_HOME` nor `HOME`
    /// says where the cache is.
    pub fn resolve(bin_dir: Option<&str>, probe: &impl Probe) -> Result<Search, ProviderError> {
        if let Some(v) = probe.var_nonempty(BIN_ENV) {
            return Ok(Search {
                source: BIN_ENV,
                dirs: split_dirs(&v),
            });
        }
        if let Some(v) = bin_dir.filter(|v| !v.is_empty()) {
            return Ok(Search {
                source: "provider.local.binDir",
                dirs: split_dirs(v),
            });
        }
        let cache = match probe.var_nonempty("EPHEMERA_TESTCLUSTER_CACHE") {
            Some(c) => PathBuf::from(c),
            None => probe
                .xdg_dir("XDG_CACHE_HOME", ".cache")
                .ok_or_else(|| {
                    ProviderError::Config(format!(
                        "cannot find the control-plane binaries: neither {BIN_ENV}, XDG_CACHE_HOME nor HOME is set"
                    ))
                })?
                .join("ephemera")
                .join("testcluster"),
        };
        let bin = cache.join("bin");
        Ok(Search {
            source: "the scripts/testcluster cache",
            dirs: vec![
                bin.join(format!("etcd-{ETCD_VERSION}")),
                bin.join(format!("kubernetes-{KUBERNETES_VERSION}")),
                bin.join(format!("kwok-{KWOK_VERSION}")),
                bin.join(format!("argo-rollouts-{ARGO_ROLLOUTS_VERSION}")),
            ],
        })
    }

    /// Finds every component: each in the first directory that has it.
    ///
    /// # Errors
    /// [`ProviderError::MissingTool`] naming every missing binary, where it looked, and how to
    /// build or point at them.
    pub fn find(&self, probe: &impl Probe) -> Result<Binaries, ProviderError> {
        let (found, missing) = self.locate(probe);
        if missing.is_empty() {
            return Ok(found);
        }
        Err(ProviderError::MissingTool {
            tool: "the local control plane".into(),
            hint: self.hint(&missing),
        })
    }

    /// The components found (each in the first directory that has it) and those missing.
    pub fn locate(&self, probe: &impl Probe) -> (Binaries, Vec<&'static str>) {
        let mut found = Binaries::new();
        let mut missing = Vec::new();
        for c in COMPONENTS {
            match self
                .dirs
                .iter()
                .map(|d| d.join(c))
                .find(|p| probe.is_executable(p))
            {
                Some(p) => {
                    found.insert(c, p);
                }
                None => missing.push(c),
            }
        }
        (found, missing)
    }

    /// An optional binary, in the first directory that has it.
    pub fn optional(&self, probe: &impl Probe, name: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| probe.is_executable(p))
    }

    /// What is missing where, and how to fix it, for errors and `doctor`.
    pub fn hint(&self, missing: &[&str]) -> String {
        let dirs = self
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        format!(
            "missing {} in {dirs} ({}); {}",
            missing.join(", "),
            self.source,
            self.fix()
        )
    }

    /// The command or setting that provides the binaries.
    pub fn fix(&self) -> String {
        if self.source == BIN_ENV || self.source.starts_with("provider.") {
            format!("put them there, or unset {BIN_ENV} and run `{BUILD_COMMAND}`")
        } else {
            format!("run `{BUILD_COMMAND}`, or set {BIN_ENV} to a directory holding them")
        }
    }
}

fn split_dirs(v: &str) -> Vec<PathBuf> {
    v.split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::probe::FakeProbe;

    #[test]
    fn env_var_beats_the_environment_file_and_the_cache() {
        let p = FakeProbe::new([(BIN_ENV, "/x:/y"), ("HOME", "/h")]);
        let s = Search::resolve(Some("/z"), &p).unwrap();
        assert_eq!(s.source, BIN_ENV);
        assert_eq!(s.dirs, [PathBuf::from("/x"), PathBuf::from("/y")]);
        let p = FakeProbe::new([("HOME", "/h")]);
        assert_eq!(
            Search::resolve(Some("/z"), &p).unwrap().dirs,
            [PathBuf::from("/z")]
        );
    }

    #[test]
    fn cache_follows_the_script_layout() {
        let p = FakeProbe::new([("HOME", "/h")]);
        let s = Search::resolve(None, &p).unwrap();
        assert_eq!(
            s.dirs[1],
            PathBuf::from("/h/.cache/ephemera/testcluster/bin/kubernetes-v1.36.3")
        );
        let p = FakeProbe::new([("HOME", "/h"), ("EPHEMERA_TESTCLUSTER_CACHE", "/c")]);
        assert_eq!(
            Search::resolve(None, &p).unwrap().dirs[0],
            PathBuf::from("/c/bin/etcd-v3.6.16")
        );
    }

    #[test]
    fn find_names_every_missing_binary() {
        let p = FakeProbe::new([(BIN_ENV, "/a:/b")])
            .with_executable("/b/etcd")
            .with_executable("/a/kwok");
        let s = Search::resolve(None, &p).unwrap();
        let err = s.find(&p).unwrap_err().to_string();
        assert_eq!(
            err,
            "the local control plane is not available: missing kube-apiserver, kube-controller-manager, \
             kube-scheduler in /a:/b (EPHEMERA_LOCAL_BIN); put them there, or unset EPHEMERA_LOCAL_BIN and run \
             `scripts/testcluster build`"
        );
        let p = p
            .with_executable("/a/kube-apiserver")
            .with_executable("/b/kube-apiserver")
            .with_executable("/a/kube-controller-manager")
            .with_executable("/a/kube-scheduler");
        let found = s.find(&p).unwrap();
        assert_eq!(found["kube-apiserver"], PathBuf::from("/a/kube-apiserver"));
        assert_eq!(found["etcd"], PathBuf::from("/b/etcd"));
    }
}
