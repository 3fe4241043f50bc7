//! `spackitor`, the Spack janitor: inspect and clean Spack binary build caches.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = spackitor::cli::Cli::parse();
    match spackitor::run(cli.into_command()) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(common::cli::exit::ERROR)
        }
    }
}
