//! Finding the control-plane binaries: `EPHEMERA_LOCAL_BIN`, else the environment file's
//! `local.binDir`, else the cache that `scripts/testcluster build` fills. When the cache is the
//! source and a binary is missing, `up` fills it with that same recipe if it runs from a checkout
//! (so the quick start is one command); `EPHEMERA_LOCAL_BUILD=0` turns that off.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::progress::{Progress, State};
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

/// Set to `0` to make missing binaries an error instead of building them.
pub const BUILD_ENV: &str = "EPHEMERA_LOCAL_BUILD";

/// The recipe's components that hold [`COMPONENTS`] and the Rollouts controller.
const RECIPE_COMPONENTS: [&str; 4] = ["etcd", "kubernetes", "kwok", "argo-rollouts"];

/// Where the binaries were looked for, and why there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    /// `EPHEMERA_LOCAL_BIN`, `provider.local.binDir` or the testcluster cache.
    pub source: &'static str,
    pub dirs: Vec<PathBuf>,
    /// Whether a missing binary may be built with the recipe: only for the default cache, and
    /// not with `EPHEMERA_LOCAL_BUILD=0`. The recipe itself is looked for only then.
    pub buildable: bool,
}

/// `scripts/testcluster` in the checkout ephemera runs from, with its module wrappers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipe {
    pub script: PathBuf,
}

impl Recipe {
    /// The first of `starts` (or one of their parents) that holds `scripts/testcluster` and
    /// `scripts/testcluster.d`.
    pub fn locate(starts: &[PathBuf]) -> Option<Recipe> {
        starts
            .iter()
            .flat_map(|s| s.ancestors())
            .map(|dir| dir.join("scripts"))
            .find(|scripts| {
                scripts.join("testcluster").is_file() && scripts.join("testcluster.d").is_dir()
            })
            .map(|scripts| Recipe {
                script: scripts.join("testcluster"),
            })
    }

    /// Where to look: the current directory and the running binary's directory (`cargo run`
    /// puts it under the checkout's `target/`).
    fn starts() -> Vec<PathBuf> {
        let cwd = std::env::current_dir().ok();
        let exe = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(PathBuf::from));
        cwd.into_iter().chain(exe).collect()
    }

    /// Builds the local provider's components into the cache, forwarding the recipe's progress
    /// lines to the log. Only what is missing is built; a concurrent build waits for this one.
    ///
    /// # Errors
    /// The recipe cannot start (no python3) or fails; the error keeps its last lines.
    pub async fn build(&self, progress: &dyn Progress) -> Result<(), ProviderError> {
        use tokio::io::AsyncBufReadExt;
        let command = format!("{BUILD_COMMAND} {}", RECIPE_COMPONENTS.join(" "));
        progress.update(
            "step",
            "cluster",
            State::Waiting(format!(
                "`{command}`: the local control plane's binaries are missing (cached once built; cold, this takes about 40 minutes)"
            )),
        );
        let mut cmd = tokio::process::Command::new(&self.script);
        cmd.arg("build")
            .args(RECIPE_COMPONENTS)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| ProviderError::MissingTool {
            tool: "the local control plane".into(),
            hint: format!("cannot run `{command}` (it needs python3 and Go): {e}"),
        })?;
        let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
        if let Some(err) = child.stderr.take() {
            let mut lines = tokio::io::BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!("{line}");
                // The recipe's own milestones ("building kwok v0.8.0 ...", "built ... in 56s"),
                // not the Go toolchain's download chatter.
                if let Some(milestone) = line.strip_prefix("testcluster: ") {
                    progress.update(
                        "step",
                        "cluster",
                        State::Waiting(format!("the local control-plane build: {milestone}")),
                    );
                }
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        let status = child.wait().await.map_err(|e| ProviderError::Command {
            command: command.clone(),
            status: "unknown".into(),
            output: e.to_string(),
        })?;
        if status.success() {
            return Ok(());
        }
        Err(ProviderError::Command {
            command,
            status: status.to_string(),
            output: tail.into_iter().collect::<Vec<_>>().join("\n"),
        })
    }
}

/// How many of the recipe's last lines a failure keeps.
const TAIL_LINES: usize = 20;

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
                buildable: false,
            });
        }
        if let Some(v) = bin_dir.filter(|v| !v.is_empty()) {
            return Ok(Search {
                source: "provider.local.binDir",
                dirs: split_dirs(v),
                buildable: false,
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
            buildable: probe.var(BUILD_ENV).as_deref() != Some("0"),
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

    /// Fills the cache with the recipe when a component is missing, building is allowed and
    /// ephemera runs from a checkout that holds the recipe; otherwise does nothing (then
    /// [`Search::find`] names what is missing). Only here is the checkout looked for, so commands
    /// that find every binary (or never start a cluster) do no such search.
    ///
    /// # Errors
    /// The recipe fails.
    pub async fn build_missing(
        &self,
        probe: &(impl Probe + Sync),
        progress: &dyn Progress,
    ) -> Result<(), ProviderError> {
        let (_, missing) = self.locate(probe);
        if missing.is_empty() || !self.buildable {
            return Ok(());
        }
        match Recipe::locate(&Recipe::starts()) {
            Some(recipe) => {
                tracing::info!("{} missing in {}", missing.join(", "), self.source);
                recipe.build(progress).await
            }
            None => Ok(()),
        }
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

    #[test]
    fn the_recipe_is_found_in_a_parent_of_the_checkout() {
        let root = tempfile::tempdir().unwrap();
        let nested = root.path().join("target").join("release");
        std::fs::create_dir_all(&nested).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("scripts")).unwrap();
        std::fs::write(root.path().join("scripts/testcluster"), "").unwrap();
        // A lone script without its module wrappers is not the recipe.
        assert_eq!(Recipe::locate(std::slice::from_ref(&nested)), None);
        std::fs::create_dir(root.path().join("scripts/testcluster.d")).unwrap();
        let want = Some(Recipe {
            script: root.path().join("scripts/testcluster"),
        });
        assert_eq!(Recipe::locate(std::slice::from_ref(&nested)), want);
        assert_eq!(Recipe::locate(&[elsewhere.path().into(), nested]), want);
        assert_eq!(Recipe::locate(&[elsewhere.path().into()]), None);
    }

    #[test]
    fn only_the_default_cache_is_built_and_it_can_be_turned_off() {
        let p = FakeProbe::new([(BIN_ENV, "/x")]);
        assert!(!Search::resolve(None, &p).unwrap().buildable);
        let p = FakeProbe::new([("HOME", "/h")]);
        assert!(!Search::resolve(Some("/z"), &p).unwrap().buildable);
        let p = FakeProbe::new([("HOME", "/h"), (BUILD_ENV, "0")]);
        assert!(!Search::resolve(None, &p).unwrap().buildable);
        let p = FakeProbe::new([("HOME", "/h")]);
        assert!(Search::resolve(None, &p).unwrap().buildable);
        // Unit tests run in the checkout, so from here the recipe is this repository's.
        let recipe = Recipe::locate(&Recipe::starts()).unwrap();
        assert!(recipe.script.ends_with("scripts/testcluster"), "{recipe:?}");
    }
}
