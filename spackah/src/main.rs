//! `spackah`: builds and publishes the containers (stage 3).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let (output, command) = spackah::cli::Cli::parse().into_options();
    spackah::main(&output, command)
}
