//! The Spack janitor: inspection and cleaning of Spack binary build caches. The library behind
//! the `spackitor` binary, callable from tests; what to delete is decided by the pure planner
//! `model::cleanup`, this crate reads the cache and carries the plan out.

pub mod clean;
pub mod cli;
pub mod diff;
pub mod inspect;
pub mod journal;
pub mod keep;
pub mod loaded;
pub mod ls;
pub mod manifests;
pub mod purge;
pub mod reindex;
pub mod repos;
pub mod signatures;
pub mod stats;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stores::{S3Options, Store, StoreUrl};
use terminal::cli::{CacheOptions, OutputOptions};
use terminal::printer::Printer;

use crate::clean::CleanOptions;
use crate::ls::LsOptions;
use crate::purge::PurgeOptions;

/// A command, as plain options.
#[derive(Debug, Clone)]
pub enum Command {
    Ls(CacheOptions, LsOptions),
    Show {
        cache: CacheOptions,
        target: String,
        tree: bool,
    },
    Dependents {
        cache: CacheOptions,
        target: String,
        all_edges: bool,
    },
    Orphans(CacheOptions),
    Verify {
        cache: CacheOptions,
        deep: bool,
        /// Public key files: check that every spec is signed by one of them.
        trust: Vec<PathBuf>,
    },
    Purge(CacheOptions, PurgeOptions),
    Reindex {
        cache: CacheOptions,
        dry_run: bool,
    },
    Stats {
        cache: CacheOptions,
        top: usize,
        sizes: bool,
        html: Option<PathBuf>,
    },
    Diff {
        a: StoreUrl,
        b: StoreUrl,
        s3: S3Options,
    },
    Clean(CacheOptions, CleanOptions),
}

/// Run `command`, printing through a printer made from `output`; the process exit code.
pub fn main(output: &OutputOptions, command: Command) -> ExitCode {
    let printer = Printer::new(output);
    terminal::cli::finish(&printer, run(&printer, command))
}

/// Run a command; returns the process exit code. The stores it needs (the cache, the keep-list
/// stores, both caches of `diff`) are opened here, once, and handed down.
pub fn run(printer: &Printer, command: Command) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match command {
            Command::Ls(cache, opts) => ls::run(&open(&cache).await?, &opts, printer).await,
            Command::Show {
                cache,
                target,
                tree,
            } => inspect::show(&open(&cache).await?, &target, tree, printer).await,
            Command::Dependents {
                cache,
                target,
                all_edges,
            } => inspect::dependents(&open(&cache).await?, &target, all_edges, printer).await,
            Command::Orphans(cache) => inspect::orphans(&open(&cache).await?, printer).await,
            Command::Verify { cache, deep, trust } => {
                // The key files first: a wrong one stops the run before the cache is read.
                let keys = if trust.is_empty() {
                    None
                } else {
                    Some(signatures::load_keys(&trust)?)
                };
                verify::run(&open(&cache).await?, deep, keys.as_ref(), printer).await
            }
            Command::Purge(cache, opts) => {
                let store = open(&cache).await?;
                let keep = keep::open(&opts.keep, &opts.keep_s3).await?;
                purge::run(&store, &keep, &opts, printer).await
            }
            Command::Reindex { cache, dry_run } => {
                reindex::run(&open(&cache).await?, dry_run, printer).await
            }
            Command::Stats {
                cache,
                top,
                sizes,
                html,
            } => stats::run(&open(&cache).await?, top, sizes, html.as_deref(), printer).await,
            Command::Diff { a, b, s3 } => {
                let (a, b) = (open_url(&a, &s3).await?, open_url(&b, &s3).await?);
                diff::run(&a, &b, printer).await
            }
            Command::Clean(cache, opts) => {
                let store = open(&cache).await?;
                let keep = keep::open(&opts.keep, &opts.keep_s3).await?;
                clean::run(&store, &keep, &opts, printer).await
            }
        }
    })
}

async fn open(cache: &CacheOptions) -> anyhow::Result<Store> {
    open_url(&cache.url, &cache.s3).await
}

async fn open_url(url: &StoreUrl, s3: &S3Options) -> anyhow::Result<Store> {
    Store::open(url, s3)
        .await
        .with_context(|| format!("opening build cache {url}"))
}
