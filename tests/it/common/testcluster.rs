//! Real Kubernetes control planes for the integration tests, run by `scripts/testcluster`.
//!
//! - [`TestCluster::start`] gives one test a cluster of its own, taken down on drop.
//! - [`shared_namespace`] gives one test a namespace of its own on a cluster that the whole test
//!   process shares, deleted on drop.
//!
//! When the binaries are not built, a test skips with a loud message naming
//! `scripts/testcluster build`. With `EPHEMERA_REQUIRE_CLUSTER=1` (the README's test command, and
//! `.ci/run`) the first test that needs them builds what is missing, and a cluster that still
//! cannot start is a failure, never a silent skip.
//!
//! Every cluster is started with `--owner-pid` set to this process, so a watcher takes it down even
//! when the test process dies without running its destructors.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Set to `1` to turn "binaries missing" into a test failure.
pub const REQUIRE_ENV: &str = "EPHEMERA_REQUIRE_CLUSTER";

/// The components every cluster needs, by their `scripts/testcluster env` key.
const CORE: &[&str] = &[
    "ETCD",
    "KUBE_APISERVER",
    "KUBE_CONTROLLER_MANAGER",
    "KUBE_SCHEDULER",
    "KWOK",
    "KUBECTL",
];
const ROLLOUTS: &str = "ROLLOUTS_CONTROLLER";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The read-only shared material, cloned beside the repository as `../shared`.
pub fn shared_dir() -> PathBuf {
    repo_root().join("..").join("shared")
}

/// A file under `../shared`; panics with the expected location if it is missing.
pub fn shared_file(relative: &str) -> PathBuf {
    let path = shared_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: the shared fixtures must be cloned beside the repository as ../shared",
        path.display()
    );
    path
}

fn script() -> PathBuf {
    repo_root().join("scripts").join("testcluster")
}

/// Runs `scripts/testcluster ARGS`; panics if it cannot be started at all.
fn run_script(args: &[&str]) -> Output {
    Command::new(script())
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (it needs python3 on PATH): {e}",
                script().display()
            )
        })
}

/// Runs `scripts/testcluster build`, its progress going straight to this process's stderr.
fn build() {
    let status = Command::new(script())
        .arg("build")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} build (it needs python3 and Go on PATH): {e}",
                script().display()
            )
        });
    assert!(
        status.success(),
        "scripts/testcluster build failed ({status}); its output is above"
    );
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Binary paths by key (`KUBECTL`, `ETCD`, ...), as `scripts/testcluster env` prints them.
///
/// With [`REQUIRE_ENV`]`=1` (the README's test command), first builds whatever is missing, so the
/// test command needs nothing run before it; warm, that only checks the cache.
pub fn binaries() -> &'static BTreeMap<String, PathBuf> {
    static BINARIES: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BINARIES.get_or_init(|| {
        if cluster_required() {
            build();
        }
        let out = run_script(&["env"]);
        assert!(
            out.status.success(),
            "scripts/testcluster env failed: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.strip_prefix("EPHEMERA_TC_")?.split_once('='))
            .map(|(key, value)| (key.to_string(), PathBuf::from(value)))
            .collect()
    })
}

/// The path of one built binary, by its `env` key without the prefix, e.g. `"KUBECTL"`.
pub fn binary(key: &str) -> PathBuf {
    binaries()
        .get(key)
        .unwrap_or_else(|| panic!("scripts/testcluster env printed no EPHEMERA_TC_{key}"))
        .clone()
}

/// The bundle `scripts/testcluster build` renders: cert-manager's controllers from the upstream
/// Helm chart (`cert-manager-v1.21.1/cert-manager.yaml`). Panics, naming the build command, when
/// it has not been built.
pub fn rendered_manifests() -> PathBuf {
    let dir = binary("MANIFESTS");
    assert!(
        dir.join("cert-manager-v1.21.1/cert-manager.yaml").is_file(),
        "{} has no cert-manager-v1.21.1/cert-manager.yaml: run scripts/testcluster build",
        dir.display()
    );
    dir
}

fn missing(with_rollouts: bool) -> Vec<PathBuf> {
    CORE.iter()
        .copied()
        .chain(with_rollouts.then_some(ROLLOUTS))
        .map(binary)
        .filter(|path| !path.exists())
        .collect()
}

/// Whether a missing cluster must fail the test rather than skip it.
pub fn cluster_required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Skips (prints a loud message, returns `None`) or fails, as [`REQUIRE_ENV`] says.
fn skip_or_fail<T>(what: &str, missing: &[PathBuf]) -> Option<T> {
    let list = missing
        .iter()
        .map(|p| format!("  {}", p.display()))
        .collect::<Vec<_>>()
        .join("\n");
    if cluster_required() {
        panic!(
            "{what} cannot start: these binaries are missing:\n{list}\n\
             {REQUIRE_ENV}=1 makes this a failure. Run `scripts/testcluster build` first."
        );
    }
    eprintln!(
        "\n\
         ************************************************************************\n\
         SKIPPED: {what} cannot start: these binaries are missing:\n{list}\n\
         Run `scripts/testcluster build` (about 15 minutes cold), then rerun the tests.\n\
         Set {REQUIRE_ENV}=1 to make this a failure.\n\
         ************************************************************************\n"
    );
    None
}

/// A cluster of its own for one test. Dropping it runs `scripts/testcluster down`.
#[derive(Debug)]
pub struct TestCluster {
    name: String,
    kubeconfig: PathBuf,
    down: bool,
}

impl TestCluster {
    /// Starts a cluster named `<name>-<pid>-<n>`: etcd, kube-apiserver, kube-controller-manager,
    /// kube-scheduler and kwok with one Ready node.
    ///
    /// Returns `None` after a loud skip message when the binaries are missing, unless
    /// `EPHEMERA_REQUIRE_CLUSTER=1`. Panics with the script's output if the start fails.
    pub fn start(name: &str) -> Option<TestCluster> {
        Self::start_inner(name, false)
    }

    /// Like [`TestCluster::start`], plus the Argo Rollouts CRDs and its controller.
    pub fn start_with_rollouts(name: &str) -> Option<TestCluster> {
        Self::start_inner(name, true)
    }

    fn start_inner(name: &str, with_rollouts: bool) -> Option<TestCluster> {
        let missing = missing(with_rollouts);
        if !missing.is_empty() {
            return skip_or_fail(&format!("test cluster {name}"), &missing);
        }
        // Unique per process and per call, so two tests asking for the same name never share.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let full = format!(
            "{name}-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let owner = std::process::id().to_string();
        let mut args = vec!["up", full.as_str(), "--owner-pid", owner.as_str()];
        if with_rollouts {
            args.push("--with-rollouts");
        }
        let out = run_script(&args);
        assert!(
            out.status.success(),
            "scripts/testcluster {} failed: {}",
            args.join(" "),
            describe(&out)
        );
        let kubeconfig = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            kubeconfig.is_file(),
            "scripts/testcluster up printed {kubeconfig:?}, which is not a file"
        );
        Some(TestCluster {
            name: full,
            kubeconfig,
            down: false,
        })
    }

    /// The cluster's name, as `scripts/testcluster` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin kubeconfig (mode 0600).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The cluster's own dir: certificates, etcd data, logs and `processes.json`.
    pub fn dir(&self) -> &Path {
        self.kubeconfig
            .parent()
            .expect("the kubeconfig lives in the cluster dir")
    }

    /// The built kubectl, pointed at this cluster, with a discovery cache of this cluster's own.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(binary("KUBECTL"));
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                self.dir().join("home").join("kubectl-cache").display()
            ));
        cmd
    }

    /// Runs kubectl with `args` and returns its stdout; panics with its output if it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self
            .kubectl()
            .args(args)
            .output()
            .expect("the built kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {} failed on cluster {}: {}",
            args.join(" "),
            self.name,
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The recorded processes: component name to PID.
    pub fn pids(&self) -> BTreeMap<String, u32> {
        let path = self.dir().join("processes.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let state: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        state["processes"]
            .as_object()
            .map(|procs| {
                procs
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), u32::try_from(v["pid"].as_u64()?).ok()?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts that nothing of this cluster listens outside 127.0.0.1 (etcd and the apiserver, at
    /// least, must be found listening).
    pub fn assert_listens_only_on_loopback(&self) {
        assert_listens_only_on_loopback(&self.pids(), 2);
    }

    /// A kube-rs client for this cluster, authenticated as the admin.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("kubeconfig of cluster {}: {e}", self.name));
        kube::Client::try_from(config)
            .unwrap_or_else(|e| panic!("client for cluster {}: {e}", self.name))
    }

    /// Takes the cluster down now and reports whether `scripts/testcluster down` succeeded.
    ///
    /// # Errors
    /// The script's exit status and output when it fails.
    pub fn down(mut self) -> Result<(), String> {
        self.down = true;
        down(&self.name)
    }
}

fn down(name: &str) -> Result<(), String> {
    let out = run_script(&["down", name]);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "scripts/testcluster down {name} failed: {}",
            describe(&out)
        ))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if !self.down
            && let Err(e) = down(&self.name)
        {
            // Panicking in drop would abort a test that is already unwinding.
            eprintln!("{e}");
        }
    }
}

/// The cluster the whole test process shares. It is never dropped: the owner watcher started by
/// `up --owner-pid` takes it down when the process exits.
pub fn shared_cluster() -> Option<&'static TestCluster> {
    static SHARED: OnceLock<TestCluster> = OnceLock::new();
    // Checked on every call, so every test that skips says so.
    let missing = missing(false);
    if !missing.is_empty() {
        return skip_or_fail("the shared test cluster", &missing);
    }
    Some(SHARED.get_or_init(|| TestCluster::start("shared").expect("the binaries were just found")))
}

/// A namespace of one test's own on the shared cluster; deleted on drop.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    cluster: &'static TestCluster,
}

impl Namespace {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn cluster(&self) -> &'static TestCluster {
        self.cluster
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let out = self
            .cluster
            .kubectl()
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("deleting namespace {}: {}", self.name, describe(&out)),
            Err(e) => eprintln!("deleting namespace {}: {e}", self.name),
        }
    }
}

/// Creates a namespace with a unique name on the shared cluster.
///
/// Keep to that namespace: cluster-scoped objects (CRDs, ClusterRoles, nodes) change what every
/// other test sees, so a test that needs them takes a [`TestCluster`] of its own.
///
/// Returns `None` after a loud skip message when the binaries are missing, unless
/// `EPHEMERA_REQUIRE_CLUSTER=1`.
pub fn shared_namespace() -> Option<Namespace> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let cluster = shared_cluster()?;
    let name = format!(
        "t{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    cluster.kubectl_ok(&["create", "namespace", &name]);
    Some(Namespace { name, cluster })
}

// --- processes and sockets, read from /proc (Linux) ---

/// True if `pid` runs (a zombie has exited; only its parent has not reaped it yet).
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Socket inodes held open by `pid`.
fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Decodes an address of /proc/net/tcp{,6}: hex, in 32-bit words of host byte order.
fn proc_net_addr(hex: &str) -> Option<IpAddr> {
    let mut bytes = Vec::new();
    for i in (0..hex.len()).step_by(8) {
        let word = u32::from_str_radix(hex.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).ok()?,
        ))),
        _ => None,
    }
}

/// Asserts that every listening TCP socket of these processes (name to PID) is bound to a
/// loopback address, and that at least `min` sockets listen at all (so an unreadable /proc
/// cannot pass for success).
pub fn assert_listens_only_on_loopback(pids: &BTreeMap<String, u32>, min: usize) {
    let inodes: Vec<(&String, &u32, BTreeSet<u64>)> = pids
        .iter()
        .map(|(component, pid)| (component, pid, socket_inodes(*pid)))
        .collect();
    let mut listening = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue; // not LISTEN
            }
            let Ok(inode) = cols[9].parse::<u64>() else {
                continue;
            };
            let (addr, port) = cols[1].split_once(':').expect("addr:port");
            for (component, pid, held) in &inodes {
                if held.contains(&inode) {
                    listening += 1;
                    let ip = proc_net_addr(addr).expect("a /proc/net address");
                    assert!(
                        ip.is_loopback(),
                        "{component} (pid {pid}) listens on {ip}:{}",
                        u16::from_str_radix(port, 16).unwrap_or(0)
                    );
                }
            }
        }
    }
    assert!(
        listening >= min,
        "found only {listening} listening sockets for {pids:?}; is /proc readable?"
    );
}
