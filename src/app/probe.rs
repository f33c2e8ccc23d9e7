//! Reporting the preview URL: with real pods (kind, AKS) only once an HTTP probe of the health
//! path answers; with `local`, the route itself, marked as simulated.
//!
//! Certificates are verified. The selfsigned and letsencrypt-staging issuers give certificates no
//! client trusts, so for those two issuers (and only those) the caller may ask to accept an
//! invalid certificate; [`accept_invalid_certs`] enforces that rule, and the probe warns when it
//! skips verification.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::Serialize;
use std::time::Instant;

use super::AppError;
use crate::config::Issuer;

/// One request may take this long before it counts as a failed attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Decides whether the probe may accept an invalid certificate.
///
/// # Errors
/// [`AppError::InsecureNotAllowed`] (exit 2) when `insecure` is asked for with an issuer that
/// gives trusted certificates (`letsencrypt`): a certificate error there is a real problem.
pub fn accept_invalid_certs(issuer: Issuer, insecure: bool) -> Result<bool, AppError> {
    match (issuer, insecure) {
        (Issuer::Letsencrypt, true) => Err(AppError::InsecureNotAllowed),
        (_, insecure) => Ok(insecure),
    }
}

/// The URL the probe requests: `url`'s path (without a trailing `/`) followed by `health_path`.
///
/// # Errors
/// [`AppError::Invalid`] for a URL that is not http(s) or a health path not starting with `/`.
pub fn probe_target(url: &str, health_path: &str) -> Result<reqwest::Url, AppError> {
    let mut target =
        reqwest::Url::parse(url).map_err(|e| AppError::Invalid(format!("URL {url:?}: {e}")))?;
    if !matches!(target.scheme(), "http" | "https") || target.host_str().is_none() {
        return Err(AppError::Invalid(format!(
            "URL {url:?}: only http and https URLs with a host can be probed"
        )));
    }
    if !health_path.starts_with('/')
        || health_path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AppError::Invalid(format!(
            "health path {health_path:?}: must start with '/' and hold no spaces"
        )));
    }
    let (path, query) = match health_path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (health_path, None),
    };
    let joined = format!("{}{path}", target.path().trim_end_matches('/'));
    target.set_path(&joined);
    target.set_query(query);
    Ok(target)
}

/// A successful probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probed {
    /// The URL that answered (the health path on the preview URL).
    pub target: String,
    /// Its HTTP status (2xx).
    pub status: u16,
    /// How many requests it took.
    pub attempts: u32,
}

/// A reqwest error as one line: its own text and its causes, without the URL (the message that
/// holds this already names it).
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    let head = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    if parts.is_empty() {
        head
    } else {
        format!("{head}: {}", parts.join(": "))
    }
}

/// Requests `url` + `health_path` until it answers 2xx, retrying with exponential backoff (0.2 s
/// up to 2 s between attempts) until `deadline`. Redirects are followed (at most 5).
///
/// # Errors
/// - [`AppError::Invalid`] for a bad URL or health path (exit 2); nothing was requested.
/// - [`AppError::ProbeTimeout`] (exit 3) at `deadline`, with the attempts and the last answer or
///   error seen.
pub async fn probe_url(
    url: &str,
    health_path: &str,
    deadline: Instant,
    accept_invalid_certs: bool,
) -> Result<Probed, AppError> {
    let target = probe_target(url, health_path)?;
    if accept_invalid_certs {
        tracing::warn!(url = %target, "not verifying the TLS certificate (allowed for the selfsigned and letsencrypt-staging issuers)");
    }
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(accept_invalid_certs)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| {
            AppError::Invalid(format!("cannot build an HTTP client: {}", error_chain(&e)))
        })?;
    let started = Instant::now();
    let attempts = AtomicU32::new(0);
    let last = Mutex::new(String::from("no answer yet"));
    let attempt = || async {
        attempts.fetch_add(1, Ordering::Relaxed);
        let timeout = ATTEMPT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        match client.get(target.clone()).timeout(timeout).send().await {
            Ok(resp) if resp.status().is_success() => Ok(resp.status().as_u16()),
            Ok(resp) => Err(format!("answered {}", resp.status())),
            Err(e) => Err(error_chain(&e)),
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times();
    let retried = attempt
        .retry(backoff)
        .notify(|err: &String, wait: Duration| {
            tracing::debug!(url = %target, error = %err, ?wait, "probe failed, retrying");
            if let Ok(mut l) = last.lock() {
                l.clone_from(err);
            }
        });
    let outcome = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), retried).await;
    let attempts = attempts.load(Ordering::Relaxed);
    match outcome {
        Ok(Ok(status)) => Ok(Probed {
            target: target.to_string(),
            status,
            attempts,
        }),
        Ok(Err(err)) => Err(probe_timeout(
            &target,
            started,
            attempts,
            err,
            accept_invalid_certs,
        )),
        Err(_) => {
            let err = last.lock().map(|l| l.clone()).unwrap_or_default();
            Err(probe_timeout(
                &target,
                started,
                attempts,
                err,
                accept_invalid_certs,
            ))
        }
    }
}

fn probe_timeout(
    target: &reqwest::Url,
    started: Instant,
    attempts: u32,
    last: String,
    insecure: bool,
) -> AppError {
    let hint = if !insecure && last.to_lowercase().contains("certificate") {
        "; the certificate is not trusted: the selfsigned and letsencrypt-staging issuers need the \
         probe to accept invalid certificates"
    } else {
        ""
    };
    AppError::ProbeTimeout {
        url: target.to_string(),
        seconds: started.elapsed().as_secs(),
        attempts,
        last: format!("{last}{hint}"),
    }
}

/// The URL as `up` and `deploy` report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum UrlReport {
    /// The health path answered.
    Verified { url: String, probed: Probed },
    /// The local provider runs no pods: the route exists, nothing answers behind it.
    Simulated { url: String },
}

impl UrlReport {
    pub fn url(&self) -> &str {
        match self {
            UrlReport::Verified { url, .. } | UrlReport::Simulated { url } => url,
        }
    }
}

impl std::fmt::Display for UrlReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlReport::Verified { url, probed } => {
                write!(
                    f,
                    "{url} (health check answered {} at {})",
                    probed.status, probed.target
                )
            }
            UrlReport::Simulated { url } => write!(
                f,
                "{url} (simulated: the local provider runs no pods, so nothing answers at this URL)"
            ),
        }
    }
}

/// The URL to report: probed when pods really run (`serves_traffic`), marked simulated otherwise.
///
/// # Errors
/// As [`probe_url`]; with `serves_traffic` false only [`AppError::Invalid`] for a bad URL.
pub async fn report_url(
    url: &str,
    health_path: &str,
    serves_traffic: bool,
    deadline: Instant,
    accept_invalid_certs: bool,
) -> Result<UrlReport, AppError> {
    if !serves_traffic {
        probe_target(url, health_path)?;
        return Ok(UrlReport::Simulated {
            url: url.to_string(),
        });
    }
    let probed = probe_url(url, health_path, deadline, accept_invalid_certs).await?;
    Ok(UrlReport::Verified {
        url: url.to_string(),
        probed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_path_is_appended_to_the_url_path() {
        let t = |u, h| {
            probe_target(u, h)
                .map(|u| u.to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            t("https://pr-1.example.com", "/healthz"),
            Ok("https://pr-1.example.com/healthz".into())
        );
        assert_eq!(
            t("https://pr-1.example.com/app/", "/healthz"),
            Ok("https://pr-1.example.com/app/healthz".into())
        );
        assert_eq!(
            t("http://127.0.0.1:8080", "/ready?full=1"),
            Ok("http://127.0.0.1:8080/ready?full=1".into())
        );
        assert!(t("ftp://x", "/h").is_err_and(|e| e.contains("only http and https")));
        assert!(t("https://x", "healthz").is_err_and(|e| e.contains("must start with '/'")));
        assert!(t("not a url", "/h").is_err());
    }

    #[test]
    fn insecure_is_refused_for_the_trusted_issuer_only() {
        assert_eq!(
            accept_invalid_certs(Issuer::Selfsigned, true).ok(),
            Some(true)
        );
        assert_eq!(
            accept_invalid_certs(Issuer::LetsencryptStaging, true).ok(),
            Some(true)
        );
        assert_eq!(
            accept_invalid_certs(Issuer::Letsencrypt, false).ok(),
            Some(false)
        );
        let err = accept_invalid_certs(Issuer::Letsencrypt, true).expect_err("refused");
        assert_eq!(err.exit_status(), crate::ExitStatus::Usage);
    }
}
