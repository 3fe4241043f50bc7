//! `singularitah`: SIF files of the containers.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let (output, command) = singularitah::cli::Cli::parse().into_options();
    singularitah::main(&output, command)
}
