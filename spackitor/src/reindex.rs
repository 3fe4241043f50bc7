//! `spackitor reindex`: rebuild the index from the spec files (v2) or spec manifests (v3) that
//! are actually present, as `spack buildcache update-index` does, without a Spack installation.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use model::spack::buildcache::{Layout, SpecFile, v2, v3};
use serde::Serialize;
use serde_json::{Value, json};
use stores::{Condition, ObjectInfo, Store};
use terminal::cli::exit;
use terminal::printer::Printer;

/// Spec files or manifests read at once.
const READS_IN_FLIGHT: usize = 32;
/// The database version written when no index says otherwise: what the layout's Spack reads.
/// Layout v2 is Spack 0.22/0.23's, which refuse anything above 7; v3 is 1.0 to 1.2's (8).
fn default_db_version(layout: Layout) -> &'static str {
    match layout {
        Layout::V2 => "7",
        Layout::V3 => "8",
    }
}

#[derive(Debug, Serialize)]
pub struct Rebuilt {
    pub layout: String,
    /// Specs with all their objects, listed as in the build cache.
    pub specs: usize,
    /// Records in all (dependencies without objects of their own, externals).
    pub records: usize,
    /// Specs the previous index listed (none when there was no index).
    pub previous: Option<usize>,
    pub written: bool,
}

/// A spec to index: where its spec data is, and whether its tarball is there.
struct Source {
    key: String,
    complete: bool,
}

pub async fn run(store: &Store, dry_run: bool, printer: &Printer) -> anyhow::Result<u8> {
    let objects: Vec<ObjectInfo> = store
        .list("")
        .try_collect()
        .await
        .with_context(|| format!("listing {}", store.url()))?;
    let listed: HashMap<&str, &ObjectInfo> = objects.iter().map(|o| (o.key.as_str(), o)).collect();
    let mut layouts = Vec::new();
    if objects.iter().any(|o| o.key.starts_with(v2::PREFIX)) {
        layouts.push(Layout::V2);
    }
    if objects.iter().any(|o| o.key.starts_with("v3/")) {
        layouts.push(Layout::V3);
    }
    if layouts.is_empty() {
        bail!(
            "no build cache at {}: nothing under build_cache/ or v3/",
            store.url()
        );
    }
    let mut out = Vec::new();
    for layout in layouts {
        let sources = sources(layout, &objects);
        let specs = read_specs(store, layout, &sources, &listed).await?;
        let (db_version, previous, guard) = previous_index(store, layout, &listed).await?;
        let bytes = database(&specs, &db_version);
        let indexed = specs.iter().filter(|(_, complete)| *complete).count();
        if !dry_run {
            write(store, layout, bytes, &db_version, guard, &listed).await?;
        }
        out.push(Rebuilt {
            layout: layout.to_string(),
            specs: indexed,
            records: count_records(&specs),
            previous,
            written: !dry_run,
        });
    }
    if printer.is_json() {
        printer.json(&out)?;
    } else {
        let mut text = String::new();
        for r in &out {
            text.push_str(&format!(
                "{}: {} {} spec(s) ({} records){}\n",
                r.layout,
                if dry_run { "would index" } else { "indexed" },
                r.specs,
                r.records,
                r.previous
                    .map(|p| format!("; the previous index listed {p}"))
                    .unwrap_or_default()
            ));
        }
        printer.data(&text)?;
    }
    Ok(exit::SUCCESS)
}

fn sources(layout: Layout, objects: &[ObjectInfo]) -> Vec<Source> {
    match layout {
        Layout::V2 => {
            let tarballs: HashSet<String> = objects
                .iter()
                .filter_map(|o| match v2::classify(&o.key) {
                    Some(v2::Object::Tarball { hash }) => Some(hash),
                    _ => None,
                })
                .collect();
            // Spack reads the signed spec file first when both exist.
            let mut by_hash: BTreeMap<String, (bool, String)> = BTreeMap::new();
            for o in objects {
                if let Some(v2::Object::SpecFile { hash, signed }) = v2::classify(&o.key) {
                    let e = by_hash.entry(hash).or_insert((signed, o.key.clone()));
                    if signed && !e.0 {
                        *e = (signed, o.key.clone());
                    }
                }
            }
            by_hash
                .into_iter()
                .map(|(hash, (_, key))| Source {
                    complete: tarballs.contains(&hash),
                    key,
                })
                .collect()
        }
        Layout::V3 => objects
            .iter()
            .filter(|o| matches!(v3::classify(&o.key), Some(v3::Object::SpecManifest { .. })))
            // Whether its blobs are there is known once the manifest is read.
            .map(|o| Source {
                key: o.key.clone(),
                complete: true,
            })
            .collect(),
    }
}

/// Read every spec (v3: manifest, then spec blob): its nodes as written, and whether all its
/// objects are there.
async fn read_specs(
    store: &Store,
    layout: Layout,
    sources: &[Source],
    listed: &HashMap<&str, &ObjectInfo>,
) -> anyhow::Result<Vec<(SpecFile, bool)>> {
    futures::stream::iter(sources)
        .map(|s| async move {
            let read = |key: String| async move {
                store
                    .get(&key)
                    .await
                    .with_context(|| format!("reading {}", store.location(&key)))
                    .map(|o| o.bytes)
            };
            match layout {
                Layout::V2 => {
                    let bytes = read(s.key.clone()).await?;
                    Ok::<_, anyhow::Error>((
                        SpecFile::parse(&store.location(&s.key), &bytes)?,
                        s.complete,
                    ))
                }
                Layout::V3 => {
                    let m =
                        v3::Manifest::parse(&store.location(&s.key), &read(s.key.clone()).await?)?;
                    let spec = m.find(v3::SPEC_MEDIA_PREFIX).with_context(|| {
                        format!("{} lists no spec blob", store.location(&s.key))
                    })?;
                    let tarball_there = m
                        .find(v3::TARBALL_MEDIA_PREFIX)
                        .is_some_and(|t| listed.contains_key(t.key().as_str()));
                    let bytes = read(spec.key()).await?;
                    Ok((
                        SpecFile::parse(&store.location(&spec.key()), &bytes)?,
                        tarball_there,
                    ))
                }
            }
        })
        .buffer_unordered(READS_IN_FLIGHT)
        .try_collect()
        .await
}

fn count_records(specs: &[(SpecFile, bool)]) -> usize {
    specs
        .iter()
        .flat_map(|(s, _)| s.nodes.iter().map(|n| n.hash.clone()))
        .collect::<HashSet<_>>()
        .len()
}

/// The database: one record per node of every spec file, `in_buildcache` for specs whose objects
/// are all there, reference counts from the dependency edges. Compact JSON, as Spack writes it.
fn database(specs: &[(SpecFile, bool)], version: &str) -> Vec<u8> {
    let mut records: BTreeMap<String, (Value, bool)> = BTreeMap::new();
    let mut refs: HashMap<String, i64> = HashMap::new();
    for (spec, complete) in specs {
        for (i, (node, raw)) in spec.nodes.iter().zip(&spec.raw_nodes).enumerate() {
            let cached = i == 0 && *complete && !node.traits.external;
            let e = records
                .entry(node.hash.to_string())
                .or_insert_with(|| (raw.clone(), false));
            e.1 |= cached;
        }
    }
    for (raw, _) in records.values() {
        for d in raw["dependencies"].as_array().into_iter().flatten() {
            if let Some(h) = d["hash"].as_str() {
                *refs.entry(h.to_string()).or_default() += 1;
            }
        }
    }
    let installs: serde_json::Map<String, Value> = records
        .into_iter()
        .map(|(h, (spec, in_buildcache))| {
            let ref_count = refs.get(&h).copied().unwrap_or(0);
            (
                h,
                json!({"spec": spec, "ref_count": ref_count, "in_buildcache": in_buildcache}),
            )
        })
        .collect();
    serde_json::to_vec(&json!({"database": {"version": version, "installs": installs}}))
        .expect("JSON of plain values")
}

/// The version of the current index (kept), how many specs it listed, and the write guard.
async fn previous_index(
    store: &Store,
    layout: Layout,
    listed: &HashMap<&str, &ObjectInfo>,
) -> anyhow::Result<(String, Option<usize>, Condition)> {
    let guard_key = match layout {
        Layout::V2 => v2::INDEX_KEY,
        Layout::V3 => v3::INDEX_MANIFEST_KEY,
    };
    if !listed.contains_key(guard_key) {
        return Ok((
            default_db_version(layout).into(),
            None,
            Condition::IfNoneMatch,
        ));
    }
    match stores::cache::load_index(store, layout).await {
        Ok(idx) => {
            let guard = idx
                .guard_etag
                .clone()
                .map(Condition::IfMatch)
                .unwrap_or_default();
            Ok((idx.db.version.clone(), Some(idx.db.cached().count()), guard))
        }
        // A broken index is what reindex repairs: replace it, but only as it is now.
        Err(_) => {
            // A get, not a head: a directory's head leaves the etag out.
            let etag = store.get(guard_key).await?.info.etag;
            Ok((
                default_db_version(layout).into(),
                None,
                etag.map(Condition::IfMatch).unwrap_or_default(),
            ))
        }
    }
}

async fn write(
    store: &Store,
    layout: Layout,
    bytes: Vec<u8>,
    db_version: &str,
    guard: Condition,
    listed: &HashMap<&str, &ObjectInfo>,
) -> anyhow::Result<()> {
    stores::cache::write_index(store, layout, bytes, db_version, &guard)
        .await
        .with_context(|| format!("writing the {layout} index of {}", store.url()))?;
    if layout == Layout::V3 && !listed.contains_key(v3::LAYOUT_KEY) {
        store
            .put(
                v3::LAYOUT_KEY,
                v3::LAYOUT_JSON.as_bytes().to_vec(),
                &Default::default(),
                &Condition::IfNoneMatch,
            )
            .await?;
    }
    Ok(())
}
