//! Logs: tracing to stderr, filtered by RUST_LOG or -v/-q, as text or JSON.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::{LogFormat, Settings};

/// The default filter for the verbosity flags. Libraries (the kube client, HTTP) log their
/// retries as errors while ephemera waits for a cluster to come up; they are heard from `-vv` on,
/// and ephemera reports real failures itself.
fn level(s: &Settings) -> &'static str {
    match (s.quiet, s.verbose) {
        (true, _) => "ephemera=error",
        (false, 0) => "ephemera=warn",
        (false, 1) => "ephemera=info",
        (false, 2) => "ephemera=debug,warn",
        _ => "trace",
    }
}

/// Installs the global subscriber. RUST_LOG, when set and valid, wins over -v/-q.
pub fn init(s: &Settings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level(s)));
    // Colours only for a terminal: CI logs and captured stderr stay plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match s.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}
