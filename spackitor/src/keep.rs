//! Keep lists: `spack.lock` files, given directly or found under folders, whose specs are
//! never deleted.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use common::spack::lockfile::Lockfile;

/// Every lockfile named or found, parsed. Any unreadable one is an error: a keep list that
/// silently lost a file would let its specs be deleted.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Lockfile>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let found = find_lockfiles(p)?;
            if found.is_empty() {
                bail!("no spack.lock under {}", p.display());
            }
            files.extend(found);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            bail!("keep list {} does not exist", p.display());
        }
    }
    files
        .iter()
        .map(|f| Lockfile::read(f).with_context(|| format!("reading keep list {}", f.display())))
        .collect()
}

/// The hashes of every spec of the lockfiles.
pub fn hashes(lockfiles: &[Lockfile]) -> HashSet<String> {
    lockfiles
        .iter()
        .flat_map(|l| l.specs.keys().map(|h| h.to_string()))
        .collect()
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
