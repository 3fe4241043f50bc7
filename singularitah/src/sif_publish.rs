//! `singularitah sif publish`: upload a SIF with its checksums and identity (container, branch,
//! architecture) as object metadata (multipart when large), skip when the object already
//! carries them, then retire the same lineage's older SIFs that are more than a week old (the
//! newest always stays). A lineage is what the SIFs record, never what their names look like.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use model::sif::format;
use serde::Serialize;
use stores::sif_published::{self, SifIdentity, SifName};
use stores::{S3Options, Store, StoreUrl};

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub file: PathBuf,
    /// `s3://bucket/prefix/NAME__TAG.sif`, a path to a `.sif` in a directory, or either ending
    /// in `/` to keep the file's name.
    pub to: String,
    pub s3: S3Options,
    pub part_size: u64,
    /// Older SIFs of the same container, branch and architecture go after this many days.
    pub keep_days: u64,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    pub location: String,
    pub uploaded: bool,
    pub checksums: BTreeMap<String, String>,
    /// Older SIFs removed (or that would be, in a dry run).
    pub removed: Vec<String>,
}

impl PublishReport {
    /// What was uploaded and removed, a line each.
    pub fn text(&self, opts: &PublishOptions) -> String {
        let verb = match (self.uploaded, opts.dry_run) {
            (true, false) => "uploaded",
            (true, true) => "would upload",
            (false, _) => "up to date:",
        };
        let mut text = format!("{verb} {}\n", self.location);
        let verb = if opts.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for k in &self.removed {
            text.push_str(&format!(
                "{verb} {k} (older than {} days)\n",
                opts.keep_days
            ));
        }
        text
    }
}

/// Split `--to` into the store holding the object and its key.
pub fn target(to: &str, file: &std::path::Path) -> anyhow::Result<(StoreUrl, String)> {
    let (dir, name) = to.rsplit_once('/').with_context(|| {
        format!("--to {to}: expected s3://bucket/…/NAME__TAG.sif or DIR/NAME__TAG.sif")
    })?;
    let name = if name.is_empty() {
        file.file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: no file name", file.display()))?
    } else {
        name
    };
    if SifName::parse(name).is_none() {
        bail!("--to {to}: the object name must look like NAME__TAG.sif, not `{name}`");
    }
    if dir.ends_with(':') || dir.ends_with(":/") {
        bail!("--to {to}: no bucket or directory before the object name");
    }
    let url: StoreUrl = if dir.is_empty() { "/" } else { dir }.parse()?;
    Ok((url, name.to_string()))
}

/// Publish `opts.file` as `key` of `store` (both from `--to`, [`target`]).
pub async fn publish(
    store: &Store,
    key: &str,
    opts: &PublishOptions,
    printer: &terminal::printer::Printer,
) -> anyhow::Result<PublishReport> {
    // Everything checked before anything is written: the file is a SIF and says what it holds.
    let labels = format::read_labels(&opts.file)?;
    let checksums = sif_published::object_metadata(&labels);
    let identity = SifIdentity::from_labels(&labels);
    let location = store.location(key);
    let uploaded = match store.head(key).await {
        Ok((_, meta)) if sif_published::same_checksums(&checksums, &meta) => false,
        Ok(_) => true,
        Err(e) if e.is_not_found() => true,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("looking up {location}"))),
    };
    if uploaded && !opts.dry_run {
        let size = std::fs::metadata(&opts.file).map(|m| m.len()).unwrap_or(0);
        let pb = printer.progress_bytes(size, &format!("uploading to {location}"));
        store
            .put_file(key, &opts.file, &checksums, opts.part_size, &|n| pb.inc(n))
            .await
            .with_context(|| format!("uploading {} to {location}", opts.file.display()))?;
        pb.finish_and_clear();
    }
    let removed = match &identity {
        Some(id) => retire_older(store, key, id, opts).await?,
        // What it replaces is unknown: nothing is retired on a guess from file names.
        None => Vec::new(),
    };
    Ok(PublishReport {
        location,
        uploaded,
        checksums,
        removed,
    })
}

/// Remove SIFs of the lineage `id` older than `keep_days`, never `key` itself nor the newest of
/// the lineage. Candidates are the SIFs named after the container in `key`'s folder; each one's
/// recorded identity decides.
async fn retire_older(
    store: &Store,
    key: &str,
    id: &SifIdentity,
    opts: &PublishOptions,
) -> anyhow::Result<Vec<String>> {
    let folder = key
        .rsplit_once('/')
        .map(|(d, _)| format!("{d}/"))
        .unwrap_or_default();
    let mut siblings = Vec::new();
    for (o, _) in sif_published::list(store, &format!("{folder}{}__", id.container))
        .await
        .with_context(|| format!("listing the SIFs of {} in {}", id.container, store.url()))?
    {
        if o.key[folder.len()..].contains('/') {
            continue;
        }
        let theirs = sif_published::identity(store, &o.key)
            .await
            .with_context(|| format!("reading what {} is", store.location(&o.key)))?;
        if theirs.as_ref() == Some(id) {
            siblings.push(o);
        }
    }
    let newest = siblings
        .iter()
        .max_by_key(|o| o.last_modified)
        .map(|o| o.key.clone());
    let cutoff = SystemTime::now() - Duration::from_secs(opts.keep_days * 86_400);
    let old: Vec<String> = siblings
        .into_iter()
        .filter(|o| o.key != key && Some(&o.key) != newest.as_ref() && o.last_modified < cutoff)
        .map(|o| o.key)
        .collect();
    if !old.is_empty() && !opts.dry_run {
        store
            .delete_all(old.clone())
            .await
            .context("removing older SIFs")?;
    }
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_in_buckets_and_directories() {
        let f = std::path::Path::new("/tmp/out/a__1.sif");
        let (u, k) = target("s3://bucket/containers/a__1.sif", f).unwrap();
        assert_eq!(
            (u.to_string().as_str(), k.as_str()),
            ("s3://bucket/containers", "a__1.sif")
        );
        let (u, k) = target("s3://bucket/a__2.sif", f).unwrap();
        assert_eq!(
            (u.to_string().as_str(), k.as_str()),
            ("s3://bucket", "a__2.sif")
        );
        let (u, k) = target("/srv/sifs/", f).unwrap();
        assert_eq!(
            (u.to_string().as_str(), k.as_str()),
            ("/srv/sifs", "a__1.sif")
        );
        let e = target("s3://bucket/containers/a.sif", f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NAME__TAG.sif"), "{e}");
        let e = target("s3://a__1.sif", f).unwrap_err().to_string();
        assert!(e.contains("no bucket"), "{e}");
    }
}
