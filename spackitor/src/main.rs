//! `spackitor`, the Spack janitor: inspect and clean Spack binary build caches.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let (printer, run) = spackitor::cli::Cli::parse().into_run();
    match spackitor::run(&printer, run) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(common::cli::exit::ERROR)
        }
    }
}
