//! `ephemera release`: commit a new image to the release repository, wait for Argo CD to sync
//! that commit, and for the Rollout to reach its first canary pause (or Healthy).
//!
//! Argo CD, not ephemera, applies the manifests: ephemera only writes git and watches the
//! cluster through the environment's kubeconfig.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::app::{AppError, Goal, RolloutStatus};
use crate::config::{Environment, ProviderConfig, Release, ReleaseMode, ReleaseValue};
use crate::gitops::{self, Auth, Committed, GitOpsError, Target};
use crate::kube::KubeError;
use crate::names::ImageRef;
use crate::providers::ProviderError;

/// Why a release failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The environment file or the process environment cannot make this release (exit 2).
    #[error("{0}")]
    Config(String),
    #[error("committing to the release repository")]
    Git(#[source] GitOpsError),
    #[error("opening the pull request")]
    PullRequest(#[source] crate::github::GitHubError),
    #[error("reaching the cluster")]
    Cluster(#[source] ProviderError),
    #[error("waiting for Argo CD Application {object} to sync {commit}")]
    Sync {
        object: String,
        commit: String,
        #[source]
        source: Box<KubeError>,
    },
    #[error("waiting for the Rollout")]
    Rollout(#[source] AppError),
}

impl ReleaseError {
    pub fn exit_status(&self) -> crate::ExitStatus {
        match self {
            ReleaseError::Config(_) => crate::ExitStatus::Usage,
            ReleaseError::Git(e) => e.exit_status(),
            ReleaseError::PullRequest(_) => crate::ExitStatus::Failed,
            ReleaseError::Cluster(e) => e.exit_status(),
            ReleaseError::Sync { source, .. } => source.exit_status(),
            ReleaseError::Rollout(e) => e.exit_status(),
        }
    }
}

/// What to release.
#[derive(Clone, Debug)]
pub struct Request {
    pub image: ImageRef,
    /// The source repository's commit the image was built from, for the commit message.
    pub source_commit: Option<String>,
    /// Commit only: do not wait for Argo CD and the Rollout.
    pub no_wait: bool,
    /// How long to wait for the sync and the Rollout together.
    pub timeout: Duration,
    /// How many rejected pushes to retry on the new head.
    pub attempts: u32,
}

/// The canary as `release` reports it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    pub rollout: String,
    pub phase: String,
    /// The weight the current step sets, percent.
    pub weight: u32,
    pub actual_weight: u32,
    pub stable_images: Vec<String>,
    pub canary_images: Vec<String>,
    pub ready_replicas: i64,
    pub desired_replicas: i64,
}

impl Canary {
    fn from_status(s: &RolloutStatus) -> Self {
        let images = |r: &Option<crate::app::rollout::Revision>| {
            r.as_ref().map(|r| r.images.clone()).unwrap_or_default()
        };
        Canary {
            rollout: format!("{}/{}", s.namespace, s.name),
            phase: format!("{:?}", s.phase),
            weight: s.set_weight,
            actual_weight: s.actual_weight,
            stable_images: images(&s.stable),
            canary_images: images(&s.canary),
            ready_replicas: s.replicas.ready,
            desired_replicas: s.replicas.desired,
        }
    }
}

/// What `release` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub image: String,
    pub repository: String,
    pub file: String,
    pub git: Committed,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// The commit the Application was synced to: ours, or a later release's that contains it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.git {
            Committed::Pushed {
                commit,
                branch,
                attempts,
            } => {
                let tries = if *attempts > 1 {
                    format!(" (after {} rejected pushes)", attempts - 1)
                } else {
                    String::new()
                };
                writeln!(
                    f,
                    "committed {} to {} {branch}: {commit}{tries}",
                    self.image, self.repository
                )?;
            }
            Committed::AlreadyAt { commit, branch } => {
                writeln!(
                    f,
                    "{} {branch} already has {} at {commit}: no commit",
                    self.repository, self.image
                )?;
            }
        }
        if let Some(pr) = &self.pull_request {
            writeln!(f, "pull request: {pr}")?;
        }
        if let (Some(app), Some(rev)) = (&self.application, &self.synced_revision) {
            if rev == self.git.commit() {
                writeln!(f, "application {app}: Synced to {rev}")?;
            } else {
                writeln!(
                    f,
                    "application {app}: Synced to {rev}, a later commit that contains this release"
                )?;
            }
        }
        if let Some(c) = &self.canary {
            writeln!(
                f,
                "rollout {}: {} at weight {}% (actual {}%)",
                c.rollout, c.phase, c.weight, c.actual_weight
            )?;
            writeln!(f, "stable  {}", list(&c.stable_images))?;
            writeln!(f, "canary  {}", list(&c.canary_images))?;
            write!(
                f,
                "ready   {}/{} replicas",
                c.ready_replicas, c.desired_replicas
            )?;
        }
        Ok(())
    }
}

fn list(images: &[String]) -> String {
    if images.is_empty() {
        "-".into()
    } else {
        images.join(", ")
    }
}

/// The `release:` block, or a usage error naming it.
///
/// # Errors
/// [`ReleaseError::Config`] when the file has no `release:` block.
pub fn settings(env: &Environment) -> Result<&Release, ReleaseError> {
    env.release
        .as_ref()
        .ok_or_else(|| ReleaseError::Config("release: missing; `ephemera release` needs a release: block (repository, file, key, argocd)".into()))
}

/// The value written to the release file for `image`, and where.
///
/// # Errors
/// [`ReleaseError::Config`] when the image lacks what the file wants (a tag or digest).
pub fn target_and_value(r: &Release, image: &ImageRef) -> Result<(Target, String), ReleaseError> {
    let need_tag = || {
        ReleaseError::Config(format!(
            "--image: {} has neither a tag nor a digest, and release.{} takes one",
            image.reference,
            if r.key.is_some() {
                "key"
            } else {
                "kustomizeImage"
            }
        ))
    };
    match (&r.key, &r.kustomize_image) {
        (Some(key), _) => {
            let value = match r.value {
                ReleaseValue::Image => image.reference.clone(),
                ReleaseValue::Tag => image
                    .digest
                    .clone()
                    .or_else(|| image.tag.clone())
                    .ok_or_else(need_tag)?,
            };
            Ok((
                Target::Key(key.split('.').map(str::to_string).collect()),
                value,
            ))
        }
        (None, Some(name)) => {
            let (digest, value) = match (&image.digest, &image.tag) {
                (Some(d), _) => (true, d.clone()),
                (None, Some(t)) => (false, t.clone()),
                (None, None) => return Err(need_tag()),
            };
            Ok((
                Target::KustomizeImage {
                    name: name.clone(),
                    digest,
                },
                value,
            ))
        }
        (None, None) => Err(ReleaseError::Config(
            "release: give key or kustomizeImage".into(),
        )),
    }
}

/// The commit message: the image on the first line, the source commit below.
pub fn message(image: &ImageRef, source_commit: Option<&str>) -> String {
    let mut m = format!("Release {}\n\n", image.reference);
    if let Some(c) = source_commit {
        m.push_str(&format!("Source commit: {c}\n"));
    }
    m.push_str(&format!("Committed by ephemera {}.\n", crate::VERSION));
    m
}

/// The token from the variable `tokenEnv` names, read now (tokens rotate).
///
/// # Errors
/// [`ReleaseError::Config`] naming the variable when it is unset or empty.
pub fn auth(
    r: &Release,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Auth>, ReleaseError> {
    let Some(name) = &r.repository.token_env else {
        return Ok(None);
    };
    match var(name)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
    {
        Some(token) => Ok(Some(Auth {
            username: r.repository.username.clone(),
            token,
        })),
        None => Err(ReleaseError::Config(format!(
            "release.repository.tokenEnv: the variable {name} is not set (it holds the release repository's token)"
        ))),
    }
}

/// The namespace of the app's Rollout on this environment.
pub fn app_namespace(env: &Environment) -> String {
    match &env.provider {
        ProviderConfig::Existing(e) => e.namespace.clone().unwrap_or_else(|| env.app.name.clone()),
        _ => env.app.name.clone(),
    }
}

/// The repository as [`gitops::commit`] takes it.
///
/// # Errors
/// As [`target_and_value`] and [`auth`].
pub fn repository(
    r: &Release,
    image: &ImageRef,
) -> Result<(gitops::Repository, String), ReleaseError> {
    let (target, value) = target_and_value(r, image)?;
    let author = r
        .author
        .as_ref()
        .map(|a| (a.name.clone(), a.email.clone()))
        .unwrap_or_else(|| {
            (
                "ephemera".to_string(),
                "ephemera@users.noreply.github.com".to_string(),
            )
        });
    let repo = gitops::Repository {
        url: r.repository.url.clone(),
        branch: r.repository.branch.clone(),
        file: r.file.clone(),
        target,
        auth: auth(r, |k| std::env::var(k).ok())?,
        author,
    };
    Ok((repo, value))
}

/// A scratch directory for the release clone, removed when dropped.
pub struct Workdir(PathBuf);

impl Workdir {
    /// # Errors
    /// The temporary directory cannot be made.
    pub fn new() -> Result<Self, ReleaseError> {
        let dir = std::env::temp_dir().join(format!("ephemera-release-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| {
            ReleaseError::Git(GitOpsError::Io {
                context: format!(
                    "making a scratch directory in {}",
                    std::env::temp_dir().display()
                ),
                source: e,
            })
        })?;
        Ok(Workdir(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Commits the image (step 1 of `release`) in a clone under `workdir`; with
/// `mode: pullRequest`, opens (or finds) the pull request too.
///
/// # Errors
/// As [`gitops::commit`], and the configuration errors of [`repository`].
pub async fn commit(
    env: &Environment,
    req: &Request,
    workdir: &Path,
) -> Result<(Committed, Option<String>), ReleaseError> {
    let r = settings(env)?;
    let (repo, value) = repository(r, &req.image)?;
    let to_branch = (r.mode == ReleaseMode::PullRequest).then(|| pr_branch(&req.image));
    let change = gitops::Change {
        value,
        message: message(&req.image, req.source_commit.as_deref()),
        to_branch: to_branch.clone(),
        attempts: req.attempts,
    };
    let committed = gitops::commit(&repo, &change, workdir)
        .await
        .map_err(ReleaseError::Git)?;
    let pr = match (&committed, to_branch) {
        (Committed::Pushed { branch, .. }, Some(_)) => {
            let title = format!("Release {}", req.image.reference);
            let body = message(&req.image, req.source_commit.as_deref());
            let token = repo.auth.as_ref().map(|a| a.token.clone());
            let head = crate::github::pulls::ensure(
                env.github.as_ref(),
                &r.repository.url,
                token,
                branch,
                &r.repository.branch,
                &title,
                &body,
            );
            Some(head.await.map_err(ReleaseError::PullRequest)?)
        }
        _ => None,
    };
    Ok((committed, pr))
}

/// The branch a pull-request release pushes: `ephemera/release-<tag or digest>`, made safe.
fn pr_branch(image: &ImageRef) -> String {
    let v = image
        .digest
        .as_deref()
        .or(image.tag.as_deref())
        .unwrap_or("latest");
    let safe: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("ephemera/release-{}", safe.trim_matches(['.', '-']))
}

/// What the Application was synced to when the wait ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synced {
    pub application: String,
    /// The commit Argo CD synced: ours, or a later one that contains it (another release
    /// pushed after ours, and Argo CD went straight to it).
    pub revision: String,
}

/// Waits for the Application to be Synced to `commit` or to a later commit of the branch that
/// contains it (step 2a). The clone in `workdir` tells which commits contain ours.
///
/// # Errors
/// [`ReleaseError::Sync`]: a timeout (exit 3) names the Application and its last state; a failed
/// sync of the commit, or the Application deleted.
pub async fn wait_synced(
    client: &::kube::Client,
    env: &Environment,
    image: &ImageRef,
    commit: &str,
    workdir: &Path,
    timeout: Duration,
) -> Result<Synced, ReleaseError> {
    let r = settings(env)?;
    let (repo, _) = repository(r, image)?;
    let started = Instant::now();
    let object = format!("{}/{}", r.argocd.namespace, r.argocd.application);
    let sync_error = |source: KubeError| ReleaseError::Sync {
        object: object.clone(),
        commit: commit.into(),
        source: Box::new(source),
    };
    tracing::info!(application = %object, %commit, "waiting for Argo CD to sync the commit");
    // Revisions seen synced that do not contain our commit (older ones): wait past them.
    let mut older = std::collections::BTreeSet::new();
    loop {
        let condition =
            crate::kube::wait::application_synced_past(commit.to_string(), older.clone());
        let left = timeout.saturating_sub(started.elapsed());
        let seen = crate::kube::wait::wait_object(
            client,
            &application_resource(),
            Some(&r.argocd.namespace),
            &r.argocd.application,
            &condition,
            left,
        )
        .await
        .map_err(sync_error)?
        .ok_or_else(|| {
            sync_error(KubeError::Failed {
                object: format!("Application {object}"),
                reason: "it was deleted".into(),
            })
        })?;
        let revision = crate::kube::manifest::to_value(&seen)
            .pointer("/status/sync/revision")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        if revision == commit {
            return Ok(Synced {
                application: object,
                revision,
            });
        }
        if gitops::contains(&repo, workdir, commit, &revision)
            .await
            .map_err(ReleaseError::Git)?
        {
            tracing::info!(application = %object, %revision, "Argo CD synced a later commit that contains ours");
            return Ok(Synced {
                application: object,
                revision,
            });
        }
        older.insert(revision);
    }
}

/// Waits for the Rollout to reach its first pause, or Healthy (step 2b), by `deadline`.
///
/// # Errors
/// [`ReleaseError::Rollout`]: a timeout (exit 3) names the Rollout and its last state.
pub async fn wait_rollout(
    client: &::kube::Client,
    env: &Environment,
    deadline: Instant,
) -> Result<Canary, ReleaseError> {
    let ns = app_namespace(env);
    tracing::info!(rollout = %format!("{ns}/{}", env.app.name), "waiting for the Rollout's first pause (or Healthy)");
    let status = crate::app::wait_for(client, &ns, &env.app.name, Goal::Settled, deadline)
        .await
        .map_err(ReleaseError::Rollout)?;
    Ok(Canary::from_status(&status))
}

/// Argo CD's Application resource.
pub fn application_resource() -> ::kube::api::ApiResource {
    ::kube::api::ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Application".into(),
        plural: "applications".into(),
    }
}

/// Whether `path` names the environment file of a long-lived cluster, for the commands that
/// refuse one (`down`, `gc`): the error names the file and the field.
///
/// # Errors
/// The file's own errors.
pub fn refuse_existing(path: &Path, command: &str) -> Result<(), crate::config::ConfigError> {
    let loaded = crate::config::load_with_source(path)?;
    if matches!(loaded.env.provider, ProviderConfig::Existing(_)) {
        return Err(loaded.source.error(
            "provider.existing",
            format!("a long-lived cluster that ephemera never creates or deletes; `{command}` does not apply to it"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(extra: &str) -> Release {
        let yaml = format!(
            "repository: {{url: https://example.com/acme/deploy.git, tokenEnv: RELEASE_TOKEN}}\nfile: values.yaml\nargocd: {{application: cats}}\n{extra}"
        );
        serde_saphyr::from_str(&yaml).unwrap()
    }

    fn image(s: &str) -> ImageRef {
        ImageRef::parse("--image", s).unwrap()
    }

    #[test]
    fn a_helm_key_gets_the_tag_or_the_whole_reference() {
        let r = release("key: image.tag\n");
        let (t, v) = target_and_value(&r, &image("ghcr.io/acme/cats:sha-1")).unwrap();
        assert_eq!(t, Target::Key(vec!["image".into(), "tag".into()]));
        assert_eq!(v, "sha-1");
        let r = release("key: image\nvalue: image\n");
        assert_eq!(
            target_and_value(&r, &image("ghcr.io/acme/cats:sha-1"))
                .unwrap()
                .1,
            "ghcr.io/acme/cats:sha-1"
        );
    }

    #[test]
    fn a_kustomize_entry_gets_the_tag_or_the_digest() {
        let r = release("kustomizeImage: ghcr.io/acme/cats\n");
        let digest = format!("sha256:{}", "a".repeat(64));
        let (t, v) = target_and_value(&r, &image(&format!("ghcr.io/acme/cats@{digest}"))).unwrap();
        assert_eq!(
            t,
            Target::KustomizeImage {
                name: "ghcr.io/acme/cats".into(),
                digest: true
            }
        );
        assert_eq!(v, digest);
    }

    #[test]
    fn a_missing_token_names_its_variable_and_never_a_value() {
        let r = release("key: image.tag\n");
        let e = auth(&r, |_| None).unwrap_err();
        assert!(e.to_string().contains("RELEASE_TOKEN"), "{e}");
        assert_eq!(e.exit_status(), crate::ExitStatus::Usage);
        let a = auth(&r, |_| Some("t0k".into())).unwrap().unwrap();
        assert_eq!(
            (a.username.as_str(), a.token.as_str()),
            ("x-access-token", "t0k")
        );
    }

    #[test]
    fn the_message_names_the_image_and_the_source_commit() {
        let m = message(&image("ghcr.io/acme/cats:sha-1"), Some("abc123"));
        assert!(
            m.starts_with("Release ghcr.io/acme/cats:sha-1\n\nSource commit: abc123\n"),
            "{m}"
        );
    }

    #[test]
    fn pull_request_branches_are_safe_ref_names() {
        assert_eq!(
            pr_branch(&image("ghcr.io/acme/cats:v1.2")),
            "ephemera/release-v1.2"
        );
        let d = format!("ghcr.io/acme/cats@sha256:{}", "b".repeat(64));
        assert_eq!(
            pr_branch(&image(&d)),
            format!("ephemera/release-sha256-{}", "b".repeat(64))
        );
    }
}
