//! The Spack janitor: library behind the `spackitor` binary, callable from tests.

pub mod cli;
pub mod ls;

use anyhow::Context;
use common::cli::CacheArgs;
use common::store::Store;

/// Run a parsed command; returns the process exit code.
pub fn run(cmd: cli::Run) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match cmd {
            cli::Run::Ls(printer, cache, opts) => {
                let store = open(&cache).await?;
                ls::run(&store, &opts, &printer).await
            }
        }
    })
}

async fn open(cache: &CacheArgs) -> anyhow::Result<Store> {
    Store::open(&cache.cache, &cache.s3.options())
        .await
        .with_context(|| format!("opening build cache {}", cache.cache))
}
