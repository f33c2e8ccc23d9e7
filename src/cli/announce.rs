//! The Slack message of the commands that change one environment from here (`deploy`,
//! `promote`, `abort`, `extend`): started before the command's work, sent after it with the
//! result or the error chain. A failed post is a warning; it never changes the exit status.

use std::time::Instant;

use ephemera::config::Environment;
use ephemera::names::EnvName;
use ephemera::slack::{Event, Message, Outcome};

use super::TargetArgs;

pub(crate) struct Announce<'a> {
    env: &'a Environment,
    name: &'a EnvName,
    pr: Option<u64>,
    event: Event,
    started: Instant,
}

impl<'a> Announce<'a> {
    pub(crate) fn start(
        env: &'a Environment,
        name: &'a EnvName,
        target: &TargetArgs,
        event: Event,
    ) -> Self {
        Announce {
            env,
            name,
            pr: target.pr.as_deref().and_then(|p| p.trim().parse().ok()),
            event,
            started: Instant::now(),
        }
    }

    /// Sends the message about `result`: on success titled `title` and completed by `describe`,
    /// on failure with the error chain. Returns `result` unchanged.
    pub(crate) fn finish<T>(
        self,
        result: anyhow::Result<T>,
        title: impl FnOnce(&T) -> String,
        describe: impl FnOnce(&T, &mut Message),
    ) -> anyhow::Result<T> {
        let Some(cfg) = self.env.notifications.slack.as_ref() else {
            return result;
        };
        let name = self.name.as_str();
        let mut msg = match &result {
            Ok(v) => {
                let mut m =
                    Message::for_environment(self.event, Outcome::Success, title(v), name, self.pr);
                describe(v, &mut m);
                m
            }
            Err(e) => {
                let what = format!("{} of {name} failed", self.event.as_str());
                let mut m =
                    Message::for_environment(self.event, Outcome::Failure, what, name, self.pr);
                m.error = Some(format!("{e:#}"));
                m
            }
        };
        msg.duration = Some(self.started.elapsed());
        let msg = msg.with_ci();
        let sent =
            super::block_on(async { anyhow::Ok(ephemera::slack::notify(Some(cfg), &msg).await) });
        match sent {
            Ok(Some(w)) => tracing::warn!("{w}"),
            Ok(None) => {}
            Err(e) => tracing::warn!("Slack notification failed: {e:#}"),
        }
        result
    }
}

/// Where a Rollout stands, in words, for the message's result.
pub(crate) fn rollout_result(status: &ephemera::app::RolloutStatus) -> String {
    if let Some(paused) = status.paused_canary() {
        return format!("canary {paused}");
    }
    if status.aborted {
        return format!(
            "{}: aborted, the stable version serves all traffic",
            status.phase
        );
    }
    format!(
        "{}, {}% on the new image",
        status.phase, status.actual_weight
    )
}
