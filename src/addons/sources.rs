//! Where add-on manifests come from: a local bundle (`--manifests DIR`, `EPHEMERA_MANIFESTS`), or
//! a download of the pinned upstream file, verified against its sha256 and cached by that sum
//! under the user's cache dir (`$XDG_CACHE_HOME/ephemera/manifests/<sha256>`).
//!
//! A checksum mismatch is a hard error, wherever the bytes came from. A source whose definition
//! pins no sha256 is never downloaded; from a bundle it is used as the operator's own file, and
//! its actual sha256 is reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::Retryable;
use sha2::Digest;

use super::AddonError;
use super::catalog::Source;

/// The environment variable naming bundle directories (`:`-separated, like `PATH`).
pub const MANIFESTS_ENV: &str = "EPHEMERA_MANIFESTS";
/// Manifests larger than this are refused (the largest upstream one is under 2 MB).
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Where sources are read from.
#[derive(Clone, Debug, Default)]
pub struct SourceOptions {
    /// Bundle directories, searched in order. When non-empty, nothing is downloaded.
    pub bundles: Vec<PathBuf>,
    /// The download cache; `None` means the user's cache dir.
    pub cache_dir: Option<PathBuf>,
}

impl SourceOptions {
    /// Bundles from `--manifests` when given, else from `EPHEMERA_MANIFESTS`.
    pub fn from_flag_or_env(flag: &[PathBuf]) -> Self {
        let bundles = if !flag.is_empty() {
            flag.to_vec()
        } else {
            std::env::var_os(MANIFESTS_ENV)
                .map(|v| {
                    std::env::split_paths(&v)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        SourceOptions {
            bundles,
            cache_dir: None,
        }
    }

    /// The cache dir: the configured one, else `$XDG_CACHE_HOME/ephemera/manifests`, else
    /// `$HOME/.cache/ephemera/manifests`.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if let Some(d) = &self.cache_dir {
            return Some(d.clone());
        }
        let xdg = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let base =
            xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("ephemera").join("manifests"))
    }
}

/// Where a manifest's bytes came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Bundle(PathBuf),
    Cache(PathBuf),
    Download(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Bundle(p) | Origin::Cache(p) => write!(f, "{}", p.display()),
            Origin::Download(u) => f.write_str(u),
        }
    }
}

/// A manifest's text, with where it came from and its sha256.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub text: String,
    pub origin: Origin,
    pub sha256: String,
    /// The definition pinned a sha256 and the bytes match it.
    pub verified: bool,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn verify(what: &str, file: &str, source: &Source, bytes: &[u8]) -> Result<String, AddonError> {
    let actual = sha256_hex(bytes);
    if let Some(expected) = &source.sha256
        && *expected != actual
    {
        return Err(AddonError::Checksum {
            what: what.into(),
            file: file.into(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(actual)
}

fn text(what: &str, file: &str, bytes: Vec<u8>) -> Result<String, AddonError> {
    String::from_utf8(bytes).map_err(|_| AddonError::Source {
        what: what.into(),
        message: format!("{file} is not UTF-8 text"),
    })
}

/// Reads one source: from the bundles when any are configured, else from the cache or by download.
///
/// # Errors
/// - [`AddonError::Checksum`] naming the file, the expected and the actual sha256;
/// - [`AddonError::Source`] for a file missing from every bundle (naming the path and the URL to
///   fetch it from), a download refused for lack of a pinned sha256, or an I/O failure;
/// - [`AddonError::Download`] for HTTP failures, after retrying transient ones.
pub async fn fetch(
    what: &str,
    source: &Source,
    opts: &SourceOptions,
) -> Result<Fetched, AddonError> {
    if !opts.bundles.is_empty() {
        for dir in &opts.bundles {
            let path = dir.join(&source.bundle);
            let bytes = match tokio::fs::read(&path).await {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(AddonError::Source {
                        what: what.into(),
                        message: format!("reading {}: {e}", path.display()),
                    });
                }
            };
            let file = path.display().to_string();
            let sha256 = verify(what, &file, source, &bytes)?;
            if source.sha256.is_none() {
                tracing::warn!(file = %file, sha256 = %sha256, "{what}: using an unpinned manifest from the bundle");
            }
            return Ok(Fetched {
                text: text(what, &file, bytes)?,
                origin: Origin::Bundle(path),
                sha256,
                verified: source.sha256.is_some(),
            });
        }
        let searched: Vec<String> = opts
            .bundles
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        return Err(AddonError::Source {
            what: what.into(),
            message: format!(
                "{} is in no manifest bundle (searched {}); its upstream file is {}",
                source.bundle,
                searched.join(", "),
                source.url
            ),
        });
    }
    let Some(expected) = &source.sha256 else {
        return Err(AddonError::Source {
            what: what.into(),
            message: format!(
                "{} has no pinned sha256 in the add-on definition, and ephemera does not download unverified manifests; \
                 put the file in a --manifests bundle at {}, or pin its sha256 in an override definition (see docs/addons.md)",
                source.url, source.bundle
            ),
        });
    };
    let cache = opts.cache_dir();
    if let Some(dir) = &cache {
        let path = dir.join(expected);
        if let Ok(bytes) = tokio::fs::read(&path).await {
            let actual = sha256_hex(&bytes);
            if actual == *expected {
                let file = path.display().to_string();
                return Ok(Fetched {
                    text: text(what, &file, bytes)?,
                    origin: Origin::Cache(path),
                    sha256: actual,
                    verified: true,
                });
            }
            // A damaged cache entry is replaced by a fresh download.
            tracing::warn!(path = %path.display(), "cached manifest does not match its sha256; downloading it again");
        }
    }
    let bytes = download(what, &source.url).await?;
    let sha256 = verify(what, &source.url, source, &bytes)?;
    if let Some(dir) = &cache
        && let Err(e) = store(dir, &sha256, &bytes)
    {
        // Not fatal: the next run downloads again.
        tracing::warn!(dir = %dir.display(), "cannot cache a manifest: {e}");
    }
    Ok(Fetched {
        text: text(what, &source.url, bytes)?,
        origin: Origin::Download(source.url.clone()),
        sha256,
        verified: true,
    })
}

/// Writes a cache entry atomically (temp file, then rename), so a crash never leaves half a file.
fn store(dir: &Path, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{sha256}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(sha256))
}

/// Whether `url` may be fetched: https, or http to a loopback address (for local test servers).
fn allowed(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => {
            let host = url
                .host_str()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']');
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

#[derive(Debug)]
enum Failure {
    Transient(String),
    Permanent(String),
}

async fn download(what: &str, url: &str) -> Result<Vec<u8>, AddonError> {
    let err = |message: String| AddonError::Download {
        what: what.into(),
        url: url.into(),
        message,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| err(format!("not a URL: {e}")))?;
    if !allowed(&parsed) {
        return Err(err(
            "only https URLs are downloaded (plain http only from a loopback address)".into(),
        ));
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(300))
        .user_agent(concat!("ephemera/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| err(format!("cannot build an HTTP client: {e}")))?;
    let attempt = || async {
        let resp = client
            .get(parsed.clone())
            .send()
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(Failure::Transient(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(Failure::Permanent(format!("HTTP {status}")));
        }
        if resp.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
            return Err(Failure::Permanent(format!("larger than {MAX_BYTES} bytes")));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
        if body.len() > MAX_BYTES {
            return Err(Failure::Permanent(format!("larger than {MAX_BYTES} bytes")));
        }
        Ok(body.to_vec())
    };
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(4)
        .with_jitter();
    attempt
        .retry(backoff)
        .when(|f| matches!(f, Failure::Transient(_)))
        .await
        .map_err(|f| match f {
            Failure::Transient(m) | Failure::Permanent(m) => err(m),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_allowed() {
        let ok = |u: &str| allowed(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://example.invalid/x.yaml"));
        assert!(ok("http://127.0.0.1:8080/x.yaml"));
        assert!(ok("http://[::1]:8080/x.yaml"));
        assert!(ok("http://localhost:1/x"));
        assert!(!ok("http://example.invalid/x.yaml"));
        assert!(!ok("http://10.0.0.1/x.yaml"));
        assert!(!ok("file:///etc/passwd"));
    }

    #[test]
    fn cache_dir_follows_xdg() {
        let opts = SourceOptions {
            bundles: vec![],
            cache_dir: Some(PathBuf::from("/c")),
        };
        assert_eq!(opts.cache_dir(), Some(PathBuf::from("/c")));
    }
}
