//! Control-plane processes: started detached in their own session so they outlive `up`, known
//! afterwards by PID plus start time (so a reused PID is never mistaken for ours), and stopped
//! with SIGTERM, then SIGKILL after a grace period.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::providers::ProviderError;

/// One recorded process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub started: u64,
}

/// What to start.
#[derive(Debug)]
pub struct Spawn<'a> {
    pub component: &'a str,
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub env: Vec<(&'static str, OsString)>,
}

/// The start time of `pid`, or `None` when it is gone or a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | None) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

impl Proc {
    /// Whether the recorded process still runs (same PID and start time).
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.started)
    }
}

/// Starts a component in a new session, with its output appended to `<dir>/logs/<component>.log`,
/// its working directory `dir`, and an environment of only `PATH`, `HOME=<dir>/home`,
/// `TMPDIR=<dir>/tmp` and `extra`, so nothing of the user's (`~/.kube`) leaks in or out.
///
/// # Errors
/// The log cannot be opened or the program cannot be started.
pub fn spawn(dir: &Path, s: Spawn<'_>) -> Result<Proc, ProviderError> {
    let logs = dir.join("logs");
    for d in [logs.clone(), dir.join("home"), dir.join("tmp")] {
        std::fs::create_dir_all(&d)
            .map_err(|e| ProviderError::io(format!("creating {}", d.display()), e))?;
    }
    let log_path = logs.join(format!("{}.log", s.component));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| ProviderError::io(format!("opening {}", log_path.display()), e))?;
    let err_log = log
        .try_clone()
        .map_err(|e| ProviderError::io(format!("opening {}", log_path.display()), e))?;
    let mut cmd = Command::new(s.program);
    cmd.args(&s.args)
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("HOME", dir.join("home"))
        .env("TMPDIR", dir.join("tmp"))
        .envs(s.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log);
    // SAFETY: setsid() is async-signal-safe and touches no memory of the parent; it detaches the
    // child from our session and terminal, so Ctrl-C or a closed terminal does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        ProviderError::io(
            format!("starting {} ({})", s.component, s.program.display()),
            e,
        )
    })?;
    let pid = child.id();
    let started = start_time(pid);
    // Reap the child if it exits while this process still runs, so it never lingers as a zombie.
    // When this process exits first, init adopts and reaps it.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    let started = started.ok_or_else(|| ProviderError::Command {
        command: s.component.to_string(),
        status: "an error as soon as it started".into(),
        output: format!(
            "last lines of {}:\n{}",
            log_path.display(),
            log_tail(&log_path, 20)
        ),
    })?;
    Ok(Proc { pid, started })
}

/// The last `lines` lines of a log, for errors.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(_) => "(no log)".into(),
    }
}

/// Stops processes: SIGTERM to each live one's process group, then SIGKILL to what is left
/// after `grace`. Processes already gone are fine.
///
/// # Errors
/// A process that survives SIGKILL (stuck in the kernel); it is named.
pub async fn stop(procs: &[(&str, Proc)], grace: Duration) -> Result<(), ProviderError> {
    let mut live: Vec<&(&str, Proc)> = procs.iter().filter(|(_, p)| p.alive()).collect();
    for (_, p) in &live {
        signal(p, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while !live.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        live.retain(|(_, p)| p.alive());
    }
    for (name, p) in &live {
        tracing::warn!(
            "{name} (pid {}) ignored SIGTERM for {}s; sending SIGKILL",
            p.pid,
            grace.as_secs()
        );
        signal(p, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        live.retain(|(_, p)| p.alive());
    }
    if live.is_empty() {
        return Ok(());
    }
    let names = live
        .iter()
        .map(|(n, p)| format!("{n} (pid {})", p.pid))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ProviderError::io(
        format!("stopping {names}"),
        std::io::Error::other("still running 5s after SIGKILL (stuck in the kernel?)"),
    ))
}

fn signal(p: &Proc, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(p.pid) else {
        return;
    };
    if !p.alive() {
        return;
    }
    // SAFETY: plain system calls on a PID we recorded and just checked by start time. The
    // process leads its own session (setsid), so its group ID is its PID and the group holds
    // whatever it started too.
    unsafe {
        if libc::killpg(pid, sig) == -1 {
            libc::kill(pid, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spawned_process_is_detached_alive_and_stoppable() {
        let dir = tempfile::tempdir().unwrap();
        let p = spawn(
            dir.path(),
            Spawn {
                component: "sleeper",
                program: Path::new("/bin/sh"),
                args: vec!["-c".into(), "echo started; exec sleep 30".into()],
                env: vec![],
            },
        )
        .unwrap();
        assert!(p.alive());
        // Its own session: session id == pid.
        // SAFETY: getsid only reads.
        let sid = unsafe { libc::getsid(p.pid as libc::pid_t) };
        assert_eq!(sid, p.pid as libc::pid_t);
        // Its output goes to its log.
        let log_path = dir.path().join("logs/sleeper.log");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&log_path)
            .unwrap()
            .contains("started")
        {
            assert!(
                Instant::now() < deadline,
                "no output in {}",
                log_path.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop(&[("sleeper", p.clone())], Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!p.alive());
    }

    #[test]
    fn a_reused_pid_is_not_ours() {
        let me = std::process::id();
        let started = start_time(me).unwrap();
        assert!(Proc { pid: me, started }.alive());
        assert!(
            !Proc {
                pid: me,
                started: started + 1
            }
            .alive()
        );
    }
}
