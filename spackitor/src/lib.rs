//! The Spack janitor: inspection and cleaning of Spack binary build caches. The library behind
//! the `spackitor` binary, callable from tests.

pub mod clean;
pub mod cli;
pub mod deletion_plan;
pub mod diff;
pub mod inspect;
pub mod journal;
pub mod keep;
pub mod ls;
pub mod manifests;
pub mod model;
pub mod purge;
pub mod reindex;
pub mod repos;
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
pub enum Run {
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
pub fn main(output: &OutputOptions, command: Run) -> ExitCode {
    let printer = Printer::new(output);
    terminal::cli::finish(&printer, run(&printer, command))
}

/// Run a command; returns the process exit code. The cache's store is opened here, once.
pub fn run(printer: &Printer, cmd: Run) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match cmd {
            Run::Ls(cache, opts) => ls::run(&open(&cache).await?, &opts, printer).await,
            Run::Show {
                cache,
                target,
                tree,
            } => inspect::show(&open(&cache).await?, &target, tree, printer).await,
            Run::Dependents {
                cache,
                target,
                all_edges,
            } => inspect::dependents(&open(&cache).await?, &target, all_edges, printer).await,
            Run::Orphans(cache) => inspect::orphans(&open(&cache).await?, printer).await,
            Run::Verify { cache, deep } => verify::run(&open(&cache).await?, deep, printer).await,
            Run::Purge(cache, opts) => purge::run(&open(&cache).await?, &opts, printer).await,
            Run::Reindex { cache, dry_run } => {
                reindex::run(&open(&cache).await?, dry_run, printer).await
            }
            Run::Stats {
                cache,
                top,
                sizes,
                html,
            } => stats::run(&open(&cache).await?, top, sizes, html.as_deref(), printer).await,
            Run::Diff { a, b, s3 } => {
                let open_url = |u: StoreUrl| {
                    let opts = s3.clone();
                    async move {
                        Store::open(&u, &opts)
                            .await
                            .with_context(|| format!("opening build cache {u}"))
                    }
                };
                diff::run(&open_url(a).await?, &open_url(b).await?, printer).await
            }
            Run::Clean(cache, opts) => clean::run(&open(&cache).await?, &opts, printer).await,
        }
    })
}

async fn open(cache: &CacheOptions) -> anyhow::Result<Store> {
    Store::open(&cache.url, &cache.s3)
        .await
        .with_context(|| format!("opening build cache {}", cache.url))
}
