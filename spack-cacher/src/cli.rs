//! Command-line interface of `spack-cacher`.

use clap::Parser;
use common::cli::EXIT_CODES_HELP;

#[derive(Debug, Parser)]
#[command(name = "spack-cacher", version, about = "Fills the Spack binary build cache from the container definitions (stage 2).", after_help = EXIT_CODES_HELP, arg_required_else_help = true)]
pub struct Cli {}
