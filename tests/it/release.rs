//! `ephemera release`'s git half against a real git server (`git http-backend` on 127.0.0.1 with
//! a token check), through the real binary: the commit, formatting kept, the rejected-push
//! retry, "already at that image", and the token never printed.

use std::path::Path;

use base64::Engine as _;

use crate::common::cli::{ephemera, stderr, stdout};
use crate::common::git_server::{GitServer, TOKEN, git};

const VALUES: &str = "# Production values for cats.\n# Edited by the release job: keep this comment.\nreplicaCount: 4\n\nimage:\n  repository: ghcr.io/acme/cats   # where CI pushes\n  tag: \"sha-1111\"   # bumped by ephemera release\n  pullPolicy: IfNotPresent\n\nservice: {port: 8080}\n";

const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - rollout.yaml\nimages:\n  # the app; the release job sets newTag\n  - name: ghcr.io/acme/cats\n    newTag: sha-1111\n";

fn env_file(dir: &Path, url: &str, target: &str) -> std::path::PathBuf {
    let text = format!(
        "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata: {{name: production}}\nprovider:\n  existing: {{kubeconfig: no-such-kubeconfig}}\napp: {{name: cats}}\nrelease:\n  repository:\n    url: {url}\n    branch: main\n    tokenEnv: RELEASE_TOKEN\n{target}  argocd: {{application: cats}}\n"
    );
    let path = dir.join("production.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

const HELM: &str = "  file: apps/cats/values.yaml\n  key: image.tag\n";

struct Setup {
    _dir: tempfile::TempDir,
    server: GitServer,
    env: std::path::PathBuf,
}

fn setup(target: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("git");
    std::fs::create_dir_all(&root).unwrap();
    let server = GitServer::start(&root);
    let url = server.create(
        "deploy",
        &[
            ("apps/cats/values.yaml", VALUES),
            ("apps/cats/kustomization.yaml", KUSTOMIZATION),
            ("README.md", "deploy\n"),
        ],
    );
    let env = env_file(dir.path(), &url, target);
    Setup {
        _dir: dir,
        server,
        env,
    }
}

fn release(s: &Setup, image: &str, extra: &[&str]) -> std::process::Output {
    release_with(s, Some(TOKEN), image, extra)
}

/// `ephemera -vvv release --no-wait` with `RELEASE_TOKEN` set to `token` (unset for `None`).
fn release_with(
    s: &Setup,
    token: Option<&str>,
    image: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut c = ephemera();
    match token {
        Some(t) => c.env("RELEASE_TOKEN", t),
        None => c.env_remove("RELEASE_TOKEN"),
    };
    c.args([
        "-vvv",
        "release",
        "--env",
        s.env.to_str().unwrap(),
        "--image",
        image,
        "--no-wait",
    ])
    .args(extra)
    .output()
    .unwrap()
}

/// Neither the token nor its basic-auth form appears in `text`.
fn assert_no_token(text: &str) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
    assert!(
        !text.contains(TOKEN) && !text.contains(&basic),
        "the token leaked:\n{text}"
    );
}

#[test]
fn release_commits_the_image_in_place_over_authenticated_http() {
    let s = setup(HELM);
    let out = release(
        &s,
        "ghcr.io/acme/cats:sha-2222",
        &["--source-commit", "0123abcd"],
    );
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "stdout:\n{o}\nstderr:\n{e}");
    assert_no_token(&o);
    assert_no_token(&e);
    assert_eq!(
        s.server.subjects("deploy"),
        ["Release ghcr.io/acme/cats:sha-2222", "Initial manifests"]
    );
    let body = git(
        &s.server.bare("deploy"),
        &["log", "-1", "--format=%B", "main"],
    );
    assert!(body.contains("Source commit: 0123abcd"), "{body}");
    // Only the one scalar changed: comments, quoting, blank lines and flow style survive.
    assert_eq!(
        s.server.file("deploy", "apps/cats/values.yaml"),
        VALUES.replace("\"sha-1111\"", "\"sha-2222\"")
    );
    let head = git(&s.server.bare("deploy"), &["rev-parse", "main"]);
    assert!(
        o.contains(head.trim()),
        "stdout names the commit {head}: {o}"
    );
}

#[test]
fn the_same_image_again_makes_no_commit() {
    let s = setup(HELM);
    assert!(
        release(&s, "ghcr.io/acme/cats:sha-2222", &[])
            .status
            .success()
    );
    let pushes = s.server.pushes();
    let out = release(&s, "ghcr.io/acme/cats:sha-2222", &["--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["git"]["result"], "alreadyAt", "{report}");
    assert_eq!(s.server.subjects("deploy").len(), 2);
    assert_eq!(s.server.pushes(), pushes, "nothing was pushed");
}

#[test]
fn a_rejected_push_is_retried_on_the_new_head() {
    let s = setup(HELM);
    let (bare, scratch) = (s.server.bare("deploy"), s.server.root.clone());
    // Someone else pushes between ephemera's fetch and its push.
    s.server.before_next_push(move || {
        crate::common::git_server::commit_to(
            &bare,
            &scratch,
            "README.md",
            "deploy, edited\n",
            "Someone else's commit",
        );
    });
    let out = release(&s, "ghcr.io/acme/cats:sha-3333", &["--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["git"]["attempts"], 2, "{report}");
    assert_eq!(
        s.server.subjects("deploy"),
        [
            "Release ghcr.io/acme/cats:sha-3333",
            "Someone else's commit",
            "Initial manifests"
        ]
    );
    assert_eq!(s.server.file("deploy", "README.md"), "deploy, edited\n");
    assert!(
        s.server
            .file("deploy", "apps/cats/values.yaml")
            .contains("tag: \"sha-3333\"")
    );
}

#[test]
fn a_kustomization_gets_its_new_tag() {
    let s = setup("  file: apps/cats/kustomization.yaml\n  kustomizeImage: ghcr.io/acme/cats\n");
    let out = release(&s, "ghcr.io/acme/cats:sha-4444", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        s.server.file("deploy", "apps/cats/kustomization.yaml"),
        KUSTOMIZATION.replace("newTag: sha-1111", "newTag: sha-4444")
    );
}

#[test]
fn a_wrong_or_missing_token_fails_without_printing_it() {
    let s = setup(HELM);
    let out = release_with(&s, Some("wrong-token-value"), "ghcr.io/acme/cats:v9", &[]);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("git fetch") && e.contains("the repository refused the credentials"),
        "{e}"
    );
    assert!(
        !e.contains("wrong-token-value") && !stdout(&out).contains("wrong-token-value"),
        "{e}"
    );
    assert_eq!(s.server.subjects("deploy").len(), 1);

    let out = release_with(&s, None, "ghcr.io/acme/cats:v9", &[]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("release.repository.tokenEnv") && e.contains("RELEASE_TOKEN"),
        "{e}"
    );
    let errors: Vec<&str> = e
        .lines()
        .filter(|l| !l.contains(" DEBUG ") && !l.contains(" TRACE "))
        .collect();
    assert_eq!(errors.len(), 1, "{e}");
}

#[test]
fn a_key_the_file_lacks_is_a_usage_error_and_no_commit() {
    let s = setup("  file: apps/cats/values.yaml\n  key: image.digest\n");
    let out = release(&s, "ghcr.io/acme/cats:v2", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("apps/cats/values.yaml in the release repository: image.digest: not found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.server.subjects("deploy").len(), 1);
}

#[test]
fn down_and_gc_refuse_a_long_lived_environment() {
    let s = setup(HELM);
    let file = s.env.to_str().unwrap();
    for args in [
        vec!["down", "--env", file, "--name", "production"],
        vec!["gc", "--env", file],
    ] {
        let out = ephemera().args(&args).output().unwrap();
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        assert!(
            e.contains("production.yaml:5:3: provider.existing: a long-lived cluster"),
            "{args:?}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

// --- Through Argo CD (stand-in) to the real Argo Rollouts controller ---

pub(crate) mod gitops {
    use std::path::Path;
    use std::process::{Command, Output};
    use std::time::{Duration, Instant};

    use kube::Api;
    use kube::api::DynamicObject;
    use serde_json::Value;

    use crate::common::argocd::{ArgoCdStandIn, application, application_crd};
    use crate::common::cli::{stderr, stdout};
    use crate::common::git_server::{GitServer, TOKEN};
    use crate::common::testcluster::TestCluster;

    const IMAGE: &str = "registry.example.com/acme/web";

    /// The preview profile the app's manifests are planned from (as `tests/it/app.rs` does):
    /// a replica-count canary, the source pipeline's steps with the last pause shortened.
    const PREVIEW: &str = "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata: {name: release-test}\nprovider: {local: {}}\naddons: {ingress: {enabled: false}, argoCd: {enabled: false}}\napp:\n  name: APP\n  replicas: 2\n  canary:\n    steps: [{setWeight: 20}, {pause: {}}, {setWeight: 50}, {pause: {duration: 2s}}, {setWeight: 100}]\ntls: {issuer: selfsigned}\n";

    /// The Namespace, Services and Rollout of app `app` running `image`, as JSON documents
    /// (valid YAML).
    pub(crate) fn app_manifests(dir: &Path, app: &str, image: &str) -> String {
        let env_file = dir.join("preview.yaml");
        std::fs::write(&env_file, PREVIEW.replace("APP", app)).unwrap();
        let plan = ephemera::plan::run(&ephemera::plan::Request {
            env_file,
            pr: Some("1".into()),
            image: Some(image.into()),
            now: Some("2026-11-28T10:00:00Z".into()),
            ..Default::default()
        })
        .expect("plan");
        plan.manifests
            .iter()
            .filter(|m| {
                matches!(
                    m.object["kind"].as_str(),
                    Some("Namespace" | "Service" | "Rollout")
                )
            })
            .map(|m| serde_json::to_string_pretty(&m.object).unwrap())
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    fn production(dir: &Path, kubeconfig: &Path, url: &str) -> std::path::PathBuf {
        let text = format!(
            "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata: {{name: production}}\nprovider:\n  existing: {{kubeconfig: {}}}\napp: {{name: web}}\nrelease:\n  repository: {{url: {url}, branch: main, tokenEnv: RELEASE_TOKEN}}\n  file: apps/web/kustomization.yaml\n  kustomizeImage: {IMAGE}\n  argocd: {{application: web}}\n",
            kubeconfig.display()
        );
        let path = dir.join("production.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn ephemera(env: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("ephemera"));
        c.env("RELEASE_TOKEN", TOKEN)
            .env_remove("RUST_LOG")
            .args(args)
            .args(["--env", env.to_str().unwrap()]);
        c
    }

    fn json(env: &Path, args: &[&str]) -> Value {
        let out = ephemera(env, args)
            .args(["--output", "json"])
            .output()
            .unwrap();
        ok(args, &out);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&out)))
    }

    fn ok(args: &[&str], out: &Output) {
        assert!(
            out.status.success(),
            "{args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            stdout(out),
            stderr(out)
        );
    }

    fn tag(t: &str) -> String {
        format!("{IMAGE}:{t}")
    }

    fn release(env: &Path, t: &str) -> Value {
        json(env, &["release", "--image", &tag(t), "--timeout", "90s"])
    }

    /// `status` until its rollout is Healthy with `stable` as the stable image.
    fn await_healthy_on(env: &Path, stable: &str) -> Value {
        let until = Instant::now() + Duration::from_secs(90);
        loop {
            let s = json(env, &["status", "--name", "production"]);
            if s["rollout"]["phase"] == "Healthy"
                && s["rollout"]["stable"]["images"] == serde_json::json!([tag(stable)])
            {
                return s;
            }
            assert!(Instant::now() < until, "not Healthy on {stable}: {s}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The Application CRD, namespace `argocd` and Application `argocd/name` syncing `path`
    /// of `url` into namespace `dest`.
    pub(crate) async fn setup(
        client: &kube::Client,
        url: &str,
        name: &str,
        path: &str,
        dest: &str,
    ) {
        let applier = ephemera::kube::Applier::new(client.clone());
        let opts = ephemera::kube::ApplyOptions {
            force: true,
            ..Default::default()
        };
        let crd = ephemera::kube::manifest::from_value(application_crd()).unwrap();
        applier
            .apply(vec![crd], &opts)
            .await
            .expect("the Application CRD");
        let ns = ephemera::kube::manifest::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}})).unwrap();
        applier
            .apply(vec![ns], &opts)
            .await
            .expect("namespace argocd");
        let apps: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "argocd",
            &ephemera::engine::release::application_resource(),
        );
        let app = application("argocd", name, url, path, dest);
        let params = kube::api::PatchParams::apply("test").force();
        let until = Instant::now() + Duration::from_secs(30);
        // The CRD's API is served a moment after it is created.
        while let Err(e) = tokio::time::timeout(
            Duration::from_secs(5),
            apps.patch(name, &params, &kube::api::Patch::Apply(&app)),
        )
        .await
        .map_err(|_| "no answer".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        {
            assert!(Instant::now() < until, "the Application: {e}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    #[test]
    fn releases_reach_a_canary_that_promote_and_abort_drive() {
        let Some(cluster) = TestCluster::start_with_rollouts("release") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("git");
        std::fs::create_dir_all(&root).unwrap();
        let server = GitServer::start(&root);
        let kustomization = format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - app.yaml\nimages:\n  - name: {IMAGE}\n    newTag: v1 # set by ephemera release\n"
        );
        let url = server.create(
            "deploy",
            &[
                ("apps/web/kustomization.yaml", &kustomization),
                (
                    "apps/web/app.yaml",
                    &app_manifests(dir.path(), "web", &tag("v0")),
                ),
            ],
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(cluster.client());
        rt.block_on(setup(&client, &url, "web", "apps/web", "web"));
        let argo = ArgoCdStandIn::start(client.clone(), &url, "argocd", "web", dir.path());
        let env = production(dir.path(), cluster.kubeconfig(), &url);

        // v1 is what the repository holds: no commit; Argo CD syncs it and the first revision
        // of the Rollout goes straight to Healthy.
        let r = release(&env, "v1");
        assert_eq!(r["git"]["result"], "alreadyAt", "{r}");
        assert_eq!(r["canary"]["phase"], "Healthy", "{r}");
        assert_eq!(
            r["canary"]["stableImages"],
            serde_json::json!([tag("v1")]),
            "{r}"
        );

        // v2: a commit; the canary pauses at 20% with v2 beside the stable v1.
        let r = release(&env, "v2");
        assert_eq!(r["git"]["result"], "pushed", "{r}");
        assert_eq!(r["syncedRevision"], r["git"]["commit"], "{r}");
        assert_eq!(
            (
                r["canary"]["phase"].as_str(),
                r["canary"]["weight"].as_u64()
            ),
            (Some("Paused"), Some(20)),
            "{r}"
        );
        assert_eq!(
            r["canary"]["stableImages"],
            serde_json::json!([tag("v1")]),
            "{r}"
        );
        assert_eq!(
            r["canary"]["canaryImages"],
            serde_json::json!([tag("v2")]),
            "{r}"
        );
        assert!(
            argo.synced()
                .contains(&r["git"]["commit"].as_str().unwrap().to_string())
        );

        // The manual promotion: Healthy on v2.
        json(&env, &["promote", "--name", "production", "--full"]);
        await_healthy_on(&env, "v2");

        // v3, then abort: the stable version stays v2.
        let r = release(&env, "v3");
        assert_eq!(
            r["canary"]["canaryImages"],
            serde_json::json!([tag("v3")]),
            "{r}"
        );
        let a = json(&env, &["abort", "--name", "production"]);
        assert_eq!(a["aborted"], true, "{a}");
        assert_eq!(a["stable"]["images"], serde_json::json!([tag("v2")]), "{a}");

        assert_eq!(
            server.subjects("deploy"),
            [
                format!("Release {}", tag("v3")),
                format!("Release {}", tag("v2")),
                "Initial manifests".into()
            ]
        );

        // Two releases at once: both commits land (one push is retried), and the image of the
        // later commit is the one deployed.
        let spawn = |t: &str| {
            ephemera(
                &env,
                &[
                    "release",
                    "--image",
                    &tag(t),
                    "--timeout",
                    "90s",
                    "--output",
                    "json",
                ],
            )
            .output()
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| spawn("v4").unwrap());
            let b = s.spawn(|| spawn("v5").unwrap());
            (a.join().unwrap(), b.join().unwrap())
        });
        ok(&["release v4"], &a);
        ok(&["release v5"], &b);
        let subjects = server.subjects("deploy");
        assert_eq!(subjects.len(), 5, "{subjects:?}");
        let mut top: Vec<&str> = subjects[..2].iter().map(String::as_str).collect();
        let later = if top[0].ends_with(":v5") { "v5" } else { "v4" };
        top.sort_unstable();
        assert_eq!(
            top,
            [
                format!("Release {}", tag("v4")),
                format!("Release {}", tag("v5"))
            ]
        );
        let rollouts: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "web",
            &ephemera::app::ops::rollout_resource(),
        );
        let ro = rt.block_on(rollouts.get("web")).unwrap();
        assert_eq!(
            ro.data["spec"]["template"]["spec"]["containers"][0]["image"],
            tag(later).as_str()
        );
        drop(argo);
    }
}

#[test]
fn the_shipped_production_file_plans_no_add_ons_and_no_cluster() {
    let out = ephemera()
        .args([
            "plan",
            "--env",
            "environments/production.yaml",
            "--name",
            "production",
        ])
        .args(["--image", "ghcr.io/acme/cats:sha-1", "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["addons"], serde_json::json!([]), "{plan}");
    assert_eq!(plan["provider"]["kind"], "existing", "{}", plan["provider"]);
    let docs = plan["provider"]["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "only the record ConfigMap: {docs:?}");

    // A preview's --pr makes no sense for it; another --name neither.
    for flags in [["--pr", "7"], ["--name", "staging"]] {
        let out = ephemera()
            .args(["status", "--env", "environments/production.yaml"])
            .args(flags)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("pass --name production"),
            "{}",
            stderr(&out)
        );
    }
}

// --- mode: pullRequest against the fake GitHub API ---

#[test]
fn pull_request_mode_opens_one_pull_request_and_a_rerun_finds_it() {
    use crate::common::fake_github::{FakeGitHub, OWNER, REPO};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("git");
    std::fs::create_dir_all(&root).unwrap();
    let server = GitServer::start(&root);
    // The release repository's URL path is owner/name, which names it on the API.
    let name = format!("{OWNER}/{REPO}");
    let url = server.create(&name, &[("apps/cats/values.yaml", VALUES)]);
    let env = env_file(dir.path(), &url, &format!("{HELM}  mode: pullRequest\n"));
    let fake = FakeGitHub::start_in_thread();
    fake.accept_token(TOKEN);
    let run = || {
        let out = ephemera()
            .env("RELEASE_TOKEN", TOKEN)
            .env("GITHUB_API_URL", &fake.url)
            .args(["release", "--env", env.to_str().unwrap()])
            .args(["--image", "ghcr.io/acme/cats:sha-5555", "--output", "json"])
            .args(["--source-commit", "feedbeef"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_no_token(&stdout(&out));
        assert_no_token(&stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run();
    let pr = "https://github.example/acme/shop/pull/1";
    assert_eq!(first["pullRequest"], pr, "{first}");
    let opened = fake.opened_pulls();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0]["base"], "main");
    assert_eq!(opened[0]["title"], "Release ghcr.io/acme/cats:sha-5555");
    let head = opened[0]["head"].as_str().unwrap().to_string();
    assert!(head.starts_with("ephemera/release-"), "{head}");
    // The default branch is untouched; the PR's branch holds the one release commit.
    let bare = server.bare(&name);
    assert_eq!(server.subjects(&name), ["Initial manifests"]);
    let on_branch = git(&bare, &["log", "--format=%s", &head]);
    assert_eq!(
        on_branch.lines().collect::<Vec<_>>(),
        ["Release ghcr.io/acme/cats:sha-5555", "Initial manifests"]
    );
    let values = git(&bare, &["show", &format!("{head}:apps/cats/values.yaml")]);
    assert_eq!(values, VALUES.replace("\"sha-1111\"", "\"sha-5555\""));

    // A rerun (the same image) finds the open PR instead of opening a second.
    let again = run();
    assert_eq!(again["pullRequest"], pr, "{again}");
    assert_eq!(fake.opened_pulls().len(), 1);
    assert_eq!(server.subjects(&name), ["Initial manifests"]);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
