//! Pull requests on the release repository, for `release` with `mode: pullRequest`.

use serde_json::{Value, json};

use super::client::{Client, Deadline, Retry};
use super::{GitHubError, PUBLIC_API, Repository, Token};

/// `owner/name` of a GitHub clone URL (`https://host/owner/name(.git)`).
///
/// # Errors
/// [`GitHubError::BadRepository`] when the URL's path is not `/owner/name`.
pub fn repository_of(url: &str) -> Result<Repository, GitHubError> {
    let path = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = path.split_once('/').map(|(_, p)| p).unwrap_or_default();
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    Repository::parse("release.repository.url", path)
}

/// Opens a pull request from `head` into `base`, or finds the open one that already does (an
/// ensure: a rerun does not open a second). Returns its web URL.
///
/// The API base is `github.apiUrl`, else `GITHUB_API_URL`, else the public API; the token is
/// the release repository's.
///
/// # Errors
/// No token, a bad URL, or GitHub refusing.
pub async fn ensure(
    cfg: Option<&crate::config::GitHub>,
    repo_url: &str,
    token: Option<String>,
    head: &str,
    base: &str,
    title: &str,
    body: &str,
) -> Result<String, GitHubError> {
    let token = Token::new(token.ok_or(GitHubError::NoToken)?)?;
    let repo = repository_of(repo_url)?;
    let api = match (
        cfg.and_then(|c| c.api_url.clone()),
        std::env::var("GITHUB_API_URL")
            .ok()
            .filter(|v| !v.trim().is_empty()),
    ) {
        (Some(u), _) => super::api_url("github.apiUrl", &u)?,
        (None, Some(u)) => super::api_url("GITHUB_API_URL", &u)?,
        (None, None) => super::api_url("the default API URL", PUBLIC_API)?,
    };
    let owner = repo.owner.clone();
    let client = Client::new(api, repo, token, Retry::default())?;
    let deadline = Deadline::after(Retry::default().budget);
    let open = |items: Vec<Value>| {
        items.into_iter().find_map(|p| {
            p.get("html_url")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    };
    let mut list = client.repo_url("/pulls")?;
    list.query_pairs_mut()
        .append_pair("state", "open")
        .append_pair("head", &format!("{owner}:{head}"))
        .append_pair("base", base);
    if let Some(url) = open(client.list(list.clone(), &deadline).await?) {
        return Ok(url);
    }
    let made = client
        .post(
            client.repo_url("/pulls")?,
            &json!({ "title": title, "head": head, "base": base, "body": body }),
            &deadline,
        )
        .await?;
    made.body
        .get("html_url")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| GitHubError::Decode {
            method: "POST".into(),
            path: "/pulls".into(),
            message: "the answer has no html_url".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_comes_from_the_clone_url() {
        let r = repository_of("https://github.com/acme/cats-deploy.git").unwrap();
        assert_eq!((r.owner.as_str(), r.name.as_str()), ("acme", "cats-deploy"));
        assert!(repository_of("https://dev.azure.com/acme/_git/deploy").is_err());
    }
}
