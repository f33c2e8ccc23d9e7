//! What this machine offers a provider or the Azure client: environment variables and executables
//! on `PATH`.
//!
//! Providers check their tools (and `azure` reads its credentials) through a [`Probe`] so that
//! `doctor` can report the same findings the providers act on, and so tests can describe a
//! machine (a `PATH`, a set of variables) without changing the process environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Read-only questions about the machine. Nothing here touches the network.
pub trait Probe {
    /// An environment variable, `None` when unset or not UTF-8.
    fn var(&self, key: &str) -> Option<String>;

    /// Whether `path` is an executable regular file.
    fn is_executable(&self, path: &Path) -> bool;

    /// A variable that is set and not empty.
    fn var_nonempty(&self, key: &str) -> Option<String> {
        self.var(key).filter(|v| !v.is_empty())
    }

    /// The first executable named `tool` in the directories of `PATH`.
    fn which(&self, tool: &str) -> Option<PathBuf> {
        let path = self.var("PATH")?;
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(tool))
            .find(|p| self.is_executable(p))
    }

    /// The user's home directory, from `HOME`.
    fn home(&self) -> Option<PathBuf> {
        self.var_nonempty("HOME").map(PathBuf::from)
    }

    /// An XDG base directory: `$<var>` when set to an absolute path, else `$HOME/<fallback>`.
    fn xdg_dir(&self, var: &str, fallback: &str) -> Option<PathBuf> {
        match self.var_nonempty(var) {
            Some(v) if Path::new(&v).is_absolute() => Some(PathBuf::from(v)),
            _ => self.home().map(|h| h.join(fallback)),
        }
    }
}

/// The real machine: the process environment and the file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemProbe;

impl Probe for SystemProbe {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }

    fn is_executable(&self, path: &Path) -> bool {
        is_executable_file(path)
    }
}

/// A described machine, for tests: the variables given, and executables that exist either in
/// `executables` or, when `real_files` is set, on the real file system.
#[derive(Clone, Debug, Default)]
pub struct FakeProbe {
    pub vars: BTreeMap<String, String>,
    pub executables: Vec<PathBuf>,
    pub real_files: bool,
}

impl FakeProbe {
    /// A machine with these variables and no executables.
    pub fn new<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        FakeProbe {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            executables: Vec::new(),
            real_files: false,
        }
    }

    /// Adds an executable at `path`.
    pub fn with_executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.executables.push(path.into());
        self
    }
}

impl Probe for FakeProbe {
    fn var(&self, key: &str) -> Option<String> {
        self.vars.get(key).cloned()
    }

    fn is_executable(&self, path: &Path) -> bool {
        self.executables.iter().any(|p| p == path) || (self.real_files && is_executable_file(path))
    }
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_takes_the_first_directory_that_has_the_tool() {
        let p = FakeProbe::new([("PATH", "/a::/b:/c")])
            .with_executable("/b/kind")
            .with_executable("/c/kind");
        assert_eq!(p.which("kind"), Some(PathBuf::from("/b/kind")));
        assert_eq!(p.which("docker"), None);
    }

    #[test]
    fn xdg_dirs_ignore_relative_values() {
        let p = FakeProbe::new([("HOME", "/h"), ("XDG_STATE_HOME", "rel")]);
        assert_eq!(
            p.xdg_dir("XDG_STATE_HOME", ".local/state"),
            Some(PathBuf::from("/h/.local/state"))
        );
        let p = FakeProbe::new([("HOME", "/h"), ("XDG_STATE_HOME", "/s")]);
        assert_eq!(
            p.xdg_dir("XDG_STATE_HOME", ".local/state"),
            Some(PathBuf::from("/s"))
        );
        assert_eq!(
            FakeProbe::new([]).xdg_dir("XDG_STATE_HOME", ".local/state"),
            None
        );
    }
}
