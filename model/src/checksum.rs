//! Checksums of files and folders that every machine computes alike: each file under a name
//! that does not depend on where the checkout is, then its length and content, in sorted order.
//! Base images record one over their build folder, containers one over their definition and the
//! files it copies.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A sha256 over named files.
#[derive(Debug, Clone, Default)]
pub struct TreeHash(Sha256);

impl TreeHash {
    pub fn new() -> TreeHash {
        TreeHash::default()
    }

    /// Add the file at `path` under `name`, as [`TreeHash::bytes`] of its content would.
    ///
    /// The file is streamed through a buffer, not read whole: the tools hashed in every
    /// pipeline are hundreds of megabytes, and allocating them costs more than hashing them.
    pub fn file(&mut self, name: &str, path: &Path) -> std::io::Result<()> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        self.header(name, len);
        let read = std::io::copy(
            &mut std::io::BufReader::with_capacity(256 * 1024, file),
            &mut self.0,
        )?;
        // The length went into the hash first: a file that changed while it was read would
        // give a checksum of no content at all.
        if read != len {
            return Err(std::io::Error::other(format!(
                "{} changed while it was read ({len} bytes, then {read})",
                path.display()
            )));
        }
        Ok(())
    }

    /// Add `content` under `name`, as a file of that content would be.
    pub fn bytes(&mut self, name: &str, content: &[u8]) {
        self.header(name, content.len() as u64);
        self.0.update(content);
    }

    /// What comes before a file's content: its name, a 0 byte, its length.
    fn header(&mut self, name: &str, len: u64) {
        self.0.update(name.as_bytes());
        self.0.update([0]);
        self.0.update(len.to_le_bytes());
    }

    /// The hex digest.
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The sha256 of `bytes` (plain, not a tree hash), in hex: what a file is recorded by in a
/// build's provenance.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every file under `dir` (or `dir` itself when it is a file), in sorted order.
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    walk(dir, false)
}

/// Every file under `dir`, links followed (a linked file counts as the file it links to), in
/// sorted order.
pub fn files_through_links(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    walk(dir, true)
}

fn walk(dir: &Path, follow_links: bool) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(follow_links) {
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// `path` relative to `base`, with `/`: the name a file goes by in a checksum.
pub fn relative_name(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_files_give_the_same_sum_wherever_they_are() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for d in [a.path(), b.path()] {
            std::fs::create_dir_all(d.join("x")).unwrap();
            std::fs::write(d.join("x/f"), "1").unwrap();
            std::fs::write(d.join("g"), "2").unwrap();
        }
        let sum = |d: &Path| {
            let mut h = TreeHash::new();
            for f in files(d).unwrap() {
                h.file(&relative_name(&f, d), &f).unwrap();
            }
            h.finish()
        };
        assert_eq!(sum(a.path()), sum(b.path()));
        std::fs::write(b.path().join("g"), "3").unwrap();
        assert_ne!(sum(a.path()), sum(b.path()));
    }

    #[test]
    fn a_streamed_file_sums_as_its_content_does() {
        // Images built before files were streamed carry sums of `bytes`: they stay up to date.
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let path = dir.path().join("tool");
        std::fs::write(&path, &content).unwrap();
        let mut streamed = TreeHash::new();
        streamed.file("tool", &path).unwrap();
        let mut whole = TreeHash::new();
        whole.bytes("tool", &content);
        assert_eq!(streamed.finish(), whole.finish());
        let mut missing = TreeHash::new();
        assert!(missing.file("tool", &dir.path().join("nothing")).is_err());
    }
}
