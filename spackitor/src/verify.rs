//! `spackitor verify`: is the cache consistent? The v2 hash file matches the index, every index
//! entry has all its objects, v3 blobs have the sizes their manifests give; `--deep` also reads
//! every tarball and blob and checks its checksum — streamed, hashed on a pool of threads, with
//! memory bounded whatever the tarballs' sizes; `--trust` also checks who signed each spec
//! (`signatures`).

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use model::cleanup::{BlobRef, CacheView, LayoutView};
use model::spack::buildcache::index::hash_file_names;
use model::spack::buildcache::{Layout, SpecFile, v2};
use model::spack::clearsign;
use model::spack::signature::TrustedKeys;
use serde::Serialize;
use sha2::{Digest, Sha256};
use stores::Store;
use terminal::cli::exit;
use terminal::printer::{Printer, table};

use crate::loaded::LoadedCache;
use crate::manifests::Reads;
use crate::signatures;

/// Objects read at once with `--deep`.
const DEEP_READS_IN_FLIGHT: usize = 16;
/// Bytes read from an object at a time.
const CHUNK: usize = 1 << 20;
/// Chunks of one object waiting for its hasher: with [`DEEP_READS_IN_FLIGHT`] and [`CHUNK`],
/// at most about 16 × (2 + 2) MiB in memory, whatever the objects' sizes.
const CHUNKS_QUEUED: usize = 2;

/// The sha256 of the object at `key`, read in chunks hashed on rayon's pool (the executor's
/// threads only move bytes).
async fn sha256_of(
    store: &Store,
    key: &str,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<String> {
    use tokio::io::AsyncReadExt;
    let (_, mut reader) = store
        .reader(key)
        .await
        .with_context(|| format!("reading {}", store.location(key)))?;
    let (chunks, mut queue) = tokio::sync::mpsc::channel::<Vec<u8>>(CHUNKS_QUEUED);
    let (done, digest) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let mut hasher = Sha256::new();
        while let Some(chunk) = queue.blocking_recv() {
            hasher.update(&chunk);
        }
        let _ = done.send(hex::encode(hasher.finalize()));
    });
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        // Whole chunks: a network body arrives in pieces of a few kilobytes.
        while filled < CHUNK {
            let n = reader
                .read(&mut chunk[filled..])
                .await
                .with_context(|| format!("reading {}", store.location(key)))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        chunk.truncate(filled);
        pb.inc(filled as u64);
        if chunks.send(chunk).await.is_err() {
            anyhow::bail!("hashing {} stopped", store.location(key));
        }
        if filled < CHUNK {
            break;
        }
    }
    drop(chunks);
    Ok(digest.await?)
}

/// v2: whether `build_cache/index.json.hash` holds the sha256 of the index read (Spack's rule);
/// `None` when there is no hash file.
async fn v2_hash_file_matches(store: &Store, lm: &LayoutView) -> anyhow::Result<Option<bool>> {
    match store.get(v2::INDEX_HASH_KEY).await {
        Ok(h) => Ok(Some(hash_file_names(&h.bytes, &lm.db.sha256))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", store.location(v2::INDEX_HASH_KEY))),
    }
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub layout: String,
    pub key: String,
    pub problem: String,
}

pub async fn problems(
    store: &Store,
    view: &CacheView,
    deep: bool,
    keys: Option<&TrustedKeys>,
    printer: &Printer,
) -> anyhow::Result<Vec<Problem>> {
    let mut out = Vec::new();
    for lm in &view.layouts {
        let layout = lm.layout.to_string();
        let mut problem = |key: &str, p: String| {
            out.push(Problem {
                layout: layout.clone(),
                key: key.to_string(),
                problem: p,
            })
        };
        if lm.layout == Layout::V2 {
            match v2_hash_file_matches(store, lm).await? {
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
        for (hash, rec) in lm.specs() {
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
                        let o = view.listing.object(*at);
                        if o.size != *length {
                            problem(
                                &o.key,
                                format!("{} bytes, but {} says {length}", o.size, view.key(m)),
                            );
                        }
                    }
                    // Missing blobs of spec manifests are reported with their index entry.
                    BlobRef::Missing { key, .. }
                        if !view.key(m).starts_with("v3/manifests/spec/") =>
                    {
                        problem(key, format!("missing: referenced by {}", view.key(m)));
                    }
                    BlobRef::Missing { .. } => {}
                }
            }
        }
        if lm.layout == Layout::V2 {
            out.extend(v2_unsigned_copies(store, view, lm).await?);
        }
        if deep {
            out.extend(deep_problems(store, view, lm, keys, printer).await?);
        }
    }
    Ok(out)
}

/// The `binary_cache_checksum` of the v2 spec document `spec`; with `keys`, the one of the text
/// a trusted key signed when it is signed so (an untrusted one is reported by `--trust`).
async fn tarball_sha256(
    store: &Store,
    spec: &str,
    keys: Option<&TrustedKeys>,
) -> anyhow::Result<Option<String>> {
    let what = store.location(spec);
    let bytes = store
        .get(spec)
        .await
        .with_context(|| format!("reading {what}"))?
        .bytes;
    let signed = keys.and_then(|k| k.check_text(&bytes).1);
    let text = signed.as_ref().map_or(&bytes[..], |t| t.as_bytes());
    Ok(SpecFile::parse(&what, text)?.tarball_sha256)
}

/// v2 specs with both a `.spec.json.sig` and a `.spec.json` whose content is not the signed
/// text: Spack reads the `.sig` first (`URLBuildcacheEntryV2`), other readers may take the
/// unsigned copy, an attacker's easiest place for another checksum.
async fn v2_unsigned_copies(
    store: &Store,
    view: &CacheView,
    lm: &LayoutView,
) -> anyhow::Result<Vec<Problem>> {
    let mut out = Vec::new();
    for (_, rec) in lm.specs() {
        let spec_file = |signed: bool| {
            rec.objects.iter().map(|&i| view.key(i)).find(|k| {
                matches!(v2::classify(k), Some(v2::Object::SpecFile { signed: s, .. }) if s == signed)
            })
        };
        let (Some(sig), Some(plain)) = (spec_file(true), spec_file(false)) else {
            continue;
        };
        let [sig_doc, plain_doc] = [sig, plain].map(|k| async move {
            let bytes = store
                .get(k)
                .await
                .with_context(|| format!("reading {}", store.location(k)))?
                .bytes;
            // As JSON: the same document written twice may differ in line ends.
            let body = clearsign::strip(&bytes).unwrap_or_default();
            Ok::<_, anyhow::Error>(serde_json::from_slice::<serde_json::Value>(&body).ok())
        });
        let (signed, unsigned) = (sig_doc.await?, plain_doc.await?);
        if signed.is_none() || signed != unsigned {
            out.push(Problem {
                layout: lm.layout.to_string(),
                key: plain.to_string(),
                problem: format!("differs from the signed text of {sig} (which Spack reads)"),
            });
        }
    }
    Ok(out)
}

/// Read what the checksums cover: v3 blobs (their key is their sha256), v2 tarballs (against the
/// `binary_cache_checksum` of the spec document Spack reads, [`tarball_sha256`]).
async fn deep_problems(
    store: &Store,
    view: &CacheView,
    lm: &LayoutView,
    keys: Option<&TrustedKeys>,
    printer: &Printer,
) -> anyhow::Result<Vec<Problem>> {
    let layout = lm.layout.to_string();
    // (listing position of the object to hash, expected sha256) pairs.
    let mut checks: Vec<(u32, Option<String>)> = Vec::new();
    match lm.layout {
        Layout::V3 => {
            for i in lm
                .manifests
                .by_manifest
                .values()
                .flatten()
                .filter_map(BlobRef::listed)
            {
                checks.push((i, view.key(i).rsplit('/').next().map(str::to_string)));
            }
            checks.sort();
            checks.dedup();
        }
        Layout::V2 => {
            for (hash, rec) in lm.specs() {
                let tarball = rec.objects.iter().copied().find(|&i| {
                    matches!(v2::classify(view.key(i)), Some(v2::Object::Tarball { .. }))
                });
                // The document Spack reads (`.sig` first), not merely the first spec file.
                let (Some(spec), Some(tarball)) =
                    (signatures::spec_document(view, lm, hash), tarball)
                else {
                    continue;
                };
                checks.push((tarball, tarball_sha256(store, spec, keys).await?));
            }
        }
    }
    let total: u64 = checks
        .iter()
        .map(|&(i, _)| view.listing.object(i).size)
        .sum();
    let pb = printer.progress_bytes(total, "verifying checksums");
    let found: Vec<Option<Problem>> = futures::stream::iter(checks)
        .map(|(i, want)| {
            let (layout, pb) = (layout.clone(), pb.clone());
            let key = view.key(i).to_string();
            async move {
                let have = sha256_of(store, &key, &pb).await?;
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
    pb.finish_and_clear();
    Ok(found.into_iter().flatten().collect())
}

/// `keys`: also check who signed each spec (`--trust`); the JSON report is then
/// `{"problems": […], "signatures": […]}` instead of the list of problems.
pub async fn run(
    store: &Store,
    deep: bool,
    keys: Option<&TrustedKeys>,
    printer: &Printer,
) -> anyhow::Result<u8> {
    let loaded = LoadedCache::load_shown(store, Reads::All, printer).await?;
    let view = &loaded.view;
    let mut found = problems(store, view, deep, keys, printer).await?;
    found.sort_by(|a, b| (&a.layout, &a.key).cmp(&(&b.layout, &b.key)));
    let signed = match keys {
        Some(keys) => Some(signatures::check(store, view, keys, printer).await?),
        None => None,
    };
    if printer.is_json() {
        match &signed {
            Some(s) => printer.json(&serde_json::json!({"problems": found, "signatures": s}))?,
            None => printer.json(&found)?,
        }
    } else {
        if let Some(s) = &signed {
            signatures::print(s, printer)?;
        }
        print_problems(store, view, deep, &found, printer)?;
    }
    let untrusted = signed.iter().flatten().any(|s| !s.verdict.is_trusted());
    Ok(if found.is_empty() && !untrusted {
        exit::SUCCESS
    } else {
        exit::FOUND
    })
}

fn print_problems(
    store: &Store,
    view: &CacheView,
    deep: bool,
    found: &[Problem],
    printer: &Printer,
) -> anyhow::Result<()> {
    if found.is_empty() {
        let specs: usize = view.layouts.iter().map(|l| l.cached()).sum();
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
    Ok(())
}
