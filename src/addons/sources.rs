//! Where add-on manifests come from: a local bundle (`--manifests DIR`, `EPHEMERA_MANIFESTS`), or
//! a download of the upstream file, verified against its sha256 and cached by that sum under the
//! user's cache dir (`$XDG_CACHE_HOME/ephemera/manifests/<sha256>`).
//!
//! The sha256 a file must have comes from its add-on definition's pin, else from the environment's
//! lock file (see [`super::lock`]). A checksum mismatch is a hard error, wherever the bytes came
//! from. A source pinned in neither place is used with a warning that names its sha256 and the
//! `lock` command (downloaded only over HTTPS), or refused with `--locked`.
//!
//! `EPHEMERA_MANIFEST_MIRROR` sends every download to a mirror that serves each upstream file at
//! its URL's path (`https://github.com/a/b` → `<mirror>/a/b`); sums are checked the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::Retryable;
use sha2::Digest;

use super::AddonError;
use super::catalog::{ResolvedAddon, Source};
use super::lock::Lock;

/// The environment variable naming bundle directories (`:`-separated, like `PATH`).
pub const MANIFESTS_ENV: &str = "EPHEMERA_MANIFESTS";
/// The environment variable naming a mirror of the upstream files (an https base URL).
pub const MIRROR_ENV: &str = "EPHEMERA_MANIFEST_MIRROR";
/// Manifests larger than this are refused (the largest upstream one is under 2 MB).
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// What to do with a source whose sha256 neither its definition nor the lock pins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unpinned {
    /// Use it, with a warning naming its sha256 and the `lock` command (`up`).
    #[default]
    Warn,
    /// Refuse it, naming the source (`up --locked`, `EPHEMERA_LOCKED=1`).
    Refuse,
    /// Use it silently: its sum is what is being recorded (`lock`).
    Accept,
}

/// Where sources are read from, and what their sums are checked against.
#[derive(Clone, Debug, Default)]
pub struct SourceOptions {
    /// Bundle directories, searched in order. When non-empty, nothing is downloaded.
    pub bundles: Vec<PathBuf>,
    /// The download cache; `None` means the user's cache dir.
    pub cache_dir: Option<PathBuf>,
    /// A base URL that serves the upstream files at their URLs' paths (`EPHEMERA_MANIFEST_MIRROR`).
    pub mirror: Option<String>,
    /// The environment's lock: sums for sources their definitions do not pin.
    pub lock: Option<Lock>,
    pub unpinned: Unpinned,
}

impl SourceOptions {
    /// Bundles from `--manifests` (several, separated like `PATH`) when given, else from
    /// `EPHEMERA_MANIFESTS`; the mirror from `EPHEMERA_MANIFEST_MIRROR`.
    ///
    /// # Errors
    /// [`AddonError::Invalid`] for a mirror that is not an https URL (or http on loopback).
    pub fn from_flag_or_env(flag: Option<&Path>) -> Result<Self, AddonError> {
        let split = |v: &std::ffi::OsStr| -> Vec<PathBuf> {
            std::env::split_paths(v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        };
        let bundles = match flag {
            Some(f) => split(f.as_os_str()),
            None => std::env::var_os(MANIFESTS_ENV)
                .map(|v| split(&v))
                .unwrap_or_default(),
        };
        let mirror = match std::env::var(MIRROR_ENV) {
            Ok(m) if !m.is_empty() => {
                let ok = reqwest::Url::parse(&m).is_ok_and(|u| allowed(&u, false));
                if !ok {
                    return Err(AddonError::Invalid(format!(
                        "{MIRROR_ENV}: {m:?} is not an https URL (plain http only on a loopback address)"
                    )));
                }
                Some(m.trim_end_matches('/').to_string())
            }
            _ => None,
        };
        Ok(SourceOptions {
            bundles,
            cache_dir: None,
            mirror,
            lock: None,
            unpinned: Unpinned::Warn,
        })
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

    /// Where `url` is downloaded from: the mirror, at the URL's path, when one is set.
    pub fn download_url(&self, url: &str) -> String {
        match (&self.mirror, reqwest::Url::parse(url)) {
            (Some(m), Ok(u)) => {
                let mut out = format!("{m}{}", u.path());
                if let Some(q) = u.query() {
                    out.push('?');
                    out.push_str(q);
                }
                out
            }
            _ => url.to_string(),
        }
    }

    /// The sha256 `source` must have: its definition's pin, else the lock's entry.
    ///
    /// # Errors
    /// [`AddonError::LockConflict`] when the lock names another sum than the definition pins.
    pub fn expected(&self, what: &str, source: &Source) -> Result<Option<String>, AddonError> {
        let locked = self.lock.as_ref().and_then(|l| l.sha256(&source.url));
        match (&source.sha256, locked) {
            (Some(pin), Some(l)) if pin != l => {
                Err(AddonError::LockConflict(Box::new(super::LockConflict {
                    what: what.into(),
                    url: source.url.clone(),
                    lock: self.lock_path(),
                    locked: l.to_string(),
                    pinned: pin.clone(),
                    command: self.lock_command(),
                })))
            }
            (Some(pin), _) => Ok(Some(pin.clone())),
            (None, l) => Ok(l.map(str::to_string)),
        }
    }

    fn lock_path(&self) -> String {
        self.lock
            .as_ref()
            .map_or_else(|| "the lock file".into(), |l| l.path.display().to_string())
    }

    fn lock_command(&self) -> String {
        self.lock
            .as_ref()
            .map_or_else(|| "ephemera lock --env FILE".into(), Lock::command)
    }

    fn unpinned_error(&self, what: &str, source: &Source) -> AddonError {
        AddonError::Unpinned {
            what: what.into(),
            url: source.url.clone(),
            lock: self.lock_path(),
            command: self.lock_command(),
        }
    }

    fn warn_unpinned(&self, what: &str, file: &str, sha256: &str) {
        if self.unpinned == Unpinned::Warn {
            tracing::warn!(
                "{what}: {file} is pinned neither by its add-on definition nor by {}; using it with sha256 {sha256}. \
                 Run `{}` to lock it (--locked refuses unpinned sources)",
                self.lock_path(),
                self.lock_command()
            );
        }
    }
}

/// Checks, before anything is fetched or created, that every source of `addons` has a sum to be
/// checked against when sources are refused otherwise (`--locked`), and that the lock agrees with
/// the definitions.
///
/// # Errors
/// [`AddonError::Unpinned`] naming the first source pinned nowhere (with [`Unpinned::Refuse`]);
/// [`AddonError::LockConflict`].
pub fn check(addons: &[ResolvedAddon], opts: &SourceOptions) -> Result<(), AddonError> {
    for a in addons {
        let what = format!("{} {}", a.name, a.version);
        for s in &a.sources {
            if opts.expected(&what, s)?.is_none() && opts.unpinned == Unpinned::Refuse {
                return Err(opts.unpinned_error(&what, s));
            }
        }
    }
    Ok(())
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

fn verify(
    what: &str,
    file: &str,
    expected: Option<&str>,
    bytes: &[u8],
) -> Result<String, AddonError> {
    let actual = sha256_hex(bytes);
    if let Some(expected) = expected
        && expected != actual
    {
        return Err(AddonError::Checksum {
            what: what.into(),
            file: file.into(),
            expected: expected.into(),
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

/// Reads one source: from the bundles when any are configured, else from the cache or by download,
/// and checks it against its definition's pin or the lock.
///
/// # Errors
/// - [`AddonError::Checksum`] naming the file, the expected and the actual sha256;
/// - [`AddonError::Unpinned`] for a source pinned nowhere when such sources are refused;
/// - [`AddonError::LockConflict`] when the lock contradicts the definition;
/// - [`AddonError::Source`] for a file missing from every bundle (naming the path and the URL to
///   fetch it from), or an I/O failure;
/// - [`AddonError::Download`] for HTTP failures, after retrying transient ones.
pub async fn fetch(
    what: &str,
    source: &Source,
    opts: &SourceOptions,
) -> Result<Fetched, AddonError> {
    let expected = opts.expected(what, source)?;
    if expected.is_none() && opts.unpinned == Unpinned::Refuse {
        return Err(opts.unpinned_error(what, source));
    }
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
            let sha256 = verify(what, &file, expected.as_deref(), &bytes)?;
            if expected.is_none() {
                opts.warn_unpinned(what, &file, &sha256);
            }
            return Ok(Fetched {
                text: text(what, &file, bytes)?,
                origin: Origin::Bundle(path),
                sha256,
                verified: expected.is_some(),
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
    let cache = opts.cache_dir();
    if let (Some(dir), Some(expected)) = (&cache, &expected) {
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
    let url = opts.download_url(&source.url);
    // Bytes that nothing can check come only over HTTPS.
    let bytes = download(what, &url, expected.is_none()).await?;
    let sha256 = verify(what, &url, expected.as_deref(), &bytes)?;
    if expected.is_none() {
        opts.warn_unpinned(what, &url, &sha256);
    }
    if let Some(dir) = &cache
        && let Err(e) = store(dir, &sha256, &bytes)
    {
        // Not fatal: the next run downloads again.
        tracing::warn!(dir = %dir.display(), "cannot cache a manifest: {e}");
    }
    Ok(Fetched {
        text: text(what, &url, bytes)?,
        origin: Origin::Download(url.clone()),
        sha256,
        verified: expected.is_some(),
    })
}

/// Writes a cache entry atomically (temp file, then rename), so a crash never leaves half a file.
fn store(dir: &Path, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{sha256}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(sha256))
}

/// Whether `url` may be fetched: https, or (unless `https_only`) http to a loopback address, for
/// local test servers.
fn allowed(url: &reqwest::Url, https_only: bool) -> bool {
    match url.scheme() {
        "https" => true,
        "http" if !https_only => {
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

async fn download(what: &str, url: &str, https_only: bool) -> Result<Vec<u8>, AddonError> {
    let err = |message: String| AddonError::Download {
        what: what.into(),
        url: url.into(),
        message,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| err(format!("not a URL: {e}")))?;
    if !allowed(&parsed, https_only) {
        return Err(err(if https_only {
            "a file that nothing pins is downloaded only over https".into()
        } else {
            "only https URLs are downloaded (plain http only from a loopback address)".into()
        }));
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
    let backoff = crate::http::backoff(Duration::from_millis(200), Duration::from_secs(5), 4);
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
        let ok = |u: &str| allowed(&reqwest::Url::parse(u).unwrap(), false);
        assert!(ok("https://example.invalid/x.yaml"));
        assert!(ok("http://127.0.0.1:8080/x.yaml"));
        assert!(ok("http://[::1]:8080/x.yaml"));
        assert!(ok("http://localhost:1/x"));
        assert!(!ok("http://example.invalid/x.yaml"));
        assert!(!ok("http://10.0.0.1/x.yaml"));
        assert!(!ok("file:///etc/passwd"));
        let https_only = |u: &str| allowed(&reqwest::Url::parse(u).unwrap(), true);
        assert!(https_only("https://127.0.0.1/x.yaml"));
        assert!(!https_only("http://127.0.0.1/x.yaml"));
    }

    #[test]
    fn a_mirror_serves_the_upstream_path() {
        let opts = SourceOptions {
            mirror: Some("https://127.0.0.1:8443/upstream".into()),
            ..Default::default()
        };
        assert_eq!(
            opts.download_url("https://github.com/cert-manager/cert-manager/releases/download/v1.21.1/cert-manager.yaml?x=1"),
            "https://127.0.0.1:8443/upstream/cert-manager/cert-manager/releases/download/v1.21.1/cert-manager.yaml?x=1"
        );
        let none = SourceOptions::default();
        assert_eq!(
            none.download_url("https://a.invalid/b"),
            "https://a.invalid/b"
        );
    }

    fn source(pin: Option<char>) -> Source {
        Source {
            url: "https://a.invalid/b.yaml".into(),
            sha256: pin.map(|c| c.to_string().repeat(64)),
            bundle: "b/b.yaml".into(),
        }
    }

    fn with_lock(sum: char) -> SourceOptions {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("e.yaml");
        std::fs::write(
            dir.path().join("e.lock"),
            format!(
                "format: 1\nsources:\n  - {{addon: b, version: v1, url: https://a.invalid/b.yaml, sha256: {}}}\n",
                sum.to_string().repeat(64)
            ),
        )
        .unwrap();
        SourceOptions {
            lock: Some(Lock::read_for(&env).unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn the_definition_pin_wins_and_a_contradicting_lock_is_an_error() {
        let a = "a".repeat(64);
        assert_eq!(
            with_lock('a').expected("b v1", &source(None)).unwrap(),
            Some(a.clone())
        );
        assert_eq!(
            with_lock('a').expected("b v1", &source(Some('a'))).unwrap(),
            Some(a.clone())
        );
        assert_eq!(
            SourceOptions::default()
                .expected("b v1", &source(None))
                .unwrap(),
            None
        );
        let err = with_lock('c')
            .expected("b v1", &source(Some('a')))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("b v1: https://a.invalid/b.yaml: "), "{err}");
        assert!(err.contains(&"c".repeat(64)) && err.contains(&a), "{err}");
        assert!(err.contains("ephemera lock --env "), "{err}");
    }

    #[test]
    fn cache_dir_follows_xdg() {
        let opts = SourceOptions {
            cache_dir: Some(PathBuf::from("/c")),
            ..Default::default()
        };
        assert_eq!(opts.cache_dir(), Some(PathBuf::from("/c")));
    }
}
