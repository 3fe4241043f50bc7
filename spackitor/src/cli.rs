//! Command-line interface of `spackitor`: clap types turned into the plain options the library
//! takes.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use model::env_names;
use stores::StoreUrl;
use terminal::cli::{CacheArgs, EXIT_CODES_HELP, OutputArgs, OutputOptions, S3Args};

use crate::Command;
use crate::clean::CleanOptions;
use crate::keep::{self, KeepSource};
use crate::ls::{LsOptions, SortKey};
use crate::purge::PurgeOptions;
use host::git::Remote;

#[derive(Debug, Parser)]
#[command(name = "spackitor", version, about = "The Spack janitor: inspect and clean Spack binary build caches (layouts v2 and v3, S3 or directories).", after_help = exit_codes_help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What exit 2 means after deletes, beside what it means for every tool.
pub const PARTIAL_DELETES_HELP: &str = "`clean` and `purge` exit 2 also when some deletes failed: \
the cache is then partly cleaned, the keys not deleted are printed (JSON: `failures`), and \
running the same command again deletes what is left.";

fn exit_codes_help() -> String {
    format!("{EXIT_CODES_HELP}\n\n{PARTIAL_DELETES_HELP}")
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// List the specs in the cache's index(es): name, version, hash, architecture, compiler,
    /// layout, size and age.
    Ls(LsArgs),
    /// One spec: full hash, every object with size and last-modified, dependencies and
    /// dependents (`--tree`: the whole closure, with edge types).
    Show {
        #[command(flatten)]
        cache: CacheArgs,
        /// A hash (7+ characters are enough when unambiguous), a name, or name@version.
        target: String,
        /// Show the whole dependency closure, with edge types.
        #[arg(long)]
        tree: bool,
    },
    /// Every spec that would break if this one went away (link and run edges).
    Dependents {
        #[command(flatten)]
        cache: CacheArgs,
        /// A hash (7+ characters), a name, or name@version.
        target: String,
        /// Follow build edges too.
        #[arg(long)]
        all_edges: bool,
    },
    /// Objects no index entry owns: spec files without tarball and the reverse, spec manifests
    /// of unknown hashes, unreferenced blobs, stray keys; with age and whether they are newer
    /// than the index (an upload in flight).
    Orphans {
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Check consistency: the v2 hash file matches the index, every index entry has all its
    /// objects, v3 blob sizes match their manifests; with --trust, that every spec is signed by
    /// a trusted key. Exit 1 when something is wrong or a spec is not signed by a trusted key.
    ///
    /// With --trust, each spec's signed document (v2 `.spec.json.sig`, v3 the clear-signed spec
    /// manifest) is reported as signed by a trusted key (its fingerprint), unsigned, bad
    /// signature (changed after signing), signed by a revoked key, signed by a subkey not bound
    /// for signing, signed by an unknown key (the key the signature names), or unreadable. `--output json` then prints `{"problems": [...], "signatures":
    /// [...]}`. --trust checks the signed documents only: add --deep to check that the tarballs
    /// and blobs hold what their signed checksums say (without it, a tarball changed in place
    /// but kept at its size is not seen).
    Verify {
        #[command(flatten)]
        cache: CacheArgs,
        /// Also read every tarball and blob and check its checksum (with --trust, the checksum
        /// of the signed text): what finds a tarball or blob changed in place.
        #[arg(long)]
        deep: bool,
        /// OpenPGP public key files (`gpg --armor --export FINGERPRINT`, Spack's `_pgp/*.pub`):
        /// every spec must be signed by one of their keys. A file that is not a public key (a
        /// secret key, broken armor) is an error (exit 2).
        #[arg(long, value_name = "KEYFILE", num_args = 1..)]
        trust: Vec<PathBuf>,
    },
    /// Delete chosen specs (by hash, or name with optional @version); the index is rewritten
    /// first, as `clean` does. Refuses specs a keep lockfile needs, and specs others depend on
    /// unless --with-dependents.
    Purge {
        #[command(flatten)]
        cache: CacheArgs,
        /// What to delete: a hash (7+ characters), a name, or name@version.
        target: String,
        /// Delete everything that depends on them (link and run edges) too.
        #[arg(long)]
        with_dependents: bool,
        /// A spack.lock, a folder searched for them, or a store URL (`s3://…`) whose every
        /// spack.lock is a keep list: their specs may not be deleted.
        #[arg(long, value_name = "PATH|URL", env = env_names::SPACKITOR_KEEP, value_delimiter = ',', value_parser = keep::parse_source)]
        keep: Vec<KeepSource>,
        /// Print what would be deleted and change nothing.
        #[arg(long, env = env_names::DRY_RUN, value_parser = terminal::cli::boolish())]
        dry_run: bool,
    },
    /// Rebuild the index from the spec files (v2) or spec manifests (v3) present, like
    /// `spack buildcache update-index`, without a Spack installation.
    Reindex {
        #[command(flatten)]
        cache: CacheArgs,
        /// Print what the index would hold and write nothing.
        #[arg(long, env = env_names::DRY_RUN, value_parser = terminal::cli::boolish())]
        dry_run: bool,
    },
    /// Objects and bytes in total, the largest packages, specs by age band, orphans.
    Stats {
        #[command(flatten)]
        cache: CacheArgs,
        /// How many packages to list.
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Also write a self-contained HTML report with charts to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Read v3 manifests not known yet, so every blob counts (one request each).
        #[arg(long)]
        sizes: bool,
    },
    /// Specs present in one cache and not the other. Exit 1 when they differ.
    Diff {
        /// `s3://bucket[/prefix]`, `file:///dir` or a directory.
        #[arg(value_parser = terminal::cli::parse_store_url)]
        a: StoreUrl,
        /// The other cache, in the same forms.
        #[arg(value_parser = terminal::cli::parse_store_url)]
        b: StoreUrl,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Delete what is too old or no longer used, keeping every spec the keep lockfiles need.
    ///
    /// A spec goes when it is older than --max-age (age: its newest object), or its package is
    /// in none of the --spack-repo repositories; its dependents (link and run edges) go with
    /// it. Specs in the keep lockfiles and their link/run dependencies, and anything newer than
    /// the index, stay. The plan is recorded in the cache (`_spacktainerizah/clean-plan.json`),
    /// the index is rewritten (conditionally), then objects are deleted, dependents before their
    /// dependencies; an index written back meanwhile naming them is repaired. A run that was
    /// killed is finished by the next one.
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
    #[arg(long, value_name = "DAYS", value_parser = terminal::cli::parse_days)]
    pub older_than: Option<f64>,
    /// Only specs whose newest object is newer than this many days.
    #[arg(long, value_name = "DAYS", value_parser = terminal::cli::parse_days)]
    pub newer_than: Option<f64>,
    /// Sort order.
    #[arg(long, value_enum, default_value_t = SortArg::Name)]
    pub sort: SortArg,
    /// Read v3 manifests not known yet to show every size (one request each).
    #[arg(long)]
    pub sizes: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortArg {
    Name,
    Age,
    Size,
}

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Delete specs whose newest object is older than this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30.0, env = env_names::SPACKITOR_MAX_AGE, value_parser = terminal::cli::parse_days)]
    pub max_age: f64,
    /// A spack.lock, a folder searched for them, or a store URL (`s3://bucket/prefix`) whose
    /// every spack.lock — as stage 2 records them, `<branch>/<arch>/<container>/spack.lock` — is
    /// a keep list: their specs are never deleted (repeatable). A store prefix where nothing was
    /// recorded yet keeps nothing (and says so); one that cannot be read stops the run.
    #[arg(long, value_name = "PATH|URL", env = env_names::SPACKITOR_KEEP, value_delimiter = ',', value_parser = keep::parse_source)]
    pub keep: Vec<KeepSource>,
    /// The project's git remote: recorded keep lists of branches it no longer has (as
    /// `git ls-remote --heads --tags` says) are left out and removed.
    #[arg(long, value_name = "URL", env = env_names::SPACKITOR_BRANCHES_FROM)]
    pub branches_from: Option<String>,
    /// The default branch, always alive.
    #[arg(long, value_name = "BRANCH", env = env_names::CI_DEFAULT_BRANCH, default_value = "main")]
    pub default_branch: String,
    /// HTTP user for a private remote (with `--git-token-env`).
    #[arg(long, default_value = "gitlab-ci-token", requires = "git_token_env")]
    pub git_user: String,
    /// Variable holding the token for a private remote (e.g. `CI_JOB_TOKEN`).
    #[arg(long, value_name = "VAR", requires = "branches_from")]
    pub git_token_env: Option<String>,
    /// A Spack package repository or Spack checkout: specs of packages found in none of them
    /// are deleted (repeatable).
    #[arg(long, value_name = "DIR", env = env_names::SPACKITOR_SPACK_REPO, value_delimiter = ':')]
    pub spack_repo: Vec<PathBuf>,
    /// Also delete objects the index does not know, when older than --max-age and the index.
    #[arg(long, env = env_names::SPACKITOR_ORPHANS)]
    pub orphans: bool,
    /// Print the plan and change nothing.
    #[arg(long, env = env_names::DRY_RUN, value_parser = terminal::cli::boolish())]
    pub dry_run: bool,
    /// Leave the index unchanged (it then lists deleted specs until it is rebuilt).
    #[arg(long, env = env_names::SPACKITOR_NO_REINDEX)]
    pub no_reindex: bool,
}

impl Cli {
    /// The plain options: no file is read and nothing is run here.
    pub fn into_options(self) -> (OutputOptions, Command) {
        (self.output.options(), self.command.into_command())
    }
}

impl CliCommand {
    fn into_command(self) -> Command {
        match self {
            CliCommand::Ls(a) => a.into_command(),
            CliCommand::Show {
                cache,
                target,
                tree,
            } => Command::Show {
                cache: cache.options(),
                target,
                tree,
            },
            CliCommand::Dependents {
                cache,
                target,
                all_edges,
            } => Command::Dependents {
                cache: cache.options(),
                target,
                all_edges,
            },
            CliCommand::Orphans { cache } => Command::Orphans(cache.options()),
            CliCommand::Verify { cache, deep, trust } => Command::Verify {
                cache: cache.options(),
                deep,
                trust,
            },
            CliCommand::Purge {
                cache,
                target,
                with_dependents,
                keep,
                dry_run,
            } => {
                let cache = cache.options();
                let keep_s3 = cache.s3.clone();
                let opts = PurgeOptions {
                    target,
                    with_dependents,
                    keep,
                    keep_s3,
                    dry_run,
                };
                Command::Purge(cache, opts)
            }
            CliCommand::Reindex { cache, dry_run } => Command::Reindex {
                cache: cache.options(),
                dry_run,
            },
            CliCommand::Stats {
                cache,
                top,
                html,
                sizes,
            } => Command::Stats {
                cache: cache.options(),
                top,
                sizes,
                html,
            },
            CliCommand::Diff { a, b, s3 } => Command::Diff {
                a,
                b,
                s3: s3.options(),
            },
            CliCommand::Clean(a) => a.into_command(),
        }
    }
}

impl LsArgs {
    fn into_command(self) -> Command {
        let opts = LsOptions {
            pattern: self.pattern,
            version: self.version,
            arch: self.arch,
            older_than_days: self.older_than,
            newer_than_days: self.newer_than,
            sort: match self.sort {
                SortArg::Name => SortKey::Name,
                SortArg::Age => SortKey::Age,
                SortArg::Size => SortKey::Size,
            },
            sizes: self.sizes,
        };
        Command::Ls(self.cache.options(), opts)
    }
}

impl CleanArgs {
    fn into_command(self) -> Command {
        let cache = self.cache.options();
        let login = self.git_token_env.map(|var| (self.git_user, var));
        let default_branch = self.default_branch;
        let opts = CleanOptions {
            max_age_days: self.max_age,
            keep: self.keep,
            keep_s3: cache.s3.clone(),
            branches: self
                .branches_from
                .map(|url| (Remote { url, login }, default_branch)),
            spack_repos: self.spack_repo,
            orphans: self.orphans,
            dry_run: self.dry_run,
            no_reindex: self.no_reindex,
        };
        Command::Clean(cache, opts)
    }
}
