//! Keep lists: `spack.lock` files whose specs are never deleted — given as files, found under
//! folders, or recorded in a store (`s3://…`, `file://…`: every `spack.lock` under it, as stage
//! 2 records them per branch). Records of branches the git remote no longer has are dropped.
//! The stores are opened once, by the run ([`open`]), and read here.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use host::git::Alive;
use model::spack::lockfile::Lockfile;
use serde::Serialize;
use stores::keep_lists;
use stores::{S3Options, Store, StoreError, StoreUrl};

/// Where keep lockfiles come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepSource {
    /// A `spack.lock`, or a folder searched for them.
    Path(PathBuf),
    /// A store prefix whose every `spack.lock` is a keep list.
    Store(StoreUrl),
}

/// A URL (`s3://`, `file://`) names a store, anything else a path.
pub fn parse_source(s: &str) -> Result<KeepSource, String> {
    if s.contains("://") {
        s.parse()
            .map(KeepSource::Store)
            .map_err(|e: model::store_url::InvalidStoreUrl| e.to_string())
    } else if s.is_empty() {
        Err("empty keep list".into())
    } else {
        Ok(KeepSource::Path(PathBuf::from(s)))
    }
}

impl std::fmt::Display for KeepSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeepSource::Path(p) => write!(f, "{}", p.display()),
            KeepSource::Store(u) => write!(f, "{u}"),
        }
    }
}

/// The keep lists read, and the records of deleted branches that were left out.
#[derive(Debug, Default)]
pub struct Loaded {
    pub lockfiles: Vec<Lockfile>,
    /// Records of branches the remote no longer has: (store, keys), for removal once the run
    /// has done its work.
    pub dropped: Vec<(Store, Vec<String>)>,
    /// What each records prefix held.
    pub records: Vec<RecordsRead>,
}

/// What one records prefix (`--keep s3://…`) held.
#[derive(Debug, Clone, Serialize)]
pub struct RecordsRead {
    pub url: String,
    /// False when the prefix was read and nothing was ever recorded there (a new deployment, a
    /// branch cache whose branches are all gone): it then protects nothing.
    pub recorded: bool,
    /// Keep lists read per branch (`-` for records of no branch's shape).
    pub by_branch: BTreeMap<String, usize>,
}

/// A keep source ready to read: a local path, or a records store opened once by the run.
#[derive(Debug, Clone)]
pub enum Opened {
    Path(PathBuf),
    Store { url: StoreUrl, store: Store },
}

/// Open the stores `sources` name (the run does this once, before anything is read).
pub async fn open(sources: &[KeepSource], s3: &S3Options) -> anyhow::Result<Vec<Opened>> {
    let mut out = Vec::new();
    for source in sources {
        out.push(match source {
            KeepSource::Path(p) => Opened::Path(p.clone()),
            KeepSource::Store(url) => Opened::Store {
                url: url.clone(),
                store: Store::open(url, s3)
                    .await
                    .with_context(|| format!("opening keep lists {url}"))?,
            },
        });
    }
    Ok(out)
}

/// Every lockfile named, found or recorded, parsed. Any unreadable one is an error, and so is a
/// local source that holds none: a keep list that silently lost a file would let its specs be
/// deleted. A records prefix where nothing was recorded yet protects nothing and is reported
/// so; one that cannot be read (no bucket, no permission, a listing error) is an error. With
/// `alive`, records of other branches are left out (and reported as dropped).
pub async fn load(sources: &[Opened], alive: Option<&Alive>) -> anyhow::Result<Loaded> {
    let mut out = Loaded::default();
    for source in sources {
        match source {
            Opened::Path(p) => {
                for f in local_files(p)? {
                    out.lockfiles.push(
                        Lockfile::read(&f)
                            .with_context(|| format!("reading keep list {}", f.display()))?,
                    );
                }
            }
            Opened::Store { url, store } => load_records(url, store, alive, &mut out).await?,
        }
    }
    Ok(out)
}

/// Read every record under the prefix `url` (opened as `store`) into `out`.
async fn load_records(
    url: &StoreUrl,
    store: &Store,
    alive: Option<&Alive>,
    out: &mut Loaded,
) -> anyhow::Result<()> {
    let records = match keep_lists::list(store).await {
        Ok(r) => r,
        // A records folder not created yet, in a cache folder that exists: nothing recorded.
        Err(StoreError::NotFound { .. }) if records_parent_exists(url) => Vec::new(),
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("could not read the keep lists under {url}"))
            );
        }
    };
    let mut read = RecordsRead {
        url: url.to_string(),
        recorded: !records.is_empty(),
        by_branch: BTreeMap::new(),
    };
    let mut dropped = Vec::new();
    for r in records {
        if let (Some(alive), Some(branch)) = (alive, &r.branch)
            && !alive.contains(branch)
        {
            dropped.push(r.key);
            continue;
        }
        let location = store.location(&r.key);
        let obj = store
            .get(&r.key)
            .await
            .with_context(|| format!("reading keep list {location}"))?;
        out.lockfiles.push(
            Lockfile::parse(&location, &obj.bytes)
                .with_context(|| format!("reading keep list {location}"))?,
        );
        *read
            .by_branch
            .entry(r.branch.unwrap_or_else(|| "-".into()))
            .or_default() += 1;
    }
    if !dropped.is_empty() {
        out.dropped.push((store.clone(), dropped));
    }
    out.records.push(read);
    Ok(())
}

/// For a records folder that does not exist: whether the folder it would be created in does
/// (the cache's folder for `…/_spacktainerizah/keep`), as a bucket does for an empty prefix.
fn records_parent_exists(url: &StoreUrl) -> bool {
    let StoreUrl::Dir(path) = url else {
        return false;
    };
    let parent = path
        .to_str()
        .and_then(|p| p.trim_end_matches('/').strip_suffix(keep_lists::PREFIX))
        .map(PathBuf::from)
        .or_else(|| path.parent().map(Path::to_path_buf));
    parent.is_some_and(|p| p.is_dir())
}

/// The hashes of every spec of the lockfiles.
pub fn hashes(lockfiles: &[Lockfile]) -> HashSet<String> {
    lockfiles
        .iter()
        .flat_map(|l| l.specs.keys().map(|h| h.to_string()))
        .collect()
}

/// A lockfile, or the ones under a folder (at least one).
fn local_files(p: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if p.is_dir() {
        let found = find_lockfiles(p)?;
        if found.is_empty() {
            bail!("no spack.lock under {}", p.display());
        }
        Ok(found)
    } else if p.is_file() {
        Ok(vec![p.to_path_buf()])
    } else {
        bail!("keep list {} does not exist", p.display());
    }
}

fn find_lockfiles(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry.with_context(|| format!("reading {}", d.display()))?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if entry.file_name() == "spack.lock" {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}
