//! Bounds on waiting: `--timeout` is the longest a command waits without progress (a step
//! completed, an object applied, a wait ended; see [`progress`]), and `--deadline` the longest
//! the whole command runs.
//!
//! The engine runs every phase of `up` and `down` (the checks before the first step, each step,
//! the rollback) inside [`Bounds::run`], which drops the phase when its bound passes. Retry loops
//! below it (ARM, GitHub, the Kubernetes waits) therefore need no deadline of their own to stop in
//! time; they call [`note`] with what they are waiting for, so the error says what never came,
//! and [`progress`] when something completed. Waits that report their own object and last state
//! get `--timeout` from their own start, just after the progress that opened the window, and so
//! end before the bound does ([`GRACE`]).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How long a phase may overrun its window so that a wait inside it, bounded by
/// [`Bounds::remaining`], reports its own timeout (naming its object) first.
pub const GRACE: Duration = Duration::from_secs(2);

/// The longest a note is kept: retry reasons may quote a server's answer.
const NOTE_MAX: usize = 300;

/// What a running phase shares with the code below it.
struct Phase {
    /// The last [`note`].
    last: Mutex<Option<String>>,
    /// The window of the bounds it runs in, moved by [`progress`].
    window: Arc<Mutex<Instant>>,
}

tokio::task_local! {
    static PHASE: Arc<Phase>;
}

/// Records that something completed (objects applied, an add-on ready), which opens a new
/// `--timeout` window: the bound is on waiting without progress, not on the length of a step
/// that keeps making progress. A no-op outside [`Bounds::run`].
pub fn progress() {
    let _ = PHASE.try_with(|p| *lock(&p.window) = Instant::now());
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records what the running phase is waiting for (e.g. `GET the resource group: connection
/// refused`). A no-op outside [`Bounds::run`].
pub fn note(what: impl FnOnce() -> String) {
    let _ = PHASE.try_with(|p| *lock(&p.last) = Some(crate::config::cut(&what(), NOTE_MAX)));
}

/// A phase that did not finish within its bound.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {after} ({flag} {limit}) {what}{}", last.as_ref().map(|l| format!("; last waiting for: {l}")).unwrap_or_default())]
pub struct TimedOut {
    /// The phase, e.g. `in step cluster`.
    pub what: String,
    /// The bound that ran out.
    pub flag: Flag,
    /// That flag's value.
    pub limit: String,
    /// How long since the bound that ran out started: the window for `--timeout`, the command
    /// for `--deadline`.
    pub after: String,
    /// The last thing noted inside the phase.
    pub last: Option<String>,
}

/// The two bounds of a command, each named by the flag that sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `--timeout`: the window without progress.
    Timeout,
    /// `--deadline`: the whole command.
    Deadline,
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flag::Timeout => "--timeout",
            Flag::Deadline => "--deadline",
        })
    }
}

/// The bounds of one command; see the module comment.
#[derive(Debug)]
pub struct Bounds {
    timeout: Duration,
    overall: Duration,
    deadline: Instant,
    /// When the current window opened: at the start, then whenever something completed.
    window: Arc<Mutex<Instant>>,
}

impl Bounds {
    /// Bounds that start now: `timeout` without progress, `overall` in all.
    pub fn new(timeout: Duration, overall: Duration) -> Self {
        let now = Instant::now();
        Bounds {
            timeout,
            overall,
            deadline: now + overall,
            window: Arc::new(Mutex::new(now)),
        }
    }

    /// The bounds of a command without flags for them (`gc`, per environment): `--timeout` 15m,
    /// `--deadline` 2h, as for `up` and `down`.
    pub fn defaults() -> Self {
        Bounds::new(Duration::from_secs(15 * 60), Duration::from_secs(2 * 3600))
    }

    /// Opens a new window: a step completed.
    pub fn progressed(&self) {
        *lock(&self.window) = Instant::now();
    }

    /// Where the current window ends, the flag that puts it there, and when that bound began.
    fn end(&self) -> (Instant, Flag, Instant) {
        let opened = *lock(&self.window);
        if self.deadline < opened + self.timeout {
            (self.deadline, Flag::Deadline, self.deadline - self.overall)
        } else {
            (opened + self.timeout, Flag::Timeout, opened)
        }
    }

    /// The time left in the current window, for a wait that reports its own timeout.
    pub fn remaining(&self) -> Duration {
        self.end().0.saturating_duration_since(Instant::now())
    }

    /// When `--deadline` runs out.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Runs `fut` until a window ends without [`progress`] (plus [`GRACE`]), or the deadline.
    ///
    /// # Errors
    /// [`TimedOut`] naming `what`, the flag that ran out, and the last [`note`] made inside.
    pub async fn run<F: Future>(&self, what: &str, fut: F) -> Result<F::Output, TimedOut> {
        let phase = Arc::new(Phase {
            last: Mutex::new(None),
            window: self.window.clone(),
        });
        let mut fut = std::pin::pin!(PHASE.scope(phase.clone(), fut));
        loop {
            let (end, flag, began) = self.end();
            if let Ok(v) = tokio::time::timeout_at(end + GRACE, &mut fut).await {
                return Ok(v);
            }
            if self.end().0 > end {
                continue;
            }
            return Err(TimedOut {
                what: what.to_string(),
                flag,
                limit: crate::config::duration::human(match flag {
                    Flag::Timeout => self.timeout,
                    Flag::Deadline => self.overall,
                }),
                after: crate::config::duration::human(Duration::from_secs(
                    began.elapsed().as_secs(),
                )),
                last: lock(&phase.last).take(),
            });
        }
    }

    /// Bounds for cleaning up after a failure: a fresh `--timeout`, even when the deadline has
    /// passed, so a rollback is tried but never hangs.
    pub fn for_cleanup(&self) -> Bounds {
        Bounds::new(self.timeout, self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_phase_that_never_ends_times_out_naming_the_last_note() {
        let b = Bounds::new(Duration::from_secs(1), Duration::from_secs(3600));
        let e = b
            .run("in step cluster", async {
                note(|| "GET the resource group: connection refused".into());
                std::future::pending::<()>().await
            })
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "timed out after 3s (--timeout 1s) in step cluster; last waiting for: GET the resource group: connection refused"
        );
    }

    #[tokio::test]
    async fn progress_inside_a_phase_moves_its_window() {
        let b = Bounds::new(Duration::from_secs(1), Duration::from_secs(3600));
        let steady = async {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(900)).await;
                progress();
            }
            "done"
        };
        // 3.6 s in all, more than the 3 s a phase without progress gets.
        assert_eq!(b.run("in step addons", steady).await.unwrap(), "done");
    }

    #[tokio::test]
    async fn the_window_counts_from_the_last_progress_and_the_deadline_caps_it() {
        let b = Bounds::new(Duration::from_secs(2), Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(b.remaining() <= Duration::from_millis(500));
        b.progressed();
        // The window would end at 3.5 s, the deadline at 3 s.
        let r = b.remaining();
        assert!(
            r > Duration::from_millis(1000) && r <= Duration::from_millis(1500),
            "{r:?}"
        );
        let e = b
            .run("in step app", std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(
            (e.flag, e.limit.as_str(), e.last),
            (Flag::Deadline, "3s", None)
        );
        // Past the deadline, what is ready still completes.
        assert_eq!(b.run("in step report", async { 7 }).await.unwrap(), 7);
    }
}
