//! Stand-ins for what a real cluster runs and the test control plane does not: its pods run
//! nothing and it has no pod network and no cloud controller. Each stand-in does what the real
//! component would do, and nothing else, so `up`'s real waits and probes are met:
//! - [`Controllers`]: the cloud controller, NGINX Gateway Fabric and cert-manager, writing status
//!   through the status subresource (the Gateway's load-balancer address and conditions, the
//!   GatewayClass, ClusterIssuers and Certificates);
//! - [`LoadBalancer`]: the load balancer in front of the ingress, for the URL probe, as an HTTPS
//!   proxy on 127.0.0.1 (`ALL_PROXY`), which needs no DNS;
//! - [`webhook_override`]: cert-manager's admission webhook, which the API server cannot reach,
//!   set to `failurePolicy: Ignore` through the add-on's own `simulated-webhook` overlay.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::testcluster::repo_root;

/// A templates directory under `root` whose cert-manager add-on applies its `simulated-webhook`
/// overlay on `providers` (the embedded definition applies it on `local` only).
pub fn webhook_override(root: &Path, providers: &[&str]) -> PathBuf {
    let relative = "addons/cert-manager/addon.yaml";
    let original = std::fs::read_to_string(repo_root().join("templates").join(relative))
        .expect("the cert-manager add-on definition");
    let overlay = "    template: addons/cert-manager/webhook-local.yaml.hbs\n    mode: patch\n    when:\n      providers: [local]\n";
    assert_eq!(
        original.matches(overlay).count(),
        1,
        "the cert-manager simulated-webhook overlay changed; update this helper:\n{original}"
    );
    let dir = root.join("templates");
    let file = dir.join(relative);
    std::fs::create_dir_all(file.parent().expect("a parent")).expect("templates dir");
    let list = format!("[{}]", providers.join(", "));
    std::fs::write(
        &file,
        original.replace(overlay, &overlay.replace("[local]", &list)),
    )
    .expect("writing the override");
    dir
}

/// One kind of object the controllers write status on.
struct Kind {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    conditions: &'static [&'static str],
    /// The load balancer's address goes into `status.addresses`.
    address: bool,
}

const KINDS: [Kind; 4] = [
    Kind {
        group: "gateway.networking.k8s.io",
        kind: "GatewayClass",
        plural: "gatewayclasses",
        conditions: &["Accepted"],
        address: false,
    },
    Kind {
        group: "gateway.networking.k8s.io",
        kind: "Gateway",
        plural: "gateways",
        conditions: &["Accepted", "Programmed"],
        address: true,
    },
    Kind {
        group: "cert-manager.io",
        kind: "ClusterIssuer",
        plural: "clusterissuers",
        conditions: &["Ready"],
        address: false,
    },
    Kind {
        group: "cert-manager.io",
        kind: "Certificate",
        plural: "certificates",
        conditions: &["Ready"],
        address: false,
    },
];

fn condition_holds(obj: &DynamicObject, kind: &str, generation: i64) -> bool {
    obj.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c["type"] == kind
                    && c["status"] == "True"
                    && c["observedGeneration"].as_i64().unwrap_or(0) >= generation
            })
        })
}

/// The cloud controller, NGINX Gateway Fabric and cert-manager, as one task polling the
/// cluster every 200 ms.
pub struct Controllers {
    address: Arc<Mutex<String>>,
    marked: Arc<Mutex<BTreeSet<String>>>,
}

impl Controllers {
    /// Starts the task on `rt`; the load balancer's address is `address` until
    /// [`Controllers::set_address`].
    pub fn start(rt: &tokio::runtime::Runtime, client: kube::Client, address: &str) -> Self {
        let c = Controllers {
            address: Arc::new(Mutex::new(address.to_string())),
            marked: Arc::new(Mutex::new(BTreeSet::new())),
        };
        rt.spawn(run(client, c.address.clone(), c.marked.clone()));
        c
    }

    /// The cloud controller hands out a new address (a recreated load balancer).
    pub fn set_address(&self, address: &str) {
        *self.address.lock().expect("address") = address.to_string();
    }

    /// Every object written so far, as `Kind namespace/name` (or `Kind name`).
    pub fn marked(&self) -> BTreeSet<String> {
        self.marked.lock().expect("marked").clone()
    }
}

/// Writes, on every object of [`KINDS`] that lacks it, the status its controller would: the
/// conditions True for the object's generation, and on Gateways the load balancer's address.
async fn run(
    client: kube::Client,
    address: Arc<Mutex<String>>,
    marked: Arc<Mutex<BTreeSet<String>>>,
) {
    loop {
        for k in &KINDS {
            let ar = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(k.group, "v1", k.kind),
                k.plural,
            );
            // Until an add-on has installed the CRD, listing fails: next round.
            let Ok(list) = Api::<DynamicObject>::all_with(client.clone(), &ar)
                .list(&Default::default())
                .await
            else {
                continue;
            };
            for obj in list {
                let ip = address.lock().expect("address").clone();
                let generation = obj.metadata.generation.unwrap_or(1);
                let has_address = obj.data.pointer("/status/addresses/0/value") == Some(&json!(ip));
                if k.conditions
                    .iter()
                    .all(|c| condition_holds(&obj, c, generation))
                    && (has_address || !k.address)
                {
                    continue;
                }
                let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                let conditions: Vec<Value> = k
                    .conditions
                    .iter()
                    .map(|c| {
                        json!({
                            "type": c, "status": "True", "reason": c,
                            "message": "written by the test in place of the controller",
                            "lastTransitionTime": now, "observedGeneration": generation,
                        })
                    })
                    .collect();
                let mut status = json!({ "conditions": conditions });
                if k.address {
                    status["addresses"] = json!([{ "type": "IPAddress", "value": ip }]);
                }
                let name = obj.metadata.name.clone().unwrap_or_default();
                let (api, id) = match &obj.metadata.namespace {
                    Some(ns) => (
                        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar),
                        format!("{} {ns}/{name}", k.kind),
                    ),
                    None => (
                        Api::all_with(client.clone(), &ar),
                        format!("{} {name}", k.kind),
                    ),
                };
                let patch = json!({ "status": status });
                if api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .is_ok()
                {
                    marked.lock().expect("marked").insert(id);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The load balancer in front of the ingress, for the URL probe: an HTTP proxy on 127.0.0.1
/// that accepts `CONNECT host:port`, speaks TLS with a self-signed certificate, and answers
/// `GET /healthz` with 200 (anything else with 404). Every request is recorded as
/// `CONNECT host:port` and `GET host path`; a request that is not a `CONNECT` is refused and
/// recorded as `refused <request line>`.
pub struct LoadBalancer {
    /// For `ALL_PROXY`.
    pub proxy: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl LoadBalancer {
    /// Starts it; the certificate names `names` (the probe must accept invalid certificates in
    /// any case: it is self-signed).
    pub async fn start(names: &[&str]) -> LoadBalancer {
        use tokio::io::AsyncWriteExt;
        use tokio_rustls::rustls;

        let key = rcgen::generate_simple_self_signed(
            names.iter().map(ToString::to_string).collect::<Vec<_>>(),
        )
        .expect("a self-signed certificate");
        let private =
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![key.cert.der().clone()], private)
        .expect("a TLS server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let proxy = format!("http://{}", listener.local_addr().expect("local addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let Some(head) = read_head(&mut tcp).await else {
                        return;
                    };
                    let first = head.lines().next().unwrap_or_default().to_string();
                    let Some(target) = first
                        .strip_prefix("CONNECT ")
                        .and_then(|rest| rest.split(' ').next())
                    else {
                        log.lock().expect("seen").push(format!("refused {first}"));
                        let _ = tcp
                            .write_all(
                                b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n",
                            )
                            .await;
                        return;
                    };
                    log.lock().expect("seen").push(format!("CONNECT {target}"));
                    if tcp
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let Ok(mut stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Some(request) = read_head(&mut stream).await else {
                        return;
                    };
                    let path = request.split(' ').nth(1).unwrap_or_default().to_string();
                    let host = request
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
                        .map(|(_, v)| v.trim().to_string())
                        .unwrap_or_default();
                    log.lock().expect("seen").push(format!("GET {host} {path}"));
                    let answer: &[u8] = if path == "/healthz" {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    } else {
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    };
                    let _ = stream.write_all(answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        LoadBalancer { proxy, seen }
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }

    /// Asserts that the last request was the probe of `https://<host>/healthz` through this
    /// proxy.
    pub fn assert_probed(&self, host: &str) {
        let seen = self.seen();
        let n = seen.len();
        assert_eq!(
            seen.get(n.saturating_sub(2)..),
            Some(
                &[
                    format!("CONNECT {host}:443"),
                    format!("GET {host} /healthz")
                ][..]
            ),
            "the last request was not the probe of https://{host}/healthz: {seen:?}"
        );
    }
}

/// An HTTP request head (up to the blank line, at most 16 KiB), read in chunks: the client
/// sends nothing after it before it has an answer.
async fn read_head(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 16 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}
