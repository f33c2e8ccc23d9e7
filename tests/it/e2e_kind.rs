//! Acceptance of the `kind` provider through the real `ephemera` binary, with the kind test double
//! (tests/kind-double) and its docker stand-in first on `PATH`: `up`, `list`, `status` and `down`
//! on `environments/pr-kind.yaml`; an `up` that fails after the cluster exists leaves none, unless
//! `--keep-on-failure`.
//!
//! The double's clusters are real control planes from `scripts/testcluster`, whose kwok nodes run
//! no pods. Where a real kind cluster's pods would act, the test stands in for them, and nowhere
//! else:
//! - NGINX Gateway Fabric and cert-manager set conditions on the GatewayClass, the Gateway, the
//!   ClusterIssuer and the app's Certificate: the shared stand-in controllers
//!   (`common::stand_ins`) set the same conditions, so `up`'s real waits are met;
//! - the Argo Rollouts controller runs out of cluster (`TestCluster::start_with_rollouts`);
//! - cert-manager's admission webhook cannot be reached (no pod network), so a `--templates`
//!   override applies the local provider's `simulated-webhook` overlay to kind as well;
//! - the data plane behind host port 443: an HTTPS proxy on 127.0.0.1 that answers
//!   the URL probe for `https://pr-N.127.0.0.1.nip.io/healthz` (`ALL_PROXY`), which needs no DNS.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use serde_json::Value;
use sha2::Digest;

use crate::common::cli::{ephemera, stderr, stdout};
use crate::common::lifecycle::{describe, manifests};
use crate::common::stand_ins::{Controllers, LoadBalancer, webhook_override};
use crate::common::testcluster::{TestCluster, binary, cluster_required, repo_root};

const ENV_FILE: &str = "environments/pr-kind.yaml";

/// The binaries behind the double's clusters.
const KEYS: [&str; 5] = [
    "ETCD",
    "KUBE_APISERVER",
    "KUBE_CONTROLLER_MANAGER",
    "KUBE_SCHEDULER",
    "KWOK",
];

/// The kind double and the docker stand-in on a `PATH` of their own, with the double's state, its
/// call log and the binary's XDG dirs in one temporary directory.
struct Double {
    tmp: tempfile::TempDir,
}

impl Double {
    /// `faults` is `KIND_DOUBLE_FAIL`; `reuse` is a cluster's kubeconfig every `create` hands
    /// out instead of starting a control plane of its own. `None` (after a loud message) when the
    /// control-plane binaries are missing, unless a cluster is required.
    fn new(faults: &str, reuse: Option<&Path>) -> Option<Double> {
        let missing: Vec<PathBuf> = KEYS
            .iter()
            .map(|k| binary(k))
            .filter(|p| !p.exists())
            .collect();
        if !missing.is_empty() {
            assert!(
                !cluster_required(),
                "the kind e2e tests need {missing:?}; run scripts/testcluster build"
            );
            eprintln!(
                "\n*** SKIPPED: the kind e2e tests need {missing:?}; run scripts/testcluster build ***\n"
            );
            return None;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        for d in ["bin", "home", "state", "cache", "tmp"] {
            std::fs::create_dir(tmp.path().join(d)).expect("sandbox dir");
        }
        let double = repo_root().join("tests/kind-double");
        let mut env = vec![
            (
                "KIND_DOUBLE_STATE",
                tmp.path().join("kind").display().to_string(),
            ),
            (
                "KIND_DOUBLE_LOG",
                tmp.path().join("kind.log").display().to_string(),
            ),
            ("KIND_DOUBLE_OWNER_PID", std::process::id().to_string()),
            ("KIND_DOUBLE_FAIL", faults.to_string()),
            // The binary runs with a HOME and XDG_CACHE_HOME of the test's own; the double's
            // `scripts/testcluster` must still find the built binaries.
            (
                "EPHEMERA_TESTCLUSTER_CACHE",
                testcluster_cache().display().to_string(),
            ),
        ];
        if let Some(k) = reuse {
            env.push(("KIND_DOUBLE_KUBECONFIG", k.display().to_string()));
        }
        // The double reads its settings from the environment; a wrapper keeps them to this test.
        let assignments: Vec<String> = env.iter().map(|(k, v)| format!("{k}='{v}'")).collect();
        let wrapper = format!(
            "#!/bin/sh\nexec env {} '{}' \"$@\"\n",
            assignments.join(" "),
            double.join("kind").display()
        );
        let kind = tmp.path().join("bin/kind");
        std::fs::write(&kind, wrapper).expect("write the kind wrapper");
        make_executable(&kind);
        std::os::unix::fs::symlink(double.join("docker"), tmp.path().join("bin/docker"))
            .expect("link the docker stand-in");
        Some(Double { tmp })
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `ephemera ARGS` with the double first on `PATH`, its own HOME, XDG and TMPDIR, plain
    /// progress lines, and no proxy unless the test sets one.
    fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let sub = args
            .iter()
            .find(|a| ["up", "down", "list", "status"].contains(a))
            .unwrap_or(&"?");
        self.note(&format!("ephemera {sub}"));
        let path = std::env::join_paths(std::iter::once(self.path().join("bin")).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .expect("PATH");
        let mut c = ephemera();
        c.env("PATH", path)
            .env("HOME", self.path().join("home"))
            .env("XDG_STATE_HOME", self.path().join("state"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("TMPDIR", self.path().join("tmp"))
            .env("CI", "1")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("KIND_EXPERIMENTAL_PROVIDER")
            .env_remove("KUBECONFIG")
            .env_remove("GITHUB_TOKEN")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env_remove("GITHUB_EVENT_PATH");
        for v in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            c.env_remove(v);
        }
        c.args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("ephemera runs")
    }

    /// Marks in the double's log what the kind calls that follow belong to.
    fn note(&self, what: &str) {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("kind.log"))
            .expect("open the double's log");
        writeln!(log, "# {what}").expect("write the double's log");
    }

    /// Clusters the double knows, asked as a user would: `kind get clusters`.
    fn clusters(&self) -> Vec<String> {
        self.note("the test asks");
        let out = std::process::Command::new(self.path().join("bin/kind"))
            .args(["get", "clusters"])
            .output()
            .expect("the kind double runs");
        assert!(out.status.success(), "kind get clusters: {out:?}");
        stdout(&out).lines().map(str::to_string).collect()
    }

    /// The `scripts/testcluster` name of the control plane behind kind cluster `cluster`, as the
    /// double derives it from its state dir.
    fn backing(&self, cluster: &str) -> String {
        let state = self.path().join("kind").join("clusters");
        let digest = hex::encode(sha2::Sha256::digest(state.display().to_string().as_bytes()));
        format!("kd-{cluster}-{}", &digest[..10])
    }

    /// The double's call log, one command per line, after a `# ...` line naming who called.
    fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("kind.log")).unwrap_or_default()
    }

    /// `ephemera down` for `pr`, ignoring the outcome: for cleanup after a failed assertion.
    fn down_quietly(&self, pr: &str) {
        let o = self.run(&["down", "--env", ENV_FILE, "--pr", pr]);
        if !o.status.success() {
            eprintln!("cleanup: down of pr-{pr} failed: {}", stderr(&o));
        }
    }
}

/// The `scripts/testcluster` cache: `<cache>/bin/etcd-<version>/etcd`.
fn testcluster_cache() -> PathBuf {
    let etcd = binary("ETCD");
    etcd.ancestors()
        .nth(3)
        .unwrap_or_else(|| panic!("{} is not <cache>/bin/<dir>/etcd", etcd.display()))
        .to_path_buf()
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Takes environment `pr` down when the test ends, however it ends.
struct Down<'a>(&'a Double, &'a str);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        self.0.down_quietly(self.1);
    }
}

/// Names of the clusters `scripts/testcluster list` knows.
fn testclusters() -> Vec<String> {
    let out = std::process::Command::new(repo_root().join("scripts/testcluster"))
        .arg("list")
        .output()
        .expect("scripts/testcluster runs");
    assert!(out.status.success(), "scripts/testcluster list: {out:?}");
    stdout(&out)
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn kind_up_list_status_and_down_through_the_cli() {
    let Some(cluster) = TestCluster::start_with_rollouts("e2e-kind") else {
        return;
    };
    let Some(double) = Double::new("", Some(cluster.kubeconfig())) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ingress = rt.block_on(LoadBalancer::start(&["*.127.0.0.1.nip.io"]));
    let controllers = Controllers::start(&rt, rt.block_on(cluster.client()), "127.0.0.1");
    let templates = webhook_override(double.path(), &["local", "kind"]);
    let templates = templates.display().to_string();
    let manifests = manifests();
    let _down = Down(&double, "7");

    let args = [
        "--templates",
        templates.as_str(),
        "up",
        "--env",
        ENV_FILE,
        "--pr",
        "7",
        "--image",
        "ghcr.io/acme/cats:v1",
        "--manifests",
        manifests.as_str(),
        "--insecure",
        "--timeout",
        "3m",
    ];
    let t0 = Instant::now();
    let o = double
        .cmd(&args)
        // ALL_PROXY rather than HTTPS_PROXY: the kube client reads HTTPS_PROXY too, and refuses
        // it without its http-proxy feature; reqwest reads both.
        .env("ALL_PROXY", &ingress.proxy)
        .output()
        .expect("ephemera runs");
    eprintln!("e2e kind: up through the double took {:.1?}", t0.elapsed());
    assert!(o.status.success(), "{}", describe(&args, &o));
    let out = stdout(&o);
    assert!(out.starts_with("environment: pr-7\n"), "{out}");
    assert!(
        out.contains("url: https://pr-7.127.0.0.1.nip.io\n"),
        "a kind cluster serves traffic, so the URL is not marked simulated:\n{out}"
    );
    let kubeconfig = double.path().join("state/ephemera/kubeconfig/pr-7.yaml");
    assert!(
        out.contains(&format!("kubeconfig: {}\n", kubeconfig.display())),
        "{out}"
    );
    assert!(kubeconfig.is_file());

    // The URL was reported only after its health path answered through the "ingress".
    let seen = ingress.seen();
    assert!(
        seen.contains(&"CONNECT pr-7.127.0.0.1.nip.io:443".to_string()),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().map(String::as_str),
        Some("GET pr-7.127.0.0.1.nip.io /healthz"),
        "{seen:?}"
    );
    // up waited for what only the controllers set.
    let marked = controllers.marked();
    for id in [
        "GatewayClass nginx",
        "Gateway nginx-gateway/ephemera",
        "ClusterIssuer ephemera",
        "Certificate cats/cats",
    ] {
        assert!(marked.contains(id), "{id} was never marked: {marked:?}");
    }

    // list and status read the record from the cluster's ConfigMap.
    let args = ["list", "--env", ENV_FILE, "--output", "json"];
    let o = double.run(&args);
    assert!(o.status.success(), "{}", describe(&args, &o));
    let listed: Value = serde_json::from_str(&stdout(&o)).expect("list --output json");
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["name"], "pr-7");
    assert_eq!(listed[0]["provider"], "kind");
    assert_eq!(listed[0]["pr"], 7);
    assert_eq!(listed[0]["envFile"], "pr-kind");
    assert_eq!(listed[0]["url"], "https://pr-7.127.0.0.1.nip.io");
    let args = ["status", "--env", ENV_FILE, "--pr", "7", "--output", "json"];
    let o = double.run(&args);
    assert!(o.status.success(), "{}", describe(&args, &o));
    let status: Value = serde_json::from_str(&stdout(&o)).expect("status --output json");
    assert_eq!(status["rollout"]["phase"], "Healthy", "{status:#}");
    assert_eq!(
        status["addons"].as_array().map(Vec::len),
        Some(3),
        "{status:#}"
    );

    // down deletes the cluster and the kubeconfig; a second down finds it gone.
    for expected in ["pr-7: deleted", "pr-7: already-gone"] {
        let args = ["down", "--env", ENV_FILE, "--pr", "7"];
        let o = double.run(&args);
        assert!(o.status.success(), "{}", describe(&args, &o));
        assert_eq!(stdout(&o).trim(), expected);
    }
    assert_eq!(double.clusters(), Vec::<String>::new());
    assert!(!kubeconfig.exists(), "{} is left", kubeconfig.display());

    insta::with_settings!({filters => vec![
        (r"--config \S+/ephemera-ephemera-pr-7-\d+-[0-9a-f]{8}/", "--config [workdir]/"),
        (r"--kubeconfig \S+/ephemera-ephemera-pr-7-\d+-[0-9a-f]{8}/", "--kubeconfig [workdir]/"),
    ]}, {
        insta::assert_snapshot!(double.log());
    });
}

/// An `up` whose `kind create cluster` makes the cluster, then fails (kubeadm init): the
/// half-made cluster is deleted, nothing is left in the double or in `scripts/testcluster`, and
/// the error names the command and kind's output.
#[test]
fn kind_up_that_fails_after_creating_the_cluster_leaves_none() {
    let Some(double) = Double::new("create-after-creation", None) else {
        return;
    };
    let _down = Down(&double, "8");
    let args = [
        "up",
        "--env",
        ENV_FILE,
        "--pr",
        "8",
        "--image",
        "ghcr.io/acme/cats:v1",
    ];
    let o = double.run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&args, &o));
    let err = stderr(&o);
    assert!(err.contains("error: step cluster failed\n"), "{err}");
    assert!(
        err.contains("Caused by: `kind create cluster --name ephemera-pr-8 --config "),
        "{err}"
    );
    assert!(err.contains("failed to init node with kubeadm"), "{err}");
    assert!(
        stdout(&o).is_empty(),
        "no result on failure: {}",
        stdout(&o)
    );
    // The half-made cluster is deleted after the failed create, and nothing creates it again
    // (up may still read the kubeconfig to see whether another run took the environment over).
    let log = double.log();
    let create = log
        .find("kind create cluster --name ephemera-pr-8")
        .expect("a create");
    let delete = log
        .rfind("kind delete cluster --name ephemera-pr-8")
        .expect("a delete");
    assert!(create < delete, "{log}");
    assert!(!log[delete..].contains("kind create cluster"), "{log}");
    assert_eq!(double.clusters(), Vec::<String>::new());
    let backing = double.backing("ephemera-pr-8");
    assert!(
        !testclusters().contains(&backing),
        "the control plane {backing} behind the half-made cluster still exists"
    );
    assert!(
        !double
            .path()
            .join("state/ephemera/kubeconfig/pr-8.yaml")
            .exists(),
        "no kubeconfig for a cluster that is gone"
    );
}

/// The same failure with `--keep-on-failure` keeps the cluster for debugging; `down` removes it.
#[test]
fn kind_up_with_keep_on_failure_keeps_the_half_made_cluster() {
    let Some(double) = Double::new("create-after-creation", None) else {
        return;
    };
    let _down = Down(&double, "9");
    let args = [
        "up",
        "--env",
        ENV_FILE,
        "--pr",
        "9",
        "--image",
        "ghcr.io/acme/cats:v1",
        "--keep-on-failure",
    ];
    let o = double.run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&args, &o));
    assert!(
        stderr(&o).contains("keeping it (--keep-on-failure)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(double.clusters(), ["ephemera-pr-9"]);
    let backing = double.backing("ephemera-pr-9");
    assert!(testclusters().contains(&backing), "{backing} is kept");
    assert!(!double.log().contains("delete"), "{}", double.log());

    let args = ["down", "--env", ENV_FILE, "--pr", "9"];
    let o = double.run(&args);
    assert!(o.status.success(), "{}", describe(&args, &o));
    assert_eq!(stdout(&o).trim(), "pr-9: deleted");
    assert_eq!(double.clusters(), Vec::<String>::new());
    assert!(
        !testclusters().contains(&backing),
        "{backing} is gone after down"
    );
}

/// A later step fails (the add-ons time out: nothing sets the GatewayClass's Accepted condition
/// here): `up` exits 3 naming what it waited for, and deletes the cluster it created.
#[test]
fn kind_up_that_fails_in_a_later_step_deletes_the_cluster_it_created() {
    let Some(double) = Double::new("", None) else {
        return;
    };
    let _down = Down(&double, "11");
    let templates = webhook_override(double.path(), &["local", "kind"]);
    let templates = templates.display().to_string();
    let manifests = manifests();
    let args = [
        "--templates",
        templates.as_str(),
        "up",
        "--env",
        ENV_FILE,
        "--pr",
        "11",
        "--image",
        "ghcr.io/acme/cats:v1",
        "--manifests",
        manifests.as_str(),
        // Long enough for the cluster step, which makes no progress while `kind create` runs
        // (--timeout is the longest wait without progress), short for the add-on wait.
        "--timeout",
        "20s",
    ];
    let o = double.run(&args);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&args, &o));
    let err = stderr(&o);
    assert!(err.contains("error: step addons failed\n"), "{err}");
    assert!(err.contains("timed out after 20s waiting for"), "{err}");
    assert!(
        err.contains(
            "up failed after creating pr-11; deleting it (pass --keep-on-failure to keep it)"
        ),
        "{err}"
    );
    assert_eq!(double.clusters(), Vec::<String>::new());
    let backing = double.backing("ephemera-pr-11");
    assert!(!testclusters().contains(&backing), "{backing} still exists");
    assert!(
        !double
            .path()
            .join("state/ephemera/kubeconfig/pr-11.yaml")
            .exists(),
        "the kubeconfig of the deleted cluster is left behind"
    );
}
