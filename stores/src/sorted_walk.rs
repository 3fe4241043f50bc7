//! A folder tree's files in the byte order of their keys (as S3 lists), held lean.
//!
//! A build cache's folder can hold 1,000,000 spec files. Sorting it needs all its names at
//! once; walkdir holds each as an entry with its own full path (~200 bytes), allocated on the
//! listing thread, whose allocator arena then kept that memory for the rest of the run. Here a
//! folder's names are one buffer and one table, large allocations handed back whole.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What the walk could not read: the path and why.
pub type WalkError = (PathBuf, std::io::Error);

/// Every file below `start` (itself, when it is a file), each folder sorted as if its name ended
/// in `/`, so files come out in the byte order of their keys; `skip` (the store's own folder)
/// and what is below it are left out. Symlinks are followed: skipping a symlinked folder would
/// make its objects look missing, and a janitor deletes what looks incomplete. A loop is an
/// error, as is a folder that cannot be read (one that vanished below `start` is skipped: its
/// objects were deleted since its parent was read).
pub fn sorted_files(start: &Path, skip: &Path) -> SortedFiles {
    let mut walk = SortedFiles {
        skip: skip.to_path_buf(),
        folders: Vec::new(),
        ancestors: HashSet::new(),
        pending: None,
    };
    match std::fs::metadata(start) {
        Ok(md) if md.is_dir() => {
            if let Err(e) = walk.enter(start.to_path_buf(), &md) {
                walk.pending = Some(Err(e));
            }
        }
        Ok(_) => walk.pending = Some(Ok(start.to_path_buf())),
        Err(e) => walk.pending = Some(Err((start.to_path_buf(), e))),
    }
    walk
}

/// The walk's state: the folders being read, deepest last.
pub struct SortedFiles {
    skip: PathBuf,
    folders: Vec<Folder>,
    /// (device, inode) of the folders being read: entering one again is a loop.
    ancestors: HashSet<(u64, u64)>,
    /// The start itself, when it is a file or could not be read.
    pending: Option<Result<PathBuf, WalkError>>,
}

/// One folder's entries, sorted, with the position of the next one.
struct Folder {
    path: PathBuf,
    id: (u64, u64),
    /// Every name, one after the other.
    names: Vec<u8>,
    entries: Vec<Entry>,
    next: usize,
}

#[derive(Clone, Copy)]
struct Entry {
    start: usize,
    len: u32,
    dir: bool,
}

impl Folder {
    fn name(&self, e: Entry) -> &[u8] {
        &self.names[e.start..e.start + e.len as usize]
    }

    /// By name, a folder's as if it ended in `/`.
    fn order(&self, a: Entry, b: Entry) -> Ordering {
        let key = |e: Entry| self.name(e).iter().copied().chain(e.dir.then_some(b'/'));
        key(a).cmp(key(b))
    }
}

impl SortedFiles {
    /// Read the folder at `path` and walk it next.
    fn enter(&mut self, path: PathBuf, md: &std::fs::Metadata) -> Result<(), WalkError> {
        let id = (md.dev(), md.ino());
        if self.ancestors.contains(&id) {
            return Err((path, std::io::Error::other("file system loop")));
        }
        let mut folder = Folder {
            id,
            names: Vec::new(),
            entries: Vec::new(),
            next: 0,
            path,
        };
        let read = std::fs::read_dir(&folder.path).map_err(|e| (folder.path.clone(), e))?;
        for entry in read {
            let entry = entry.map_err(|e| (folder.path.clone(), e))?;
            let name = entry.file_name();
            let name = name.as_bytes();
            // A symlink is what it points to; one to nothing is taken as a file, so that its
            // `stat` fails where it is listed: an error, never a missing object.
            let dir = match entry.file_type() {
                Ok(t) if t.is_symlink() => entry.path().is_dir(),
                Ok(t) => t.is_dir(),
                // Where the folder's listing gives no type, it is asked of the entry, which
                // may have been deleted since: gone, as from S3, and its folder still listed.
                Err(e) if vanished(&e, &entry.path()) => continue,
                Err(e) => {
                    let at = entry.path();
                    return Err((at, e));
                }
            };
            let len = u32::try_from(name.len()).map_err(|_| {
                (
                    entry.path(),
                    std::io::Error::other("a file name longer than 4 GiB"),
                )
            })?;
            folder.entries.push(Entry {
                start: folder.names.len(),
                len,
                dir,
            });
            folder.names.extend_from_slice(name);
        }
        let mut entries = std::mem::take(&mut folder.entries);
        entries.sort_unstable_by(|&a, &b| folder.order(a, b));
        folder.entries = entries;
        self.ancestors.insert(id);
        self.folders.push(folder);
        Ok(())
    }
}

impl Iterator for SortedFiles {
    type Item = Result<PathBuf, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(pending) = self.pending.take() {
            return Some(pending);
        }
        loop {
            let folder = self.folders.last_mut()?;
            let Some(&entry) = folder.entries.get(folder.next) else {
                self.ancestors.remove(&folder.id);
                self.folders.pop();
                continue;
            };
            folder.next += 1;
            let path = folder.path.join(OsStr::from_bytes(folder.name(entry)));
            if !entry.dir {
                return Some(Ok(path));
            }
            if path == self.skip {
                continue;
            }
            match std::fs::metadata(&path) {
                Ok(md) => match self.enter(path.clone(), &md) {
                    Ok(()) => {}
                    // Only the folder itself gone skips it: an error of one of its entries
                    // never hides the others.
                    Err((at, e)) if at == path && vanished(&e, &at) => {}
                    Err(e) => return Some(Err(e)),
                },
                Err(e) if vanished(&e, &path) => {}
                Err(e) => return Some(Err((path, e))),
            }
        }
    }
}

/// Whether an error of the listing means the file or folder at `path` was deleted since its
/// folder was read: gone from the listing, as from an S3 listing. A symlink whose target is
/// missing is still there, and stays an error.
pub(crate) fn vanished(e: &std::io::Error, path: &Path) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
        && path
            .symlink_metadata()
            .is_err_and(|m| m.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(start: &Path, skip: &Path) -> Vec<String> {
        sorted_files(start, skip)
            .map(|r| {
                let p = r.unwrap();
                p.strip_prefix(start).unwrap().to_str().unwrap().to_string()
            })
            .collect()
    }

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, rel).unwrap();
    }

    #[test]
    fn only_what_was_deleted_drops_out_of_a_listing() {
        let dir = tempfile::tempdir().unwrap();
        let not_found = || std::io::Error::from(std::io::ErrorKind::NotFound);
        // Deleted by another writer since its folder was read: gone, as from S3.
        assert!(vanished(&not_found(), &dir.path().join("deleted")));
        // A symlink to nothing is still there: an error, never a missing object.
        let link = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        assert!(!vanished(&not_found(), &link));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!vanished(&denied, &dir.path().join("deleted")));
    }

    #[test]
    fn files_come_out_in_the_byte_order_of_their_keys_as_s3_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // `a-b` < `a/…` < `a0`: '-' < '/' < '0'; a folder sorts as its name plus '/'.
        for rel in ["a0", "a/x", "a-b", "a/b/c", "a/b.json", "b", "A"] {
            touch(root, rel);
        }
        let mut keys = vec!["a0", "a/x", "a-b", "a/b/c", "a/b.json", "b", "A"];
        keys.sort_unstable();
        assert_eq!(files(root, &root.join(".reserved")), keys);
    }

    #[test]
    fn the_skipped_folder_is_left_out_and_symlinked_folders_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        touch(&root, ".reserved/meta/x.json");
        touch(&root, "build_cache/x.spec.json");
        touch(dir.path(), "elsewhere/y.spack");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), root.join("linked")).unwrap();
        assert_eq!(
            files(&root, &root.join(".reserved")),
            ["build_cache/x.spec.json", "linked/y.spack"]
        );
    }

    #[test]
    fn a_loop_and_a_dangling_symlink_are_errors_not_missing_objects() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(root, "a/file");
        std::os::unix::fs::symlink(root.join("a"), root.join("a/again")).unwrap();
        let walked: Vec<_> = sorted_files(root, &root.join(".reserved")).collect();
        let (path, e) = walked[0].as_ref().unwrap_err();
        assert_eq!(path, &root.join("a/again"));
        assert_eq!(e.to_string(), "file system loop");
        assert_eq!(walked[1].as_ref().unwrap(), &root.join("a/file"));

        std::fs::remove_file(root.join("a/again")).unwrap();
        std::os::unix::fs::symlink(root.join("nowhere"), root.join("a/dangling")).unwrap();
        // Listed as a file: its `stat`, where it is listed, fails.
        let walked: Vec<_> = sorted_files(root, &root.join(".reserved"))
            .map(Result::unwrap)
            .collect();
        assert_eq!(walked, [root.join("a/dangling"), root.join("a/file")]);
    }

    #[test]
    fn a_start_that_is_a_file_is_listed_and_one_missing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "f");
        let f = dir.path().join("f");
        let walked: Vec<_> = sorted_files(&f, dir.path()).map(Result::unwrap).collect();
        assert_eq!(walked, [f]);
        let missing = dir.path().join("missing");
        let walked: Vec<_> = sorted_files(&missing, dir.path()).collect();
        assert_eq!(walked.len(), 1);
        assert_eq!(walked[0].as_ref().unwrap_err().0, missing);
    }
}
