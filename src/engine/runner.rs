//! The runner: one place that runs the steps of `up` and `down`.
//!
//! Every step runs with progress (`step NAME: started`, then done, skipped or failed) and
//! timing, in the order its pipeline declares. Once the run holds the environment's lease, every
//! step also runs inside the lease guard ([`guard::guarded`]: stopped as soon as another run
//! takes the environment, lease renewed while it runs), and the lease is checked and renewed at
//! every boundary between steps. When the pipeline fails, the runner explains the failure (exit 4
//! when another run took the environment), releases the lease, and rolls back a cluster this run
//! created, unless the user asked to keep it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::guard;
use super::lease::{self, LeaseRecord, LeaseStore, Operation};
use super::{EngineError, StepReport, chain};
use crate::deadline::Bounds;
use crate::progress::{Progress, State};
use crate::providers::any::AnyProvider;
use crate::providers::lease::AnyLeaseStore;
use crate::providers::{Provider, ProviderError};

/// How a run starts.
pub(crate) struct Start<'p> {
    pub provider: &'p AnyProvider,
    pub name: &'p str,
    pub operation: Operation,
    /// The pipeline's steps in the order they run; a step may run only after the ones before it.
    pub order: &'static [&'static str],
    pub progress: Arc<dyn Progress>,
    /// Keep a cluster this run created when a later step fails.
    pub keep_on_failure: bool,
    /// `--timeout` and `--deadline`: every step, the checks before them and the rollback run
    /// within these.
    pub bounds: &'p Bounds,
}

/// Runs one pipeline's steps; see the module comment.
pub(crate) struct Runner<'p> {
    provider: &'p AnyProvider,
    bounds: &'p Bounds,
    name: String,
    me: LeaseRecord,
    order: Order,
    steps: Steps,
    /// A store read before the cluster answered (ARM), kept for [`Runner::hold`].
    early: Option<AnyLeaseStore<'p>>,
    /// The store of the lease this run holds.
    held: Option<AnyLeaseStore<'p>>,
    /// A step ended since the lease was last checked.
    check_due: bool,
    /// A step succeeded, so the environment exists (the first step ensures it).
    existed: bool,
    created: bool,
    keep_on_failure: bool,
    /// Things worth telling the user that did not fail the run.
    pub(crate) warnings: Vec<String>,
}

impl<'p> Runner<'p> {
    pub(crate) fn new(start: Start<'p>) -> Self {
        let now = Timestamp::now();
        Runner {
            provider: start.provider,
            bounds: start.bounds,
            name: start.name.to_string(),
            me: LeaseRecord::new(
                lease::run_id(now),
                start.operation,
                now,
                lease::LEASE_DURATION,
            ),
            order: Order::new(start.order),
            steps: Steps::new(start.progress),
            early: None,
            held: None,
            check_due: false,
            existed: false,
            created: false,
            keep_on_failure: start.keep_on_failure,
            warnings: Vec::new(),
        }
    }

    /// Gives way, before anything is changed, to a live `down` or a newer `up` holding an
    /// existing environment (down always wins: an `up` that starts while a `down` runs must not
    /// repair or recreate the cluster under it).
    ///
    /// # Errors
    /// [`lease::LeaseError::Held`] (exit 4) when another run wins.
    pub(crate) async fn preflight(&mut self) -> Result<(), crate::Error> {
        let preflight = guard::preflight(self.provider, &self.name, &self.me);
        let before = format!("before the first step, reading the lease of {}", self.name);
        self.early = self
            .bounds
            .run(&before, preflight)
            .await
            .map_err(EngineError::from)??;
        Ok(())
    }

    /// Takes the lease for this run, through `client` when the lease lives in the cluster. From
    /// here on every step runs guarded. Superseding an older `up` is a warning.
    ///
    /// # Errors
    /// [`lease::LeaseError::Held`] (exit 4) when another run wins; store errors.
    pub(crate) async fn hold(&mut self, client: &kube::Client) -> Result<(), crate::Error> {
        let store = match self.early.take() {
            Some(s) => s,
            None => self.provider.lease_store(&self.name, Some(client)).await?,
        };
        if let Some(previous) = lease::acquire(&store, &self.name, &self.me)
            .await
            .map_err(EngineError::from)?
        {
            let w = format!(
                "superseding an older up of {} ({}); it stops at its next step",
                self.name, previous.holder
            );
            tracing::warn!("{w}");
            self.warnings.push(w);
        }
        self.held = Some(store);
        Ok(())
    }

    /// Takes the lease from whoever holds it (down always wins), so a running `up` stops at its
    /// next step. An unreachable or missing cluster has no lease to take, which is fine: there
    /// is nothing for an `up` to continue with. Gives up after 20 s: a cluster that hangs, or an
    /// operation running on it, must not keep `down` from deleting it. Returns the run it took
    /// the lease from.
    pub(crate) async fn take_over(&mut self) -> Option<String> {
        let fut = async {
            let store = self.provider.lease_store(&self.name, None).await?;
            Ok::<_, crate::Error>(
                lease::acquire(&store, &self.name, &self.me)
                    .await
                    .map_err(EngineError::from)?,
            )
        };
        let limit = self.bounds.remaining().min(Duration::from_secs(20));
        let taken = match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(EngineError::Invalid("timed out taking the lease".into()).into()),
        };
        match taken {
            Ok(previous) => previous.map(|p| p.holder),
            Err(
                crate::Error::Provider(ProviderError::NotFound(_))
                | crate::Error::Engine(EngineError::Lease(lease::LeaseError::Gone { .. })),
            ) => None,
            Err(e) => {
                tracing::warn!(
                    "could not take the lease of {} (deleting anyway): {}",
                    self.name,
                    chain(&e)
                );
                None
            }
        }
    }

    /// Runs step `name`: guarded once the lease is held, after a lease check when a step ended
    /// since the last one.
    ///
    /// # Errors
    /// The step's error as [`EngineError::Step`]; the lease's, when another run took the
    /// environment.
    pub(crate) async fn step<T, E>(
        &mut self,
        name: &'static str,
        step: impl Future<Output = Result<T, E>>,
    ) -> Result<T, crate::Error>
    where
        E: Into<crate::Error>,
    {
        self.advance(name);
        let bounds = self.bounds;
        let out = match &self.held {
            None => self.steps.run(name, bounds, step).await,
            Some(store) => {
                if self.check_due {
                    lease::check_and_renew(store, &self.name, &self.me)
                        .await
                        .map_err(EngineError::from)?;
                }
                let guarded = guard::guarded(store, self.provider, &self.name, &self.me, step);
                self.steps.run(name, bounds, guarded).await
            }
        };
        self.check_due = true;
        self.existed |= out.is_ok();
        if out.is_ok() {
            bounds.progressed();
        }
        out
    }

    /// Records that step `name` had nothing to do, and why.
    pub(crate) fn skip(&mut self, name: &'static str, why: &str) {
        self.advance(name);
        self.steps.skip(name, why);
        self.check_due = true;
    }

    /// Records whether this run created the environment: if it did, a later failure deletes it
    /// again, unless the user keeps it.
    pub(crate) fn created(&mut self, created: bool) {
        self.created = created;
    }

    /// Ends the run with the pipeline's `result`: releases the lease unless another run took it,
    /// explains a failure, and runs `rollback` when this run created the environment (and it is
    /// neither kept nor taken over by another run).
    ///
    /// # Errors
    /// The pipeline's error, explained.
    pub(crate) async fn finish<T, R>(
        &mut self,
        result: Result<T, crate::Error>,
        rollback: impl FnOnce() -> R,
    ) -> Result<T, crate::Error>
    where
        R: Future<Output = ()>,
    {
        // Cleaning up is bounded too, by a fresh --timeout: a failure (a timeout included) is
        // cleaned up after, but an unreachable cloud never keeps the command waiting longer.
        let cleanup = self.bounds.for_cleanup();
        if let Some(store) = &self.held
            && !matches!(&result, Err(e) if is_superseded(e))
        {
            let release = cleanup.run("releasing the lease", store.release(&self.me.holder));
            match release.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("releasing the lease of {}: {}", self.name, chain(&e)),
                Err(e) => tracing::warn!("releasing the lease of {}: {e}", self.name),
            }
        }
        let e = match result {
            Ok(v) => return Ok(v),
            Err(e) => self.explain(e, &cleanup).await,
        };
        if self.created && !self.keep_on_failure && !is_superseded(&e) {
            tracing::warn!(
                "up failed after creating {}; deleting it (pass --keep-on-failure to keep it)",
                self.name
            );
            if let Err(e) = cleanup
                .run("deleting what this run created", rollback())
                .await
            {
                tracing::error!("{e}");
            }
        }
        Err(e)
    }

    /// The steps that ran, for the report.
    pub(crate) fn reports(&self) -> Vec<StepReport> {
        self.steps.done.clone()
    }

    /// A step that failed because a down deleted the environment, or another run took it over,
    /// reports that (exit 4) rather than its symptom, so the loser leaves the environment to the
    /// winner.
    async fn explain(&self, e: crate::Error, bounds: &Bounds) -> crate::Error {
        // A step that ran out of time was watching its lease all along (see `guard::guarded`);
        // asking again would only make the command overrun its bound.
        if is_superseded(&e) || matches!(e, crate::Error::Engine(EngineError::TimedOut(_))) {
            return e;
        }
        let taken = guard::taken_over(self.provider, &self.name, &self.me, self.existed);
        let taken = bounds.run("explaining the failure", taken).await;
        match taken.ok().flatten() {
            Some(why) => {
                tracing::warn!("{}", chain(&e));
                EngineError::from(why).into()
            }
            None => e,
        }
    }

    /// Moves past step `name` in the declared order; a step out of order is a bug in the
    /// pipeline, caught by the tests that run it.
    fn advance(&mut self, name: &str) {
        let in_order = self.order.advance(name);
        debug_assert!(
            in_order,
            "step {name} runs out of the declared order {:?}",
            self.order.steps
        );
    }
}

/// A pipeline's declared steps, and how far a run is through them. A step may be left out, and
/// a name may be declared twice (for a step that runs in one of two places).
pub(crate) struct Order {
    steps: &'static [&'static str],
    /// Index in `steps` after the last step that ran.
    next: usize,
}

impl Order {
    pub(crate) fn new(steps: &'static [&'static str]) -> Self {
        Order { steps, next: 0 }
    }

    /// Moves past the next declaration of `name`; false when none is left.
    pub(crate) fn advance(&mut self, name: &str) -> bool {
        match self.steps[self.next..].iter().position(|s| *s == name) {
            Some(i) => {
                self.next += i + 1;
                true
            }
            None => false,
        }
    }
}

/// A run that lost its lease to a newer `up` or a `down` must not delete what the winner uses.
fn is_superseded(e: &crate::Error) -> bool {
    match e {
        crate::Error::Engine(EngineError::Lease(lease::LeaseError::Store(_))) => false,
        crate::Error::Engine(EngineError::Lease(_)) => true,
        crate::Error::Engine(EngineError::Step { source, .. }) => is_superseded(source),
        _ => false,
    }
}

/// Runs named steps with progress and timing.
struct Steps {
    progress: Arc<dyn Progress>,
    done: Vec<StepReport>,
}

impl Steps {
    fn new(progress: Arc<dyn Progress>) -> Self {
        Steps {
            progress,
            done: Vec::new(),
        }
    }

    /// Runs `fut` as step `name` within `bounds`; its error is wrapped as [`EngineError::Step`],
    /// and running out of time is [`EngineError::TimedOut`].
    async fn run<T, E>(
        &mut self,
        name: &'static str,
        bounds: &Bounds,
        fut: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, crate::Error>
    where
        E: Into<crate::Error>,
    {
        self.progress.update("step", name, State::Started);
        let t0 = Instant::now();
        // A timeout is not wrapped: its message names the step already.
        let (out, wrap) = match bounds.run(&format!("in step {name}"), fut).await {
            Ok(r) => (r.map_err(Into::into), true),
            Err(t) => (Err(EngineError::from(t).into()), false),
        };
        match out {
            Ok(v) => {
                self.progress.update("step", name, State::Done);
                self.done.push(StepReport {
                    step: name,
                    outcome: "done",
                    detail: None,
                    seconds: secs(t0),
                });
                Ok(v)
            }
            Err(e) => {
                self.progress
                    .update("step", name, State::Failed(first_line(&e)));
                self.done.push(StepReport {
                    step: name,
                    outcome: "failed",
                    detail: Some(chain(&e)),
                    seconds: secs(t0),
                });
                if !wrap {
                    return Err(e);
                }
                Err(EngineError::Step {
                    step: name,
                    source: Box::new(e),
                }
                .into())
            }
        }
    }

    /// Records a step that had nothing to do.
    fn skip(&mut self, name: &'static str, why: &str) {
        self.progress
            .update("step", name, State::Skipped(why.to_string()));
        self.done.push(StepReport {
            step: name,
            outcome: "skipped",
            detail: Some(why.to_string()),
            seconds: 0.0,
        });
    }
}

fn secs(t0: Instant) -> f64 {
    (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0
}

fn first_line(e: &dyn std::error::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}
