//! `singularitah sif sync`: bring a shared-filesystem directory up to date with the SIFs of a
//! bucket, copying only those whose checksums differ from what the local SIF records, each
//! through a temporary file renamed into place so a running job never reads half a SIF, readable
//! by every cluster user. With `--delete-removed` it removes only what it put there itself from
//! that same source (several buckets can share a directory), and never on a listing of no SIF
//! at all (an empty or unmounted source).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use model::sif::format;
use serde::Serialize;
use stores::sif_published;
use stores::{S3Options, Store, StoreUrl};

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

impl SyncReport {
    /// What was copied and removed, a line each, then the counts.
    pub fn text(&self, dry_run: bool) -> String {
        let verb = if dry_run { "would " } else { "" };
        let mut text = String::new();
        for k in &self.copied {
            text.push_str(&format!("{verb}copy {k}\n"));
        }
        for k in &self.removed {
            text.push_str(&format!("{verb}remove {k}\n"));
        }
        let (copied, removed) = match dry_run {
            true => ("to copy", "to remove"),
            false => ("copied", "removed"),
        };
        text.push_str(&format!(
            "{} {copied}, {} up to date, {} {removed}\n",
            self.copied.len(),
            self.up_to_date.len(),
            self.removed.len()
        ));
        text
    }
}

/// Bring `opts.to` up to date with the SIFs of `store` (`opts.from`).
pub async fn sync(
    store: &Store,
    opts: &SyncOptions,
    printer: &terminal::printer::Printer,
) -> anyhow::Result<SyncReport> {
    if !opts.to.is_dir() {
        bail!("{}: not a directory", opts.to.display());
    }
    let objects = sif_published::list(store, "")
        .await
        .with_context(|| format!("listing {}", store.url()))?;
    if objects.is_empty() && opts.delete_removed {
        bail!(
            "{} lists no SIF at all: refusing to remove anything (an empty or unmounted source looks like this)",
            store.url()
        );
    }
    let record_path = record_path(&opts.to, &store.url());
    let mut record = Record::read(&record_path)?;
    let mut report = SyncReport::default();
    for (o, _) in &objects {
        let local = opts.to.join(&o.key);
        let (_, meta) = store
            .head(&o.key)
            .await
            .with_context(|| format!("reading the metadata of {}", store.location(&o.key)))?;
        let mut want = sif_published::checksums_of_metadata(&meta);
        if want.is_empty() && store.is_local() {
            // A directory source: its SIF is at hand and says what it records.
            if let Ok(labels) = format::read_labels(Path::new(&store.location(&o.key))) {
                want = sif_published::checksums(&labels);
            }
        }
        if is_current(&local, &want, o.size) {
            report.up_to_date.push(o.key.clone());
            record.files.insert(o.key.clone());
            continue;
        }
        if !opts.dry_run {
            let pb = printer.progress_bytes(o.size, &format!("copying {}", o.key));
            fetch(store, &o.key, &local, &want, &pb).await?;
            pb.finish_and_clear();
            record.files.insert(o.key.clone());
        }
        report.copied.push(o.key.clone());
    }
    if opts.delete_removed {
        let present: BTreeSet<&str> = objects.iter().map(|(o, _)| o.key.as_str()).collect();
        report.removed = remove_gone(&mut record, &present, opts)?;
    }
    if !opts.dry_run {
        record.source = store.url();
        record.write(&record_path)?;
    }
    Ok(report)
}

/// Remove the files `record` holds that the source no longer has (`present`), and forget them;
/// their keys.
fn remove_gone(
    record: &mut Record,
    present: &BTreeSet<&str>,
    opts: &SyncOptions,
) -> anyhow::Result<Vec<String>> {
    let gone: Vec<String> = record
        .files
        .iter()
        .filter(|k| !present.contains(k.as_str()))
        .cloned()
        .collect();
    for key in &gone {
        let path = opts.to.join(key);
        if !opts.dry_run {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
            }
            record.files.remove(key);
        }
    }
    Ok(gone)
}

/// What one source's syncs put in the directory: only these are ever removed by them.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct Record {
    source: String,
    files: BTreeSet<String>,
}

/// `<dir>/.spacktainerizah/sync/<hash of the source URL>.json`: in the directory store's own
/// folder, never listed as a SIF.
fn record_path(dir: &Path, source: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let id = hex::encode(Sha256::digest(source.as_bytes()));
    dir.join(stores::RESERVED_DIR)
        .join("sync")
        .join(format!("{}.json", &id[..16]))
}

impl Record {
    fn read(path: &Path) -> anyhow::Result<Record> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("{}: not a sync record", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Written aside and renamed, like the SIFs themselves.
    fn write(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().expect("a record has a folder");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("a temporary file in {}", dir.display()))?;
        std::fs::write(tmp.path(), serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.path().display()))?;
        tmp.persist(path)
            .with_context(|| format!("renaming into {}", path.display()))?;
        Ok(())
    }
}

/// The local copy records the object's checksums; an object published without checksums is
/// compared by size, the only thing left to compare.
fn is_current(local: &Path, want: &std::collections::BTreeMap<String, String>, size: u64) -> bool {
    if want.is_empty() {
        return std::fs::metadata(local).is_ok_and(|m| m.len() == size);
    }
    match format::read_labels(local) {
        Ok(labels) => sif_published::same_checksums(want, &sif_published::checksums(&labels)),
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
    progress: &indicatif::ProgressBar,
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
        .get_to_file(key, tmp.path(), &|n| progress.inc(n))
        .await
        .with_context(|| format!("copying {} to {}", store.location(key), local.display()))?;
    if !want.is_empty() {
        let got = format::read_labels(tmp.path())
            .map(|l| sif_published::checksums(&l))
            .with_context(|| format!("checking the copy of {}", store.location(key)))?;
        if !sif_published::same_checksums(want, &got) {
            bail!(
                "{}: the SIF records other checksums than its object metadata; not installed",
                store.location(key)
            );
        }
    }
    // Cluster users run it: readable by all, as a copy made by `cp` would be (the temporary
    // file is created 0600).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("making {} readable", tmp.path().display()))?;
    tmp.persist(local)
        .with_context(|| format!("renaming into {}", local.display()))?;
    Ok(())
}
