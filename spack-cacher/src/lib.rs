//! Stage 2: the library behind `spack-cacher`, callable from tests.

pub mod cli;
pub mod process;

use anyhow::Context;
use common::cli::exit;

/// Run a parsed command; returns the process exit code.
pub fn run(cmd: cli::Run) -> anyhow::Result<u8> {
    match cmd {
        cli::Run::Process(opts) => {
            let written = process::run(&opts).context("processing the generated pipelines")?;
            for f in written {
                println!("{}", f.display());
            }
            Ok(exit::SUCCESS)
        }
    }
}
