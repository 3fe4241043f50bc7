//! `singularitah sif sync`: bring a shared-filesystem directory up to date with the SIFs of a
//! bucket, copying only those whose checksums differ from what the local SIF records, each
//! through a temporary file renamed into place so a running job never reads half a SIF.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use common::sif;
use common::sif_object;
use common::store::{FileStore, S3Options, Store, StoreUrl};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub from: StoreUrl,
    pub to: PathBuf,
    pub s3: S3Options,
    /// Remove local SIFs the bucket no longer has (only files named like SIFs).
    pub delete_removed: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub copied: Vec<String>,
    pub up_to_date: Vec<String>,
    pub removed: Vec<String>,
}

pub async fn sync(opts: &SyncOptions) -> anyhow::Result<SyncReport> {
    if !opts.to.is_dir() {
        bail!("{}: not a directory", opts.to.display());
    }
    let store = Store::open(&opts.from, &opts.s3).await?;
    let objects = sif_object::list(&store, "")
        .await
        .with_context(|| format!("listing {}", store.url()))?;
    let mut report = SyncReport::default();
    for (o, _) in &objects {
        let local = opts.to.join(&o.key);
        let (_, meta) = store
            .head(&o.key)
            .await
            .with_context(|| format!("reading the metadata of {}", store.location(&o.key)))?;
        let mut want = sif_object::checksums_of_metadata(&meta);
        if want.is_empty() && store.is_local() {
            // A directory source: its SIF is at hand and says what it records.
            if let Ok(labels) = sif::read_labels(Path::new(&store.location(&o.key))) {
                want = sif_object::checksums(&labels);
            }
        }
        if is_current(&local, &want, o.size) {
            report.up_to_date.push(o.key.clone());
            continue;
        }
        if !opts.dry_run {
            fetch(&store, &o.key, &local, &want).await?;
        }
        report.copied.push(o.key.clone());
    }
    if opts.delete_removed {
        let present: BTreeSet<&str> = objects.iter().map(|(o, _)| o.key.as_str()).collect();
        let local = Store::File(FileStore::new(opts.to.clone()));
        for (o, _) in sif_object::list(&local, "")
            .await
            .with_context(|| format!("listing {}", opts.to.display()))?
        {
            if !present.contains(o.key.as_str()) {
                if !opts.dry_run {
                    let path = opts.to.join(&o.key);
                    std::fs::remove_file(&path)
                        .with_context(|| format!("removing {}", path.display()))?;
                }
                report.removed.push(o.key);
            }
        }
    }
    Ok(report)
}

/// The local copy records the object's checksums; an object published without checksums is
/// compared by size, the only thing left to compare.
fn is_current(local: &Path, want: &std::collections::BTreeMap<String, String>, size: u64) -> bool {
    if want.is_empty() {
        return std::fs::metadata(local).is_ok_and(|m| m.len() == size);
    }
    match sif::read_labels(local) {
        Ok(labels) => sif_object::same_checksums(want, &sif_object::checksums(&labels)),
        // Missing, or not a SIF (a broken copy): fetch it again.
        Err(_) => false,
    }
}

/// Download `key` beside `local`, check it records `want`, and rename it into place.
async fn fetch(
    store: &Store,
    key: &str,
    local: &Path,
    want: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let dir = local.parent().expect("a path under the target directory");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = local.file_name().and_then(|n| n.to_str()).unwrap_or("sif");
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("a temporary file in {}", dir.display()))?;
    store
        .get_to_file(key, tmp.path())
        .await
        .with_context(|| format!("copying {} to {}", store.location(key), local.display()))?;
    if !want.is_empty() {
        let got = sif::read_labels(tmp.path())
            .map(|l| sif_object::checksums(&l))
            .with_context(|| format!("checking the copy of {}", store.location(key)))?;
        if !sif_object::same_checksums(want, &got) {
            bail!(
                "{}: the SIF records other checksums than its object metadata; not installed",
                store.location(key)
            );
        }
    }
    tmp.persist(local)
        .with_context(|| format!("renaming into {}", local.display()))?;
    Ok(())
}
