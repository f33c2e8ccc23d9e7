//! The `ephemera` command: parse → settings → one library call → exit status.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let settings = cli::Settings::from(&args);
    cli::logging::init(&settings);
    let status = match cli::run(args.command, &settings) {
        Ok(status) => status,
        Err(err) => {
            cli::printer::print_error(&err);
            cli::exit_status(&err)
        }
    };
    ExitCode::from(status as u8)
}
