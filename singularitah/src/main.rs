//! `singularitah`: builds the Singularity/Apptainer image used for SIF work.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let result = singularitah::cli::Cli::parse()
        .into_run()
        .and_then(|(printer, run)| singularitah::run(&printer, run));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(common::cli::exit::ERROR)
        }
    }
}
