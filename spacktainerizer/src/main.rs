//! `spacktainerizer`: builds the builder and runtime base images (stage 1).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let result = spacktainerizer::cli::Cli::parse()
        .into_run()
        .and_then(|(printer, run)| spacktainerizer::run(&printer, run));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(common::cli::exit::ERROR)
        }
    }
}
