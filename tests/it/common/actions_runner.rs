//! A small GitHub Actions runner for the tests: it reads the shipped workflow files and the
//! composite action (`action.yml`) as they are in the repository, evaluates their `${{ }}`
//! expressions (see [`super::expr`]) from a recorded event payload, and runs each `run:` step
//! with bash and the variables a runner sets (`GITHUB_OUTPUT`, `GITHUB_ENV`, `GITHUB_PATH`,
//! `RUNNER_TEMP`, `GITHUB_EVENT_PATH`, ...). Jobs run in `needs` order; `if:` conditions, job and
//! step outputs, `concurrency` groups (a newer run waits for, or with `cancel-in-progress`
//! cancels, the holder: SIGINT to the step's process group, then SIGKILL) and `always()` steps
//! after a cancellation behave as on GitHub.
//!
//! Only third-party `uses:` steps are stood in for: `actions/checkout` copies the tree the test
//! names, `actions/upload-artifact` / `download-artifact` copy directories between runs, and
//! `azure/login` checks that the job may get an OIDC token for one of the environments the
//! identity is federated for ([`Runner::federate`]; `preview` by default): it fails, as the real
//! one would, in a job without such an `environment:` or without `id-token: write`.
//!
//! Triggers: a run starts only for an event the workflow's `on:` names, and a `push` only for a
//! ref its `branches:` / `tags:` filters match (`*` matching any characters but `/`); otherwise
//! [`Runner::run`] returns a run with no jobs, as GitHub starts none.
//!
//! Environment gates (a STAND-IN for GitHub's deployment protection rules): an environment
//! given [`Runner::require_reviewers`] holds each job that names it, before its first step, in
//! the step "waiting for review" until the test calls [`Runner::review`]; approved, the job
//! runs; rejected, it fails without running a step. Which people may review is not simulated.
//! `docker` and `gh` are stand-in commands on the PATH. The action `your-org/ephemera@<ref>` is
//! unpacked from this repository to `_actions/your-org/ephemera/<ref>`, as the runner does, and
//! runs its real scripts, which install the release the test built.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::expr::{self, Status};

/// The action under test, as the shipped workflows name it.
pub const ACTION: &str = "your-org/ephemera";

/// A `gh` in `dir` that serves release `tag` of `repo` from `rel` (`release download TAG --repo
/// R --dir D --pattern A ...` copies what matches) and `api --paginate repos/R/tags?per_page=100
/// --jq EXPR` from `rel/tags.json` through jq, as `gh api --jq` does; anything else (such as `gh
/// attestation`) is unsupported. It appends its arguments to `$RUNNER_TEMP/gh-args`.
pub fn gh_stand_in(dir: &Path, rel: &Path, repo: &str, tag: &str) {
    write_script(
        dir,
        "gh",
        &format!(
            "#!/bin/bash\necho \"$@\" >> \"$RUNNER_TEMP/gh-args\"\n\
             if [ \"$1 $2 $3\" = 'api --paginate repos/{repo}/tags?per_page=100' ] && [ \"$4\" = --jq ]; then\n\
               exec jq -r \"$5\" {rel}/tags.json\n\
             fi\n\
             [ \"$1 $2\" = 'release download' ] || exit 1\n\
             [ \"$3\" = {tag} ] || exit 1\n\
             dir=; pats=(); shift 3\n\
             while [ $# -gt 0 ]; do case $1 in --dir) dir=$2; shift 2;; --pattern) pats+=(\"$2\"); shift 2;; *) shift;; esac; done\n\
             for p in \"${{pats[@]}}\"; do cp {rel}/\"$p\" \"$dir/\" || exit 1; done\n",
            rel = rel.display()
        ),
    );
}

/// `docker` as the workflows use it (build, save, load, tag, login, push): it records each call
/// in `$DOCKER_LOG`, reads a login's password from stdin and prints nothing secret. A push of
/// the image named in `$DOCKER_LOG.hold` waits while that file exists, so a test can hold a run
/// in flight.
pub fn docker_stand_in(dir: &Path) {
    write_script(
        dir,
        "docker",
        "#!/bin/bash\necho \"docker $*\" >> \"$DOCKER_LOG\"\n\
         case $1 in\n\
           save) printf 'an image' ;;\n\
           load) cat >/dev/null; echo 'Loaded image: preview:pr' ;;\n\
           login) cat >/dev/null; echo 'Login Succeeded' ;;\n\
           push) while [ \"$(cat \"$DOCKER_LOG.hold\" 2>/dev/null)\" = \"$2\" ]; do sleep 0.1; done ;;\n\
         esac\n",
    );
}

fn write_script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("writing a stand-in");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// An event that starts a workflow run.
#[derive(Clone, Debug)]
pub struct Event {
    /// `pull_request`, `pull_request_target`, `workflow_run`, `schedule`, ...
    pub name: String,
    pub payload: Value,
}

/// How a job ended.
#[derive(Clone, Debug)]
pub struct Job {
    /// success, failure, cancelled or skipped.
    pub status: String,
    pub outputs: Map<String, Value>,
    /// Each step's name (or id, or uses) and outcome.
    pub steps: Vec<(String, String)>,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Run {
    pub id: u64,
    pub jobs: BTreeMap<String, Job>,
}

impl Run {
    /// success, failure or cancelled, as `workflow_run.conclusion` says it.
    pub fn conclusion(&self) -> &'static str {
        let s: Vec<&str> = self.jobs.values().map(|j| j.status.as_str()).collect();
        if s.contains(&"failure") {
            "failure"
        } else if s.contains(&"cancelled") {
            "cancelled"
        } else {
            "success"
        }
    }

    pub fn job(&self, id: &str) -> &Job {
        self.jobs
            .get(id)
            .unwrap_or_else(|| panic!("run {} has no job {id}: {:?}", self.id, self.jobs))
    }

    /// The outcome of step `name` of job `job`.
    pub fn step(&self, job: &str, name: &str) -> Option<&str> {
        self.job(job)
            .steps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o.as_str())
    }
}

/// A job's hold on its concurrency group, and the handle to cancel it.
#[derive(Default)]
struct Control {
    cancelled: AtomicBool,
    /// The process group of the step running now.
    pgid: Mutex<Option<i32>>,
}

impl Control {
    fn cancel(self: &Arc<Self>) {
        self.cancelled.store(true, Ordering::SeqCst);
        let pgid = *self.pgid.lock().unwrap();
        if let Some(pgid) = pgid {
            // SAFETY: kill(2) on a process group this runner started.
            unsafe { libc::kill(-pgid, libc::SIGINT) };
            let me = self.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(5));
                if *me.pgid.lock().unwrap() == Some(pgid) {
                    // SAFETY: as above; the step outlived its grace period.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
            });
        }
    }
}

/// What a job carries from step to step.
struct JobState {
    env: BTreeMap<String, String>,
    path: Vec<String>,
    dir: PathBuf,
    ctx: Value,
    status: Status,
    control: Arc<Control>,
    what: String,
}

/// The runner: one machine, any number of runs, some of them at once.
pub struct Runner {
    /// The repository whose workflow files and action run.
    root: PathBuf,
    dir: PathBuf,
    /// The machine's variables (HOME, the provider's, ...), under the runner's own.
    machine: Vec<(String, String)>,
    /// Directories of stand-in commands, first on the PATH.
    tools: PathBuf,
    pub vars: Mutex<Value>,
    secrets: Value,
    repository: String,
    api_url: String,
    token: String,
    next_run: AtomicU64,
    groups: Mutex<HashMap<String, Arc<Control>>>,
    freed: Condvar,
    artifacts: Mutex<HashMap<(u64, String), PathBuf>>,
    /// Run id -> "job / step" running now.
    current: Mutex<HashMap<u64, String>>,
    /// Everything every step printed, for the leak checks.
    log: Mutex<String>,
    /// The environments whose jobs azure/login gives a token.
    federated: Mutex<Vec<String>>,
    /// Environments with required reviewers -> the pending decision (approve or reject).
    gates: Mutex<HashMap<String, Option<bool>>>,
    reviewed: Condvar,
}

impl Runner {
    /// A runner in `dir` for repository `repository` behind the API at `api_url` with `token`
    /// as `github.token`. `tools` holds the stand-in commands; `machine` the machine's variables.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        root: &Path,
        dir: &Path,
        tools: &Path,
        machine: Vec<(String, String)>,
        repository: &str,
        api_url: &str,
        token: &str,
        secrets: Value,
    ) -> Runner {
        Runner {
            root: root.to_path_buf(),
            dir: dir.to_path_buf(),
            machine,
            tools: tools.to_path_buf(),
            vars: Mutex::new(json!({})),
            secrets,
            repository: repository.into(),
            api_url: api_url.into(),
            token: token.into(),
            next_run: AtomicU64::new(7000),
            groups: Mutex::new(HashMap::new()),
            freed: Condvar::new(),
            artifacts: Mutex::new(HashMap::new()),
            current: Mutex::new(HashMap::new()),
            log: Mutex::new(String::new()),
            federated: Mutex::new(vec!["preview".into()]),
            gates: Mutex::new(HashMap::new()),
            reviewed: Condvar::new(),
        }
    }

    /// azure/login gives a token to jobs in environment `env` too.
    pub fn federate(&self, env: &str) {
        self.federated.lock().unwrap().push(env.into());
    }

    /// Jobs in environment `env` wait for [`Runner::review`] before their first step.
    pub fn require_reviewers(&self, env: &str) {
        self.gates.lock().unwrap().insert(env.into(), None);
    }

    /// A reviewer approves (or rejects) the job waiting on environment `env`.
    pub fn review(&self, env: &str, approve: bool) {
        let mut gates = self.gates.lock().unwrap();
        assert!(gates.contains_key(env), "{env} has no required reviewers");
        gates.insert(env.into(), Some(approve));
        self.reviewed.notify_all();
    }

    /// Holds the job `what` of run `run` in gated environment `env` until a review; whether
    /// it was approved. Environments without reviewers pass at once.
    fn gate(&self, run: u64, what: &str, env: Option<&str>) -> bool {
        let Some(env) = env else { return true };
        let mut gates = self.gates.lock().unwrap();
        if !gates.contains_key(env) {
            return true;
        }
        self.current
            .lock()
            .unwrap()
            .insert(run, format!("{what} / waiting for review"));
        let until = Instant::now() + Duration::from_secs(600);
        loop {
            if let Some(decision) = gates.get(env).copied().flatten() {
                gates.insert(env.into(), None);
                return decision;
            }
            assert!(Instant::now() < until, "no review of {env} in 10 minutes");
            gates = self
                .reviewed
                .wait_timeout(gates, Duration::from_secs(1))
                .unwrap()
                .0;
        }
    }

    /// A new run id, for [`Runner::run_as`] from another thread.
    pub fn new_run_id(&self) -> u64 {
        self.next_run.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Everything the runs printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until run `id` is in a step whose "job / step" contains `what`.
    pub fn wait_for_step(&self, id: u64, what: &str, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self
                .current
                .lock()
                .unwrap()
                .get(&id)
                .is_some_and(|s| s.contains(what))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Runs workflow file `workflow` (relative to the repository) for `event`, with `checkout`
    /// as the tree `actions/checkout` gives.
    pub fn run(&self, workflow: &str, event: &Event, checkout: &Path) -> Run {
        self.run_as(self.new_run_id(), workflow, event, checkout)
    }

    pub fn run_as(&self, id: u64, workflow: &str, event: &Event, checkout: &Path) -> Run {
        let wf = yaml(&self.root.join(workflow));
        if !triggered(&wf, event) {
            return Run {
                id,
                jobs: BTreeMap::new(),
            };
        }
        let run_dir = self.dir.join(format!("run-{id}"));
        std::fs::create_dir_all(&run_dir).expect("run dir");
        let event_path = run_dir.join("event.json");
        std::fs::write(&event_path, event.payload.to_string()).expect("event file");
        let github = self.github_context(id, event, &event_path);
        let jobs = wf["jobs"].as_object().expect("jobs").clone();
        let mut done: BTreeMap<String, Job> = BTreeMap::new();
        while done.len() < jobs.len() {
            let (job_id, job) = jobs
                .iter()
                .find(|(k, j)| {
                    !done.contains_key(*k) && needs(j).iter().all(|n| done.contains_key(n))
                })
                .expect("a job whose needs are done");
            let need_ctx: Map<String, Value> = needs(job)
                .iter()
                .map(|n| {
                    (
                        n.clone(),
                        json!({"result": done[n].status, "outputs": done[n].outputs}),
                    )
                })
                .collect();
            let ok = needs(job).iter().all(|n| done[n].status == "success");
            let ctx = json!({
                "github": github,
                "vars": *self.vars.lock().unwrap(),
                "secrets": self.secrets,
                "needs": need_ctx,
                "env": {},
                "runner": {"os": "Linux", "arch": runner_arch(), "temp": ""},
            });
            let status = if ok { Status::Success } else { Status::Failure };
            let result = if !expr::condition(job.get("if"), &ctx, status) {
                Job {
                    status: "skipped".into(),
                    outputs: Map::new(),
                    steps: Vec::new(),
                }
            } else if self.gate(id, job_id, environment(job)) {
                self.job(id, job_id, job, ctx, checkout, &event_path)
            } else {
                self.print(job_id, "the deployment was rejected");
                Job {
                    status: "failure".into(),
                    outputs: Map::new(),
                    steps: Vec::new(),
                }
            };
            done.insert(job_id.clone(), result);
        }
        self.current.lock().unwrap().remove(&id);
        Run { id, jobs: done }
    }

    fn github_context(&self, id: u64, event: &Event, event_path: &Path) -> Value {
        // A push names its ref and commit; every other event here runs on the default branch.
        let push = |k: &str, default: String| match (event.name.as_str(), event.payload.get(k)) {
            ("push", Some(Value::String(v))) => v.clone(),
            _ => default,
        };
        let git_ref = push("ref", "refs/heads/main".into());
        let ref_name = git_ref
            .trim_start_matches("refs/heads/")
            .trim_start_matches("refs/tags/")
            .to_string();
        let head_ref = event
            .payload
            .pointer("/pull_request/head/ref")
            .cloned()
            .unwrap_or(json!(""));
        json!({
            "event": event.payload,
            "event_name": event.name,
            "event_path": event_path,
            "repository": self.repository,
            "repository_owner": self.repository.split('/').next(),
            "token": self.token,
            "actor": "octocat",
            "api_url": self.api_url,
            "server_url": "https://github.example",
            "run_id": id.to_string(),
            "run_attempt": "1",
            "sha": push("after", if event.name.starts_with("pull_request") && event.name != "pull_request_target" { "e".repeat(40) } else { "d".repeat(40) }),
            "ref": git_ref,
            "ref_name": ref_name,
            "head_ref": head_ref,
        })
    }

    fn acquire(&self, group: &str, cancel: bool) -> Arc<Control> {
        let mut groups = self.groups.lock().unwrap();
        if cancel && let Some(holder) = groups.get(group) {
            holder.cancel();
        }
        while groups.contains_key(group) {
            groups = self.freed.wait(groups).unwrap();
        }
        let c = Arc::new(Control::default());
        groups.insert(group.to_string(), c.clone());
        c
    }

    fn release(&self, group: &str) {
        self.groups.lock().unwrap().remove(group);
        self.freed.notify_all();
    }

    fn job(
        &self,
        run: u64,
        job_id: &str,
        job: &Value,
        mut ctx: Value,
        checkout: &Path,
        event_path: &Path,
    ) -> Job {
        let group = job
            .pointer("/concurrency/group")
            .map(|g| expr::interpolate(g.as_str().expect("a group"), &ctx, Status::Success));
        let cancel = match job.pointer("/concurrency/cancel-in-progress") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => {
                expr::truthy(&json!(expr::interpolate(s, &ctx, Status::Success)))
            }
            _ => false,
        };
        let control = match &group {
            Some(g) => self.acquire(g, cancel),
            None => Arc::new(Control::default()),
        };
        let dir = self.dir.join(format!("run-{run}")).join(job_id);
        for d in ["workspace", "temp"] {
            std::fs::create_dir_all(dir.join(d)).expect("job dirs");
        }
        ctx["runner"]["temp"] = json!(dir.join("temp"));
        let github = &ctx["github"];
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in [
            ("CI", "true".to_string()),
            ("GITHUB_ACTIONS", "true".into()),
            ("GITHUB_REPOSITORY", self.repository.clone()),
            ("GITHUB_API_URL", self.api_url.clone()),
            ("GITHUB_SERVER_URL", expr::to_string(&github["server_url"])),
            ("GITHUB_RUN_ID", run.to_string()),
            ("GITHUB_RUN_ATTEMPT", "1".into()),
            ("GITHUB_EVENT_NAME", expr::to_string(&github["event_name"])),
            ("GITHUB_EVENT_PATH", event_path.display().to_string()),
            ("GITHUB_SHA", expr::to_string(&github["sha"])),
            ("GITHUB_REF", expr::to_string(&github["ref"])),
            ("GITHUB_HEAD_REF", expr::to_string(&github["head_ref"])),
            ("GITHUB_ACTOR", "octocat".into()),
            ("GITHUB_JOB", job_id.into()),
            (
                "GITHUB_WORKSPACE",
                dir.join("workspace").display().to_string(),
            ),
            ("RUNNER_TEMP", dir.join("temp").display().to_string()),
            ("RUNNER_OS", "Linux".into()),
            ("RUNNER_ARCH", runner_arch().into()),
        ] {
            env.insert(k.into(), v);
        }
        if let Some(e) = job.get("env").and_then(Value::as_object) {
            for (k, v) in e {
                env.insert(
                    k.clone(),
                    expr::interpolate(&expr::to_string(v), &ctx, Status::Success),
                );
            }
        }
        ctx["env"] = json!(env);
        ctx["steps"] = json!({});
        ctx["job"] = json!({"status": "success"});
        let mut st = JobState {
            env,
            path: Vec::new(),
            dir,
            ctx,
            status: Status::Success,
            control,
            what: job_id.to_string(),
        };
        let mut steps = Vec::new();
        for (i, step) in job["steps"].as_array().expect("steps").iter().enumerate() {
            if st.control.cancelled.load(Ordering::SeqCst) {
                st.status = Status::Cancelled;
            }
            st.ctx["job"]["status"] = json!(status_str(st.status));
            let name = step_name(step, i);
            if !expr::condition(step.get("if"), &st.ctx, st.status) {
                steps.push((name, "skipped".to_string()));
                self.record_step(step, &mut st, "skipped", Map::new());
                continue;
            }
            self.current
                .lock()
                .unwrap()
                .insert(run, format!("{job_id} / {name}"));
            let (ok, outputs) = self.step(step, &mut st, checkout, job, run);
            let mut outcome = if ok { "success" } else { "failure" };
            if st.control.cancelled.load(Ordering::SeqCst) && !ok {
                outcome = "cancelled";
                st.status = Status::Cancelled;
            } else if !ok {
                st.status = Status::Failure;
            }
            steps.push((name, outcome.to_string()));
            self.record_step(step, &mut st, outcome, outputs);
        }
        if st.control.cancelled.load(Ordering::SeqCst) {
            st.status = Status::Cancelled;
        }
        let outputs = eval_map(job.get("outputs"), "", &st.ctx, Status::Success);
        if let Some(g) = &group {
            self.release(g);
        }
        Job {
            status: status_str(st.status).into(),
            outputs,
            steps,
        }
    }

    fn record_step(
        &self,
        step: &Value,
        st: &mut JobState,
        outcome: &str,
        outputs: Map<String, Value>,
    ) {
        if let Some(id) = step.get("id").and_then(Value::as_str) {
            st.ctx["steps"][id] =
                json!({"outcome": outcome, "conclusion": outcome, "outputs": outputs});
        }
    }

    /// Runs one step; whether it succeeded, and its outputs.
    fn step(
        &self,
        step: &Value,
        st: &mut JobState,
        checkout: &Path,
        job: &Value,
        run: u64,
    ) -> (bool, Map<String, Value>) {
        let mut env = st.env.clone();
        if let Some(e) = step.get("env").and_then(Value::as_object) {
            for (k, v) in e {
                env.insert(
                    k.clone(),
                    expr::interpolate(&expr::to_string(v), &st.ctx, st.status),
                );
            }
        }
        let with = eval_map(step.get("with"), "", &st.ctx, st.status);
        if let Some(script) = step.get("run").and_then(Value::as_str) {
            let cwd = st.dir.join("workspace");
            let (ok, outputs) = self.script(script, &env, st, &cwd);
            return (ok, outputs);
        }
        let uses = step["uses"].as_str().expect("run or uses");
        let (action, reference) = uses.split_once('@').expect("uses: owner/name@ref");
        let w = |k: &str| with.get(k).map(expr::to_string).unwrap_or_default();
        match action {
            ACTION => self.composite(reference, &with, env, st),
            "actions/checkout" => {
                let ws = st.dir.join("workspace");
                let _ = std::fs::remove_dir_all(&ws);
                copy_tree(checkout, &ws);
                (true, Map::new())
            }
            "actions/upload-artifact" => {
                let to = self.dir.join(format!("artifact-{run}-{}", w("name")));
                copy_tree(Path::new(&w("path")), &to);
                self.artifacts.lock().unwrap().insert((run, w("name")), to);
                (true, Map::new())
            }
            "actions/download-artifact" => {
                let from_run: u64 = w("run-id").parse().expect("run-id");
                let found = self
                    .artifacts
                    .lock()
                    .unwrap()
                    .get(&(from_run, w("name")))
                    .cloned();
                match found {
                    Some(from) => {
                        copy_tree(&from, Path::new(&w("path")));
                        (true, Map::new())
                    }
                    None => {
                        self.print(
                            &st.what,
                            &format!("no artifact {} in run {from_run}", w("name")),
                        );
                        (false, Map::new())
                    }
                }
            }
            "azure/login" => {
                // The federated credentials' subjects are environments: any other job gets no
                // Azure token.
                let env_ok = environment(job)
                    .is_some_and(|e| self.federated.lock().unwrap().iter().any(|f| f == e));
                let oidc =
                    job.pointer("/permissions/id-token").and_then(Value::as_str) == Some("write");
                let ids = ["client-id", "tenant-id", "subscription-id"]
                    .iter()
                    .all(|k| with.contains_key(*k));
                if !(env_ok && oidc && ids) {
                    self.print(&st.what, "azure/login: no token for this job's subject");
                }
                (env_ok && oidc && ids, Map::new())
            }
            other => panic!("no stand-in for uses: {other}"),
        }
    }

    /// The composite action at `reference`, unpacked where the runner would put it.
    fn composite(
        &self,
        reference: &str,
        with: &Map<String, Value>,
        env: BTreeMap<String, String>,
        st: &mut JobState,
    ) -> (bool, Map<String, Value>) {
        let path = self.dir.join("_actions").join(ACTION).join(reference);
        if !path.join("action.yml").exists() {
            std::fs::create_dir_all(&path).expect("action dir");
            std::fs::copy(self.root.join("action.yml"), path.join("action.yml"))
                .expect("action.yml");
            copy_tree(
                &self.root.join("scripts/github"),
                &path.join("scripts/github"),
            );
        }
        let action = yaml(&path.join("action.yml"));
        let mut inputs = Map::new();
        for (name, def) in action["inputs"].as_object().expect("inputs") {
            let v = match with.get(name) {
                Some(v) => expr::to_string(v),
                None => {
                    expr::interpolate(&expr::to_string(&def["default"]), &st.ctx, Status::Success)
                }
            };
            inputs.insert(name.clone(), json!(v));
        }
        for k in with.keys() {
            assert!(inputs.contains_key(k), "the action has no input {k}");
        }
        let mut ctx = json!({
            "inputs": inputs,
            "github": st.ctx["github"],
            "runner": st.ctx["runner"],
            "env": env,
            "steps": {},
        });
        let mut ok = true;
        for (i, step) in action["runs"]["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .enumerate()
        {
            let status = if ok { Status::Success } else { Status::Failure };
            if !expr::condition(step.get("if"), &ctx, status) {
                if let Some(id) = step.get("id").and_then(Value::as_str) {
                    ctx["steps"][id] = json!({"outcome": "skipped", "outputs": {}});
                }
                continue;
            }
            assert_eq!(
                step["shell"], "bash",
                "composite step {i} needs shell: bash"
            );
            let mut step_env = env.clone();
            if let Some(e) = step.get("env").and_then(Value::as_object) {
                for (k, v) in e {
                    step_env.insert(
                        k.clone(),
                        expr::interpolate(&expr::to_string(v), &ctx, status),
                    );
                }
            }
            // As inside a composite action's steps on a real runner (actions/runner#2473):
            // the action's own ref and repository can be empty.
            step_env.insert("GITHUB_ACTION_PATH".into(), path.display().to_string());
            step_env.insert("GITHUB_ACTION_REF".into(), String::new());
            step_env.insert("GITHUB_ACTION_REPOSITORY".into(), String::new());
            let script = step["run"].as_str().expect("run");
            let cwd = st.dir.join("workspace");
            let (step_ok, outputs) = self.script(script, &step_env, st, &cwd);
            if let Some(id) = step.get("id").and_then(Value::as_str) {
                let outcome = if step_ok { "success" } else { "failure" };
                ctx["steps"][id] = json!({"outcome": outcome, "outputs": outputs});
            }
            ok &= step_ok;
            if !ok {
                break;
            }
        }
        let outputs = eval_map(action.get("outputs"), "value", &ctx, Status::Success);
        (ok, outputs)
    }

    /// Runs `script` with bash as the runner does; GITHUB_ENV and GITHUB_PATH carry over to the
    /// job's later steps.
    fn script(
        &self,
        script: &str,
        env: &BTreeMap<String, String>,
        st: &mut JobState,
        cwd: &Path,
    ) -> (bool, Map<String, Value>) {
        let n = self.next_run.fetch_add(1, Ordering::SeqCst);
        let files = st.dir.join(format!("step-{n}"));
        std::fs::create_dir_all(&files).expect("step dir");
        let file = files.join("script.sh");
        std::fs::write(&file, script).expect("script");
        for f in ["output", "env", "path", "summary"] {
            std::fs::write(files.join(f), "").expect("command files");
        }
        let machine_path = self
            .machine
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "/usr/bin:/bin".into());
        let mut path: Vec<String> = st.path.iter().rev().cloned().collect();
        path.push(self.tools.display().to_string());
        path.push(machine_path);
        let mut c = Command::new("bash");
        c.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&file)
            .current_dir(cwd)
            .env_clear()
            .envs(self.machine.iter().map(|(k, v)| (k, v)))
            .envs(env)
            .env("PATH", path.join(":"))
            .env("GITHUB_OUTPUT", files.join("output"))
            .env("GITHUB_ENV", files.join("env"))
            .env("GITHUB_PATH", files.join("path"))
            .env("GITHUB_STEP_SUMMARY", files.join("summary"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = c.spawn().expect("bash starts");
        *st.control.pgid.lock().unwrap() = Some(child.id() as i32);
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut printed = String::new();
        let _ = out.read_to_string(&mut printed);
        let status = child.wait().expect("wait");
        *st.control.pgid.lock().unwrap() = None;
        printed.push_str(&t.join().unwrap_or_default());
        self.print(&st.what, &printed);
        let outputs =
            parse_commands(&std::fs::read_to_string(files.join("output")).unwrap_or_default());
        for (k, v) in
            parse_commands(&std::fs::read_to_string(files.join("env")).unwrap_or_default())
        {
            st.env.insert(k, expr::to_string(&v));
        }
        for line in std::fs::read_to_string(files.join("path"))
            .unwrap_or_default()
            .lines()
        {
            if !line.trim().is_empty() {
                st.path.push(line.trim().to_string());
            }
        }
        st.ctx["env"] = json!(st.env);
        (status.success(), outputs)
    }

    fn print(&self, what: &str, text: &str) {
        let mut log = self.log.lock().unwrap();
        for line in text.lines() {
            eprintln!("[{what}] {line}");
            log.push_str(line);
            log.push('\n');
        }
    }
}

/// Each value of the map `v` (or its field `field`, unless empty) with its expressions
/// evaluated: a step's `with`, a job's or an action's `outputs`.
fn eval_map(v: Option<&Value>, field: &str, ctx: &Value, status: Status) -> Map<String, Value> {
    let Some(o) = v.and_then(Value::as_object) else {
        return Map::new();
    };
    o.iter()
        .map(|(k, v)| {
            let v = if field.is_empty() { v } else { &v[field] };
            (
                k.clone(),
                json!(expr::interpolate(&expr::to_string(v), ctx, status)),
            )
        })
        .collect()
}

/// `key=value` lines and `key<<DELIM` blocks, as GITHUB_OUTPUT and GITHUB_ENV hold them.
fn parse_commands(text: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((k, delim)) = line.split_once("<<") {
            let mut v = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                v.push(l);
            }
            out.insert(k.to_string(), json!(v.join("\n")));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.to_string(), json!(v));
        }
    }
    out
}

/// The job's `environment:`, as a name or `{name, url}`.
fn environment(job: &Value) -> Option<&str> {
    let e = job.get("environment")?;
    e.as_str().or_else(|| e.get("name").and_then(Value::as_str))
}

/// Whether `event` starts workflow `wf`: its `on:` names the event and, for a push, a branch or
/// tag filter matches the pushed ref.
fn triggered(wf: &Value, event: &Event) -> bool {
    let on = &wf["on"];
    let spec = match on {
        Value::String(s) => return *s == event.name,
        Value::Array(a) => return a.iter().any(|e| *e == json!(event.name)),
        Value::Object(o) => match o.get(&event.name) {
            Some(spec) => spec,
            None => return false,
        },
        _ => return false,
    };
    if event.name != "push" {
        return true;
    }
    let git_ref = event.payload["ref"].as_str().unwrap_or_default();
    let filter = |kind: &str, prefix: &str| -> Option<bool> {
        let names = spec.get(kind)?.as_array()?;
        let name = git_ref.strip_prefix(prefix)?;
        Some(
            names
                .iter()
                .filter_map(Value::as_str)
                .any(|p| glob(p, name)),
        )
    };
    let (branches, tags) = (spec.get("branches").is_some(), spec.get("tags").is_some());
    if !branches && !tags {
        return true;
    }
    filter("branches", "refs/heads/").unwrap_or(false)
        || filter("tags", "refs/tags/").unwrap_or(false)
}

/// GitHub's filter pattern `pattern` against `name`: `*` matches any characters but `/`.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .take_while(|&i| !tail[..i].contains('/'))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

fn needs(job: &Value) -> Vec<String> {
    match job.get("needs") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(expr::to_string).collect(),
        _ => Vec::new(),
    }
}

fn step_name(step: &Value, i: usize) -> String {
    for k in ["name", "id", "uses"] {
        if let Some(s) = step.get(k).and_then(Value::as_str) {
            return s.to_string();
        }
    }
    format!("step {i}")
}

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Success => "success",
        Status::Failure => "failure",
        Status::Cancelled => "cancelled",
    }
}

fn runner_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "ARM64",
        _ => "X64",
    }
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copies directory `from` to `to`, recursively.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}
