//! `spack-cacher`: Fills the Spack binary build cache from the container definitions (stage 2).

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    // Its commands arrive with their stage; until then it answers --help and --version only.
    let _ = cli::Cli::parse();
    ExitCode::from(common::cli::exit::SUCCESS)
}
