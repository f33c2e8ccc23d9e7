//! Progress reporting on stderr: spinners on a TTY, one plain line per state change otherwise,
//! nothing when quiet. Results never go through here; they go to stdout.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The state of one tracked item (a step, an add-on, an object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Started,
    /// Still going; the text says what it waits for.
    Waiting(String),
    Done,
    /// Nothing to do (already there, or disabled); the text says why.
    Skipped(String),
    Failed(String),
}

/// Where progress goes. Implementations must be cheap and never fail.
pub trait Progress: Send + Sync {
    /// `scope` groups items (`step`, `addon`), `item` names one (`cluster`, `cert-manager`).
    fn update(&self, scope: &str, item: &str, state: State);
}

/// Progress for the current terminal: spinners when stderr is a TTY and not in CI, plain lines
/// otherwise, nothing when `quiet`.
pub fn for_terminal(quiet: bool) -> Arc<dyn Progress> {
    if quiet {
        Arc::new(Silent)
    } else if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
        Arc::new(Spinners::default())
    } else {
        Arc::new(Plain)
    }
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn update(&self, _: &str, _: &str, _: State) {}
}

/// One line per state change on stderr, e.g. `addon cert-manager: done`.
pub struct Plain;

impl Progress for Plain {
    fn update(&self, scope: &str, item: &str, state: State) {
        let line = match state {
            State::Started => format!("{scope} {item}: started"),
            State::Waiting(w) => format!("{scope} {item}: waiting for {w}"),
            State::Done => format!("{scope} {item}: done"),
            State::Skipped(why) => format!("{scope} {item}: skipped ({why})"),
            State::Failed(why) => format!("{scope} {item}: failed: {why}"),
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

/// Spinners (one per item) with ✓ / ✗ when they end.
#[derive(Default)]
pub struct Spinners {
    multi: indicatif::MultiProgress,
    bars: Mutex<BTreeMap<String, indicatif::ProgressBar>>,
}

impl Progress for Spinners {
    fn update(&self, scope: &str, item: &str, state: State) {
        let key = format!("{scope} {item}");
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bar = bars
            .entry(key.clone())
            .or_insert_with(|| {
                let b = self.multi.add(indicatif::ProgressBar::new_spinner());
                if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
                    b.set_style(style);
                }
                b.enable_steady_tick(Duration::from_millis(120));
                b
            })
            .clone();
        match state {
            State::Started => bar.set_message(key),
            State::Waiting(w) => bar.set_message(format!("{key}: waiting for {w}")),
            State::Done => bar.finish_with_message(format!("✓ {key}")),
            State::Skipped(why) => bar.finish_with_message(format!("- {key} ({why})")),
            State::Failed(why) => bar.finish_with_message(format!("✗ {key}: {why}")),
        }
    }
}

/// Records every update; for tests that assert on progress.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<(String, String, State)>>,
}

impl Progress for Recorder {
    fn update(&self, scope: &str, item: &str, state: State) {
        if let Ok(mut e) = self.events.lock() {
            e.push((scope.to_string(), item.to_string(), state));
        }
    }
}
