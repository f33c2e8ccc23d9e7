//! A fake Azure Resource Manager (and Entra ID token endpoint) on 127.0.0.1, for the AKS tests.
//!
//! It keeps state and follows the contract in `../shared/fixtures/azure/2026-08-01/README.md`:
//! - `PUT managedClusters/{name}` answers 201 (create) or 200 (update) with
//!   `Azure-AsyncOperation` and `Retry-After`, body `provisioningState: Creating`/`Updating`; the
//!   operation reaches `Succeeded` (or an injected `Failed`) after [`Config::polls`] polls;
//! - `DELETE` answers 202 with `Location` (and `Azure-AsyncOperation`), or 204 when it is gone;
//! - a PUT or DELETE while an operation runs answers 409 `OperationNotAllowed`;
//! - `If-None-Match: *` / `If-Match` are honoured (412);
//! - lists come in pages of [`Config::page_size`] with `nextLink`;
//! - every PUT body is validated against the swagger's `ManagedCluster` schema (400 otherwise);
//! - faults: a share of ARM calls answer 429 with `Retry-After`, 500, or lose the connection, some
//!   of them after the request took effect (the response is what gets lost);
//! - `POST /{tenant}/oauth2/v2.0/token` issues JWT-shaped tokens for the client-secret and
//!   federated credentials, and every ARM call must carry one.
//!
//! Counters record every PUT, every create and every resource group creation, so tests can
//! assert that no second cluster or group was ever created.

pub mod dns;
pub mod identity;
#[path = "../../../../src/azure/swagger.rs"]
pub mod swagger;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use base64::Engine as _;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-00000000c0de";
pub const TENANT: &str = "11111111-1111-1111-1111-111111111111";
pub const CLIENT_ID: &str = "22222222-2222-2222-2222-222222222222";
pub const CLIENT_SECRET: &str = "fake-secret-value-never-logged";
pub const FEDERATED_ASSERTION: &str = "fake.github.oidc";
const CLUSTER_API: &str = "2026-08-01";
const GROUP_API: &str = "2021-04-01";

/// How polls are announced on long-running operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LroStyle {
    /// `Azure-AsyncOperation` (and `Location` on DELETE), as AKS does.
    AsyncOperation,
    /// Only `Location`, as the Delete and UpdateTags examples show.
    Location,
    /// No header: clients poll the resource's `provisioningState`.
    None,
}

/// One kind of injected failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After`, before the request is processed.
    Throttle,
    /// 500 before the request is processed.
    ServerError,
    /// The connection is dropped before the request is processed.
    Reset,
    /// The request is processed, then the connection is dropped: the response is lost.
    ResetAfter,
    /// The request is processed, then 500 is answered instead of its response.
    ServerErrorAfter,
}

/// What the fake does.
#[derive(Clone, Debug)]
pub struct Config {
    /// Polls an operation takes to finish.
    pub polls: u32,
    /// `Retry-After` on operation responses and polls (`None`: no header).
    pub retry_after: Option<String>,
    /// `Retry-After` on 429s.
    pub throttle_retry_after: String,
    pub lro: LroStyle,
    pub page_size: usize,
    /// Share of ARM calls (0.0-1.0) that get a fault, drawn from `fault_kinds`.
    pub fault_rate: f64,
    pub fault_kinds: Vec<Fault>,
    pub seed: u64,
    /// Served by listClusterAdminCredential / listClusterUserCredential; else a generated one.
    pub kubeconfig: Option<String>,
    /// Polls a cluster creation takes (else [`Config::polls`]), to keep a run inside it.
    pub create_polls: Option<u32>,
    /// A DELETE during a creation cancels the creation (status Canceled) and deletes the cluster,
    /// instead of answering 409: a deletion that preempts the create.
    pub delete_preempts_create: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            polls: 3,
            retry_after: Some("0".into()),
            throttle_retry_after: "0".into(),
            lro: LroStyle::AsyncOperation,
            page_size: 100,
            fault_rate: 0.0,
            fault_kinds: vec![Fault::Throttle, Fault::ServerError, Fault::Reset],
            seed: 7,
            kubeconfig: None,
            create_polls: None,
            delete_preempts_create: false,
        }
    }
}

#[derive(Clone, Debug)]
struct Cluster {
    name: String,
    group: String,
    /// The resource as last PUT (request fields only).
    spec: Value,
    tags: Value,
    state: String,
    power: String,
    etag: u64,
    error: Option<(String, String)>,
}

#[derive(Clone, Debug)]
struct Group {
    name: String,
    location: String,
    tags: Value,
    state: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Create,
    Update,
    Delete,
    Start,
    Stop,
    DeleteGroup,
}

#[derive(Clone, Debug)]
struct Op {
    kind: OpKind,
    /// Lower-case cluster id, or the group name for DeleteGroup.
    target: String,
    polls_left: u32,
    fail: Option<(String, String)>,
    status: String,
}

/// Everything the fake remembers, and the counters tests read.
#[derive(Debug, Default)]
pub struct State {
    clusters: BTreeMap<String, Cluster>,
    groups: BTreeMap<String, Group>,
    ops: BTreeMap<String, Op>,
    tokens: Vec<String>,
    next_id: u64,
    /// PUTs per cluster (lower-case name), whatever their answer.
    pub puts: BTreeMap<String, usize>,
    /// Creations per cluster (lower-case name): PUTs answered 201.
    pub creates: BTreeMap<String, usize>,
    /// Creations per resource group (lower-case name).
    pub group_creates: BTreeMap<String, usize>,
    /// (method, path, status) of every ARM call that got an answer; faults show as their status,
    /// dropped connections as 0.
    pub log: Vec<(String, String, u16)>,
    /// Calls without an `x-ms-client-request-id`.
    pub missing_request_ids: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    /// (fault, method, path) of every injected fault.
    pub fault_log: Vec<(String, String, String)>,
    /// Token requests answered with a token.
    pub tokens_issued: usize,
    forced_throttles: usize,
    /// Clusters whose next create ends Failed with (code, message).
    fail_create: BTreeMap<String, (String, String)>,
    /// Azure DNS zones and record sets (see [`dns`]).
    pub dns: dns::DnsState,
    /// Managed identities and their federated credentials (see [`identity`]).
    pub identity: identity::IdentityState,
    cfg: Option<Config>,
    rng: Option<rand::rngs::StdRng>,
}

/// A running fake ARM. Dropping it stops accepting connections.
pub struct FakeArm {
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeArm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake ARM dropped the connection")
    }
}

impl std::error::Error for Dropped {}

impl FakeArm {
    /// Starts a fake on a random port of 127.0.0.1.
    pub async fn start(cfg: Config) -> FakeArm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            rng: Some(rand::rngs::StdRng::seed_from_u64(cfg.seed)),
            cfg: Some(cfg),
            ..State::default()
        }));
        let url = format!("http://{addr}");
        let st = state.clone();
        let base = url.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let base = base.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let st = st.clone();
                            let base = base.clone();
                            async move { handle(st, &base, req.map(Body::new)).await }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeArm {
            url,
            addr,
            state,
            task,
        }
    }

    /// The variables that point the AKS provider at this fake with the client-secret credential.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AZURE_RESOURCE_MANAGER_ENDPOINT", self.url.as_str()),
            ("AZURE_AUTHORITY_HOST", self.url.as_str()),
            ("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT_ID),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
            ("AZURE_TOKEN_CREDENTIALS", "prod"),
            ("PATH", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Reads the state (counters, log).
    pub fn with_state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().expect("fake ARM state"))
    }

    fn with_state_mut<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake ARM state"))
    }

    /// Changes the fault injection from now on.
    pub fn set_faults(&self, rate: f64, kinds: &[Fault]) {
        self.with_state_mut(|s| {
            if let Some(c) = s.cfg.as_mut() {
                c.fault_rate = rate;
                c.fault_kinds = kinds.to_vec();
            }
        });
    }

    /// Answers the next `n` ARM calls with 429 and `Retry-After: value`.
    pub fn throttle_next(&self, n: usize, value: &str) {
        self.with_state_mut(|s| {
            s.forced_throttles = n;
            if let Some(c) = s.cfg.as_mut() {
                c.throttle_retry_after = value.into();
            }
        });
    }

    /// A token the fake accepts, as if fetched beforehand (for `EPHEMERA_AZURE_TOKEN`).
    pub fn issue_token(&self) -> String {
        make_token(&mut self.state.lock().expect("fake ARM state"))
    }

    /// Changes `Retry-After` on operations from now on.
    pub fn set_retry_after(&self, value: Option<&str>) {
        self.with_state_mut(|s| {
            if let Some(c) = s.cfg.as_mut() {
                c.retry_after = value.map(Into::into);
            }
        });
    }

    /// Changes `Retry-After` on 429s from now on.
    pub fn set_throttle_retry_after(&self, value: &str) {
        self.with_state_mut(|s| {
            if let Some(c) = s.cfg.as_mut() {
                c.throttle_retry_after = value.into();
            }
        });
    }

    /// Makes the next creation of cluster `name` end Failed with ARM error `code`/`message`.
    pub fn fail_create(&self, name: &str, code: &str, message: &str) {
        self.with_state_mut(|s| {
            s.fail_create
                .insert(name.to_lowercase(), (code.into(), message.into()))
        });
    }

    /// Adds a user-assigned managed identity (no credentials) and returns its resource id.
    pub fn seed_identity(&self, group: &str, name: &str) -> String {
        self.with_state_mut(|s| {
            s.identity.identities.insert(
                format!("{}/{}", group.to_lowercase(), name.to_lowercase()),
                BTreeMap::new(),
            )
        });
        format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
        )
    }

    /// The federated credentials of an identity: name → properties.
    pub fn credentials(&self, group: &str, name: &str) -> BTreeMap<String, Value> {
        self.with_state(|s| {
            s.identity
                .identities
                .get(&format!("{}/{}", group.to_lowercase(), name.to_lowercase()))
                .cloned()
                .unwrap_or_default()
        })
    }

    /// Adds a federated credential directly (no counters), as another tool would have.
    pub fn seed_credential(&self, group: &str, identity: &str, name: &str, props: Value) {
        self.with_state_mut(|s| {
            s.identity
                .identities
                .entry(format!(
                    "{}/{}",
                    group.to_lowercase(),
                    identity.to_lowercase()
                ))
                .or_default()
                .insert(name.to_string(), props)
        });
    }

    /// Refuses the next `n` credential writes with 409, as ARM does while another write to the
    /// same identity runs.
    pub fn refuse_credential_writes(&self, n: usize) {
        self.with_state_mut(|s| s.identity.refuse_writes = n);
    }

    /// Adds a resource group directly (no counters).
    pub fn seed_group(&self, name: &str, tags: Value) {
        self.with_state_mut(|s| {
            s.groups.insert(
                name.to_lowercase(),
                Group {
                    name: name.into(),
                    location: "westeurope".into(),
                    tags,
                    state: "Succeeded".into(),
                },
            )
        });
    }

    /// Adds a Succeeded cluster directly (no counters), with `tags`.
    pub fn seed_cluster(&self, group: &str, name: &str, tags: Value) {
        self.with_state_mut(|s| {
            s.clusters.insert(
                cluster_key(group, name),
                Cluster {
                    name: name.into(),
                    group: group.into(),
                    spec: json!({"location": "westeurope", "properties": {"dnsPrefix": name}}),
                    tags,
                    state: "Succeeded".into(),
                    power: "Running".into(),
                    etag: 1,
                    error: None,
                },
            )
        });
    }

    /// Sets a cluster's provisioning state and power state directly.
    pub fn set_cluster_state(&self, group: &str, name: &str, state: &str, power: &str) {
        self.with_state_mut(|s| {
            if let Some(c) = s.clusters.get_mut(&cluster_key(group, name)) {
                c.state = state.into();
                c.power = power.into();
            }
        });
    }

    /// Starts an operation on an existing cluster as if someone else had sent a PUT.
    pub fn start_foreign_update(&self, group: &str, name: &str) {
        self.with_state_mut(|s| {
            let key = cluster_key(group, name);
            if let Some(c) = s.clusters.get_mut(&key) {
                c.state = "Updating".into();
                let polls = s.cfg.as_ref().map_or(3, |c| c.polls);
                s.next_id += 1;
                let id = format!("op{}", s.next_id);
                s.ops.insert(
                    id,
                    Op {
                        kind: OpKind::Update,
                        target: key,
                        polls_left: polls,
                        fail: None,
                        status: "InProgress".into(),
                    },
                );
            }
        });
    }

    /// A cluster's power state (`Running`, `Stopped`), `None` when it does not exist.
    pub fn cluster_power(&self, group: &str, name: &str) -> Option<String> {
        self.with_state(|s| {
            s.clusters
                .get(&cluster_key(group, name))
                .map(|c| c.power.clone())
        })
    }

    /// A cluster's provisioning state.
    pub fn cluster_state(&self, group: &str, name: &str) -> Option<String> {
        self.with_state(|s| {
            s.clusters
                .get(&cluster_key(group, name))
                .map(|c| c.state.clone())
        })
    }

    /// A cluster's tags.
    pub fn cluster_tags(&self, group: &str, name: &str) -> Option<Value> {
        self.with_state(|s| {
            s.clusters
                .get(&cluster_key(group, name))
                .map(|c| c.tags.clone())
        })
    }

    /// The body of the cluster as last PUT.
    pub fn cluster_spec(&self, group: &str, name: &str) -> Option<Value> {
        self.with_state(|s| {
            s.clusters
                .get(&cluster_key(group, name))
                .map(|c| c.spec.clone())
        })
    }

    /// Every managed cluster that exists, as `(resource group, name)`.
    pub fn clusters(&self) -> Vec<(String, String)> {
        self.with_state(|s| {
            s.clusters
                .values()
                .map(|c| (c.group.clone(), c.name.clone()))
                .collect()
        })
    }

    /// Every resource group that exists, by name.
    pub fn groups(&self) -> Vec<String> {
        self.with_state(|s| s.groups.values().map(|g| g.name.clone()).collect())
    }

    /// Whether a resource group exists.
    pub fn group_exists(&self, name: &str) -> bool {
        self.with_state(|s| s.groups.contains_key(&name.to_lowercase()))
    }

    /// Number of logged calls with this method whose path contains `fragment`.
    pub fn calls(&self, method: &str, fragment: &str) -> usize {
        let fragment = fragment.to_lowercase();
        self.with_state(|s| {
            s.log
                .iter()
                .filter(|(m, p, _)| m == method && p.to_lowercase().contains(&fragment))
                .count()
        })
    }
}

fn cluster_key(group: &str, name: &str) -> String {
    format!("{}/{}", group.to_lowercase(), name.to_lowercase())
}

fn cluster_id(group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

fn respond(status: StatusCode, headers: &[(&str, String)], body: Option<Value>) -> Response<Body> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v.as_str());
    }
    let body = match body {
        Some(b) => {
            r = r.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    r.body(body).expect("response")
}

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    respond(
        status,
        &[],
        Some(json!({"error": {"code": code, "message": message}})),
    )
}

fn query(req_query: Option<&str>) -> BTreeMap<String, String> {
    req_query
        .map(|q| {
            q.split('&')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    state: Arc<Mutex<State>>,
    base: &str,
    req: Request<Body>,
) -> Result<Response<Body>, Dropped> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let q = query(parts.uri.query());
    let method = parts.method.clone();

    if path.ends_with("/oauth2/v2.0/token") {
        return Ok(token(&state, &path, &bytes));
    }

    // Authentication and fault injection apply to ARM calls.
    let mut st = state.lock().expect("fake ARM state");
    if parts.headers.get("x-ms-client-request-id").is_none() {
        st.missing_request_ids += 1;
    }
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if bearer.as_ref().is_none_or(|b| !st.tokens.contains(b)) {
        st.log.push((method.to_string(), path.clone(), 401));
        return Ok(arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        ));
    }
    let cfg = st.cfg.clone().unwrap_or_default();
    let fault = if st.forced_throttles > 0 {
        st.forced_throttles -= 1;
        Some(Fault::Throttle)
    } else {
        let rng = st.rng.as_mut().expect("rng");
        if cfg.fault_rate > 0.0
            && !cfg.fault_kinds.is_empty()
            && rng.random_bool(cfg.fault_rate.min(1.0))
        {
            Some(cfg.fault_kinds[rng.random_range(0..cfg.fault_kinds.len())])
        } else {
            None
        }
    };
    if let Some(f) = fault {
        *st.faults.entry(format!("{f:?}")).or_default() += 1;
        st.fault_log
            .push((format!("{f:?}"), method.to_string(), path.clone()));
        match f {
            Fault::Throttle => {
                st.log.push((method.to_string(), path.clone(), 429));
                return Ok(respond(
                    StatusCode::TOO_MANY_REQUESTS,
                    &[("retry-after", cfg.throttle_retry_after.clone())],
                    Some(
                        json!({"error": {"code": "TooManyRequests", "message": "The request is being throttled."}}),
                    ),
                ));
            }
            Fault::ServerError => {
                st.log.push((method.to_string(), path.clone(), 500));
                return Ok(arm_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "Injected failure.",
                ));
            }
            Fault::Reset => {
                st.log.push((method.to_string(), path.clone(), 0));
                return Err(Dropped);
            }
            Fault::ResetAfter | Fault::ServerErrorAfter => {}
        }
    }
    let resp = route(
        &mut st,
        &cfg,
        base,
        &method,
        &path,
        &q,
        &parts.headers,
        &bytes,
    );
    match fault {
        Some(Fault::ResetAfter) => {
            st.log.push((method.to_string(), path, 0));
            Err(Dropped)
        }
        Some(Fault::ServerErrorAfter) => {
            st.log.push((method.to_string(), path, 500));
            Ok(arm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Injected failure after processing.",
            ))
        }
        _ => {
            st.log
                .push((method.to_string(), path, resp.status().as_u16()));
            Ok(resp)
        }
    }
}

fn token(state: &Arc<Mutex<State>>, path: &str, body: &[u8]) -> Response<Body> {
    let form: BTreeMap<String, String> = query(Some(&String::from_utf8_lossy(body)));
    let tenant = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    let deny = |code: u32, text: &str| {
        respond(
            StatusCode::UNAUTHORIZED,
            &[],
            Some(
                json!({"error": "invalid_client", "error_description": format!("AADSTS{code}: {text}"), "error_codes": [code]}),
            ),
        )
    };
    if tenant != TENANT {
        return deny(90002, "Tenant not found.");
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || !form.get("scope").is_some_and(|s| s.ends_with("/.default"))
    {
        return respond(
            StatusCode::BAD_REQUEST,
            &[],
            Some(json!({"error": "invalid_request"})),
        );
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return deny(700016, "Application not found in the directory.");
    }
    let ok = match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(s), _) => s == CLIENT_SECRET,
        (None, Some(a)) => {
            a == FEDERATED_ASSERTION
                && form.get("client_assertion_type").map(String::as_str)
                    == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        }
        _ => false,
    };
    if !ok {
        return deny(7000215, "Invalid client secret provided.");
    }
    let t = make_token(&mut state.lock().expect("fake ARM state"));
    respond(
        StatusCode::OK,
        &[],
        Some(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": t})),
    )
}

fn make_token(st: &mut State) -> String {
    st.tokens_issued += 1;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = jiff::Timestamp::now().as_second() + 3600;
    let claims = json!({"appid": CLIENT_ID, "tid": TENANT, "oid": "33333333-3333-3333-3333-333333333333", "exp": exp, "n": st.tokens_issued});
    let t = format!(
        "{}.{}.fakesig",
        e.encode(br#"{"alg":"none","typ":"JWT"}"#),
        e.encode(claims.to_string())
    );
    st.tokens.push(t.clone());
    t
}

/// Splits an ARM path into lower-cased segments (original case kept for names).
fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn route(
    st: &mut State,
    cfg: &Config,
    base: &str,
    method: &Method,
    path: &str,
    q: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Body> {
    let seg = segments(path);
    let lower: Vec<String> = seg.iter().map(|s| s.to_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    if l.len() < 2 || l[0] != "subscriptions" || lower[1] != SUBSCRIPTION {
        return arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            "The subscription could not be found.",
        );
    }
    let api = q.get("api-version").map(String::as_str).unwrap_or_default();
    let need = |v: &str| -> Option<Response<Body>> {
        (api != v).then(|| {
            arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                &format!("The api-version '{api}' is invalid here; use '{v}'."),
            )
        })
    };
    let json_body: Option<Value> = serde_json::from_slice(body).ok();
    match l.as_slice() {
        ["subscriptions", _, "resourcegroups"] if method == Method::GET => {
            if let Some(r) = need(GROUP_API) {
                return r;
            }
            let filter = q.get("$filter").cloned().unwrap_or_default();
            let items: Vec<Value> = st
                .groups
                .values()
                .filter(|g| group_matches(g, &filter))
                .map(group_json)
                .collect();
            page(base, path, q, items, cfg.page_size)
        }
        ["subscriptions", _, "resourcegroups", _] => {
            if let Some(r) = need(GROUP_API) {
                return r;
            }
            group(st, cfg, base, method, &seg[3], json_body)
        }
        ["subscriptions", _, "operationresults", id] => {
            if let Some(r) = need(GROUP_API) {
                return r;
            }
            poll_op(st, cfg, base, id, true)
        }
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.containerservice",
            "managedclusters",
        ] if method == Method::GET => {
            if let Some(r) = need(CLUSTER_API) {
                return r;
            }
            let items: Vec<Value> = st.clusters.values().map(cluster_json).collect();
            page(base, path, q, items, cfg.page_size)
        }
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.containerservice",
            "locations",
            _,
            kind,
            id,
        ] if method == Method::GET => {
            if let Some(r) = need(CLUSTER_API) {
                return r;
            }
            poll_op(st, cfg, base, id, *kind != "operationstatus")
        }
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.containerservice",
            "managedclusters",
        ] if method == Method::GET => {
            if let Some(r) = need(CLUSTER_API) {
                return r;
            }
            if !st.groups.contains_key(&lower[3]) {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceGroupNotFound",
                    "Resource group not found.",
                );
            }
            let items: Vec<Value> = st
                .clusters
                .values()
                .filter(|c| c.group.eq_ignore_ascii_case(&seg[3]))
                .map(cluster_json)
                .collect();
            page(base, path, q, items, cfg.page_size)
        }
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.containerservice",
            "managedclusters",
            _,
        ] => {
            if let Some(r) = need(CLUSTER_API) {
                return r;
            }
            cluster(st, cfg, base, method, &seg[3], &seg[7], headers, json_body)
        }
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.containerservice",
            "managedclusters",
            _,
            action,
        ] if method == Method::POST => {
            if let Some(r) = need(CLUSTER_API) {
                return r;
            }
            cluster_action(st, cfg, base, &seg[3], &seg[7], action)
        }
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.network",
            ..,
        ] => dns::route(st, cfg, base, method, path, &seg, q, headers, json_body),
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.managedidentity",
            "userassignedidentities",
            _,
            "federatedidentitycredentials",
            rest @ ..,
        ] if rest.len() <= 1 => {
            if let Some(r) = need(identity::IDENTITY_API) {
                return r;
            }
            match (rest.first(), method) {
                (Some(_), _) => {
                    identity::credential(st, method, &seg[3], &seg[7], &seg[9], json_body)
                }
                (None, &Method::GET) => match identity::list(st, &seg[3], &seg[7]) {
                    Some(items) => page(base, path, q, items, cfg.page_size),
                    None => identity::missing(&seg[3], &seg[7]),
                },
                (None, _) => arm_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "Method not allowed.",
                ),
            }
        }
        _ => arm_error(
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            &format!("No route for {method} {path}"),
        ),
    }
}

fn group_matches(g: &Group, filter: &str) -> bool {
    // Supports `tagName eq 'k' and tagValue eq 'v'`, as ARM does for resource groups.
    let grab = |key: &str| -> Option<String> {
        let i = filter.find(key)?;
        let rest = &filter[i + key.len()..];
        let start = rest.find('\'')? + 1;
        let end = rest[start..].find('\'')? + start;
        Some(rest[start..end].to_string())
    };
    match (grab("tagName eq "), grab("tagValue eq ")) {
        (Some(k), Some(v)) => g.tags.get(&k).and_then(Value::as_str) == Some(v.as_str()),
        (Some(k), None) => g.tags.get(&k).is_some(),
        _ => true,
    }
}

fn page(
    base: &str,
    path: &str,
    q: &BTreeMap<String, String>,
    items: Vec<Value>,
    size: usize,
) -> Response<Body> {
    let skip: usize = q
        .get("$skipToken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let size = size.max(1);
    let chunk: Vec<Value> = items.iter().skip(skip).take(size).cloned().collect();
    let mut body = json!({ "value": chunk });
    if skip + size < items.len() {
        let mut next: Vec<String> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "$skipToken")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        next.push(format!("%24skipToken={}", skip + size));
        body["nextLink"] = json!(format!("{base}{path}?{}", next.join("&")));
    }
    respond(StatusCode::OK, &[], Some(body))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn group_json(g: &Group) -> Value {
    json!({
        "id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{}", g.name),
        "name": g.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": g.location,
        "tags": g.tags,
        "properties": {"provisioningState": g.state},
    })
}

fn cluster_json(c: &Cluster) -> Value {
    let mut v = c.spec.clone();
    let location = v
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or("westeurope")
        .to_string();
    v["id"] = json!(cluster_id(&c.group, &c.name));
    v["name"] = json!(c.name);
    v["type"] = json!("Microsoft.ContainerService/ManagedClusters");
    v["tags"] = c.tags.clone();
    v["eTag"] = json!(format!("\"{}\"", c.etag));
    if let Some(identity) = v.get_mut("identity").and_then(Value::as_object_mut) {
        identity.insert(
            "principalId".into(),
            json!("44444444-4444-4444-4444-444444444444"),
        );
        identity.insert("tenantId".into(), json!(TENANT));
    }
    let props = v.get_mut("properties").and_then(Value::as_object_mut);
    if let Some(p) = props {
        p.insert("provisioningState".into(), json!(c.state));
        p.insert("powerState".into(), json!({"code": c.power}));
        p.insert("maxAgentPools".into(), json!(100));
        let prefix = p
            .get("dnsPrefix")
            .and_then(Value::as_str)
            .unwrap_or("x")
            .to_string();
        p.insert(
            "fqdn".into(),
            json!(format!("{prefix}-abc123.hcp.{location}.azmk8s.io")),
        );
        p.insert(
            "nodeResourceGroup".into(),
            json!(format!("MC_{}_{}_{location}", c.group, c.name)),
        );
        if let Some(Value::Object(oidc)) = p.get_mut("oidcIssuerProfile")
            && oidc.get("enabled") == Some(&Value::Bool(true))
            && c.state != "Creating"
        {
            // One issuer per cluster, known once it exists.
            oidc.insert(
                "issuerURL".into(),
                json!(format!(
                    "https://{location}.oic.prod-aks.azure.com/{TENANT}/{}-{}/",
                    c.group.to_lowercase(),
                    c.name.to_lowercase()
                )),
            );
        }
        if let Some(v) = p.get("kubernetesVersion").cloned() {
            p.insert(
                "currentKubernetesVersion".into(),
                json!(format!("{}.3", v.as_str().unwrap_or("1.34"))),
            );
        }
        if let Some((code, message)) = &c.error {
            p.insert(
                "status".into(),
                json!({"provisioningError": {"code": code, "message": message}}),
            );
        }
        if let Some(Value::Array(pools)) = p.get_mut("agentPoolProfiles") {
            for pool in pools {
                if let Some(o) = pool.as_object_mut() {
                    o.insert("provisioningState".into(), json!(c.state));
                    o.insert(
                        "nodeImageVersion".into(),
                        json!("AKSUbuntu-2204gen2containerd-2026.11.01"),
                    );
                }
            }
        }
    }
    v
}

fn lro_headers(cfg: &Config, base: &str, id: &str, delete: bool) -> Vec<(&'static str, String)> {
    let status = format!(
        "{base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/locations/westeurope/operationStatus/{id}?api-version={CLUSTER_API}"
    );
    let result = format!(
        "{base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/locations/westeurope/operationresults/{id}?api-version={CLUSTER_API}"
    );
    let mut h = Vec::new();
    match cfg.lro {
        LroStyle::AsyncOperation => {
            h.push(("azure-asyncoperation", status));
            if delete {
                h.push(("location", result));
            }
        }
        LroStyle::Location => h.push(("location", result)),
        LroStyle::None => {}
    }
    if let Some(ra) = &cfg.retry_after {
        h.push(("retry-after", ra.clone()));
    }
    h
}

fn new_op(
    st: &mut State,
    cfg: &Config,
    kind: OpKind,
    target: String,
    fail: Option<(String, String)>,
) -> String {
    st.next_id += 1;
    let id = format!("{:08x}-0000-4000-8000-{:012x}", st.next_id, st.next_id);
    let polls = match kind {
        OpKind::Create => cfg.create_polls.unwrap_or(cfg.polls),
        _ => cfg.polls,
    };
    st.ops.insert(
        id.clone(),
        Op {
            kind,
            target,
            polls_left: polls,
            fail,
            status: "InProgress".into(),
        },
    );
    id
}

/// One poll of operation `id` (or of its resource): counts down, then applies the outcome.
fn advance(st: &mut State, id: &str) {
    let Some(op) = st.ops.get_mut(id) else { return };
    if op.status != "InProgress" {
        return;
    }
    op.polls_left = op.polls_left.saturating_sub(1);
    if op.polls_left > 0 {
        return;
    }
    let op = op.clone();
    let status = if op.fail.is_some() {
        "Failed"
    } else {
        "Succeeded"
    };
    if let Some(o) = st.ops.get_mut(id) {
        o.status = status.into();
    }
    match op.kind {
        OpKind::Create | OpKind::Update | OpKind::Start | OpKind::Stop => {
            if let Some(c) = st.clusters.get_mut(&op.target) {
                c.state = status.into();
                c.error = op.fail.clone();
                if op.kind == OpKind::Start {
                    c.power = "Running".into();
                }
                if op.kind == OpKind::Stop {
                    c.power = "Stopped".into();
                }
                c.etag += 1;
            }
        }
        OpKind::Delete => {
            st.clusters.remove(&op.target);
        }
        OpKind::DeleteGroup => {
            st.groups.remove(&op.target);
            let prefix = format!("{}/", op.target);
            st.clusters.retain(|k, _| !k.starts_with(&prefix));
        }
    }
}

/// Advances every running operation on `target`.
fn tick(st: &mut State, target: &str) {
    let ids: Vec<String> = st
        .ops
        .iter()
        .filter(|(_, o)| o.target == target && o.status == "InProgress")
        .map(|(k, _)| k.clone())
        .collect();
    for id in ids {
        advance(st, &id);
    }
}

fn running(st: &State, target: &str) -> Option<OpKind> {
    st.ops
        .values()
        .find(|o| o.target == target && o.status == "InProgress")
        .map(|o| o.kind)
}

fn poll_op(st: &mut State, cfg: &Config, base: &str, id: &str, location: bool) -> Response<Body> {
    advance(st, id);
    let Some(op) = st.ops.get(id).cloned() else {
        return arm_error(StatusCode::NOT_FOUND, "NotFound", "Operation not found.");
    };
    let ra: Vec<(&str, String)> = cfg
        .retry_after
        .iter()
        .map(|r| ("retry-after", r.clone()))
        .collect();
    if location {
        return match (op.status.as_str(), &op.fail) {
            ("InProgress", _) => {
                let url = format!(
                    "{base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.ContainerService/locations/westeurope/operationresults/{id}?api-version={CLUSTER_API}"
                );
                let mut h = vec![("location", url)];
                h.extend(ra);
                respond(StatusCode::ACCEPTED, &h, None)
            }
            (_, Some((code, message))) => arm_error(StatusCode::BAD_REQUEST, code, message),
            _ => respond(
                if matches!(op.kind, OpKind::Delete | OpKind::DeleteGroup) {
                    StatusCode::NO_CONTENT
                } else {
                    StatusCode::OK
                },
                &[],
                None,
            ),
        };
    }
    let mut body =
        json!({"id": id, "name": id, "status": op.status, "startTime": "2026-11-28T10:00:00Z"});
    if let Some((code, message)) = &op.fail {
        body["error"] = json!({"code": code, "message": message});
    }
    respond(StatusCode::OK, &ra, Some(body))
}

fn precondition_failed() -> Response<Body> {
    arm_error(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
        "The condition specified using HTTP conditional header(s) is not met.",
    )
}

fn etag_ok(headers: &HeaderMap, current: Option<u64>) -> bool {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(inm) = h("if-none-match")
        && inm.trim() == "*"
        && current.is_some()
    {
        return false;
    }
    if let Some(im) = h("if-match") {
        return match current {
            None => false,
            Some(e) => im.trim() == "*" || im.trim() == format!("\"{e}\""),
        };
    }
    true
}

#[allow(clippy::too_many_arguments)]
fn cluster(
    st: &mut State,
    cfg: &Config,
    base: &str,
    method: &Method,
    group: &str,
    name: &str,
    headers: &HeaderMap,
    body: Option<Value>,
) -> Response<Body> {
    let key = cluster_key(group, name);
    tick(st, &key);
    let exists = st.clusters.get(&key).map(|c| c.etag);
    let busy = running(st, &key);
    let in_progress = |kind: OpKind| {
        arm_error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            &format!(
                "Operation is not allowed because there's an in progress {kind:?} managed cluster operation."
            ),
        )
    };
    match *method {
        Method::GET => match st.clusters.get(&key) {
            Some(c) => respond(
                StatusCode::OK,
                &[("etag", format!("\"{}\"", c.etag))],
                Some(cluster_json(c)),
            ),
            None => arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("The Resource '{name}' was not found."),
            ),
        },
        Method::PUT => {
            *st.puts.entry(name.to_lowercase()).or_default() += 1;
            if !st.groups.contains_key(&group.to_lowercase()) {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceGroupNotFound",
                    &format!("Resource group '{group}' could not be found."),
                );
            }
            let Some(body) = body else {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContent",
                    "The body is not JSON.",
                );
            };
            if let Err(e) = validator().check(&body) {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContent",
                    &e.replace('\n', "; "),
                );
            }
            if !etag_ok(headers, exists) {
                return precondition_failed();
            }
            if let Some(kind) = busy {
                return in_progress(kind);
            }
            let tags = body.get("tags").cloned().unwrap_or(json!({}));
            let mut spec = body.clone();
            if let Some(o) = spec.as_object_mut() {
                o.remove("tags");
            }
            let creating = exists.is_none();
            let fail = if creating {
                st.fail_create.remove(&name.to_lowercase())
            } else {
                None
            };
            let state = if creating { "Creating" } else { "Updating" };
            let etag = exists.unwrap_or(0) + 1;
            st.clusters.insert(
                key.clone(),
                Cluster {
                    name: name.into(),
                    group: group.into(),
                    spec,
                    tags,
                    state: state.into(),
                    power: "Running".into(),
                    etag,
                    error: None,
                },
            );
            if creating {
                *st.creates.entry(name.to_lowercase()).or_default() += 1;
            }
            let kind = if creating {
                OpKind::Create
            } else {
                OpKind::Update
            };
            let id = new_op(st, cfg, kind, key.clone(), fail);
            let mut h = lro_headers(cfg, base, &id, false);
            h.push(("etag", format!("\"{etag}\"")));
            let c = st.clusters.get(&key).map(cluster_json);
            respond(
                if creating {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &h,
                c,
            )
        }
        Method::PATCH => {
            if exists.is_none() {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    &format!("The Resource '{name}' was not found."),
                );
            }
            if !etag_ok(headers, exists) {
                return precondition_failed();
            }
            if let Some(kind) = busy {
                return in_progress(kind);
            }
            let Some(tags) = body.and_then(|b| b.get("tags").cloned()) else {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContent",
                    "A TagsObject is required.",
                );
            };
            let c = st.clusters.get_mut(&key).expect("exists");
            c.tags = tags;
            c.etag += 1;
            let c = c.clone();
            respond(
                StatusCode::OK,
                &[("etag", format!("\"{}\"", c.etag))],
                Some(cluster_json(&c)),
            )
        }
        Method::DELETE => {
            if exists.is_none() {
                return respond(StatusCode::NO_CONTENT, &[], None);
            }
            match busy {
                Some(OpKind::Delete) => {
                    let id = st
                        .ops
                        .iter()
                        .find(|(_, o)| o.target == key && o.status == "InProgress")
                        .map(|(k, _)| k.clone())
                        .unwrap_or_default();
                    respond(
                        StatusCode::ACCEPTED,
                        &lro_headers(cfg, base, &id, true),
                        None,
                    )
                }
                Some(OpKind::Create) if cfg.delete_preempts_create => {
                    for op in st.ops.values_mut() {
                        if op.target == key && op.status == "InProgress" {
                            op.status = "Canceled".into();
                            op.fail = Some((
                                "OperationCanceled".into(),
                                "The operation was canceled by a delete of the managed cluster."
                                    .into(),
                            ));
                        }
                    }
                    if let Some(c) = st.clusters.get_mut(&key) {
                        c.state = "Deleting".into();
                    }
                    let id = new_op(st, cfg, OpKind::Delete, key.clone(), None);
                    respond(
                        StatusCode::ACCEPTED,
                        &lro_headers(cfg, base, &id, true),
                        None,
                    )
                }
                Some(kind) => in_progress(kind),
                None => {
                    if let Some(c) = st.clusters.get_mut(&key) {
                        c.state = "Deleting".into();
                    }
                    let id = new_op(st, cfg, OpKind::Delete, key.clone(), None);
                    respond(
                        StatusCode::ACCEPTED,
                        &lro_headers(cfg, base, &id, true),
                        None,
                    )
                }
            }
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Method not allowed.",
        ),
    }
}

fn cluster_action(
    st: &mut State,
    cfg: &Config,
    base: &str,
    group: &str,
    name: &str,
    action: &str,
) -> Response<Body> {
    let key = cluster_key(group, name);
    tick(st, &key);
    let Some(c) = st.clusters.get(&key).cloned() else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("The Resource '{name}' was not found."),
        );
    };
    match action.to_lowercase().as_str() {
        a @ ("listclusteradmincredential" | "listclusterusercredential") => {
            let location = c
                .spec
                .get("location")
                .and_then(Value::as_str)
                .unwrap_or("westeurope");
            let text = cfg.kubeconfig.clone().unwrap_or_else(|| {
                format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: https://{name}-abc123.hcp.{location}.azmk8s.io:443\n    certificate-authority-data: {ca}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: clusterAdmin_{group}_{name}\ncurrent-context: {name}\nusers:\n- name: clusterAdmin_{group}_{name}\n  user:\n    token: fake-admin-token-{name}\n",
                    ca = base64::engine::general_purpose::STANDARD.encode("not a real CA")
                )
            });
            let label = if a == "listclusteradmincredential" {
                "clusterAdmin"
            } else {
                "clusterUser"
            };
            respond(
                StatusCode::OK,
                &[],
                Some(
                    json!({"kubeconfigs": [{"name": label, "value": base64::engine::general_purpose::STANDARD.encode(text)}]}),
                ),
            )
        }
        // ManagedClusters_Stop and _Start: 202, then the operation (final state via location).
        "start" | "stop" => {
            if running(st, &key).is_some() {
                return arm_error(
                    StatusCode::CONFLICT,
                    "OperationNotAllowed",
                    "Another operation is in progress.",
                );
            }
            let (state, kind) = if action.eq_ignore_ascii_case("start") {
                ("Starting", OpKind::Start)
            } else {
                ("Stopping", OpKind::Stop)
            };
            if let Some(c) = st.clusters.get_mut(&key) {
                c.state = state.into();
            }
            let id = new_op(st, cfg, kind, key, None);
            respond(
                StatusCode::ACCEPTED,
                &lro_headers(cfg, base, &id, true),
                None,
            )
        }
        _ => arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("No action {action}."),
        ),
    }
}

fn group(
    st: &mut State,
    cfg: &Config,
    base: &str,
    method: &Method,
    name: &str,
    body: Option<Value>,
) -> Response<Body> {
    let key = name.to_lowercase();
    tick(st, &key);
    let not_found = || {
        arm_error(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            &format!("Resource group '{name}' could not be found."),
        )
    };
    match *method {
        Method::GET => st.groups.get(&key).map_or_else(not_found, |g| {
            respond(StatusCode::OK, &[], Some(group_json(g)))
        }),
        Method::PUT => {
            let Some(body) = body.filter(|b| b.get("location").is_some_and(Value::is_string))
            else {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContent",
                    "location is required.",
                );
            };
            let tags = body.get("tags").cloned().unwrap_or(json!({}));
            match st.groups.get_mut(&key) {
                Some(g) if g.state == "Deleting" => arm_error(
                    StatusCode::CONFLICT,
                    "ResourceGroupBeingDeleted",
                    &format!("The resource group '{name}' is in deprovisioning state."),
                ),
                Some(g) => {
                    g.tags = tags;
                    let g = g.clone();
                    respond(StatusCode::OK, &[], Some(group_json(&g)))
                }
                None => {
                    let g = Group {
                        name: name.into(),
                        location: body["location"].as_str().unwrap_or_default().into(),
                        tags,
                        state: "Succeeded".into(),
                    };
                    *st.group_creates.entry(key.clone()).or_default() += 1;
                    st.groups.insert(key, g.clone());
                    respond(StatusCode::CREATED, &[], Some(group_json(&g)))
                }
            }
        }
        Method::PATCH => match st.groups.get_mut(&key) {
            Some(g) => {
                if let Some(t) = body.and_then(|b| b.get("tags").cloned()) {
                    g.tags = t;
                }
                let g = g.clone();
                respond(StatusCode::OK, &[], Some(group_json(&g)))
            }
            None => not_found(),
        },
        Method::DELETE => {
            let Some(g) = st.groups.get_mut(&key) else {
                return not_found();
            };
            if g.state == "Deleting" {
                let id = st
                    .ops
                    .iter()
                    .find(|(_, o)| o.target == key && o.status == "InProgress")
                    .map(|(k, _)| k.clone())
                    .unwrap_or_default();
                return respond(StatusCode::ACCEPTED, &group_location(cfg, base, &id), None);
            }
            g.state = "Deleting".into();
            let id = new_op(st, cfg, OpKind::DeleteGroup, key, None);
            respond(StatusCode::ACCEPTED, &group_location(cfg, base, &id), None)
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Method not allowed.",
        ),
    }
}

fn group_location(cfg: &Config, base: &str, id: &str) -> Vec<(&'static str, String)> {
    let mut h = vec![(
        "location",
        format!(
            "{base}/subscriptions/{SUBSCRIPTION}/operationresults/{id}?api-version={GROUP_API}"
        ),
    )];
    if let Some(ra) = &cfg.retry_after {
        h.push(("retry-after", ra.clone()));
    }
    h
}

fn validator() -> &'static swagger::PutValidator {
    static V: std::sync::OnceLock<swagger::PutValidator> = std::sync::OnceLock::new();
    V.get_or_init(|| swagger::PutValidator::load().expect("the swagger compiles as JSON Schema"))
}
