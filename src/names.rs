//! Environment names: derived from the PR or given with `--name`, validated as DNS-1123 labels.

/// A bad name or untrusted input.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}
