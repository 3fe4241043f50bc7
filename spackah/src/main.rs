//! `spackah`: Builds and publishes one container image per container definition (stage 3).

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    // Its commands arrive with their stage; until then it answers --help and --version only.
    let _ = cli::Cli::parse();
    ExitCode::from(common::cli::exit::SUCCESS)
}
