//! The command-line edge of the tools: clap helpers shared by every tool, the output options,
//! the printer (text and JSON output, tables, progress bars) and exit codes.

pub mod cli;
pub mod output;
pub mod printer;
