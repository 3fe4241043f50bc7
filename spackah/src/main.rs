//! `spackah`: builds and publishes one container image per container definition (stage 3).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let result = spackah::cli::Cli::parse()
        .into_run()
        .and_then(|(printer, run)| spackah::run(&printer, run));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(common::cli::exit::ERROR)
        }
    }
}
