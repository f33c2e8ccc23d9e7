//! The process exit status every error maps to, and the error chain formatter.
//!
//! Each module has its own small `thiserror` enum with an `exit_status`; the one that wraps them
//! all is [`crate::engine::Error`] (re-exported as `ephemera::Error`), which sits at the top of
//! the layers it wraps. Messages never repeat their source: chain printers show each cause once.

/// Process exit statuses, documented in the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything asked for holds.
    Ok = 0,
    /// The operation failed.
    Failed = 1,
    /// Bad usage or configuration: nothing was created.
    Usage = 2,
    /// A deadline passed.
    TimedOut = 3,
    /// Another run holds the environment's lease.
    LeaseHeld = 4,
}

/// An error and its causes, joined with `: `.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
