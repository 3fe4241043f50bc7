//! Command-line interface of `spacktainerizer`.

use clap::Parser;
use common::cli::EXIT_CODES_HELP;

#[derive(Debug, Parser)]
#[command(name = "spacktainerizer", version, about = "Builds the builder and runtime base images (stage 1).", after_help = EXIT_CODES_HELP, arg_required_else_help = true)]
pub struct Cli {}
