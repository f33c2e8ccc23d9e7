//! GitHub reporting against the fake GitHub API: deployments, statuses, the sticky comment,
//! rate limits and outages.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ephemera::github::{CommentData, CommentState, Reporter, Settings, Warning};
use ephemera::names::EnvName;

use crate::common::fake_github::{BOT, FakeGitHub, RateLimit, TOKEN};

const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";
const URL: &str = "https://pr-42.previews.acme.example";
const RUN: &str = "https://github.example/acme/shop/actions/runs/4242";

fn settings(fake: &FakeGitHub, sha: &str) -> Settings {
    let env: HashMap<&str, String> = fake.env(sha).into_iter().collect();
    let mut s = Settings::from_lookup(None, true, |k| env.get(k).cloned())
        .expect("settings resolve")
        .expect("GitHub reporting is on");
    s.retry.base_delay = Duration::from_millis(20);
    s.retry.max_delay = Duration::from_millis(200);
    s.retry.request_timeout = Duration::from_secs(2);
    s
}

fn env(name: &str) -> EnvName {
    EnvName::from_name(name).unwrap()
}

fn data(image: &str) -> CommentData {
    CommentData {
        provider: Some("local".into()),
        addons: vec![("argo-rollouts".into(), "v1.8.3".into())],
        canary_step: Some("4/4 (promoted)".into()),
        expires_at: Some("2026-08-02T10:00:00Z".parse().unwrap()),
        env_file: Some("environments/local.yaml".into()),
        image: Some(image.into()),
        branch: Some("feature/x".into()),
        ..CommentData::new(env("pr-42"), 42, CommentState::Up)
    }
}

/// One `up`: a fresh reporter, as a new process would have.
async fn up(fake: &FakeGitHub, sha: &str, image: &str) -> Vec<Warning> {
    let mut r = Reporter::new(settings(fake, sha));
    let mut w = r.started(&env("pr-42"), 42, None).await;
    w.extend(r.succeeded(URL, &data(image)).await);
    w
}

fn states(fake: &FakeGitHub, id: u64) -> Vec<String> {
    fake.statuses(id).into_iter().map(|s| s.state).collect()
}

#[tokio::test]
async fn up_creates_one_deployment_with_a_success_status_and_one_comment() {
    let fake = FakeGitHub::start().await;
    let mut r = Reporter::new(settings(&fake, SHA1));
    let w = r.started(&env("pr-42"), 42, None).await;
    assert!(w.is_empty(), "{w:?}");

    let deployments = fake.deployments();
    assert_eq!(deployments.len(), 1);
    let d = &deployments[0];
    assert_eq!(
        (d.sha.as_str(), d.environment.as_str()),
        (SHA1, "preview/pr-42")
    );
    assert!(d.transient && !d.production);
    assert_eq!(d.body["auto_merge"], false);
    assert_eq!(d.body["required_contexts"], serde_json::json!([]));
    assert_eq!(states(&fake, d.id), ["in_progress"]);

    let w = r.succeeded(URL, &data("ghcr.io/acme/shop:1")).await;
    assert!(w.is_empty(), "{w:?}");
    let statuses = fake.statuses(d.id);
    assert_eq!(states(&fake, d.id), ["in_progress", "success"]);
    assert_eq!(statuses[1].environment_url.as_deref(), Some(URL));
    assert_eq!(statuses[1].log_url.as_deref(), Some(RUN));

    let comments = fake.comments(42);
    assert_eq!(comments.len(), 1, "{comments:?}");
    let c = &comments[0];
    assert_eq!(c.user, BOT);
    assert!(
        c.body.starts_with("<!-- ephemera:pr-42 -->\n"),
        "{}",
        c.body
    );
    for shown in [
        URL,
        "`local`",
        "`ghcr.io/acme/shop:1`",
        "`v1.8.3`",
        "`4/4 (promoted)`",
        "2026-08-02 10:00 UTC",
        "ephemera extend pr-42 --by 24h",
        "ephemera down --env environments/local.yaml --pr 42",
        SHA1,
    ] {
        assert!(
            c.body.contains(shown),
            "{shown:?} missing from:\n{}",
            c.body
        );
    }
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_second_up_adds_a_status_and_edits_the_same_comment() {
    let fake = FakeGitHub::start().await;
    assert!(up(&fake, SHA1, "ghcr.io/acme/shop:1").await.is_empty());
    let first = fake.comments(42);

    // A new image of the same commit (a rebuild, a rerun): the same deployment, a new status.
    let w = up(&fake, SHA1, "ghcr.io/acme/shop:2").await;
    assert!(w.is_empty(), "{w:?}");
    let deployments = fake.deployments();
    assert_eq!(deployments.len(), 1);
    assert_eq!(
        states(&fake, deployments[0].id),
        ["in_progress", "success", "in_progress", "success"]
    );
    let second = fake.comments(42);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first[0].id, "the same comment, edited");
    assert!(
        second[0].body.contains("`ghcr.io/acme/shop:2`"),
        "{}",
        second[0].body
    );
    assert!(!second[0].body.contains("`ghcr.io/acme/shop:1`"));

    // A new commit: a new deployment; the older one is superseded and marked inactive.
    let w = up(&fake, SHA2, "ghcr.io/acme/shop:3").await;
    assert!(w.is_empty(), "{w:?}");
    let deployments = fake.deployments();
    assert_eq!(deployments.len(), 2);
    assert_eq!(deployments[1].sha, SHA2);
    assert_eq!(states(&fake, deployments[1].id), ["in_progress", "success"]);
    assert_eq!(
        states(&fake, deployments[0].id).last().map(String::as_str),
        Some("inactive")
    );
    let third = fake.comments(42);
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].id, first[0].id);
    assert!(third[0].body.contains(SHA2));

    assert_eq!(
        fake.count("POST", "/issues/42/comments"),
        1,
        "one comment created, ever"
    );
    assert_eq!(
        fake.count("PATCH", &format!("/issues/comments/{}", first[0].id)),
        2
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn down_marks_deployments_inactive_and_says_the_environment_is_gone() {
    let fake = FakeGitHub::start().await;
    assert!(up(&fake, SHA1, "ghcr.io/acme/shop:1").await.is_empty());
    assert!(up(&fake, SHA2, "ghcr.io/acme/shop:2").await.is_empty());

    let mut r = Reporter::new(settings(&fake, SHA2));
    let w = r.torn_down(&env("pr-42"), 42).await;
    assert!(w.is_empty(), "{w:?}");
    for d in fake.deployments() {
        assert_eq!(
            states(&fake, d.id).last().map(String::as_str),
            Some("inactive"),
            "{d:?}"
        );
    }
    let comments = fake.comments(42);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].body.starts_with("<!-- ephemera:pr-42 -->\n"));
    assert!(comments[0].body.contains("is gone"), "{}", comments[0].body);
    assert!(
        !comments[0].body.contains(URL),
        "the dead URL is not offered: {}",
        comments[0].body
    );

    // A rerun converges: nothing already inactive gets another status.
    let statuses_before: usize = fake
        .deployments()
        .iter()
        .map(|d| fake.statuses(d.id).len())
        .sum();
    let w = Reporter::new(settings(&fake, SHA2))
        .torn_down(&env("pr-42"), 42)
        .await;
    assert!(w.is_empty(), "{w:?}");
    let statuses_after: usize = fake
        .deployments()
        .iter()
        .map(|d| fake.statuses(d.id).len())
        .sum();
    assert_eq!(statuses_before, statuses_after);
    assert_eq!(fake.comments(42).len(), 1);

    // Tearing down an environment that never had a comment does not start one.
    let w = Reporter::new(settings(&fake, SHA2))
        .torn_down(&env("pr-7"), 7)
        .await;
    assert!(w.is_empty(), "{w:?}");
    assert!(fake.comments(7).is_empty());
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_failed_up_links_the_run_and_says_why() {
    let fake = FakeGitHub::start().await;
    let mut r = Reporter::new(settings(&fake, SHA1));
    assert!(r.started(&env("pr-42"), 42, None).await.is_empty());
    let why = "timed out after 10m waiting for Rollout default/shop: last seen Progressing (2/4)";
    let w = r.failed(why, &data("ghcr.io/acme/shop:1")).await;
    assert!(w.is_empty(), "{w:?}");
    let d = &fake.deployments()[0];
    let statuses = fake.statuses(d.id);
    assert_eq!(states(&fake, d.id), ["in_progress", "failure"]);
    assert_eq!(statuses[1].log_url.as_deref(), Some(RUN));
    assert!(statuses[1].environment_url.is_none());
    assert!(
        statuses[1]
            .description
            .as_deref()
            .unwrap()
            .starts_with("timed out after 10m")
    );
    let c = &fake.comments(42)[0];
    assert!(
        c.body.contains("failed") && c.body.contains(why),
        "{}",
        c.body
    );
    assert!(c.body.contains(&format!("[run]({RUN})")), "{}", c.body);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_sha_flag_wins_over_the_environment_and_is_checked() {
    let fake = FakeGitHub::start().await;
    let mut r = Reporter::new(settings(&fake, SHA1));
    assert!(r.started(&env("pr-42"), 42, Some(SHA2)).await.is_empty());
    assert_eq!(fake.deployments()[0].sha, SHA2);

    let mut r = Reporter::new(settings(&fake, SHA1));
    let w = r.started(&env("pr-43"), 43, Some("main; rm -rf /")).await;
    assert!(w.iter().any(|w| w.message.contains("--sha")), "{w:?}");
    assert_eq!(
        fake.deployments().len(),
        1,
        "nothing deployed for a bad SHA"
    );
}

#[tokio::test]
async fn a_marker_in_someone_elses_comment_is_not_adopted() {
    let fake = FakeGitHub::start().await;
    let forged = "<!-- ephemera:pr-42 -->\n### ✅ Preview is up at https://evil.example";
    let mallory = fake.add_comment(42, "mallory", forged);
    let other_env = fake.add_comment(42, BOT, "<!-- ephemera:pr-420 -->\nanother environment");

    assert!(up(&fake, SHA1, "ghcr.io/acme/shop:1").await.is_empty());
    let comments = fake.comments(42);
    assert_eq!(comments.len(), 3);
    assert_eq!(comments[0].id, mallory);
    assert_eq!(comments[0].body, forged, "untouched");
    assert_eq!(comments[1].id, other_env);
    assert_eq!(
        comments[1].body,
        "<!-- ephemera:pr-420 -->\nanother environment"
    );
    assert_eq!(comments[2].user, BOT);
    assert!(comments[2].body.contains(URL));
}

#[tokio::test]
async fn comments_are_found_across_pages_and_duplicates_are_removed() {
    let fake = FakeGitHub::start().await;
    fake.page_size(2);
    for i in 0..5 {
        fake.add_comment(42, "reviewer", &format!("LGTM {i}"));
    }
    // Two comments of ours, as an interrupted run could leave.
    let keep = fake.add_comment(42, BOT, "<!-- ephemera:pr-42 -->\nold");
    let dup = fake.add_comment(42, BOT, "<!-- ephemera:pr-42 -->\nolder run");
    fake.add_comment(42, "reviewer", "LGTM 6");

    assert!(up(&fake, SHA1, "ghcr.io/acme/shop:1").await.is_empty());
    let ours: Vec<_> = fake
        .comments(42)
        .into_iter()
        .filter(|c| c.body.starts_with("<!-- ephemera:pr-42 -->"))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].id, keep);
    assert!(ours[0].body.contains(URL));
    assert!(fake.comments(42).iter().all(|c| c.id != dup));
    assert_eq!(fake.comments(42).len(), 7);
    assert!(
        fake.count("GET", "/issues/42/comments") >= 4,
        "all pages read"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_personal_token_finds_its_own_comments() {
    let fake = FakeGitHub::start().await;
    fake.token_user("octo-dev");
    assert!(up(&fake, SHA1, "ghcr.io/acme/shop:1").await.is_empty());
    assert!(up(&fake, SHA1, "ghcr.io/acme/shop:2").await.is_empty());
    let comments = fake.comments(42);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0].user, "octo-dev");
    assert_eq!(fake.count("GET", "/user"), 2);
}

#[tokio::test]
async fn an_app_token_posting_under_another_name_is_told_how_to_fix_it() {
    let fake = FakeGitHub::start().await;
    fake.poster("acme-previews[bot]");
    let w = up(&fake, SHA1, "ghcr.io/acme/shop:1").await;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].message
            .contains("EPHEMERA_GITHUB_COMMENT_AUTHOR=acme-previews[bot]"),
        "{w:?}"
    );
}

#[tokio::test]
async fn secondary_rate_limits_are_retried_after_the_time_asked() {
    for how in [
        RateLimit::RetryAfter(1),
        RateLimit::Reset(1),
        RateLimit::TooMany(1),
    ] {
        let fake = FakeGitHub::start().await;
        fake.rate_limit(1, how);
        let t0 = Instant::now();
        let mut r = Reporter::new(settings(&fake, SHA1));
        let w = r.started(&env("pr-42"), 42, None).await;
        let took = t0.elapsed();
        assert!(w.is_empty(), "{how:?}: {w:?}");
        assert!(
            took >= Duration::from_millis(900),
            "{how:?}: waited only {took:?}"
        );
        let seen = fake.seen();
        assert!(matches!(seen[0].status, 403 | 429), "{how:?}: {seen:?}");
        assert_eq!(
            seen[1].path, seen[0].path,
            "{how:?}: the same request again"
        );
        assert_eq!(fake.deployments().len(), 1);
        assert_eq!(states(&fake, fake.deployments()[0].id), ["in_progress"]);
    }
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_budget_is_not_waited_out() {
    let fake = FakeGitHub::start().await;
    fake.rate_limit(100, RateLimit::RetryAfter(3600));
    let t0 = Instant::now();
    let w = Reporter::new(settings(&fake, SHA1))
        .started(&env("pr-42"), 42, None)
        .await;
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("past the time budget"), "{w:?}");
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn short_server_errors_are_retried() {
    let fake = FakeGitHub::start().await;
    fake.outage(502);
    let restore = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        fake.restore();
    };
    let mut r = Reporter::new(settings(&fake, SHA1));
    let name = env("pr-42");
    let (w, ()) = tokio::join!(r.started(&name, 42, None), restore);
    assert!(w.is_empty(), "{w:?}");
    assert!(fake.seen().iter().any(|s| s.status == 502));
    assert_eq!(fake.deployments().len(), 1);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_persistent_outage_gives_warnings_within_the_budget() {
    let fake = FakeGitHub::start().await;
    fake.outage(500);
    let mut s = settings(&fake, SHA1);
    s.retry.budget = Duration::from_secs(1);
    let mut r = Reporter::new(s);
    let bound = Duration::from_millis(1000 + 2000 + 500); // budget + one request timeout + slack

    let mut all = Vec::new();
    for step in ["started", "succeeded", "failed", "torn_down"] {
        let t0 = Instant::now();
        let w = match step {
            "started" => r.started(&env("pr-42"), 42, None).await,
            "succeeded" => r.succeeded(URL, &data("ghcr.io/acme/shop:1")).await,
            "failed" => r.failed("boom", &data("ghcr.io/acme/shop:1")).await,
            _ => r.torn_down(&env("pr-42"), 42).await,
        };
        assert!(t0.elapsed() < bound, "{step} took {:?}", t0.elapsed());
        assert!(!w.is_empty(), "{step}: an outage must be reported");
        all.extend(w);
    }
    let text: Vec<String> = all.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("GitHub unavailable") && t.contains("500")),
        "{text:#?}"
    );
    assert!(text.iter().all(|t| !t.contains(TOKEN)), "{text:#?}");
    assert!(
        fake.seen().len() > 4,
        "retried before giving up: {}",
        fake.seen().len()
    );
    assert!(fake.deployments().is_empty() && fake.comments(42).is_empty());

    // Once GitHub is back, the next run converges to the normal state.
    fake.restore();
    assert!(up(&fake, SHA1, "ghcr.io/acme/shop:1").await.is_empty());
    assert_eq!(fake.deployments().len(), 1);
    assert_eq!(fake.comments(42).len(), 1);
}

#[tokio::test]
async fn a_wrong_token_is_a_prompt_warning_without_the_token() {
    let fake = FakeGitHub::start().await;
    let env_vars: HashMap<&str, String> = fake
        .env(SHA1)
        .into_iter()
        .map(|(k, v)| {
            if k == "GITHUB_TOKEN" {
                (k, "ghs_wrongWRONGwrong".to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let s = Settings::from_lookup(None, true, |k| env_vars.get(k).cloned())
        .unwrap()
        .unwrap();
    assert!(!format!("{s:?}").contains("ghs_wrong"));
    let t0 = Instant::now();
    let w = Reporter::new(s).started(&env("pr-42"), 42, None).await;
    assert!(t0.elapsed() < Duration::from_secs(1), "401 is not retried");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].message.contains("401") && !w[0].message.contains("ghs_wrong"),
        "{w:?}"
    );
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn parts_turned_off_in_the_environment_file_are_not_touched() {
    let fake = FakeGitHub::start().await;
    let vars: HashMap<&str, String> = fake.env(SHA1).into_iter().collect();
    let cfg = ephemera::config::GitHub {
        repository: None,
        api_url: None,
        deployments: false,
        comment: true,
    };
    let s = Settings::from_lookup(Some(&cfg), false, |k| vars.get(k).cloned())
        .unwrap()
        .unwrap();
    let mut r = Reporter::new(s);
    assert!(r.started(&env("pr-42"), 42, None).await.is_empty());
    assert!(
        r.succeeded(URL, &data("ghcr.io/acme/shop:1"))
            .await
            .is_empty()
    );
    assert!(fake.deployments().is_empty());
    assert_eq!(fake.count("GET", "/deployments"), 0);
    assert_eq!(fake.comments(42).len(), 1);
}

#[test]
fn the_fake_runs_beside_synchronous_code() {
    // The shape a test of the `ephemera` binary uses: the fake on its own thread.
    let fake = FakeGitHub::start_in_thread();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(async {
        let mut r = Reporter::new(settings(&fake, SHA1));
        r.started(&env("pr-9"), 9, None).await
    });
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(fake.deployments().len(), 1);
    drop(fake);
}
