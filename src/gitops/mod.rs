//! The release repository: commit a new image to the file Argo CD syncs from, with real git.
//!
//! [`commit`] is an ensure: it fetches the branch head, edits the one value in place
//! ([`edit::set`]), and commits and pushes only when the value changes. A push rejected because
//! someone else pushed first is retried on the new head, a bounded number of times.

pub mod edit;
pub mod git;

use std::path::Path;

pub use edit::Target;
pub use git::{Auth, Git};

/// Why a release commit failed. Messages never hold the token or URL credentials.
#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    #[error("cannot run git (is it installed?)")]
    Spawn { source: std::io::Error },
    #[error("`{command}` failed (exit {}): {stderr}", .status.map(|s| s.to_string()).unwrap_or_else(|| "by signal".into()))]
    Git {
        command: String,
        status: Option<i32>,
        stderr: String,
    },
    #[error(
        "`{command}`: the repository refused the credentials; check the token in the variable release.repository.tokenEnv names, and that it may read and push ({stderr})"
    )]
    Denied { command: String, stderr: String },
    #[error("{file} in the release repository: {source}")]
    Edit {
        file: String,
        source: edit::EditError,
    },
    #[error("{file} is not in the release repository at branch {branch}")]
    NoFile { file: String, branch: String },
    #[error("the push to {branch} was rejected {attempts} times: others keep pushing; try again")]
    Contended { branch: String, attempts: u32 },
    #[error("{context}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl GitOpsError {
    /// Edits that cannot apply are the configuration's fault (exit 2); the rest failed (1).
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            GitOpsError::Edit { .. } | GitOpsError::NoFile { .. } => crate::ExitStatus::Usage,
            _ => crate::ExitStatus::Failed,
        }
    }
}

/// Where and how to commit.
#[derive(Clone, Debug)]
pub struct Repository {
    /// The remote, `https://…` (no credentials in it).
    pub url: String,
    pub branch: String,
    /// The file to edit, relative to the repository root.
    pub file: String,
    pub target: Target,
    pub auth: Option<Auth>,
    /// Commit author and committer: name and e-mail.
    pub author: (String, String),
}

/// One release commit to make.
#[derive(Clone, Debug)]
pub struct Change {
    /// The value written at the target (a tag, a digest, or a whole reference).
    pub value: String,
    pub message: String,
    /// Push to this branch instead of `Repository::branch` (a pull request's head); it is
    /// (re)made from the head of `Repository::branch`, force-pushed.
    pub to_branch: Option<String>,
    /// How many rejected pushes to retry on a new head before giving up.
    pub attempts: u32,
}

/// What [`commit`] did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Committed {
    /// A new commit on the branch (or on `to_branch`).
    Pushed {
        commit: String,
        branch: String,
        /// Pushes tried, 1 unless someone else pushed first.
        attempts: u32,
    },
    /// The branch already has this value: no commit.
    AlreadyAt { commit: String, branch: String },
}

impl Committed {
    pub fn commit(&self) -> &str {
        match self {
            Committed::Pushed { commit, .. } | Committed::AlreadyAt { commit, .. } => commit,
        }
    }
}

/// Commits `change` to `repo` in a fresh clone under `workdir` (an empty directory).
///
/// # Errors
/// git failing (unreachable, 401, …), the edit not applying, or every push rejected.
pub async fn commit(
    repo: &Repository,
    change: &Change,
    workdir: &Path,
) -> Result<Committed, GitOpsError> {
    let git = Git::new(workdir, repo.auth.clone());
    git.run(&["init", "-q"]).await?;
    git.run(&["remote", "add", "origin", &repo.url]).await?;
    let (name, email) = &repo.author;
    let name_cfg = format!("user.name={name}");
    let email_cfg = format!("user.email={email}");
    let tracking = format!("refs/remotes/origin/{}", repo.branch);
    let fetch_spec = format!("+refs/heads/{}:{tracking}", repo.branch);
    let dest = change.to_branch.as_deref().unwrap_or(&repo.branch);
    let push_spec = format!("HEAD:refs/heads/{dest}");
    let attempts = change.attempts.max(1);
    for attempt in 1..=attempts {
        git.run(&["fetch", "-q", "--depth=1", "origin", &fetch_spec])
            .await?;
        git.run(&["checkout", "-q", "--force", "-B", "release", &tracking])
            .await?;
        let head = rev(&git, "HEAD").await?;
        let path = workdir.join(&repo.file);
        let text = std::fs::read_to_string(&path).map_err(|_| GitOpsError::NoFile {
            file: repo.file.clone(),
            branch: repo.branch.clone(),
        })?;
        let edited =
            edit::set(&text, &repo.target, &change.value).map_err(|source| GitOpsError::Edit {
                file: repo.file.clone(),
                source,
            })?;
        if !edited.changed {
            tracing::info!(branch = %repo.branch, commit = %head, "the release repository already has {}", change.value);
            return Ok(Committed::AlreadyAt {
                commit: head,
                branch: repo.branch.clone(),
            });
        }
        std::fs::write(&path, edited.text).map_err(|source| GitOpsError::Io {
            context: format!("writing {} in the clone", repo.file),
            source,
        })?;
        git.run(&["add", "--", &repo.file]).await?;
        git.run(&[
            "-c",
            &name_cfg,
            "-c",
            &email_cfg,
            "commit",
            "-q",
            "-m",
            &change.message,
        ])
        .await?;
        let commit = rev(&git, "HEAD").await?;
        let pushed = match change.to_branch {
            Some(_) => {
                git.run(&["push", "-q", "--force", "origin", &push_spec])
                    .await
            }
            None => git.run(&["push", "-q", "origin", &push_spec]).await,
        };
        match pushed {
            Ok(_) => {
                tracing::info!(branch = %dest, %commit, attempt, "pushed the release commit");
                return Ok(Committed::Pushed {
                    commit,
                    branch: dest.to_string(),
                    attempts: attempt,
                });
            }
            Err(GitOpsError::Git { stderr, .. }) if is_rejected(&stderr) => {
                tracing::warn!(branch = %dest, attempt, "the push was rejected (someone else pushed first); retrying on the new head");
            }
            Err(e) => return Err(e),
        }
    }
    Err(GitOpsError::Contended {
        branch: dest.to_string(),
        attempts,
    })
}

async fn rev(git: &Git, what: &str) -> Result<String, GitOpsError> {
    Ok(git
        .run(&["rev-parse", what])
        .await?
        .stdout
        .trim()
        .to_string())
}

/// Whether git's stderr says the remote refused a push because its branch moved.
fn is_rejected(stderr: &str) -> bool {
    // The error keeps the end of git's output, often only its hints: match those as well.
    [
        "[rejected]",
        "non-fast-forward",
        "fetch first",
        "failed to update ref",
        "cannot lock ref",
        "stale info",
        "Updates were rejected",
        "not have locally",
        "integrate the remote changes",
    ]
    .iter()
    .any(|s| stderr.contains(s))
}

/// Whether `descendant` (a commit Argo CD reports) contains `ancestor` (ours): it is `ancestor`
/// or a later commit of `repo.branch`. Uses the clone [`commit`] left in `workdir`, deepened as
/// far as needed; a commit the branch does not hold is no descendant.
///
/// # Errors
/// git failing to fetch.
pub async fn contains(
    repo: &Repository,
    workdir: &Path,
    ancestor: &str,
    descendant: &str,
) -> Result<bool, GitOpsError> {
    if ancestor == descendant {
        return Ok(true);
    }
    let git = Git::new(workdir, repo.auth.clone());
    let tracking = format!("refs/remotes/origin/{}", repo.branch);
    let fetch_spec = format!("+refs/heads/{}:{tracking}", repo.branch);
    let shallow = workdir.join(".git/shallow").exists();
    let mut args = vec!["fetch", "-q"];
    if shallow {
        args.push("--unshallow");
    }
    args.extend(["origin", fetch_spec.as_str()]);
    git.run(&args).await?;
    let known = |c: &str| format!("{c}^{{commit}}");
    if git
        .run(&["cat-file", "-e", &known(descendant)])
        .await
        .is_err()
    {
        return Ok(false);
    }
    Ok(git
        .run(&["merge-base", "--is-ancestor", ancestor, descendant])
        .await
        .is_ok())
}
