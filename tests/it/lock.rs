//! The add-on lock file through the real binary, against an HTTPS server on 127.0.0.1 that serves
//! the upstream files at their URLs' paths (`common::upstream`): `up` with `pr-kind.yaml`'s add-ons
//! on the local provider, no bundle and an empty manifest cache, downloads every source, verifies
//! the pinned ones and warns about the one nothing pins (cert-manager's controllers); `--locked`
//! refuses that source until `ephemera lock` has written its sha256; a file that changes upstream
//! fails.

use std::path::{Path, PathBuf};

use crate::common::cli::stderr;
use crate::common::lifecycle::{Sandbox, describe, local_bin_dirs};
use crate::common::upstream::{Upstream, files_for, reqwest_path, test_bundle};

/// cert-manager's controllers: the one source no add-on definition pins.
const UNPINNED: &str =
    "https://github.com/cert-manager/cert-manager/releases/download/v1.21.1/cert-manager.yaml";

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `environments/pr-kind.yaml` with the local provider (one simulated node) in place of kind,
/// written into the sandbox, so its lock lands there too.
fn pr_kind_on_local(sb: &Sandbox) -> PathBuf {
    let text = std::fs::read_to_string(
        crate::common::testcluster::repo_root().join("environments/pr-kind.yaml"),
    )
    .expect("environments/pr-kind.yaml");
    let kind = "provider:\n  kind:\n    nodeImage: kindest/node:v1.34.0\n";
    assert!(text.contains(kind), "pr-kind.yaml changed:\n{text}");
    sb.write(
        "pr-kind.yaml",
        &text.replace(kind, "provider:\n  local:\n    nodes: 1\n"),
    )
}

/// `up` of PR `pr` with a fixed image, `--locked` or not.
fn up_args<'a>(env: &'a str, pr: &'a str, locked: bool) -> Vec<&'a str> {
    let mut args = vec![
        "up",
        "--env",
        env,
        "--pr",
        pr,
        "--image",
        "ghcr.io/acme/cats:v1",
    ];
    if locked {
        args.push("--locked");
    }
    args
}

fn clear_cache(sb: &Sandbox) {
    let dir = sb.path().join("cache/ephemera/manifests");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clearing the manifest cache");
    }
}

/// The lock file's entries as (url, sha256), in file order.
fn lock_entries(lock: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(lock).expect("the lock file");
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("the lock is YAML");
    doc["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|e| {
            (
                e["url"].as_str().expect("url").to_string(),
                e["sha256"].as_str().expect("sha256").to_string(),
            )
        })
        .collect()
}

/// Without a cluster: `--locked` and `EPHEMERA_LOCKED` refuse the unpinned source before anything
/// is fetched or created; `lock` downloads only that source and writes every sum, sorted; a second
/// `lock` changes nothing; a lock that contradicts a definition is refused and `lock` repairs it;
/// a file that changed upstream fails `lock`.
#[test]
fn lock_writes_every_sum_and_locked_refuses_what_nothing_pins() {
    let rt = runtime();
    let mut sb = Sandbox::with_vars(vec![]);
    let env = pr_kind_on_local(&sb);
    // Nothing is applied here, so any bytes can stand for cert-manager's release asset.
    let bundle = sb.path().join("bundle");
    let controllers = bundle.join("cert-manager-v1.21.1/cert-manager.yaml");
    std::fs::create_dir_all(controllers.parent().expect("a parent")).expect("bundle dir");
    std::fs::write(&controllers, "# cert-manager.yaml as upstream serves it\n").expect("a file");
    let files = files_for(&env, &bundle);
    let upstream = Upstream::start(&rt, files.clone());
    sb.add_vars(upstream.vars());
    let env_arg = env.display().to_string();
    let lock = sb.path().join("pr-kind.lock");

    // --locked, or EPHEMERA_LOCKED=1, with no lock: exit 2 naming the source, nothing fetched,
    // nothing created.
    for locked in [true, false] {
        let args = up_args(&env_arg, "1", locked);
        let mut cmd = sb.command(&[]);
        if !locked {
            cmd.env("EPHEMERA_LOCKED", "1");
        }
        let o = cmd.args(&args).output().expect("ephemera runs");
        assert_eq!(o.status.code(), Some(2), "{}", describe(&args, &o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "error: cert-manager v1.21.1: {UNPINNED} is pinned neither by its add-on definition nor by {}",
                lock.display()
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("run `ephemera lock --env {env_arg}`")),
            "{err}"
        );
        assert_eq!(upstream.requests(), Vec::<String>::new());
        assert!(!sb.state().join("local").exists(), "nothing is created");
    }

    // lock: every source, sorted by add-on, at the sums the upstream files have; only the
    // unpinned file is downloaded.
    let out = sb.ok(&["lock", "--env", &env_arg]);
    assert!(
        out.starts_with(&format!("{}: ", lock.display())) && out.contains(" sources, written"),
        "{out}"
    );
    assert!(out.contains(UNPINNED), "{out}");
    assert_eq!(upstream.requests(), [reqwest_path(UNPINNED)]);
    let text = std::fs::read_to_string(&lock).expect("the lock");
    assert!(
        text.starts_with(&format!("# The add-on lock of {env_arg}")),
        "{text}"
    );
    let entries = lock_entries(&lock);
    assert_eq!(entries.len(), files.len(), "{text}");
    for (url, sum) in &entries {
        assert_eq!(
            *sum,
            sha256(&files[&reqwest_path(url)]),
            "{url} is locked at the sum of the file upstream serves"
        );
    }
    let addons: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  - addon: "))
        .collect();
    let mut sorted = addons.clone();
    sorted.sort();
    assert_eq!(addons, sorted, "{text}");

    // Again: the same bytes, and the unpinned file comes from the cache by its locked sum.
    let again = sb.ok(&["lock", "--env", &env_arg]);
    assert!(again.contains(" sources, unchanged"), "{again}");
    assert_eq!(std::fs::read_to_string(&lock).expect("the lock"), text);
    assert_eq!(upstream.requests().len(), 1, "{:?}", upstream.requests());

    // A lock entry that contradicts a definition's pin: up refuses it before anything is created,
    // and lock writes the pin back.
    let (pinned_url, pinned_sum) = entries
        .iter()
        .find(|(u, _)| u != UNPINNED)
        .expect("a pinned source")
        .clone();
    std::fs::write(&lock, text.replace(&pinned_sum, &"0".repeat(64))).expect("editing the lock");
    let args = up_args(&env_arg, "1", true);
    let o = sb.run(&args);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&args, &o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{pinned_url}: {} records sha256 {}, but the add-on definition pins {pinned_sum}",
            lock.display(),
            "0".repeat(64)
        )),
        "{err}"
    );
    assert!(!sb.state().join("local").exists(), "nothing is created");
    sb.ok(&["lock", "--env", &env_arg]);
    assert_eq!(std::fs::read_to_string(&lock).expect("the lock"), text);

    // The file changes upstream: lock, with an empty cache, refuses it and keeps the lock.
    let path = reqwest_path(UNPINNED);
    let mut tampered = files[&path].clone();
    tampered.extend_from_slice(b"\n# changed\n");
    upstream.set(&path, tampered.clone());
    clear_cache(&sb);
    let args = ["lock", "--env", &env_arg];
    let o = sb.run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&args, &o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "sha256 mismatch: expected {}, got {}",
            sha256(&files[&path]),
            sha256(&tampered)
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&lock).expect("the lock"), text);
}

/// Runs `down` for each PR when dropped, so no cluster outlives a failed assertion.
struct Down<'a>(&'a Sandbox, &'a str, Vec<&'a str>);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        for pr in &self.2 {
            let o = self.0.run(&["down", "--env", self.1, "--pr", pr]);
            if !o.status.success() {
                eprintln!("cleanup: down of pr-{pr} failed: {}", stderr(&o));
            }
        }
    }
}

/// The acceptance run on the local provider: `up` from upstream with warnings, `lock`, `up
/// --locked` from an empty cache without a warning, and a tampered file failing `up --locked`.
#[test]
fn up_downloads_verifies_and_locks_addon_sources_on_the_local_provider() {
    let Some(bins) = local_bin_dirs() else {
        return;
    };
    let rt = runtime();
    let mut sb = Sandbox::with_vars(vec![
        ("EPHEMERA_LOCAL_BIN".into(), bins),
        ("PATH".into(), "/usr/bin:/bin".into()),
    ]);
    let env = pr_kind_on_local(&sb);
    let files = files_for(&env, &test_bundle());
    let upstream = Upstream::start(&rt, files.clone());
    sb.add_vars(upstream.vars());
    let env_arg = env.display().to_string();
    let _down = Down(&sb, &env_arg, vec!["1", "2", "3"]);
    let up = |pr: &str, locked: bool| {
        let args = up_args(&env_arg, pr, locked);
        let o = sb.run(&args);
        let said = describe(&args, &o);
        (o, said)
    };

    // No bundle, an empty cache: every file comes from upstream; the unpinned one with a warning
    // naming its sha256 and the lock command.
    let (o, said) = up("1", false);
    assert!(o.status.success(), "{said}");
    let err = stderr(&o);
    let warning = err
        .lines()
        .find(|l| l.contains("is pinned neither by its add-on definition nor by"))
        .unwrap_or_else(|| panic!("no warning about the unpinned source: {said}"));
    let path = reqwest_path(UNPINNED);
    assert!(warning.contains("cert-manager v1.21.1: "), "{warning}");
    assert!(
        warning.contains(&format!("{}{path}", upstream.base)),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("sha256 {}", sha256(&files[&path]))),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("`ephemera lock --env {env_arg}`")),
        "{warning}"
    );
    assert_eq!(
        err.matches("is pinned neither").count(),
        1,
        "only the unpinned source warns: {err}"
    );
    let mut requested = upstream.requests();
    requested.sort();
    assert_eq!(
        requested,
        files.keys().cloned().collect::<Vec<_>>(),
        "each file once"
    );

    // lock, then up --locked from an empty cache: everything downloaded again, all verified.
    sb.ok(&["lock", "--env", &env_arg]);
    clear_cache(&sb);
    let before = upstream.requests().len();
    let (o, said) = up("2", true);
    assert!(o.status.success(), "{said}");
    assert!(!stderr(&o).contains("is pinned neither"), "{said}");
    assert_eq!(upstream.requests().len() - before, files.len(), "{said}");
    sb.ok(&["down", "--env", &env_arg, "--pr", "1"]);

    // The unpinned file changes upstream: up --locked fails on it, naming the URL and both sums,
    // and takes down the cluster it made.
    let mut tampered = files[&path].clone();
    tampered.extend_from_slice(b"\n# changed\n");
    upstream.set(&path, tampered.clone());
    clear_cache(&sb);
    let (o, said) = up("3", true);
    assert_eq!(o.status.code(), Some(1), "{said}");
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "cert-manager v1.21.1: {}{path}: sha256 mismatch: expected {}, got {}",
            upstream.base,
            sha256(&files[&path]),
            sha256(&tampered)
        )),
        "{said}"
    );
    assert_eq!(sb.local_envs(), ["pr-2"], "{said}");
}
