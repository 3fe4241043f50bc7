//! Command-line interface of `singularitah`.

use clap::Parser;
use common::cli::EXIT_CODES_HELP;

#[derive(Debug, Parser)]
#[command(name = "singularitah", version, about = "Builds the Singularity/Apptainer image and works with SIF files (stage 1 and SIF publishing).", after_help = EXIT_CODES_HELP, arg_required_else_help = true)]
pub struct Cli {}
