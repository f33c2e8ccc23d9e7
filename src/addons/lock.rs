//! The add-on lock file: the sha256 of every upstream manifest an environment file's add-ons
//! install, written by `ephemera lock --env FILE` beside the file (`environments/pr-kind.yaml` →
//! `environments/pr-kind.lock`), like `Cargo.lock` for crates.
//!
//! Every download is checked against the add-on definition's pin or, for a source the definition
//! does not pin, against the lock. A lock entry that contradicts a definition's pin is an error
//! (the lock is stale or was edited): `lock` writes it again.
//!
//! The file is YAML, one entry per source, sorted by add-on and URL, so a change shows as a small
//! diff. A source is identified by its URL: versions are part of every upstream URL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AddonError;
use super::catalog::{Catalog, ResolvedAddon, is_sha256};
use super::sources::{SourceOptions, Unpinned, fetch};
use crate::templates::Renderer;

/// The lock file format this build reads and writes.
pub const FORMAT: u32 = 1;

/// The environment variable that turns `--locked` on (`1`, `true`, `yes`, `on`).
pub const LOCKED_ENV: &str = "EPHEMERA_LOCKED";

/// One locked source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockedSource {
    pub addon: String,
    pub version: String,
    pub url: String,
    pub sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    format: u32,
    #[serde(default)]
    sources: Vec<LockedSource>,
}

/// A lock file: where it is, the environment file it belongs to, and its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lock {
    /// The lock file (it may not exist).
    pub path: PathBuf,
    /// The environment file, as given (for messages naming the `lock` command).
    pub env_file: PathBuf,
    /// By URL.
    entries: BTreeMap<String, LockedSource>,
}

/// The lock file of an environment file: beside it, with the extension `.lock`.
pub fn path_for(env_file: &Path) -> PathBuf {
    env_file.with_extension("lock")
}

impl Lock {
    /// An empty lock for `env_file` (nothing locked yet).
    pub fn empty(env_file: &Path) -> Lock {
        Lock {
            path: path_for(env_file),
            env_file: env_file.to_path_buf(),
            entries: BTreeMap::new(),
        }
    }

    /// Reads the lock file beside `env_file`; a missing one is an empty lock.
    ///
    /// # Errors
    /// [`AddonError::Lock`] naming the file (and line and column) for a file that cannot be read,
    /// does not parse, has an unknown format, a sha256 that is not 64 lowercase hex digits, a URL
    /// that is not https, or the same URL twice.
    pub fn read_for(env_file: &Path) -> Result<Lock, AddonError> {
        let mut lock = Lock::empty(env_file);
        let file = lock.path.display().to_string();
        let text = match std::fs::read(&lock.path) {
            Ok(bytes) => String::from_utf8(bytes)
                .map_err(|_| lock_error(&file, None, "is not UTF-8 text"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(lock),
            Err(e) => return Err(lock_error(&file, None, &format!("cannot be read: {e}"))),
        };
        lock.entries = parse(&file, &text)?;
        Ok(lock)
    }

    /// The locked sha256 of `url`.
    pub fn sha256(&self, url: &str) -> Option<&str> {
        self.entries.get(url).map(|e| e.sha256.as_str())
    }

    /// The entries, sorted by add-on, then URL.
    pub fn entries(&self) -> Vec<&LockedSource> {
        let mut all: Vec<&LockedSource> = self.entries.values().collect();
        all.sort();
        all
    }

    /// The command that writes this lock, for messages.
    pub fn command(&self) -> String {
        format!("ephemera lock --env {}", self.env_file.display())
    }

    /// The file's text: a header comment, then the entries in a stable order.
    pub fn render(&self) -> String {
        let env = self.env_file.display();
        let mut out = format!(
            "# The add-on lock of {env}: the sha256 of every upstream manifest its add-ons install.\n\
             # Written by `{}`; commit it beside the environment file.\n\
             # `up` checks every download against these sums (and the add-on definitions' own pins);\n\
             # with --locked (or {LOCKED_ENV}=1) a source pinned in neither place is an error.\n\
             format: {FORMAT}\nsources:\n",
            self.command()
        );
        for e in self.entries() {
            // Every value is a JSON string, which is also a YAML double-quoted scalar.
            for (i, (key, value)) in [
                ("addon", &e.addon),
                ("version", &e.version),
                ("url", &e.url),
                ("sha256", &e.sha256),
            ]
            .into_iter()
            .enumerate()
            {
                let lead = if i == 0 { "  - " } else { "    " };
                let value = if value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._/:".contains(&b))
                {
                    value.clone()
                } else {
                    serde_json::Value::String(value.clone()).to_string()
                };
                out.push_str(&format!("{lead}{key}: {value}\n"));
            }
        }
        out
    }

    /// Writes the file atomically (a temporary file beside it, then a rename).
    ///
    /// # Errors
    /// [`AddonError::Lock`] naming the file, for I/O errors.
    pub fn write(&self) -> Result<(), AddonError> {
        let file = self.path.display().to_string();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = self
            .path
            .with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, self.render())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                lock_error(&file, None, &format!("cannot be written: {e}"))
            })
    }
}

fn lock_error(file: &str, pos: Option<(u64, u64)>, message: &str) -> AddonError {
    AddonError::Lock {
        file: file.into(),
        pos,
        message: message.into(),
    }
}

fn parse(file: &str, text: &str) -> Result<BTreeMap<String, LockedSource>, AddonError> {
    let doc: Document = serde_saphyr::from_str(text).map_err(|e| {
        let pos = e.location().map(|l| (l.line(), l.column()));
        let message = e.without_snippet().to_string();
        let first = message.lines().next().unwrap_or("invalid YAML");
        let first = match first.rfind(" at line ") {
            Some(i) if pos.is_some() => &first[..i],
            _ => first,
        };
        lock_error(file, pos, first)
    })?;
    if doc.format != FORMAT {
        return Err(lock_error(
            file,
            None,
            &format!(
                "format: {} is not the format this ephemera reads ({FORMAT}); write it again with `ephemera lock`",
                doc.format
            ),
        ));
    }
    let mut entries = BTreeMap::new();
    for (i, e) in doc.sources.into_iter().enumerate() {
        if !is_sha256(&e.sha256) {
            return Err(lock_error(
                file,
                None,
                &format!("sources[{i}].sha256: must be 64 lowercase hex digits"),
            ));
        }
        if !e.url.starts_with("https://") {
            return Err(lock_error(
                file,
                None,
                &format!("sources[{i}].url: must be an https URL"),
            ));
        }
        if entries.contains_key(&e.url) {
            return Err(lock_error(
                file,
                None,
                &format!("sources[{i}].url: {} appears twice", e.url),
            ));
        }
        entries.insert(e.url.clone(), e);
    }
    Ok(entries)
}

/// The add-ons an environment installs, resolved against the catalog for its provider.
///
/// # Errors
/// As [`Catalog::load`] and [`Catalog::resolve`].
pub fn addons_of(
    env: &crate::config::Environment,
    renderer: &Renderer,
) -> Result<Vec<ResolvedAddon>, AddonError> {
    Catalog::load(renderer)?.resolve(&env.addons, env.provider.kind())
}

/// What [`update`] did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockReport {
    pub path: PathBuf,
    /// Every source the environment needs.
    pub sources: usize,
    /// The sources no add-on definition pins: their sums come from the files themselves.
    pub locked_here: Vec<LockedSource>,
    /// The file's text differs from what was there before.
    pub changed: bool,
}

/// Resolves every source `addons` need and writes the lock beside `env_file`.
///
/// A source its definition pins is locked at that pin, without a download. Any other source is
/// read like `up` reads it (bundle, cache or download over HTTPS) and locked at its sha256; one
/// that the existing lock already names must still match it (an upstream file that changed is a
/// checksum mismatch: delete its entry, or the lock, to accept the new file). Entries for sources
/// the environment no longer needs are dropped.
///
/// # Errors
/// Source errors as [`fetch`]; [`AddonError::Lock`] for a lock file that cannot be read or written.
pub async fn update(
    env_file: &Path,
    addons: &[ResolvedAddon],
    opts: &SourceOptions,
) -> Result<LockReport, AddonError> {
    let old = Lock::read_for(env_file)?;
    let before = std::fs::read_to_string(&old.path).ok();
    let mut opts = opts.clone();
    opts.unpinned = Unpinned::Accept;
    let mut new = Lock::empty(env_file);
    let mut locked_here = Vec::new();
    for a in addons {
        let what = format!("{} {}", a.name, a.version);
        for s in &a.sources {
            let sha256 = match &s.sha256 {
                Some(pin) => pin.clone(),
                None => {
                    // Checked against what the old lock says, if it says anything.
                    opts.lock = Some(old.clone());
                    fetch(&what, s, &opts).await?.sha256
                }
            };
            let entry = LockedSource {
                addon: a.name.clone(),
                version: a.version.clone(),
                url: s.url.clone(),
                sha256,
            };
            if s.sha256.is_none() {
                locked_here.push(entry.clone());
            }
            new.entries.insert(s.url.clone(), entry);
        }
    }
    new.write()?;
    Ok(LockReport {
        path: new.path.clone(),
        sources: new.entries.len(),
        locked_here,
        changed: before.as_deref() != Some(new.render().as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(addon: &str, url: &str, sum: char) -> LockedSource {
        LockedSource {
            addon: addon.into(),
            version: "v1".into(),
            url: url.into(),
            sha256: sum.to_string().repeat(64),
        }
    }

    fn lock_with(entries: Vec<LockedSource>) -> Lock {
        let mut l = Lock::empty(Path::new("environments/pr-kind.yaml"));
        for e in entries {
            l.entries.insert(e.url.clone(), e);
        }
        l
    }

    #[test]
    fn the_lock_lives_beside_the_environment_file() {
        assert_eq!(
            path_for(Path::new("environments/pr-kind.yaml")),
            PathBuf::from("environments/pr-kind.lock")
        );
    }

    #[test]
    fn render_is_sorted_stable_and_parses_back() {
        let l = lock_with(vec![
            entry("zeta", "https://example.invalid/a.yaml", 'a'),
            entry("alpha", "https://example.invalid/z.yaml", 'b'),
            entry("alpha", "https://example.invalid/b.yaml#frag", 'c'),
            // All digits: still read back as a string.
            entry("beta", "https://example.invalid/c.yaml", '1'),
        ]);
        let text = l.render();
        assert!(
            text.starts_with("# The add-on lock of environments/pr-kind.yaml"),
            "{text}"
        );
        assert!(
            text.contains("`ephemera lock --env environments/pr-kind.yaml`"),
            "{text}"
        );
        let urls: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("url: "))
            .collect();
        assert_eq!(
            urls,
            [
                "\"https://example.invalid/b.yaml#frag\"",
                "https://example.invalid/z.yaml",
                "https://example.invalid/c.yaml",
                "https://example.invalid/a.yaml"
            ],
            "{text}"
        );
        let back = parse("x.lock", &text).unwrap();
        assert_eq!(back, l.entries);
        // The same entries inserted in another order render the same bytes.
        let mut rev: Vec<LockedSource> = l.entries.values().cloned().collect();
        rev.reverse();
        assert_eq!(lock_with(rev).render(), text);
    }

    #[test]
    fn bad_lock_files_name_the_file_and_field() {
        let cases = [
            ("format: 2\nsources: []\n", "x.lock: format: 2"),
            (
                "format: 1\nsources:\n  - {addon: a, version: v1, url: https://e.invalid/a, sha256: abc}\n",
                "x.lock: sources[0].sha256",
            ),
            (
                "format: 1\nsources:\n  - {addon: a, version: v1, url: http://e.invalid/a, sha256: '0000000000000000000000000000000000000000000000000000000000000000'}\n",
                "x.lock: sources[0].url",
            ),
            ("format: 1\nsourcez: []\n", "x.lock:2:1: unknown field"),
        ];
        for (text, want) in cases {
            let err = parse("x.lock", text).unwrap_err().to_string();
            assert!(err.starts_with(want), "want {want:?}, got {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn a_missing_lock_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let l = Lock::read_for(&dir.path().join("e.yaml")).unwrap();
        assert_eq!(l.entries().len(), 0);
        assert_eq!(l.path, dir.path().join("e.lock"));
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("e.yaml");
        let mut l = lock_with(vec![entry("a", "https://example.invalid/a.yaml", 'f')]);
        l.path = path_for(&env);
        l.env_file = env.clone();
        l.write().unwrap();
        let back = Lock::read_for(&env).unwrap();
        assert_eq!(back, l);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }
}
