//! The real-kind tier: the real kind binary (sigs.k8s.io/kind, built by
//! `scripts/testcluster kind-image`) through ephemera's kind provider, with a real Docker engine,
//! a kind node image built here, and real pods: the Argo Rollouts controller runs in the cluster,
//! the app's pods are started by the kubelet, whose readiness probe on `app.healthPath` decides
//! when the Rollout is healthy, and the test reaches the app through kind's port mapping and a
//! NodePort it names.
//!
//! The environment file is `environments/pr-kind.yaml` with these overrides, each for a reason of
//! this machine (see docs/providers.md):
//! - `provider.kind.nodeImage`: the node image built here (no registry is reachable);
//! - `provider.kind.kubeadmConfigPatches`: `failCgroupV1: false` and the cgroup preflight check
//!   skipped, for the cgroup v1 hosts these tests run on;
//! - `provider.kind.loadImages`: the app's images and the Rollouts controller's, built here;
//! - `provider.kind.extraPortMappings`: a free host port to NodePort 30080 instead of 80/443;
//! - the ingress and cert-manager add-ons are off: NGINX Gateway Fabric's and cert-manager's
//!   images cannot be built here (their Go modules are not served), so those two are covered only
//!   by the kind-double tier (tests/it/e2e_kind.rs) with its labelled stand-ins.
//!
//! Every test here makes a cluster of its own and they run one at a time. Without docker or the
//! node image they skip with a loud message, and fail under `EPHEMERA_REQUIRE_CLUSTER=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::cli::{CLEARED, ephemera, stderr, stdout};
use crate::common::lifecycle::describe;
use crate::common::testcluster::{cluster_required, repo_root, shared_dir};

/// The NodePort the test puts in front of the app's pods, mapped to a host port by kind.
const NODE_PORT: u16 = 30080;

/// What `scripts/testcluster kind-image` printed.
struct KindImage {
    kind: PathBuf,
    node_image: String,
    images: Vec<String>,
}

/// Runs `scripts/testcluster kind-image` once per test process (a no-op when warm, apart from
/// starting dockerd if it is not running).
fn kind_image() -> Result<&'static KindImage, String> {
    static IMAGE: OnceLock<Result<KindImage, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let out = Command::new(repo_root().join("scripts/testcluster"))
                .arg("kind-image")
                .output()
                .map_err(|e| format!("scripts/testcluster kind-image: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "scripts/testcluster kind-image failed ({}):\n{}",
                    out.status,
                    stderr(&out)
                ));
            }
            let vars: BTreeMap<String, String> = stdout(&out)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let get = |k: &str| {
                vars.get(k)
                    .cloned()
                    .ok_or_else(|| format!("scripts/testcluster kind-image printed no {k}"))
            };
            Ok(KindImage {
                kind: PathBuf::from(get("EPHEMERA_KIND")?),
                node_image: get("EPHEMERA_KIND_NODE_IMAGE")?,
                images: get("EPHEMERA_KIND_IMAGES")?
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// One real cluster at a time: each is a privileged container running systemd, containerd and a
/// control plane, on machines with two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A sandbox for one test: the built kind first on `PATH`, HOME, XDG dirs and TMPDIR of its own,
/// and the derived environment file.
struct RealKind {
    tmp: tempfile::TempDir,
    image: &'static KindImage,
    host_port: u16,
    pr: String,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl RealKind {
    /// `None` after a loud message when the tier cannot run here, unless a cluster is required.
    fn new(pr: &str, health_path: &str) -> Option<RealKind> {
        let image = match kind_image() {
            Ok(i) => i,
            Err(e) => {
                assert!(
                    !cluster_required(),
                    "the real-kind tier cannot run: {e}\nEPHEMERA_REQUIRE_CLUSTER=1 makes this a failure."
                );
                eprintln!("\n*** SKIPPED: the real-kind tier cannot run: {e} ***\n");
                return None;
            }
        };
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let tmp = tempfile::tempdir().expect("tempdir");
        for d in ["bin", "home", "state", "cache", "tmp"] {
            std::fs::create_dir(tmp.path().join(d)).expect("sandbox dir");
        }
        std::os::unix::fs::symlink(&image.kind, tmp.path().join("bin/kind")).expect("link kind");
        let host_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let rk = RealKind {
            tmp,
            image,
            host_port,
            pr: pr.to_string(),
            _serial: serial,
        };
        std::fs::write(rk.env_file(), rk.env_yaml(health_path)).expect("write the env file");
        // A cluster left by an earlier, killed run of this test would be reused: start clean.
        rk.kind(&["delete", "cluster", "--name", &rk.cluster()]);
        Some(rk)
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn env_file(&self) -> PathBuf {
        self.path().join("pr-kind.yaml")
    }

    fn cluster(&self) -> String {
        format!("ephemera-pr-{}", self.pr)
    }

    /// environments/pr-kind.yaml with this machine's overrides (see the module docs).
    fn env_yaml(&self, health_path: &str) -> String {
        let text = std::fs::read_to_string(repo_root().join("environments/pr-kind.yaml"))
            .expect("environments/pr-kind.yaml");
        let mut env: Value = serde_saphyr::from_str(&text).expect("pr-kind.yaml is YAML");
        env["provider"]["kind"] = json!({
            "nodeImage": self.image.node_image,
            "kubeadmConfigPatches": [
                "kind: InitConfiguration\nnodeRegistration:\n  ignorePreflightErrors: [SystemVerification]\n",
                "kind: KubeletConfiguration\nfailCgroupV1: false\n",
            ],
            "loadImages": self.image.images,
            "extraPortMappings": [{"containerPort": NODE_PORT, "hostPort": self.host_port}],
            // A node with the local image is Ready in about a minute here; two leave room for a
            // loaded machine and keep the kill test's rerun (which waits this long for the
            // half-made cluster before making it again) short.
            "wait": "2m",
        });
        env["addons"]["ingress"] = json!({"enabled": false});
        env["addons"]["certManager"] = json!({"enabled": false});
        env["app"]["healthPath"] = json!(health_path);
        env["app"]["canary"] = json!({"preview": "steps"});
        // JSON is YAML; the file is the test's own, so its line numbers do not matter.
        serde_json::to_string_pretty(&env).expect("JSON")
    }

    /// `ephemera ARGS` in the sandbox.
    fn cmd(&self, args: &[&str]) -> Command {
        let path = std::env::join_paths(std::iter::once(self.path().join("bin")).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .expect("PATH");
        // A std Command (not assert_cmd's) so the kill test can spawn it; the same clean
        // environment as common::cli::ephemera, and nothing of GitHub's or kind's own.
        let mut c = Command::new(ephemera().get_program());
        c.current_dir(env!("CARGO_MANIFEST_DIR"));
        let sandboxed = [
            "KIND_EXPERIMENTAL_PROVIDER",
            "KUBECONFIG",
            "GITHUB_TOKEN",
            "GITHUB_OUTPUT",
            "GITHUB_STEP_SUMMARY",
            "GITHUB_EVENT_PATH",
        ];
        for var in CLEARED.iter().chain(&sandboxed) {
            c.env_remove(var);
        }
        for (var, dir) in [
            ("HOME", "home"),
            ("XDG_STATE_HOME", "state"),
            ("XDG_CACHE_HOME", "cache"),
            ("TMPDIR", "tmp"),
        ] {
            c.env(var, self.path().join(dir));
        }
        c.env("PATH", path).env("CI", "1").args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("ephemera runs")
    }

    fn manifests() -> String {
        shared_dir()
            .join("fixtures/manifests")
            .display()
            .to_string()
    }

    /// `ephemera up` (or `deploy`) of `image` with a bound of `timeout`.
    fn up(&self, verb: &str, image: &str, timeout: &str) -> (Vec<String>, Output) {
        let env = self.env_file().display().to_string();
        let manifests = Self::manifests();
        let args: Vec<String> = [
            "--manifests",
            &manifests,
            verb,
            "--env",
            &env,
            "--pr",
            &self.pr,
            "--image",
            image,
            "--timeout",
            timeout,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let t0 = Instant::now();
        let o = self.run(&refs);
        eprintln!("real kind: {verb} {image} took {:.1?}", t0.elapsed());
        (args, o)
    }

    fn target(&self, verb: &str) -> Output {
        let env = self.env_file().display().to_string();
        self.run(&[verb, "--env", &env, "--pr", &self.pr])
    }

    /// The real kind binary, as a user would run it.
    fn kind(&self, args: &[&str]) -> Output {
        Command::new(&self.image.kind)
            .args(args)
            .output()
            .expect("kind runs")
    }

    fn clusters(&self) -> Vec<String> {
        let o = self.kind(&["get", "clusters"]);
        assert!(o.status.success(), "kind get clusters: {o:?}");
        stdout(&o).lines().map(str::to_string).collect()
    }

    /// The docker containers of this test's cluster (kind labels its nodes with the cluster).
    fn containers(&self) -> Vec<String> {
        let o = Command::new("docker")
            .args([
                "ps",
                "-a",
                "--format",
                "{{.Names}}",
                "--filter",
                &format!("label=io.x-k8s.kind.cluster={}", self.cluster()),
            ])
            .output()
            .expect("docker runs");
        assert!(o.status.success(), "docker ps: {o:?}");
        stdout(&o).lines().map(str::to_string).collect()
    }

    /// kind knows no cluster, and docker has no node container of this test's cluster.
    fn assert_gone(&self) {
        assert_eq!(self.clusters(), Vec::<String>::new());
        assert_eq!(self.containers(), Vec::<String>::new());
    }

    /// kubectl inside the node (its own admin kubeconfig): no client of the host is needed.
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        let node = format!("{}-control-plane", self.cluster());
        let mut c = Command::new("docker");
        c.args([
            "exec",
            "-i",
            &node,
            "kubectl",
            "--kubeconfig=/etc/kubernetes/admin.conf",
        ])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("docker exec runs");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("write stdin");
        drop(input);
        let o = child.wait_with_output().expect("docker exec");
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// Names the NodePort in front of the app's pods (selector: every pod of the Rollout).
    fn expose(&self) {
        let svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "cats-nodeport", "namespace": "cats"},
            "spec": {
                "type": "NodePort",
                "selector": {"app.kubernetes.io/name": "cats"},
                "ports": [{"port": 8080, "targetPort": 8080, "nodePort": NODE_PORT}],
            },
        });
        self.kubectl(&["apply", "-f", "-"], Some(&svc.to_string()));
    }

    /// GET `path` from the app through kind's port mapping, retried for up to a minute until
    /// `until` accepts the answer; (status, body) of the last answer (0 when none came).
    fn get(&self, path: &str, until: impl Fn(u16, &str) -> bool) -> (u16, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = http_get(self.host_port, path).unwrap_or_else(|e| (0, e.to_string()));
            if until(last.0, &last.1) || Instant::now() > deadline {
                return last;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The image of every Ready pod of the app, sorted.
    fn ready_images(&self) -> Vec<String> {
        let pods: Value =
            serde_json::from_str(&self.kubectl(&["get", "pods", "-n", "cats", "-o", "json"], None))
                .expect("pods JSON");
        let mut out: Vec<String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .filter_map(|p| p["spec"]["containers"][0]["image"].as_str())
            .map(str::to_string)
            .collect();
        out.sort();
        out
    }
}

impl Drop for RealKind {
    fn drop(&mut self) {
        let o = self.kind(&["delete", "cluster", "--name", &self.cluster()]);
        if !o.status.success() {
            eprintln!("cleanup: kind delete cluster {}: {o:?}", self.cluster());
        }
    }
}

const V1: &str = "ephemera.local/demo-app:v1";
const V2: &str = "ephemera.local/demo-app:v2";

#[test]
fn real_kind_up_canary_and_down() {
    let Some(rk) = RealKind::new("41", "/healthz") else {
        return;
    };
    let (args, o) = rk.up("up", V1, "5m");
    assert!(o.status.success(), "{}", describe(&refs(&args), &o));
    assert_eq!(rk.clusters(), vec![rk.cluster()]);
    // The Rollouts controller is a real pod in the cluster.
    let ctl = rk.kubectl(
        &[
            "get",
            "pods",
            "-n",
            "argo-rollouts",
            "-o",
            "jsonpath={range .items[*]}{.status.phase} {.spec.containers[0].image}{\"\\n\"}{end}",
        ],
        None,
    );
    assert!(
        ctl.contains("Running quay.io/argoproj/argo-rollouts:v1.9.1"),
        "{ctl}"
    );
    // The app's pods run the image and answer through kind's port mapping and the NodePort.
    assert_eq!(rk.ready_images(), vec![V1.to_string()]);
    rk.expose();
    let (status, body) = rk.get("/", |s, _| s == 200);
    assert_eq!((status, body.as_str()), (200, "demo-app v1\n"));

    // A second image stops at the canary's first pause, with a canary pod of its own.
    let (args, o) = rk.up("deploy", V2, "5m");
    assert!(o.status.success(), "{}", describe(&refs(&args), &o));
    let out = stdout(&o);
    assert!(out.contains("Paused: CanaryPauseStep"), "{out}");
    assert!(out.contains(&format!("canary    {V2}")), "{out}");
    assert_eq!(rk.ready_images(), vec![V1.to_string(), V2.to_string()]);
    let (_, body) = rk.get("/", |_, b| b == "demo-app v2\n");
    assert_eq!(
        body, "demo-app v2\n",
        "the NodePort reaches the canary pod too"
    );

    // Promote fully: only v2 is left, and it serves.
    let env = rk.env_file().display().to_string();
    let o = rk.run(&["promote", "--env", &env, "--pr", &rk.pr, "--full"]);
    assert!(o.status.success(), "promote: {}", stderr(&o));
    wait_until("only v2 pods are ready after promote", || {
        rk.ready_images() == vec![V2.to_string()]
    });
    let (_, body) = rk.get("/", |_, b| b == "demo-app v2\n");
    assert_eq!(body, "demo-app v2\n");

    // v1 again as a new canary, then abort: back to the stable v2 only.
    let (args, o) = rk.up("deploy", V1, "5m");
    assert!(o.status.success(), "{}", describe(&refs(&args), &o));
    assert_eq!(rk.ready_images(), vec![V1.to_string(), V2.to_string()]);
    let o = rk.target("abort");
    assert!(o.status.success(), "abort: {}", stderr(&o));
    wait_until("only v2 pods are ready after abort", || {
        rk.ready_images() == vec![V2.to_string()]
    });
    let (_, body) = rk.get("/", |_, b| b == "demo-app v2\n");
    assert_eq!(body, "demo-app v2\n");

    // down deletes the cluster: kind knows none, docker has no node container left.
    let o = rk.target("down");
    assert!(o.status.success(), "down: {}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "pr-41: deleted");
    rk.assert_gone();
}

/// The readiness of the app's pods comes from the kubelet probing `app.healthPath`: with a path
/// the app answers 404 on, `up` times out and names the Rollout.
#[test]
fn real_kind_wrong_health_path_times_out_naming_the_rollout() {
    let Some(rk) = RealKind::new("42", "/no-such-health-path") else {
        return;
    };
    let (args, o) = rk.up("up", V1, "90s");
    assert!(!o.status.success(), "{}", describe(&refs(&args), &o));
    let err = stderr(&o);
    // The pod runs, but the kubelet's probe on the wrong path keeps it unready.
    assert!(
        err.contains("waiting for rollout cats/cats to reach its first pause or become Healthy"),
        "{err}"
    );
    assert!(err.contains("0/1 available"), "{err}");
    // up deletes the cluster it made when it fails.
    rk.assert_gone();
}

/// `up` killed with SIGKILL while kind creates the cluster, then run again: one cluster, one
/// node container, and `down` leaves none.
#[test]
fn real_kind_up_killed_during_the_cluster_step_converges() {
    let Some(rk) = RealKind::new("43", "/healthz") else {
        return;
    };
    let env = rk.env_file().display().to_string();
    let manifests = RealKind::manifests();
    let mut child = rk
        .cmd(&[
            "--manifests",
            &manifests,
            "up",
            "--env",
            &env,
            "--pr",
            "43",
            "--image",
            V1,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ephemera starts");
    wait_until("kind has made the node container", || {
        !rk.containers().is_empty()
    });
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    // kind dies with it (its output pipes close), leaving a node without a control plane: the
    // rerun waits a create's whole wait (provider.kind.wait, 2m here) for it, then makes it
    // again.
    let (args, o) = rk.up("up", V1, "10m");
    assert!(o.status.success(), "{}", describe(&refs(&args), &o));
    assert_eq!(rk.clusters(), vec![rk.cluster()]);
    assert_eq!(
        rk.containers(),
        vec![format!("{}-control-plane", rk.cluster())]
    );
    assert_eq!(rk.ready_images(), vec![V1.to_string()]);
    let o = rk.target("down");
    assert!(o.status.success(), "down: {}", stderr(&o));
    assert_eq!(rk.containers(), Vec::<String>::new());
}

/// A plain HTTP/1.0 GET of 127.0.0.1:`port``path`: (status, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_secs(1));
    }
}
