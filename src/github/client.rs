//! A thin GitHub REST client over reqwest: the headers GitHub asks for, pagination through
//! `Link`, and retries that honour `Retry-After` and `x-ratelimit-reset` within a time budget.
//!
//! Every call of the reporter shares one [`Deadline`], so a GitHub outage costs a bounded time
//! however many requests the call would have made. The waits without a hint come from
//! [`crate::http::backoff`], the backoff ARM uses too, and the `Retry-After` parser is
//! [`crate::http::parse_retry_after`]; the loop stays here because the time budget, not a count of
//! retries, decides when to stop.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, LINK, RETRY_AFTER, USER_AGENT,
};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::{GitHubError, Repository, Token};

/// The REST API version every request asks for.
pub const API_VERSION: &str = "2022-11-28";
/// The media type every request accepts.
pub const MEDIA_TYPE: &str = "application/vnd.github+json";
/// At most this many pages are read from one listing (100 items each).
const MAX_PAGES: usize = 50;

/// How long to keep trying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// The time one reporter call (all its requests and waits) may take, e.g. 60 s.
    pub budget: Duration,
    /// The longest one request may take.
    pub request_timeout: Duration,
    /// The first backoff delay when GitHub gives no hint; doubled per attempt.
    pub base_delay: Duration,
    /// The longest backoff delay when GitHub gives no hint.
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            budget: Duration::from_secs(60),
            request_timeout: Duration::from_secs(15),
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(16),
        }
    }
}

/// The instant by which a reporter call gives up.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
    started: Instant,
}

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        let started = Instant::now();
        Deadline {
            at: started + budget,
            started,
        }
    }

    fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    next: Option<Url>,
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    repo: Repository,
    token: Token,
    retry: Retry,
}

impl Client {
    /// # Errors
    /// [`GitHubError::Client`] when the HTTP client cannot be built (TLS set-up).
    pub fn new(
        base: Url,
        repo: Repository,
        token: Token,
        retry: Retry,
    ) -> Result<Self, GitHubError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("ephemera/", env!("CARGO_PKG_VERSION")))
            // A redirect could carry the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GitHubError::Client {
                source: e.without_url(),
            })?;
        Ok(Client {
            http,
            base,
            repo,
            token,
            retry,
        })
    }

    /// The URL of `path` (which starts with `/`) under the API base.
    pub fn url(&self, path: &str) -> Result<Url, GitHubError> {
        let joined = format!("{}{path}", self.base.as_str().trim_end_matches('/'));
        Url::parse(&joined).map_err(|e| GitHubError::BadUrl {
            what: "GitHub API URL".into(),
            message: format!("{joined:?}: {e}"),
        })
    }

    /// The URL of `path` under `/repos/{owner}/{name}`.
    pub fn repo_url(&self, path: &str) -> Result<Url, GitHubError> {
        self.url(&format!(
            "/repos/{}/{}{path}",
            self.repo.owner, self.repo.name
        ))
    }

    pub async fn get(&self, url: Url, deadline: &Deadline) -> Result<Reply, GitHubError> {
        self.send(Method::GET, url, None, deadline).await
    }

    pub async fn post(
        &self,
        url: Url,
        body: &Value,
        deadline: &Deadline,
    ) -> Result<Reply, GitHubError> {
        self.send(Method::POST, url, Some(body), deadline).await
    }

    pub async fn patch(
        &self,
        url: Url,
        body: &Value,
        deadline: &Deadline,
    ) -> Result<Reply, GitHubError> {
        self.send(Method::PATCH, url, Some(body), deadline).await
    }

    /// DELETE; a 404 (already gone) is success.
    pub async fn delete(&self, url: Url, deadline: &Deadline) -> Result<(), GitHubError> {
        match self.send(Method::DELETE, url, None, deadline).await {
            Ok(_) => Ok(()),
            Err(GitHubError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every item of a listing, following `Link: rel="next"` on the API's own origin only.
    pub async fn list(&self, mut url: Url, deadline: &Deadline) -> Result<Vec<Value>, GitHubError> {
        url.query_pairs_mut().append_pair("per_page", "100");
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let reply = self.get(url.clone(), deadline).await?;
            match reply.body {
                Value::Array(page) => items.extend(page),
                other => {
                    return Err(GitHubError::Decode {
                        method: "GET".into(),
                        path: url.path().to_string(),
                        message: format!("expected a list, got {}", kind(&other)),
                    });
                }
            }
            match reply.next {
                Some(next) if next.origin() == self.base.origin() => url = next,
                Some(next) => {
                    return Err(GitHubError::Decode {
                        method: "GET".into(),
                        path: url.path().to_string(),
                        message: format!(
                            "refusing to follow a pagination link to another origin ({})",
                            next.origin().ascii_serialization()
                        ),
                    });
                }
                None => return Ok(items),
            }
        }
        Ok(items)
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        deadline: &Deadline,
    ) -> Result<Reply, GitHubError> {
        let path = url.path().to_string();
        let mut backoff = backoff(&self.retry);
        let mut attempts = 0u32;
        let mut last = String::new();
        loop {
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                return Err(gave_up(&method, &path, attempts, deadline, last));
            }
            attempts += 1;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .headers(self.headers())
                .timeout(remaining.min(self.retry.request_timeout));
            if let Some(b) = body {
                req = req.json(b);
            }
            // The n-th failed try waits the n-th backoff step when GitHub gives no hint.
            let step = backoff.next().unwrap_or(self.retry.max_delay);
            let wait = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        let body = if text.trim().is_empty() {
                            Value::Null
                        } else {
                            serde_json::from_str(&text).map_err(|e| GitHubError::Decode {
                                method: method.to_string(),
                                path: path.clone(),
                                message: format!("the answer is not JSON: {e}"),
                            })?
                        };
                        return Ok(Reply {
                            status,
                            body,
                            next: next_link(&headers),
                        });
                    }
                    let message = api_message(&text);
                    let wait =
                        retry_delay(status, &headers, &message, step, jiff::Timestamp::now());
                    let Some(wait) = wait else {
                        return Err(GitHubError::Status {
                            method: method.to_string(),
                            path,
                            status: status.as_u16(),
                            message,
                        });
                    };
                    last = match &message {
                        Some(m) => format!("{status}: {m}"),
                        None => status.to_string(),
                    };
                    wait
                }
                Err(e) => {
                    // A request that never reached GitHub can always be sent again; one that
                    // timed out may have been applied, so only idempotent ones are repeated.
                    let idempotent = matches!(method, Method::GET | Method::PATCH | Method::DELETE);
                    if !(e.is_connect() || (e.is_timeout() && idempotent)) {
                        return Err(GitHubError::Transport {
                            method: method.to_string(),
                            path,
                            source: e.without_url(),
                        });
                    }
                    last = crate::error::chain(&e.without_url());
                    step
                }
            };
            if wait > deadline.remaining() {
                return Err(GitHubError::Unavailable {
                    method: method.to_string(),
                    path,
                    attempts,
                    elapsed: deadline.started.elapsed(),
                    last: format!(
                        "{last}; the next try would be in {}s, past the time budget",
                        wait.as_secs_f32().ceil()
                    ),
                });
            }
            tracing::debug!(%method, %path, attempts, wait_ms = wait.as_millis() as u64, %last, "retrying GitHub request");
            crate::deadline::note(|| format!("GitHub {method} {path}: {last}"));
            tokio::time::sleep(wait).await;
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(MEDIA_TYPE));
        h.insert(
            "x-github-api-version",
            HeaderValue::from_static(API_VERSION),
        );
        h.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("ephemera/", env!("CARGO_PKG_VERSION"))),
        );
        if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", self.token.expose())) {
            v.set_sensitive(true);
            h.insert(AUTHORIZATION, v);
        }
        h
    }
}

fn gave_up(
    method: &Method,
    path: &str,
    attempts: u32,
    deadline: &Deadline,
    last: String,
) -> GitHubError {
    GitHubError::Unavailable {
        method: method.to_string(),
        path: path.to_string(),
        attempts,
        elapsed: deadline.started.elapsed(),
        last: if last.is_empty() {
            "not tried, the call's time budget was used up by earlier failures".into()
        } else {
            last
        },
    }
}

/// How long to wait before repeating a request that got `status`, or `None` when repeating it
/// cannot help.
///
/// - 403 and 429 are rate limits when they carry `Retry-After` (wait that long), or
///   `x-ratelimit-remaining: 0` with `x-ratelimit-reset` (wait until then), or, for 403, when
///   GitHub's message names a secondary rate limit; a 429 without hints backs off too. Any other
///   403 is a permission problem, and final.
/// - 5xx is retried after `Retry-After`, else with exponential backoff.
///
/// `step` is the wait when GitHub gives no hint: the next step of [`backoff`].
pub fn retry_delay(
    status: StatusCode,
    headers: &HeaderMap,
    message: &Option<String>,
    step: Duration,
    now: jiff::Timestamp,
) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let retry_after =
        header(RETRY_AFTER.as_str()).and_then(|v| crate::http::parse_retry_after(v, now.into()));
    if status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS {
        if let Some(d) = retry_after {
            return Some(d);
        }
        if header("x-ratelimit-remaining") == Some("0")
            && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok())
        {
            let secs = reset.saturating_sub(now.as_second()).max(1);
            return Some(Duration::from_secs(secs.unsigned_abs()));
        }
        let secondary = message
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().contains("secondary rate limit"));
        if status == StatusCode::TOO_MANY_REQUESTS || secondary {
            return Some(step);
        }
        return None;
    }
    if status.is_server_error() {
        return Some(retry_after.unwrap_or(step));
    }
    None
}

/// The waits between tries without a hint from GitHub: [`crate::http::backoff`], whose n-th
/// step lies between half and all of `base_delay * 2^(n-1)` capped at `max_delay`. (backon's
/// jitter adds up to the delay itself, so it is given half of both bounds.) It never runs out:
/// the call's time budget ends the tries.
pub fn backoff(retry: &Retry) -> ExponentialBackoff {
    crate::http::backoff(retry.base_delay / 2, retry.max_delay / 2, usize::MAX).build()
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<Url> {
    let v = headers.get(LINK)?.to_str().ok()?;
    v.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        if is_next {
            Url::parse(target).ok()
        } else {
            None
        }
    })
}

/// GitHub's `message` from an error body, on one line and short.
fn api_message(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let m = v.get("message")?.as_str()?;
    let one: String = m
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    Some(one)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn fast() -> Retry {
        Retry {
            budget: Duration::from_secs(5),
            request_timeout: Duration::from_secs(1),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
        }
    }

    #[test]
    fn rate_limits_honour_retry_after_and_reset() {
        let now: jiff::Timestamp = "2026-08-01T10:00:00Z".parse().unwrap();
        let d = |s: u16, h: &[(&'static str, &str)], m: Option<&str>| {
            retry_delay(
                StatusCode::from_u16(s).unwrap(),
                &headers(h),
                &m.map(String::from),
                backoff(&fast()).next().unwrap(),
                now,
            )
        };
        assert_eq!(
            d(403, &[("retry-after", "7")], None),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            d(429, &[("retry-after", "3")], None),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            d(
                403,
                &[("retry-after", "Sat, 01 Aug 2026 10:00:09 GMT")],
                None
            ),
            Some(Duration::from_secs(9))
        );
        let reset = (now.as_second() + 12).to_string();
        assert_eq!(
            d(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", &reset)
                ],
                None
            ),
            Some(Duration::from_secs(12))
        );
        // A reset already past still waits a moment.
        let past = (now.as_second() - 5).to_string();
        assert_eq!(
            d(
                429,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &past)],
                None
            ),
            Some(Duration::from_secs(1))
        );
        // Remaining calls left: a 403 is a permission problem, not a rate limit.
        assert_eq!(
            d(
                403,
                &[
                    ("x-ratelimit-remaining", "12"),
                    ("x-ratelimit-reset", &reset)
                ],
                None
            ),
            None
        );
        assert_eq!(
            d(403, &[], Some("Resource not accessible by integration")),
            None
        );
        let w = d(403, &[], Some("You have exceeded a secondary rate limit.")).unwrap();
        assert!(
            w >= Duration::from_millis(50) && w <= Duration::from_millis(100),
            "{w:?}"
        );
        assert!(d(429, &[], None).is_some());
        assert_eq!(d(404, &[("retry-after", "1")], None), None);
        assert_eq!(d(422, &[], None), None);
    }

    #[test]
    fn server_errors_back_off_or_honour_retry_after() {
        let now = jiff::Timestamp::now();
        let r = fast();
        let mut steps = backoff(&r);
        assert_eq!(
            retry_delay(
                StatusCode::SERVICE_UNAVAILABLE,
                &headers(&[("retry-after", "2")]),
                &None,
                steps.next().unwrap(),
                now
            ),
            Some(Duration::from_secs(2))
        );
        let mut steps = backoff(&r);
        for attempt in 1..10 {
            let w = retry_delay(
                StatusCode::BAD_GATEWAY,
                &HeaderMap::new(),
                &None,
                steps.next().unwrap(),
                now,
            )
            .unwrap();
            let cap = (r.base_delay * 2u32.pow(attempt - 1)).min(r.max_delay);
            assert!(
                w >= cap / 2 && w <= cap,
                "attempt {attempt}: {w:?} vs {cap:?}"
            );
        }
    }

    #[test]
    fn next_links_are_found() {
        let h = headers(&[(
            "link",
            r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=3>; rel="next", <https://api.github.com/x?page=9>; rel="last""#,
        )]);
        assert_eq!(
            next_link(&h).unwrap().as_str(),
            "https://api.github.com/x?page=3"
        );
        assert_eq!(
            next_link(&headers(&[("link", r#"<https://a/x>; rel="last""#)])),
            None
        );
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn api_messages_are_one_short_line() {
        assert_eq!(
            api_message(r#"{"message":"Not\nFound"}"#).as_deref(),
            Some("Not Found")
        );
        assert_eq!(api_message("<html>").as_deref(), None);
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(500));
        assert_eq!(api_message(&long).unwrap().len(), 200);
    }
}
