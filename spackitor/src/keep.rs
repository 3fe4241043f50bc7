//! Keep lists: `spack.lock` files whose specs are never deleted — given as files, found under
//! folders, or recorded in a store (`s3://…`, `file://…`: every `spack.lock` under it, as stage
//! 2 records them per branch). Records of branches the git remote no longer has are dropped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use common::git::Alive;
use common::keep_lists;
use common::spack::lockfile::Lockfile;
use common::store::{S3Options, Store, StoreUrl};

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
            .map_err(|e: common::store::StoreError| e.to_string())
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
}

/// Every lockfile named, found or recorded, parsed. Any unreadable one is an error, and so is a
/// source that holds none: a keep list that silently lost a file would let its specs be
/// deleted. With `alive`, records of other branches are left out (and reported as dropped).
pub async fn load(
    sources: &[KeepSource],
    s3: &S3Options,
    alive: Option<&Alive>,
) -> anyhow::Result<Loaded> {
    let mut out = Loaded::default();
    for source in sources {
        match source {
            KeepSource::Path(p) => {
                for f in local_files(p)? {
                    out.lockfiles.push(
                        Lockfile::read(&f)
                            .with_context(|| format!("reading keep list {}", f.display()))?,
                    );
                }
            }
            KeepSource::Store(url) => {
                let store = Store::open(url, s3)
                    .await
                    .with_context(|| format!("opening keep lists {url}"))?;
                let records = keep_lists::list(&store)
                    .await
                    .with_context(|| format!("listing keep lists {url}"))?;
                if records.is_empty() {
                    bail!("no spack.lock under {url}: no keep list was recorded there");
                }
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
                }
                if !dropped.is_empty() {
                    out.dropped.push((store, dropped));
                }
            }
        }
    }
    Ok(out)
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
