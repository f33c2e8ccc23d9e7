//! A small Azure Resource Manager client: authenticated requests with retries, ARM's
//! ErrorResponse, and long-running operations.
//!
//! - Every request carries a fresh `x-ms-client-request-id` and a bearer token from the
//!   [`CredentialChain`]; the token is re-read at the start of every provider call
//!   ([`ArmClient::new_pass`]) and whenever it nears expiry.
//! - 429, 5xx and connection errors are retried with capped, jittered exponential backoff
//!   (backon), waiting at least as long as `Retry-After` says (seconds or an HTTP date).
//! - Long-running operations poll `Azure-AsyncOperation`, else `Location`, else the resource's
//!   `provisioningState`, honour `Retry-After`, and stop at a deadline with the last state seen.
//! - Polling and paging URLs must point at the ARM endpoint: the bearer token is never sent to
//!   another host.
//!
//! azure_core's pipeline brings its own retry policy, which would stack with the backoff the
//! house rules ask for, and its generic `Poller` leaves the ARM header rules to the caller; so
//! requests go through reqwest directly and only the credentials come from azure_identity.

use std::time::{Duration, SystemTime};

use backon::Retryable;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::AzureError;
use super::credentials::{AccessToken, CredentialChain};

/// Timing knobs. The defaults suit real ARM; tests shrink them.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// First backoff delay for a retried request.
    pub retry_min: Duration,
    /// Longest backoff delay.
    pub retry_max: Duration,
    /// Retries of one request before giving up.
    pub retry_times: usize,
    /// The longest `Retry-After` honoured; ARM's are seconds to a minute.
    pub retry_after_cap: Duration,
    /// Poll interval when ARM gives no `Retry-After`.
    pub poll_interval: Duration,
    /// One HTTP request, connection to last byte.
    pub request_timeout: Duration,
    /// Creating or updating a cluster, from the first request to Succeeded.
    pub create_deadline: Duration,
    /// Deleting a cluster and its resource group.
    pub delete_deadline: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            retry_times: 8,
            retry_after_cap: Duration::from_secs(300),
            poll_interval: Duration::from_secs(15),
            request_timeout: Duration::from_secs(100),
            create_deadline: Duration::from_secs(45 * 60),
            delete_deadline: Duration::from_secs(45 * 60),
        }
    }
}

/// When a whole operation must be done, and how long it was given (for the timeout message).
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    pub at: Instant,
    pub total: Duration,
}

impl Deadline {
    /// `total` from now.
    pub fn after(total: Duration) -> Self {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }

    fn timeout(&self, what: &str, last_state: String) -> AzureError {
        AzureError::Timeout {
            what: what.to_string(),
            seconds: self.total.as_secs(),
            last_state,
        }
    }
}

/// One ARM answer, body already read.
#[derive(Clone, Debug)]
pub struct ArmResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The JSON body; `Null` when empty, a string when it was not JSON.
    pub body: Value,
}

impl ArmResponse {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Retry-After` in seconds or as an HTTP date, as a wait from now.
    pub fn retry_after(&self) -> Option<Duration> {
        crate::http::parse_retry_after(self.header("retry-after")?, SystemTime::now())
    }

    /// The entity tag, from the `ETag` header or the body's `etag`/`eTag`.
    pub fn etag(&self) -> Option<String> {
        self.header("etag").map(str::to_string).or_else(|| {
            self.body
                .get("eTag")
                .or_else(|| self.body.get("etag"))
                .and_then(Value::as_str)
                .map(Into::into)
        })
    }

    /// ARM's error code and message from an ErrorResponse body (or the top-level form some
    /// services use), falling back to the status text.
    pub fn error(&self) -> (String, String) {
        let e = self
            .body
            .get("error")
            .filter(|e| e.is_object())
            .unwrap_or(&self.body);
        let code = e.get("code").and_then(Value::as_str);
        let message = e.get("message").and_then(Value::as_str);
        let fallback = match &self.body {
            Value::String(s) if !s.is_empty() => s.chars().take(300).collect(),
            _ => self
                .status
                .canonical_reason()
                .unwrap_or("no error body")
                .to_string(),
        };
        (
            code.unwrap_or("Unknown").to_string(),
            one_line(message.map_or(fallback, str::to_string)),
        )
    }

    /// This response as [`AzureError::Api`].
    pub fn into_error(&self, operation: &str) -> AzureError {
        let (code, mut message) = self.error();
        if let Some(id) = self.header("x-ms-request-id") {
            message.push_str(&format!(" (x-ms-request-id {id})"));
        }
        AzureError::Api {
            operation: operation.to_string(),
            status: self.status.as_u16(),
            code,
            message,
        }
    }

    /// Whether ARM refused because another operation is running on the resource.
    pub fn is_operation_in_progress(&self) -> bool {
        if self.status != StatusCode::CONFLICT && self.status != StatusCode::TOO_MANY_REQUESTS {
            return false;
        }
        let (code, message) = self.error();
        let text = format!("{code} {message}").to_ascii_lowercase();
        [
            "anotheroperationinprogress",
            "operationnotallowed",
            "retryableerrorduetoanotheroperation",
            "another operation",
            "in progress",
        ]
        .iter()
        .any(|k| text.contains(k))
    }
}

/// A failed attempt, as backon sees it.
enum Attempt {
    Retry {
        why: String,
        retry_after: Option<Duration>,
        last: Option<Box<ArmResponse>>,
    },
    Fatal(AzureError),
}

/// The ARM client for one subscription's worth of calls.
pub struct ArmClient {
    http: reqwest::Client,
    base: Url,
    creds: CredentialChain,
    token: Mutex<Option<AccessToken>>,
    pub timing: Timing,
}

impl ArmClient {
    /// A client for the ARM endpoint `base` (ending with `/`).
    pub fn new(http: reqwest::Client, base: Url, creds: CredentialChain, timing: Timing) -> Self {
        ArmClient {
            http,
            base,
            creds,
            token: Mutex::new(None),
            timing,
        }
    }

    /// The ARM endpoint.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Forgets the cached token, so the next request reads the credentials again.
    pub async fn new_pass(&self) {
        *self.token.lock().await = None;
    }

    /// The current token, fetched when missing or about to expire.
    ///
    /// # Errors
    /// [`AzureError::Credential`] listing the sources tried.
    pub async fn token(&self) -> Result<AccessToken, AzureError> {
        let mut cached = self.token.lock().await;
        match cached.as_ref() {
            Some(t) if !t.is_stale(jiff::Timestamp::now()) => Ok(t.clone()),
            _ => {
                let t = self.creds.token().await?;
                *cached = Some(t.clone());
                Ok(t)
            }
        }
    }

    /// `path` (with its query) resolved against the ARM endpoint.
    ///
    /// # Errors
    /// [`AzureError::Config`] when the result is not a URL.
    pub fn url(&self, path_and_query: &str) -> Result<Url, AzureError> {
        self.base
            .join(path_and_query.trim_start_matches('/'))
            .map_err(|e| {
                AzureError::Config(format!(
                    "cannot form an ARM URL from {path_and_query:?}: {e}"
                ))
            })
    }

    /// A URL ARM handed back (polling, nextLink), accepted only on the ARM endpoint's origin.
    ///
    /// # Errors
    /// [`AzureError::Api`] naming the foreign URL's origin.
    pub fn trusted(&self, raw: &str, operation: &str) -> Result<Url, AzureError> {
        let url = Url::parse(raw)
            .or_else(|_| self.base.join(raw))
            .map_err(|e| AzureError::Api {
                operation: operation.to_string(),
                status: 0,
                code: "InvalidUrl".into(),
                message: format!("ARM returned a URL that does not parse: {e}"),
            })?;
        if url.origin() != self.base.origin() {
            return Err(AzureError::Api {
                operation: operation.to_string(),
                status: 0,
                code: "ForeignUrl".into(),
                message: format!(
                    "ARM returned a URL on {}, not {}; the token is not sent there",
                    url.origin().ascii_serialization(),
                    self.base.origin().ascii_serialization()
                ),
            });
        }
        Ok(url)
    }

    /// Sends one request, retrying throttling, server errors and connection failures. Any other
    /// answer, error statuses included, is returned for the caller to judge.
    ///
    /// # Errors
    /// [`AzureError::Api`] when retries run out on an error status, [`AzureError::Transport`]
    /// when they run out on connection failures, [`AzureError::Credential`] without a token.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        headers: &[(&'static str, String)],
        operation: &str,
    ) -> Result<ArmResponse, AzureError> {
        let t = self.timing;
        let backoff = crate::http::backoff(t.retry_min, t.retry_max, t.retry_times);
        let cap = t.retry_after_cap;
        let result = (|| self.once(method.clone(), url, body, headers))
            .retry(backoff)
            .when(|a| matches!(a, Attempt::Retry { .. }))
            .adjust(move |a, dur| match a {
                // Never sooner than Retry-After; backon's None (no retries left) stays None.
                Attempt::Retry {
                    retry_after: Some(ra),
                    ..
                } => dur.map(|d| d.max((*ra).min(cap))),
                _ => dur,
            })
            .notify(|a, dur| {
                if let Attempt::Retry { why, .. } = a {
                    tracing::warn!("{operation}: {why}; retrying in {:.1}s", dur.as_secs_f64());
                    crate::deadline::note(|| format!("ARM {operation}: {why}"));
                }
            })
            .await;
        match result {
            Ok(r) => Ok(r),
            Err(Attempt::Fatal(e)) => Err(e),
            Err(Attempt::Retry { last: Some(r), .. }) => Err(r.into_error(operation)),
            Err(Attempt::Retry { why, .. }) => Err(AzureError::Transport {
                context: format!("{operation}: giving up after {} retries", t.retry_times),
                source: why.into(),
            }),
        }
    }

    /// One signed request: the token, the request id, ephemera's user agent, `headers` and the
    /// JSON `body`. Returns the request and its id.
    async fn request(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        headers: &[(&'static str, String)],
    ) -> Result<(reqwest::RequestBuilder, String), Attempt> {
        let token = self.token().await.map_err(Attempt::Fatal)?;
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", token.secret())).map_err(|_| {
                Attempt::Fatal(AzureError::Credential {
                    tried: "the token has characters a header cannot carry".into(),
                })
            })?;
        auth.set_sensitive(true);
        let request_id = client_request_id();
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .timeout(self.timing.request_timeout)
            .header(reqwest::header::AUTHORIZATION, auth)
            .header(reqwest::header::ACCEPT, "application/json")
            .header("x-ms-client-request-id", &request_id)
            .header(
                reqwest::header::USER_AGENT,
                format!("ephemera/{}", crate::VERSION),
            );
        for (k, v) in headers {
            let v = HeaderValue::from_str(v).map_err(|_| {
                Attempt::Fatal(AzureError::Config(format!(
                    "header {k} has a value a header cannot carry"
                )))
            })?;
            req = req.header(HeaderName::from_static(k), v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Ok((req, request_id))
    }

    async fn once(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        headers: &[(&'static str, String)],
    ) -> Result<ArmResponse, Attempt> {
        let (req, request_id) = self.request(&method, url, body, headers).await?;
        tracing::debug!(%method, url = %url.path(), request_id, "ARM request");
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() => {
                return Err(Attempt::Fatal(AzureError::Transport {
                    context: format!("{method} {}", url.path()),
                    source: describe_reqwest(&e).into(),
                }));
            }
            Err(e) => {
                return Err(Attempt::Retry {
                    why: format!("{method} {}: {}", url.path(), describe_reqwest(&e)),
                    retry_after: None,
                    last: None,
                });
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Err(Attempt::Retry {
                    why: format!(
                        "{method} {}: reading the answer: {}",
                        url.path(),
                        describe_reqwest(&e)
                    ),
                    retry_after: None,
                    last: None,
                });
            }
        };
        let body = answer_body(&bytes);
        let r = ArmResponse {
            status,
            headers,
            body,
        };
        let retryable = status == StatusCode::TOO_MANY_REQUESTS
            || (status.is_server_error()
                && status != StatusCode::NOT_IMPLEMENTED
                && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED);
        if status == StatusCode::UNAUTHORIZED
            && r.error()
                .0
                .eq_ignore_ascii_case("ExpiredAuthenticationToken")
        {
            *self.token.lock().await = None;
            return Err(Attempt::Retry {
                why: "the token expired".into(),
                retry_after: None,
                last: Some(Box::new(r)),
            });
        }
        if retryable {
            let (code, message) = r.error();
            return Err(Attempt::Retry {
                why: format!(
                    "{method} {} answered {} {code}: {message}",
                    url.path(),
                    status.as_u16()
                ),
                retry_after: r.retry_after(),
                last: Some(Box::new(r)),
            });
        }
        Ok(r)
    }

    /// GET, with retries.
    ///
    /// # Errors
    /// As [`ArmClient::send`].
    pub async fn get(&self, url: &Url, operation: &str) -> Result<ArmResponse, AzureError> {
        self.send(Method::GET, url, None, &[], operation).await
    }

    /// Follows a long-running operation started by `first` to its end.
    ///
    /// `resource` is the resource's own URL, polled when ARM gave neither `Azure-AsyncOperation`
    /// nor `Location`; `deleting` makes a 404 there mean success.
    ///
    /// # Errors
    /// [`AzureError::OperationFailed`] with ARM's code and message for a terminal Failed or
    /// Canceled; [`AzureError::Timeout`] naming `what` and the last state at the deadline.
    pub async fn wait(
        &self,
        first: &ArmResponse,
        resource: &Url,
        deleting: bool,
        what: &str,
        deadline: Deadline,
    ) -> Result<(), AzureError> {
        let op = format!("waiting for {what}");
        let (mode, url) = if let Some(u) = first.header("azure-asyncoperation") {
            (Mode::AsyncOperation, self.trusted(u, &op)?)
        } else if let Some(u) = first.header("location") {
            (Mode::Location, self.trusted(u, &op)?)
        } else {
            (Mode::Resource { deleting }, resource.clone())
        };
        let mut last_state = first
            .body
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
            .unwrap_or("Accepted")
            .to_string();
        let mut delay = first.retry_after().unwrap_or(self.timing.poll_interval);
        loop {
            let now = Instant::now();
            if now >= deadline.at {
                return Err(deadline.timeout(what, last_state));
            }
            tokio::time::sleep(
                delay
                    .min(self.timing.retry_after_cap)
                    .min(deadline.at - now),
            )
            .await;
            let r = self.get(&url, &op).await?;
            delay = r.retry_after().unwrap_or(self.timing.poll_interval);
            match mode.judge(&r) {
                Poll::Done => return Ok(()),
                Poll::Running(state) => {
                    tracing::debug!("{what}: {state}");
                    last_state = state;
                    // ARM answered: the operation is running, not the cloud silent. Its own
                    // deadline bounds it (an AKS create takes 8 to 18 minutes, more than
                    // --timeout's default window without progress).
                    crate::deadline::progress();
                }
                Poll::Failed {
                    status,
                    code,
                    message,
                } => {
                    return Err(AzureError::OperationFailed {
                        operation: what.to_string(),
                        status,
                        code,
                        message,
                    });
                }
                Poll::Error => return Err(r.into_error(&op)),
            }
        }
    }

    /// Polls a resource until its `provisioningState` is terminal (or it is gone), for waiting
    /// out an operation someone else started. Returns the last body, `None` when gone.
    ///
    /// # Errors
    /// [`AzureError::Timeout`] at the deadline; API errors other than 404.
    pub async fn settle(
        &self,
        resource: &Url,
        what: &str,
        deadline: Deadline,
    ) -> Result<Option<ArmResponse>, AzureError> {
        let op = format!("waiting for {what}");
        let mut last_state = String::from("unknown");
        loop {
            let r = self.get(resource, &op).await?;
            if r.status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !r.status.is_success() {
                return Err(r.into_error(&op));
            }
            let state = provisioning_state(&r.body)
                .unwrap_or("Succeeded")
                .to_string();
            if is_terminal(&state) {
                return Ok(Some(r));
            }
            let now = Instant::now();
            if now >= deadline.at {
                return Err(deadline.timeout(what, state));
            }
            if state != last_state {
                tracing::info!("{what} is {state}; waiting for it to finish");
                last_state = state;
            }
            // As in `wait`: an answer that the operation still runs is progress.
            crate::deadline::progress();
            let delay = r.retry_after().unwrap_or(self.timing.poll_interval);
            tokio::time::sleep(
                delay
                    .min(self.timing.retry_after_cap)
                    .min(deadline.at - now),
            )
            .await;
        }
    }

    /// GETs every page of a list, following `nextLink`.
    ///
    /// # Errors
    /// Any page's error: a partial listing is never returned as complete.
    pub async fn list_all(&self, first: Url, operation: &str) -> Result<Vec<Value>, AzureError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 10_000 {
                return Err(AzureError::Api {
                    operation: operation.to_string(),
                    status: 0,
                    code: "TooManyPages".into(),
                    message: "more than 10000 pages; ARM's nextLink seems to loop".into(),
                });
            }
            let r = self.get(&url, operation).await?;
            if !r.status.is_success() {
                return Err(r.into_error(operation));
            }
            match r.body.get("value") {
                Some(Value::Array(items)) => out.extend(items.iter().cloned()),
                Some(Value::Null) | None => {}
                Some(_) => {
                    return Err(AzureError::Api {
                        operation: operation.to_string(),
                        status: r.status.as_u16(),
                        code: "InvalidListResponse".into(),
                        message: "the page's value is not a list".into(),
                    });
                }
            }
            if let Some(link) = r
                .body
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
            {
                next = Some(self.trusted(link, operation)?);
            }
        }
        Ok(out)
    }
}

/// How an operation is polled.
#[derive(Clone, Copy, Debug)]
enum Mode {
    AsyncOperation,
    Location,
    Resource { deleting: bool },
}

enum Poll {
    Done,
    Running(String),
    Failed {
        status: String,
        code: String,
        message: String,
    },
    Error,
}

impl Mode {
    fn judge(self, r: &ArmResponse) -> Poll {
        let failed = |status: &str, e: Option<&Value>| {
            let code = e
                .and_then(|e| e.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("Unknown");
            let message = e
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("no message");
            Poll::Failed {
                status: status.to_string(),
                code: code.to_string(),
                message: one_line(message.to_string()),
            }
        };
        match self {
            Mode::AsyncOperation => {
                if !r.status.is_success() {
                    return Poll::Error;
                }
                let status = r
                    .body
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("InProgress");
                match classify(status) {
                    State::Succeeded => Poll::Done,
                    State::Failed | State::Canceled => failed(status, r.body.get("error")),
                    State::Running => Poll::Running(status.to_string()),
                }
            }
            Mode::Location => match r.status.as_u16() {
                202 => Poll::Running("Accepted".into()),
                200 | 201 | 204 => Poll::Done,
                _ => {
                    let (code, message) = r.error();
                    Poll::Failed {
                        status: "Failed".into(),
                        code,
                        message,
                    }
                }
            },
            Mode::Resource { deleting } => {
                if r.status == StatusCode::NOT_FOUND && deleting {
                    return Poll::Done;
                }
                if !r.status.is_success() {
                    return Poll::Error;
                }
                // ARM: no provisioningState means the operation has finished.
                let state = provisioning_state(&r.body).unwrap_or("Succeeded");
                match classify(state) {
                    State::Succeeded if !deleting => Poll::Done,
                    State::Succeeded => Poll::Running(state.to_string()),
                    State::Failed | State::Canceled => failed(
                        state,
                        r.body.pointer("/properties/status/provisioningError"),
                    ),
                    State::Running => Poll::Running(state.to_string()),
                }
            }
        }
    }
}

/// ARM's terminal states, compared without case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Succeeded,
    Failed,
    Canceled,
    Running,
}

/// Classifies a `status` or `provisioningState`.
pub fn classify(s: &str) -> State {
    match s.to_ascii_lowercase().as_str() {
        "succeeded" => State::Succeeded,
        "failed" => State::Failed,
        "canceled" | "cancelled" => State::Canceled,
        _ => State::Running,
    }
}

/// Whether a state is Succeeded, Failed or Canceled.
pub fn is_terminal(s: &str) -> bool {
    classify(s) != State::Running
}

/// `properties.provisioningState`.
pub fn provisioning_state(body: &Value) -> Option<&str> {
    body.pointer("/properties/provisioningState")
        .and_then(Value::as_str)
}

/// An answer's body: JSON, else its text as a JSON string; null when empty.
fn answer_body(bytes: &[u8]) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// A UUID v4 in text form, for `x-ms-client-request-id`.
fn client_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A reqwest error with its causes on one line (reqwest's own text hides the cause).
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    one_line(out)
}

fn one_line(s: String) -> String {
    if s.contains(['\n', '\r']) {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&'static str, &str)], body: Value) -> ArmResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        ArmResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body,
        }
    }

    #[test]
    fn errors_come_from_arm_error_responses() {
        let r = resp(
            409,
            &[("x-ms-request-id", "abc")],
            serde_json::json!({"error": {"code": "OperationNotAllowed", "message": "Operation is not allowed because there's an in progress create managed cluster operation"}}),
        );
        assert!(r.is_operation_in_progress());
        let e = r.into_error("creating pr-1").to_string();
        assert_eq!(
            e,
            "creating pr-1: 409 OperationNotAllowed: Operation is not allowed because there's an in progress create \
             managed cluster operation (x-ms-request-id abc)"
        );
        let r = resp(502, &[], Value::String("<html>\nbad gateway</html>".into()));
        assert_eq!(
            r.error(),
            (
                "Unknown".to_string(),
                "<html> bad gateway</html>".to_string()
            )
        );
        assert!(!r.is_operation_in_progress());
        let r = resp(
            400,
            &[],
            serde_json::json!({"code": "InvalidParameter", "message": "m"}),
        );
        assert_eq!(r.error().0, "InvalidParameter");
    }

    #[test]
    fn async_operation_bodies_are_judged_by_status() {
        let m = Mode::AsyncOperation;
        assert!(matches!(
            m.judge(&resp(200, &[], serde_json::json!({"status": "InProgress"}))),
            Poll::Running(_)
        ));
        assert!(matches!(
            m.judge(&resp(200, &[], serde_json::json!({"status": "succeeded"}))),
            Poll::Done
        ));
        let failed = serde_json::json!({"status": "Failed", "error": {"code": "QuotaExceeded", "message": "no cores"}});
        match m.judge(&resp(200, &[], failed)) {
            Poll::Failed {
                status,
                code,
                message,
            } => assert_eq!(
                (status, code, message),
                ("Failed".into(), "QuotaExceeded".into(), "no cores".into())
            ),
            _ => panic!("not failed"),
        }
        assert!(matches!(
            m.judge(&resp(200, &[], serde_json::json!({"status": "Canceled"}))),
            Poll::Failed { .. }
        ));
    }

    #[test]
    fn location_and_resource_polls() {
        assert!(matches!(
            Mode::Location.judge(&resp(202, &[], Value::Null)),
            Poll::Running(_)
        ));
        assert!(matches!(
            Mode::Location.judge(&resp(204, &[], Value::Null)),
            Poll::Done
        ));
        assert!(matches!(
            Mode::Location.judge(&resp(500, &[], Value::Null)),
            Poll::Failed { .. }
        ));
        let gone = Mode::Resource { deleting: true };
        assert!(matches!(
            gone.judge(&resp(404, &[], Value::Null)),
            Poll::Done
        ));
        let deleting = serde_json::json!({"properties": {"provisioningState": "Deleting"}});
        assert!(matches!(
            gone.judge(&resp(200, &[], deleting)),
            Poll::Running(_)
        ));
        let ready = Mode::Resource { deleting: false };
        assert!(matches!(
            ready.judge(&resp(200, &[], serde_json::json!({"properties": {}}))),
            Poll::Done
        ));
        assert!(matches!(
            ready.judge(&resp(404, &[], Value::Null)),
            Poll::Error
        ));
    }

    #[test]
    fn the_official_examples_parse() {
        let get = super::super::swagger::example("ManagedClustersGet.json").unwrap();
        let body = get["responses"]["200"]["body"].clone();
        assert_eq!(provisioning_state(&body), Some("Succeeded"));
        let r = resp(200, &[], body);
        assert!(matches!(
            Mode::Resource { deleting: false }.judge(&r),
            Poll::Done
        ));
        assert!(r.etag().is_some() || r.body.get("eTag").is_none());

        let create = super::super::swagger::example("ManagedClustersCreate_Update.json").unwrap();
        assert_eq!(
            provisioning_state(&create["responses"]["201"]["body"]),
            Some("Creating")
        );
        assert!(!is_terminal("Creating"));

        let abort = super::super::swagger::example("ManagedClustersAbortOperation.json").unwrap();
        let h = &abort["responses"]["202"]["headers"];
        let async_url = h["Azure-AsyncOperation"].as_str().unwrap();
        let location = h["location"].as_str().unwrap();
        let r = resp(
            202,
            &[("azure-asyncoperation", async_url), ("location", location)],
            Value::Null,
        );
        assert_eq!(r.header("azure-asyncoperation"), Some(async_url));

        let delete = super::super::swagger::example("ManagedClustersDelete.json").unwrap();
        assert!(delete["responses"]["202"]["headers"]["location"].is_string());
        assert!(delete["responses"].get("204").is_some());
    }

    #[test]
    fn request_ids_are_uuids() {
        let a = client_request_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, client_request_id());
    }
}
