//! The default branch's pipeline through the shipped `scripts/github/main.yml` and `action.yml`,
//! run by the test runner in `common/actions_runner.rs` with the **real** binary (installed by
//! the action's install.sh from a release scripts/release made): a push to `main` builds and
//! "pushes" the image (the `docker` stand-in, as for the PR workflows), `release` commits the
//! new tag to a real git repository served over authenticated HTTP on 127.0.0.1
//! (`common/git_server.rs`), the Argo CD stand-in (`common/argocd.rs`, labelled there) syncs it
//! into the test control plane, where the real Argo Rollouts controller runs the canary to its
//! first pause; the `promote` job waits at its `production` environment's required reviewers
//! (the runner's stand-in gate) and, approved, promotes the canary to Healthy. Slack is the
//! fake webhook. A push to another branch, and a fork's pull request, start no run.
//!
//! The environment file is the shipped `environments/production.yaml` with only its cluster
//! (this test's kubeconfig instead of `aksCluster`), its repository URL and its release target
//! (a kustomization, which the Argo CD stand-in renders, instead of Helm values) replaced.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::actions_runner::{Event, Run, Runner};
use crate::common::argocd::ArgoCdStandIn;
use crate::common::fake_github::{FakeGitHub, OWNER, REPO, TOKEN};
use crate::common::fake_slack::{FakeSlack, SECRET};
use crate::common::git_server::{self, GitServer};
use crate::common::testcluster::{TestCluster, repo_root};
use crate::release::gitops::{app_manifests, setup};
use crate::workflows::stage_release;

const MAIN: &str = "scripts/github/main.yml";
/// Where the release job's build pushes: `ghcr.io/${GITHUB_REPOSITORY,,}`.
const IMAGE: &str = "ghcr.io/acme/shop";
/// The kustomization in the release repository.
const TARGET: &str = "apps/cats/production/kustomization.yaml";

/// The shipped production file pointed at `kubeconfig`, the loopback repository `url` and a
/// kustomization target.
fn production_file(kubeconfig: &Path, url: &str) -> String {
    let shipped = std::fs::read_to_string(repo_root().join("environments/production.yaml"))
        .expect("environments/production.yaml");
    let mut out = String::new();
    for line in shipped.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let l = line.trim_start();
        let replaced = if l.starts_with("aksCluster:") {
            format!("{indent}kubeconfig: {}", kubeconfig.display())
        } else if l.starts_with("url: https://github.com/acme/cats-deploy.git") {
            format!("{indent}url: {url}")
        } else if l.starts_with("file: apps/cats/production/values.yaml") {
            format!("{indent}file: {TARGET}")
        } else if l.starts_with("key: image.tag") {
            format!("{indent}kustomizeImage: {IMAGE}")
        } else {
            line.to_string()
        };
        out.push_str(&replaced);
        out.push('\n');
    }
    assert!(
        !out.contains("aksCluster")
            && out.contains("kubeconfig: ")
            && out.contains(&format!("url: {url}"))
            && out.contains("kustomizeImage"),
        "environments/production.yaml changed shape:\n{out}"
    );
    out
}

fn push(branch: &str, sha: &str) -> Event {
    Event {
        name: "push".into(),
        payload: json!({
            "ref": format!("refs/heads/{branch}"),
            "after": sha,
            "repository": {"full_name": format!("{OWNER}/{REPO}"), "default_branch": "main"},
            "pusher": {"name": "octocat"},
        }),
    }
}

/// The Rollout `cats/cats` as the API holds it, once `ok` says it is as wanted.
fn await_rollout(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let rollouts: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        client.clone(),
        "cats",
        &ephemera::app::ops::rollout_resource(),
    );
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let ro = rt
            .block_on(rollouts.get_opt("cats"))
            .ok()
            .flatten()
            .map(|r| serde_json::to_value(r).expect("json"));
        if let Some(ro) = ro.filter(|r| ok(r)) {
            return ro;
        }
        assert!(Instant::now() < until, "the Rollout never got {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn image_of(ro: &Value) -> &str {
    ro["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

fn healthy_on(ro: &Value, image: &str) -> bool {
    image_of(ro) == image
        && ro["status"]["phase"] == "Healthy"
        && ro["status"]["stableRS"] == ro["status"]["currentPodHash"]
}

fn paused_at_20(ro: &Value, image: &str) -> bool {
    image_of(ro) == image
        && ro["status"]["phase"] == "Paused"
        && ro["status"]["currentStepIndex"] == 1
        && ro["status"]["stableRS"] != ro["status"]["currentPodHash"]
}

/// Dropped in this order: the Argo CD stand-in before the cluster it applies to.
struct World {
    _argo: ArgoCdStandIn,
    runner: Runner,
    server: GitServer,
    slack: FakeSlack,
    _github: FakeGitHub,
    main: std::path::PathBuf,
    client: kube::Client,
    rt: tokio::runtime::Runtime,
    _cluster: TestCluster,
    docker_log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl World {
    fn start() -> Option<World> {
        let cluster = TestCluster::start_with_rollouts("main-workflow")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("git");
        std::fs::create_dir_all(&root).expect("git root");
        let server = GitServer::start(&root);
        let first = format!("{IMAGE}:sha-{}", "1".repeat(12));
        let kustomization = format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - app.yaml\nimages:\n  - name: {IMAGE}\n    newTag: sha-{} # set by ephemera release\n",
            "1".repeat(12)
        );
        let url = server.create(
            "cats-deploy",
            &[
                (TARGET, &kustomization),
                (
                    "apps/cats/production/app.yaml",
                    &app_manifests(dir.path(), "cats", &first),
                ),
            ],
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(cluster.client());
        rt.block_on(setup(
            &client,
            &url,
            "cats-production",
            "apps/cats/production",
            "cats",
        ));
        let argo = ArgoCdStandIn::start(
            client.clone(),
            &url,
            "argocd",
            "cats-production",
            dir.path(),
        );
        // What production runs before the push.
        await_rollout(&rt, &client, "Healthy on the first image", |r| {
            healthy_on(r, &first)
        });

        let actions = dir.path().join("actions");
        let tools = stage_release(&actions);
        let main = actions.join("main");
        std::fs::create_dir_all(main.join("environments")).expect("tree");
        std::fs::write(
            main.join("environments/production.yaml"),
            production_file(cluster.kubeconfig(), &url),
        )
        .expect("env file");
        std::fs::write(main.join("Dockerfile"), "FROM scratch\n").expect("Dockerfile");

        let slack = FakeSlack::start();
        let fake = FakeGitHub::start_in_thread();
        let docker_log = actions.join("docker.log");
        let machine = [
            ("HOME", dir.path().join("home").display().to_string()),
            (
                "XDG_STATE_HOME",
                dir.path().join("state").display().to_string(),
            ),
            (
                "XDG_CACHE_HOME",
                dir.path().join("cache").display().to_string(),
            ),
            ("DOCKER_LOG", docker_log.display().to_string()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let runner = Runner::new(
            &repo_root(),
            &actions,
            &tools,
            machine,
            &format!("{OWNER}/{REPO}"),
            &fake.url,
            TOKEN,
            json!({"SLACK_WEBHOOK_URL": slack.url, "RELEASE_TOKEN": git_server::TOKEN}),
        );
        *runner.vars.lock().unwrap() = json!({
            "AZURE_CLIENT_ID": "00000000-0000-0000-0000-0000000000c1",
            "AZURE_TENANT_ID": "00000000-0000-0000-0000-0000000000t1",
            "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",
        });
        // As docs/release.md sets it up: the identity is federated for both environments the
        // pipeline logs in from, and `production` has required reviewers.
        runner.federate("release");
        runner.federate("production");
        runner.require_reviewers("production");
        Some(World {
            _argo: argo,
            runner,
            server,
            slack,
            _github: fake,
            main,
            client,
            rt,
            _cluster: cluster,
            docker_log,
            _dir: dir,
        })
    }

    fn docker_calls(&self) -> String {
        std::fs::read_to_string(&self.docker_log).unwrap_or_default()
    }
}

/// Runs main.yml for a push of `sha` to main, waits at the promote job's review, checks what
/// the release did (via `check`), then approves or rejects; the run. A failed check rejects
/// the review, so the run ends, before the failure is raised.
fn release_run(w: &World, sha: &str, check: impl FnOnce(), approve: bool) -> Run {
    let id = w.runner.new_run_id();
    let (run, checked) = std::thread::scope(|s| {
        let run = s.spawn(|| w.runner.run_as(id, MAIN, &push("main", sha), &w.main));
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert!(
                w.runner.wait_for_step(
                    id,
                    "promote / waiting for review",
                    Duration::from_secs(300)
                ),
                "run {id} never reached the promote job's review"
            );
            check();
        }));
        w.runner.review("production", approve && checked.is_ok());
        (run.join().expect("the run"), checked)
    });
    if let Err(failure) = checked {
        std::panic::resume_unwind(failure);
    }
    run
}

/// Pushes to other refs and pull requests start no run of main.yml.
fn other_events_start_nothing(w: &World) {
    let other = w
        .runner
        .run(MAIN, &push("feature/x", &"2".repeat(40)), &w.main);
    assert!(other.jobs.is_empty(), "{:?}", other.jobs);
    let fork_pr = Event {
        name: "pull_request".into(),
        payload: json!({"action": "opened", "number": 9, "pull_request": {
            "number": 9,
            "head": {"sha": "3".repeat(40), "ref": "main", "repo": {"full_name": "mallory/shop"}},
            "base": {"ref": "main", "repo": {"full_name": format!("{OWNER}/{REPO}")}},
        }}),
    };
    assert!(w.runner.run(MAIN, &fork_pr, &w.main).jobs.is_empty());
    assert_eq!(w.docker_calls(), "", "nothing was built");
    assert_eq!(
        w.server.subjects("cats-deploy").len(),
        1,
        "nothing released"
    );
    assert!(w.slack.messages().is_empty());
}

#[test]
fn a_push_to_main_releases_a_canary_that_an_approval_promotes() {
    let Some(w) = World::start() else {
        return;
    };
    other_events_start_nothing(&w);

    let sha = "abcdef0123456789abcdef0123456789abcdef01";
    let image = format!("{IMAGE}:sha-{}", &sha[..12]);
    let run = release_run(
        &w,
        sha,
        || {
            // Before the approval: one release commit naming the image, the canary paused at
            // 20% with the new image beside the stable one, and Slack told.
            assert_eq!(
                w.server.subjects("cats-deploy"),
                [format!("Release {image}"), "Initial manifests".to_string()]
            );
            assert!(
                w.server
                    .file("cats-deploy", TARGET)
                    .contains(&format!("newTag: sha-{}", &sha[..12]))
            );
            let body = git_server::git(
                &w.server.bare("cats-deploy"),
                &["log", "-1", "--format=%B", "main"],
            );
            assert!(body.contains(&format!("Source commit: {sha}")), "{body}");
            await_rollout(&w.rt, &w.client, "its canary paused", |r| {
                paused_at_20(r, &image)
            });
            let texts = w.slack.messages();
            assert_eq!(texts.len(), 1, "{texts:?}");
            assert!(
                texts[0].contains(&format!("production: released {image}")),
                "{texts:?}"
            );
            let payload = w.slack.payloads()[0].to_string();
            assert!(payload.contains("canary paused at 20%"), "{payload}");
        },
        true,
    );
    for job in ["build", "release", "promote"] {
        assert_eq!(run.job(job).status, "success", "{job}: {:?}", run.jobs);
    }
    assert_eq!(run.step("release", "Report"), Some("skipped"));
    assert_eq!(run.job("build").outputs["image"], json!(image));
    let docker = w.docker_calls();
    assert!(
        docker.contains(&format!("docker build --tag {image} .\n"))
            && docker.contains(&format!("docker push {image}\n")),
        "{docker}"
    );
    await_rollout(&w.rt, &w.client, "Healthy on the new image", |r| {
        healthy_on(r, &image)
    });
    let texts = w.slack.messages();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[1].contains("production: canary promoted"),
        "{texts:?}"
    );
    assert_eq!(w.server.subjects("cats-deploy").len(), 2, "no other commit");

    // The next push, whose promotion a reviewer rejects: the promote job fails without a
    // step, and the canary stays paused at 20% with the stable version the approved one.
    let sha2 = "4".repeat(40);
    let image2 = format!("{IMAGE}:sha-{}", &sha2[..12]);
    let run = release_run(&w, &sha2, || (), false);
    assert_eq!(run.job("release").status, "success", "{:?}", run.jobs);
    assert_eq!(run.job("promote").status, "failure", "{:?}", run.jobs);
    assert!(run.job("promote").steps.is_empty());
    await_rollout(&w.rt, &w.client, "its second canary paused", |r| {
        paused_at_20(r, &image2)
    });
    assert_eq!(w.slack.messages().len(), 3, "{:?}", w.slack.messages());

    let log = w.runner.log();
    for secret in [git_server::TOKEN, SECRET, TOKEN] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
}
