//! `spackitor ls`: the specs of a cache's indexes, filtered and sorted.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use model::cleanup::CacheView;
use serde::Serialize;
use stores::Store;
use terminal::cli::exit;
use terminal::printer::{Printer, human_bytes, rfc3339, short_age, table};

use crate::loaded::LoadedCache;
use crate::manifests::Reads;

#[derive(Debug, Clone, Default)]
pub struct LsOptions {
    pub pattern: Option<String>,
    pub version: Option<String>,
    pub arch: Option<String>,
    pub older_than_days: Option<f64>,
    pub newer_than_days: Option<f64>,
    pub sort: SortKey,
    /// Read the v3 manifests the memo does not know (one request each) to show every size.
    pub sizes: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Name,
    Age,
    Size,
}

/// One line of `ls`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub version: String,
    pub hash: String,
    pub arch: String,
    pub compiler: String,
    pub layout: String,
    /// Bytes of its objects; `None` for a v3 spec whose manifest was not read yet (`--sizes`
    /// reads them; `clean` remembers them for the other commands).
    pub size: Option<u64>,
    /// Newest last-modified of the spec's objects; `None` when none is in the listing.
    pub last_modified: Option<String>,
    pub age_seconds: Option<u64>,
    pub objects: Vec<String>,
    #[serde(skip)]
    modified: Option<SystemTime>,
}

/// The rows `ls` shows, filtered and sorted by `opts`.
pub fn rows(view: &CacheView, opts: &LsOptions, now: SystemTime) -> anyhow::Result<Vec<Row>> {
    let glob = opts
        .pattern
        .as_deref()
        .map(|p| globset::Glob::new(p).map(|g| g.compile_matcher()))
        .transpose()
        .context("invalid name pattern")?;
    let days = terminal::cli::days;
    let mut out = Vec::new();
    for lm in &view.layouts {
        for (hash, rec) in lm.specs() {
            let node = lm.node(hash);
            if glob.as_ref().is_some_and(|g| !g.is_match(&*node.name))
                || opts.version.as_ref().is_some_and(|v| **v != *node.version)
                || opts
                    .arch
                    .as_ref()
                    .is_some_and(|a| *a != node.architecture() && **a != *node.traits.target)
            {
                continue;
            }
            let newest = rec.newest(&view.listing);
            let age = newest.map(|m| now.duration_since(m).unwrap_or_default());
            if let Some(d) = opts.older_than_days
                && age.is_none_or(|a| a <= days(d))
            {
                continue;
            }
            if let Some(d) = opts.newer_than_days
                && age.is_none_or(|a| a >= days(d))
            {
                continue;
            }
            out.push(Row {
                name: node.name.to_string(),
                version: node.version.to_string(),
                hash: node.hash.to_string(),
                arch: node.architecture(),
                compiler: lm.db.compiler_shown(node),
                layout: lm.layout.to_string(),
                size: rec.blobs_known.then(|| rec.bytes(&view.listing)),
                last_modified: newest.map(rfc3339),
                age_seconds: age.map(|a| a.as_secs()),
                objects: rec
                    .objects
                    .iter()
                    .map(|&i| view.key(i).to_string())
                    .collect(),
                modified: newest,
            });
        }
    }
    let by_name = |a: &Row, b: &Row| {
        (&a.name, &a.version, &a.layout, &a.hash).cmp(&(&b.name, &b.version, &b.layout, &b.hash))
    };
    match opts.sort {
        SortKey::Name => out.sort_by(by_name),
        // Oldest first; specs without objects last.
        SortKey::Age => out.sort_by(|a, b| {
            (a.modified.is_none(), a.modified)
                .cmp(&(b.modified.is_none(), b.modified))
                .then(by_name(a, b))
        }),
        // Largest first.
        SortKey::Size => out.sort_by(|a, b| b.size.cmp(&a.size).then(by_name(a, b))),
    }
    Ok(out)
}

pub async fn run(store: &Store, opts: &LsOptions, printer: &Printer) -> anyhow::Result<u8> {
    let reads = if opts.sizes {
        Reads::All
    } else {
        Reads::MemoOnly
    };
    let loaded = LoadedCache::load_shown(store, reads, printer).await?;
    let rows = rows(&loaded.view, opts, SystemTime::now())?;
    if printer.is_json() {
        printer.json(&rows)?;
        return Ok(exit::SUCCESS);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.version.clone(),
                r.hash[..7].to_string(),
                r.arch.clone(),
                r.compiler.clone(),
                r.layout.clone(),
                r.size.map(human_bytes).unwrap_or_else(|| "-".into()),
                r.age_seconds
                    .map(|s| short_age(Duration::from_secs(s)))
                    .unwrap_or_else(|| "missing".into()),
            ]
        })
        .collect();
    printer.data(&table(
        &[
            "NAME", "VERSION", "HASH", "ARCH", "COMPILER", "LAYOUT", "SIZE", "AGE",
        ],
        &cells,
        &[false, false, false, false, false, false, true, true],
    ))?;
    let layouts: Vec<String> = loaded
        .view
        .layouts
        .iter()
        .map(|l| l.layout.to_string())
        .collect();
    printer.log(format!(
        "{} spec(s) in {} ({})",
        rows.len(),
        store.url(),
        layouts.join(", ")
    ));
    if rows.iter().any(|r| r.size.is_none()) {
        printer.log("SIZE `-`: v3 manifests not read yet (`--sizes` reads them, one request each)");
    }
    Ok(exit::SUCCESS)
}
