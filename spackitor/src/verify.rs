//! `spackitor verify`: is the cache consistent? The v2 hash file matches the index, every index
//! entry has all its objects, v3 blobs have the sizes their manifests give; `--deep` also reads
//! every tarball and blob and checks its checksum.

use anyhow::Context;
use common::cache::hash_file_matches;
use common::cli::exit;
use common::printer::{Printer, table};
use common::spack::buildcache::{Layout, SpecFile, v2};
use common::store::Store;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::manifests::{BlobRef, Reads};
use crate::model::CacheModel;

/// Objects read at once with `--deep`.
const DEEP_READS_IN_FLIGHT: usize = 16;

#[derive(Debug, Serialize)]
pub struct Problem {
    pub layout: String,
    pub key: String,
    pub problem: String,
}

pub async fn problems(
    store: &Store,
    model: &CacheModel,
    deep: bool,
) -> anyhow::Result<Vec<Problem>> {
    let mut out = Vec::new();
    for lm in &model.layouts {
        let layout = lm.layout.to_string();
        let mut problem = |key: &str, p: String| {
            out.push(Problem {
                layout: layout.clone(),
                key: key.to_string(),
                problem: p,
            })
        };
        if lm.layout == Layout::V2 {
            match hash_file_matches(store, &lm.index).await? {
                Some(true) => {}
                Some(false) => problem(
                    v2::INDEX_HASH_KEY,
                    "does not hold the sha256 of index.json".into(),
                ),
                None => problem(
                    v2::INDEX_HASH_KEY,
                    "missing (Spack cannot cache the index without it)".into(),
                ),
            }
        }
        for (hash, rec) in &lm.specs {
            let n = lm.node(hash);
            for key in &rec.missing {
                problem(
                    key,
                    format!(
                        "missing: the index lists {}@{} /{}",
                        n.name,
                        n.version,
                        &hash[..7]
                    ),
                );
            }
        }
        for (&m, blobs) in &lm.manifests.by_manifest {
            for b in blobs {
                match b {
                    BlobRef::Listed { at, length } => {
                        let o = &model.catalog.objects[*at as usize];
                        if o.size != *length {
                            problem(
                                &o.key,
                                format!("{} bytes, but {} says {length}", o.size, model.key(m)),
                            );
                        }
                    }
                    // Missing blobs of spec manifests are reported with their index entry.
                    BlobRef::Missing { key, .. }
                        if !model.key(m).starts_with("v3/manifests/spec/") =>
                    {
                        problem(key, format!("missing: referenced by {}", model.key(m)));
                    }
                    BlobRef::Missing { .. } => {}
                }
            }
        }
        if deep {
            out.extend(deep_problems(store, model, lm).await?);
        }
    }
    Ok(out)
}

/// Read what the checksums cover: v3 blobs (their key is their sha256), v2 tarballs (against the
/// spec file's `binary_cache_checksum`).
async fn deep_problems(
    store: &Store,
    model: &CacheModel,
    lm: &crate::model::LayoutModel,
) -> anyhow::Result<Vec<Problem>> {
    let layout = lm.layout.to_string();
    // (key to hash, expected sha256) pairs.
    let mut checks: Vec<(String, Option<String>)> = Vec::new();
    match lm.layout {
        Layout::V3 => {
            for i in lm
                .manifests
                .by_manifest
                .values()
                .flatten()
                .filter_map(BlobRef::listed)
            {
                let key = model.key(i);
                checks.push((key.to_string(), key.rsplit('/').next().map(str::to_string)));
            }
            checks.sort();
            checks.dedup();
        }
        Layout::V2 => {
            for rec in lm.specs.values() {
                let keys: Vec<&str> = rec.objects.iter().map(|&i| model.key(i)).collect();
                let (Some(spec), Some(tarball)) = (
                    keys.iter()
                        .find(|k| matches!(v2::classify(k), Some(v2::Object::SpecFile { .. }))),
                    keys.iter()
                        .find(|k| matches!(v2::classify(k), Some(v2::Object::Tarball { .. }))),
                ) else {
                    continue;
                };
                let bytes = store
                    .get(spec)
                    .await
                    .with_context(|| format!("reading {}", store.location(spec)))?
                    .bytes;
                let sum = SpecFile::parse(&store.location(spec), &bytes)?.tarball_sha256;
                checks.push((tarball.to_string(), sum));
            }
        }
    }
    let found: Vec<Option<Problem>> = futures::stream::iter(checks)
        .map(|(key, want)| {
            let layout = layout.clone();
            async move {
                let bytes = store
                    .get(&key)
                    .await
                    .with_context(|| format!("reading {}", store.location(&key)))?
                    .bytes;
                let have = hex::encode(Sha256::digest(&bytes));
                Ok::<_, anyhow::Error>(match want {
                    Some(w) if w == have => None,
                    Some(w) => Some(Problem {
                        layout,
                        key,
                        problem: format!("sha256 is {have}, expected {w}"),
                    }),
                    None => Some(Problem {
                        layout,
                        key,
                        problem: "no checksum recorded for it".into(),
                    }),
                })
            }
        })
        .buffer_unordered(DEEP_READS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

pub async fn run(store: &Store, deep: bool, printer: &Printer) -> anyhow::Result<u8> {
    let model = CacheModel::load(store, Reads::All, |_| {}).await?;
    let mut found = problems(store, &model, deep).await?;
    found.sort_by(|a, b| (&a.layout, &a.key).cmp(&(&b.layout, &b.key)));
    if printer.is_json() {
        printer.json(&found)?;
    } else if found.is_empty() {
        let specs: usize = model.layouts.iter().map(|l| l.specs.len()).sum();
        printer.data(&format!(
            "{}: consistent ({specs} specs checked{})\n",
            store.url(),
            if deep { ", checksums included" } else { "" }
        ))?;
    } else {
        let rows: Vec<Vec<String>> = found
            .iter()
            .map(|p| vec![p.layout.clone(), p.key.clone(), p.problem.clone()])
            .collect();
        printer.data(&table(&["LAYOUT", "KEY", "PROBLEM"], &rows, &[]))?;
        printer.log(format!("{} problem(s) in {}", found.len(), store.url()));
    }
    Ok(if found.is_empty() {
        exit::SUCCESS
    } else {
        exit::FOUND
    })
}
