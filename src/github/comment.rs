//! The sticky PR comment: one per environment, found again by a hidden marker on its first line.
//!
//! Everything shown that came from outside ephemera (branch names, image references, error
//! messages) is rendered as inline code or in a fenced block, so GitHub never interprets it:
//! no mentions, no links, no HTML, no table breakage.

use jiff::Timestamp;
use serde::Serialize;

use crate::names::EnvName;

/// What the comment says about the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommentState {
    /// The environment is up and serving the PR's image.
    Up,
    /// `up` or `deploy` failed; the environment may be partly there.
    Failed,
    /// `down` removed the environment.
    Gone,
    /// `gc` removed the environment of a PR that is still open, because its TTL ran out.
    Expired,
}

/// Everything the comment shows. The engine fills it once per run; the reporter sets `state`,
/// `url` and `run_url` to match the call it is used with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommentData {
    pub name: EnvName,
    pub pr: u64,
    pub state: CommentState,
    /// The preview's URL.
    pub url: Option<String>,
    /// `aks`, `kind` or `local`.
    pub provider: Option<String>,
    /// Installed add-ons and their versions, in the order shown.
    pub addons: Vec<(String, String)>,
    /// Where a canary that stopped short of 100% is paused, e.g. `paused at step 1/5 (pause
    /// (until promoted)) with 20% on the new image`; `None` when the new image serves 100%.
    pub canary_step: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// The environment file, as given on the command line (shown in the `down` command).
    pub env_file: Option<String>,
    /// The image deployed (untrusted).
    pub image: Option<String>,
    /// The PR's branch (untrusted).
    pub branch: Option<String>,
    /// The commit deployed.
    pub sha: Option<String>,
    /// Why the run failed, for [`CommentState::Failed`].
    pub message: Option<String>,
    /// The CI run that wrote this comment.
    pub run_url: Option<String>,
    /// When the comment was written.
    pub updated_at: Option<Timestamp>,
}

impl CommentData {
    /// A comment with only the name, PR and state; every other field empty.
    pub fn new(name: EnvName, pr: u64, state: CommentState) -> Self {
        CommentData {
            name,
            pr,
            state,
            url: None,
            provider: None,
            addons: Vec::new(),
            canary_step: None,
            expires_at: None,
            env_file: None,
            image: None,
            branch: None,
            sha: None,
            message: None,
            run_url: None,
            updated_at: None,
        }
    }
}

/// The hidden marker that identifies the comment of environment `name`.
pub fn marker(name: &EnvName) -> String {
    format!("<!-- ephemera:{} -->", name.as_str())
}

/// Whether `body` is the comment of environment `name`: its first line is exactly the marker.
///
/// A marker quoted in a reply (`> <!-- ephemera:pr-1 -->`), or one for a longer name
/// (`pr-12` when looking for `pr-1`), does not match.
pub fn is_comment_of(body: &str, name: &EnvName) -> bool {
    let first = body.split('\n').next().unwrap_or_default();
    first.trim_end_matches('\r') == marker(name)
}

/// Renders the comment body, marker first.
pub fn render(d: &CommentData) -> String {
    let mut s = marker(&d.name);
    s.push('\n');
    let name = code(d.name.as_str());
    match d.state {
        CommentState::Up => s.push_str(&format!("### ✅ Preview environment {name} is up\n\n")),
        CommentState::Failed => {
            s.push_str(&format!("### ❌ Preview environment {name} failed\n\n"))
        }
        CommentState::Expired => {
            expired(&mut s, d, &name);
            footer(&mut s, d);
            return s;
        }
        CommentState::Gone => {
            gone(&mut s, d, &name);
            footer(&mut s, d);
            return s;
        }
    }
    table(&mut s, d);
    if d.state == CommentState::Failed
        && let Some(m) = &d.message
    {
        s.push_str("Error:\n\n");
        s.push_str(&fenced("text", m));
        s.push('\n');
    }
    if !d.addons.is_empty() {
        s.push_str("<details><summary>Add-ons</summary>\n\n| Add-on | Version |\n|---|---|\n");
        for (name, version) in &d.addons {
            s.push_str(&format!(
                "| {} | {} |\n",
                cell_code(name),
                cell_code(version)
            ));
        }
        s.push_str("\n</details>\n\n");
    }
    commands(&mut s, d);
    footer(&mut s, d);
    s
}

/// The body of an expired preview's comment: why it went and how to bring it back.
fn expired(s: &mut String, d: &CommentData, name: &str) {
    s.push_str(&format!("### ⌛ Preview environment {name} expired\n\n"));
    s.push_str("It was deleted because nothing was deployed to it for its time to live");
    if let Some(t) = d.expires_at {
        s.push_str(&format!(" (it expired at {})", time(t)));
    }
    s.push_str("; its deployments are marked inactive.\n\n");
    s.push_str(&format!(
        "To bring it back, push a commit to this PR (the preview workflow builds it \
         again), or run `ephemera up` with the image to show:\n\n{}\n",
        fenced(
            "sh",
            &format!(
                "ephemera up --env {} --pr {} --image <image>",
                env_file_word(d),
                d.pr
            )
        )
    ));
}

/// The body of a torn-down preview's comment.
fn gone(s: &mut String, d: &CommentData, name: &str) {
    s.push_str(&format!("### 🗑️ Preview environment {name} is gone\n\n"));
    s.push_str("It was torn down; its deployments are marked inactive.");
    if let Some(t) = d.updated_at {
        s.push_str(&format!(" Torn down at {}.", time(t)));
    }
    s.push_str("\n\n");
}

/// The table of what runs: URL, provider, image, branch, commit, canary step, expiry.
fn table(s: &mut String, d: &CommentData) {
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(u) = &d.url {
        rows.push(("URL", link(u)));
    }
    if let Some(p) = &d.provider {
        rows.push(("Provider", cell_code(p)));
    }
    if let Some(i) = &d.image {
        rows.push(("Image", cell_code(i)));
    }
    if let Some(b) = &d.branch {
        rows.push(("Branch", cell_code(b)));
    }
    if let Some(sha) = &d.sha {
        rows.push(("Commit", cell_code(sha)));
    }
    if let Some(c) = &d.canary_step {
        rows.push(("Canary", cell_code(c)));
    }
    if let Some(t) = d.expires_at {
        rows.push(("Expires", time(t)));
    }
    if !rows.is_empty() {
        s.push_str("| | |\n|---|---|\n");
        for (k, v) in rows {
            s.push_str(&format!("| {k} | {v} |\n"));
        }
        s.push('\n');
    }
}

/// The commands a reviewer can run next: promote (a paused canary), extend, tear down.
fn commands(s: &mut String, d: &CommentData) {
    let env_file = env_file_word(d);
    let paused = d.state == CommentState::Up && d.canary_step.is_some();
    let mut cmds = String::new();
    if paused {
        // `app.canary.preview: steps`: the previous commit still serves the rest.
        s.push_str(
            "⏸️ The canary is paused: part of the traffic still reaches the previous commit.\n\n",
        );
        s.push_str("Promote, extend or tear down:\n\n");
        cmds.push_str(&format!(
            "ephemera promote --env {env_file} --pr {pr} --full\n",
            pr = d.pr
        ));
    } else {
        s.push_str("Extend or tear down:\n\n");
    }
    cmds.push_str(&format!(
        "ephemera extend --env {env_file} --pr {pr} --by 24h\nephemera down --env {env_file} --pr {pr}",
        pr = d.pr
    ));
    s.push_str(&fenced("sh", &cmds));
    s.push('\n');
}

/// The environment file as one shell word, for the commands the comment shows.
fn env_file_word(d: &CommentData) -> String {
    d.env_file
        .as_deref()
        .map(shell_word)
        .unwrap_or_else(|| "<environment file>".into())
}

fn footer(s: &mut String, d: &CommentData) {
    s.push_str("<sub>Kept up to date by ephemera");
    if let Some(u) = &d.run_url {
        s.push_str(&format!(" · {}", labelled_link("run", u)));
    }
    if !matches!(d.state, CommentState::Gone | CommentState::Expired)
        && let Some(t) = d.updated_at
    {
        s.push_str(&format!(" · updated {}", time(t)));
    }
    s.push_str("</sub>\n");
}

fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// Inline code that shows `s` literally, whatever it holds. Control characters (line breaks
/// included) become spaces; the backtick fence is longer than any backtick run in `s`.
pub fn code(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let fence = "`".repeat(longest_run(&s, '`') + 1);
    // A code span that starts or ends with a backtick (or a space) needs a padding space, which
    // CommonMark strips again.
    let pad = if s.starts_with(['`', ' ']) || s.ends_with(['`', ' ']) || s.is_empty() {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// [`code`] for a table cell: pipes are escaped, which GitHub applies even inside code spans.
pub fn cell_code(s: &str) -> String {
    code(s).replace('|', "\\|")
}

/// A fenced code block (info string `lang`) that shows `body` literally.
fn fenced(lang: &str, body: &str) -> String {
    let fence = "`".repeat(longest_run(body, '`').max(2) + 1);
    let body: String = body
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    format!("{fence}{lang}\n{body}\n{fence}\n")
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut cur) = (0, 0);
    for ch in s.chars() {
        if ch == c {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

/// Whether `u` can be shown as a link: `http(s)://` and only characters that cannot end or
/// break a markdown link.
fn is_plain_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() > "https://".len()
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~:/?#@!$&'*+,;=%".contains(c))
}

/// An autolink for a plain URL, else the URL as code.
fn link(u: &str) -> String {
    if is_plain_url(u) {
        format!("<{u}>")
    } else {
        cell_code(u)
    }
}

fn labelled_link(label: &str, u: &str) -> String {
    if is_plain_url(u) {
        format!("[{label}]({u})")
    } else {
        code(u)
    }
}

/// `s` as one word for a POSIX shell: unchanged when it is plainly safe, else single-quoted.
fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./+=:@%".contains(c));
    if safe {
        s.to_string()
    } else {
        let s: String = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> EnvName {
        EnvName::from_name(s).unwrap()
    }

    fn full() -> CommentData {
        CommentData {
            url: Some("https://pr-42.previews.acme.dev".into()),
            provider: Some("aks".into()),
            addons: vec![
                ("argo-rollouts".into(), "v1.8.3".into()),
                ("cert-manager".into(), "v1.18.2".into()),
            ],
            canary_step: Some(
                "paused at step 1/5 (pause (until promoted)) with 20% on the new image".into(),
            ),
            expires_at: Some("2026-08-02T10:00:00Z".parse().unwrap()),
            env_file: Some("environments/aks.yaml".into()),
            image: Some("ghcr.io/acme/shop:sha-0123abc".into()),
            branch: Some("feature/checkout".into()),
            sha: Some("0123abc0123abc0123abc0123abc0123abc0123".into()),
            run_url: Some("https://github.com/acme/shop/actions/runs/77".into()),
            updated_at: Some("2026-08-01T10:00:00Z".parse().unwrap()),
            ..CommentData::new(name("pr-42"), 42, CommentState::Up)
        }
    }

    #[test]
    fn markers_match_exactly_on_the_first_line() {
        let pr1 = name("pr-1");
        let body = render(&CommentData::new(pr1.clone(), 1, CommentState::Up));
        assert!(is_comment_of(&body, &pr1));
        assert!(is_comment_of("<!-- ephemera:pr-1 -->\r\nhello", &pr1));
        assert!(!is_comment_of(&body, &name("pr-12")));
        assert!(!is_comment_of("<!-- ephemera:pr-12 -->\n", &pr1));
        assert!(!is_comment_of("<!-- ephemera:pr-1 --> extra\n", &pr1));
        assert!(!is_comment_of("> <!-- ephemera:pr-1 -->\n", &pr1));
        assert!(!is_comment_of("hi\n<!-- ephemera:pr-1 -->\n", &pr1));
        assert!(!is_comment_of(" <!-- ephemera:pr-1 -->", &pr1));
        assert!(!is_comment_of("", &pr1));
    }

    #[test]
    fn up_comment() {
        insta::assert_snapshot!(render(&full()));
    }

    #[test]
    fn failed_comment() {
        let d = CommentData {
            state: CommentState::Failed,
            url: None,
            canary_step: None,
            message: Some(
                "timed out waiting for Rollout shop: last seen Progressing\n```\n@admin".into(),
            ),
            ..full()
        };
        insta::assert_snapshot!(render(&d));
    }

    #[test]
    fn gone_comment() {
        let d = CommentData {
            state: CommentState::Gone,
            ..full()
        };
        insta::assert_snapshot!(render(&d));
    }

    #[test]
    fn minimal_comment_still_shows_the_commands() {
        let body = render(&CommentData::new(name("pr-7"), 7, CommentState::Up));
        assert!(
            body.contains("ephemera down --env <environment file> --pr 7\n"),
            "{body}"
        );
        assert!(!body.contains("| |"), "no empty table: {body}");
    }

    #[test]
    fn untrusted_strings_are_never_interpreted() {
        let d = CommentData {
            branch: Some("x|y` @octocat <img src=x> [a](https://evil) #1\n| URL | evil".into()),
            image: Some("`".into()),
            ..full()
        };
        let body = render(&d);
        let line = body.lines().find(|l| l.starts_with("| Branch |")).unwrap();
        // One cell: the pipes inside are escaped; the backtick run is fenced by a longer one.
        assert_eq!(
            line,
            "| Branch | ``x\\|y` @octocat <img src=x> [a](https://evil) #1 \\| URL \\| evil`` |"
        );
        assert!(body.contains("| Image | `` ` `` |"), "{body}");
        // The injected line break did not start a new row.
        assert_eq!(body.matches("| URL |").count(), 1, "{body}");
    }

    #[test]
    fn code_spans_and_fences_outlast_the_backticks_inside() {
        assert_eq!(code("a"), "`a`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("``x"), "``` ``x ```");
        assert_eq!(code(""), "`  `");
        assert_eq!(code("a\nb"), "`a b`");
        assert_eq!(
            fenced("text", "x\n````\ny"),
            "`````text\nx\n````\ny\n`````\n"
        );
        assert_eq!(fenced("sh", "ls"), "```sh\nls\n```\n");
    }

    #[test]
    fn urls_link_only_when_plain() {
        assert_eq!(link("https://a.example/x?y=1"), "<https://a.example/x?y=1>");
        assert_eq!(link("https://a.example/<b>"), "`https://a.example/<b>`");
        assert_eq!(link("javascript:alert(1)"), "`javascript:alert(1)`");
        assert_eq!(
            labelled_link("run", "https://x.example/(1)"),
            "`https://x.example/(1)`"
        );
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_word("environments/aks.yaml"), "environments/aks.yaml");
        assert_eq!(shell_word("my envs/a'b.yaml"), r"'my envs/a'\''b.yaml'");
        assert_eq!(shell_word("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_word(""), "''");
    }
}
