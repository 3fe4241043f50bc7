//! `spackitor`: the Spack janitor.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let (output, command) = spackitor::cli::Cli::parse().into_options();
    spackitor::main(&output, command)
}
