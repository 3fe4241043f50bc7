//! `spacktainerizer`: builds the base images (stage 1).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let (output, command) = spacktainerizer::cli::Cli::parse().into_options();
    spacktainerizer::main(&output, command)
}
