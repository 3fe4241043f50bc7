//! Applying OCI image layers to a root filesystem directory: whiteouts, opaque directories,
//! hard links, symlinks, permissions and ownership, as a container runtime does; device nodes
//! and FIFOs kept aside as mksquashfs pseudo-definitions.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
pub(crate) const OPAQUE: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("layer {layer}: {message}")]
    Layer { layer: String, message: String },
    #[error("layer {layer}: media type `{media_type}` is not supported (gzip or uncompressed tar)")]
    MediaType { layer: String, media_type: String },
}

/// How a layer blob is compressed, from its media type.
pub(crate) fn decompressor<'a>(
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
pub(crate) fn clean(path: &Path) -> Option<PathBuf> {
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

/// As an ordinary user, what was extracted must stay readable (for mksquashfs) and a folder
/// writable (for the next layers): the owner's bits are added on disk, the layer's mode is
/// what the squashfs gets.
fn keep_usable(path: &Path, is_dir: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    let wanted = mode | if is_dir { 0o700 } else { 0o600 };
    if wanted != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(wanted))?;
    }
    Ok(())
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
    owner: Owner,
    major: u32,
    minor: u32,
}

/// Mode and owner of a path as the layer that wrote it last says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    mode: u32,
    uid: u64,
    gid: u64,
}

/// What the squashfs gets from the layers beside the extracted files, as mksquashfs
/// pseudo-definitions: device nodes and FIFOs (extraction cannot make them: a device node needs
/// privileges the build may not have, and tar writes an empty file in its place), and the mode
/// and owner of every path, so that an unprivileged build — which can neither give files away
/// nor keep a folder it cannot write to — still makes the image's tree exactly.
#[derive(Debug)]
pub struct PseudoFiles {
    specials: BTreeMap<PathBuf, Special>,
    owners: BTreeMap<PathBuf, Owner>,
    /// Running as root: ownership is kept on disk too.
    privileged: bool,
}

impl Default for PseudoFiles {
    fn default() -> Self {
        use std::os::unix::fs::MetadataExt;
        // Our own process folder belongs to our effective user.
        let privileged = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        PseudoFiles {
            specials: BTreeMap::new(),
            owners: BTreeMap::new(),
            privileged,
        }
    }
}

/// `path` quoted for a pseudo file; `None` for names it cannot hold.
fn pseudo_name(path: &Path) -> Option<String> {
    let name = path.to_str()?;
    if name.contains(['\n', '\r']) {
        return None;
    }
    Some(format!(
        "\"{}\"",
        name.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

impl PseudoFiles {
    /// The mksquashfs arguments that make `root`'s squashfs the image's tree: `-pf` with a
    /// pseudo file written to `pseudo`, and the root folder's mode and owner.
    pub fn mksquashfs_args(
        &self,
        root: &Path,
        pseudo: &Path,
    ) -> Result<Vec<std::ffi::OsString>, RootfsError> {
        let err = |message: String| RootfsError::Layer {
            layer: "the root filesystem".into(),
            message,
        };
        let mut out = String::new();
        for entry in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
            let entry = entry.map_err(|e| err(e.to_string()))?;
            let rel = entry.path().strip_prefix(root).expect("under the root");
            let meta = entry.metadata().map_err(|e| err(e.to_string()))?;
            // What no layer wrote (folders a layer left out, what the build adds) is root's.
            let owner = self.owners.get(rel).copied().unwrap_or_else(|| {
                use std::os::unix::fs::PermissionsExt;
                Owner {
                    mode: meta.permissions().mode(),
                    uid: 0,
                    gid: 0,
                }
            });
            let mode = if meta.file_type().is_symlink() {
                0o777
            } else {
                owner.mode & 0o7777
            };
            let name = pseudo_name(rel).ok_or_else(|| {
                err(format!(
                    "{}: a name mksquashfs cannot be given",
                    rel.display()
                ))
            })?;
            out.push_str(&format!(
                "{name} m {mode:04o} {} {}\n",
                owner.uid, owner.gid
            ));
        }
        for (path, s) in &self.specials {
            let name = pseudo_name(path).ok_or_else(|| {
                err(format!(
                    "{}: a name mksquashfs cannot be given",
                    path.display()
                ))
            })?;
            let Owner { mode, uid, gid } = s.owner;
            let mode = mode & 0o7777;
            match s.kind {
                'i' => out.push_str(&format!("{name} i {mode:04o} {uid} {gid} f\n")),
                kind => out.push_str(&format!(
                    "{name} {kind} {mode:04o} {uid} {gid} {} {}\n",
                    s.major, s.minor
                )),
            }
        }
        fs::write(pseudo, out).map_err(|e| err(format!("{}: {e}", pseudo.display())))?;
        let top = self.owners.get(Path::new("")).copied().unwrap_or(Owner {
            mode: 0o755,
            uid: 0,
            gid: 0,
        });
        Ok([
            "-pf".into(),
            pseudo.as_os_str().to_owned(),
            "-root-mode".into(),
            format!("{:o}", top.mode & 0o7777).into(),
            "-root-uid".into(),
            top.uid.to_string().into(),
            "-root-gid".into(),
            top.gid.to_string().into(),
        ]
        .into())
    }

    /// Forget what the layers said of `path` and below it: the build wrote it anew, as root's.
    pub fn forget(&mut self, path: &Path) {
        self.remove_under(path, |_| false);
    }

    /// Forget what sits at `path` or below it (replaced or whited out), except what `keep`
    /// says.
    fn remove_under(&mut self, path: &Path, keep: impl Fn(&Path) -> bool) {
        self.specials.retain(|p, _| !p.starts_with(path) || keep(p));
        self.owners.retain(|p, _| !p.starts_with(path) || keep(p));
    }
}

/// The path a hard-link entry points to, relative to the root.
fn link_target(entry: &tar::Entry<'_, impl Read>) -> Option<PathBuf> {
    match entry.header().entry_type() {
        tar::EntryType::Link => entry.link_name().ok().flatten().and_then(|l| clean(&l)),
        _ => None,
    }
}

/// Mode and owner of a tar entry.
fn owner(entry: &tar::Entry<'_, impl Read>) -> io::Result<Owner> {
    let h = entry.header();
    Ok(Owner {
        mode: h.mode()?,
        uid: h.uid()?,
        gid: h.gid()?,
    })
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
        owner: owner(entry)?,
        major: h.device_major()?.unwrap_or(0),
        minor: h.device_minor()?.unwrap_or(0),
    }))
}

/// Apply the layer in `file` (named `layer` in errors) on top of `root`; its device nodes,
/// FIFOs, modes and owners go to `pseudo` as well.
pub fn apply_layer(
    root: &Path,
    layer: &str,
    media_type: &str,
    file: fs::File,
    pseudo: &mut PseudoFiles,
) -> Result<(), RootfsError> {
    let mut archive = tar::Archive::new(decompressor(layer, media_type, file)?);
    archive.set_preserve_permissions(true);
    // Only root can give files away; without it, `pseudo` keeps the owners.
    archive.set_preserve_ownerships(pseudo.privileged);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let mut applier = Applier::new(root, layer, pseudo)?;
    for entry in archive.entries().map_err(|e| applier.err(e.to_string()))? {
        let entry = entry.map_err(|e| applier.err(e.to_string()))?;
        applier.apply(entry)?;
    }
    Ok(())
}

/// One layer being applied on top of a root: where, and what it wrote so far.
struct Applier<'a> {
    root: &'a Path,
    canonical_root: PathBuf,
    layer: &'a str,
    pseudo: &'a mut PseudoFiles,
    /// Paths this layer wrote: an opaque marker hides only what lower layers left.
    written: HashSet<PathBuf>,
}

impl<'a> Applier<'a> {
    fn new(
        root: &'a Path,
        layer: &'a str,
        pseudo: &'a mut PseudoFiles,
    ) -> Result<Applier<'a>, RootfsError> {
        let err = |message: String| RootfsError::Layer {
            layer: layer.into(),
            message,
        };
        let canonical_root =
            fs::canonicalize(root).map_err(|e| err(format!("{}: {e}", root.display())))?;
        Ok(Applier {
            root,
            canonical_root,
            layer,
            pseudo,
            written: HashSet::new(),
        })
    }

    fn err(&self, message: String) -> RootfsError {
        RootfsError::Layer {
            layer: self.layer.into(),
            message,
        }
    }

    /// A whiteout's directory, resolved: a symlink planted by a lower layer must not lead a
    /// delete out of the root. `None` when it does not exist (nothing to hide).
    fn inside(&self, parent: &Path) -> Result<Option<PathBuf>, RootfsError> {
        match fs::canonicalize(self.root.join(parent)) {
            Ok(p) if p.starts_with(&self.canonical_root) => Ok(Some(p)),
            Ok(p) => Err(self.err(format!(
                "{}: resolves to {}, outside the root",
                parent.display(),
                p.display()
            ))),
            Err(_) => Ok(None),
        }
    }

    /// One entry of the layer: an opaque marker, a whiteout, or something to put in place.
    fn apply(&mut self, entry: tar::Entry<'_, impl Read>) -> Result<(), RootfsError> {
        let raw = entry
            .path()
            .map_err(|e| self.err(e.to_string()))?
            .into_owned();
        let rel =
            clean(&raw).ok_or_else(|| self.err(format!("{}: leaves the root", raw.display())))?;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = rel.parent().unwrap_or(Path::new(""));
        if name == OPAQUE {
            return self.opaque(parent);
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&raw, parent, hidden);
        }
        self.extract(entry, rel)
    }

    /// Hide what lower layers left in `parent`; what this layer wrote there stays.
    fn opaque(&mut self, parent: &Path) -> Result<(), RootfsError> {
        let written = &self.written;
        self.pseudo
            .remove_under(parent, |p| p == parent || written.contains(p));
        let Some(dir) = self.inside(parent)? else {
            return Ok(());
        };
        if let Ok(children) = fs::read_dir(&dir) {
            for child in children.flatten() {
                let child_rel = parent.join(child.file_name());
                if !self.written.contains(&child_rel) {
                    remove_any(&child.path())
                        .map_err(|e| self.err(format!("{}: {e}", child_rel.display())))?;
                }
            }
        }
        Ok(())
    }

    /// Remove `parent/hidden` and what is below it.
    fn whiteout(&mut self, raw: &Path, parent: &Path, hidden: &str) -> Result<(), RootfsError> {
        // `.wh..` and `.wh...` would hide the folder itself or its parent: the root, or
        // what is above it. No tool writes them; a layer that does is refused.
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(self.err(format!(
                "{}: a whiteout of `{hidden}` would remove its own folder or the one above",
                raw.display()
            )));
        }
        let target = parent.join(hidden);
        self.pseudo.remove_under(&target, |_| false);
        if let Some(dir) = self.inside(parent)? {
            remove_any(&dir.join(hidden))
                .map_err(|e| self.err(format!("{}: {e}", target.display())))?;
        }
        Ok(())
    }

    /// Put a file, folder, link or special file of the layer in place at `rel`.
    fn extract(
        &mut self,
        mut entry: tar::Entry<'_, impl Read>,
        rel: PathBuf,
    ) -> Result<(), RootfsError> {
        let dest = self.root.join(&rel);
        let parent = rel.parent().unwrap_or(Path::new(""));
        let is_dir = entry.header().entry_type().is_dir();
        // A folder over a folder only updates its own metadata; anything else replaces what
        // was there, and what was below it.
        if !(is_dir && fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir())) {
            self.pseudo.remove_under(&rel, |_| false);
        }
        // A hard link shares its target's inode: a link to a device node is another device
        // node, and the target's mode and owner are the link's.
        let target = link_target(&entry);
        let linked = target
            .as_ref()
            .and_then(|t| self.pseudo.specials.get(t).cloned());
        let entry_owner = match target.as_ref().and_then(|t| self.pseudo.owners.get(t)) {
            Some(o) => *o,
            None => owner(&entry).map_err(|e| self.err(e.to_string()))?,
        };
        if let Some(s) = linked.or(special(&entry).map_err(|e| self.err(e.to_string()))?) {
            return self.special(rel, s);
        }
        // A directory replaces a non-directory and the other way round; a directory over a
        // directory only updates its metadata.
        if let Ok(m) = fs::symlink_metadata(&dest)
            && m.is_dir() != is_dir
            && self.inside(parent)?.is_some()
        {
            remove_any(&dest).map_err(|e| self.err(format!("{}: {e}", rel.display())))?;
        }
        entry
            .unpack_in(self.root)
            .map_err(|e| self.err(format!("{}: {}", rel.display(), chain(&e))))?;
        if !self.pseudo.privileged {
            keep_usable(&dest, is_dir).map_err(|e| self.err(format!("{}: {e}", rel.display())))?;
        }
        self.pseudo.owners.insert(rel.clone(), entry_owner);
        self.written.insert(rel);
        Ok(())
    }

    /// A device node or FIFO: recorded for mksquashfs, nothing left in its place on disk.
    fn special(&mut self, rel: PathBuf, s: Special) -> Result<(), RootfsError> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        // mksquashfs makes it inside a folder of the tree: layers list folders first.
        if self.inside(parent)?.is_none() {
            return Err(self.err(format!(
                "{}: its folder is not in this or a lower layer",
                rel.display()
            )));
        }
        remove_any(&self.root.join(&rel))
            .map_err(|e| self.err(format!("{}: {e}", rel.display())))?;
        self.pseudo.specials.insert(rel.clone(), s);
        self.written.insert(rel);
        Ok(())
    }
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
        apply_layer(&root, "l1", TAR, l1, &mut PseudoFiles::default()).unwrap();
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
        apply_layer(&root, "l2", TAR, l2, &mut PseudoFiles::default()).unwrap();
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
        let e = apply_layer(&root, "sha256:evil", TAR, l, &mut PseudoFiles::default()).unwrap_err();
        assert!(e.to_string().contains("outside the root"), "{e}");
        assert!(outside.join("precious").exists());
        let l = layer(tmp.path(), "l2", &[("escape/.wh..wh..opq", Some(""))]);
        assert!(apply_layer(&root, "sha256:evil", TAR, l, &mut PseudoFiles::default()).is_err());
        assert!(outside.join("precious").exists());
        // A directory entry over a file, through the symlink.
        let l = layer(tmp.path(), "l3", &[("escape/precious", None)]);
        assert!(apply_layer(&root, "sha256:evil", TAR, l, &mut PseudoFiles::default()).is_err());
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
            let e =
                apply_layer(&root, "sha256:evil", TAR, l, &mut PseudoFiles::default()).unwrap_err();
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
        let mut specials = PseudoFiles::default();
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
        let pseudo_file = tmp.path().join("pseudo");
        let lines = |pseudo: &PseudoFiles| -> Vec<String> {
            pseudo.mksquashfs_args(&root, &pseudo_file).unwrap();
            std::fs::read_to_string(&pseudo_file)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        };
        let devices = |all: &[String]| -> Vec<String> {
            all.iter().filter(|l| !l.contains(" m ")).cloned().collect()
        };
        let all = lines(&specials);
        assert_eq!(
            devices(&all),
            [
                "\"dev/null\" c 0620 0 5 1 3",
                "\"dev/pipe \\\"x\\\"\" i 0620 0 5 f"
            ]
        );
        // The file over the device has the layer's owner and mode, whoever extracts it.
        assert!(
            all.contains(&"\"dev/sda\" m 0644 0 0".to_string()),
            "{all:?}"
        );
        // A folder listed again by an upper layer keeps what lower layers put in it.
        let l = layer(tmp.path(), "l3", &[("dev", None)]);
        apply_layer(&root, "l3", TAR, l, &mut specials).unwrap();
        assert_eq!(devices(&lines(&specials)).len(), 2);
        let l = layer(tmp.path(), "l4", &[("dev/.wh..wh..opq", Some(""))]);
        apply_layer(&root, "l4", TAR, l, &mut specials).unwrap();
        assert_eq!(devices(&lines(&specials)), Vec::<String>::new());
    }

    #[test]
    fn an_unprivileged_extraction_stays_usable_and_the_squashfs_gets_the_layers_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        let path = tmp.path().join("l");
        let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
        for (name, kind, mode, uid) in [
            ("ro", tar::EntryType::Directory, 0o555, 0),
            ("ro/secret", tar::EntryType::Regular, 0o000, 1234),
            ("ro/tool", tar::EntryType::Regular, 0o4750, 1234),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(uid);
            h.set_gid(uid);
            h.set_mtime(0);
            h.set_size(0);
            b.append_data(&mut h, name, io::empty()).unwrap();
        }
        b.finish().unwrap();
        drop(b);
        // As an ordinary user would: no ownership on disk, owner bits added.
        let mut pseudo = PseudoFiles {
            privileged: false,
            ..PseudoFiles::default()
        };
        apply_layer(&root, "l", TAR, fs::File::open(&path).unwrap(), &mut pseudo).unwrap();
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("ro"), 0o755, "writable for the next layers");
        assert_eq!(mode("ro/secret"), 0o600, "readable for mksquashfs");
        let file = tmp.path().join("pseudo");
        let args = pseudo.mksquashfs_args(&root, &file).unwrap();
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"ro\" m 0555 0 0\n"), "{text}");
        assert!(text.contains("\"ro/secret\" m 0000 1234 1234\n"), "{text}");
        assert!(text.contains("\"ro/tool\" m 4750 1234 1234\n"), "{text}");
        assert_eq!(args[0], "-pf");
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
            &mut PseudoFiles::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("sha256:abc") && e.to_string().contains("zstd"));
        fs::write(tmp.path().join("junk"), b"not a gzip").unwrap();
        let e = apply_layer(
            tmp.path(),
            "sha256:def",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            fs::File::open(tmp.path().join("junk")).unwrap(),
            &mut PseudoFiles::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("sha256:def"), "{e}");
    }
}
