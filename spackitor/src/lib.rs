//! The Spack janitor: library behind the `spackitor` binary, callable from tests.

pub mod clean;
pub mod cli;
pub mod keep;
pub mod ls;
pub mod manifests;
pub mod model;
pub mod plan;
pub mod repos;

use anyhow::Context;
use common::cli::CacheArgs;
use common::printer::Printer;
use common::store::Store;

/// Run a parsed command; returns the process exit code.
pub fn run(printer: &Printer, cmd: cli::Run) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match cmd {
            cli::Run::Ls(cache, opts) => ls::run(&open(&cache).await?, &opts, printer).await,
            cli::Run::Clean(cache, opts) => clean::run(&open(&cache).await?, &opts, printer).await,
        }
    })
}

async fn open(cache: &CacheArgs) -> anyhow::Result<Store> {
    Store::open(&cache.cache, &cache.s3.options())
        .await
        .with_context(|| format!("opening build cache {}", cache.cache))
}
