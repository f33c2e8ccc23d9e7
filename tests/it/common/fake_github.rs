//! A fake GitHub REST API on 127.0.0.1, for the deployments, deployment statuses, issue
//! comments and pull requests (listed; opened by `release` with `mode: pullRequest`) ephemera
//! uses.
//!
//! It checks what a real API would reject, and a bit more, and records every violation:
//! - headers: `Authorization: Bearer <TOKEN>` (or `token <TOKEN>`), `Accept:
//!   application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28`, a `User-Agent`;
//! - bodies: required fields, their types and allowed values, and no unknown fields (which GitHub
//!   would silently ignore, hiding a misspelt name);
//! - unknown paths and methods.
//!
//! It keeps state (deployments, statuses, comments), lists newest-first or oldest-first as GitHub
//! does, paginates with `Link` headers (page size configurable), and can answer rate limits for
//! the first N requests or 5xx for everything (an outage).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The token the fake accepts.
pub const TOKEN: &str = "ghs_FAKEtoken0123456789abcdefFAKE";
pub const OWNER: &str = "acme";
pub const REPO: &str = "shop";
/// The login of the token for comments it creates (what the Actions token posts as).
pub const BOT: &str = "github-actions[bot]";

/// How the fake answers rate-limited requests.
#[derive(Clone, Copy, Debug)]
pub enum RateLimit {
    /// 403 with `Retry-After: secs` and a secondary-rate-limit message.
    RetryAfter(u64),
    /// 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` `secs` from now.
    Reset(u64),
    /// 429 with `Retry-After: secs`.
    TooMany(u64),
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

#[derive(Clone, Debug)]
pub struct Deployment {
    pub id: u64,
    pub sha: String,
    pub environment: String,
    pub transient: bool,
    pub production: bool,
    pub body: Value,
}

#[derive(Clone, Debug)]
pub struct Status {
    pub id: u64,
    pub deployment: u64,
    pub state: String,
    pub environment_url: Option<String>,
    pub log_url: Option<String>,
    pub description: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Comment {
    pub id: u64,
    pub issue: u64,
    pub user: String,
    pub body: String,
}

/// A pull request, as `GET /repos/{o}/{r}/pulls` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct PullRequest {
    pub number: u64,
    /// `open` or `closed`.
    pub state: String,
    pub draft: bool,
    pub head_sha: String,
    /// The head branch.
    pub head_ref: String,
    /// `owner/name` of the head repository (a fork's for fork PRs).
    pub head_repo: String,
    pub labels: Vec<String>,
}

impl PullRequest {
    /// An open, ready PR from a branch of this repository.
    pub fn open(number: u64, head_ref: &str, head_sha: &str) -> PullRequest {
        PullRequest {
            number,
            state: "open".into(),
            draft: false,
            head_sha: head_sha.into(),
            head_ref: head_ref.into(),
            head_repo: format!("{OWNER}/{REPO}"),
            labels: Vec::new(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "number": self.number,
            "state": self.state,
            "draft": self.draft,
            "head": {
                "sha": self.head_sha,
                "ref": self.head_ref,
                "label": format!("{}:{}", self.head_owner(), self.head_ref),
                "repo": { "full_name": self.head_repo },
            },
            "base": { "repo": { "full_name": format!("{OWNER}/{REPO}") } },
            "html_url": format!("https://github.example/{OWNER}/{REPO}/pull/{}", self.number),
            "labels": self.labels.iter().map(|l| json!({ "name": l })).collect::<Vec<_>>(),
        })
    }

    fn head_owner(&self) -> &str {
        self.head_repo.split('/').next().unwrap_or_default()
    }
}

#[derive(Default)]
struct Inner {
    pulls: Vec<PullRequest>,
    base: String,
    next_id: u64,
    deployments: Vec<Deployment>,
    statuses: Vec<Status>,
    comments: Vec<Comment>,
    seen: Vec<Seen>,
    violations: Vec<String>,
    rate_limit: Option<(u32, RateLimit)>,
    outage: Option<u16>,
    /// `GET /user`: the login, or `None` for a token that cannot read it (403).
    user: Option<String>,
    /// The author of comments the token creates.
    poster: String,
    page_size: usize,
    /// Tokens accepted besides [`TOKEN`] (such as a release repository's).
    tokens: Vec<String>,
    /// `POST /pulls` bodies, oldest first.
    opened: Vec<Value>,
}

/// A running fake. The server stops when this is dropped.
pub struct FakeGitHub {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeGitHub {
    /// Starts the fake on the current tokio runtime.
    pub async fn start() -> FakeGitHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let (inner, url) = Self::state(&listener);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeGitHub {
            url,
            inner,
            stop: Some(stop),
            thread: None,
        }
    }

    /// Starts the fake on a thread of its own, for tests that run the `ephemera` binary from
    /// synchronous code.
    pub fn start_in_thread() -> FakeGitHub {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = super::runtime();
            rt.block_on(async {
                let mut fake = FakeGitHub::start().await;
                let stop = fake.stop.take();
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                tx.send((fake.url.clone(), fake.inner.clone(), stop_tx))
                    .expect("the test waits for the fake");
                let _ = stop_rx.await;
                if let Some(s) = stop {
                    let _ = s.send(());
                }
            });
        });
        let (url, inner, stop) = rx.recv().expect("the fake starts");
        FakeGitHub {
            url,
            inner,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn state(listener: &tokio::net::TcpListener) -> (Arc<Mutex<Inner>>, String) {
        let addr = listener.local_addr().expect("a bound address");
        let url = format!("http://{addr}");
        let inner = Arc::new(Mutex::new(Inner {
            base: url.clone(),
            next_id: 1000,
            poster: BOT.into(),
            page_size: 100,
            ..Inner::default()
        }));
        (inner, url)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The variables that point ephemera (as a process) at this fake, as GitHub Actions would
    /// set them for a run of PR `pr` at head `sha`.
    pub fn env(&self, sha: &str) -> Vec<(&'static str, String)> {
        vec![
            ("GITHUB_TOKEN", TOKEN.into()),
            ("GITHUB_REPOSITORY", format!("{OWNER}/{REPO}")),
            ("GITHUB_API_URL", self.url.clone()),
            ("GITHUB_SERVER_URL", "https://github.example".into()),
            ("GITHUB_RUN_ID", "4242".into()),
            ("GITHUB_SHA", sha.into()),
            ("EPHEMERA_GITHUB_RETRY_BUDGET", "3s".into()),
        ]
    }

    /// Answers the next `n` requests with `how`.
    pub fn rate_limit(&self, n: u32, how: RateLimit) {
        self.lock().rate_limit = Some((n, how));
    }

    /// Answers every request with `status` (e.g. 500, 502, 503) until `restore`.
    pub fn outage(&self, status: u16) {
        self.lock().outage = Some(status);
    }

    pub fn restore(&self) {
        let mut s = self.lock();
        s.outage = None;
        s.rate_limit = None;
    }

    /// Makes `GET /user` answer with `login` (a personal token); by default it answers 403 as
    /// it does for the Actions token.
    pub fn token_user(&self, login: &str) {
        let mut s = self.lock();
        s.user = Some(login.into());
        s.poster = login.into();
    }

    /// The author of comments the token creates (default [`BOT`]).
    pub fn poster(&self, login: &str) {
        self.lock().poster = login.into();
    }

    /// Lists at most `n` items per page.
    pub fn page_size(&self, n: usize) {
        self.lock().page_size = n.max(1);
    }

    /// Adds a comment by `user`, as if posted by someone else.
    pub fn add_comment(&self, issue: u64, user: &str, body: &str) -> u64 {
        let mut s = self.lock();
        let id = s.id();
        s.comments.push(Comment {
            id,
            issue,
            user: user.into(),
            body: body.into(),
        });
        id
    }

    /// Accepts `token` as well as [`TOKEN`].
    pub fn accept_token(&self, token: &str) {
        self.lock().tokens.push(token.into());
    }

    /// The bodies of the pull requests opened through the API, oldest first.
    pub fn opened_pulls(&self) -> Vec<Value> {
        self.lock().opened.clone()
    }

    /// Adds pull request `pr`, or replaces the one with its number.
    pub fn set_pull(&self, pr: PullRequest) {
        let mut s = self.lock();
        s.pulls.retain(|p| p.number != pr.number);
        s.pulls.push(pr);
    }

    /// Pull request `number`, as the fake holds it now.
    pub fn pull(&self, number: u64) -> Option<PullRequest> {
        self.lock()
            .pulls
            .iter()
            .find(|p| p.number == number)
            .cloned()
    }

    pub fn deployments(&self) -> Vec<Deployment> {
        self.lock().deployments.clone()
    }

    /// Statuses of deployment `id`, oldest first.
    pub fn statuses(&self, id: u64) -> Vec<Status> {
        self.lock()
            .statuses
            .iter()
            .filter(|s| s.deployment == id)
            .cloned()
            .collect()
    }

    /// Comments on issue `issue`, oldest first.
    pub fn comments(&self, issue: u64) -> Vec<Comment> {
        self.lock()
            .comments
            .iter()
            .filter(|c| c.issue == issue)
            .cloned()
            .collect()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Requests matching `method` and a path ending in `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }

    /// Everything the fake rejected as malformed: must be empty in a passing test.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({ "message": message, "documentation_url": "https://docs.github.example/rest" })
            .to_string(),
    )
        .into_response()
}

/// A rejected request: recorded as a violation and answered as GitHub would.
fn reject(s: &mut Inner, status: StatusCode, what: String) -> Response {
    s.violations.push(what.clone());
    error(status, &what)
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = inner.lock().unwrap_or_else(|e| e.into_inner());
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let resp = answer(&mut s, &method, &path, &query, &headers, &body);
    s.seen.push(Seen {
        method: method.to_string(),
        path,
        query,
        status: resp.status().as_u16(),
    });
    resp
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn answer(
    s: &mut Inner,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    // Headers first: a real API checks credentials before anything else.
    let auth = header(headers, "authorization").unwrap_or_default();
    let known = std::iter::once(TOKEN)
        .chain(s.tokens.iter().map(String::as_str))
        .any(|t| auth == format!("Bearer {t}") || auth == format!("token {t}"));
    if !known {
        let shown = if auth.is_empty() {
            "none"
        } else {
            "a wrong one"
        };
        return reject(
            s,
            StatusCode::UNAUTHORIZED,
            format!("{method} {path}: Authorization: {shown}"),
        );
    }
    if header(headers, "accept") != Some("application/vnd.github+json") {
        return reject(
            s,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{method} {path}: Accept: {:?}", header(headers, "accept")),
        );
    }
    if header(headers, "x-github-api-version") != Some("2022-11-28") {
        return reject(
            s,
            StatusCode::BAD_REQUEST,
            format!(
                "{method} {path}: X-GitHub-Api-Version: {:?}",
                header(headers, "x-github-api-version")
            ),
        );
    }
    if !header(headers, "user-agent").is_some_and(|u| u.starts_with("ephemera/")) {
        return reject(
            s,
            StatusCode::FORBIDDEN,
            format!(
                "{method} {path}: User-Agent: {:?}",
                header(headers, "user-agent")
            ),
        );
    }

    if let Some(status) = s.outage {
        return error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "Server Error",
        );
    }
    if let Some((n, how)) = s.rate_limit
        && n > 0
    {
        s.rate_limit = Some((n - 1, how));
        return rate_limited(how);
    }

    let json_body = if matches!(*method, Method::POST | Method::PATCH) {
        if header(headers, "content-type").is_none_or(|c| !c.starts_with("application/json")) {
            return reject(
                s,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("{method} {path}: Content-Type is not application/json"),
            );
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return reject(
                    s,
                    StatusCode::BAD_REQUEST,
                    format!("{method} {path}: the body is not a JSON object"),
                );
            }
        }
    } else {
        Value::Null
    };

    let q = parse_query(query);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let repo_ok = segs.len() >= 3 && segs[0] == "repos" && segs[1] == OWNER && segs[2] == REPO;
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["user"]) => match &s.user {
            Some(login) => (
                StatusCode::OK,
                axum::Json(json!({ "login": login, "type": "User" })),
            )
                .into_response(),
            None => error(
                StatusCode::FORBIDDEN,
                "Resource not accessible by integration",
            ),
        },
        (m, ["repos", _, _, rest @ ..]) if repo_ok => repo(s, m, rest, &q, json_body),
        (m, ["repos", ..]) => error(StatusCode::NOT_FOUND, &format!("Not Found ({m})")),
        _ => reject(
            s,
            StatusCode::NOT_FOUND,
            format!("{method} {path}: no such endpoint"),
        ),
    }
}

fn rate_limited(how: RateLimit) -> Response {
    let msg =
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.";
    let mut resp = match how {
        RateLimit::RetryAfter(_) | RateLimit::Reset(_) => error(StatusCode::FORBIDDEN, msg),
        RateLimit::TooMany(_) => error(StatusCode::TOO_MANY_REQUESTS, msg),
    };
    let h = resp.headers_mut();
    match how {
        RateLimit::RetryAfter(secs) | RateLimit::TooMany(secs) => {
            h.insert("retry-after", HeaderValue::from(secs));
        }
        RateLimit::Reset(secs) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
            h.insert("x-ratelimit-reset", HeaderValue::from(now + secs));
        }
    }
    resp
}

fn parse_query(q: &str) -> HashMap<String, String> {
    url_decode_pairs(q).into_iter().collect()
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One page of `items` with a `Link` header to the next, as GitHub paginates.
fn page(s: &Inner, path: &str, q: &HashMap<String, String>, items: Vec<Value>) -> Response {
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100)
        .min(s.page_size);
    let page_no = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let start = (page_no - 1) * per_page;
    let chunk: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
    let mut resp = (StatusCode::OK, axum::Json(Value::Array(chunk))).into_response();
    if start + per_page < items.len() {
        let mut pairs: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "page" && k.as_str() != "per_page")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        pairs.push(("per_page".into(), per_page.to_string()));
        pairs.push(("page".into(), (page_no + 1).to_string()));
        let qs: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let link = format!("<{}{path}?{}>; rel=\"next\"", s.base, qs.join("&"));
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert("link", v);
        }
    }
    resp
}

/// `POST /pulls`: a new open PR from branch `head` of this repository (422 without a title,
/// head or base, or when an open PR already has that head, as GitHub answers).
fn open_pull(s: &mut Inner, body: Value) -> Response {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(_), Some(head), Some(_)) = (field("title"), field("head"), field("base")) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
    };
    if s.pulls
        .iter()
        .any(|p| p.state == "open" && p.head_ref == head)
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "A pull request already exists",
        );
    }
    let number = s.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
    let pr = PullRequest::open(number, &head, "");
    s.opened.push(body);
    s.pulls.push(pr.clone());
    (StatusCode::CREATED, axum::Json(pr.json())).into_response()
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn repo(
    s: &mut Inner,
    method: Method,
    rest: &[&str],
    q: &HashMap<String, String>,
    body: Value,
) -> Response {
    let base = format!("/repos/{OWNER}/{REPO}");
    match (method, rest) {
        (Method::GET, ["deployments"]) => {
            let mut list: Vec<&Deployment> = s
                .deployments
                .iter()
                .filter(|d| q.get("environment").is_none_or(|e| *e == d.environment))
                .filter(|d| q.get("sha").is_none_or(|x| *x == d.sha))
                .collect();
            list.reverse(); // newest first
            let items = list.iter().map(|d| deployment_json(&s.base, d)).collect();
            page(s, &format!("{base}/deployments"), q, items)
        }
        (Method::POST, ["deployments"]) => create_deployment(s, body),
        (Method::POST, ["pulls"]) => open_pull(s, body),
        // `state` (default open) and `head` (`owner:branch`) filter, as GitHub's do.
        (Method::GET, ["pulls"]) => {
            let state = q.get("state").map_or("open", String::as_str);
            let items = s
                .pulls
                .iter()
                .filter(|p| state == "all" || p.state == state)
                .filter(|p| {
                    q.get("head")
                        .is_none_or(|h| *h == format!("{}:{}", p.head_owner(), p.head_ref))
                })
                .map(PullRequest::json)
                .collect();
            page(s, &format!("{base}/pulls"), q, items)
        }
        (Method::GET, ["pulls", n]) => match s.pulls.iter().find(|p| n.parse() == Ok(p.number)) {
            Some(p) => (StatusCode::OK, axum::Json(p.json())).into_response(),
            None => error(StatusCode::NOT_FOUND, "Not Found"),
        },
        (Method::GET, ["deployments", id, "statuses"]) => {
            let Some(id) = id
                .parse::<u64>()
                .ok()
                .filter(|id| s.deployments.iter().any(|d| d.id == *id))
            else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let items: Vec<Value> = s
                .statuses
                .iter()
                .rev()
                .filter(|st| st.deployment == id)
                .map(status_json)
                .collect();
            page(s, &format!("{base}/deployments/{id}/statuses"), q, items)
        }
        (Method::POST, ["deployments", id, "statuses"]) => {
            let Some(id) = id
                .parse::<u64>()
                .ok()
                .filter(|id| s.deployments.iter().any(|d| d.id == *id))
            else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            create_status(s, id, body)
        }
        (Method::GET, ["issues", n, "comments"]) => {
            let Ok(n) = n.parse::<u64>() else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let items: Vec<Value> = s
                .comments
                .iter()
                .filter(|c| c.issue == n)
                .map(|c| comment_json(&s.base, c))
                .collect();
            page(s, &format!("{base}/issues/{n}/comments"), q, items)
        }
        (Method::POST, ["issues", n, "comments"]) => {
            let Ok(n) = n.parse::<u64>() else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let Some(text) = comment_body(s, "POST issues/{n}/comments", &body) else {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
            };
            let id = s.id();
            let c = Comment {
                id,
                issue: n,
                user: s.poster.clone(),
                body: text,
            };
            let v = comment_json(&s.base, &c);
            s.comments.push(c);
            (StatusCode::CREATED, axum::Json(v)).into_response()
        }
        (Method::PATCH, ["issues", "comments", id]) => {
            let Some(text) = comment_body(s, "PATCH issues/comments/{id}", &body) else {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
            };
            let base_url = s.base.clone();
            match s
                .comments
                .iter_mut()
                .find(|c| id.parse::<u64>() == Ok(c.id))
            {
                Some(c) => {
                    c.body = text;
                    (StatusCode::OK, axum::Json(comment_json(&base_url, c))).into_response()
                }
                None => error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        (Method::DELETE, ["issues", "comments", id]) => {
            let before = s.comments.len();
            s.comments.retain(|c| id.parse::<u64>() != Ok(c.id));
            if s.comments.len() < before {
                StatusCode::NO_CONTENT.into_response()
            } else {
                error(StatusCode::NOT_FOUND, "Not Found")
            }
        }
        (m, rest) => reject(
            s,
            StatusCode::NOT_FOUND,
            format!("{m} {base}/{}: no such endpoint", rest.join("/")),
        ),
    }
}

/// Checks `body` has exactly the allowed keys; records a violation otherwise.
fn only_keys(s: &mut Inner, what: &str, body: &Value, allowed: &[&str]) -> bool {
    let Some(obj) = body.as_object() else {
        return false;
    };
    let unknown: Vec<&String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    if unknown.is_empty() {
        true
    } else {
        s.violations
            .push(format!("{what}: unknown fields {unknown:?}"));
        false
    }
}

fn comment_body(s: &mut Inner, what: &str, body: &Value) -> Option<String> {
    if !only_keys(s, what, body, &["body"]) {
        return None;
    }
    match body.get("body").and_then(Value::as_str) {
        Some(b) if !b.is_empty() && b.len() <= 65536 => Some(b.to_string()),
        _ => {
            s.violations.push(format!(
                "{what}: body must be a non-empty string of at most 65536 bytes"
            ));
            None
        }
    }
}

fn create_deployment(s: &mut Inner, body: Value) -> Response {
    let what = "POST deployments";
    let allowed = [
        "ref",
        "task",
        "auto_merge",
        "required_contexts",
        "payload",
        "environment",
        "description",
        "transient_environment",
        "production_environment",
    ];
    if !only_keys(s, what, &body, &allowed) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
    }
    let Some(git_ref) = body
        .get("ref")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    else {
        return reject(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: ref is required"),
        );
    };
    let is_sha = git_ref.len() == 40 && git_ref.chars().all(|c| c.is_ascii_hexdigit());
    if !is_sha {
        return reject(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: No ref found for: {git_ref}"),
        );
    }
    for key in [
        "auto_merge",
        "transient_environment",
        "production_environment",
    ] {
        if body.get(key).is_some_and(|v| !v.is_boolean()) {
            return reject(
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{what}: {key} is not a boolean"),
            );
        }
    }
    if body
        .get("required_contexts")
        .is_some_and(|v| !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
    {
        return reject(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: required_contexts is not a list of strings"),
        );
    }
    if body
        .get("description")
        .is_some_and(|v| !v.is_string() && !v.is_null())
    {
        return reject(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: description is not a string"),
        );
    }
    if body
        .get("payload")
        .is_some_and(|v| !v.is_object() && !v.is_string())
    {
        return reject(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: payload is not an object"),
        );
    }
    // GitHub would try to merge the default branch into the ref and check commit statuses;
    // the fake insists they are turned off, as a preview of a PR head must.
    if body.get("auto_merge") != Some(&Value::Bool(false)) {
        return reject(
            s,
            StatusCode::CONFLICT,
            format!("{what}: auto_merge was not false"),
        );
    }
    if body.get("required_contexts") != Some(&json!([])) {
        return reject(
            s,
            StatusCode::CONFLICT,
            format!("{what}: required_contexts was not []: Conflict: Commit status checks failed"),
        );
    }
    let id = s.id();
    let d = Deployment {
        id,
        sha: git_ref.to_string(),
        environment: body
            .get("environment")
            .and_then(Value::as_str)
            .unwrap_or("production")
            .to_string(),
        transient: body.get("transient_environment") == Some(&Value::Bool(true)),
        production: body.get("production_environment") == Some(&Value::Bool(true)),
        body: body.clone(),
    };
    let v = deployment_json(&s.base, &d);
    s.deployments.push(d);
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn create_status(s: &mut Inner, deployment: u64, body: Value) -> Response {
    let what = format!("POST deployments/{deployment}/statuses");
    let allowed = [
        "state",
        "target_url",
        "log_url",
        "description",
        "environment",
        "environment_url",
        "auto_inactive",
    ];
    if !only_keys(s, &what, &body, &allowed) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
    }
    let states = [
        "error",
        "failure",
        "inactive",
        "in_progress",
        "queued",
        "pending",
        "success",
    ];
    let Some(state) = body
        .get("state")
        .and_then(Value::as_str)
        .filter(|st| states.contains(st))
    else {
        return reject(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: state {:?}", body.get("state")),
        );
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    for key in ["log_url", "environment_url", "description", "target_url"] {
        if body.get(key).is_some_and(|v| !v.is_string()) {
            return reject(
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{what}: {key} is not a string"),
            );
        }
    }
    for key in ["log_url", "environment_url"] {
        if let Some(u) = text(key)
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return reject(
                s,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{what}: {key} {u:?} is not a URL"),
            );
        }
    }
    if text("description").is_some_and(|d| d.chars().count() > 140) {
        return reject(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{what}: description is longer than 140 characters"),
        );
    }
    let id = s.id();
    let st = Status {
        id,
        deployment,
        state: state.to_string(),
        environment_url: text("environment_url"),
        log_url: text("log_url"),
        description: text("description"),
    };
    let v = status_json(&st);
    s.statuses.push(st);
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn deployment_json(base: &str, d: &Deployment) -> Value {
    json!({
        "url": format!("{base}/repos/{OWNER}/{REPO}/deployments/{}", d.id),
        "id": d.id,
        "node_id": format!("DE_{}", d.id),
        "sha": d.sha,
        "ref": d.sha,
        "task": "deploy",
        "payload": d.body.get("payload").cloned().unwrap_or(json!({})),
        "original_environment": d.environment,
        "environment": d.environment,
        "description": d.body.get("description").cloned().unwrap_or(Value::Null),
        "creator": { "login": BOT, "type": "Bot" },
        "created_at": "2026-08-01T10:00:00Z",
        "updated_at": "2026-08-01T10:00:00Z",
        "statuses_url": format!("{base}/repos/{OWNER}/{REPO}/deployments/{}/statuses", d.id),
        "repository_url": format!("{base}/repos/{OWNER}/{REPO}"),
        "transient_environment": d.transient,
        "production_environment": d.production,
    })
}

fn status_json(st: &Status) -> Value {
    json!({
        "id": st.id,
        "state": st.state,
        "description": st.description.clone().unwrap_or_default(),
        "environment_url": st.environment_url.clone().unwrap_or_default(),
        "log_url": st.log_url.clone().unwrap_or_default(),
        "target_url": st.log_url.clone().unwrap_or_default(),
        "creator": { "login": BOT, "type": "Bot" },
        "created_at": "2026-08-01T10:00:00Z",
    })
}

fn comment_json(base: &str, c: &Comment) -> Value {
    let kind = if c.user.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    };
    json!({
        "id": c.id,
        "node_id": format!("IC_{}", c.id),
        "url": format!("{base}/repos/{OWNER}/{REPO}/issues/comments/{}", c.id),
        "html_url": format!("https://github.example/{OWNER}/{REPO}/pull/{}#issuecomment-{}", c.issue, c.id),
        "body": c.body,
        "user": { "login": c.user, "type": kind },
        "created_at": "2026-08-01T10:00:00Z",
        "updated_at": "2026-08-01T10:00:00Z",
        "author_association": if kind == "Bot" { "NONE" } else { "CONTRIBUTOR" },
    })
}
