//! Command-line interface of `spackitor`: clap types turned into the plain options the library
//! takes.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use common::cli::{CacheArgs, EXIT_CODES_HELP, OutputArgs};
use common::env_names;
use common::printer::Printer;

use crate::clean::CleanOptions;
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
    /// Delete what is too old or no longer used, keeping every spec the keep lockfiles need.
    ///
    /// A spec goes when it is older than --max-age (age: its newest object), or its package is
    /// in none of the --spack-repo repositories; its dependents (link and run edges) go with
    /// it. Specs in the keep lockfiles and their link/run dependencies, and anything newer than
    /// the index, stay. The index is rewritten first (conditionally), then objects are deleted,
    /// dependents before their dependencies.
    Clean(CleanArgs),
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

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Delete specs whose newest object is older than this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30.0, env = env_names::SPACKITOR_MAX_AGE)]
    pub max_age: f64,
    /// A spack.lock, or a folder searched for them, whose specs are never deleted (repeatable).
    #[arg(long, value_name = "PATH", env = env_names::SPACKITOR_KEEP, value_delimiter = ':')]
    pub keep: Vec<PathBuf>,
    /// A Spack package repository or Spack checkout: specs of packages found in none of them
    /// are deleted (repeatable).
    #[arg(long, value_name = "DIR", env = env_names::SPACKITOR_SPACK_REPO, value_delimiter = ':')]
    pub spack_repo: Vec<PathBuf>,
    /// Also delete objects the index does not know, when older than --max-age and the index.
    #[arg(long, env = env_names::SPACKITOR_ORPHANS)]
    pub orphans: bool,
    /// Print the plan and change nothing.
    #[arg(long, env = env_names::DRY_RUN)]
    pub dry_run: bool,
    /// Leave the index unchanged (it then lists deleted specs until it is rebuilt).
    #[arg(long, env = env_names::SPACKITOR_NO_REINDEX)]
    pub no_reindex: bool,
}

/// A parsed command with the plain options the library works from.
pub enum Run {
    Ls(CacheArgs, LsOptions),
    Clean(CacheArgs, CleanOptions),
}

impl Cli {
    pub fn into_run(self) -> (Printer, Run) {
        let printer = Printer::new(&self.output);
        let run = match self.command {
            Command::Ls(a) => Run::Ls(
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
            Command::Clean(a) => Run::Clean(
                a.cache,
                CleanOptions {
                    max_age_days: a.max_age,
                    keep: a.keep,
                    spack_repos: a.spack_repo,
                    orphans: a.orphans,
                    dry_run: a.dry_run,
                    no_reindex: a.no_reindex,
                },
            ),
        };
        (printer, run)
    }
}
