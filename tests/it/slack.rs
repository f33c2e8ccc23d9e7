//! Slack for every change, through the real binary and a fake incoming webhook: each command's
//! message (Block Kit blocks and the text fallback), `notifications.slack.on` filtering, and no
//! secret in any output. `gc` of an open PR's expired preview marks its GitHub Deployment
//! inactive and edits the PR comment to say how to bring it back.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::common::fake_arm::{Config, FakeArm};
use crate::common::fake_github::{FakeGitHub, OWNER, REPO, TOKEN};
use crate::common::fake_slack::{FakeSlack, SECRET};
use crate::common::lifecycle::{Sandbox, aks_env, describe, group_of, local_env, manifests};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const SLACK: &str = "notifications:\n  slack:\n    webhookEnv: SLACK_WEBHOOK_URL\n";

/// The text of every mrkdwn field of a message's sections, by label (`*Image*\n...`).
fn fields(p: &Value) -> BTreeMap<String, String> {
    p["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .filter_map(|b| b["fields"].as_array())
        .flatten()
        .filter_map(|f| f["text"].as_str())
        .filter_map(|t| t.split_once('\n'))
        .map(|(k, v)| (k.trim_matches('*').to_string(), v.to_string()))
        .collect()
}

/// The message's headline: the first section's text.
fn headline(p: &Value) -> String {
    p["blocks"][0]["text"]["text"]
        .as_str()
        .expect("a headline section")
        .to_string()
}

/// The error section's text, when there is one.
fn error_block(p: &Value) -> Option<String> {
    p["blocks"]
        .as_array()?
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .find(|t| t.starts_with("*Error*"))
        .map(str::to_string)
}

/// The messages posted since `before` of them.
fn since(slack: &FakeSlack, before: usize) -> Vec<Value> {
    slack.payloads()[before..].to_vec()
}

#[test]
fn every_command_posts_one_message_with_blocks_and_a_fallback() {
    let Some(mut sb) = Sandbox::local() else {
        return;
    };
    let slack = FakeSlack::start();
    let github = FakeGitHub::start_in_thread();
    // A CI run's variables (for the PR and run links) and the webhook; no GitHub reporting.
    let mut vars: Vec<(String, String)> = github
        .env(SHA)
        .into_iter()
        .filter(|(k, _)| *k != "GITHUB_TOKEN")
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    vars.push(("SLACK_WEBHOOK_URL".into(), slack.url.clone()));
    sb.add_vars(vars);
    let env = sb.write("sl.yaml", &format!("{}{SLACK}", local_env("sl")));
    let env = env.to_str().expect("utf-8");
    // The same environment, with only failures sent.
    let failures = sb.write(
        "sl-failures.yaml",
        &format!("{}{SLACK}    on: [failure]\n", local_env("sl")),
    );
    let failures = failures.to_str().expect("utf-8");
    let bundles = manifests();
    let mut outputs = String::new();
    let mut run = |args: &[&str], ok: bool| {
        let o = sb.run(args);
        let what = describe(args, &o);
        assert_eq!(o.status.success(), ok, "{what}");
        outputs.push_str(&what);
    };
    struct Down<'a>(&'a Sandbox, &'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = self.0.run(&["down", "--env", self.1, "--pr", "7"]);
        }
    }
    let _down = Down(&sb, env);

    // up: the preview, with the PR link, the image, the commit and how long it took.
    let n = slack.payloads().len();
    run(
        &[
            "up",
            "--env",
            env,
            "--pr",
            "7",
            "--image",
            "ghcr.io/acme/cats:v1",
            "--sha",
            SHA,
            "--manifests",
            &bundles,
        ],
        true,
    );
    let sent = since(&slack, n);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let up = &sent[0];
    assert_eq!(headline(up), ":white_check_mark: *pr-7 is up*");
    let f = fields(up);
    assert_eq!(f["Environment"], "`pr-7`");
    assert_eq!(
        f["PR"],
        format!("<https://github.example/{OWNER}/{REPO}/pull/7|#7>")
    );
    assert_eq!(f["Image"], "`ghcr.io/acme/cats:v1`");
    assert_eq!(f["Commit"], format!("`{SHA}`"));
    assert_eq!(f["Result"], "the new image serves 100%");
    assert!(f.contains_key("URL") && f.contains_key("Duration") && f.contains_key("Expires"));
    let text = up["text"].as_str().expect("fallback text");
    assert!(text.starts_with("ephemera: pr-7 is up\n"), "{text}");
    for want in [
        "Image: ghcr.io/acme/cats:v1",
        "Result: the new image serves 100%",
        "/actions/runs/4242|run>",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    assert!(error_block(up).is_none());

    // deploy, promote, abort and extend: one message each, saying what changed.
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &[
                "deploy",
                "--env",
                env,
                "--pr",
                "7",
                "--image",
                "ghcr.io/acme/cats:v2",
            ],
            "pr-7: new image rolled out",
            "Healthy, 100% on the new image",
        ),
        (
            &["promote", "--env", env, "--pr", "7", "--full"],
            "pr-7: canary promoted fully",
            "",
        ),
        (
            &["abort", "--env", env, "--pr", "7"],
            "pr-7: canary aborted",
            "",
        ),
        (
            &["extend", "--env", env, "--pr", "7", "--by", "3h"],
            "pr-7 now expires at ",
            "extended by 3h",
        ),
    ];
    for (args, title, result) in cases {
        let n = slack.payloads().len();
        run(args, true);
        let sent = since(&slack, n);
        assert_eq!(sent.len(), 1, "{args:?}: {sent:#?}");
        let h = headline(&sent[0]);
        assert!(
            h.starts_with(&format!(":white_check_mark: *{title}")),
            "{args:?}: {h}"
        );
        let text = sent[0]["text"].as_str().expect("fallback text");
        assert!(
            text.starts_with(&format!("ephemera: {title}"))
                && text.contains("\nEnvironment: pr-7\n"),
            "{args:?}: {text}"
        );
        let f = fields(&sent[0]);
        assert_eq!(f["Environment"], "`pr-7`", "{args:?}");
        assert!(f.contains_key("Duration"), "{args:?}");
        assert!(f["Result"].contains(result), "{args:?}: {f:?}");
        let context = sent[0]["blocks"]
            .as_array()
            .expect("blocks")
            .last()
            .cloned();
        assert!(
            context.unwrap()["elements"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains(&format!(" · {}", args[0]))),
            "the context names the command: {args:?}"
        );
    }
    let deployed = &slack.payloads()[slack.payloads().len() - 4];
    assert_eq!(fields(deployed)["Image"], "`ghcr.io/acme/cats:v2`");

    // With `on: [failure]`: a successful extend sends nothing, a failed deploy sends its error
    // chain, and the command's exit status is its own.
    let n = slack.payloads().len();
    run(
        &["extend", "--env", failures, "--pr", "7", "--by", "1h"],
        true,
    );
    assert!(since(&slack, n).is_empty(), "{:#?}", since(&slack, n));
    run(
        &[
            "deploy",
            "--env",
            failures,
            "--pr",
            "8",
            "--image",
            "ghcr.io/acme/cats:v3",
            "--timeout",
            "20s",
        ],
        false,
    );
    let sent = since(&slack, n);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(headline(&sent[0]), ":x: *deploy of pr-8 failed*");
    let error = error_block(&sent[0]).expect("an error section");
    assert!(
        error.contains("pr-8"),
        "the chain names the environment: {error}"
    );
    assert!(
        sent[0]["text"].as_str().unwrap().contains("\nError: "),
        "the fallback has the error too"
    );

    // down says how the PR ended.
    let n = slack.payloads().len();
    run(
        &["down", "--env", env, "--pr", "7", "--pr-state", "merged"],
        true,
    );
    let sent = since(&slack, n);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(headline(&sent[0]), ":white_check_mark: *pr-7 is gone*");
    assert_eq!(fields(&sent[0])["Result"], "PR #7 was merged");
    let n = slack.payloads().len();
    run(&["down", "--env", env, "--pr", "7"], true);
    assert_eq!(
        headline(&since(&slack, n)[0]),
        ":white_check_mark: *pr-7 was already gone*"
    );

    // The webhook URL is in no output and no message.
    for p in slack.payloads() {
        assert!(!p.to_string().contains(SECRET));
    }
    assert!(!outputs.contains(SECRET) && !outputs.contains(&slack.url));
    assert!(!outputs.contains(TOKEN));
}

#[test]
fn a_failing_webhook_is_a_warning_without_its_url() {
    let mut sb = Sandbox::with_vars(Vec::new());
    // Nothing listens on port 1; the path is the secret.
    let url = format!("http://127.0.0.1:1/services/{SECRET}");
    sb.add_vars(vec![("SLACK_WEBHOOK_URL".into(), url.clone())]);
    let env = sb.write("n.yaml", &format!("{}{SLACK}", local_env("n")));
    let args = [
        "notify",
        "--env",
        env.to_str().expect("utf-8"),
        "--pr",
        "3",
        "--outcome",
        "failure",
        "--message",
        "the build failed",
    ];
    let o = sb.run(&args);
    let what = describe(&args, &o);
    assert!(
        o.status.success(),
        "a failed post never fails the command: {what}"
    );
    assert!(what.contains("Slack notification failed"), "{what}");
    assert!(
        !what.contains(SECRET) && !what.contains("127.0.0.1:1"),
        "{what}"
    );
}

#[test]
fn notify_uses_the_same_message_and_the_on_filter() {
    let mut sb = Sandbox::with_vars(Vec::new());
    let slack = FakeSlack::start();
    sb.add_vars(vec![("SLACK_WEBHOOK_URL".into(), slack.url.clone())]);
    let env = sb.write(
        "n.yaml",
        &format!("{}{SLACK}    on: [notify, failure]\n", local_env("n")),
    );
    let env = env.to_str().expect("utf-8");
    let notify = |outcome: &str, message: &str| {
        let args = [
            "notify",
            "--env",
            env,
            "--pr",
            "3",
            "--outcome",
            outcome,
            "--message",
            message,
            "--output",
            "json",
        ];
        let o = sb.run(&args);
        assert!(o.status.success(), "{}", describe(&args, &o));
        serde_json::from_slice::<Value>(&o.stdout).expect("JSON")
    };
    let r = notify("success", "PR #3: nothing to do");
    assert_eq!(r["slack"], "not wanted (notifications.slack.on)");
    assert!(slack.payloads().is_empty());
    let r = notify("failure", "the build of <!channel> failed");
    assert_eq!(r["slack"], "sent");
    let p = &slack.payloads()[0];
    assert_eq!(
        headline(p),
        ":x: *the build of &lt;!channel&gt; failed*",
        "markup in the message is escaped"
    );
    assert_eq!(fields(p)["Environment"], "`pr-3`");
    assert!(
        p["text"]
            .as_str()
            .unwrap()
            .starts_with("ephemera: the build of &lt;!channel&gt; failed")
    );
}

#[test]
fn an_unknown_event_in_on_is_a_one_line_error_naming_file_line_and_field() {
    let sb = Sandbox::with_vars(Vec::new());
    let yaml = format!("{}{SLACK}    on: [up, deploys]\n", local_env("bad"));
    let line = yaml.lines().count();
    let env = sb.write("bad.yaml", &yaml);
    let args = ["plan", "--env", env.to_str().expect("utf-8"), "--pr", "1"];
    let o = sb.run(&args);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&args, &o));
    let err = String::from_utf8_lossy(&o.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains(&format!("bad.yaml:{line}:"))
            && first.contains("notifications.slack.on[1]: \"deploys\" is not an event"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// The tags of a record of ours, as the AKS provider writes them on the cluster and group.
fn tags(name: &str, pr: u64, expires: Timestamp) -> Value {
    let r = ephemera::record::Record {
        name: name.into(),
        provider: "aks".into(),
        repository: Some(format!("{OWNER}/{REPO}")),
        pr: Some(pr),
        created_at: "2026-11-01T00:00:00Z".parse().expect("time"),
        expires_at: expires,
        created_by: Some("app:ci".into()),
        version: ephemera::VERSION.into(),
        url: None,
        env_file: Some("gcs".into()),
        pool: None,
    };
    Value::Object(
        r.to_pairs()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_of_an_open_prs_expired_preview_marks_it_inactive_and_says_how_to_bring_it_back() {
    let fake = FakeArm::start(Config {
        polls: 1,
        ..Config::default()
    })
    .await;
    let github = FakeGitHub::start().await;
    let slack = FakeSlack::start();
    let past = Timestamp::now() - SignedDuration::from_hours(1);
    let future = Timestamp::now() + SignedDuration::from_hours(5);
    // pr-1: expired, PR open. pr-2: expired, PR closed. pr-3: alive.
    for (name, pr, expires) in [("pr-1", 1, past), ("pr-2", 2, past), ("pr-3", 3, future)] {
        let group = group_of("gcs", name);
        fake.seed_group(&group, tags(name, pr, expires));
        fake.seed_cluster(&group, name, tags(name, pr, expires));
    }
    // Each had a successful up: a Deployment and the sticky comment.
    let lookup = |k: &str| {
        github
            .env(SHA)
            .into_iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v)
    };
    let settings = ephemera::github::Settings::from_lookup(None, true, lookup)
        .expect("settings")
        .expect("on");
    for pr in 1..=3 {
        let name = ephemera::names::EnvName::from_name(&format!("pr-{pr}")).expect("name");
        let mut r = ephemera::github::Reporter::new(settings.clone());
        assert!(r.started(&name, pr, Some(SHA)).await.is_empty());
        let data = ephemera::github::CommentData::new(name, pr, ephemera::github::CommentState::Up);
        assert!(r.succeeded("https://x.example", &data).await.is_empty());
    }

    let mut sb = Sandbox::aks(&fake);
    let mut vars: Vec<(String, String)> = github
        .env(SHA)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    vars.push(("SLACK_WEBHOOK_URL".into(), slack.url.clone()));
    sb.add_vars(vars);
    let env = sb.write(
        "gcs.yaml",
        &format!("{}{SLACK}", aks_env("gcs", "  argoRollouts: {}", "24h")),
    );
    let open = sb.write("open.txt", "1\n3\n");
    let args = [
        "gc",
        "--env",
        env.to_str().expect("utf-8"),
        "--open-prs",
        open.to_str().expect("utf-8"),
        "--repository",
        &format!("{OWNER}/{REPO}"),
        "--github",
        "--output",
        "json",
    ];
    let o = tokio::task::block_in_place(|| sb.run(&args));
    let what = describe(&args, &o);
    assert!(o.status.success(), "{what}");
    assert!(!what.contains(TOKEN) && !what.contains(SECRET), "{what}");
    let report: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let names: Vec<&str> = report["collected"]
        .as_array()
        .expect("collected")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["pr-1", "pr-2"], "{report:#}");

    let last_state = |env: &str| {
        github
            .deployments()
            .iter()
            .filter(|d| d.environment == env)
            .map(|d| {
                github
                    .statuses(d.id)
                    .last()
                    .map(|s| s.state.clone())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(last_state("preview/pr-1"), ["inactive"]);
    assert_eq!(last_state("preview/pr-2"), ["inactive"]);
    assert_eq!(
        last_state("preview/pr-3"),
        ["success"],
        "an alive preview is untouched"
    );

    // The open PR's single comment says it expired and how to bring it back.
    let c1 = github.comments(1);
    assert_eq!(c1.len(), 1, "{c1:?}");
    assert!(c1[0].body.contains("expired"), "{}", c1[0].body);
    assert!(
        c1[0].body.contains("To bring it back, push a commit"),
        "{}",
        c1[0].body
    );
    assert!(
        c1[0].body.contains("ephemera up --env ") && c1[0].body.contains("--pr 1 --image"),
        "{}",
        c1[0].body
    );
    // The closed PR's says it is gone.
    let c2 = github.comments(2);
    assert_eq!(c2.len(), 1, "{c2:?}");
    assert!(c2[0].body.contains("is gone"), "{}", c2[0].body);
    assert!(github.comments(3)[0].body.contains("is up"));

    // One Slack message for the run, naming each collected environment and why.
    let sent = slack.payloads();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        headline(&sent[0]),
        ":white_check_mark: *gc deleted 2 environments*"
    );
    let f = fields(&sent[0]);
    assert!(f["pr-1"].starts_with("expired at "), "{f:?}");
    assert!(f["pr-2"].starts_with("expired at "), "{f:?}");
    assert_eq!(f["Result"], "3 examined, 2 deleted");

    // A rerun finds nothing: no message, no GitHub call.
    let o = tokio::task::block_in_place(|| sb.run(&args));
    assert!(o.status.success(), "{}", describe(&args, &o));
    assert_eq!(
        slack.payloads().len(),
        1,
        "a gc with nothing to do stays quiet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_up_that_gives_way_is_a_neutral_message_not_a_failure() {
    use ephemera::engine::lease::{LeaseRecord, Operation};
    let fake = FakeArm::start(Config {
        polls: 1,
        ..Config::default()
    })
    .await;
    let slack = FakeSlack::start();
    // pr-5 exists, and a live `down` holds its lease: `up` gives way (exit 4).
    let mut t = tags("pr-5", 5, Timestamp::now() + SignedDuration::from_hours(5));
    let lease = LeaseRecord::new(
        "runner-9-100",
        Operation::Down,
        Timestamp::now(),
        std::time::Duration::from_secs(300),
    );
    t["ephemera-lease"] = Value::String(lease.to_tag());
    let group = group_of("sup", "pr-5");
    fake.seed_group(&group, t.clone());
    fake.seed_cluster(&group, "pr-5", t);
    let mut sb = Sandbox::aks(&fake);
    sb.add_vars(vec![("SLACK_WEBHOOK_URL".into(), slack.url.clone())]);
    let env = sb.write(
        "sup.yaml",
        &format!("{}{SLACK}", aks_env("sup", "  argoRollouts: {}", "24h")),
    );
    let args = [
        "up",
        "--env",
        env.to_str().expect("utf-8"),
        "--pr",
        "5",
        "--image",
        "ghcr.io/acme/cats:v9",
        "--manifests",
        &manifests(),
    ];
    let o = tokio::task::block_in_place(|| sb.run(&args));
    assert_eq!(o.status.code(), Some(4), "{}", describe(&args, &o));
    let sent = slack.payloads();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(headline(&sent[0]), ":fast_forward: *up of pr-5 gave way*");
    assert!(
        error_block(&sent[0]).is_none(),
        "no error section: {sent:#?}"
    );
    let result = &fields(&sent[0])["Result"];
    assert!(result.contains("held by down run runner-9-100"), "{result}");
    // Filtered as `superseded`, not as a failure.
    let failures = sb.write(
        "sup-failures.yaml",
        &format!(
            "{}{SLACK}    on: [failure]\n",
            aks_env("sup", "  argoRollouts: {}", "24h")
        ),
    );
    let mut args = args;
    args[2] = failures.to_str().expect("utf-8");
    let o = tokio::task::block_in_place(|| sb.run(&args));
    assert_eq!(o.status.code(), Some(4), "{}", describe(&args, &o));
    assert_eq!(slack.payloads().len(), 1, "{:#?}", slack.payloads());
}
