//! Bringing a local cluster to "up": PKI, ports, kubeconfig, processes, nodes, readiness.
//!
//! Every step keeps what is already right: a complete PKI, recorded ports, processes that are
//! still alive (same PID and start time), nodes that exist. A rerun after a crash, a reboot or a
//! `kill -9` restarts only what is gone, on the same etcd data.
//!
//! etcd and kube-apiserver start together (the apiserver retries etcd until it answers); the
//! controller-manager, scheduler and kwok start together once `/readyz` answers.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use ::kube::Api;
use ::kube::api::PostParams;
use base64::Engine as _;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};

use super::bins::{Binaries, ROLLOUTS};
use super::pki::Pki;
use super::process::{self, Proc, Spawn};
use super::state::{ClusterDir, Ports, State, create_private_dir};
use crate::providers::{Kubeconfig, ProviderError, write_private};

pub const SERVICE_CIDR: &str = "10.0.0.0/24";
/// kwok's pod addresses; must not overlap the Service range.
pub const POD_CIDR: &str = "10.244.0.0/16";
/// kwok manages nodes carrying this annotation.
const KWOK_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

/// How long each readiness phase may take.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub apiserver: Duration,
    pub nodes: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            apiserver: Duration::from_secs(90),
            nodes: Duration::from_secs(60),
        }
    }
}

/// What a cluster is made of.
pub struct Spec<'a> {
    pub bins: &'a Binaries,
    pub stages: &'a [u8],
    pub nodes: u32,
    pub timeouts: Timeouts,
}

/// The node names of a cluster of `n` nodes.
pub fn node_names(n: u32) -> Vec<String> {
    (0..n).map(|i| format!("kwok-node-{i}")).collect()
}

/// `n` distinct free TCP ports on 127.0.0.1, all held until all are chosen.
fn free_ports(n: usize) -> Result<Vec<u16>, ProviderError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ProviderError::io("choosing free ports on 127.0.0.1", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ProviderError::io("choosing free ports on 127.0.0.1", e))
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The ports to use: new ones for a new cluster; the recorded ones otherwise, except that when
/// nothing of the cluster runs, a port something else took since is replaced.
fn choose_ports(state: &State) -> Result<Ports, ProviderError> {
    let p = state.ports;
    if p.apiserver == 0 || p.etcd == 0 || p.etcd_peer == 0 {
        let f = free_ports(3)?;
        return Ok(Ports {
            etcd: f[0],
            etcd_peer: f[1],
            apiserver: f[2],
        });
    }
    if state.processes.values().any(Proc::alive) {
        return Ok(p);
    }
    let mut fresh = free_ports(3)?.into_iter();
    let mut pick = |port: u16| {
        if port_free(port) {
            port
        } else {
            fresh.next().unwrap_or(port)
        }
    };
    Ok(Ports {
        etcd: pick(p.etcd),
        etcd_peer: pick(p.etcd_peer),
        apiserver: pick(p.apiserver),
    })
}

/// The admin kubeconfig text: the CA and client credentials inline, the server on 127.0.0.1.
pub fn kubeconfig_text(pki: &Pki, name: &str, port: u16) -> Result<String, ProviderError> {
    let b64 = |f: &str| {
        pki.read(f)
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
    };
    let q = |s: &str| crate::templates::yaml_quote(&serde_json::Value::String(s.to_string()));
    let user = format!("{name}-admin");
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {n}\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: {u}\n  user:\n    client-certificate-data: {crt}\n    \
         client-key-data: {key}\ncontexts:\n- name: {n}\n  context:\n    cluster: {n}\n    user: {u}\n\
         current-context: {n}\n",
        n = q(name),
        u = q(&user),
        server = q(&format!("https://127.0.0.1:{port}")),
        ca = b64("ca.crt")?,
        crt = b64("admin.crt")?,
        key = b64("admin.key")?,
    ))
}

/// Brings the cluster in `dir` up, starting whatever is not running. Returns its kubeconfig.
///
/// # Errors
/// A component that exits (with the tail of its log), a readiness deadline (naming what was
/// awaited and its last state), or I/O errors.
pub async fn converge(dir: &ClusterDir, spec: &Spec<'_>) -> Result<Kubeconfig, ProviderError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match converge_once(dir, spec).await {
            Ok(kubeconfig) => return Ok(kubeconfig),
            Err(Pass::AdoptedExited(component)) if attempt < 3 => {
                // It was found running, so it was kept; it exited while the pass waited (a
                // process killed with SIGKILL stays visible for a moment while it exits). The
                // next pass sees it gone and starts it again.
                tracing::info!(
                    "local cluster {}: {component} exited while starting; starting it again",
                    dir.name
                );
            }
            Err(Pass::Failed(e))
                if attempt < 3 && e.to_string().contains("address already in use") =>
            {
                // A port was taken between choosing and binding it: stop what started, take new
                // ports, go again.
                tracing::warn!(
                    "local cluster {}: a port was taken while starting; retrying on new ports",
                    dir.name
                );
                let mut state = dir.read_state()?.unwrap_or_default();
                stop_all(&state).await?;
                state.ports = Ports::default();
                state.processes.clear();
                dir.write_state(&state)?;
            }
            Err(Pass::AdoptedExited(component)) => return Err(exited(dir, component, "starting")),
            Err(Pass::Failed(e)) => return Err(e),
        }
    }
}

/// Why one pass over the cluster's processes did not bring it up.
enum Pass {
    /// A process the pass found running, and so kept, exited while the pass waited for
    /// readiness. Another pass starts it again.
    AdoptedExited(&'static str),
    Failed(ProviderError),
}

impl From<ProviderError> for Pass {
    fn from(e: ProviderError) -> Self {
        Pass::Failed(e)
    }
}

/// The error for a component that exited, with the end of its log.
fn exited(dir: &ClusterDir, component: &str, what: &str) -> ProviderError {
    let log = dir.join(&format!("logs/{component}.log"));
    ProviderError::Command {
        command: component.to_string(),
        status: format!(
            "an error while waiting for {what} on local cluster {}",
            dir.name
        ),
        output: format!(
            "last lines of {}:\n{}",
            log.display(),
            process::log_tail(&log, 25)
        ),
    }
}

/// Stops every recorded process: clients first, then the apiserver, then etcd.
///
/// # Errors
/// A process that survives SIGKILL.
pub async fn stop_all(state: &State) -> Result<(), ProviderError> {
    let grace = Duration::from_secs(10);
    let last = ["kube-apiserver", "etcd"];
    let clients: Vec<(&str, Proc)> = state
        .processes
        .iter()
        .filter(|(c, _)| !last.contains(&c.as_str()))
        .map(|(c, p)| (c.as_str(), p.clone()))
        .collect();
    process::stop(&clients, grace).await?;
    for c in last {
        if let Some(p) = state.processes.get(c) {
            process::stop(&[(c, p.clone())], grace).await?;
        }
    }
    Ok(())
}

async fn converge_once(dir: &ClusterDir, spec: &Spec<'_>) -> Result<Kubeconfig, Pass> {
    create_private_dir(&dir.path)?;
    let mut state = dir.read_state()?.unwrap_or_default();
    let pki = Pki::new(dir.join("pki"));
    pki.ensure(&dir.name)?;
    state.ports = choose_ports(&state)?;
    dir.write_state(&state)?;
    let text = kubeconfig_text(&pki, &dir.name, state.ports.apiserver)?;
    let kubeconfig_path = dir.join("kubeconfig");
    write_private(&kubeconfig_path, text.as_bytes())?;
    let kubeconfig = Kubeconfig::from_yaml(&text)?;
    let client = kubeconfig.client().await?;

    let rp = free_ports(2)?;
    let args = Args {
        rollouts_ports: [rp[0], rp[1]],
        dir,
        pki: &pki,
        ports: state.ports,
        kubeconfig: &kubeconfig_path,
    };
    let mut kept = Vec::new();
    for component in ["etcd", "kube-apiserver"] {
        if !ensure_running(dir, spec, &mut state, component, &args)? {
            kept.push(component);
        }
    }
    let watched = ["etcd", "kube-apiserver"];
    wait_for(
        dir,
        &state,
        Watched {
            all: &watched,
            kept: &kept,
        },
        "kube-apiserver /readyz",
        spec.timeouts.apiserver,
        || readyz(&client),
    )
    .await?;

    write_private(&dir.join("kwok/stages.yaml"), spec.stages)?;
    write_private(
        &dir.join("kube-scheduler.yaml"),
        scheduler_config(&kubeconfig_path).as_bytes(),
    )?;
    let mut all = super::bins::COMPONENTS.to_vec();
    // Its informers retry until the Argo Rollouts add-on creates the CRDs.
    if spec.bins.contains_key(ROLLOUTS) {
        all.push(ROLLOUTS);
    }
    for component in all.iter().copied() {
        if !["etcd", "kube-apiserver"].contains(&component)
            && !ensure_running(dir, spec, &mut state, component, &args)?
        {
            kept.push(component);
        }
    }
    let names = node_names(spec.nodes);
    create_nodes(&client, &names).await?;
    let what = format!(
        "{} Ready and ServiceAccount default/default",
        names.join(", ")
    );
    let watched = Watched {
        all: &all,
        kept: &kept,
    };
    wait_for(dir, &state, watched, &what, spec.timeouts.nodes, || {
        nodes_ready(&client, &names)
    })
    .await?;
    Ok(kubeconfig)
}

struct Args<'a> {
    /// Fresh ports for the Rollouts controller's metrics and health listeners, used when it starts.
    rollouts_ports: [u16; 2],
    dir: &'a ClusterDir,
    pki: &'a Pki,
    ports: Ports,
    kubeconfig: &'a Path,
}

fn flag(name: &str, value: impl AsRef<std::ffi::OsStr>) -> OsString {
    let mut s = OsString::from(format!("--{name}="));
    s.push(value.as_ref());
    s
}

fn args_for(component: &str, a: &Args<'_>) -> (Vec<OsString>, Vec<(&'static str, OsString)>) {
    let etcd_url = format!("http://127.0.0.1:{}", a.ports.etcd);
    let peer_url = format!("http://127.0.0.1:{}", a.ports.etcd_peer);
    let pki = |f: &str| a.pki.path(f);
    let s = |v: &str| OsString::from(v);
    match component {
        "etcd" => (
            vec![
                s("--name=default"),
                flag("data-dir", a.dir.join("etcd")),
                flag("listen-client-urls", &etcd_url),
                flag("advertise-client-urls", &etcd_url),
                flag("listen-peer-urls", &peer_url),
                flag("initial-advertise-peer-urls", &peer_url),
                flag("initial-cluster", format!("default={peer_url}")),
                s("--initial-cluster-state=new"),
                flag("initial-cluster-token", format!("ephemera-{}", a.dir.name)),
                // A throwaway cluster: losing the last writes on a power cut is fine.
                s("--unsafe-no-fsync"),
                s("--log-level=warn"),
            ],
            vec![],
        ),
        "kube-apiserver" => (
            vec![
                flag("etcd-servers", &etcd_url),
                s("--bind-address=127.0.0.1"),
                s("--advertise-address=127.0.0.1"),
                flag("secure-port", a.ports.apiserver.to_string()),
                flag("cert-dir", a.dir.join("pki/generated")),
                flag("tls-cert-file", pki("apiserver.crt")),
                flag("tls-private-key-file", pki("apiserver.key")),
                flag("client-ca-file", pki("ca.crt")),
                s("--authorization-mode=RBAC"),
                flag("service-cluster-ip-range", SERVICE_CIDR),
                s("--service-account-issuer=https://kubernetes.default.svc.cluster.local"),
                flag("service-account-key-file", pki("sa.pub")),
                flag("service-account-signing-key-file", pki("sa.key")),
                s("--allow-privileged=true"),
                // The loopback advertise address cannot be an endpoint of the kubernetes Service.
                s("--endpoint-reconciler-type=none"),
                s("--profiling=false"),
            ],
            vec![],
        ),
        "kube-controller-manager" => (
            vec![
                flag("kubeconfig", a.kubeconfig),
                s("--leader-elect=false"),
                s("--bind-address=127.0.0.1"),
                s("--secure-port=0"),
                flag("service-account-private-key-file", pki("sa.key")),
                flag("root-ca-file", pki("ca.crt")),
                flag("cluster-signing-cert-file", pki("ca.crt")),
                flag("cluster-signing-key-file", pki("ca.key")),
                s("--controllers=*"),
                s("--profiling=false"),
            ],
            vec![],
        ),
        "kube-scheduler" => (
            vec![
                flag("config", a.dir.join("kube-scheduler.yaml")),
                s("--bind-address=127.0.0.1"),
                s("--secure-port=0"),
            ],
            vec![],
        ),
        ROLLOUTS => (
            vec![
                flag("kubeconfig", a.kubeconfig),
                s("--leader-elect=false"),
                // Re-read every Rollout every 10 s instead of every 15 min, so a status change
                // that races the controller's own write (a promote right after a pause) is seen
                // within seconds on this one-machine control plane.
                s("--rollout-resync=10"),
                flag("metricsPort", a.rollouts_ports[0].to_string()),
                flag("healthzPort", a.rollouts_ports[1].to_string()),
            ],
            vec![],
        ),
        _ => (
            vec![
                flag("kubeconfig", a.kubeconfig),
                flag("config", a.dir.join("kwok/stages.yaml")),
                s("--manage-all-nodes=false"),
                flag(
                    "manage-nodes-with-annotation-selector",
                    format!("{}={}", KWOK_ANNOTATION.0, KWOK_ANNOTATION.1),
                ),
                flag("cidr", POD_CIDR),
                s("--node-ip=127.0.0.1"),
                s("--node-lease-duration-seconds=40"),
            ],
            vec![("KWOK_WORKDIR", a.dir.join("kwok").into_os_string())],
        ),
    }
}

fn scheduler_config(kubeconfig: &Path) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig},
        "leaderElection": {"leaderElect": false},
        "enableProfiling": false,
    }))
    .unwrap_or_default()
}

/// Starts `component` unless its recorded process is alive; records the new process. Returns
/// whether it started one.
fn ensure_running(
    dir: &ClusterDir,
    spec: &Spec<'_>,
    state: &mut State,
    component: &'static str,
    args: &Args<'_>,
) -> Result<bool, ProviderError> {
    if state.processes.get(component).is_some_and(Proc::alive) {
        return Ok(false);
    }
    let program = spec
        .bins
        .get(component)
        .ok_or_else(|| ProviderError::MissingTool {
            tool: component.into(),
            hint: "not found".into(),
        })?;
    let (argv, env) = args_for(component, args);
    if state.processes.contains_key(component) {
        tracing::info!(
            "local cluster {}: {component} is not running; restarting it",
            dir.name
        );
    }
    let p = process::spawn(
        &dir.path,
        Spawn {
            component,
            program,
            args: argv,
            env,
        },
    )?;
    state.processes.insert(component.to_string(), p);
    dir.write_state(state)?;
    Ok(true)
}

/// The processes a readiness wait watches, and which of them this pass found running and kept.
#[derive(Clone, Copy)]
struct Watched<'a> {
    all: &'a [&'static str],
    kept: &'a [&'static str],
}

/// Polls `check` every 100 ms until it passes; stops early when one of the watched processes
/// exits (with its log when this pass started it), and at the deadline with the last answer.
async fn wait_for<F, Fut>(
    dir: &ClusterDir,
    state: &State,
    watched: Watched<'_>,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<(), Pass>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        for c in watched.all {
            if let Some(p) = state.processes.get(*c)
                && !p.alive()
            {
                if watched.kept.contains(c) {
                    return Err(Pass::AdoptedExited(c));
                }
                return Err(Pass::Failed(exited(dir, c, what)));
            }
        }
        let last = match tokio::time::timeout(Duration::from_secs(3), check()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(state)) => state,
            Err(_) => "no answer within 3s".into(),
        };
        if Instant::now() >= deadline {
            return Err(Pass::Failed(ProviderError::Timeout {
                what: format!("{what} on local cluster {}", dir.name),
                seconds: timeout.as_secs(),
                last_state: last,
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn readyz(client: &::kube::Client) -> Result<(), String> {
    let req = http::Request::get("/readyz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match client.request_text(req).await {
        Ok(body) if body.trim() == "ok" => Ok(()),
        Ok(body) => Err(body.chars().take(300).collect()),
        Err(e) => Err(short(&e)),
    }
}

fn short(e: &::kube::Error) -> String {
    let s = e.to_string();
    s.chars().take(300).collect()
}

async fn create_nodes(client: &::kube::Client, names: &[String]) -> Result<(), ProviderError> {
    let api: Api<Node> = Api::all(client.clone());
    for name in names {
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": BTreeMap::from([KWOK_ANNOTATION]),
                "labels": BTreeMap::from([
                    ("type", "kwok"),
                    ("kubernetes.io/hostname", name.as_str()),
                    ("kubernetes.io/os", "linux"),
                    ("kubernetes.io/arch", "amd64"),
                    (crate::labels::MANAGED_BY, crate::MANAGER),
                ]),
            },
        }))
        .map_err(|e| ProviderError::Config(format!("node {name}: {e}")))?;
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(::kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(ProviderError::Transport {
                    context: format!("creating node {name}"),
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(())
}

async fn nodes_ready(client: &::kube::Client, names: &[String]) -> Result<(), String> {
    let api: Api<Node> = Api::all(client.clone());
    let nodes = api.list(&Default::default()).await.map_err(|e| short(&e))?;
    let ready: Vec<&str> = nodes
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let waiting: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !ready.contains(n))
        .collect();
    if !waiting.is_empty() {
        return Err(format!("not Ready yet: {}", waiting.join(", ")));
    }
    // The controller-manager's service-account controller makes `default` in every namespace;
    // pods cannot be created before it runs.
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    match sa.get_opt("default").await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("nodes Ready; ServiceAccount default/default not made yet".into()),
        Err(e) => Err(short(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_cluster_gets_three_distinct_ports() {
        let p = choose_ports(&State::default()).unwrap();
        assert!(p.etcd != p.etcd_peer && p.etcd != p.apiserver && p.etcd_peer != p.apiserver);
    }

    #[test]
    fn a_stopped_cluster_keeps_free_ports_and_replaces_taken_ones() {
        let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let free = free_ports(2).unwrap();
        let state = State {
            ports: Ports {
                etcd: free[0],
                etcd_peer: free[1],
                apiserver: taken_port,
            },
            processes: BTreeMap::from([(
                "etcd".to_string(),
                Proc {
                    pid: u32::MAX,
                    started: 1,
                },
            )]),
        };
        let p = choose_ports(&state).unwrap();
        assert_eq!((p.etcd, p.etcd_peer), (free[0], free[1]));
        assert_ne!(p.apiserver, taken_port);
    }

    #[test]
    fn kubeconfig_quotes_the_name_and_parses() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path().join("pki"));
        pki.ensure("pr-7").unwrap();
        let text = kubeconfig_text(&pki, "pr-7", 6443).unwrap();
        let kc = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(kc.server().as_deref(), Some("https://127.0.0.1:6443"));
    }
}
