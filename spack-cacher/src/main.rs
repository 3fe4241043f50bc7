//! `spack-cacher`: fills the Spack binary build cache from the container definitions (stage 2).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = spack_cacher::cli::Cli::parse();
    match cli.into_run().and_then(spack_cacher::run) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(common::cli::exit::ERROR)
        }
    }
}
