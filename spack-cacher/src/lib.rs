//! Stage 2: the library behind `spack-cacher`, callable from tests.

pub mod cli;
pub mod generate;
pub mod prepare;
pub mod process;

use anyhow::Context;
use common::cli::exit;

/// Run a parsed command; returns the process exit code.
pub fn run(cmd: cli::Run) -> anyhow::Result<u8> {
    match cmd {
        cli::Run::Prepare(opts) => {
            for p in prepare::run(&opts).context("preparing the Spack environments")? {
                println!("{}", p.path.display());
            }
            Ok(exit::SUCCESS)
        }
        cli::Run::Generate(opts, printer) => {
            for p in generate::run(&opts, &printer)? {
                println!("{}", p.display());
            }
            Ok(exit::SUCCESS)
        }
        cli::Run::Process(opts) => {
            let written = process::run(&opts).context("processing the generated pipelines")?;
            for f in written {
                println!("{}", f.display());
            }
            Ok(exit::SUCCESS)
        }
    }
}
