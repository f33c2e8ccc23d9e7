//! A local cluster's state directory and the lock that serialises every change to it.
//!
//! `<root>/<name>/` holds `state.json` (ports, process IDs and start times), `record.json` (the
//! last record written, so `list` can report a stopped cluster), `pki/`, `etcd/`, `logs/`,
//! `kwok/` and `kubeconfig`. `<root>/.<name>.lock` is locked (flock) by whoever creates, repairs
//! or deletes the cluster.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::process::Proc;
use crate::providers::{ProviderError, write_private};
use crate::record::Record;

pub const STATE_FILE: &str = "state.json";
pub const RECORD_FILE: &str = "record.json";

/// The recorded facts of one cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub ports: Ports,
    /// Component name to process.
    #[serde(default)]
    pub processes: BTreeMap<String, Proc>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ports {
    pub etcd: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
}

/// A cluster's directory.
#[derive(Clone, Debug)]
pub struct ClusterDir {
    pub name: String,
    pub path: PathBuf,
}

impl ClusterDir {
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// The recorded state; `None` when there is none yet.
    ///
    /// # Errors
    /// An unreadable or damaged file, named.
    pub fn read_state(&self) -> Result<Option<State>, ProviderError> {
        read_json(&self.join(STATE_FILE))
    }

    /// Writes the state atomically.
    ///
    /// # Errors
    /// I/O errors, naming the file.
    pub fn write_state(&self, state: &State) -> Result<(), ProviderError> {
        write_json(&self.join(STATE_FILE), state)
    }

    /// The record copy kept for a stopped cluster.
    ///
    /// # Errors
    /// An unreadable or damaged file, named.
    pub fn read_record(&self) -> Result<Option<Record>, ProviderError> {
        read_json(&self.join(RECORD_FILE))
    }

    /// Keeps a copy of the record beside the cluster.
    ///
    /// # Errors
    /// I/O errors, naming the file.
    pub fn write_record(&self, record: &Record) -> Result<(), ProviderError> {
        write_json(&self.join(RECORD_FILE), record)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, ProviderError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ProviderError::Config(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ProviderError::io(format!("reading {}", path.display()), e)),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ProviderError> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| ProviderError::Config(format!("cannot serialise {}: {e}", path.display())))?;
    write_private(path, &text)
}

/// The directory holding every local cluster.
#[derive(Clone, Debug)]
pub struct Root {
    pub path: PathBuf,
}

/// An exclusive hold on one cluster name. Dropping it releases the lock.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Removes the lock file while still holding it, after the cluster's directory is gone.
    /// Waiters that opened the old file notice (its inode no longer matches the path) and retry.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

impl Root {
    pub fn cluster(&self, name: &str) -> ClusterDir {
        ClusterDir {
            name: name.to_string(),
            path: self.path.join(name),
        }
    }

    /// Names of every cluster directory, sorted.
    ///
    /// # Errors
    /// The root exists but cannot be read.
    pub fn names(&self) -> Result<Vec<String>, ProviderError> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(ProviderError::io(
                    format!("reading {}", self.path.display()),
                    e,
                ));
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| ProviderError::io(format!("reading {}", self.path.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.file_type().is_ok_and(|t| t.is_dir()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Takes the lock of cluster `name`, waiting for another holder to finish. Blocking: call it
    /// from `spawn_blocking`.
    ///
    /// # Errors
    /// The root cannot be created or the lock file cannot be opened or locked.
    pub fn lock(&self, name: &str) -> Result<Lock, ProviderError> {
        create_private_dir(&self.path)?;
        let path = self.path.join(format!(".{name}.lock"));
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| ProviderError::io(format!("opening {}", path.display()), e))?;
            file.lock()
                .map_err(|e| ProviderError::io(format!("locking {}", path.display()), e))?;
            // The holder before us may have removed the file (delete): then this lock guards
            // nothing, and the path must be opened again.
            let held = file
                .metadata()
                .map_err(|e| ProviderError::io(format!("reading {}", path.display()), e))?;
            match std::fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Lock { file, path });
                }
                _ => continue,
            }
        }
    }
}

/// Creates a directory (and parents) readable only by its owner.
///
/// # Errors
/// I/O errors, naming the directory.
pub fn create_private_dir(path: &Path) -> Result<(), ProviderError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| ProviderError::io(format!("creating {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_excludes_and_survives_removal() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root {
            path: dir.path().join("local"),
        };
        let first = root.lock("pr-1").unwrap();
        let root2 = root.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let l = root2.lock("pr-1").unwrap();
            tx.send(()).unwrap();
            l
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "the second lock must wait"
        );
        first.remove();
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the waiter gets the lock after removal");
        let second = waiter.join().unwrap();
        assert!(
            root.path.join(".pr-1.lock").exists(),
            "the waiter re-created the lock file it holds"
        );
        drop(second);
    }

    #[test]
    fn names_skip_lock_files_and_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root {
            path: dir.path().to_path_buf(),
        };
        std::fs::create_dir(dir.path().join("pr-2")).unwrap();
        std::fs::create_dir(dir.path().join("pr-1")).unwrap();
        std::fs::write(dir.path().join(".pr-1.lock"), "").unwrap();
        std::fs::write(dir.path().join("stray"), "").unwrap();
        assert_eq!(root.names().unwrap(), ["pr-1", "pr-2"]);
        assert!(
            Root {
                path: dir.path().join("none")
            }
            .names()
            .unwrap()
            .is_empty()
        );
    }
}
