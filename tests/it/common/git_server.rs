//! A real git server on 127.0.0.1: bare repositories served by `git http-backend` (git's own
//! smart-HTTP CGI program) behind a small axum server that demands a token, as GitHub, Azure
//! Repos and GitLab do over HTTPS. Not a stand-in: clones, fetches and pushes are real git on
//! both sides; only TLS is left out.
//!
//! A hook can run once just before the next push reaches git, to make another push win the race
//! (the "someone else pushed first" case).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

/// The user name and token the server accepts.
pub const USER: &str = "x-access-token";
pub const TOKEN: &str = "ghs_releasetokenXXXXsecretXXXX";

type Hook = Box<dyn FnOnce() + Send>;

pub struct GitServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub root: PathBuf,
    before_push: Arc<Mutex<Option<Hook>>>,
    pushes: Arc<Mutex<u32>>,
    _thread: std::thread::JoinHandle<()>,
}

/// Runs git with `args` in `dir`, panicking with its output on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl GitServer {
    /// Serves the bare repositories under `root` (each `<name>.git`).
    pub fn start(root: &Path) -> GitServer {
        let before_push: Arc<Mutex<Option<Hook>>> = Arc::new(Mutex::new(None));
        let pushes = Arc::new(Mutex::new(0));
        let (hook, count, dir) = (before_push.clone(), pushes.clone(), root.to_path_buf());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            super::runtime().block_on(async move {
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let (hook, count, dir) = (hook.clone(), count.clone(), dir.clone());
                        async move { serve(&dir, &hook, &count, method, uri, headers, body).await }
                    },
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("address"))
                    .expect("the test waits");
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx.recv().expect("the git server starts");
        GitServer {
            base: format!("http://{addr}"),
            root: root.to_path_buf(),
            before_push,
            pushes,
            _thread: thread,
        }
    }

    /// A bare repository `name.git` with `files` committed on `main` as its first commit.
    pub fn create(&self, name: &str, files: &[(&str, &str)]) -> String {
        let bare = self.root.join(format!("{name}.git"));
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        git(&bare, &["config", "http.receivepack", "true"]);
        let work = self.root.join(format!("{name}-seed"));
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        for (path, text) in files {
            let p = work.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "Initial manifests"]);
        git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
        format!("{}/{name}.git", self.base)
    }

    /// The bare repository's directory.
    pub fn bare(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.git"))
    }

    /// `git log --format=%s` of `main`, newest first.
    pub fn subjects(&self, name: &str) -> Vec<String> {
        git(&self.bare(name), &["log", "--format=%s", "main"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A file at the head of `main`.
    pub fn file(&self, name: &str, path: &str) -> String {
        git(&self.bare(name), &["show", &format!("main:{path}")])
    }

    /// Commits `path` = `text` to `main` directly in the bare repository (another writer).
    pub fn commit_directly(&self, name: &str, path: &str, text: &str, subject: &str) {
        commit_to(&self.bare(name), &self.root, path, text, subject);
    }

    /// Runs `hook` once, just before the next push reaches git.
    pub fn before_next_push(&self, hook: impl FnOnce() + Send + 'static) {
        *self.before_push.lock().unwrap() = Some(Box::new(hook));
    }

    /// Pushes received (receive-pack POSTs that passed the token check).
    pub fn pushes(&self) -> u32 {
        *self.pushes.lock().unwrap()
    }
}

/// Commits one file to `main` of the bare repository `bare`, through a scratch clone in `scratch`.
pub fn commit_to(bare: &Path, scratch: &Path, path: &str, text: &str, subject: &str) {
    let work = scratch
        .join(format!("writer-{}", std::process::id()))
        .join(format!("{:x}", rand_suffix()));
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["clone", "-q", bare.to_str().unwrap(), "."]);
    let p = work.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", subject]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn authorized(headers: &HeaderMap) -> bool {
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{TOKEN}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

async fn serve(
    root: &Path,
    hook: &Mutex<Option<Hook>>,
    pushes: &Mutex<u32>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Basic realm=\"release\"")],
            "token required",
        )
            .into_response();
    }
    if method == Method::POST && uri.path().ends_with("/git-receive-pack") {
        *pushes.lock().unwrap() += 1;
        let pending = hook.lock().unwrap().take();
        if let Some(h) = pending {
            tokio::task::spawn_blocking(h)
                .await
                .expect("the push hook runs");
        }
    }
    let root = root.to_path_buf();
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let env: Vec<(&str, String)> = vec![
        ("GIT_PROJECT_ROOT", root.display().to_string()),
        ("GIT_HTTP_EXPORT_ALL", "1".into()),
        ("REQUEST_METHOD", method.to_string()),
        ("PATH_INFO", uri.path().to_string()),
        ("QUERY_STRING", uri.query().unwrap_or_default().to_string()),
        ("CONTENT_TYPE", header("content-type")),
        ("CONTENT_LENGTH", body.len().to_string()),
        ("HTTP_CONTENT_ENCODING", header("content-encoding")),
        ("HTTP_GIT_PROTOCOL", header("git-protocol")),
        ("REMOTE_USER", USER.into()),
        ("REMOTE_ADDR", "127.0.0.1".into()),
    ];
    let out = tokio::task::spawn_blocking(move || cgi(&env, &body))
        .await
        .expect("cgi runs");
    match out {
        Ok(resp) => resp,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// Runs `git http-backend` with the CGI variables `env` and `body` on stdin, and turns its
/// output (headers, blank line, body) into a response.
fn cgi(env: &[(&str, String)], body: &[u8]) -> Result<Response, String> {
    use std::io::Write as _;
    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("git http-backend: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        })
        .ok_or_else(|| {
            format!(
                "git http-backend printed no headers: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let head = String::from_utf8_lossy(&out.stdout[..split.0]).into_owned();
    let mut builder = Response::builder();
    let mut status = StatusCode::OK;
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            let code = v.split(' ').next().unwrap_or("200").parse().unwrap_or(500);
            status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else {
            builder = builder.header(k.trim(), v);
        }
    }
    builder
        .status(status)
        .body(axum::body::Body::from(
            out.stdout[split.0 + split.1..].to_vec(),
        ))
        .map_err(|e| e.to_string())
}
