//! SIF (Singularity Image Format) writing — a definition file, the metadata `singularity
//! inspect` reads, labels, a squashfs root filesystem as the primary partition, and the
//! image's SBOM and provenance — and reading the labels and documents back.
//!
//! Layout as in `sylabs/sif` v2 (its `pkg/sif` package): a 128-byte header, a table of
//! 48 descriptors of 585 bytes at 4096, then the objects in descriptor order, partitions aligned
//! to 4096. Everything is little-endian and packed. The squashfs is streamed from its file, never
//! held in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::attest::{Document, DocumentKind};

const LAUNCH_SCRIPT: &[u8] = b"#!/usr/bin/env run-singularity\n";
const MAGIC: &[u8] = b"SIF_MAGIC\0";
const VERSION: &[u8] = b"01\0";
const DESCRIPTORS_TOTAL: u64 = 48;
const DESCRIPTORS_OFFSET: u64 = 4096;
const DESCRIPTOR_SIZE: u64 = 585;
const DATA_OFFSET: u64 = DESCRIPTORS_OFFSET + DESCRIPTORS_TOTAL * DESCRIPTOR_SIZE;
const PARTITION_ALIGN: u64 = 4096;
/// Group 1, as `singularity build` puts every object in it.
const GROUP_1: u32 = 1 | 0xF000_0000;
const FS_SQUASHFS: i32 = 1;
const PART_PRIMSYS: i32 = 2;
/// The squashfs compression id Singularity refuses ("unknown compression algorithm").
const SQUASHFS_ZSTD: u16 = 6;

/// Descriptor data types.
pub const DATA_DEFFILE: i32 = 0x4001;
pub const DATA_LABELS: i32 = 0x4003;
pub const DATA_PARTITION: i32 = 0x4004;
pub const DATA_GENERIC_JSON: i32 = 0x4006;
pub const DATA_SBOM: i32 = 0x4009;
/// The SBOM object's format (its Extra, an i32): `SBOMFormatSPDXJSON`, the fourth of the
/// `SBOMFormat` constants from 1 in `sylabs/sif` `pkg/sif/sif.go` (`siftool add --sbomformat
/// spdx-json`).
pub const SBOM_FORMAT_SPDX_JSON: i32 = 4;
/// The `JSON.Generic` object `singularity inspect` reads labels and the definition from.
pub const INSPECT_METADATA: &str = "inspect-metadata.json";
/// The `JSON.Generic` object holding the image config's `config` (Cmd, Entrypoint, Env…).
pub const OCI_CONFIG: &str = "oci-config.json";

#[derive(Debug, thiserror::Error)]
pub enum SifError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: not a squashfs file (no `hsqs` superblock)")]
    NotSquashfs(PathBuf),
    #[error(
        "{0}: zstd-compressed squashfs, which Singularity refuses; make it with gzip (mksquashfs -comp gzip)"
    )]
    Zstd(PathBuf),
    #[error("{path}: not a SIF file: {reason}")]
    NotSif { path: PathBuf, reason: String },
    #[error("architecture `{0}` has no SIF code")]
    UnknownArch(String),
}

/// What goes into one SIF file.
#[derive(Debug, Clone, Default)]
pub struct SifSpec {
    /// `amd64`/`x86_64`, `arm64`/`aarch64`, or another Go architecture name.
    pub arch: String,
    /// The definition file text (for `.def` containers; a generated one for Spack containers).
    pub deffile: String,
    /// Image labels plus the project's checksums: `singularity inspect` shows them.
    pub labels: BTreeMap<String, String>,
    /// The environment scripts `inspect --environment` shows, by path in the image.
    pub environment: BTreeMap<String, String>,
    /// What `inspect --runscript`, `--startscript` and `--helpfile` show.
    pub runscript: Option<String>,
    pub startscript: Option<String>,
    pub helpfile: Option<String>,
    /// The image config's `config` object, kept as Apptainer keeps it (`oci-config.json`).
    pub oci_config: Option<serde_json::Value>,
    /// The root filesystem, a gzip (or xz, lz4…) squashfs.
    pub squashfs: PathBuf,
    /// Unix seconds; `None` writes a deterministic image (nil id, Go's zero time) as
    /// `sif.OptCreateDeterministic` does.
    pub created: Option<i64>,
    /// The image's SBOM (an `SBOM` object, SPDX JSON) and provenance (a `JSON.Generic`
    /// object), each named by its file name.
    pub documents: Vec<Document>,
}

/// The SIF code of an architecture (`02` for amd64).
pub fn arch_code(arch: &str) -> Result<[u8; 3], SifError> {
    let code = match arch {
        "386" | "i386" | "i686" => "01",
        "amd64" | "x86_64" => "02",
        "arm" => "03",
        "arm64" | "aarch64" => "04",
        "ppc64" => "05",
        "ppc64le" => "06",
        "mips" => "07",
        "mipsle" => "08",
        "mips64" => "09",
        "mips64le" => "10",
        "s390x" => "11",
        "riscv64" => "12",
        "loong64" => "13",
        _ => return Err(SifError::UnknownArch(arch.to_string())),
    };
    let b = code.as_bytes();
    Ok([b[0], b[1], 0])
}

/// The `inspect-metadata.json` object: labels, definition file, environment scripts, runscript,
/// startscript and help, as `pkg/inspect/metadata.go` reads them.
pub fn inspect_metadata(spec: &SifSpec) -> Vec<u8> {
    let mut attributes = serde_json::json!({"labels": spec.labels, "deffile": spec.deffile});
    if !spec.environment.is_empty() {
        attributes["environment"] = serde_json::json!(spec.environment);
    }
    for (key, value) in [
        ("runscript", &spec.runscript),
        ("startscript", &spec.startscript),
        ("helpfile", &spec.helpfile),
    ] {
        if let Some(v) = value {
            attributes[key] = serde_json::json!(v);
        }
    }
    let value = serde_json::json!({"data": {"attributes": attributes}, "type": "container"});
    serde_json::to_vec(&value).expect("a JSON value serialises")
}

enum Source<'a> {
    Bytes(Vec<u8>),
    File(&'a Path, u64),
}

struct Object<'a> {
    data_type: i32,
    name: &'static str,
    extra: Vec<u8>,
    align: u64,
    source: Source<'a>,
}

impl Object<'_> {
    fn size(&self) -> u64 {
        match &self.source {
            Source::Bytes(b) => b.len() as u64,
            Source::File(_, len) => *len,
        }
    }
}

/// Check the squashfs superblock Singularity checks: magic, and a compression it accepts.
fn check_squashfs(path: &Path) -> Result<u64, SifError> {
    let io_err = |source| SifError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io_err)?;
    let len = f.metadata().map_err(io_err)?.len();
    let mut sb = [0u8; 22];
    if f.read_exact(&mut sb).is_err() || &sb[..4] != b"hsqs" {
        return Err(SifError::NotSquashfs(path.to_path_buf()));
    }
    if u16::from_le_bytes([sb[20], sb[21]]) == SQUASHFS_ZSTD {
        return Err(SifError::Zstd(path.to_path_buf()));
    }
    Ok(len)
}

fn align_up(n: u64, align: u64) -> u64 {
    if align == 0 {
        n
    } else {
        n.div_ceil(align) * align
    }
}

/// Write the SIF to `out` (named `out_path` in errors); returns its length.
pub fn write(spec: &SifSpec, out: &mut impl Write, out_path: &Path) -> Result<u64, SifError> {
    let arch = arch_code(&spec.arch)?;
    let squashfs_len = check_squashfs(&spec.squashfs)?;
    let objects = objects(spec, arch, squashfs_len);
    // Go's `time.Time{}.Unix()`: what deterministic images store.
    let time = spec.created.unwrap_or(-62_135_596_800);
    let id = match spec.created {
        Some(_) => random_id(),
        None => [0; 16],
    };
    let (offsets, end) = layout(&objects);
    let mut buf = header(arch, id, time, objects.len(), end);
    buf.resize(DESCRIPTORS_OFFSET as usize, 0);
    for (i, (o, (off, padding))) in objects.iter().zip(&offsets).enumerate() {
        descriptor(&mut buf, i, o, *off, *padding, time);
    }
    buf.resize(DATA_OFFSET as usize, 0);
    let out_err = |source| SifError::Io {
        path: out_path.to_path_buf(),
        source,
    };
    out.write_all(&buf).map_err(out_err)?;
    for (o, (_, padding)) in objects.iter().zip(&offsets) {
        out.write_all(&vec![0u8; *padding as usize])
            .map_err(out_err)?;
        write_object(o, out, out_path)?;
    }
    out.flush().map_err(out_err)?;
    Ok(end)
}

/// The objects and order `apptainer build` writes: definition, inspect metadata, OCI config,
/// the partition; then the documents.
fn objects(spec: &SifSpec, arch: [u8; 3], squashfs_len: u64) -> Vec<Object<'_>> {
    let mut partition_extra = Vec::with_capacity(11);
    partition_extra.extend_from_slice(&FS_SQUASHFS.to_le_bytes());
    partition_extra.extend_from_slice(&PART_PRIMSYS.to_le_bytes());
    partition_extra.extend_from_slice(&arch);
    let json = |name, bytes| Object {
        data_type: DATA_GENERIC_JSON,
        name,
        extra: Vec::new(),
        align: 0,
        source: Source::Bytes(bytes),
    };
    let mut objects = vec![
        Object {
            data_type: DATA_DEFFILE,
            name: "",
            extra: Vec::new(),
            align: 0,
            source: Source::Bytes(spec.deffile.as_bytes().to_vec()),
        },
        json(INSPECT_METADATA, inspect_metadata(spec)),
    ];
    if let Some(config) = &spec.oci_config {
        let bytes = serde_json::to_vec(config).expect("a JSON value serialises");
        objects.push(json(OCI_CONFIG, bytes));
    }
    objects.push(Object {
        data_type: DATA_PARTITION,
        name: "",
        extra: partition_extra,
        align: PARTITION_ALIGN,
        source: Source::File(&spec.squashfs, squashfs_len),
    });
    objects.extend(spec.documents.iter().map(document_object));
    objects
}

/// The object carrying `doc`: the SBOM as an SPDX JSON `SBOM`, the provenance as a named
/// `JSON.Generic`.
fn document_object(doc: &Document) -> Object<'_> {
    let (data_type, extra) = match doc.kind {
        DocumentKind::Sbom => (DATA_SBOM, SBOM_FORMAT_SPDX_JSON.to_le_bytes().to_vec()),
        DocumentKind::Provenance => (DATA_GENERIC_JSON, Vec::new()),
    };
    Object {
        data_type,
        name: doc.kind.file_name(),
        extra,
        align: 0,
        source: Source::Bytes(doc.bytes.clone()),
    }
}

/// Where each object starts and the padding before it, and where the data ends.
fn layout(objects: &[Object]) -> (Vec<(u64, u64)>, u64) {
    let mut offsets = Vec::with_capacity(objects.len());
    let mut end = DATA_OFFSET;
    for o in objects {
        let off = align_up(end, o.align);
        offsets.push((off, off - end));
        end = off + o.size();
    }
    (offsets, end)
}

/// The global header: launch script, magic, version, architecture, id, times, and where the
/// descriptors and the data lie.
fn header(arch: [u8; 3], id: [u8; 16], time: i64, objects: usize, end: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(DATA_OFFSET as usize);
    let mut launch = [0u8; 32];
    launch[..LAUNCH_SCRIPT.len()].copy_from_slice(LAUNCH_SCRIPT);
    buf.extend_from_slice(&launch);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(VERSION);
    buf.extend_from_slice(&arch);
    buf.extend_from_slice(&id);
    buf.extend_from_slice(&time.to_le_bytes());
    buf.extend_from_slice(&time.to_le_bytes());
    let total = DESCRIPTORS_TOTAL as i64;
    buf.extend_from_slice(&(total - objects as i64).to_le_bytes());
    buf.extend_from_slice(&total.to_le_bytes());
    buf.extend_from_slice(&(DESCRIPTORS_OFFSET as i64).to_le_bytes());
    buf.extend_from_slice(&((DESCRIPTORS_TOTAL * DESCRIPTOR_SIZE) as i64).to_le_bytes());
    buf.extend_from_slice(&(DATA_OFFSET as i64).to_le_bytes());
    buf.extend_from_slice(&((end - DATA_OFFSET) as i64).to_le_bytes());
    buf
}

/// The descriptor of the `i`th object, at `off` after `padding` bytes, appended to `buf`.
fn descriptor(buf: &mut Vec<u8>, i: usize, o: &Object, off: u64, padding: u64, time: i64) {
    let start = buf.len();
    buf.extend_from_slice(&o.data_type.to_le_bytes());
    buf.push(1);
    buf.extend_from_slice(&(i as u32 + 1).to_le_bytes());
    buf.extend_from_slice(&GROUP_1.to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes());
    buf.extend_from_slice(&(off as i64).to_le_bytes());
    buf.extend_from_slice(&(o.size() as i64).to_le_bytes());
    buf.extend_from_slice(&((padding + o.size()) as i64).to_le_bytes());
    buf.extend_from_slice(&time.to_le_bytes());
    buf.extend_from_slice(&time.to_le_bytes());
    buf.extend_from_slice(&0i64.to_le_bytes());
    buf.extend_from_slice(&0i64.to_le_bytes());
    let mut name = [0u8; 128];
    name[..o.name.len()].copy_from_slice(o.name.as_bytes());
    buf.extend_from_slice(&name);
    let mut extra = [0u8; 384];
    extra[..o.extra.len()].copy_from_slice(&o.extra);
    buf.extend_from_slice(&extra);
    debug_assert_eq!(buf.len() - start, DESCRIPTOR_SIZE as usize);
}

/// The object's bytes, or its file streamed, to `out` (named `out_path` in errors).
fn write_object(o: &Object, out: &mut impl Write, out_path: &Path) -> Result<(), SifError> {
    let out_err = |source| SifError::Io {
        path: out_path.to_path_buf(),
        source,
    };
    match &o.source {
        Source::Bytes(b) => out.write_all(b).map_err(out_err),
        Source::File(path, len) => {
            let f = File::open(path).map_err(|source| SifError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            // Exactly the length laid out: a file that changed meanwhile must not shift what
            // the descriptors say.
            let copied = io::copy(&mut f.take(*len), out).map_err(out_err)?;
            if copied != *len {
                return Err(SifError::Io {
                    path: path.to_path_buf(),
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while written",
                    ),
                });
            }
            Ok(())
        }
    }
}

/// One used descriptor of a SIF, as read.
struct Entry {
    data_type: i32,
    offset: i64,
    size: i64,
    name: String,
    extra: [u8; 4],
}

/// A SIF opened for reading its metadata: only the header and the descriptor table are read,
/// then the objects asked for, so a SIF of gigabytes costs a few kilobytes of reading.
struct Reader<'a> {
    path: &'a Path,
    file: File,
    entries: Vec<Entry>,
}

impl<'a> Reader<'a> {
    fn open(path: &'a Path) -> Result<Reader<'a>, SifError> {
        use std::io::{Seek, SeekFrom};
        let mut file = File::open(path).map_err(|source| SifError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |reason: &str| not_sif(path, reason);
        let mut header = [0u8; 128];
        file.read_exact(&mut header)
            .map_err(|_| bad("shorter than a SIF header"))?;
        if &header[32..42] != MAGIC {
            return Err(bad("no SIF_MAGIC"));
        }
        let (total, table) = (le_i64(&header, 88), le_i64(&header, 96));
        if !(0..=4096).contains(&total) || table < 128 {
            return Err(bad("descriptor table out of range"));
        }
        let mut descriptors = vec![0u8; total as usize * DESCRIPTOR_SIZE as usize];
        file.seek(SeekFrom::Start(table as u64))
            .and_then(|_| file.read_exact(&mut descriptors))
            .map_err(|_| bad("descriptor table cut short"))?;
        let entries = descriptors
            .chunks(DESCRIPTOR_SIZE as usize)
            .filter(|d| d[4] == 1)
            .map(|d| {
                let name = &d[73..201];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                Entry {
                    data_type: i32::from_le_bytes(d[..4].try_into().expect("4 bytes")),
                    offset: le_i64(d, 17),
                    size: le_i64(d, 25),
                    name: String::from_utf8_lossy(name).into_owned(),
                    extra: d[201..205].try_into().expect("4 bytes"),
                }
            })
            .collect();
        Ok(Reader {
            path,
            file,
            entries,
        })
    }

    /// The content of `entry` (at most 64 MiB: metadata, never a partition).
    fn read(&mut self, entry: &Entry) -> Result<Vec<u8>, SifError> {
        use std::io::{Seek, SeekFrom};
        if !(0..=64 << 20).contains(&entry.size) || entry.offset < 0 {
            return Err(not_sif(self.path, "metadata object out of range"));
        }
        let mut buf = vec![0u8; entry.size as usize];
        self.file
            .seek(SeekFrom::Start(entry.offset as u64))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|_| not_sif(self.path, "metadata object cut short"))?;
        Ok(buf)
    }

    /// The content of the first object `pick` chooses, if any.
    fn first(&mut self, pick: impl Fn(&Entry) -> bool) -> Result<Option<Vec<u8>>, SifError> {
        let Some(i) = self.entries.iter().position(pick) else {
            return Ok(None);
        };
        let entry = self.entries.swap_remove(i);
        self.read(&entry).map(Some)
    }
}

fn not_sif(path: &Path, reason: &str) -> SifError {
    SifError::NotSif {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn le_i64(b: &[u8], off: usize) -> i64 {
    i64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// The labels a SIF records: its `JSON.Labels` object, else the labels of the inspect metadata
/// `singularity build` writes.
pub fn read_labels(path: &Path) -> Result<BTreeMap<String, String>, SifError> {
    let mut sif = Reader::open(path)?;
    let json_err = |what: &str, e: serde_json::Error| not_sif(path, &format!("{what}: {e}"));
    if let Some(bytes) = sif.first(|e| e.data_type == DATA_LABELS)? {
        return serde_json::from_slice(&bytes).map_err(|e| json_err("labels object", e));
    }
    let Some(bytes) =
        sif.first(|e| e.data_type == DATA_GENERIC_JSON && e.name == INSPECT_METADATA)?
    else {
        return Ok(BTreeMap::new());
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| json_err(INSPECT_METADATA, e))?;
    let labels = value
        .pointer("/data/attributes/labels")
        .cloned()
        .unwrap_or_default();
    if labels.is_null() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_value(labels).map_err(|e| json_err(INSPECT_METADATA, e))
}

/// The documents a SIF carries, in its order: each SPDX JSON `SBOM` object, and each
/// `JSON.Generic` named as a provenance document.
pub fn read_documents(path: &Path) -> Result<Vec<Document>, SifError> {
    let mut sif = Reader::open(path)?;
    let entries = std::mem::take(&mut sif.entries);
    let mut documents = Vec::new();
    for entry in &entries {
        let kind = match entry.data_type {
            DATA_SBOM if i32::from_le_bytes(entry.extra) == SBOM_FORMAT_SPDX_JSON => {
                DocumentKind::Sbom
            }
            DATA_GENERIC_JSON if entry.name == DocumentKind::Provenance.file_name() => {
                DocumentKind::Provenance
            }
            _ => continue,
        };
        documents.push(Document {
            kind,
            bytes: sif.read(entry)?,
        });
    }
    Ok(documents)
}

/// A random RFC 4122 version-4 id, as the sif library gives new images.
fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    // The kernel's generator; a clock-derived id is the fallback where it is unavailable.
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .is_err()
    {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        id = nanos.to_le_bytes();
    }
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le_i64(b: &[u8], off: usize) -> i64 {
        i64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    fn squashfs(dir: &Path, compression: u16, len: usize) -> PathBuf {
        let mut bytes = vec![0u8; len];
        bytes[..4].copy_from_slice(b"hsqs");
        bytes[20..22].copy_from_slice(&compression.to_le_bytes());
        let p = dir.join("root.squashfs");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn spec(squashfs: PathBuf) -> SifSpec {
        SifSpec {
            arch: "x86_64".into(),
            deffile: "Bootstrap: docker\nFrom: python:3.13\n".into(),
            labels: [("org.example.checksum".to_string(), "abc".to_string())].into(),
            environment: [(
                "/.singularity.d/env/10-docker2singularity.sh".to_string(),
                "#!/bin/sh\nexport A=\"${A:-\"1\"}\"\n".to_string(),
            )]
            .into(),
            runscript: Some("#!/bin/sh\nexec \"$@\"\n".into()),
            startscript: Some("#!/bin/sh\n".into()),
            helpfile: None,
            oci_config: Some(serde_json::json!({"Cmd": ["python3"], "WorkingDir": "/w"})),
            squashfs,
            created: None,
            documents: Vec::new(),
        }
    }

    #[test]
    fn layout_follows_the_sif_library() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(squashfs(dir.path(), 1, 5000));
        let mut out = Vec::new();
        let len = write(&s, &mut out, Path::new("x.sif")).unwrap();
        assert_eq!(len as usize, out.len());
        assert_eq!(&out[..31], LAUNCH_SCRIPT);
        assert_eq!(&out[32..42], b"SIF_MAGIC\0");
        assert_eq!(&out[42..45], b"01\0");
        assert_eq!(&out[45..48], b"02\0");
        assert_eq!(&out[48..64], &[0u8; 16], "deterministic: nil id");
        assert_eq!(le_i64(&out, 64), -62_135_596_800);
        assert_eq!(le_i64(&out, 80), 44, "free descriptors");
        assert_eq!(le_i64(&out, 88), 48);
        assert_eq!(le_i64(&out, 96), 4096);
        assert_eq!(le_i64(&out, 104), 28080);
        assert_eq!(le_i64(&out, 112), 32176);
        assert_eq!(le_i64(&out, 112) + le_i64(&out, 120), out.len() as i64);

        // The partition: the fourth descriptor, aligned to 4096, squashfs/PrimSys/amd64.
        let d = 4096 + 3 * 585;
        assert_eq!(
            i32::from_le_bytes(out[d..d + 4].try_into().unwrap()),
            0x4004
        );
        assert_eq!(out[d + 4], 1);
        assert_eq!(u32::from_le_bytes(out[d + 5..d + 9].try_into().unwrap()), 4);
        assert_eq!(
            u32::from_le_bytes(out[d + 9..d + 13].try_into().unwrap()),
            0xF000_0001
        );
        let off = le_i64(&out, d + 17) as usize;
        assert_eq!(off % 4096, 0);
        assert_eq!(le_i64(&out, d + 25), 5000);
        assert_eq!(&out[off..off + 4], b"hsqs");
        assert_eq!(
            &out[d + 201..d + 212],
            &[1, 0, 0, 0, 2, 0, 0, 0, b'0', b'2', 0]
        );
        // The objects before it follow each other with no gap, from the data offset.
        let prev_end = (0..3).map(|i| 4096 + i * 585).fold(32176i64, |end, d| {
            assert_eq!(le_i64(&out, d + 17), end);
            end + le_i64(&out, d + 25)
        });
        assert_eq!(le_i64(&out, d + 33), off as i64 - prev_end + 5000);
        // Unused descriptors are all zero.
        assert!(out[4096 + 4 * 585..32176].iter().all(|b| *b == 0));

        // `singularity inspect` reads labels and definition from inspect-metadata.json.
        let d = 4096 + 585;
        let (o, n) = (le_i64(&out, d + 17) as usize, le_i64(&out, d + 25) as usize);
        let meta: serde_json::Value = serde_json::from_slice(&out[o..o + n]).unwrap();
        assert_eq!(
            meta["data"]["attributes"]["labels"]["org.example.checksum"],
            "abc"
        );
        assert_eq!(meta["data"]["attributes"]["deffile"], s.deffile);
        assert_eq!(
            meta["data"]["attributes"]["environment"]["/.singularity.d/env/10-docker2singularity.sh"],
            "#!/bin/sh\nexport A=\"${A:-\"1\"}\"\n"
        );
        assert_eq!(
            meta["data"]["attributes"]["runscript"],
            "#!/bin/sh\nexec \"$@\"\n"
        );
        assert_eq!(meta["data"]["attributes"]["startscript"], "#!/bin/sh\n");
        assert_eq!(
            &out[d + 73..d + 73 + INSPECT_METADATA.len() + 1],
            format!("{INSPECT_METADATA}\0").as_bytes()
        );
        // The image config, as Apptainer keeps it: a `JSON.Generic` named oci-config.json.
        let d = 4096 + 2 * 585;
        assert_eq!(
            i32::from_le_bytes(out[d..d + 4].try_into().unwrap()),
            DATA_GENERIC_JSON
        );
        assert_eq!(
            &out[d + 73..d + 73 + OCI_CONFIG.len() + 1],
            format!("{OCI_CONFIG}\0").as_bytes()
        );
        let (o, n) = (le_i64(&out, d + 17) as usize, le_i64(&out, d + 25) as usize);
        let config: serde_json::Value = serde_json::from_slice(&out[o..o + n]).unwrap();
        assert_eq!(Some(config), s.oci_config);
    }

    #[test]
    fn deterministic_images_are_byte_identical_and_timed_ones_get_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(squashfs(dir.path(), 1, 100));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write(&s, &mut a, Path::new("a")).unwrap();
        write(&s, &mut b, Path::new("b")).unwrap();
        assert_eq!(a, b);
        let timed = SifSpec {
            created: Some(1_764_000_000),
            ..s
        };
        let mut c = Vec::new();
        write(&timed, &mut c, Path::new("c")).unwrap();
        assert_ne!(&c[48..64], &[0u8; 16]);
        assert_eq!(le_i64(&c, 64), 1_764_000_000);
    }

    #[test]
    fn labels_are_read_back_and_a_non_sif_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(squashfs(dir.path(), 1, 5000));
        let path = dir.path().join("a.sif");
        let mut f = File::create(&path).unwrap();
        write(&s, &mut f, &path).unwrap();
        assert_eq!(read_labels(&path).unwrap(), s.labels);
        let not = dir.path().join("b.sif");
        std::fs::write(&not, vec![7u8; 300]).unwrap();
        let err = read_labels(&not).unwrap_err().to_string();
        assert!(err.contains("b.sif: not a SIF file"), "{err}");
    }

    #[test]
    fn documents_are_objects_of_their_kind_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let documents = vec![
            Document {
                kind: DocumentKind::Sbom,
                bytes: br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec(),
            },
            Document {
                kind: DocumentKind::Provenance,
                bytes: br#"{"_type":"https://in-toto.io/Statement/v1"}"#.to_vec(),
            },
        ];
        let s = SifSpec {
            documents: documents.clone(),
            ..spec(squashfs(dir.path(), 1, 5000))
        };
        let path = dir.path().join("a.sif");
        write(&s, &mut File::create(&path).unwrap(), &path).unwrap();
        assert_eq!(read_documents(&path).unwrap(), documents);
        // Labels are still found beside them.
        assert_eq!(read_labels(&path).unwrap(), s.labels);
        let bytes = std::fs::read(&path).unwrap();
        // After definition, inspect metadata, OCI config and partition: the SBOM, as SPDX JSON.
        let sbom = &bytes[4096 + 4 * 585..4096 + 5 * 585];
        assert_eq!(i32::from_le_bytes(sbom[..4].try_into().unwrap()), DATA_SBOM);
        assert_eq!(&sbom[73..87], b"sbom.spdx.json");
        assert_eq!(&sbom[201..205], &4i32.to_le_bytes());
        let provenance = &bytes[4096 + 5 * 585..4096 + 6 * 585];
        assert_eq!(
            i32::from_le_bytes(provenance[..4].try_into().unwrap()),
            DATA_GENERIC_JSON
        );
        // A SIF without documents has none.
        let bare = dir.path().join("b.sif");
        let s = spec(squashfs(dir.path(), 1, 5000));
        write(&s, &mut File::create(&bare).unwrap(), &bare).unwrap();
        assert!(read_documents(&bare).unwrap().is_empty());
    }

    #[test]
    fn what_singularity_refuses_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let zstd = spec(squashfs(dir.path(), 6, 100));
        let err = write(&zstd, &mut Vec::new(), Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("root.squashfs") && err.to_string().contains("zstd"));
        let not = dir.path().join("tar");
        std::fs::write(&not, b"ustar").unwrap();
        let err = write(&spec(not), &mut Vec::new(), Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("not a squashfs"), "{err}");
        let mips = SifSpec {
            arch: "sparc".into(),
            ..spec(squashfs(dir.path(), 1, 100))
        };
        assert!(matches!(
            write(&mips, &mut Vec::new(), Path::new("x")),
            Err(SifError::UnknownArch(_))
        ));
    }
}
