//! Command-line interface of `spackitor`: clap types turned into the plain options the library
//! takes.

use clap::{Parser, Subcommand, ValueEnum};
use common::cli::{CacheArgs, EXIT_CODES_HELP, OutputArgs};

use crate::ls::{LsOptions, SortKey};

#[derive(Debug, Parser)]
#[command(name = "spackitor", version, about = "The Spack janitor: inspect and clean Spack binary build caches (layouts v2 and v3, S3 or directories).", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the specs in the cache's index(es): name, version, hash, architecture, compiler,
    /// layout and age.
    Ls(LsArgs),
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Only specs whose name matches this glob (`py-*`, `lib?lf`).
    pub pattern: Option<String>,
    /// Only this version.
    #[arg(long)]
    pub version: Option<String>,
    /// Only this architecture (`linux-ubuntu22.04-x86_64_v3`) or target (`x86_64_v3`).
    #[arg(long)]
    pub arch: Option<String>,
    /// Only specs whose newest object is older than this many days.
    #[arg(long, value_name = "DAYS")]
    pub older_than: Option<f64>,
    /// Only specs whose newest object is newer than this many days.
    #[arg(long, value_name = "DAYS")]
    pub newer_than: Option<f64>,
    /// Sort order.
    #[arg(long, value_enum, default_value_t = SortArg::Name)]
    pub sort: SortArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortArg {
    Name,
    Age,
}

/// A parsed command, with the options the library works from.
pub enum Run {
    Ls(common::printer::Printer, CacheArgs, LsOptions),
}

impl Cli {
    pub fn into_command(self) -> Run {
        let printer = common::printer::Printer::new(&self.output);
        match self.command {
            Command::Ls(a) => Run::Ls(
                printer,
                a.cache,
                LsOptions {
                    pattern: a.pattern,
                    version: a.version,
                    arch: a.arch,
                    older_than_days: a.older_than,
                    newer_than_days: a.newer_than,
                    sort: match a.sort {
                        SortArg::Name => SortKey::Name,
                        SortArg::Age => SortKey::Age,
                    },
                },
            ),
        }
    }
}
