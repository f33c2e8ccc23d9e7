//! Running the kind CLI: argument vectors only (never a shell), output captured, and kind's own
//! error texts recognised where they mean "already exists" or "not found".

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::providers::ProviderError;

/// kind's answer to `create cluster` for a name that is taken.
pub const ALREADY_EXISTS: &str = "node(s) already exist for a cluster with the name";
/// kind's answer to `get kubeconfig` for a cluster that does not exist.
pub const NO_CONTROL_PLANE: &str = "could not locate any control plane nodes for cluster named";

/// The outcome of one kind call that exited non-zero.
#[derive(Debug)]
pub struct Failure {
    pub command: String,
    pub status: String,
    /// stderr (and stdout, unless it may hold a secret), for the error.
    pub output: String,
}

impl Failure {
    pub fn contains(&self, text: &str) -> bool {
        self.output.contains(text)
    }

    pub fn into_error(self) -> ProviderError {
        ProviderError::Command {
            command: self.command,
            status: self.status,
            output: self.output,
        }
    }
}

/// The kind CLI at a known path.
#[derive(Clone, Debug)]
pub struct Kind {
    pub path: PathBuf,
}

/// A command line for messages: each argument quoted when it holds anything but plain characters.
pub fn display(program: &str, args: &[String]) -> String {
    let quote = |a: &str| {
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
        {
            a.to_string()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    std::iter::once(program.to_string())
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Kind {
    /// Runs `kind ARGS` and returns its stdout. `secret_stdout` keeps stdout out of any error
    /// (for `get kubeconfig`).
    ///
    /// # Errors
    /// `Err(Ok(failure))` when kind ran and exited non-zero; `Err(Err(e))` when it could not be
    /// started at all.
    pub async fn run(
        &self,
        args: &[String],
        secret_stdout: bool,
    ) -> Result<String, Result<Failure, ProviderError>> {
        let command = display("kind", args);
        tracing::debug!("running {command}");
        let out = tokio::process::Command::new(&self.path)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| {
                Err(ProviderError::io(
                    format!("running {command} ({})", self.path.display()),
                    e,
                ))
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let mut output = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
        if !secret_stdout && !stdout.trim().is_empty() {
            output = format!("{}\n{output}", stdout.trim_end());
        }
        let status = match out.status.code() {
            Some(code) => format!("exit status {code}"),
            None => "a signal".to_string(),
        };
        Err(Ok(Failure {
            command,
            status,
            output,
        }))
    }

    /// Like [`Kind::run`], with every failure as a [`ProviderError`].
    ///
    /// # Errors
    /// [`ProviderError::Command`] with the command line and its output.
    pub async fn ok(&self, args: &[String]) -> Result<String, ProviderError> {
        self.run(args, false)
            .await
            .map_err(|e| e.map_or_else(|e| e, Failure::into_error))
    }

    /// `kind get clusters`: every cluster name.
    ///
    /// # Errors
    /// kind fails (for example the container runtime is down).
    pub async fn clusters(&self) -> Result<Vec<String>, ProviderError> {
        let out = self.ok(&args(["get", "clusters"])).await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// `kind get kubeconfig --name NAME`; `Ok(None)` when kind says there is no such cluster.
    ///
    /// # Errors
    /// Any other failure, with stderr only (stdout would be the credentials).
    pub async fn kubeconfig(&self, cluster: &str) -> Result<Option<String>, ProviderError> {
        match self
            .run(&args(["get", "kubeconfig", "--name", cluster]), true)
            .await
        {
            Ok(text) => Ok(Some(text)),
            Err(Ok(f)) if f.contains(NO_CONTROL_PLANE) => Ok(None),
            Err(e) => Err(e.map_or_else(|e| e, Failure::into_error)),
        }
    }

    /// `kind load docker-image --name NAME IMAGE...`: copies images from the local container
    /// engine into the cluster's nodes; kind skips those a node already has.
    ///
    /// # Errors
    /// kind fails (an image missing locally, the cluster gone).
    pub async fn load(&self, cluster: &str, images: &[String]) -> Result<(), ProviderError> {
        if images.is_empty() {
            return Ok(());
        }
        let mut argv = args(["load", "docker-image", "--name", cluster]);
        argv.extend(images.iter().cloned());
        self.ok(&argv).await.map(|_| ())
    }

    /// `kind delete cluster --name NAME`, which succeeds for a missing cluster too.
    ///
    /// # Errors
    /// kind fails.
    pub async fn delete(&self, cluster: &str) -> Result<(), ProviderError> {
        self.ok(&args(["delete", "cluster", "--name", cluster]))
            .await
            .map(|_| ())
    }
}

/// Owned argument strings.
pub fn args<const N: usize>(a: [&str; N]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// An argument that is a path.
pub fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let a = vec![
            "--name".to_string(),
            "ephemera-pr-1".into(),
            "a b".into(),
            "it's".into(),
            String::new(),
        ];
        assert_eq!(
            display("kind", &a),
            r"kind --name ephemera-pr-1 'a b' 'it'\''s' ''"
        );
    }
}
