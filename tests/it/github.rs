//! GitHub reporting against the fake GitHub API: deployments, statuses, the sticky comment,
//! rate limits and outages.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ephemera::github::{CommentData, CommentState, Reporter, Settings, Warning};
use ephemera::names::EnvName;

use crate::common::fake_github::{BOT, FakeGitHub, RateLimit, TOKEN};

const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";
const SHA3: &str = "3333333333333333333333333333333333333333";
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
        "ephemera extend --env environments/local.yaml --pr 42 --by 24h",
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

/// A run that gave way to a newer one (exit 4) deployed nothing: its Deployment is inactive,
/// not failed, and the comment still shows the preview the winner made.
#[tokio::test]
async fn a_run_that_gave_way_leaves_its_deployment_inactive_and_the_comment_alone() {
    let fake = FakeGitHub::start().await;
    assert!(up(&fake, SHA2, "ghcr.io/acme/shop:2").await.is_empty());
    let before = fake.comments(42);

    // The older commit's run starts late and finds the newer run holding the environment.
    let mut r = Reporter::new(settings(&fake, SHA1));
    assert!(r.started(&env("pr-42"), 42, None).await.is_empty());
    let why = "environment pr-42 is held by up run 20260801T100000Z-1";
    let w = r.superseded(why).await;
    assert!(w.is_empty(), "{w:?}");
    let mine = fake
        .deployments()
        .into_iter()
        .find(|d| d.sha == SHA1)
        .expect("the older commit's deployment");
    assert_eq!(states(&fake, mine.id), ["in_progress", "inactive"]);
    let last = fake.statuses(mine.id).pop().unwrap();
    assert_eq!(last.environment_url, None, "no URL: this run has none");
    assert_eq!(last.log_url.as_deref(), Some(RUN));
    assert_eq!(
        last.description.as_deref(),
        Some(format!("Gave way: {why}").as_str())
    );
    let winner = fake
        .deployments()
        .into_iter()
        .find(|d| d.sha == SHA2)
        .unwrap();
    assert_eq!(states(&fake, winner.id), ["in_progress", "success"]);
    let after = fake.comments(42);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].body, before[0].body, "the comment is the winner's");

    // The next success retires the winner's deployment, past the one that gave way (which
    // never went live).
    assert!(up(&fake, SHA3, "ghcr.io/acme/shop:3").await.is_empty());
    assert_eq!(
        states(&fake, winner.id),
        ["in_progress", "success", "inactive"],
        "the older live deployment is retired"
    );
    assert_eq!(states(&fake, mine.id), ["in_progress", "inactive"]);

    // A run that never got as far as a deployment creates none just to say this.
    let n = fake.deployments().len();
    let mut r = Reporter::new(settings(&fake, SHA1));
    assert!(r.superseded(why).await.is_empty());
    assert_eq!(fake.deployments().len(), n);
    assert_eq!(fake.violations(), Vec::<String>::new());
}

/// A preview without a URL yet (no host, or the local provider): the success status carries no
/// environment_url at all, rather than an empty one GitHub would refuse.
#[tokio::test]
async fn an_up_without_a_url_sends_no_environment_url() {
    let fake = FakeGitHub::start().await;
    let mut r = Reporter::new(settings(&fake, SHA1));
    assert!(r.started(&env("pr-42"), 42, None).await.is_empty());
    let w = r.succeeded("", &data("ghcr.io/acme/shop:1")).await;
    assert!(w.is_empty(), "{w:?}");
    let d = &fake.deployments()[0];
    assert_eq!(states(&fake, d.id), ["in_progress", "success"]);
    assert_eq!(fake.statuses(d.id)[1].environment_url, None);
    assert_eq!(fake.comments(42).len(), 1);
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

// The composite action and the example workflows.

mod action {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    use serde_json::Value;
    use sha2::Digest;

    use crate::common::actions_runner::gh_stand_in;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn yaml(rel: &str) -> Value {
        let text = std::fs::read_to_string(root().join(rel)).unwrap();
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    const WORKFLOWS: [&str; 5] = [
        "scripts/github/release.yml",
        "scripts/github/pr-open.yml",
        "scripts/github/pr-preview.yml",
        "scripts/github/pr-closed.yml",
        "scripts/github/gc.yml",
    ];

    /// Every step of a workflow or of the composite action.
    fn steps(doc: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        if let Some(s) = doc.pointer("/runs/steps").and_then(Value::as_array) {
            out.extend(s.iter().cloned());
        }
        if let Some(jobs) = doc.get("jobs").and_then(Value::as_object) {
            for job in jobs.values() {
                out.extend(job["steps"].as_array().cloned().unwrap_or_default());
            }
        }
        out
    }

    #[test]
    fn no_expression_is_expanded_inside_a_script() {
        for rel in std::iter::once("action.yml").chain(WORKFLOWS) {
            let doc = yaml(rel);
            let steps = steps(&doc);
            assert!(!steps.is_empty(), "{rel} has steps");
            for step in steps {
                if let Some(run) = step.get("run").and_then(Value::as_str) {
                    assert!(
                        !run.contains("${{"),
                        "{rel}: an expression inside run:\n{run}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_action_passes_every_input_through_the_environment() {
        let doc = yaml("action.yml");
        let run = steps(&doc)
            .into_iter()
            .find(|s| s["id"] == "run")
            .expect("a step with id run");
        let env = run["env"].as_object().unwrap();
        let script = ["run.sh", "api.sh"]
            .map(|f| std::fs::read_to_string(root().join("scripts/github").join(f)).unwrap())
            .concat();
        for (input, _) in doc["inputs"].as_object().unwrap() {
            if matches!(input.as_str(), "token" | "version" | "verify-attestation") {
                continue;
            }
            let var = format!("INPUT_{}", input.to_uppercase().replace('-', "_"));
            assert_eq!(
                env.get(&var).and_then(Value::as_str),
                Some(format!("${{{{ inputs.{input} }}}}").as_str()),
                "{var}"
            );
            assert!(script.contains(&var), "run.sh or api.sh reads {var}");
        }
        for key in ["url", "name", "expires-at"] {
            assert_eq!(
                doc["outputs"][key]["value"],
                format!("${{{{ steps.run.outputs.{key} }}}}"),
                "output {key}"
            );
        }
    }

    #[test]
    fn the_workflows_keep_pr_code_away_from_privileges() {
        let open = yaml("scripts/github/pr-open.yml");
        assert!(open["on"].get("pull_request").is_some());
        assert!(open["on"].get("pull_request_target").is_none());
        assert_eq!(open["permissions"], serde_json::json!({"contents": "read"}));
        assert!(!serde_json::to_string(&open).unwrap().contains("id-token"));

        let preview = yaml("scripts/github/pr-preview.yml");
        assert_eq!(preview["on"]["workflow_run"]["workflows"][0], open["name"]);
        let job = &preview["jobs"]["preview"];
        assert_eq!(job["permissions"]["id-token"], "write");
        assert_eq!(job["permissions"]["deployments"], "write");

        let closed = yaml("scripts/github/pr-closed.yml");
        assert!(closed["on"].get("pull_request_target").is_some());

        for (rel, doc) in [("pr-preview", &preview), ("pr-closed", &closed)] {
            assert_eq!(
                doc["permissions"],
                serde_json::json!({}),
                "{rel}: no default grants"
            );
            for step in steps(doc) {
                let uses = step["uses"].as_str().unwrap_or_default();
                if uses.starts_with("actions/checkout") {
                    assert!(
                        step.pointer("/with/ref").is_none()
                            && step.pointer("/with/repository").is_none(),
                        "{rel}: the privileged workflow checks out only the default branch"
                    );
                }
                if uses.starts_with("azure/login") {
                    let with = step["with"].as_object().unwrap();
                    assert!(
                        with.contains_key("client-id") && !with.contains_key("creds"),
                        "{rel}: OIDC, no secret"
                    );
                }
            }
        }
    }

    /// A directory holding the **real** `ephemera` (a link to the binary under test) and, where
    /// a test adds it, a stand-in for `gh`; HOME and the XDG dirs of its runs are inside it.
    struct Bin {
        dir: tempfile::TempDir,
    }

    impl Bin {
        fn new() -> Bin {
            let dir = tempfile::tempdir().unwrap();
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ephemera"), dir.path().join("ephemera"))
                .unwrap();
            Bin { dir }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        fn run(&self, script: &str, env: &[(&str, &str)]) -> Output {
            let path = format!(
                "{}:{}",
                self.path().display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let mut c = Command::new("bash");
            c.arg(root().join("scripts/github").join(script))
                .current_dir(self.path())
                .env_clear()
                .env("PATH", path)
                .env("HOME", self.path().join("home"))
                .env("XDG_STATE_HOME", self.path().join("state"))
                .env("XDG_CACHE_HOME", self.path().join("cache"))
                .env("RUNNER_TEMP", self.path());
            for (k, v) in env {
                c.env(k, v);
            }
            c.output().unwrap()
        }
    }

    /// Whether run.sh started ephemera: it prints the command line, quoted, just before.
    fn ran(out: &Output) -> bool {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("ephemera "))
    }

    fn printed(out: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Hostile inputs through run.sh to the real binary: `plan` (pure, so nothing is created)
    /// reads the environment file whose name is shell code and writes the branch and title into
    /// the Rollout's annotations exactly as given; nothing in them ran.
    #[test]
    fn hostile_inputs_reach_ephemera_as_single_arguments() {
        let bin = Bin::new();
        let branch = "x$(touch pwned1);`touch pwned2` * \"'";
        let title = "Fix $HOME; rm -rf /";
        let env_file = "environments/$(touch pwned3) pr.yaml";
        std::fs::create_dir_all(bin.path().join("environments")).unwrap();
        std::fs::write(
            bin.path().join(env_file),
            crate::common::lifecycle::local_env("shop"),
        )
        .unwrap();
        let out = bin.run(
            "run.sh",
            &[
                ("INPUT_COMMAND", "plan"),
                ("INPUT_ENV", env_file),
                ("INPUT_PR", "42"),
                ("INPUT_IMAGE", "ghcr.io/acme/shop:pr-42"),
                ("INPUT_BRANCH", branch),
                ("INPUT_TITLE", title),
                ("INPUT_SHA", "1111111111111111111111111111111111111111"),
                ("INPUT_GITHUB", "true"),
                ("INPUT_ARGS", "--ttl\n4h\n\n--output\njson\n"),
            ],
        );
        assert!(out.status.success(), "{}", printed(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (command, json) = stdout.split_once('\n').unwrap();
        assert!(command.starts_with("ephemera plan --env "), "{command}");
        let plan: Value = serde_json::from_str(json).expect("plan's JSON");
        let rollout = plan["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["object"])
            .find(|o| o["kind"] == "Rollout")
            .unwrap_or_else(|| panic!("no Rollout in {plan:#}"));
        let annotations = &rollout["metadata"]["annotations"];
        assert_eq!(
            annotations["ephemera.dev/branch"], branch,
            "{annotations:#}"
        );
        assert_eq!(annotations["ephemera.dev/title"], title, "{annotations:#}");
        assert_eq!(annotations["ephemera.dev/pr"], "42", "{annotations:#}");
        assert_eq!(
            annotations["ephemera.dev/image"], "ghcr.io/acme/shop:pr-42",
            "{annotations:#}"
        );
        for f in ["pwned1", "pwned2", "pwned3"] {
            assert!(
                !bin.path().join(f).exists() && !bin.path().join("environments").join(f).exists(),
                "{f} was created: an input ran as code"
            );
        }
    }

    #[test]
    fn bad_inputs_stop_before_ephemera_runs() {
        for (k, v) in [
            ("INPUT_PR", "42; id"),
            ("INPUT_PR", "0"),
            ("INPUT_COMMAND", "up; id"),
            ("INPUT_GITHUB", "yes"),
        ] {
            let bin = Bin::new();
            let mut env = vec![("INPUT_COMMAND", "down"), ("INPUT_ENV", "e.yaml")];
            env.retain(|(ek, _)| *ek != k);
            env.push((k, v));
            let out = bin.run("run.sh", &env);
            assert_eq!(out.status.code(), Some(2), "{k}={v}");
            assert!(!ran(&out), "{k}={v}: ephemera must not run");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("::error"), "{k}={v}");
            assert!(
                !stderr.contains("e.yaml"),
                "{k}={v}: ephemera never got as far as the file: {stderr}"
            );
        }
    }

    #[test]
    fn gc_lists_every_page_of_open_prs_through_the_api() {
        use crate::common::fake_github::{FakeGitHub, PullRequest};
        let fake = FakeGitHub::start_in_thread();
        fake.page_size(2);
        for n in [3, 5, 8, 13, 21] {
            fake.set_pull(PullRequest::open(n, &format!("b{n}"), &"a".repeat(40)));
        }
        let mut closed = PullRequest::open(34, "b34", &"b".repeat(40));
        closed.state = "closed".into();
        fake.set_pull(closed);
        let bin = Bin::new();
        let env_file = bin.path().join("pr-local.yaml");
        std::fs::write(&env_file, crate::common::lifecycle::local_env("shop")).unwrap();
        let mut env: Vec<(&str, String)> = fake.env(&"a".repeat(40));
        env.extend([
            ("INPUT_COMMAND", "gc".to_string()),
            ("INPUT_ENV", env_file.display().to_string()),
            ("INPUT_OPEN_PRS", "auto".into()),
        ]);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = bin.run("run.sh", &env);
        assert!(out.status.success(), "{}", printed(&out));
        // The real gc ran with the list (this machine has no environment of that file, so it
        // deletes nothing).
        let list = bin.path().join("ephemera-open-prs.txt");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with(&format!(
                "ephemera gc --env {} --open-prs {} --github\n",
                env_file.display(),
                list.display()
            )),
            "{stdout}"
        );
        assert_eq!(std::fs::read_to_string(&list).unwrap(), "3\n5\n8\n13\n21\n");
        assert_eq!(
            fake.count("GET", "/pulls"),
            4,
            "three pages of at most two, then the empty page that ends the list"
        );
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
        assert!(!printed(&out).contains(crate::common::fake_github::TOKEN));

        // An API that cannot be reached: no list, so no gc (it would delete open PRs' previews).
        let bin = Bin::new();
        let out = bin.run(
            "run.sh",
            &[
                ("INPUT_COMMAND", "gc"),
                ("INPUT_ENV", "e.yaml"),
                ("INPUT_OPEN_PRS", "auto"),
                ("GITHUB_REPOSITORY", "a/b"),
                ("GITHUB_API_URL", "http://127.0.0.1:1"),
                ("GITHUB_TOKEN", "t"),
            ],
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot list the open PRs"));
        assert!(!ran(&out), "no list, no gc");
    }

    /// `command: check` against the fake API: which open PR a build was for, and what its
    /// preview does.
    #[test]
    fn check_finds_the_pr_and_gates_forks_and_drafts_on_the_label() {
        use crate::common::fake_github::{FakeGitHub, PullRequest};
        let fake = FakeGitHub::start_in_thread();
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        fake.set_pull(PullRequest::open(1, "feature", &a));
        let mut fork = PullRequest::open(2, "main", &a);
        fork.head_repo = "mallory/shop".into();
        fake.set_pull(fork.clone());
        let mut draft = PullRequest::open(3, "wip", &a);
        draft.draft = true;
        fake.set_pull(draft);
        let check = |sha: &str, head_repo: &str, branch: &str| {
            let bin = Bin::new();
            let out_file = bin.path().join("out");
            let mut env: Vec<(&str, String)> = fake.env(sha);
            env.extend([
                ("INPUT_COMMAND", "check".to_string()),
                ("INPUT_SHA", sha.into()),
                ("INPUT_HEAD_REPOSITORY", head_repo.into()),
                ("INPUT_BRANCH", branch.into()),
                ("INPUT_LABEL", "preview ok".into()),
                ("GITHUB_OUTPUT", out_file.display().to_string()),
            ]);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let out = bin.run("run.sh", &env);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!ran(&out), "check never runs ephemera");
            std::fs::read_to_string(out_file).unwrap()
        };
        let out = check(&a, "acme/shop", "feature");
        assert!(out.contains("pr=1\nstate=preview\n"), "{out}");
        let out = check(&b, "acme/shop", "feature");
        assert!(out.contains("pr=1\nstate=superseded\n"), "{out}");
        let out = check(&a, "acme/shop", "gone");
        assert!(out.contains("pr=\nstate=closed\n"), "{out}");
        let out = check(&a, "mallory/shop", "main");
        assert!(out.contains("pr=2\nstate=no-label\n"), "{out}");
        assert!(
            out.contains("fork PR gets a preview only with the label preview ok"),
            "{out}"
        );
        let out = check(&a, "acme/shop", "wip");
        assert!(out.contains("pr=3\nstate=no-label\n"), "{out}");
        fork.labels = vec!["preview ok".into()];
        fake.set_pull(fork);
        let out = check(&a, "mallory/shop", "main");
        assert!(out.contains("pr=2\nstate=preview\n"), "{out}");
        assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    }

    /// `up` giving way to another run (exit 4), through run.sh with the real binary, on an AKS
    /// environment whose cluster on the fake ARM carries a newer run's live lease: `up` writes
    /// nothing to ARM, marks its own GitHub Deployment inactive (not failure), leaves the PR's
    /// comment to the winner, and tells Slack it was superseded; the step ends green with a
    /// notice and `superseded=true`, whether the PR's head moved on or not.
    #[test]
    fn up_giving_way_to_a_newer_run_is_no_failure() {
        use crate::common::fake_arm::{Config, FakeArm};
        use crate::common::fake_github::{BOT, FakeGitHub, PullRequest, TOKEN};
        use crate::common::fake_slack::{FakeSlack, SECRET};
        use crate::common::lifecycle::{ROLLOUTS_ONLY, aks_env, group_of};
        use ephemera::engine::lease::{LeaseRecord, Operation};

        let rt = tokio::runtime::Runtime::new().unwrap();
        let arm = rt.block_on(FakeArm::start(Config::default()));
        let github = FakeGitHub::start_in_thread();
        let slack = FakeSlack::start();
        let (old, new) = ("a".repeat(40), "b".repeat(40));
        // The newer run started a minute after this one will, and holds the lease.
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(1);
        let newer = LeaseRecord::new(
            "runner-2-1",
            Operation::Up,
            later,
            std::time::Duration::from_secs(300),
        );
        arm.seed_cluster(
            &group_of("shop", "pr-9"),
            "pr-9",
            serde_json::json!({
                "ephemera-managed-by": "ephemera",
                "ephemera-pr": "9",
                "ephemera-lease": newer.to_tag(),
            }),
        );
        let winner = format!("<!-- ephemera:pr-9 -->\nthe preview of {}", &new[..12]);
        github.add_comment(9, BOT, &winner);

        let bin = Bin::new();
        let env_file = bin.path().join("pr-aks.yaml");
        std::fs::write(
            &env_file,
            format!(
                "{}notifications:\n  slack:\n    webhookEnv: SLACK_WEBHOOK_URL\n",
                aks_env("shop", ROLLOUTS_ONLY, "24h")
            ),
        )
        .unwrap();
        let manifests = crate::common::testcluster::shared_dir().join("fixtures/manifests");
        let up = |sha: &str| {
            let outputs = bin.path().join("outputs");
            let _ = std::fs::remove_file(&outputs);
            let mut env: Vec<(String, String)> =
                arm.env().into_iter().filter(|(k, _)| k != "PATH").collect();
            env.extend(github.env(sha).into_iter().map(|(k, v)| (k.to_string(), v)));
            env.extend(
                [
                    ("INPUT_COMMAND", "up".to_string()),
                    ("INPUT_ENV", env_file.display().to_string()),
                    ("INPUT_PR", "9".into()),
                    (
                        "INPUT_IMAGE",
                        format!("ghcr.io/acme/shop/preview:pr-9-{}", &sha[..12]),
                    ),
                    ("INPUT_SHA", sha.into()),
                    ("INPUT_GITHUB", "true".into()),
                    ("EPHEMERA_MANIFESTS", manifests.display().to_string()),
                    ("SLACK_WEBHOOK_URL", slack.url.clone()),
                    ("GITHUB_OUTPUT", outputs.display().to_string()),
                ]
                .map(|(k, v)| (k.to_string(), v)),
            );
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let out = bin.run("run.sh", &env);
            let all = printed(&out);
            for secret in [TOKEN, SECRET, crate::common::fake_arm::CLIENT_SECRET] {
                assert!(!all.contains(secret), "a secret reached the output:\n{all}");
            }
            (out, std::fs::read_to_string(outputs).unwrap_or_default())
        };

        // The PR moved on to `new`: the run for `old` gives way.
        github.set_pull(PullRequest::open(9, "feature", &new));
        let (out, outputs) = up(&old);
        let all = printed(&out);
        assert_eq!(out.status.code(), Some(0), "{all}");
        assert!(ran(&out), "{all}");
        assert!(
            all.contains("held by up run runner-2-1"),
            "up says who holds it: {all}"
        );
        assert!(
            all.contains("::notice title=ephemera::PR #9: superseded, the PR's head moved on from aaaaaaaaaaaa to bbbbbbbbbbbb"),
            "{all}"
        );
        assert_eq!(outputs, "superseded=true\n");
        let deployments = github.deployments();
        assert_eq!(deployments.len(), 1, "{deployments:?}");
        assert_eq!(deployments[0].sha, old);
        let statuses = github.statuses(deployments[0].id);
        let states: Vec<&str> = statuses.iter().map(|s| s.state.as_str()).collect();
        assert_eq!(states, ["in_progress", "inactive"], "{statuses:?}");
        let last = statuses.last().unwrap();
        assert_eq!(last.environment_url, None);
        let why = last.description.as_deref().unwrap_or_default();
        assert!(
            why.starts_with("Gave way: ") && why.contains("runner-2-1"),
            "{why}"
        );
        let comments = github.comments(9);
        assert_eq!(comments.len(), 1, "{comments:?}");
        assert_eq!(comments[0].body, winner, "the comment stays the winner's");
        let sent = slack.messages();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(
            sent[0].contains("up of pr-9 gave way") && !sent[0].contains("failed"),
            "{sent:?}"
        );
        assert_eq!(
            arm.calls("PUT", "/subscriptions/") + arm.calls("PATCH", "/subscriptions/"),
            0,
            "an up that gives way writes nothing to ARM"
        );

        // The same commit, still the head (a second run of it holds the preview): the same.
        github.set_pull(PullRequest::open(9, "feature", &old));
        let (out, outputs) = up(&old);
        let all = printed(&out);
        assert_eq!(out.status.code(), Some(0), "{all}");
        assert!(
            all.contains(
                "::notice title=ephemera::PR #9: superseded, another run holds its preview"
            ),
            "{all}"
        );
        assert_eq!(outputs, "superseded=true\n");
        assert_eq!(
            github.deployments().len(),
            1,
            "the same commit's Deployment"
        );
        assert_eq!(
            github
                .statuses(github.deployments()[0].id)
                .last()
                .map(|s| s.state.as_str()),
            Some("inactive")
        );
        assert_eq!(github.comments(9)[0].body, winner);
        assert!(github.violations().is_empty(), "{:?}", github.violations());

        // Any other failure of up stays a failure: a file that does not exist.
        let missing = Bin::new();
        let out = missing.run(
            "run.sh",
            &[
                ("INPUT_COMMAND", "up"),
                ("INPUT_ENV", "missing.yaml"),
                ("INPUT_PR", "9"),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{}", printed(&out));
        assert!(!printed(&out).contains("superseded"));
    }

    /// Every command, with every input set, through run.sh to the real binary: each gets only
    /// flags it accepts (ephemera answers exit 2 and "unexpected argument" to any other).
    #[test]
    fn every_command_gets_only_flags_it_accepts() {
        let bin = Bin::new();
        let open_prs = bin.path().join("open-prs.txt");
        std::fs::write(&open_prs, "1\n").unwrap();
        // A file that does not exist: clap checks the flags first, then the file is refused,
        // so nothing is ever created.
        let env_file = bin.path().join("missing.yaml");
        for cmd in [
            "up", "plan", "deploy", "down", "gc", "extend", "promote", "abort", "status", "list",
            "notify",
        ] {
            let home = bin.path().join(format!("home-{cmd}"));
            let out = bin.run(
                "run.sh",
                &[
                    ("INPUT_COMMAND", cmd),
                    ("INPUT_ENV", env_file.to_str().unwrap()),
                    ("INPUT_PR", "7"),
                    ("INPUT_IMAGE", "ghcr.io/acme/shop:pr-7"),
                    ("INPUT_BRANCH", "feature"),
                    ("INPUT_TITLE", "A title"),
                    ("INPUT_SHA", "1111111111111111111111111111111111111111"),
                    ("INPUT_BY", "2h"),
                    ("INPUT_OPEN_PRS", open_prs.to_str().unwrap()),
                    ("INPUT_OUTCOME", "failure"),
                    ("INPUT_MESSAGE", "the build failed"),
                    ("INPUT_GITHUB", "false"),
                    ("HOME", home.to_str().unwrap()),
                    ("XDG_CACHE_HOME", home.to_str().unwrap()),
                ],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("unexpected argument") && !stderr.contains("Usage:"),
                "{cmd}: {stderr}"
            );
            assert!(
                stderr.contains("missing.yaml"),
                "{cmd}: parsed, then the file: {stderr}"
            );
        }
    }

    const PINNED: &str = "c0ffee0000000000000000000000000000000123";

    /// A release of v1.2.3 for Linux/X64 (v1.2.3 and v1 name commit [`PINNED`]), as gh would
    /// download it; `tamper` corrupts the sum. The `gh` stand-in serves `release download` from
    /// it and `api .../tags` through jq, as `gh api --jq` does.
    fn release(bin: &Bin, tamper: bool) {
        let rel = bin.path().join("release");
        let dir = "ephemera-v1.2.3-x86_64-unknown-linux-gnu";
        let stage = bin.path().join("stage").join(dir);
        std::fs::create_dir_all(&rel).unwrap();
        std::fs::create_dir_all(&stage).unwrap();
        let exe = stage.join("ephemera");
        // The binary under test, packaged as release v1.2.3 (its --version says its own).
        std::fs::copy(env!("CARGO_BIN_EXE_ephemera"), &exe).unwrap();
        let asset = format!("{dir}.tar.gz");
        let ok = Command::new("tar")
            .args(["-czf"])
            .arg(rel.join(&asset))
            .arg("-C")
            .arg(bin.path().join("stage"))
            .arg(dir)
            .status()
            .unwrap();
        assert!(ok.success());
        let mut sum = hex::encode(sha2::Sha256::digest(
            std::fs::read(rel.join(&asset)).unwrap(),
        ));
        if tamper {
            sum = sum.replace(&sum[..2], if &sum[..2] == "00" { "11" } else { "00" });
        }
        std::fs::write(
            rel.join("SHA256SUMS"),
            format!(
                "{}  ephemera-v1.2.3-aarch64-apple-darwin.tar.gz\n{sum}  {asset}\n",
                "0".repeat(64)
            ),
        )
        .unwrap();
        std::fs::write(
            rel.join("tags.json"),
            format!(
                r#"[{{"name":"v1","commit":{{"sha":"{PINNED}"}}}},{{"name":"v1.2.3","commit":{{"sha":"{PINNED}"}}}},{{"name":"v1.2.2","commit":{{"sha":"{}"}}}}]"#,
                "9".repeat(40)
            ),
        )
        .unwrap();
        gh_stand_in(bin.path(), &rel, "acme/ephemera", "v1.2.3");
    }

    /// scripts/release packages the binary these tests built, exactly as release.yml does on
    /// each runner; install.sh installs it from that output and the installed binary runs.
    #[test]
    fn a_release_made_by_scripts_release_installs_and_runs() {
        let bin = Bin::new();
        let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
        let dist = bin.path().join("dist");
        let out = Command::new(root().join("scripts/release"))
            .arg(&tag)
            .arg(&dist)
            .env("EPHEMERA_RELEASE_BIN", env!("CARGO_BIN_EXE_ephemera"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let archive = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let name = archive.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with(&format!("ephemera-{tag}-")) && name.ends_with(".tar.gz"),
            "{name}"
        );
        let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
        let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&archive).unwrap()));
        assert_eq!(sums, format!("{digest}  {name}\n"));

        gh_stand_in(bin.path(), &dist, "acme/ephemera", &tag);
        // The runner's names for this machine, as install.sh maps them back to the target.
        let (os, arch) = match (std::env::consts::OS, std::env::consts::ARCH) {
            ("linux", "x86_64") => ("Linux", "X64"),
            ("linux", "aarch64") => ("Linux", "ARM64"),
            ("macos", "x86_64") => ("macOS", "X64"),
            ("macos", "aarch64") => ("macOS", "ARM64"),
            other => panic!("no release target for {other:?}"),
        };
        let out = install_at(
            &bin,
            &root(),
            &[
                ("GITHUB_ACTION_REF", &tag),
                ("RUNNER_OS", os),
                ("RUNNER_ARCH", arch),
            ],
        );
        let stdout = succeeded(&out);
        assert!(stdout.contains("matches SHA256SUMS"), "{stdout}");
        let installed = bin.path().join("ephemera-bin/ephemera");
        let out = Command::new(&installed).arg("--version").output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("ephemera {}", env!("CARGO_PKG_VERSION"))
        );
    }

    /// What the binary under test prints for --version, as the installed release does.
    fn own_version() -> String {
        format!("ephemera {}", env!("CARGO_PKG_VERSION"))
    }

    /// Asserts the script succeeded (showing its stderr if not); its stdout.
    fn succeeded(out: &Output) -> String {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn install(bin: &Bin) -> Output {
        install_at(bin, &root(), &[("GITHUB_ACTION_REF", "v1.2.3")])
    }

    /// install.sh as the runner runs it for an action unpacked at `action_path`.
    fn install_at(bin: &Bin, action_path: &Path, extra: &[(&str, &str)]) -> Output {
        let gh_path = bin.path().join("github-path");
        let mut env = vec![
            ("GITHUB_ACTION_PATH", action_path.to_str().unwrap()),
            ("GITHUB_ACTION_REPOSITORY", "acme/ephemera"),
            ("GITHUB_PATH", gh_path.to_str().unwrap()),
            ("RUNNER_OS", "Linux"),
            ("RUNNER_ARCH", "X64"),
        ];
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push((k, v));
        }
        bin.run("install.sh", &env)
    }

    /// Pinned at a commit, with GITHUB_ACTION_REF and GITHUB_ACTION_REPOSITORY empty
    /// (actions/runner#2473): the ref and repository come from where the runner unpacked the
    /// action, and the release is the one whose tag names that commit.
    #[test]
    fn install_takes_the_release_of_the_pinned_commit_when_the_runner_says_nothing() {
        let bin = Bin::new();
        release(&bin, false);
        let unpacked = bin.path().join("_actions/acme/ephemera").join(PINNED);
        std::fs::create_dir_all(&unpacked).unwrap();
        let out = install_at(
            &bin,
            &unpacked,
            &[("GITHUB_ACTION_REF", ""), ("GITHUB_ACTION_REPOSITORY", "")],
        );
        let stdout = succeeded(&out);
        assert!(stdout.contains("installing release v1.2.3"), "{stdout}");
        assert!(stdout.contains(&own_version()), "{stdout}");

        // A commit no release tag names, and a branch: clear errors, nothing installed.
        for (ref_, says) in [
            ("1".repeat(40), "has no release"),
            ("main".to_string(), "no release tag or commit"),
        ] {
            let bin = Bin::new();
            release(&bin, false);
            let out = install_at(&bin, &root(), &[("GITHUB_ACTION_REF", &ref_)]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && stderr.contains(says),
                "{ref_}: {stderr}"
            );
            assert!(!bin.path().join("ephemera-bin/ephemera").exists());
        }
    }

    #[test]
    fn install_takes_the_referenced_release_after_checking_its_sum() {
        let bin = Bin::new();
        release(&bin, false);
        let out = install(&bin);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&own_version()));
        let added = std::fs::read_to_string(bin.path().join("github-path")).unwrap();
        assert_eq!(
            added.trim(),
            bin.path().join("ephemera-bin").to_str().unwrap()
        );
        let gh = std::fs::read_to_string(bin.path().join("gh-args")).unwrap();
        assert!(
            gh.contains("release download v1.2.3 --repo acme/ephemera"),
            "{gh}"
        );
    }

    #[test]
    fn install_refuses_a_release_whose_sum_does_not_match() {
        let bin = Bin::new();
        release(&bin, true);
        let out = install(&bin);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !bin.path().join("ephemera-bin/ephemera").exists(),
            "nothing installed"
        );
        assert!(
            !bin.path().join("github-path").exists(),
            "nothing added to PATH"
        );
    }
}
