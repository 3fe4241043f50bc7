//! `spackitor purge`: delete chosen specs (and, if asked, everything that depends on them),
//! never a spec a keep lockfile needs; the index is rewritten as `clean` does.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::bail;
use model::cleanup::{self, CacheView, LayoutPlan, PurgeRefused, SpecLabel};
use stores::{S3Options, Store};
use terminal::printer::Printer;

use crate::clean;
use crate::inspect::resolve;
use crate::keep::{self, KeepSource};

#[derive(Debug, Clone)]
pub struct PurgeOptions {
    /// A hash (7+ characters), `name` or `name@version`.
    pub target: String,
    pub with_dependents: bool,
    pub keep: Vec<KeepSource>,
    /// How keep lists in stores are reached (the cache's own S3 settings).
    pub keep_s3: S3Options,
    pub dry_run: bool,
}

/// Purge from `store`, keeping what the keep lists (opened by the run: `keep`) need.
pub async fn run(
    store: &Store,
    keep: &[keep::Opened],
    opts: &PurgeOptions,
    printer: &Printer,
) -> anyhow::Result<u8> {
    let started = Instant::now();
    let keep_hashes = keep::hashes(&keep::load(keep, None).await?.lockfiles);
    let report = clean::execute(store, printer, started, opts.dry_run, false, |view| {
        plan(view, opts, &keep_hashes)
    })
    .await?;
    clean::print(store, &report, printer)
}

fn plan(
    view: &CacheView,
    opts: &PurgeOptions,
    keep: &HashSet<String>,
) -> anyhow::Result<Vec<LayoutPlan>> {
    let chosen: Vec<_> = resolve(view, &opts.target)?
        .into_iter()
        .map(|(lm, hash)| (lm.layout, hash))
        .collect();
    let lines = |specs: &[SpecLabel]| -> String {
        let lines: Vec<String> = specs.iter().map(|s| format!("  {s}")).collect();
        lines.join("\n")
    };
    match cleanup::purge(view, &chosen, opts.with_dependents, keep) {
        Ok(plans) => Ok(plans),
        Err(PurgeRefused::WouldBreak(specs)) => bail!(
            "{} spec(s) depend on `{}` and would break; nothing was deleted (add --with-dependents to delete them too):\n{}",
            specs.len(),
            opts.target,
            lines(&specs)
        ),
        Err(PurgeRefused::Kept(specs)) => bail!(
            "refusing to delete specs a keep lockfile needs; nothing was deleted:\n{}",
            lines(&specs)
        ),
    }
}
