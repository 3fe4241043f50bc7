//! How a tool's output looks: the format of the data on stdout and the verbosity on stderr, as
//! the flags set them and the printer follows them.

use clap::ValueEnum;

/// The format of the data written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Output format and verbosity, as the libraries take them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputOptions {
    pub format: OutputFormat,
    pub verbose: bool,
    pub quiet: bool,
}
