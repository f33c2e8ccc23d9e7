//! The reporter: what `up`, `deploy` and `down` tell GitHub, as ensures that converge on rerun.
//!
//! - `started`: find the deployment of this commit in `preview/<name>`, or create it; then an
//!   `in_progress` status.
//! - `succeeded`: a `success` status with the environment URL; older deployments of the
//!   environment still shown as live are marked `inactive`; the sticky comment is created or
//!   edited in place.
//! - `failed`: a `failure` status linking to the run; the comment says what failed.
//! - `superseded`: the run gave way to a newer one (or to a teardown) and deployed nothing: its
//!   deployment gets `inactive`, not `failure`, and the comment is left to the run that won.
//! - `torn_down`: every deployment of the environment gets `inactive` (unless it already is);
//!   an existing comment says the environment is gone (none is created for that).
//! - `expired`: as `torn_down`, for `gc` of an open PR's expired environment; the comment says
//!   it expired and how to bring it back.
//!
//! Each call spends at most [`Retry::budget`] (plus one request timeout) on GitHub, and returns
//! warnings instead of errors.

use serde_json::{Value, json};

use super::client::{Client, Deadline};
use super::comment::{self, CommentData, CommentState};
use super::{ACTIONS_BOT, GitHubError, Retry, Settings, Warning};
use crate::names::EnvName;

/// Reports one run's progress to GitHub. Create it with [`Reporter::new`] once settings are
/// resolved, and call it at the run's milestones.
pub struct Reporter {
    settings: Settings,
    client: Result<Client, String>,
    /// The deployment made by `started`, for `succeeded` and `failed`.
    current: Option<Current>,
    /// Whose comments are ephemera's, once known.
    author: Option<String>,
}

#[derive(Clone, Debug)]
struct Current {
    env: EnvName,
    sha: Option<String>,
    deployment: Option<u64>,
}

/// What happened to the sticky comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommentAction {
    Created,
    Updated,
    Unchanged,
    Absent,
}

impl Reporter {
    pub fn new(settings: Settings) -> Self {
        let client = Client::new(
            settings.api_url.clone(),
            settings.repository.clone(),
            settings.token.clone(),
            settings.retry,
        )
        .map_err(|e| crate::error::chain(&e));
        Reporter {
            settings,
            client,
            current: None,
            author: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn retry(&self) -> Retry {
        self.settings.retry
    }

    /// Creates (or finds, on a rerun) the deployment of commit `sha` (else the event's head
    /// commit) in environment `preview/<env>` and sets it `in_progress`.
    pub async fn started(&mut self, env: &EnvName, pr: u64, sha: Option<&str>) -> Vec<Warning> {
        let mut warnings = Vec::new();
        let sha = match sha {
            Some(s) => match super::check_sha("--sha", s) {
                Ok(s) => Some(s),
                Err(e) => {
                    warnings.push(Warning::new("deployment", e.to_string()));
                    None
                }
            },
            None => self.settings.head_sha.clone(),
        };
        self.current = Some(Current {
            env: env.clone(),
            sha: sha.clone(),
            deployment: None,
        });
        if !self.settings.deployments {
            return warnings;
        }
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => {
                warnings.push(Warning::new("deployment", e.clone()));
                return warnings;
            }
        };
        let Some(sha) = sha else {
            warnings.push(no_sha());
            return warnings;
        };
        let deadline = Deadline::after(self.retry().budget);
        let id = match ensure_deployment(client, env, pr, &sha, &deadline).await {
            Ok(id) => id,
            Err(e) => {
                warnings.push(Warning::from_error(
                    "deployment",
                    "creating the deployment",
                    &e,
                ));
                return warnings;
            }
        };
        if let Some(c) = &mut self.current {
            c.deployment = Some(id);
        }
        let status = json!({
            "state": "in_progress",
            "description": description(&format!("Creating preview {}", env.as_str())),
        });
        let status = with_log_url(status, &self.settings.run_url);
        if let Err(e) = post_status(client, id, &status, &deadline).await {
            warnings.push(Warning::from_error(
                "deployment-status",
                "setting in_progress",
                &e,
            ));
        }
        warnings
    }

    /// Sets the deployment `success` with `url` as its environment URL (left out when empty),
    /// marks superseded deployments inactive, and creates or updates the sticky comment (state
    /// up, showing `url`).
    pub async fn succeeded(&mut self, url: &str, summary: &CommentData) -> Vec<Warning> {
        let deadline = Deadline::after(self.retry().budget);
        let mut warnings = Vec::new();
        if self.settings.deployments {
            let mut status = json!({
                "state": "success",
                "description": description(&up_description(summary)),
            });
            // GitHub shows an empty environment_url as a broken link: leave it out instead.
            if !url.is_empty() {
                status["environment_url"] = Value::String(url.to_string());
            }
            let status = with_log_url(status, &self.settings.run_url);
            if let Some(id) = self.deployment_for(summary, &deadline, &mut warnings).await
                && let Ok(client) = &self.client
            {
                match post_status(client, id, &status, &deadline).await {
                    Ok(()) => {
                        if let Err(e) = supersede(client, &summary.name, id, &deadline).await {
                            warnings.push(Warning::from_error(
                                "deployment-status",
                                "marking older deployments inactive",
                                &e,
                            ));
                        }
                    }
                    Err(e) => warnings.push(Warning::from_error(
                        "deployment-status",
                        "setting success",
                        &e,
                    )),
                }
            }
        }
        if self.settings.comment {
            let mut data = summary.clone();
            data.state = CommentState::Up;
            if !url.is_empty() {
                data.url = Some(url.to_string());
            }
            self.comment(data, true, &deadline, &mut warnings).await;
        }
        warnings
    }

    /// Sets the deployment `failure` with a `log_url` to the run, and creates or updates the
    /// sticky comment (state failed, showing `message`).
    pub async fn failed(&mut self, message: &str, summary: &CommentData) -> Vec<Warning> {
        let deadline = Deadline::after(self.retry().budget);
        let mut warnings = Vec::new();
        if self.settings.deployments {
            let status = json!({
                "state": "failure",
                "description": description(message),
            });
            let status = with_log_url(status, &self.settings.run_url);
            if let Some(id) = self.deployment_for(summary, &deadline, &mut warnings).await
                && let Ok(client) = &self.client
                && let Err(e) = post_status(client, id, &status, &deadline).await
            {
                warnings.push(Warning::from_error(
                    "deployment-status",
                    "setting failure",
                    &e,
                ));
            }
        }
        if self.settings.comment {
            let mut data = summary.clone();
            data.state = CommentState::Failed;
            data.message = Some(message.to_string());
            self.comment(data, true, &deadline, &mut warnings).await;
        }
        warnings
    }

    /// Reports a run that gave way to another one (exit 4: a newer run, or a `down`, holds the
    /// environment) and deployed nothing: the deployment `started` made gets an `inactive`
    /// status saying `why` (no environment URL: this run has none), never `failure`. The sticky
    /// comment is not touched: it belongs to the run that won. A deployment is never created
    /// just to say this.
    pub async fn superseded(&mut self, why: &str) -> Vec<Warning> {
        let mut warnings = Vec::new();
        if !self.settings.deployments {
            return warnings;
        }
        let Some(id) = self.current.as_ref().and_then(|c| c.deployment) else {
            return warnings;
        };
        let Ok(client) = &self.client else {
            return warnings;
        };
        let deadline = Deadline::after(self.retry().budget);
        let status = json!({
            "state": "inactive",
            "description": description(&format!("{GAVE_WAY}{why}")),
        });
        let status = with_log_url(status, &self.settings.run_url);
        if let Err(e) = post_status(client, id, &status, &deadline).await {
            warnings.push(Warning::from_error(
                "deployment-status",
                "setting inactive",
                &e,
            ));
        }
        warnings
    }

    /// Marks every deployment of `preview/<env>` inactive and, if the environment has a sticky
    /// comment, says there that it is gone.
    pub async fn torn_down(&mut self, env: &EnvName, pr: u64) -> Vec<Warning> {
        let data = CommentData::new(env.clone(), pr, CommentState::Gone);
        self.deactivated(data).await
    }

    /// For `gc` of an open PR's environment whose TTL ran out: every deployment of
    /// `preview/<env>` becomes inactive and an existing comment says the environment expired
    /// and how to bring it back (`data` gives its expiry and environment file).
    pub async fn expired(&mut self, data: &CommentData) -> Vec<Warning> {
        let mut data = data.clone();
        data.state = CommentState::Expired;
        self.deactivated(data).await
    }

    /// Marks every deployment of `data.name`'s environment inactive and, if it has a sticky
    /// comment, replaces it with `data`.
    async fn deactivated(&mut self, data: CommentData) -> Vec<Warning> {
        let env = data.name.clone();
        let env = &env;
        let deadline = Deadline::after(self.retry().budget);
        let mut warnings = Vec::new();
        if self.settings.deployments {
            match &self.client {
                Ok(client) => {
                    if let Err(e) = deactivate_all(client, env, &deadline).await {
                        warnings.push(Warning::from_error(
                            "deployment-status",
                            "marking deployments inactive",
                            &e,
                        ));
                    }
                }
                Err(e) => warnings.push(Warning::new("deployment-status", e.clone())),
            }
        }
        if self.settings.comment {
            self.comment(data, false, &deadline, &mut warnings).await;
        }
        warnings
    }

    /// The deployment to set a final status on: the one `started` made, else (when `started`
    /// could not reach GitHub, or was not called) found or created now.
    async fn deployment_for(
        &mut self,
        summary: &CommentData,
        deadline: &Deadline,
        warnings: &mut Vec<Warning>,
    ) -> Option<u64> {
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => {
                warnings.push(Warning::new("deployment", e.clone()));
                return None;
            }
        };
        let current = self.current.as_ref().filter(|c| c.env == summary.name);
        if let Some(id) = current.and_then(|c| c.deployment) {
            return Some(id);
        }
        let sha = current
            .and_then(|c| c.sha.clone())
            .or_else(|| {
                summary
                    .sha
                    .as_deref()
                    .and_then(|s| super::check_sha("sha", s).ok())
            })
            .or_else(|| self.settings.head_sha.clone());
        let Some(sha) = sha else {
            warnings.push(no_sha());
            return None;
        };
        match ensure_deployment(client, &summary.name, summary.pr, &sha, deadline).await {
            Ok(id) => {
                self.current = Some(Current {
                    env: summary.name.clone(),
                    sha: Some(sha),
                    deployment: Some(id),
                });
                Some(id)
            }
            Err(e) => {
                warnings.push(Warning::from_error(
                    "deployment",
                    "creating the deployment",
                    &e,
                ));
                None
            }
        }
    }

    async fn comment(
        &mut self,
        mut data: CommentData,
        create: bool,
        deadline: &Deadline,
        warnings: &mut Vec<Warning>,
    ) {
        data.run_url = self.settings.run_url.clone();
        data.updated_at = Some(jiff::Timestamp::now());
        if data.sha.is_none() {
            data.sha = self
                .current
                .as_ref()
                .filter(|c| c.env == data.name)
                .and_then(|c| c.sha.clone());
        }
        let author = match self.author(deadline).await {
            Ok(a) => a,
            Err(e) => {
                warnings.push(Warning::from_error(
                    "comment",
                    "finding out who the token is",
                    &e,
                ));
                return;
            }
        };
        let Ok(client) = &self.client else {
            return;
        };
        let body = comment::render(&data);
        match ensure_comment(
            client, &data.name, data.pr, &author, &body, create, deadline,
        )
        .await
        {
            Ok((CommentAction::Created, login)) if !login.eq_ignore_ascii_case(&author) => {
                warnings.push(Warning::new(
                    "comment",
                    format!(
                        "the comment was posted as {login:?}, but comments are looked up as {author:?}: \
                         set EPHEMERA_GITHUB_COMMENT_AUTHOR={login} so the next run edits it instead of adding another"
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) => warnings.push(Warning::from_error(
                "comment",
                "updating the PR comment",
                &e,
            )),
        }
    }

    /// Whose comments are ephemera's: the configured login, else the token's login, else (for
    /// tokens that cannot read `/user`, such as the Actions token) `github-actions[bot]`.
    async fn author(&mut self, deadline: &Deadline) -> Result<String, GitHubError> {
        if let Some(a) = self
            .settings
            .comment_author
            .clone()
            .or_else(|| self.author.clone())
        {
            return Ok(a);
        }
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => {
                return Err(GitHubError::Decode {
                    method: "GET".into(),
                    path: "/user".into(),
                    message: e.clone(),
                });
            }
        };
        let login = match client.get(client.url("/user")?, deadline).await {
            Ok(reply) => reply
                .body
                .get("login")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| GitHubError::Decode {
                    method: "GET".into(),
                    path: "/user".into(),
                    message: "no login in the answer".into(),
                })?,
            Err(GitHubError::Status {
                status: 401 | 403 | 404,
                ..
            }) => ACTIONS_BOT.to_string(),
            Err(e) => return Err(e),
        };
        self.author = Some(login.clone());
        Ok(login)
    }
}

fn no_sha() -> Warning {
    Warning::new(
        "deployment",
        "no commit SHA to deploy: pass --sha, or run from a pull_request or workflow_run event",
    )
}

/// The `success` status description: the preview is up, and, when the canary stopped short of
/// 100% (`app.canary.preview: steps`), where it is paused.
fn up_description(summary: &CommentData) -> String {
    let name = summary.name.as_str();
    match &summary.canary_step {
        Some(paused) => format!("Preview {name} is up; canary {paused}"),
        None => format!("Preview {name} is up"),
    }
}

/// A status description: one line, at most 140 characters (GitHub's limit).
fn description(s: &str) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one.chars().count() <= 140 {
        one
    } else {
        let mut t: String = one.chars().take(139).collect();
        t.push('…');
        t
    }
}

fn with_log_url(mut status: Value, run_url: &Option<String>) -> Value {
    if let (Some(u), Some(obj)) = (run_url, status.as_object_mut()) {
        obj.insert("log_url".into(), Value::String(u.clone()));
    }
    status
}

fn id_of(v: &Value, method: &str, path: &str) -> Result<u64, GitHubError> {
    v.get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| GitHubError::Decode {
            method: method.into(),
            path: path.into(),
            message: "no id in the answer".into(),
        })
}

/// The newest deployment of `sha` in `preview/<env>`, or a new one.
async fn ensure_deployment(
    client: &Client,
    env: &EnvName,
    pr: u64,
    sha: &str,
    deadline: &Deadline,
) -> Result<u64, GitHubError> {
    let environment = Settings::environment(env);
    let mut url = client.repo_url("/deployments")?;
    url.query_pairs_mut()
        .append_pair("environment", &environment)
        .append_pair("sha", sha);
    let existing = client.list(url.clone(), deadline).await?;
    let mine = existing.iter().find(|d| {
        d.get("sha").and_then(Value::as_str) == Some(sha)
            && d.get("environment").and_then(Value::as_str) == Some(environment.as_str())
    });
    if let Some(d) = mine {
        return id_of(d, "GET", url.path());
    }
    let body = json!({
        "ref": sha,
        "environment": environment,
        "description": description(&format!("ephemera preview {} for PR #{pr}", env.as_str())),
        "transient_environment": true,
        "production_environment": false,
        "auto_merge": false,
        "required_contexts": [],
        "payload": { "ephemera": { "environment": env.as_str(), "pr": pr } },
    });
    let post = client.repo_url("/deployments")?;
    let reply = client.post(post.clone(), &body, deadline).await?;
    if reply.status.as_u16() != 201 {
        return Err(GitHubError::Decode {
            method: "POST".into(),
            path: post.path().into(),
            message: format!("expected 201 Created, got {}", reply.status),
        });
    }
    id_of(&reply.body, "POST", post.path())
}

async fn post_status(
    client: &Client,
    id: u64,
    status: &Value,
    deadline: &Deadline,
) -> Result<(), GitHubError> {
    let url = client.repo_url(&format!("/deployments/{id}/statuses"))?;
    client.post(url, status, deadline).await.map(|_| ())
}

/// How the `inactive` status of a run that gave way begins: such a deployment never went live,
/// so it retires nothing older (see [`supersede`]).
const GAVE_WAY: &str = "Gave way: ";

/// The state of a deployment's newest status, if it has any.
async fn latest_state(
    client: &Client,
    id: u64,
    deadline: &Deadline,
) -> Result<Option<String>, GitHubError> {
    Ok(latest_status(client, id, deadline)
        .await?
        .map(|(state, _)| state))
}

/// The state and description of a deployment's newest status, if it has any.
async fn latest_status(
    client: &Client,
    id: u64,
    deadline: &Deadline,
) -> Result<Option<(String, String)>, GitHubError> {
    let mut url = client.repo_url(&format!("/deployments/{id}/statuses"))?;
    url.query_pairs_mut().append_pair("per_page", "1");
    let reply = client.get(url, deadline).await?;
    let Some(status) = reply.body.get(0) else {
        return Ok(None);
    };
    let text = |k: &str| status.get(k).and_then(Value::as_str).unwrap_or_default();
    Ok(Some((
        text("state").to_string(),
        text("description").to_string(),
    )))
}

async fn deployments_of(
    client: &Client,
    env: &EnvName,
    deadline: &Deadline,
) -> Result<Vec<u64>, GitHubError> {
    let mut url = client.repo_url("/deployments")?;
    url.query_pairs_mut()
        .append_pair("environment", &Settings::environment(env));
    let list = client.list(url.clone(), deadline).await?;
    list.iter().map(|d| id_of(d, "GET", url.path())).collect()
}

async fn set_inactive(
    client: &Client,
    id: u64,
    why: &str,
    deadline: &Deadline,
) -> Result<(), GitHubError> {
    post_status(
        client,
        id,
        &json!({ "state": "inactive", "description": why }),
        deadline,
    )
    .await
}

/// Marks inactive the deployments older than `current` that still look live. GitHub lists
/// deployments newest first; each success retires everything older, so the walk stops at the
/// first deployment already inactive, except one of a run that gave way, which never went live
/// and retired nothing.
async fn supersede(
    client: &Client,
    env: &EnvName,
    current: u64,
    deadline: &Deadline,
) -> Result<(), GitHubError> {
    for id in deployments_of(client, env, deadline).await? {
        if id == current {
            continue;
        }
        match latest_status(client, id, deadline).await? {
            Some((state, why)) if state == "inactive" && why.starts_with(GAVE_WAY) => continue,
            Some((state, _)) if state == "inactive" => break,
            Some((state, _)) if state == "failure" || state == "error" => continue,
            _ => set_inactive(client, id, "Superseded by a newer deployment", deadline).await?,
        }
    }
    Ok(())
}

/// Marks every deployment of the environment inactive, skipping those already inactive.
async fn deactivate_all(
    client: &Client,
    env: &EnvName,
    deadline: &Deadline,
) -> Result<(), GitHubError> {
    for id in deployments_of(client, env, deadline).await? {
        if latest_state(client, id, deadline).await?.as_deref() != Some("inactive") {
            set_inactive(client, id, "Preview environment torn down", deadline).await?;
        }
    }
    Ok(())
}

/// Makes the environment's comment read `body`: edits the oldest comment by `author` whose first
/// line is the marker, creates one when there is none (if `create`), and deletes duplicates that
/// an interrupted earlier run may have left. Returns what it did and the comment's author.
async fn ensure_comment(
    client: &Client,
    env: &EnvName,
    pr: u64,
    author: &str,
    body: &str,
    create: bool,
    deadline: &Deadline,
) -> Result<(CommentAction, String), GitHubError> {
    let url = client.repo_url(&format!("/issues/{pr}/comments"))?;
    let all = client.list(url.clone(), deadline).await?;
    let mut mine: Vec<(u64, &str)> = all
        .iter()
        .filter(|c| {
            c.pointer("/user/login")
                .and_then(Value::as_str)
                .is_some_and(|l| l.eq_ignore_ascii_case(author))
                && c.get("body")
                    .and_then(Value::as_str)
                    .is_some_and(|b| comment::is_comment_of(b, env))
        })
        .filter_map(|c| Some((c.get("id")?.as_u64()?, c.get("body")?.as_str()?)))
        .collect();
    mine.sort_by_key(|(id, _)| *id);
    let Some(&(keep, current)) = mine.first() else {
        if !create {
            return Ok((CommentAction::Absent, author.to_string()));
        }
        let reply = client.post(url, &json!({ "body": body }), deadline).await?;
        let login = reply
            .body
            .pointer("/user/login")
            .and_then(Value::as_str)
            .unwrap_or(author)
            .to_string();
        return Ok((CommentAction::Created, login));
    };
    for &(extra, _) in &mine[1..] {
        client
            .delete(
                client.repo_url(&format!("/issues/comments/{extra}"))?,
                deadline,
            )
            .await?;
    }
    if current == body {
        return Ok((CommentAction::Unchanged, author.to_string()));
    }
    client
        .patch(
            client.repo_url(&format!("/issues/comments/{keep}"))?,
            &json!({ "body": body }),
            deadline,
        )
        .await?;
    Ok((CommentAction::Updated, author.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine may hold a reporter across awaits in spawned tasks: its futures must be Send.
    /// (This fails to compile otherwise.)
    #[test]
    fn reports_can_run_on_any_thread() {
        fn is_send<T: Send>(_: &T) {}
        let settings = Settings::from_lookup(None, true, |k| match k {
            "GITHUB_TOKEN" => Some("t".into()),
            "GITHUB_REPOSITORY" => Some("a/b".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        let mut r = Reporter::new(settings);
        let name = EnvName::from_name("pr-1").unwrap();
        is_send(&r.started(&name, 1, None));
        is_send(&r.torn_down(&name, 1));
        let data = CommentData::new(name.clone(), 1, CommentState::Up);
        is_send(&r.succeeded("https://x.example", &data));
        is_send(&r.failed("boom", &data));
        is_send(&r.superseded("a newer run"));
    }

    #[test]
    fn the_up_description_says_when_the_canary_is_paused() {
        let name = EnvName::from_name("pr-1").unwrap();
        let mut data = CommentData::new(name, 1, CommentState::Up);
        assert_eq!(up_description(&data), "Preview pr-1 is up");
        data.canary_step =
            Some("paused at step 1/5 (pause (until promoted)) with 20% on the new image".into());
        let d = description(&up_description(&data));
        assert_eq!(
            d,
            "Preview pr-1 is up; canary paused at step 1/5 (pause (until promoted)) with 20% on the new image"
        );
    }

    #[test]
    fn descriptions_fit_github() {
        assert_eq!(description("a\nb"), "a b");
        let long = "x".repeat(300);
        let d = description(&long);
        assert_eq!(d.chars().count(), 140);
        assert!(d.ends_with('…'));
    }
}
