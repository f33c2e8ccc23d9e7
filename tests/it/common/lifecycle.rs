//! Whole lifecycles through the real `ephemera` binary, for the AKS end-to-end, race and chaos
//! tests: a sandbox with its own HOME and XDG dirs and environment files, pointed at the fake ARM
//! (AKS) or at the control-plane binaries (local), and a control plane with the Argo Rollouts
//! controller that the fake ARM hands out as every AKS cluster's kubeconfig.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use ephemera::engine::lease::LeaseRecord;

use super::fake_arm::FakeArm;
use super::testcluster::{TestCluster, binary, cluster_required, shared_dir};

/// Variables every run gets, whatever the provider.
const BASE: &[&str] = &["HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "CI"];

/// The control plane (with Argo Rollouts) the AKS tests share; the fake ARM serves its admin
/// kubeconfig for every cluster. `None` after a loud skip message when the binaries are missing,
/// unless a cluster is required. Taken down by its owner watcher when the test process exits.
pub fn rollouts_cluster() -> Option<&'static TestCluster> {
    static CLUSTER: OnceLock<Option<TestCluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| TestCluster::start_with_rollouts("lifecycle"))
        .as_ref()
}

/// The kubeconfig the fake ARM returns from listClusterAdminCredential: the shared control
/// plane's.
pub fn rollouts_kubeconfig() -> Option<String> {
    let c = rollouts_cluster()?;
    Some(
        std::fs::read_to_string(c.kubeconfig())
            .unwrap_or_else(|e| panic!("{}: {e}", c.kubeconfig().display())),
    )
}

/// `--manifests`: the shared upstream bundle, then cert-manager's controllers rendered from the
/// upstream chart by `scripts/testcluster build`, separated like `PATH`.
pub fn manifests() -> String {
    [
        shared_dir().join("fixtures/manifests"),
        super::testcluster::rendered_manifests(),
    ]
    .iter()
    .map(|d| {
        assert!(d.is_dir(), "{} is missing", d.display());
        d.display().to_string()
    })
    .collect::<Vec<_>>()
    .join(":")
}

/// The binaries a local cluster runs, for `EPHEMERA_LOCAL_BIN`; `None` after a loud message when
/// one is missing, unless a cluster is required.
pub fn local_bin_dirs() -> Option<String> {
    let keys = [
        "ETCD",
        "KUBE_APISERVER",
        "KUBE_CONTROLLER_MANAGER",
        "KUBE_SCHEDULER",
        "KWOK",
        "ROLLOUTS_CONTROLLER",
    ];
    let paths: Vec<PathBuf> = keys.iter().map(|k| binary(k)).collect();
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        assert!(
            !cluster_required(),
            "local lifecycles need {missing:?}; run scripts/testcluster build"
        );
        eprintln!(
            "\n*** SKIPPED: local lifecycles need {missing:?}; run scripts/testcluster build ***\n"
        );
        return None;
    }
    let mut dirs: Vec<String> = paths
        .iter()
        .filter_map(|p| p.parent())
        .map(|d| d.display().to_string())
        .collect();
    dirs.dedup();
    Some(dirs.join(":"))
}

/// A directory of the test's own holding HOME, the XDG dirs and environment files, and the
/// variables that point the binary at a provider.
pub struct Sandbox {
    tmp: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Sandbox {
    fn new(vars: Vec<(String, String)>) -> Sandbox {
        let tmp = tempfile::tempdir().expect("tempdir");
        for d in ["home", "state", "cache"] {
            std::fs::create_dir(tmp.path().join(d)).expect("sandbox dir");
        }
        Sandbox { tmp, vars }
    }

    /// With nothing but `vars` (no provider set up).
    pub fn with_vars(vars: Vec<(String, String)>) -> Sandbox {
        Sandbox::new(vars)
    }

    /// Adds variables to every later run.
    pub fn add_vars(&mut self, vars: Vec<(String, String)>) {
        self.vars.extend(vars);
    }

    /// For AKS environments served by `fake` (client-secret credential, no Azure CLI).
    pub fn aks(fake: &FakeArm) -> Sandbox {
        Sandbox::new(fake.env())
    }

    /// For local environments; `None` when the binaries are missing (see [`local_bin_dirs`]).
    pub fn local() -> Option<Sandbox> {
        let bins = local_bin_dirs()?;
        Some(Sandbox::new(vec![
            ("EPHEMERA_LOCAL_BIN".into(), bins),
            ("PATH".into(), "/usr/bin:/bin".into()),
        ]))
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `$XDG_STATE_HOME/ephemera`: all ephemera keeps on this machine.
    pub fn state(&self) -> PathBuf {
        self.path().join("state/ephemera")
    }

    /// The state dirs of local environments, by name.
    pub fn local_envs(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.state().join("local"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Writes an environment file into the sandbox.
    pub fn write(&self, file: &str, yaml: &str) -> PathBuf {
        let path = self.path().join(file);
        std::fs::write(&path, yaml).expect("writing the environment file");
        path
    }

    /// `ephemera ARGS` with nothing of this process's environment but the sandbox's variables.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("ephemera"));
        c.current_dir(env!("CARGO_MANIFEST_DIR")).env_clear();
        for (k, v) in BASE.iter().zip([
            self.path().join("home"),
            self.path().join("state"),
            self.path().join("cache"),
            PathBuf::from("1"),
        ]) {
            c.env(k, v);
        }
        c.envs(self.vars.iter().map(|(k, v)| (k, v))).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("ephemera runs")
    }

    /// Runs and asserts exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "{}", describe(args, &o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs with `--output json`, asserts exit 0, parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("ephemera {} printed no JSON ({e}):\n{out}", all.join(" ")))
    }
}

/// A run's command line, exit status and output, for assertion messages.
pub fn describe(args: &[&str], o: &Output) -> String {
    format!(
        "ephemera {} exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// An AKS environment file for the fake ARM: one group per environment, a small pool, the
/// add-ons in `addons` (YAML under `addons:`), the app with one replica, TTL `ttl`.
pub fn aks_env(name: &str, addons: &str, ttl: &str) -> String {
    format!(
        "apiVersion: ephemera.dev/v1alpha1
kind: Environment
metadata:
  name: {name}
provider:
  aks:
    subscription: {sub}
    location: westeurope
    resourceGroup:
      strategy: perEnvironment
      name: rg-{name}
    kubernetesVersion: \"1.34\"
    systemPool:
      vmSize: Standard_D4s_v5
      count: 1
    tags:
      team: cats
addons:
{addons}
app:
  name: cats
  replicas: 1
tls:
  issuer: selfsigned
ttl: {ttl}
",
        sub = super::fake_arm::SUBSCRIPTION
    )
}

/// `yaml` (from [`aks_env`] or [`local_env`]) with the app named `app`: environments whose
/// clusters are all the one shared plane each need an app (and namespace) of their own there, or
/// their pod templates (labelled with the environment) take turns as canaries of one Rollout.
pub fn with_app(yaml: &str, app: &str) -> String {
    let from = "app:\n  name: cats\n";
    assert!(yaml.contains(from), "no app named cats in:\n{yaml}");
    yaml.replace(from, &format!("app:\n  name: {app}\n"))
}

/// The smallest add-on set an app needs: Argo Rollouts alone.
pub const ROLLOUTS_ONLY: &str = "  ingress:
    enabled: false
  certManager:
    enabled: false
  argoCd:
    enabled: false
";

/// A local environment file with one node and Argo Rollouts alone.
pub fn local_env(name: &str) -> String {
    format!(
        "apiVersion: ephemera.dev/v1alpha1
kind: Environment
metadata:
  name: {name}
provider:
  local:
    nodes: 1
addons:
{ROLLOUTS_ONLY}app:
  name: cats
  replicas: 1
tls:
  issuer: selfsigned
ttl: 2h
"
    )
}

/// Runs the test plane's kubectl with `kubeconfig`, `args` and `stdin`; panics when it fails.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &str) {
    use std::io::Write;
    let mut c = Command::new(binary("KUBECTL"))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    let o = c.wait_with_output().expect("kubectl ends");
    assert!(
        o.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The `kube-system` Lease of a kind or local environment holding `lease`, as JSON for
/// `kubectl apply`: what another run holding the environment would have written.
pub fn kube_lease(lease: &LeaseRecord) -> String {
    let micros = |t: jiff::Timestamp| {
        format!(
            "{}.{:06}Z",
            t.strftime("%Y-%m-%dT%H:%M:%S"),
            t.subsec_microsecond()
        )
    };
    serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "ephemera",
            "namespace": "kube-system",
            "annotations": {
                "ephemera.dev/operation": lease.operation.to_string(),
                "ephemera.dev/started-at": lease.started_at.to_string(),
            },
        },
        "spec": {
            "holderIdentity": lease.holder,
            "leaseDurationSeconds": lease.duration_seconds,
            "acquireTime": micros(lease.started_at),
            "renewTime": micros(lease.renewed_at),
        },
    })
    .to_string()
}

/// The resource group of AKS environment `env` made from an [`aks_env`] file named `profile`.
pub fn group_of(profile: &str, env: &str) -> String {
    format!("rg-{profile}-{env}")
}

/// PIDs of live (not zombie) processes whose command line contains `needle`.
pub fn processes_naming(needle: &Path) -> Vec<u32> {
    let needle = needle.as_os_str().as_encoded_bytes();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let dead = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
        });
        if !dead && cmdline.windows(needle.len()).any(|w| w == needle) {
            out.push(pid);
        }
    }
    out
}

/// A started `ephemera` whose stderr is followed line by line.
pub struct Followed {
    pub child: std::process::Child,
    /// Each stderr line as it comes.
    pub lines: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<String>,
}

impl Followed {
    /// Starts `ephemera ARGS` in `sb`, stdout discarded, stderr followed.
    pub fn start(sb: &Sandbox, args: &[&str]) -> Followed {
        let mut child = sb
            .command(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ephemera starts");
        let err = child.stderr.take().expect("stderr");
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = String::new();
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                all.push_str(&l);
                all.push('\n');
                let _ = tx.send(l);
            }
            all
        });
        Followed {
            child,
            lines,
            reader,
        }
    }

    /// Waits up to `limit` for a line containing `text`; false when the run ended or went quiet
    /// first.
    pub fn wait_for(&self, text: &str, limit: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(text) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Waits for the process to end; its exit code (`None` when killed) and all it printed.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("wait");
        let printed = self.reader.join().unwrap_or_default();
        (status.code(), printed)
    }
}
