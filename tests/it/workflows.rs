//! A pull request's whole life through the shipped workflows (`scripts/github/*.yml`) and the
//! composite action (`action.yml`), as they are in the repository, run by the test runner in
//! `common/actions_runner.rs` with the **real** binary: installed by the action's install.sh
//! from a release scripts/release made, against the fake GitHub API, a fake Slack webhook and
//! either the local provider or, with the shipped `pr-aks.yaml` shape, the AKS provider against
//! the fake ARM (whose clusters' kubeconfig is a control plane of the test's own).
//!
//! open → push → a push while a newer run holds the preview (`up` gives way, which is no
//! failure) → a failed build → a push while the previous preview run is in flight → close
//! while a run is in flight → a late build → scheduled gc; a fork PR without then with the label,
//! and its removal; a draft, then ready for review. After each step: at most one environment per
//! PR, running the newest pushed image, the Deployment statuses and the single comment, one
//! Slack message per preview/closed/gc run, and no token or webhook URL in any output. The
//! other commands (`deploy`, `promote`, `abort`, `extend`, `list`, `status`) run through the
//! action with its default inputs from a team's own manual workflow; `down` and `gc` run from
//! the shipped ones.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::actions_runner::{Event, Run, Runner, docker_stand_in, gh_stand_in};
use crate::common::fake_arm::{Config, FakeArm};
use crate::common::fake_github::{FakeGitHub, OWNER, PullRequest, REPO, TOKEN};
use crate::common::fake_slack::{FakeSlack, SECRET};
use crate::common::lifecycle::{
    ROLLOUTS_ONLY, Sandbox, aks_env, group_of, kube_lease, kubectl, local_bin_dirs, local_env,
    manifests,
};
use crate::common::testcluster::{TestCluster, repo_root};

const OPEN: &str = "scripts/github/pr-open.yml";
const PREVIEW: &str = "scripts/github/pr-preview.yml";
const CLOSED: &str = "scripts/github/pr-closed.yml";
const GC: &str = "scripts/github/gc.yml";

/// The commit the shipped workflows pin the action at (a placeholder a team replaces): in this
/// test's GitHub, the release tag of this version names it.
const PINNED: &str = "0000000000000000000000000000000000000000";

/// The profile (`metadata.name`) of the environment file the workflows use.
const PROFILE: &str = "previews";

/// Where the previews go: the local provider, or AKS on the fake ARM.
enum Cloud {
    Local,
    Aks(Box<Aks>),
}

struct Aks {
    arm: FakeArm,
    /// The control plane every cluster's kubeconfig points at.
    _plane: TestCluster,
    /// Serves the fake ARM; dropped after it.
    rt: tokio::runtime::Runtime,
}

struct World {
    sb: Sandbox,
    fake: FakeGitHub,
    slack: FakeSlack,
    runner: Runner,
    /// The default branch's tree: what the privileged workflows check out.
    main: PathBuf,
    dir: PathBuf,
    cloud: Cloud,
}

impl World {
    /// With the local provider; `None` (skipped, loudly) without the control-plane binaries.
    fn local() -> Option<World> {
        let bins = local_bin_dirs()?;
        let sb = Sandbox::local()?;
        let machine = vec![("EPHEMERA_LOCAL_BIN".to_string(), bins)];
        Some(World::new(sb, local_env(PROFILE), machine, Cloud::Local))
    }

    /// With the AKS provider on a fake ARM (client-secret credential from the machine, as
    /// azure/login would leave one) whose every cluster is a control plane of this test's own
    /// with Argo Rollouts; `None` (skipped, loudly) without the control plane.
    fn aks() -> Option<World> {
        let plane = TestCluster::start_with_rollouts("workflows-aks")?;
        let kubeconfig =
            std::fs::read_to_string(plane.kubeconfig()).expect("the plane's kubeconfig");
        let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let arm = rt.block_on(FakeArm::start(Config {
            polls: 1,
            kubeconfig: Some(kubeconfig),
            ..Config::default()
        }));
        let sb = Sandbox::aks(&arm);
        let machine = arm.env().into_iter().filter(|(k, _)| k != "PATH").collect();
        let cloud = Cloud::Aks(Box::new(Aks {
            arm,
            _plane: plane,
            rt,
        }));
        Some(World::new(
            sb,
            aks_env(PROFILE, ROLLOUTS_ONLY, "24h"),
            machine,
            cloud,
        ))
    }

    /// The rest of the world for environment file `env_file` (without notifications) and the
    /// provider's `vars` on the runner's machine.
    fn new(sb: Sandbox, env_file: String, vars: Vec<(String, String)>, cloud: Cloud) -> World {
        let fake = FakeGitHub::start_in_thread();
        let slack = FakeSlack::start();
        let dir = sb.path().join("actions");
        let tools = stage_release(&dir);

        let main = dir.join("main");
        std::fs::create_dir_all(main.join("environments")).expect("tree");
        let env_file =
            format!("{env_file}notifications:\n  slack:\n    webhookEnv: SLACK_WEBHOOK_URL\n");
        std::fs::write(main.join("environments/pr-aks.yaml"), env_file).expect("env file");

        let mut machine: Vec<(String, String)> = [
            ("HOME", sb.path().join("home").display().to_string()),
            (
                "XDG_STATE_HOME",
                sb.path().join("state").display().to_string(),
            ),
            (
                "XDG_CACHE_HOME",
                sb.path().join("cache").display().to_string(),
            ),
            ("EPHEMERA_MANIFESTS", manifests()),
            ("EPHEMERA_GITHUB_RETRY_BUDGET", "3s".into()),
            ("DOCKER_LOG", dir.join("docker.log").display().to_string()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        machine.extend(vars);
        let runner = Runner::new(
            &repo_root(),
            &dir,
            &tools,
            machine,
            &format!("{OWNER}/{REPO}"),
            &fake.url,
            TOKEN,
            json!({"SLACK_WEBHOOK_URL": slack.url}),
        );
        World {
            sb,
            fake,
            slack,
            runner,
            main,
            dir,
            cloud,
        }
    }

    /// The provider's name, as `list` prints it.
    fn provider(&self) -> &'static str {
        match self.cloud {
            Cloud::Local => "local",
            Cloud::Aks(_) => "aks",
        }
    }

    /// The PR's tree at `sha`: the default branch plus the project's Makefile, whose `test`
    /// fails when `broken`.
    fn pr_tree(&self, sha: &str, broken: bool) -> PathBuf {
        let t = self.dir.join(format!("tree-{sha}"));
        crate::common::actions_runner::copy_tree(&self.main, &t);
        let test = if broken { "\tfalse" } else { "\ttrue" };
        std::fs::write(
            t.join("Makefile"),
            format!("lint:\n\ttrue\ntest:\n{test}\n"),
        )
        .expect("Makefile");
        std::fs::write(t.join("Dockerfile"), format!("FROM scratch\n# {sha}\n"))
            .expect("Dockerfile");
        t
    }

    /// "PR build" for `pr` at its head, on `action`.
    fn build(&self, pr: &PullRequest, action: &str, broken: bool) -> Run {
        let run = self.runner.run(
            OPEN,
            &pr_event("pull_request", action, pr, None),
            &self.pr_tree(&pr.head_sha, broken),
        );
        assert_ne!(run.conclusion(), "cancelled");
        run
    }

    /// A manual workflow a team might keep beside the shipped ones: every other command of the
    /// action, each with only the inputs it needs, on PR 1's preview.
    fn ops_workflow(&self) -> PathBuf {
        let with = |command: &str, extra: &str| {
            format!(
                "      - name: {command}\n        uses: your-org/ephemera@{PINNED}\n        with:\n          command: {command}\n          env: environments/pr-aks.yaml\n{extra}"
            )
        };
        let pr = "          pr: \"1\"\n";
        let steps = [
            with(
                "deploy",
                &format!("{pr}          image: ghcr.io/acme/shop/preview:manual\n"),
            ),
            with("promote", pr),
            with("abort", pr),
            with("extend", &format!("{pr}          by: 4h\n")),
            with("list", ""),
            with("status", pr),
        ]
        .concat();
        let file = self.dir.join("ops.yml");
        std::fs::write(
            &file,
            format!(
                "name: Preview ops\non: workflow_dispatch\npermissions: {{}}\njobs:\n  ops:\n    runs-on: ubuntu-latest\n    environment: preview\n    permissions:\n      contents: read\n      id-token: write\n    steps:\n      - uses: actions/checkout@v4\n{steps}"
            ),
        )
        .expect("ops.yml");
        file
    }

    /// Runs pr-preview.yml for `build` of `pr` and holds it in flight (in its image push, in
    /// the PR's concurrency group) while `during` runs; both results.
    fn in_flight<R: Send>(
        &self,
        build: &Run,
        pr: &PullRequest,
        during: impl FnOnce() -> R,
    ) -> (Run, R) {
        let hold = self.dir.join("docker.log.hold");
        std::fs::write(&hold, image(pr.number, &pr.head_sha)).expect("hold file");
        let id = self.runner.new_run_id();
        let event = self.completed(build, pr);
        let both = std::thread::scope(|s| {
            let run = s.spawn(|| self.runner.run_as(id, PREVIEW, &event, &self.main));
            assert!(
                self.runner
                    .wait_for_step(id, "Push the image", Duration::from_secs(120)),
                "run {id} never reached the push"
            );
            let r = during();
            (run.join().expect("the held run"), r)
        });
        let _ = std::fs::remove_file(&hold);
        both
    }

    /// The `workflow_run` event of build `build` of `pr`.
    fn completed(&self, build: &Run, pr: &PullRequest) -> Event {
        Event {
            name: "workflow_run".into(),
            payload: json!({
                "action": "completed",
                "workflow_run": {
                    "id": build.id,
                    "name": "PR build",
                    "event": "pull_request",
                    "conclusion": build.conclusion(),
                    "head_sha": pr.head_sha,
                    "head_branch": pr.head_ref,
                    "head_repository": {"full_name": pr.head_repo},
                },
            }),
        }
    }

    fn preview(&self, build: &Run, pr: &PullRequest) -> Run {
        self.runner
            .run(PREVIEW, &self.completed(build, pr), &self.main)
    }

    fn closed(&self, pr: &PullRequest, action: &str, label: Option<&str>) -> Run {
        self.runner.run(
            CLOSED,
            &pr_event("pull_request_target", action, pr, label),
            &self.main,
        )
    }

    /// The environments that exist, by name: the local provider's state dirs, or the fake
    /// ARM's clusters (each in its own resource group, which must exist exactly as long).
    fn envs(&self) -> Vec<String> {
        match &self.cloud {
            Cloud::Local => self.sb.local_envs(),
            Cloud::Aks(aks) => {
                let arm = &aks.arm;
                let clusters = arm.clusters();
                let mut groups: Vec<String> =
                    clusters.iter().map(|(g, _)| g.to_lowercase()).collect();
                groups.sort();
                let mut all: Vec<String> = arm.groups().iter().map(|g| g.to_lowercase()).collect();
                all.sort();
                assert_eq!(
                    all, groups,
                    "every resource group holds its environment's cluster"
                );
                for (g, n) in &clusters {
                    assert_eq!(*g, group_of(PROFILE, n), "{n} is in its own group");
                }
                clusters.into_iter().map(|(_, n)| n).collect()
            }
        }
    }

    /// Makes a newer `up` run, `holder`, hold PR `n`'s environment as that run would: its lease,
    /// live for five minutes, on the environment's own resource (the cluster's ARM tag on AKS,
    /// the Lease in `kube-system` on local); `None` takes it away again.
    fn newer_run_holds(&self, n: u64, holder: Option<&str>) {
        let name = format!("pr-{n}");
        let now = jiff::Timestamp::now();
        let lease = holder.map(|h| {
            ephemera::engine::lease::LeaseRecord::new(
                h,
                ephemera::engine::lease::Operation::Up,
                now + jiff::SignedDuration::from_mins(1),
                Duration::from_secs(300),
            )
        });
        match &self.cloud {
            Cloud::Aks(aks) => {
                let group = group_of(PROFILE, &name);
                let mut tags = aks.arm.cluster_tags(&group, &name).expect("the cluster");
                let tags_obj = tags.as_object_mut().expect("tags");
                match &lease {
                    Some(l) => tags_obj.insert("ephemera-lease".into(), json!(l.to_tag())),
                    None => tags_obj.remove("ephemera-lease"),
                };
                let url = format!(
                    "{}/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.ContainerService/managedClusters/{name}?api-version=2026-08-01",
                    aks.arm.url,
                    crate::common::fake_arm::SUBSCRIPTION
                );
                let token = aks.arm.issue_token();
                let status = aks.rt.block_on(async {
                    reqwest::Client::new()
                        .patch(url)
                        .bearer_auth(token)
                        .header("x-ms-client-request-id", "workflows-test")
                        .json(&json!({ "tags": tags }))
                        .send()
                        .await
                        .expect("PATCH reaches the fake ARM")
                        .status()
                });
                assert_eq!(status, 200, "setting the lease tag");
            }
            Cloud::Local => {
                let kubeconfig = self.sb.state().join(format!("kubeconfig/{name}.yaml"));
                match &lease {
                    Some(l) => kubectl(&kubeconfig, &["apply", "-f", "-"], &kube_lease(l)),
                    None => kubectl(
                        &kubeconfig,
                        &[
                            "delete",
                            "lease",
                            "ephemera",
                            "-n",
                            "kube-system",
                            "--ignore-not-found",
                        ],
                        "",
                    ),
                }
            }
        }
    }

    /// `ephemera status` of PR `n`'s environment, as JSON.
    fn status(&self, n: u64) -> Value {
        let env = self.main.join("environments/pr-aks.yaml");
        let env = env.to_str().expect("utf-8");
        self.sb
            .json(&["status", "--env", env, "--pr", &n.to_string()])
    }

    /// Asserts PR `n`'s environment runs the image pushed for `sha`, and nothing else exists
    /// for it.
    fn assert_runs(&self, n: u64, sha: &str) {
        let name = format!("pr-{n}");
        assert_eq!(
            self.envs().iter().filter(|e| **e == name).count(),
            1,
            "one environment for PR {n}: {:?}",
            self.envs()
        );
        let status = self.status(n);
        let want = image(n, sha);
        assert!(
            status["rollout"].to_string().contains(&want),
            "PR {n} runs {want}: {status}"
        );
        let comments = self.fake.comments(n);
        assert_eq!(comments.len(), 1, "one sticky comment: {comments:?}");
        assert!(
            comments[0].body.contains(&want),
            "the comment names {want}:\n{}",
            comments[0].body
        );
    }

    /// The states of the Deployments of commit `sha`, oldest status first.
    fn deployment_states(&self, sha: &str) -> Vec<String> {
        self.fake
            .deployments()
            .iter()
            .filter(|d| d.sha == sha)
            .flat_map(|d| self.fake.statuses(d.id))
            .map(|s| s.state)
            .collect()
    }

    /// Slack messages since `before` of them.
    fn slack_since(&self, before: usize) -> Vec<String> {
        self.slack.messages()[before..].to_vec()
    }

    /// No output of any run holds the token or the webhook's secret.
    fn assert_no_secrets(&self) {
        let log = self.runner.log();
        assert!(!log.contains(TOKEN), "the GitHub token reached a log");
        assert!(!log.contains(SECRET), "the Slack webhook URL reached a log");
        assert!(
            !log.contains(&self.slack.url),
            "the Slack webhook URL reached a log"
        );
    }
}

/// The image pr-preview.yml pushes for PR `n` at `sha`.
/// The release the action installs (scripts/release packages the binary under test, and the
/// tag names the pinned commit), served by a `gh` stand-in in `dir/tools` beside the `docker`
/// stand-in; that directory.
pub(crate) fn stage_release(dir: &std::path::Path) -> PathBuf {
    let (tools, release) = (dir.join("tools"), dir.join("release"));
    for d in [&tools, &release] {
        std::fs::create_dir_all(d).expect("dirs");
    }
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
    let out = std::process::Command::new(repo_root().join("scripts/release"))
        .arg(&tag)
        .arg(&release)
        .env(
            "EPHEMERA_RELEASE_BIN",
            assert_cmd::cargo::cargo_bin("ephemera"),
        )
        .output()
        .expect("scripts/release runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        release.join("tags.json"),
        json!([{"name": tag, "commit": {"sha": PINNED}}]).to_string(),
    )
    .expect("tags");
    gh_stand_in(&tools, &release, "your-org/ephemera", &tag);
    docker_stand_in(&tools);
    tools
}

fn image(n: u64, sha: &str) -> String {
    format!("ghcr.io/{OWNER}/{REPO}/preview:pr-{n}-{}", &sha[..12])
}

fn sha(c: char) -> String {
    c.to_string().repeat(40)
}

fn pr_event(name: &str, action: &str, pr: &PullRequest, label: Option<&str>) -> Event {
    let mut payload = json!({
        "action": action,
        "number": pr.number,
        "pull_request": {
            "number": pr.number,
            "state": pr.state,
            "draft": pr.draft,
            "merged": false,
            "head": {"sha": pr.head_sha, "ref": pr.head_ref, "repo": {"full_name": pr.head_repo}},
            "base": {"ref": "main", "repo": {"full_name": format!("{OWNER}/{REPO}")}},
            "labels": pr.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
        },
    });
    if let Some(l) = label {
        payload["label"] = json!({"name": l});
    }
    Event {
        name: name.into(),
        payload,
    }
}

#[test]
fn a_pull_requests_whole_life_through_the_shipped_workflows() {
    if let Some(w) = World::local() {
        whole_life(&w);
    }
}

#[test]
fn a_pull_requests_whole_life_on_aks_through_the_shipped_workflows() {
    if let Some(w) = World::aks() {
        whole_life(&w);
    }
}

/// The life of PRs 1 to 4 in `w`; see the module comment.
fn whole_life(w: &World) {
    // Whatever fails below, no preview outlives the test.
    struct Cleanup<'a>(&'a World);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let env = self.0.main.join("environments/pr-aks.yaml");
            for e in self.0.envs() {
                let _ = self
                    .0
                    .sb
                    .run(&["down", "--env", env.to_str().unwrap(), "--name", &e]);
            }
        }
    }
    let _cleanup = Cleanup(w);

    // Open PR 1 from a branch of the repository: a preview of its head.
    let mut pr = PullRequest::open(1, "feature/cats", &sha('1'));
    w.fake.set_pull(pr.clone());
    let b = w.build(&pr, "opened", false);
    assert_eq!(b.conclusion(), "success", "{b:?}");
    let n = w.slack.messages().len();
    let p = w.preview(&b, &pr);
    assert_eq!(p.conclusion(), "success", "{p:?}");
    assert_eq!(p.step("preview", "ephemera up"), Some("success"));
    w.assert_runs(1, &sha('1'));
    assert_eq!(w.deployment_states(&sha('1')), ["in_progress", "success"]);
    let sent = w.slack_since(n);
    assert_eq!(sent.len(), 1, "one Slack message: {sent:?}");
    assert!(sent[0].contains("pr-1 is up"), "{sent:?}");
    w.assert_no_secrets();

    // Push: the preview follows the new head.
    pr.head_sha = sha('2');
    w.fake.set_pull(pr.clone());
    let b = w.build(&pr, "synchronize", false);
    let n = w.slack.messages().len();
    let p = w.preview(&b, &pr);
    assert_eq!(p.conclusion(), "success", "{p:?}");
    w.assert_runs(1, &sha('2'));
    assert_eq!(w.slack_since(n).len(), 1);

    // A push while a newer run (say, one started by hand) holds the preview: `up` gives way
    // (exit 4). That is no failure: the step is green with a notice, the commit's Deployment is
    // inactive, the comment still shows the preview that runs, and Slack hears it once.
    w.newer_run_holds(1, Some("runner-by-hand-1"));
    pr.head_sha = sha('7');
    w.fake.set_pull(pr.clone());
    let b = w.build(&pr, "synchronize", false);
    let n = w.slack.messages().len();
    let p = w.preview(&b, &pr);
    assert_eq!(p.conclusion(), "success", "{p:?}");
    assert_eq!(p.step("preview", "ephemera up"), Some("success"));
    assert_eq!(p.step("preview", "Summary"), Some("skipped"), "{p:?}");
    assert_eq!(w.deployment_states(&sha('7')), ["in_progress", "inactive"]);
    let sent = w.slack_since(n);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("up of pr-1 gave way"), "{sent:?}");
    assert!(
        w.runner
            .log()
            .contains("::notice title=ephemera::PR #1: superseded, another run holds its preview"),
        "the run says why it stopped"
    );
    w.newer_run_holds(1, None);
    w.assert_runs(1, &sha('2'));

    // The other commands, through the action with its default inputs, from a team's own
    // manual workflow.
    let expires = |status: &Value| -> jiff::Timestamp {
        status["record"]["expiresAt"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no expiry in {status}"))
    };
    let before = expires(&w.status(1));
    let ops = w.runner.run(
        w.ops_workflow().to_str().expect("utf-8"),
        &Event {
            name: "workflow_dispatch".into(),
            payload: json!({}),
        },
        &w.main,
    );
    assert_eq!(ops.conclusion(), "success", "{ops:?}");
    for step in ["deploy", "promote", "abort", "extend", "list", "status"] {
        assert_eq!(ops.step("ops", step), Some("success"), "{step}: {ops:?}");
    }
    let status = w.status(1);
    assert!(
        status["rollout"].to_string().contains("preview:manual"),
        "deploy rolled the image out: {status}"
    );
    assert!(
        w.runner
            .log()
            .contains(&format!("pr-1\t{}\t1\t", w.provider())),
        "list printed the environment"
    );
    let moved = expires(&status).duration_since(before);
    assert!(
        moved >= jiff::SignedDuration::from_hours(4) && moved < jiff::SignedDuration::from_hours(5),
        "extend --by 4h moved the expiry by {moved:?}"
    );
    // Each ran as the action builds it from the inputs given, and nothing else.
    let log = w.runner.log();
    for (command, extra) in [
        ("deploy", " --image ghcr.io/acme/shop/preview:manual"),
        ("promote", ""),
        ("abort", ""),
        ("extend", " --by 4h"),
        ("status", ""),
    ] {
        let line = format!("ephemera {command} --env environments/pr-aks.yaml --pr 1{extra}\n");
        assert!(log.contains(&line), "{line:?} not in the log");
    }
    assert!(log.contains("ephemera list --env environments/pr-aks.yaml\n"));

    // A push whose build fails: the PR's Deployment of that commit fails, the comment and
    // Slack say so, and the preview keeps the last good image.
    pr.head_sha = sha('3');
    w.fake.set_pull(pr.clone());
    let b = w.build(&pr, "synchronize", true);
    assert_eq!(b.conclusion(), "failure");
    let n = w.slack.messages().len();
    let p = w.preview(&b, &pr);
    assert_eq!(
        p.conclusion(),
        "success",
        "reporting a failed build is no failure: {p:?}"
    );
    assert_eq!(p.step("preview", "ephemera up"), Some("skipped"));
    assert_eq!(w.deployment_states(&sha('3')), ["failure"]);
    let sent = w.slack_since(n);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("the build of 333333333333 failed"),
        "{sent:?}"
    );
    assert!(
        w.fake.comments(1)[0]
            .body
            .contains("the build of 333333333333 failed")
    );

    // Two pushes in a row: the second run cancels the first while it is in flight (held in its
    // image push), and only the newest image runs.
    pr.head_sha = sha('4');
    w.fake.set_pull(pr.clone());
    let b4 = w.build(&pr, "synchronize", false);
    let mut pr5 = pr.clone();
    pr5.head_sha = sha('5');
    let b5 = w.build(&pr5, "synchronize", false);
    let n = w.slack.messages().len();
    let (p4, p5) = w.in_flight(&b4, &pr, || {
        w.fake.set_pull(pr5.clone());
        w.preview(&b5, &pr5)
    });
    pr.head_sha = sha('5');
    assert_eq!(p4.job("preview").status, "cancelled", "{p4:?}");
    assert_eq!(p5.conclusion(), "success", "{p5:?}");
    w.assert_runs(1, &sha('5'));
    let states4 = w.deployment_states(&sha('4'));
    assert!(!states4.contains(&"success".to_string()), "{states4:?}");
    assert_eq!(
        w.deployment_states(&sha('5')).last().map(String::as_str),
        Some("success")
    );
    let sent = w.slack_since(n);
    assert_eq!(sent.len(), 2, "one message per run: {sent:?}");
    assert!(
        sent.iter().any(|m| m.contains("cancelled by a newer one")),
        "{sent:?}"
    );
    w.assert_no_secrets();

    // Close while a preview run is in flight: the close cancels it and tears down; a build that
    // completes later changes nothing.
    pr.head_sha = sha('6');
    w.fake.set_pull(pr.clone());
    let b6 = w.build(&pr, "synchronize", false);
    let n = w.slack.messages().len();
    let (p6, c) = w.in_flight(&b6, &pr, || {
        let mut closed = pr.clone();
        closed.state = "closed".into();
        w.fake.set_pull(closed.clone());
        w.closed(&closed, "closed", None)
    });
    pr.state = "closed".into();
    assert_eq!(p6.job("preview").status, "cancelled", "{p6:?}");
    assert_eq!(c.conclusion(), "success", "{c:?}");
    assert!(w.envs().is_empty(), "closed: {:?}", w.envs());
    assert!(
        w.runner
            .log()
            .contains("ephemera down --env environments/pr-aks.yaml --pr 1 --github\n"),
        "down ran through the action"
    );
    assert!(
        w.fake.comments(1)[0].body.contains("gone")
            || w.fake.comments(1)[0].body.contains("deleted"),
        "{}",
        w.fake.comments(1)[0].body
    );
    for d in w
        .fake
        .deployments()
        .iter()
        .filter(|d| d.environment == "preview/pr-1")
    {
        assert_eq!(
            w.fake.statuses(d.id).last().map(|s| s.state.as_str()),
            Some("inactive"),
            "every Deployment of a closed PR is inactive: {d:?}"
        );
    }
    assert_eq!(w.slack_since(n).len(), 2, "{:?}", w.slack_since(n));
    assert!(
        w.slack_since(n)
            .iter()
            .any(|m| m.contains("pr-1 is gone") && m.contains("PR #1 was closed")),
        "down's own message says how the PR ended: {:?}",
        w.slack_since(n)
    );
    let n = w.slack.messages().len();
    let late = w.preview(&b6, &pr);
    assert_eq!(late.conclusion(), "success", "{late:?}");
    assert_eq!(late.job("preview").status, "skipped");
    assert!(w.envs().is_empty(), "a late build recreated {:?}", w.envs());
    assert_eq!(w.slack_since(n).len(), 1);

    // PR 2's close event is missed; the scheduled gc removes its preview.
    let pr2 = PullRequest::open(2, "feature/dogs", &sha('a'));
    w.fake.set_pull(pr2.clone());
    let b = w.build(&pr2, "opened", false);
    assert_eq!(w.preview(&b, &pr2).conclusion(), "success");
    w.assert_runs(2, &sha('a'));
    let mut gone = pr2.clone();
    gone.state = "closed".into();
    w.fake.set_pull(gone);
    let n = w.slack.messages().len();
    let g = w.runner.run(
        GC,
        &Event {
            name: "schedule".into(),
            payload: json!({"schedule": "17 * * * *"}),
        },
        &w.main,
    );
    assert_eq!(g.conclusion(), "success", "{g:?}");
    assert!(w.envs().is_empty(), "after close and gc: {:?}", w.envs());
    assert!(
        w.runner
            .log()
            .contains("ephemera gc --env environments/pr-aks.yaml --open-prs "),
        "gc ran through the action with the open PRs"
    );
    assert_eq!(w.slack_since(n).len(), 1);
    assert!(
        w.slack_since(n)[0].starts_with("ephemera: gc deleted 1 environment"),
        "gc's own message: {:?}",
        w.slack_since(n)
    );
    assert!(
        w.fake.comments(2)[0].body.contains("is gone"),
        "gc --github says so on the closed PR: {}",
        w.fake.comments(2)[0].body
    );

    // A fork PR: no preview until a maintainer adds the label; removing it takes it down.
    let mut fork = PullRequest::open(3, "main", &sha('b'));
    fork.head_repo = "mallory/shop".into();
    w.fake.set_pull(fork.clone());
    let b = w.build(&fork, "opened", false);
    let n = w.slack.messages().len();
    let p = w.preview(&b, &fork);
    assert_eq!(p.conclusion(), "success", "{p:?}");
    assert_eq!(p.step("preview", "ephemera up"), Some("skipped"));
    assert!(
        w.envs().is_empty(),
        "a fork without the label: {:?}",
        w.envs()
    );
    assert!(
        w.slack_since(n)[0].contains("only with the label preview"),
        "{:?}",
        w.slack_since(n)
    );
    fork.labels = vec!["preview".into()];
    w.fake.set_pull(fork.clone());
    let b = w.build(&fork, "labeled", false);
    assert_eq!(w.preview(&b, &fork).conclusion(), "success");
    w.assert_runs(3, &sha('b'));
    fork.labels.clear();
    w.fake.set_pull(fork.clone());
    let c = w.closed(&fork, "unlabeled", Some("preview"));
    assert_eq!(c.job("down").status, "success", "{c:?}");
    assert!(w.envs().is_empty(), "label removed: {:?}", w.envs());

    // A draft: no preview until it is ready for review.
    let mut draft = PullRequest::open(4, "wip", &sha('c'));
    draft.draft = true;
    w.fake.set_pull(draft.clone());
    let b = w.build(&draft, "opened", false);
    assert_eq!(
        w.preview(&b, &draft).step("preview", "ephemera up"),
        Some("skipped")
    );
    assert!(w.envs().is_empty(), "a draft: {:?}", w.envs());
    draft.draft = false;
    w.fake.set_pull(draft.clone());
    let b = w.build(&draft, "ready_for_review", false);
    assert_eq!(w.preview(&b, &draft).conclusion(), "success");
    w.assert_runs(4, &sha('c'));
    draft.state = "closed".into();
    w.fake.set_pull(draft.clone());
    assert_eq!(w.closed(&draft, "closed", None).conclusion(), "success");
    assert!(w.envs().is_empty(), "{:?}", w.envs());

    assert!(w.fake.violations().is_empty(), "{:?}", w.fake.violations());
    w.assert_no_secrets();
}
