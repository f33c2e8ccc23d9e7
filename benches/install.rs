//! Benchmark: ephemera against `kubectl apply --server-side`, and the install graph against its
//! slowest add-on. Run with `cargo bench --bench install`.
//!
//! Every measurement gets a fresh control plane from `scripts/testcluster` (one at a time, so they
//! do not compete for the machine):
//!
//! 1. apply: the add-ons' real upstream manifests from `../shared/fixtures/manifests` (Gateway API
//!    CRDs + NGINX Gateway Fabric, the cert-manager CRDs, Argo CD, Argo Rollouts, ingress-nginx),
//!    applied by ephemera, then by the built kubectl following each project's documented steps
//!    (`kubectl apply --server-side`, and `kubectl wait --for=condition=Established` where later
//!    files hold custom resources of earlier CRDs). Target: ephemera <= 0.5x kubectl.
//! 2. install: `ephemera::addons::install` (apply and wait) of the default add-ons, against each
//!    add-on installed alone on a cluster of its own. Target: within 10% of the slowest one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemera::addons::{Catalog, InstallContext, ResolvedAddon, SourceOptions, install};
use ephemera::config::{Addon, Addons, IngressAddon, IngressImplementation};
use ephemera::kube::{Applier, ApplyOptions, parse_manifest};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared() -> PathBuf {
    repo().join("../shared/fixtures/manifests")
}

/// One test control plane, taken down on drop.
struct Cluster {
    name: String,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn up(name: &str) -> Cluster {
        let name = format!("bench-{name}-{}", std::process::id());
        let pid = std::process::id().to_string();
        let out = Command::new(repo().join("scripts/testcluster"))
            .args(["up", &name, "--owner-pid", &pid])
            .output()
            .expect("scripts/testcluster runs");
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            eprintln!(
                "scripts/testcluster up failed; build the binaries with `scripts/testcluster build`"
            );
            std::process::exit(1);
        }
        let kubeconfig = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Cluster { name, kubeconfig }
    }

    async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(config).expect("client")
    }

    fn kubectl(&self, kubectl: &Path, args: &[&str]) {
        let cache = self
            .kubeconfig
            .parent()
            .unwrap_or(Path::new("."))
            .join("bench-kubectl-cache");
        let out = Command::new(kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--cache-dir={}", cache.display()))
            .args(args)
            .output()
            .expect("kubectl runs");
        if !out.status.success() {
            panic!(
                "kubectl {} failed:\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Cluster {
    /// CPU seconds (user + system) used so far by the control plane's processes: etcd,
    /// kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
    fn control_plane_cpu(&self) -> f64 {
        let dir = self.kubeconfig.parent().unwrap_or(Path::new("."));
        let Ok(text) = std::fs::read_to_string(dir.join("processes.json")) else {
            return 0.0;
        };
        let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut total = 0.0;
        for p in state["processes"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            let Some(pid) = p["pid"].as_u64() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
            let t = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            total += (t(11) + t(12)) / ticks;
        }
        total
    }
}

/// A measurement: wall time, and the control plane's CPU time in it.
struct Measured {
    wall: Duration,
    cpu: f64,
}

impl Measured {
    fn line(&self, what: &str) -> String {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        format!(
            "  {what:<29} {:>7.2}s  (control plane busy {:>6.2} CPU-s = {:>3.0}% of {cores} cores)",
            self.wall.as_secs_f64(),
            self.cpu,
            100.0 * self.cpu / (self.wall.as_secs_f64() * cores)
        )
    }
}

async fn measure<F: std::future::Future<Output = Duration>>(
    c: &Cluster,
    run: impl FnOnce() -> F,
) -> Measured {
    let before = c.control_plane_cpu();
    let wall = run().await;
    Measured {
        wall,
        cpu: c.control_plane_cpu() - before,
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/testcluster"))
            .args(["down", &self.name])
            .output();
    }
}

fn kubectl_path() -> PathBuf {
    let out = Command::new(repo().join("scripts/testcluster"))
        .arg("env")
        .output()
        .expect("scripts/testcluster env");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("EPHEMERA_TC_KUBECTL="))
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            eprintln!("kubectl is not built; run `scripts/testcluster build`");
            std::process::exit(1)
        })
}

/// The real upstream manifests, per add-on, in each project's install order.
struct Step {
    addon: &'static str,
    namespace: Option<&'static str>,
    files: Vec<PathBuf>,
    /// Later steps of the same add-on hold custom resources of these files' CRDs.
    wait_established: bool,
}

fn steps() -> Vec<Step> {
    let gateway_crds: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(shared().join("gateway-api-v1.5.1/standard"))
            .expect("gateway-api fixtures")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        v.sort();
        v
    };
    let cert_manager: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(shared().join("cert-manager-v1.21.1/crds"))
            .expect("cert-manager fixtures")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        v.sort();
        v
    };
    vec![
        Step {
            addon: "gateway-api",
            namespace: None,
            files: gateway_crds,
            wait_established: true,
        },
        Step {
            addon: "gateway-api",
            namespace: None,
            files: vec![shared().join("nginx-gateway-fabric-v2.6.7/crds.yaml")],
            wait_established: true,
        },
        Step {
            addon: "gateway-api",
            namespace: None,
            files: vec![shared().join("nginx-gateway-fabric-v2.6.7/default/deploy.yaml")],
            wait_established: false,
        },
        Step {
            addon: "cert-manager",
            namespace: None,
            files: cert_manager,
            wait_established: false,
        },
        Step {
            addon: "argo-cd",
            namespace: Some("argocd"),
            files: vec![shared().join("argo-cd-v3.5.1/install.yaml")],
            wait_established: false,
        },
        Step {
            addon: "argo-rollouts",
            namespace: Some("argo-rollouts"),
            files: vec![shared().join("argo-rollouts-v1.9.1/install.yaml")],
            wait_established: false,
        },
        Step {
            addon: "ingress-nginx",
            namespace: None,
            files: vec![shared().join("ingress-nginx-controller-v1.15.1/cloud/deploy.yaml")],
            wait_established: false,
        },
    ]
}

/// ephemera: each add-on's files parsed and applied by one `Applier`, the add-ons concurrently.
async fn ephemera_apply(cluster: &Cluster) -> (Duration, usize) {
    let client = cluster.client().await;
    let started = Instant::now();
    let applier = Applier::new(client);
    let mut by_addon: Vec<(&str, Option<&str>, Vec<PathBuf>)> = Vec::new();
    for s in steps() {
        match by_addon.iter_mut().find(|(a, ..)| *a == s.addon) {
            Some((_, _, files)) => files.extend(s.files),
            None => by_addon.push((s.addon, s.namespace, s.files)),
        }
    }
    let runs = by_addon.into_iter().map(|(addon, namespace, files)| {
        let applier = applier.clone();
        async move {
            let mut objects = Vec::new();
            if let Some(ns) = namespace {
                objects.extend(
                    parse_manifest(
                        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
                        "ns",
                    )
                    .expect("namespace"),
                );
            }
            for f in &files {
                let text = std::fs::read_to_string(f).expect("fixture");
                objects.extend(parse_manifest(&text, &f.display().to_string()).expect("manifest"));
            }
            let opts = ApplyOptions {
                default_namespace: namespace.map(str::to_string),
                origin: addon.to_string(),
                ..ApplyOptions::default()
            };
            applier
                .apply(objects, &opts)
                .await
                .expect("ephemera apply")
                .objects
                .len()
        }
    });
    let counts = futures::future::join_all(runs).await;
    (started.elapsed(), counts.iter().sum())
}

/// kubectl: the documented steps, one after the other, as a CI script runs them.
fn kubectl_apply(cluster: &Cluster, kubectl: &Path) -> Duration {
    let started = Instant::now();
    for s in steps() {
        if let Some(ns) = s.namespace {
            cluster.kubectl(kubectl, &["create", "namespace", ns]);
        }
        let mut args: Vec<String> = vec!["apply".into(), "--server-side".into()];
        if let Some(ns) = s.namespace {
            args.push(format!("--namespace={ns}"));
        }
        for f in &s.files {
            args.push(format!("--filename={}", f.display()));
        }
        cluster.kubectl(
            kubectl,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        if s.wait_established {
            let wait = [
                "wait",
                "--for=condition=Established",
                "--timeout=120s",
                "crd",
                "--all",
            ];
            cluster.kubectl(kubectl, &wait);
        }
    }
    started.elapsed()
}

/// cert-manager's controllers as `scripts/testcluster build` renders them from the upstream chart.
fn rendered_bundle() -> PathBuf {
    let out = Command::new(repo().join("scripts/testcluster"))
        .arg("env")
        .output()
        .expect("scripts/testcluster env runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("EPHEMERA_TC_MANIFESTS=").map(PathBuf::from))
        .expect("scripts/testcluster env prints EPHEMERA_TC_MANIFESTS")
}

fn bundles() -> SourceOptions {
    SourceOptions {
        bundles: vec![shared(), rendered_bundle()],
        cache_dir: None,
        ..Default::default()
    }
}

async fn timed_install(
    cluster: &Cluster,
    addons: &[ResolvedAddon],
    renderer: &ephemera::templates::Renderer,
) -> Duration {
    let client = cluster.client().await;
    let mut ctx = InstallContext::new(
        "bench",
        "local",
        renderer,
        bundles(),
        Arc::new(ephemera::progress::Silent),
    );
    ctx.values = serde_json::json!({"tls": {"issuer": "selfsigned"}});
    let started = Instant::now();
    install(client, addons, &ctx).await.expect("install");
    started.elapsed()
}

fn only(name: &str) -> Addons {
    let off = || Addon {
        enabled: false,
        ..Default::default()
    };
    let mut a = Addons {
        ingress: IngressAddon {
            enabled: false,
            ..Default::default()
        },
        cert_manager: off(),
        argo_cd: off(),
        argo_rollouts: off(),
    };
    match name {
        "gateway-api" => {
            a.ingress = IngressAddon {
                implementation: IngressImplementation::GatewayApi,
                ..Default::default()
            }
        }
        "cert-manager" => a.cert_manager = Addon::default(),
        "argo-cd" => a.argo_cd = Addon::default(),
        "argo-rollouts" => a.argo_rollouts = Addon::default(),
        _ => unreachable!("known add-on"),
    }
    a
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`. `cargo test --all-targets` runs this binary without it:
    // then it only proves it builds, instead of starting four control planes.
    if !std::env::args().any(|a| a == "--bench") {
        println!("install benchmark: built; run it with `cargo bench --bench install`");
        return;
    }
    let kubectl = kubectl_path();
    let secs = |d: Duration| d.as_secs_f64();

    println!("apply: the real upstream manifests, each on a fresh control plane");
    let (ours, objects) = {
        let c = Cluster::up("ephemera");
        let mut objects = 0;
        let m = measure(&c, || async {
            let (t, n) = ephemera_apply(&c).await;
            objects = n;
            t
        })
        .await;
        (m, objects)
    };
    let theirs = {
        let c = Cluster::up("kubectl");
        measure(&c, || async { kubectl_apply(&c, &kubectl) }).await
    };
    println!("{} ({objects} objects)", ours.line("ephemera apply:"));
    println!("{}", theirs.line("kubectl apply --server-side:"));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    println!(
        "  control-plane floor:           {:>7.2}s  (ephemera's control-plane CPU-s / {cores} cores; no client can apply faster here)",
        ours.cpu / cores
    );
    println!(
        "  ratio ephemera/kubectl:        {:>7.2}  (target <= 0.50)",
        secs(ours.wall) / secs(theirs.wall)
    );
    println!(
        "  best ratio this machine allows:{:>7.2}  (the floor against kubectl's time)",
        ours.cpu / cores / secs(theirs.wall)
    );

    println!("install: apply and wait, the default add-ons, each run on a fresh control plane");
    let renderer = ephemera::templates::Renderer::new(None).expect("templates");
    let catalog = Catalog::load(&renderer).expect("definitions");
    let all = catalog
        .resolve(&Addons::default(), "local")
        .expect("resolve");
    let together = {
        let c = Cluster::up("install");
        measure(&c, || timed_install(&c, &all, &renderer)).await
    };
    let mut slowest = ("", Duration::ZERO);
    let mut sum = 0.0;
    for name in ["gateway-api", "cert-manager", "argo-cd", "argo-rollouts"] {
        let one = catalog.resolve(&only(name), "local").expect("resolve");
        let c = Cluster::up(name);
        let m = measure(&c, || timed_install(&c, &one, &renderer)).await;
        println!("{}", m.line(&format!("{name} alone:")));
        sum += secs(m.wall);
        if m.wall > slowest.1 {
            slowest = (name, m.wall);
        }
    }
    println!("{}", together.line("install (all, concurrently):"));
    println!(
        "  slowest single add-on:         {:>7.2}s ({})",
        secs(slowest.1),
        slowest.0
    );
    println!("  sum of the single add-ons:     {:>7.2}s", sum);
    println!(
        "  control-plane floor:           {:>7.2}s  (the install's control-plane CPU-s / {cores} cores)",
        together.cpu / cores
    );
    println!(
        "  ratio install/slowest:         {:>7.2}  (target <= 1.10)",
        secs(together.wall) / secs(slowest.1)
    );
    println!(
        "  best ratio this machine allows:{:>7.2}  (the floor against the slowest add-on)",
        together.cpu / cores / secs(slowest.1)
    );
}
