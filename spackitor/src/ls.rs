//! `spackitor ls`: the specs of a cache's indexes, filtered and sorted.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use common::cli::exit;
use common::printer::{Printer, rfc3339, short_age, table};
use common::spack::buildcache::catalog::Catalog;
use common::store::Store;
use serde::Serialize;

#[derive(Debug, Clone, Default)]
pub struct LsOptions {
    pub pattern: Option<String>,
    pub version: Option<String>,
    pub arch: Option<String>,
    pub older_than_days: Option<f64>,
    pub newer_than_days: Option<f64>,
    pub sort: SortKey,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Name,
    Age,
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
    /// Newest last-modified of the spec's objects; `None` when none is in the listing.
    pub last_modified: Option<String>,
    pub age_seconds: Option<u64>,
    pub objects: Vec<String>,
    #[serde(skip)]
    modified: Option<SystemTime>,
}

/// The rows `ls` shows for `catalog`, filtered and sorted by `opts`.
pub fn rows(catalog: &Catalog, opts: &LsOptions, now: SystemTime) -> anyhow::Result<Vec<Row>> {
    let glob = opts
        .pattern
        .as_deref()
        .map(|p| globset::Glob::new(p).map(|g| g.compile_matcher()))
        .transpose()
        .context("invalid name pattern")?;
    let days = |d: f64| Duration::from_secs_f64((d * 86400.0).max(0.0));
    let mut out = Vec::new();
    for index in &catalog.indexes {
        for entry in index.db.cached() {
            let node = &entry.node;
            if glob.as_ref().is_some_and(|g| !g.is_match(&*node.name))
                || opts.version.as_ref().is_some_and(|v| **v != *node.version)
                || opts
                    .arch
                    .as_ref()
                    .is_some_and(|a| *a != node.architecture() && **a != *node.target)
            {
                continue;
            }
            let objects = catalog.objects_of(index.layout, &node.hash);
            let modified = Catalog::newest(&objects);
            let age = modified.map(|m| now.duration_since(m).unwrap_or_default());
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
                compiler: index.db.compiler_of(node).to_string(),
                layout: index.layout.to_string(),
                last_modified: modified.map(rfc3339),
                age_seconds: age.map(|a| a.as_secs()),
                objects: objects.iter().map(|o| o.key.clone()).collect(),
                modified,
            });
        }
    }
    match opts.sort {
        SortKey::Name => out.sort_by(|a, b| {
            (&a.name, &a.version, &a.layout, &a.hash)
                .cmp(&(&b.name, &b.version, &b.layout, &b.hash))
        }),
        // Oldest first; specs without objects last.
        SortKey::Age => out.sort_by_key(|r| (r.modified.is_none(), r.modified, r.name.clone())),
    }
    Ok(out)
}

pub async fn run(store: &Store, opts: &LsOptions, printer: &Printer) -> anyhow::Result<u8> {
    let pb = printer.progress(None, "listing");
    let catalog = Catalog::load(store, |n| pb.set_position(n))
        .await
        .with_context(|| format!("reading build cache {}", store.url()))?;
    pb.finish_and_clear();
    let rows = rows(&catalog, opts, SystemTime::now())?;
    if printer.is_json() {
        printer.json(&rows)?;
    } else {
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
                    r.age_seconds
                        .map(|s| short_age(Duration::from_secs(s)))
                        .unwrap_or_else(|| "missing".into()),
                ]
            })
            .collect();
        printer.data(&table(
            &[
                "NAME", "VERSION", "HASH", "ARCH", "COMPILER", "LAYOUT", "AGE",
            ],
            &cells,
            &[false, false, false, false, false, false, true],
        ))?;
        printer.log(format!(
            "{} spec(s) in {} ({})",
            rows.len(),
            catalog.url,
            catalog
                .layouts()
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(exit::SUCCESS)
}
