//! Results to stdout; warnings and errors to stderr.

use std::io::Write;

use super::Settings;

/// Where the CLI writes what it has to say.
pub struct Printer {
    quiet: bool,
}

impl Printer {
    pub fn new(s: &Settings) -> Self {
        Printer { quiet: s.quiet }
    }

    /// A result: stdout, always (also with -q).
    pub fn result(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// A warning on stderr, unless quiet.
    pub fn warn(&self, message: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
        }
    }
}

/// `error: <message>`, then `Caused by: <cause>` for each cause, on stderr.
pub fn print_error(err: &anyhow::Error) {
    let mut e = std::io::stderr().lock();
    let mut chain = err.chain();
    if let Some(first) = chain.next() {
        let _ = writeln!(e, "error: {first}");
    }
    for cause in chain {
        let _ = writeln!(e, "Caused by: {cause}");
    }
}
