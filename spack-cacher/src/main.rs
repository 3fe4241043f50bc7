//! `spack-cacher`: fills the Spack binary build cache (stage 2).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let (output, command) = spack_cacher::cli::Cli::parse().into_options();
    spack_cacher::main(&output, command)
}
