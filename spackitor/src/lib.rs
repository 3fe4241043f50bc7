//! The Spack janitor: library behind the `spackitor` binary, callable from tests.

pub mod clean;
pub mod cli;
pub mod diff;
pub mod inspect;
pub mod keep;
pub mod ls;
pub mod manifests;
pub mod model;
pub mod plan;
pub mod purge;
pub mod reindex;
pub mod repos;
pub mod stats;
pub mod verify;

use anyhow::Context;
use common::cli::CacheArgs;
use common::printer::Printer;
use common::store::{Store, StoreUrl};

/// Run a parsed command; returns the process exit code.
pub fn run(printer: &Printer, cmd: cli::Run) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        use cli::Run;
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
                let opts = s3.options();
                let open_url = |u: StoreUrl| {
                    let opts = opts.clone();
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

async fn open(cache: &CacheArgs) -> anyhow::Result<Store> {
    Store::open(&cache.cache, &cache.s3.options())
        .await
        .with_context(|| format!("opening build cache {}", cache.cache))
}
