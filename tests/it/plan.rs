//! `ephemera plan`: snapshots of every shipped environment, determinism, the acceptance
//! command, the output modes, and untrusted strings kept as data.

use crate::common::cli::{NOW, find, run, stderr, stdout, yaml_docs};

const IMAGE: &str = "ghcr.io/acme/cats:sha-1234";

fn plan_ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "plan failed: {}", stderr(&o));
    stdout(&o)
}

fn plan_env(file: &str, target: &[&str]) -> String {
    let env = format!("environments/{file}");
    let mut args = vec!["plan", "--env", &env, "--image", IMAGE, "--now", NOW];
    args.extend_from_slice(target);
    plan_ok(&args)
}

#[test]
fn snapshot_pr_aks() {
    insta::assert_snapshot!("plan_pr_aks", plan_env("pr-aks.yaml", &["--pr", "42"]));
}

#[test]
fn snapshot_pr_kind() {
    insta::assert_snapshot!("plan_pr_kind", plan_env("pr-kind.yaml", &["--pr", "42"]));
}

#[test]
fn snapshot_adhoc_aks() {
    insta::assert_snapshot!(
        "plan_adhoc_aks",
        plan_env("adhoc-aks.yaml", &["--name", "alice-try"])
    );
}

#[test]
fn snapshot_local() {
    insta::assert_snapshot!("plan_local", plan_env("local.yaml", &["--pr", "7"]));
}

#[test]
fn two_runs_give_identical_bytes_without_reading_the_clock() {
    let args = [
        "plan",
        "--env",
        "environments/pr-aks.yaml",
        "--pr",
        "42",
        "--image",
        IMAGE,
    ];
    let a = run(&args);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = run(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout);
    let out = stdout(&a);
    assert!(
        out.contains("placeholder times"),
        "the placeholder time must be marked:\n{out}"
    );
    assert!(
        out.contains("ephemera-created-at: \"1970-01-01T00:00:00Z\""),
        "{out}"
    );
}

#[test]
fn source_date_epoch_sets_the_time() {
    let o = crate::common::cli::ephemera()
        .args([
            "plan",
            "--env",
            "environments/local.yaml",
            "--pr",
            "7",
            "--image",
            IMAGE,
        ])
        .env("SOURCE_DATE_EPOCH", "1795860000")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        out.contains("ephemera-created-at: \"2026-11-28T10:00:00Z\""),
        "{out}"
    );
    assert!(
        out.contains("ephemera-expires-at: \"2026-11-28T12:00:00Z\""),
        "ttl 2h from local.yaml:\n{out}"
    );
    assert!(!out.contains("placeholder"), "{out}");
}

/// The acceptance command: the AKS PUT body with ownership tags, then every manifest.
#[test]
fn acceptance_pr_aks() {
    let out = plan_ok(&[
        "plan",
        "--env",
        "environments/pr-aks.yaml",
        "--pr",
        "42",
        "--image",
        IMAGE,
    ]);
    let docs = yaml_docs(&out);
    let cluster = docs
        .iter()
        .find(|d| d["properties"]["agentPoolProfiles"].is_array())
        .expect("the managed cluster PUT body");
    let tags = &cluster["tags"];
    assert_eq!(tags["ephemera-managed-by"], "ephemera");
    assert_eq!(tags["ephemera-environment"], "pr-42");
    assert_eq!(tags["ephemera-pr"], "42");
    assert!(tags["ephemera-created-at"].is_string());
    assert!(tags["ephemera-expires-at"].is_string());
    assert_eq!(
        tags["cost-center"], "previews",
        "the file's own tags are kept"
    );
    // Provider request first, then add-ons, then the app.
    let first_app = docs.iter().position(|d| d["kind"] == "Namespace").unwrap();
    let addons = docs.iter().position(|d| d["addons"].is_array()).unwrap();
    let cluster_at = docs
        .iter()
        .position(|d| d["properties"]["agentPoolProfiles"].is_array())
        .unwrap();
    assert!(
        cluster_at < addons && addons < first_app,
        "order: provider, add-ons, manifests"
    );

    let rollout = find(&docs, "Rollout", "cats");
    assert_eq!(
        rollout["spec"]["template"]["spec"]["containers"][0]["image"],
        IMAGE
    );
    let steps = &rollout["spec"]["strategy"]["canary"]["steps"];
    assert_eq!(
        steps,
        &serde_json::json!([
            {"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "30s"}}, {"setWeight": 100}
        ])
    );
    find(&docs, "Service", "cats");
    find(&docs, "Service", "cats-canary");
    let route = find(&docs, "HTTPRoute", "cats");
    assert_eq!(route["spec"]["hostnames"][0], "pr-42.previews.acme.dev");
    let cert = find(&docs, "Certificate", "cats");
    assert_eq!(cert["spec"]["dnsNames"][0], "pr-42.previews.acme.dev");
    assert_eq!(cert["spec"]["issuerRef"]["kind"], "ClusterIssuer");
}

#[test]
fn kind_and_local_plans_have_their_provider_request_and_a_wildcard_dns_host() {
    let kind = yaml_docs(&plan_env("pr-kind.yaml", &["--pr", "42"]));
    assert_eq!(kind[0]["kind"], "Cluster");
    assert_eq!(kind[0]["nodes"][0]["extraPortMappings"][0]["hostPort"], 80);
    assert_eq!(kind[0]["nodes"][0]["extraPortMappings"][1]["hostPort"], 443);
    let patch = kind[0]["nodes"][0]["kubeadmConfigPatches"][0]
        .as_str()
        .unwrap();
    assert!(patch.contains("ingress-ready=true"), "{patch}");
    assert_eq!(
        find(&kind, "HTTPRoute", "cats")["spec"]["hostnames"][0],
        "pr-42.127.0.0.1.nip.io"
    );

    let local = yaml_docs(&plan_env("local.yaml", &["--pr", "7"]));
    assert_eq!(local[0]["nodes"], 2);
    assert_eq!(local[0]["servesTraffic"], false);
    find(&local, "Rollout", "cats");
    find(&local, "Certificate", "cats");
}

#[test]
fn aks_without_a_domain_marks_the_host_as_pending() {
    let o = run(&[
        "plan",
        "--env",
        "environments/adhoc-aks.yaml",
        "--name",
        "alice-try",
        "--output",
        "json",
        "--now",
        NOW,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["environment"]["host"],
        "alice-try.<load-balancer-ip>.nip.io"
    );
    assert!(
        v["environment"]["hostPending"]
            .as_str()
            .unwrap()
            .contains("up renders the host")
    );
    assert!(
        v["environment"]["url"].is_null(),
        "no URL before the host is known"
    );
}

#[test]
fn json_output_is_the_whole_plan() {
    let o = run(&[
        "plan",
        "--env",
        "environments/pr-aks.yaml",
        "--pr",
        "42",
        "--image",
        IMAGE,
        "--output",
        "json",
        "--now",
        NOW,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["environment"]["name"], "pr-42");
    assert_eq!(v["environment"]["url"], "https://pr-42.previews.acme.dev");
    assert_eq!(v["environment"]["expiresAt"], "2026-11-29T10:00:00Z");
    assert_eq!(v["provider"]["kind"], "aks");
    let names: Vec<&str> = v["addons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gateway-api", "cert-manager", "argo-rollouts"]);
    assert!(v["addons"][0]["sources"][0]["sha256"].is_string());
    let kinds: Vec<&str> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["object"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "Secret",
            "Service",
            "Service",
            "Rollout",
            "Certificate",
            "ListenerSet",
            "HTTPRoute"
        ]
    );
}

#[test]
fn out_dir_gets_one_file_per_object() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan");
    let o = run(&[
        "plan",
        "--env",
        "environments/pr-kind.yaml",
        "--pr",
        "3",
        "--image",
        IMAGE,
        "--now",
        NOW,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names[0], "01-provider-kind-1.yaml");
    assert_eq!(names[1], "02-provider-kind-2.yaml", "the record ConfigMap");
    assert_eq!(names[2], "03-addons.yaml");
    assert!(
        names.contains(&"07-rollout-cats-cats.yaml".to_string()),
        "{names:?}"
    );
    assert_eq!(
        stdout(&o).lines().count(),
        names.len(),
        "stdout lists the files written"
    );
    for n in &names {
        let text = std::fs::read_to_string(out.join(n)).unwrap();
        assert_eq!(yaml_docs(&text).len(), 1, "{n} holds one object");
    }
}

/// Branch names and titles from forks are data: whatever they hold, the YAML stays intact and
/// carries them verbatim.
#[test]
fn hostile_branch_and_title_stay_data() {
    for hostile in [
        "\": {a: b}",
        "$(rm -rf /)",
        "x\n  injected: true",
        "'; kubectl delete ns --all #",
        "*anchor &a !!tag",
    ] {
        let o = crate::common::cli::ephemera()
            .args([
                "plan",
                "--env",
                "environments/local.yaml",
                "--pr",
                "7",
                "--image",
                IMAGE,
                "--now",
                NOW,
            ])
            .args(["--branch", hostile, "--title", hostile])
            .output()
            .unwrap();
        if hostile.contains('\n') {
            // Control characters cannot be in a branch name: refused, on one line.
            assert_eq!(o.status.code(), Some(2), "{hostile:?}");
            assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
            continue;
        }
        assert!(o.status.success(), "{hostile:?}: {}", stderr(&o));
        let docs = yaml_docs(&stdout(&o));
        let rollout = find(&docs, "Rollout", "cats");
        assert_eq!(
            rollout["metadata"]["annotations"]["ephemera.dev/branch"],
            hostile
        );
        assert_eq!(
            rollout["metadata"]["annotations"]["ephemera.dev/title"],
            hostile
        );
        assert!(rollout["metadata"].get("injected").is_none());
    }
}

#[test]
fn branch_comes_from_github_head_ref() {
    let o = crate::common::cli::ephemera()
        .args([
            "plan",
            "--env",
            "environments/local.yaml",
            "--pr",
            "7",
            "--image",
            IMAGE,
            "--now",
            NOW,
        ])
        .env("GITHUB_HEAD_REF", "feature/$(id)")
        .env("GITHUB_REPOSITORY", "acme/cats")
        .output()
        .unwrap();
    let docs = yaml_docs(&stdout(&o));
    let rollout = find(&docs, "Rollout", "cats");
    assert_eq!(
        rollout["metadata"]["annotations"]["ephemera.dev/branch"],
        "feature/$(id)"
    );
    assert!(stdout(&o).contains("ephemera-repository: acme/cats"));
}

/// `plan` of PR 1 from environment file `env`, at the fixed time.
fn plan_args(env: &str) -> [&str; 9] {
    [
        "plan", "--env", env, "--pr", "1", "--image", IMAGE, "--now", NOW,
    ]
}

/// The managed cluster's PUT body in a plan (the document with agent pools).
fn cluster_properties(docs: &[serde_json::Value]) -> &serde_json::Value {
    docs.iter()
        .map(|d| &d["properties"])
        .find(|p| p.get("agentPoolProfiles").is_some())
        .expect("a managed cluster body in the plan")
}

#[test]
fn dns01_identity_turns_on_workload_identity_and_its_absence_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string("environments/pr-aks.yaml").unwrap();
    let client = "  certManager:\n    values:\n      azureDNS:\n        clientID: 55555555-5555-5555-5555-555555555555\n";
    let plan = |name: &str, text: String| {
        let env = dir.path().join(name);
        std::fs::write(&env, text).unwrap();
        let o = run(&plan_args(env.to_str().unwrap()));
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    let without = plan(
        "client-only.yaml",
        base.replace("  certManager: {}\n", client),
    );
    assert!(
        stderr(&without).contains("provider.aks.dns.identity is not set"),
        "{}",
        stderr(&without)
    );
    let docs = yaml_docs(&stdout(&without));
    let body = cluster_properties(&docs);
    assert!(body.get("oidcIssuerProfile").is_none(), "{body:#}");

    let with = plan(
        "identity.yaml",
        base.replace("  certManager: {}\n", client).replace(
            "      # identity: /subscriptions/<id>/",
            "      identity: /subscriptions/00000000-0000-0000-0000-000000000000/",
        ),
    );
    assert!(
        !stderr(&with).contains("identity is not set"),
        "{}",
        stderr(&with)
    );
    let docs = yaml_docs(&stdout(&with));
    let body = cluster_properties(&docs);
    assert_eq!(body["oidcIssuerProfile"]["enabled"], true, "{body:#}");
    assert_eq!(
        body["securityProfile"]["workloadIdentity"]["enabled"], true,
        "{body:#}"
    );
}

#[test]
fn warnings_go_to_stderr_and_quiet_silences_them() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("nginx.yaml");
    let text = std::fs::read_to_string("environments/pr-aks.yaml")
        .unwrap()
        .replace(
            "implementation: gateway-api",
            "implementation: ingress-nginx",
        )
        .replace("expectedPrsPerWeek: 20", "expectedPrsPerWeek: 80");
    std::fs::write(&env, text).unwrap();
    let args = plan_args(env.to_str().unwrap());
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("warning: ingress-nginx"), "{err}");
    assert!(err.contains("retire"), "{err}");
    assert!(err.contains("80 certificates a week"), "{err}");
    let docs = yaml_docs(&stdout(&o));
    let ingress = find(&docs, "Ingress", "cats");
    assert_eq!(
        ingress["spec"]["rules"][0]["host"],
        "pr-1.previews.acme.dev"
    );
    let canary = &find(&docs, "Rollout", "cats")["spec"]["strategy"]["canary"];
    assert_eq!(canary["trafficRouting"]["nginx"]["stableIngress"], "cats");

    let mut quiet = args.to_vec();
    quiet.push("-q");
    let o = run(&quiet);
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
}

#[test]
fn gitops_mode_replaces_the_rollout_with_an_application() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("gitops.yaml");
    let text = std::fs::read_to_string("environments/local.yaml")
        .unwrap()
        .replace("  argoCd:\n    enabled: false\n", "  argoCd: {}\n")
        + "";
    let text = text.replace(
        "app:\n  name: cats\n",
        "app:\n  name: cats\n  gitops:\n    repoUrl: https://github.com/acme/cats-deploy\n    path: charts/cats\n",
    );
    std::fs::write(&env, text).unwrap();
    let o = run(&[
        "plan",
        "--env",
        env.to_str().unwrap(),
        "--pr",
        "5",
        "--image",
        IMAGE,
        "--now",
        NOW,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let docs = yaml_docs(&stdout(&o));
    assert!(!docs.iter().any(|d| d["kind"] == "Rollout"));
    let app = find(&docs, "Application", "cats");
    assert_eq!(
        app["spec"]["source"]["helm"]["parameters"][0],
        serde_json::json!({"name": "image.tag", "value": "sha-1234"})
    );
    assert_eq!(app["spec"]["destination"]["namespace"], "cats");
}

/// `--templates DIR` replaces embedded templates file by file and can add objects of its own.
#[test]
fn template_overrides_add_and_replace_objects() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("60-config.yaml.hbs"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: {{yaml namespace}}\ndata:\n  host: {{yaml host}}\n",
    )
    .unwrap();
    std::fs::write(
        app.join("00-namespace.yaml.hbs"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{yaml namespace}}\n",
    )
    .unwrap();
    let o = run(&[
        "plan",
        "--env",
        "environments/local.yaml",
        "--pr",
        "7",
        "--image",
        IMAGE,
        "--now",
        NOW,
        "--templates",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let docs = yaml_docs(&stdout(&o));
    assert_eq!(
        find(&docs, "ConfigMap", "extra")["data"]["host"],
        "pr-7.127.0.0.1.nip.io"
    );
    let ns = find(&docs, "Namespace", "cats");
    assert!(
        ns["metadata"].get("labels").is_none(),
        "the override replaced the embedded namespace template"
    );
    find(&docs, "Rollout", "cats");
}

#[test]
fn a_pool_shows_its_idle_capacity_in_the_plan() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("environments/pr-aks.yaml"),
    )
    .expect("environments/pr-aks.yaml");
    let file = dir.path().join("pooled.yaml");
    std::fs::write(&file, format!("{shipped}\npool:\n  size: 3\n")).expect("env file");
    let env = file.to_str().expect("UTF-8");
    let args = [
        "plan", "--env", env, "--pr", "42", "--image", IMAGE, "--now", NOW, "--output", "json",
    ];
    let plan: serde_json::Value = serde_json::from_str(&plan_ok(&args)).expect("JSON");
    let pool = &plan["environment"]["pool"];
    let nodes = pool["nodesPerMember"].as_u64().expect("nodes per member");
    assert_eq!(pool["members"], 3, "{pool:#}");
    assert_eq!(
        pool["summary"],
        format!(
            "3 members x {nodes} {} nodes = {} nodes idle",
            pool["nodeSize"].as_str().expect("VM size"),
            3 * nodes
        ),
        "{pool:#}"
    );
    // Without pool: the summary has none.
    let plain = plan_env("pr-aks.yaml", &["--pr", "42"]);
    assert!(!plain.contains("nodes idle"), "{plain}");
}
