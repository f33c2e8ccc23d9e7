//! The real `git` binary, run with arguments (never through a shell), over HTTPS with a token.
//!
//! The token travels only in the child's environment, as an `http.extraHeader` set through
//! `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/`GIT_CONFIG_VALUE_0`: never in argv, never in the remote
//! URL, never in a log line. Anything git prints that reaches an error is scrubbed of the token
//! and of credentials in URLs first.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;

use super::GitOpsError;

/// Credentials for the release repository: basic auth with a user name and a token, which
/// GitHub (`x-access-token`), Azure Repos (any name) and GitLab (`oauth2`) all accept.
#[derive(Clone)]
pub struct Auth {
    pub username: String,
    pub token: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A working directory and how to reach its remote.
#[derive(Debug)]
pub struct Git {
    dir: PathBuf,
    auth: Option<Auth>,
}

/// What one git command printed.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

impl Git {
    /// Runs in `dir` (which must exist), authenticating with `auth` when given.
    pub fn new(dir: &Path, auth: Option<Auth>) -> Self {
        Git {
            dir: dir.to_path_buf(),
            auth,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `git <args>` and returns its output; a non-zero exit is [`GitOpsError::Git`] with
    /// the scrubbed stderr.
    ///
    /// # Errors
    /// git missing, or git failing.
    pub async fn run(&self, args: &[&str]) -> Result<Output, GitOpsError> {
        let out = self
            .command(args)
            .output()
            .await
            .map_err(|source| GitOpsError::Spawn { source })?;
        let output = Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: self.scrub(&String::from_utf8_lossy(&out.stderr)),
        };
        tracing::trace!(args = ?args, status = ?out.status.code(), stderr = %output.stderr, "git");
        let denied = [
            "could not read Username",
            "Authentication failed",
            "returned error: 401",
            "returned error: 403",
        ];
        if out.status.success() {
            Ok(output)
        } else if denied.iter().any(|d| output.stderr.contains(d)) {
            Err(GitOpsError::Denied {
                command: self.scrub(&format!("git {}", args.join(" "))),
                stderr: last_lines(&output.stderr),
            })
        } else {
            Err(GitOpsError::Git {
                command: self.scrub(&format!("git {}", args.join(" "))),
                status: out.status.code(),
                stderr: last_lines(&output.stderr),
            })
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("git");
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Never ask a person: a missing or wrong token is an error, not a prompt.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "")
            .env("LC_ALL", "C")
            // The machine's system config must not add credential helpers or rewrites.
            .env("GIT_CONFIG_NOSYSTEM", "1");
        for var in [
            "GIT_TRACE",
            "GIT_TRACE_CURL",
            "GIT_CURL_VERBOSE",
            "GIT_TRACE_PACKET",
        ] {
            cmd.env_remove(var);
        }
        if let Some(auth) = &self.auth {
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", auth.username, auth.token));
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        cmd
    }

    /// `text` with the token (raw and base64 forms) and URL credentials replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut s = scrub_urls(text);
        if let Some(auth) = &self.auth
            && !auth.token.is_empty()
        {
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", auth.username, auth.token));
            s = s.replace(&basic, "***").replace(&auth.token, "***");
        }
        s
    }
}

/// `scheme://user:password@host` → `scheme://***@host`, wherever it appears in `text`.
pub fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..authority_end]);
            }
            None => out.push_str(&tail[..authority_end]),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// The end of git's stderr, where it says what went wrong, on one line.
fn last_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(4);
    lines[start..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_scrubbed() {
        assert_eq!(
            scrub_urls("fatal: unable to access 'https://bot:s3cret@example.com/a.git/': 401"),
            "fatal: unable to access 'https://***@example.com/a.git/': 401"
        );
        assert_eq!(
            scrub_urls("https://example.com/a.git"),
            "https://example.com/a.git"
        );
    }

    #[test]
    fn the_token_is_scrubbed_in_every_form() {
        let git = Git::new(
            Path::new("."),
            Some(Auth {
                username: "u".into(),
                token: "tok123".into(),
            }),
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("u:tok123");
        assert_eq!(
            git.scrub(&format!("a tok123 b Basic {basic}")),
            "a *** b Basic ***"
        );
        assert!(!format!("{git:?}").contains("tok123"));
    }
}
