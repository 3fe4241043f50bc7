//! Applying OCI image layers to a root filesystem directory: whiteouts, opaque directories,
//! hard links, symlinks, permissions and ownership, as a container runtime does; device nodes
//! and FIFOs kept aside as mksquashfs pseudo-definitions.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("layer {layer}: {message}")]
    Layer { layer: String, message: String },
    #[error("layer {layer}: media type `{media_type}` is not supported (gzip or uncompressed tar)")]
    MediaType { layer: String, media_type: String },
}

/// How a layer blob is compressed, from its media type.
fn decompressor<'a>(
    layer: &str,
    media_type: &str,
    file: fs::File,
) -> Result<Box<dyn Read + 'a>, RootfsError> {
    let reader = BufReader::new(file);
    if media_type.ends_with("tar+gzip") || media_type.ends_with(".tar.gzip") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else if media_type.ends_with(".tar") || media_type.ends_with("layer.v1.tar") {
        Ok(Box::new(reader))
    } else {
        Err(RootfsError::MediaType {
            layer: layer.into(),
            media_type: media_type.into(),
        })
    }
}

/// A layer path made relative and checked not to climb out of the root.
fn clean(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// An error and its causes, as tar wraps the one that matters.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A device node or FIFO of the image, by its path in the root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Special {
    /// `c`, `b`, or `i` (a FIFO).
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    major: u32,
    minor: u32,
}

/// The device nodes and FIFOs of the layers applied so far. Extraction cannot make them (a
/// device node needs privileges the build may not have, and tar writes an empty file in its
/// place), so they are kept here and made in the squashfs by mksquashfs from
/// [`SpecialFiles::pseudo_definitions`].
#[derive(Debug, Default)]
pub struct SpecialFiles(BTreeMap<PathBuf, Special>);

impl SpecialFiles {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// mksquashfs `-pf` lines: `"dev/null" c 0666 0 0 1 3`.
    pub fn pseudo_definitions(&self) -> String {
        let mut out = String::new();
        for (path, s) in &self.0 {
            let name = path
                .to_string_lossy()
                .replace('\\', "\\\\")
                .replace('"', "\\\"");
            let (mode, uid, gid) = (s.mode & 0o7777, s.uid, s.gid);
            match s.kind {
                'i' => out.push_str(&format!("\"{name}\" i {mode:04o} {uid} {gid} f\n")),
                kind => out.push_str(&format!(
                    "\"{name}\" {kind} {mode:04o} {uid} {gid} {} {}\n",
                    s.major, s.minor
                )),
            }
        }
        out
    }

    /// Forget what sits at `path` or below it (replaced or whited out).
    fn remove_under(&mut self, path: &Path, keep: impl Fn(&Path) -> bool) {
        self.0.retain(|p, _| !p.starts_with(path) || keep(p));
    }
}

/// The special file a tar entry describes, if it is one.
fn special(entry: &tar::Entry<'_, impl Read>) -> io::Result<Option<Special>> {
    let h = entry.header();
    let kind = match h.entry_type() {
        tar::EntryType::Char => 'c',
        tar::EntryType::Block => 'b',
        tar::EntryType::Fifo => 'i',
        _ => return Ok(None),
    };
    Ok(Some(Special {
        kind,
        mode: h.mode()?,
        uid: h.uid()?,
        gid: h.gid()?,
        major: h.device_major()?.unwrap_or(0),
        minor: h.device_minor()?.unwrap_or(0),
    }))
}

/// Apply the layer in `file` (named `layer` in errors) on top of `root`; its device nodes and
/// FIFOs go to `specials`.
pub fn apply_layer(
    root: &Path,
    layer: &str,
    media_type: &str,
    file: fs::File,
    specials: &mut SpecialFiles,
) -> Result<(), RootfsError> {
    let err = |message: String| RootfsError::Layer {
        layer: layer.into(),
        message,
    };
    let canonical_root =
        fs::canonicalize(root).map_err(|e| err(format!("{}: {e}", root.display())))?;
    // A whiteout's directory, resolved: a symlink planted by a lower layer must not lead a
    // delete out of the root. `None` when it does not exist (nothing to hide).
    let inside = |root: &Path, parent: &Path| -> Result<Option<PathBuf>, RootfsError> {
        match fs::canonicalize(root.join(parent)) {
            Ok(p) if p.starts_with(&canonical_root) => Ok(Some(p)),
            Ok(p) => Err(err(format!(
                "{}: resolves to {}, outside the root",
                parent.display(),
                p.display()
            ))),
            Err(_) => Ok(None),
        }
    };
    let mut archive = tar::Archive::new(decompressor(layer, media_type, file)?);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    // Paths this layer wrote: an opaque marker hides only what lower layers left.
    let mut written: HashSet<PathBuf> = HashSet::new();
    for entry in archive.entries().map_err(|e| err(e.to_string()))? {
        let mut entry = entry.map_err(|e| err(e.to_string()))?;
        let raw = entry.path().map_err(|e| err(e.to_string()))?.into_owned();
        let rel = clean(&raw).ok_or_else(|| err(format!("{}: leaves the root", raw.display())))?;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = rel.parent().unwrap_or(Path::new(""));
        if name == OPAQUE {
            specials.remove_under(parent, |p| p == parent || written.contains(p));
            let Some(dir) = inside(root, parent)? else {
                continue;
            };
            if let Ok(children) = fs::read_dir(&dir) {
                for child in children.flatten() {
                    let child_rel = parent.join(child.file_name());
                    if !written.contains(&child_rel) {
                        remove_any(&child.path())
                            .map_err(|e| err(format!("{}: {e}", child_rel.display())))?;
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            // `.wh..` and `.wh...` would hide the folder itself or its parent: the root, or
            // what is above it. No tool writes them; a layer that does is refused.
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(err(format!(
                    "{}: a whiteout of `{hidden}` would remove its own folder or the one above",
                    raw.display()
                )));
            }
            let target = parent.join(hidden);
            specials.remove_under(&target, |_| false);
            if let Some(dir) = inside(root, parent)? {
                remove_any(&dir.join(hidden))
                    .map_err(|e| err(format!("{}: {e}", target.display())))?;
            }
            continue;
        }
        let dest = root.join(&rel);
        specials.remove_under(&rel, |_| false);
        // A hard link to a device node is another device node.
        let linked = match entry.header().entry_type() {
            tar::EntryType::Link => entry
                .link_name()
                .map_err(|e| err(e.to_string()))?
                .and_then(|l| clean(&l))
                .and_then(|l| specials.0.get(&l).cloned()),
            _ => None,
        };
        if let Some(s) = linked.or(special(&entry).map_err(|e| err(e.to_string()))?) {
            // mksquashfs makes it inside a folder of the tree: layers list folders first.
            if inside(root, parent)?.is_none() {
                return Err(err(format!(
                    "{}: its folder is not in this or a lower layer",
                    rel.display()
                )));
            }
            remove_any(&dest).map_err(|e| err(format!("{}: {e}", rel.display())))?;
            specials.0.insert(rel.clone(), s);
            written.insert(rel);
            continue;
        }
        // A directory replaces a non-directory and the other way round; a directory over a
        // directory only updates its metadata.
        let is_dir = entry.header().entry_type().is_dir();
        if let Ok(m) = fs::symlink_metadata(&dest)
            && m.is_dir() != is_dir
            && inside(root, parent)?.is_some()
        {
            remove_any(&dest).map_err(|e| err(format!("{}: {e}", rel.display())))?;
        }
        entry
            .unpack_in(root)
            .map_err(|e| err(format!("{}: {}", rel.display(), chain(&e))))?;
        written.insert(rel);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(dir: &Path, name: &str, entries: &[(&str, Option<&str>)]) -> fs::File {
        let path = dir.join(name);
        let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
        for (p, content) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, p, c.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, p, io::empty()).unwrap();
                }
            }
        }
        b.finish().unwrap();
        fs::File::open(path).unwrap()
    }

    const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

    #[test]
    fn whiteouts_and_opaque_directories_hide_lower_layers_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        let l1 = layer(
            tmp.path(),
            "l1",
            &[
                ("etc", None),
                ("etc/keep", Some("1")),
                ("etc/gone", Some("1")),
                ("opt", None),
                ("opt/old", Some("1")),
            ],
        );
        apply_layer(&root, "l1", TAR, l1, &mut SpecialFiles::default()).unwrap();
        let l2 = layer(
            tmp.path(),
            "l2",
            &[
                ("etc/.wh.gone", Some("")),
                ("opt/new", Some("2")),
                ("opt/.wh..wh..opq", Some("")),
                ("etc/keep", Some("2")),
            ],
        );
        apply_layer(&root, "l2", TAR, l2, &mut SpecialFiles::default()).unwrap();
        assert!(!root.join("etc/gone").exists());
        assert_eq!(fs::read_to_string(root.join("etc/keep")).unwrap(), "2");
        assert!(
            !root.join("opt/old").exists(),
            "opaque hides the lower layer"
        );
        assert_eq!(fs::read_to_string(root.join("opt/new")).unwrap(), "2");
    }

    #[test]
    fn a_whiteout_through_a_symlink_never_leaves_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("precious"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let l = layer(tmp.path(), "l", &[("escape/.wh.precious", Some(""))]);
        let e =
            apply_layer(&root, "sha256:evil", TAR, l, &mut SpecialFiles::default()).unwrap_err();
        assert!(e.to_string().contains("outside the root"), "{e}");
        assert!(outside.join("precious").exists());
        let l = layer(tmp.path(), "l2", &[("escape/.wh..wh..opq", Some(""))]);
        assert!(apply_layer(&root, "sha256:evil", TAR, l, &mut SpecialFiles::default()).is_err());
        assert!(outside.join("precious").exists());
        // A directory entry over a file, through the symlink.
        let l = layer(tmp.path(), "l3", &[("escape/precious", None)]);
        assert!(apply_layer(&root, "sha256:evil", TAR, l, &mut SpecialFiles::default()).is_err());
        assert_eq!(fs::read_to_string(outside.join("precious")).unwrap(), "x");
    }

    #[test]
    fn whiteouts_of_dot_and_dot_dot_are_refused_and_remove_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let root = base.join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/keep"), "1").unwrap();
        fs::write(base.join("beside-the-root"), "precious").unwrap();
        for (i, entry) in [".wh..", ".wh...", "etc/.wh..", "etc/.wh..."]
            .iter()
            .enumerate()
        {
            let l = layer(tmp.path(), &format!("l{i}"), &[(entry, Some(""))]);
            let e = apply_layer(&root, "sha256:evil", TAR, l, &mut SpecialFiles::default())
                .unwrap_err();
            assert!(e.to_string().contains("sha256:evil"), "{entry}: {e}");
            assert!(root.join("etc/keep").exists(), "{entry}");
            assert!(base.join("beside-the-root").exists(), "{entry}");
        }
    }

    /// A layer of device nodes and a FIFO, the way `docker export` writes `/dev`.
    fn devices(dir: &Path, name: &str, entries: &[(&str, tar::EntryType, u32, u32)]) -> fs::File {
        let path = dir.join(name);
        let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        b.append_data(&mut h, "dev", io::empty()).unwrap();
        for (p, kind, major, minor) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o620);
            h.set_uid(0);
            h.set_gid(5);
            h.set_mtime(0);
            h.set_size(0);
            h.set_device_major(*major).unwrap();
            h.set_device_minor(*minor).unwrap();
            b.append_data(&mut h, p, io::empty()).unwrap();
        }
        b.finish().unwrap();
        fs::File::open(path).unwrap()
    }

    #[test]
    fn device_nodes_become_pseudo_definitions_and_follow_whiteouts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::create_dir(root.join("dev")).unwrap();
        // A lower layer's empty file where the device goes: replaced, not kept beside it.
        fs::write(root.join("dev/null"), "").unwrap();
        let mut specials = SpecialFiles::default();
        let l = devices(
            tmp.path(),
            "l1",
            &[
                ("dev/null", tar::EntryType::Char, 1, 3),
                ("dev/sda", tar::EntryType::Block, 8, 0),
                ("dev/pipe \"x\"", tar::EntryType::Fifo, 0, 0),
                ("dev/gone", tar::EntryType::Char, 1, 5),
            ],
        );
        apply_layer(&root, "l1", TAR, l, &mut specials).unwrap();
        assert!(
            !root.join("dev/null").exists(),
            "mksquashfs refuses a pseudo file over a real one"
        );
        let l = layer(
            tmp.path(),
            "l2",
            &[("dev/.wh.gone", Some("")), ("dev/sda", Some("now a file"))],
        );
        apply_layer(&root, "l2", TAR, l, &mut specials).unwrap();
        assert_eq!(
            specials.pseudo_definitions(),
            "\"dev/null\" c 0620 0 5 1 3\n\"dev/pipe \\\"x\\\"\" i 0620 0 5 f\n"
        );
        let l = layer(tmp.path(), "l3", &[("dev/.wh..wh..opq", Some(""))]);
        apply_layer(&root, "l3", TAR, l, &mut specials).unwrap();
        assert!(specials.is_empty(), "{}", specials.pseudo_definitions());
    }

    #[test]
    fn bad_layers_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let f = layer(tmp.path(), "l", &[("a", Some("x"))]);
        let e = apply_layer(
            tmp.path(),
            "sha256:abc",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            f,
            &mut SpecialFiles::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("sha256:abc") && e.to_string().contains("zstd"));
        fs::write(tmp.path().join("junk"), b"not a gzip").unwrap();
        let e = apply_layer(
            tmp.path(),
            "sha256:def",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            fs::File::open(tmp.path().join("junk")).unwrap(),
            &mut SpecialFiles::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("sha256:def"), "{e}");
    }
}
