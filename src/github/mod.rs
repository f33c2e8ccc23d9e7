//! GitHub integration: Deployments with environment URLs, one sticky PR comment per environment,
//! and `inactive` statuses after teardown.
//!
//! The engine resolves [`Settings`] before it creates anything (bad settings are usage errors),
//! then drives a [`Reporter`] through `started` → `succeeded`/`failed`, or `torn_down`. The
//! reporter never returns an error: GitHub being down or refusing a call must not fail or roll
//! back a healthy environment, so every problem comes back as a [`Warning`] for the log and the
//! JSON output.
//!
//! The HTTP client is a thin layer over reqwest (see `client.rs`) rather than octocrab: octocrab's
//! typed errors drop the response headers, so `Retry-After` and `x-ratelimit-reset` cannot be
//! honoured within a bounded budget, and it would bring a second HTTP and TLS stack next to
//! reqwest.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use serde::Serialize;

mod client;
pub mod comment;
pub mod pulls;
mod reporter;

pub use client::{API_VERSION, MEDIA_TYPE, Retry};
pub use comment::{CommentData, CommentState};
pub use reporter::Reporter;

/// The API of github.com; GitHub Enterprise Server users set `github.apiUrl` or `GITHUB_API_URL`.
pub const PUBLIC_API: &str = "https://api.github.com";
/// The login comments are matched against when the token cannot tell who it is (the Actions
/// `GITHUB_TOKEN` cannot read `/user`).
pub const ACTIONS_BOT: &str = "github-actions[bot]";

/// Errors from resolving settings, and from single GitHub API calls (which the reporter turns
/// into warnings).
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error(
        "GitHub reporting is on (--github or `github:` in the environment file) but GITHUB_TOKEN is not set; \
         pass it to the step (env: GITHUB_TOKEN: ${{{{ github.token }}}}) with permissions deployments: write and \
         pull-requests: write"
    )]
    NoToken,
    #[error("GITHUB_TOKEN holds characters an HTTP header cannot carry")]
    BadToken,
    #[error(
        "GitHub reporting is on but no repository is known: set github.repository or GITHUB_REPOSITORY"
    )]
    NoRepository,
    #[error("{what}: {value:?} is not owner/name")]
    BadRepository { what: &'static str, value: String },
    #[error("{what}: {message}")]
    BadUrl { what: String, message: String },
    #[error("{what}: {value:?} is not a commit SHA (40 or 64 hex digits)")]
    BadSha { what: &'static str, value: String },
    #[error("{what}: {message}")]
    BadSetting { what: &'static str, message: String },
    #[error("GITHUB_EVENT_PATH {path}: {message}")]
    Event { path: String, message: String },
    #[error("building the GitHub HTTP client")]
    Client {
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {path}: GitHub answered {status}{}", .message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Status {
        method: String,
        path: String,
        status: u16,
        message: Option<String>,
    },
    #[error("{method} {path}: GitHub unavailable, gave up after {attempts} attempt(s) in {:.1}s; last: {last}", .elapsed.as_secs_f32())]
    Unavailable {
        method: String,
        path: String,
        attempts: u32,
        elapsed: Duration,
        last: String,
    },
    #[error("{method} {path}: request failed")]
    Transport {
        method: String,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {path}: unexpected answer: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },
}

impl GitHubError {
    /// The exit status for a settings error (API call errors only ever become warnings).
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            GitHubError::Client { .. }
            | GitHubError::Status { .. }
            | GitHubError::Unavailable { .. }
            | GitHubError::Transport { .. }
            | GitHubError::Decode { .. } => crate::ExitStatus::Failed,
            _ => crate::ExitStatus::Usage,
        }
    }
}

/// Something GitHub reporting could not do. The environment is unaffected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// `deployment`, `deployment-status`, `comment` or `settings`.
    pub what: &'static str,
    pub message: String,
}

impl Warning {
    fn new(what: &'static str, message: impl Into<String>) -> Self {
        Warning {
            what,
            message: message.into(),
        }
    }

    fn from_error(what: &'static str, doing: &str, e: &GitHubError) -> Self {
        Warning::new(what, format!("{doing}: {}", crate::error::chain(e)))
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GitHub {}: {}", self.what, self.message)
    }
}

/// `owner/name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Repository {
    pub owner: String,
    pub name: String,
}

impl Repository {
    /// # Errors
    /// [`GitHubError::BadRepository`] naming `what` when `s` is not `owner/name`.
    pub fn parse(what: &'static str, s: &str) -> Result<Self, GitHubError> {
        let bad = || GitHubError::BadRepository {
            what,
            value: s.to_string(),
        };
        let (owner, name) = s.split_once('/').ok_or_else(bad)?;
        let owner_ok = !owner.is_empty()
            && owner.len() <= 39
            && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let name_ok = !name.is_empty()
            && name.len() <= 100
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if owner_ok && name_ok {
            Ok(Repository {
                owner: owner.into(),
                name: name.into(),
            })
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// The API token. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// # Errors
    /// [`GitHubError::BadToken`] when it is empty or holds anything but visible ASCII.
    pub fn new(s: String) -> Result<Self, GitHubError> {
        let s = s.trim().to_string();
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(GitHubError::BadToken);
        }
        Ok(Token(s))
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Everything GitHub reporting needs, resolved from flags, the environment file and the
/// GitHub Actions variables.
#[derive(Clone)]
pub struct Settings {
    pub repository: Repository,
    /// The REST API base, e.g. `https://api.github.com` or `https://ghe.example.com/api/v3`.
    pub api_url: Url,
    pub token: Token,
    /// The PR head commit from the event (see [`Settings::from_env`]); `--sha` overrides it.
    pub head_sha: Option<String>,
    /// The PR number from the event, when it names exactly one.
    pub event_pr: Option<u64>,
    /// The CI run, for `log_url` and the comment's footer.
    pub run_url: Option<String>,
    /// Create deployments and statuses (`github.deployments`, default on).
    pub deployments: bool,
    /// Keep the sticky PR comment (`github.comment`, default on).
    pub comment: bool,
    /// Only comments by this login are taken as ephemera's (`EPHEMERA_GITHUB_COMMENT_AUTHOR`);
    /// when unset, the token's own login, or [`ACTIONS_BOT`] for tokens that cannot read it.
    pub comment_author: Option<String>,
    pub retry: Retry,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("repository", &self.repository)
            .field("api_url", &self.api_url.as_str())
            .field("token", &self.token)
            .field("head_sha", &self.head_sha)
            .field("event_pr", &self.event_pr)
            .field("run_url", &self.run_url)
            .field("deployments", &self.deployments)
            .field("comment", &self.comment)
            .field("comment_author", &self.comment_author)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Settings {
    /// Resolves settings from the process environment; `None` when GitHub reporting is off
    /// (no `--github` and no `github:` block).
    ///
    /// - token: `GITHUB_TOKEN`;
    /// - repository: `github.repository`, else `GITHUB_REPOSITORY`;
    /// - API: `github.apiUrl`, else `GITHUB_API_URL`, else [`PUBLIC_API`]; `https`, or plain
    ///   `http` on a loopback host only;
    /// - head commit: the event's `pull_request.head.sha` (`pull_request`,
    ///   `pull_request_target`), else `workflow_run.head_sha`, else `GITHUB_SHA` for events
    ///   without a PR. `GITHUB_SHA` is never used for PR events: there it is the merge commit
    ///   (or the base branch), not the commit the PR shows;
    /// - run URL: `GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID`
    ///   (`/attempts/GITHUB_RUN_ATTEMPT` when set);
    /// - `EPHEMERA_GITHUB_COMMENT_AUTHOR`: see [`Settings::comment_author`];
    /// - `EPHEMERA_GITHUB_RETRY_BUDGET` (e.g. `20s`, `2m`): the time one reporter call may spend
    ///   retrying, default 60s.
    ///
    /// # Errors
    /// Missing or malformed values, naming the variable or field.
    pub fn from_env(
        cfg: Option<&crate::config::GitHub>,
        flag_enabled: bool,
    ) -> Result<Option<Settings>, GitHubError> {
        Self::from_lookup(cfg, flag_enabled, |k| std::env::var(k).ok())
    }

    /// [`Settings::from_env`] with variables read through `env`.
    ///
    /// # Errors
    /// As [`Settings::from_env`].
    pub fn from_lookup(
        cfg: Option<&crate::config::GitHub>,
        flag_enabled: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Settings>, GitHubError> {
        if !flag_enabled && cfg.is_none() {
            return Ok(None);
        }
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let token = Token::new(var("GITHUB_TOKEN").ok_or(GitHubError::NoToken)?)?;

        let repository = match cfg.and_then(|c| c.repository.as_deref()) {
            Some(r) => Repository::parse("github.repository", r)?,
            None => Repository::parse(
                "GITHUB_REPOSITORY",
                &var("GITHUB_REPOSITORY").ok_or(GitHubError::NoRepository)?,
            )?,
        };

        let api_url = match (cfg.and_then(|c| c.api_url.clone()), var("GITHUB_API_URL")) {
            (Some(u), _) => api_url("github.apiUrl", &u)?,
            (None, Some(u)) => api_url("GITHUB_API_URL", &u)?,
            (None, None) => api_url("the default API URL", PUBLIC_API)?,
        };

        let (head_sha, event_pr) = match var("GITHUB_EVENT_PATH") {
            Some(path) => from_event(Path::new(&path))?,
            None => (None, None),
        };
        let head_sha = match head_sha {
            Some(s) => Some(s),
            None if event_pr.is_none() => match var("GITHUB_SHA") {
                Some(s) => Some(check_sha("GITHUB_SHA", &s)?),
                None => None,
            },
            None => None,
        };

        let mut retry = Retry::default();
        if let Some(b) = var("EPHEMERA_GITHUB_RETRY_BUDGET") {
            retry.budget =
                crate::config::duration::parse(b.trim(), &['s', 'm']).map_err(|message| {
                    GitHubError::BadSetting {
                        what: "EPHEMERA_GITHUB_RETRY_BUDGET",
                        message,
                    }
                })?;
        }

        let comment_author = match var("EPHEMERA_GITHUB_COMMENT_AUTHOR") {
            Some(a) if is_login(a.trim()) => Some(a.trim().to_string()),
            Some(a) => {
                return Err(GitHubError::BadSetting {
                    what: "EPHEMERA_GITHUB_COMMENT_AUTHOR",
                    message: format!("{a:?} is not a GitHub login"),
                });
            }
            None => None,
        };

        Ok(Some(Settings {
            repository,
            api_url,
            token,
            head_sha,
            event_pr,
            run_url: run_url(&var),
            deployments: cfg.is_none_or(|c| c.deployments),
            comment: cfg.is_none_or(|c| c.comment),
            comment_author,
            retry,
        }))
    }

    /// The GitHub environment of ephemera environment `name`: `preview/<name>`.
    pub fn environment(name: &crate::names::EnvName) -> String {
        format!("preview/{}", name.as_str())
    }
}

/// Checks a commit SHA given by `what` (`--sha`, `GITHUB_SHA`, the event) and lower-cases it.
///
/// # Errors
/// [`GitHubError::BadSha`] unless it is 40 or 64 hex digits.
pub fn check_sha(what: &'static str, s: &str) -> Result<String, GitHubError> {
    let s = s.trim();
    if (s.len() == 40 || s.len() == 64) && s.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(GitHubError::BadSha {
            what,
            value: s.chars().take(80).collect(),
        })
    }
}

fn is_login(s: &str) -> bool {
    let base = s.strip_suffix("[bot]").unwrap_or(s);
    !base.is_empty()
        && base.len() <= 39
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Parses and checks an API base URL. Messages never echo a URL that carries credentials.
pub(crate) fn api_url(what: &str, raw: &str) -> Result<Url, GitHubError> {
    let bad = |message: String| GitHubError::BadUrl {
        what: what.to_string(),
        message,
    };
    let url = Url::parse(raw.trim()).map_err(|e| bad(format!("not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry credentials; the token comes from GITHUB_TOKEN".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!(
            "{:?} must not have a query or fragment",
            url.as_str()
        )));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(bad(format!(
            "{:?}: plain http is accepted only for loopback hosts; use https",
            url.as_str()
        ))),
        other => Err(bad(format!(
            "{:?}: scheme {other:?} is not https",
            url.as_str()
        ))),
    }
}

/// The run's URL, when all its parts are present and plausible.
fn run_url(var: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let server = Url::parse(var("GITHUB_SERVER_URL")?.trim()).ok()?;
    if !matches!(server.scheme(), "https" | "http") || !server.username().is_empty() {
        return None;
    }
    let repo = Repository::parse("GITHUB_REPOSITORY", &var("GITHUB_REPOSITORY")?).ok()?;
    let run_id = var("GITHUB_RUN_ID")?;
    if !run_id.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut u = format!(
        "{}/{repo}/actions/runs/{run_id}",
        server.as_str().trim_end_matches('/')
    );
    if let Some(a) = var("GITHUB_RUN_ATTEMPT").filter(|a| a.chars().all(|c| c.is_ascii_digit())) {
        u.push_str(&format!("/attempts/{a}"));
    }
    Some(u)
}

/// The PR head commit and PR number an event names.
type Head = (Option<String>, Option<u64>);

/// The PR head commit and number from an Actions event payload.
fn from_event(path: &Path) -> Result<Head, GitHubError> {
    let err = |message: String| GitHubError::Event {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let event: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
    event_head(&event).map_err(|e| err(e.to_string()))
}

fn event_head(event: &serde_json::Value) -> Result<Head, GitHubError> {
    let sha = |field: &'static str, v: Option<&serde_json::Value>| {
        v.and_then(|s| s.as_str())
            .map(|s| check_sha(field, s))
            .transpose()
    };
    if let Some(pr) = event.get("pull_request") {
        let head = sha("pull_request.head.sha", pr.pointer("/head/sha"))?;
        return Ok((head, pr.get("number").and_then(|n| n.as_u64())));
    }
    if let Some(run) = event.get("workflow_run") {
        let head = sha("workflow_run.head_sha", run.get("head_sha"))?;
        // Fork PRs are not listed here at all; several PRs sharing a head are ambiguous.
        let pr = match run.get("pull_requests").and_then(|p| p.as_array()) {
            Some(prs) if prs.len() == 1 => prs[0].get("number").and_then(|n| n.as_u64()),
            _ => None,
        };
        return Ok((head, pr));
    }
    Ok((None, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn off_unless_asked() {
        let s = Settings::from_lookup(None, false, lookup(&[("GITHUB_TOKEN", "t")])).unwrap();
        assert!(s.is_none());
    }

    #[test]
    fn resolves_from_actions_variables() {
        let s = Settings::from_lookup(
            None,
            true,
            lookup(&[
                ("GITHUB_TOKEN", "ghs_secret123"),
                ("GITHUB_REPOSITORY", "acme/shop"),
                ("GITHUB_SERVER_URL", "https://github.com"),
                ("GITHUB_RUN_ID", "77"),
                ("GITHUB_RUN_ATTEMPT", "2"),
                ("GITHUB_SHA", SHA),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.repository.to_string(), "acme/shop");
        assert_eq!(s.api_url.as_str(), "https://api.github.com/");
        assert_eq!(s.head_sha.as_deref(), Some(SHA));
        assert_eq!(
            s.run_url.as_deref(),
            Some("https://github.com/acme/shop/actions/runs/77/attempts/2")
        );
        assert!(s.deployments && s.comment);
        assert_eq!(s.retry, Retry::default());
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains("ghs_secret123") && dbg.contains("<redacted>"),
            "{dbg}"
        );
    }

    #[test]
    fn config_wins_over_variables_and_can_turn_parts_off() {
        let cfg = crate::config::GitHub {
            repository: Some("other/repo".into()),
            api_url: Some("https://ghe.example.com/api/v3".into()),
            deployments: false,
            comment: true,
        };
        let s = Settings::from_lookup(
            Some(&cfg),
            false,
            lookup(&[
                ("GITHUB_TOKEN", "t"),
                ("GITHUB_REPOSITORY", "acme/shop"),
                ("GITHUB_API_URL", "https://api.github.com"),
                ("EPHEMERA_GITHUB_RETRY_BUDGET", "5s"),
                ("EPHEMERA_GITHUB_COMMENT_AUTHOR", "my-app[bot]"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.repository.to_string(), "other/repo");
        assert_eq!(s.api_url.as_str(), "https://ghe.example.com/api/v3");
        assert!(!s.deployments && s.comment);
        assert_eq!(s.retry.budget, Duration::from_secs(5));
        assert_eq!(s.comment_author.as_deref(), Some("my-app[bot]"));
    }

    #[test]
    fn bad_settings_are_named() {
        let err = |pairs: &[(&str, &str)]| {
            Settings::from_lookup(None, true, lookup(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[("GITHUB_REPOSITORY", "a/b")]).contains("GITHUB_TOKEN is not set"));
        assert!(err(&[("GITHUB_TOKEN", "t")]).contains("GITHUB_REPOSITORY"));
        assert_eq!(
            err(&[("GITHUB_TOKEN", "t"), ("GITHUB_REPOSITORY", "a/b/c")]),
            r#"GITHUB_REPOSITORY: "a/b/c" is not owner/name"#
        );
        let e = err(&[
            ("GITHUB_TOKEN", "t"),
            ("GITHUB_REPOSITORY", "a/b"),
            ("GITHUB_API_URL", "http://ghe.example.com/api/v3"),
        ]);
        assert!(
            e.starts_with("GITHUB_API_URL: ") && e.contains("only for loopback"),
            "{e}"
        );
        let e = err(&[
            ("GITHUB_TOKEN", "t"),
            ("GITHUB_REPOSITORY", "a/b"),
            ("GITHUB_API_URL", "https://u:hunter2@ghe.example.com"),
        ]);
        assert!(e.contains("credentials") && !e.contains("hunter2"), "{e}");
        let e = err(&[
            ("GITHUB_TOKEN", "t"),
            ("GITHUB_REPOSITORY", "a/b"),
            ("GITHUB_SHA", "main"),
        ]);
        assert_eq!(
            e,
            r#"GITHUB_SHA: "main" is not a commit SHA (40 or 64 hex digits)"#
        );
        let e = err(&[
            ("GITHUB_TOKEN", "t"),
            ("GITHUB_REPOSITORY", "a/b"),
            ("EPHEMERA_GITHUB_RETRY_BUDGET", "soon"),
        ]);
        assert!(e.starts_with("EPHEMERA_GITHUB_RETRY_BUDGET: "), "{e}");
        let e = err(&[
            ("GITHUB_TOKEN", "bad token\n"),
            ("GITHUB_REPOSITORY", "a/b"),
        ]);
        assert_eq!(
            e,
            "GITHUB_TOKEN holds characters an HTTP header cannot carry"
        );
    }

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1/api",
            "http://[::1]:9/",
            "https://ghe.example.com/api/v3",
        ] {
            assert!(api_url("x", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://127.0.0.1.example.com",
            "ftp://127.0.0.1",
            "https://a.example/?x=1",
        ] {
            assert!(api_url("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_event_names_the_pr_head_not_the_merge_commit() {
        let merge = "ffffffffffffffffffffffffffffffffffffffff";
        let dir = tempfile::tempdir().unwrap();
        let pr_event = dir.path().join("pr.json");
        std::fs::write(
            &pr_event,
            format!(
                r#"{{"pull_request":{{"number":42,"head":{{"sha":"{}"}}}}}}"#,
                SHA.to_uppercase()
            ),
        )
        .unwrap();
        let s = Settings::from_lookup(
            None,
            true,
            lookup(&[
                ("GITHUB_TOKEN", "t"),
                ("GITHUB_REPOSITORY", "a/b"),
                ("GITHUB_SHA", merge),
                ("GITHUB_EVENT_PATH", pr_event.to_str().unwrap()),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!((s.head_sha.as_deref(), s.event_pr), (Some(SHA), Some(42)));

        let run = |prs: &str| {
            serde_json::from_str::<serde_json::Value>(&format!(
                r#"{{"workflow_run":{{"head_sha":"{SHA}","pull_requests":{prs}}}}}"#
            ))
            .unwrap()
        };
        assert_eq!(
            event_head(&run(r#"[{"number":7}]"#)).unwrap(),
            (Some(SHA.into()), Some(7))
        );
        assert_eq!(event_head(&run("[]")).unwrap(), (Some(SHA.into()), None));
        assert_eq!(
            event_head(&run(r#"[{"number":7},{"number":8}]"#)).unwrap(),
            (Some(SHA.into()), None)
        );
        assert_eq!(
            event_head(&serde_json::json!({"ref": "refs/heads/main"})).unwrap(),
            (None, None)
        );

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"pull_request":{"head":{"sha":"$(id)"}}}"#).unwrap();
        let e = from_event(&bad).unwrap_err().to_string();
        assert!(
            e.contains("pull_request.head.sha") && e.contains("not a commit SHA"),
            "{e}"
        );
        let e = from_event(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn warnings_read_as_one_line() {
        let w = Warning::from_error(
            "comment",
            "updating the PR comment",
            &GitHubError::Status {
                method: "PATCH".into(),
                path: "/repos/a/b/issues/comments/1".into(),
                status: 403,
                message: Some("Resource not accessible by integration".into()),
            },
        );
        assert_eq!(
            w.to_string(),
            "GitHub comment: updating the PR comment: PATCH /repos/a/b/issues/comments/1: GitHub answered 403 (Resource not accessible by integration)"
        );
    }
}
