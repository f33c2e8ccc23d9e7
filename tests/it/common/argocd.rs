//! STAND-IN for Argo CD (application-controller + repo-server), for the `release` tests.
//!
//! Argo CD cannot be built here from the Go module proxy: v3.5.1's go.mod replaces
//! `github.com/argoproj/argo-cd/gitops-engine` with the directory `./gitops-engine`, which the
//! module zip does not hold (it is a nested module), and the proxy does not serve the
//! pseudo-version its require line names (403 "This module version is not available").
//!
//! What this stand-in does, and nothing more, is what Argo CD does for one Application with
//! auto-sync and a kustomize source: it watches the branch head of the real release repository
//! (real git over HTTP, with the token), checks out each new commit, renders the kustomization
//! at `spec.source.path` (its `resources:` files and its `images:` tag/digest overrides, the only
//! kustomize features the test repository uses), server-side applies the result to the test
//! control plane with ephemera's kube module, and writes the Application's
//! `status.sync {status: Synced, revision}` and `status.health`.
//! Syncing, pruning, hooks, diffing and health assessment of real Argo CD are not simulated.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::git_server::{TOKEN, USER};

pub struct ArgoCdStandIn {
    stop: Arc<AtomicBool>,
    synced: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The Application CRD from the Argo CD release ephemera pins (the shared fixture bundle).
pub fn application_crd() -> Value {
    let path = super::testcluster::shared_file("fixtures/manifests/argo-cd-v3.5.1/install.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).expect("install.yaml parses");
    docs.into_iter()
        .find(|d| {
            d["kind"] == "CustomResourceDefinition"
                && d["metadata"]["name"] == "applications.argoproj.io"
        })
        .expect("the Application CRD is in install.yaml")
}

/// An Application syncing `path` of `url` at `main` into namespace `dest`.
pub fn application(ns: &str, name: &str, url: &str, path: &str, dest: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "project": "default",
            "source": {"repoURL": url, "path": path, "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
            "syncPolicy": {"automated": {}}
        }
    })
}

impl ArgoCdStandIn {
    /// Starts syncing Application `ns/name` from `url` on a thread of its own.
    pub fn start(
        client: kube::Client,
        url: &str,
        ns: &str,
        name: &str,
        scratch: &Path,
    ) -> ArgoCdStandIn {
        let stop = Arc::new(AtomicBool::new(false));
        let synced = Arc::new(Mutex::new(Vec::new()));
        let (stop2, synced2) = (stop.clone(), synced.clone());
        let (url, ns, name, scratch) = (
            url.to_string(),
            ns.to_string(),
            name.to_string(),
            scratch.to_path_buf(),
        );
        let thread = std::thread::spawn(move || {
            // The applier runs its requests as tasks: give them worker threads of their own.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let apps: Api<DynamicObject> = Api::namespaced_with(
                    client.clone(),
                    &ns,
                    &ephemera::engine::release::application_resource(),
                );
                let mut last = String::new();
                while !stop2.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let Some(head) = ls_remote(&url) else {
                        continue;
                    };
                    if head == last {
                        continue;
                    }
                    let Ok(app) = apps.get(&name).await else {
                        continue;
                    };
                    let path = app.data["spec"]["source"]["path"]
                        .as_str()
                        .unwrap_or(".")
                        .to_string();
                    let dir = scratch.join(format!("argocd-{}", &head[..12]));
                    let revision = checkout(&url, &dir);
                    let objects = render(&dir.join(&path));
                    if let Err(e) = apply(&client, objects).await {
                        eprintln!("argocd stand-in: applying {revision}: {e}");
                        continue;
                    }
                    let status = json!({"status": {
                        "sync": {"status": "Synced", "revision": revision},
                        "health": {"status": "Healthy"}
                    }});
                    if let Err(e) = apps
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&status))
                        .await
                    {
                        eprintln!("argocd stand-in: writing the status: {e}");
                        continue;
                    }
                    synced2.lock().unwrap().push(revision.clone());
                    last = revision;
                }
            });
        });
        ArgoCdStandIn {
            stop,
            synced,
            thread: Some(thread),
        }
    }

    /// The revisions synced so far, oldest first.
    pub fn synced(&self) -> Vec<String> {
        self.synced.lock().unwrap().clone()
    }
}

impl Drop for ArgoCdStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Server-side apply of each object as `argocd-controller`, namespaced or not by whether it
/// has a namespace (the test repository holds a Namespace, Services and a Rollout).
async fn apply(client: &kube::Client, objects: Vec<DynamicObject>) -> Result<(), kube::Error> {
    let params = PatchParams::apply("argocd-controller").force();
    for obj in objects {
        let types = obj.types.clone().unwrap_or_default();
        let (group, version) = types
            .api_version
            .rsplit_once('/')
            .unwrap_or(("", types.api_version.as_str()));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, &types.kind);
        let ar = kube::api::ApiResource::from_gvk(&gvk);
        let name = obj.metadata.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> = match &obj.metadata.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        api.patch(&name, &params, &Patch::Apply(&obj)).await?;
    }
    Ok(())
}

fn auth_header() -> String {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{TOKEN}"));
    format!("http.extraHeader=Authorization: Basic {basic}")
}

fn ls_remote(url: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["-c", &auth_header(), "ls-remote", url, "refs/heads/main"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace().next().map(str::to_string)
}

/// Clones `url`'s `main` into `dir` (fresh) and returns the commit checked out.
fn checkout(url: &str, dir: &PathBuf) -> String {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let ok = std::process::Command::new("git")
        .args([
            "-c",
            &auth_header(),
            "clone",
            "-q",
            "--depth",
            "1",
            "-b",
            "main",
            url,
            ".",
        ])
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "argocd stand-in: cloning {url}");
    super::git_server::git(dir, &["rev-parse", "HEAD"])
        .trim()
        .to_string()
}

/// The kustomization in `dir`: its resources, with its `images:` overrides applied.
fn render(dir: &Path) -> Vec<DynamicObject> {
    let k: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    let images = k["images"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for file in k["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).unwrap();
        for mut doc in docs.into_iter().filter(|d| !d.is_null()) {
            for pointer in [
                "/spec/template/spec/containers",
                "/spec/template/spec/initContainers",
            ] {
                for c in doc
                    .pointer_mut(pointer)
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(image) = c["image"].as_str().map(str::to_string) {
                        c["image"] = Value::String(override_image(&image, &images));
                    }
                }
            }
            out.push(ephemera::kube::manifest::from_value(doc).expect("an object"));
        }
    }
    out
}

/// kustomize's image transformer: `name[:tag][@digest]` → `newName:newTag` or `@digest`.
fn override_image(image: &str, images: &[Value]) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let name = match name.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n,
        _ => name,
    };
    let Some(o) = images.iter().find(|i| i["name"] == name) else {
        return image.to_string();
    };
    let new_name = o["newName"].as_str().unwrap_or(name);
    match (o["digest"].as_str(), o["newTag"].as_str()) {
        (Some(d), _) => format!("{new_name}@{d}"),
        (None, Some(t)) => format!("{new_name}:{t}"),
        (None, None) => image.replacen(name, new_name, 1),
    }
}
