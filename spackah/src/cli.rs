//! Command-line interface of `spackah`.

use clap::Parser;
use common::cli::EXIT_CODES_HELP;

#[derive(Debug, Parser)]
#[command(name = "spackah", version, about = "Builds and publishes one container image per container definition (stage 3).", after_help = EXIT_CODES_HELP, arg_required_else_help = true)]
pub struct Cli {}
