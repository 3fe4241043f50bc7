//! The build-cache index: a Spack database (`index.json` in v2, the index blob in v3), read
//! without copying its records and written back compactly as Spack does.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::spack::spec::{Compiler, Interner, Shared, SpecNode};
use crate::spack::{FormatError, is_dag_hash};

/// Database versions this code reads (`"7"` Spack 0.21–0.23, `"8"` 1.0–1.2, `"9"` 1.3).
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 6..=9;

/// One record of the index. Its `ref_count` is checked when read, not kept: nothing reads it (a
/// rewrite copies the records as written), and it took 8 bytes an entry.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub node: SpecNode,
    /// `false` for records (externals, for instance) that have no objects in the cache.
    pub in_buildcache: bool,
}

/// A parsed index. Only what the tools use is held in memory; the original bytes stay where
/// they were read from (a file, for an index fetched from a store: one of 1,000,000 specs is
/// ~800 MB of JSON), so records can be written back unchanged, in file order.
#[derive(Debug, Clone)]
pub struct Database {
    /// `database.version` as written (a string in Spack ≥ 0.21).
    pub version: String,
    pub entries: IndexMap<Shared, IndexEntry>,
    /// sha256 of the bytes read: what `index.json.hash` must hold.
    pub sha256: String,
    /// Length of the bytes read.
    pub len: usize,
    original: Original,
}

/// An entry's node: what the index's graph is made of.
impl AsRef<SpecNode> for IndexEntry {
    fn as_ref(&self) -> &SpecNode {
        &self.node
    }
}

/// Where the bytes an index was read from are kept.
#[derive(Debug, Clone)]
enum Original {
    Memory(Arc<[u8]>),
    /// Read with positioned reads, so clones never share a file offset.
    File(Arc<File>),
}

impl Original {
    fn reader(&self) -> Box<dyn Read + '_> {
        match self {
            Original::Memory(bytes) => Box::new(&bytes[..]),
            Original::File(file) => Box::new(BufReader::with_capacity(
                1 << 16,
                FileAt {
                    file: file.as_ref(),
                    at: 0,
                },
            )),
        }
    }
}

/// A file read from its start with positioned reads.
struct FileAt<'a> {
    file: &'a File,
    at: u64,
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    sha256: Sha256,
    len: usize,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.len += n;
        Ok(n)
    }
}

#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(borrow)]
    spec: &'a RawValue,
    /// Only checked to be a number, as Spack writes it.
    #[serde(default, rename = "ref_count")]
    _ref_count: i64,
    #[serde(default)]
    in_buildcache: Option<bool>,
}

/// One pass over an index's JSON, streamed: `on_version` gets `database.version` when it is
/// read (before the records, where Spack writes it, so an unsupported one stops the pass before
/// any record is parsed), `on_record` each install record (its key and raw JSON) in file order,
/// duplicates included (a map would silently keep one of two records of the same hash, and the
/// rewrite would then copy the wrong one). Only one record is in memory at a time. An error of
/// either stops the pass and is returned as it is. A repeated `database`, `version` or
/// `installs` is refused: Python's reader (Spack's) keeps the last, serde the first. Returns
/// `database.version` as read.
fn each_record<R, V, F>(
    reader: R,
    mut on_version: V,
    mut on_record: F,
) -> Result<Option<serde_json::Value>, RecordsError>
where
    R: Read,
    V: FnMut(&serde_json::Value) -> Result<(), FormatError>,
    F: FnMut(&str, &RawValue) -> Result<(), FormatError>,
{
    let mut pass = Pass {
        on_version: &mut on_version,
        on_record: &mut on_record,
        failed: None,
    };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let version = serde::de::DeserializeSeed::deserialize(Top(&mut pass), &mut de)
        .and_then(|version| de.end().map(|()| version));
    match (version, pass.failed) {
        (_, Some(e)) => Err(RecordsError::Record(e)),
        (Ok(version), None) => Ok(version),
        (Err(e), None) => Err(RecordsError::Json(e)),
    }
}

enum RecordsError {
    Json(serde_json::Error),
    Record(FormatError),
}

/// What the visitors of one pass share: the callbacks, and the error that stopped them (serde's
/// own errors carry only text).
struct Pass<'f> {
    on_version: &'f mut dyn FnMut(&serde_json::Value) -> Result<(), FormatError>,
    on_record: &'f mut dyn FnMut(&str, &RawValue) -> Result<(), FormatError>,
    failed: Option<FormatError>,
}

impl Pass<'_> {
    /// Keep `result`'s error for the caller and stop the parser with `why`.
    fn check<E: serde::de::Error>(
        &mut self,
        result: Result<(), FormatError>,
        why: &str,
    ) -> Result<(), E> {
        result.map_err(|e| {
            self.failed = Some(e);
            E::custom(why)
        })
    }
}

/// `{"database": {...}}`, other keys ignored.
struct Top<'p, 'f>(&'p mut Pass<'f>);

impl<'de> serde::de::DeserializeSeed<'de> for Top<'_, '_> {
    type Value = Option<serde_json::Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Top<'_, '_> {
    type Value = Option<serde_json::Value>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with a `database`")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut version = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "database" {
                if version.is_some() {
                    return Err(serde::de::Error::duplicate_field("database"));
                }
                version = Some(map.next_value_seed(Db(&mut *self.0))?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        version.ok_or_else(|| serde::de::Error::missing_field("database"))
    }
}

/// `{"version": …, "installs": {…}}`, other keys ignored, in either order.
struct Db<'p, 'f>(&'p mut Pass<'f>);

impl<'de> serde::de::DeserializeSeed<'de> for Db<'_, '_> {
    type Value = Option<serde_json::Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Db<'_, '_> {
    type Value = Option<serde_json::Value>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a database with `version` and `installs`")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let pass = self.0;
        let mut version = None;
        let mut installs = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "version" if version.is_some() => {
                    return Err(serde::de::Error::duplicate_field("version"));
                }
                "version" => {
                    let value = map.next_value()?;
                    let checked = (pass.on_version)(&value);
                    pass.check(checked, "stopped at an unsupported version")?;
                    version = Some(value);
                }
                "installs" if installs => {
                    return Err(serde::de::Error::duplicate_field("installs"));
                }
                "installs" => {
                    installs = true;
                    map.next_value_seed(Installs(&mut *pass))?
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(version)
    }
}

/// The install records, handed one at a time to `on_record`.
struct Installs<'p, 'f>(&'p mut Pass<'f>);

impl<'de> serde::de::DeserializeSeed<'de> for Installs<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Installs<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of install records")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(hash) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let record: Box<RawValue> = map.next_value()?;
            let checked = (self.0.on_record)(&hash, &record);
            self.0.check(checked, "stopped at an invalid record")?;
        }
        Ok(())
    }
}

/// `database.version` as text, when this code reads that version.
fn version_of(what: &str, value: &serde_json::Value) -> Result<String, FormatError> {
    let version = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            return Err(FormatError::invalid(
                what,
                format!("database.version is {other}, expected a number"),
            ));
        }
    };
    match version.parse::<u32>() {
        Ok(v) if SUPPORTED_VERSIONS.contains(&v) => Ok(version),
        _ => Err(FormatError::invalid(
            what,
            format!(
                "database version {version} is not supported (expected {} to {})",
                SUPPORTED_VERSIONS.start(),
                SUPPORTED_VERSIONS.end()
            ),
        )),
    }
}

impl Database {
    /// Parse index bytes; `what` names the object in errors (e.g. `s3://b/build_cache/index.json`).
    pub fn parse(what: &str, bytes: Vec<u8>) -> Result<Database, FormatError> {
        let (sha256, len) = (hex::encode(Sha256::digest(&bytes)), bytes.len());
        let original = Original::Memory(bytes.into());
        let (version, entries) = Self::read_records(what, original.reader())?;
        Ok(Database {
            version,
            entries,
            sha256,
            len,
            original,
        })
    }

    /// Parse the index in `file` (read from its start), streamed: memory holds the parsed
    /// records, never the whole JSON. The file is kept for rewriting and must not change.
    pub fn read_file(what: &str, file: File) -> Result<Database, FormatError> {
        let file = Arc::new(file);
        // Hashed in the buffer's chunks: the parser reads a byte at a time.
        let mut reader = BufReader::with_capacity(
            1 << 16,
            Hashing {
                inner: FileAt {
                    file: file.as_ref(),
                    at: 0,
                },
                sha256: Sha256::new(),
                len: 0,
            },
        );
        let (version, entries) = Self::read_records(what, &mut reader)?;
        // Whatever the parser left unread (trailing white space) counts in the hash too.
        std::io::copy(&mut reader, &mut std::io::sink())
            .map_err(|e| FormatError::invalid(what, format!("reading: {e}")))?;
        let hashing = reader.into_inner();
        Ok(Database {
            version,
            entries,
            sha256: hex::encode(hashing.sha256.finalize()),
            len: hashing.len,
            original: Original::File(file),
        })
    }

    fn read_records(
        what: &str,
        reader: impl Read,
    ) -> Result<(String, IndexMap<Shared, IndexEntry>), FormatError> {
        let mut entries = IndexMap::new();
        let mut strings = Interner::default();
        let version = each_record(reader, |v| version_of(what, v).map(drop), |hash, record| {
            if !is_dag_hash(hash) {
                return Err(FormatError::invalid(
                    what,
                    format!("install key `{hash}` is not a DAG hash"),
                ));
            }
            let rec: RawRecord<'_> = serde_json::from_str(record.get())
                .map_err(|e| FormatError::invalid(what, format!("record {hash}: {e}")))?;
            let node = SpecNode::from_json(rec.spec, Some(hash), what, &mut strings)?;
            if entries.contains_key(hash) {
                return Err(FormatError::invalid(
                    what,
                    format!(
                        "install key `{hash}` appears twice: refusing an index whose rewrite would be ambiguous"
                    ),
                ));
            }
            entries.insert(
                node.hash.clone(),
                IndexEntry {
                    node,
                    in_buildcache: rec.in_buildcache.unwrap_or(true),
                },
            );
            Ok(())
        })
        .map_err(|e| match e {
            RecordsError::Record(e) => e,
            RecordsError::Json(e) => FormatError::invalid(
                what,
                format!("not a Spack database index (expected {{\"database\": {{\"version\", \"installs\"}}}}): {e}"),
            ),
        })?;
        let version = match version {
            Some(v) => version_of(what, &v)?,
            None => {
                return Err(FormatError::invalid(
                    what,
                    "not a Spack database index: database.version is missing",
                ));
            }
        };
        entries.shrink_to_fit();
        Ok((version, entries))
    }

    /// An empty index of the given version, for a cache that has none yet.
    pub fn empty(version: &str) -> Database {
        let bytes = format!("{{\"database\":{{\"version\":\"{version}\",\"installs\":{{}}}}}}")
            .into_bytes();
        Database {
            version: version.to_string(),
            entries: IndexMap::new(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            len: bytes.len(),
            original: Original::Memory(bytes.into()),
        }
    }

    /// The compiler used in v2 key names for the record `hash`.
    pub fn compiler_of(&self, node: &SpecNode) -> Compiler {
        node.compiler(|h| {
            self.entries
                .get(h)
                .map(|e| (e.node.name.clone(), e.node.version.clone()))
        })
    }

    /// The compiler of `node` as Spack shows it ([`SpecNode::compiler_shown`]).
    pub fn compiler_shown(&self, node: &SpecNode) -> String {
        node.compiler_shown(|h| {
            self.entries
                .get(h)
                .map(|e| (e.node.name.clone(), e.node.version.clone()))
        })
    }

    /// The records in buildcache (those with objects).
    pub fn cached(&self) -> impl Iterator<Item = &IndexEntry> {
        self.entries.values().filter(|e| e.in_buildcache)
    }

    /// The bytes this index was read from.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        self.original
            .reader()
            .read_to_end(&mut out)
            .expect("reading back the index this run read");
        out
    }

    /// The index without the records in `removed`, serialised compactly (no white space, no
    /// trailing newline) as Spack writes it. Kept records are copied byte for byte.
    pub fn to_bytes_without<S>(&self, removed: &HashSet<S>) -> Vec<u8>
    where
        S: std::borrow::Borrow<str> + std::hash::Hash + Eq,
    {
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"database\":{\"version\":");
        out.extend_from_slice(
            serde_json::to_string(&self.version)
                .unwrap_or_default()
                .as_bytes(),
        );
        out.extend_from_slice(b",\"installs\":{");
        // Records are in file order: one pass over the original copies the kept ones.
        let mut first = true;
        let pass = each_record(
            self.original.reader(),
            |_| Ok(()),
            |hash, record| {
                if !removed.contains(hash) {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    out.push(b'"');
                    out.extend_from_slice(hash.as_bytes());
                    out.extend_from_slice(b"\":");
                    out.extend_from_slice(record.get().as_bytes());
                }
                Ok(())
            },
        );
        // The original was read once already, as it is still.
        assert!(pass.is_ok(), "reading back the index this run read");
        out.extend_from_slice(b"}}}");
        out
    }
}

/// The content of `index.json.hash` for index bytes: the sha256 hex digest and a newline, as in
/// Spack's own mirrors.
pub fn hash_file_content(index: &[u8]) -> Vec<u8> {
    format!("{}\n", hex::encode(Sha256::digest(index))).into_bytes()
}

/// Whether `hash_file` is a valid hash file for `index`: Spack reads its first 64 bytes and
/// accepts them only as 64 lowercase hex digits.
pub fn hash_file_matches(hash_file: &[u8], index: &[u8]) -> bool {
    hash_file_names(hash_file, &hex::encode(Sha256::digest(index)))
}

/// Whether `hash_file` is a valid hash file for the index whose sha256 (hex) is `sha256`
/// ([`Database::sha256`]), by the rule of [`hash_file_matches`].
pub fn hash_file_names(hash_file: &[u8], sha256: &str) -> bool {
    let Some(head) = hash_file.get(..64) else {
        return false;
    };
    head.iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && head == sha256.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = r#"{"database":{"version":"8","installs":{"rqh2vuf6fqwkmipzgi2wjx352mq7y7ez":{"spec":{"name":"libelf","version":"0.8.13","arch":{"platform":"test","platform_os":"debian6","target":"core2"},"annotations":{"original_specfile_version":4,"compiler":"gcc@=10.2.1"},"hash":"rqh2vuf6fqwkmipzgi2wjx352mq7y7ez"},"ref_count":1,"in_buildcache":true},"vd7v4ssgnoqdplgxyig3orum67n4vmhq":{"spec":{"name":"gcc","version":"10.2.1","external":{"path":"/usr"},"hash":"vd7v4ssgnoqdplgxyig3orum67n4vmhq"},"ref_count":3,"in_buildcache":false}}}}"#;

    #[test]
    fn rewrite_without_nothing_is_byte_identical() {
        let db = Database::parse("t", DB.as_bytes().to_vec()).unwrap();
        assert_eq!(
            db.to_bytes_without(&HashSet::<String>::new()),
            DB.as_bytes()
        );
        assert!(!db.entries["vd7v4ssgnoqdplgxyig3orum67n4vmhq"].in_buildcache);
        assert!(
            db.entries["vd7v4ssgnoqdplgxyig3orum67n4vmhq"]
                .node
                .traits
                .external
        );
    }

    #[test]
    fn rewrite_drops_removed_records_and_stays_parseable() {
        let db = Database::parse("t", DB.as_bytes().to_vec()).unwrap();
        let removed: HashSet<String> = ["rqh2vuf6fqwkmipzgi2wjx352mq7y7ez".to_string()].into();
        let out = db.to_bytes_without(&removed);
        let again = Database::parse("t", out).unwrap();
        assert_eq!(again.entries.len(), 1);
        assert_eq!(again.version, "8");
    }

    #[test]
    fn versions_and_garbage() {
        let v5 = DB.replace("\"version\":\"8\"", "\"version\":\"5\"");
        assert!(
            Database::parse("idx", v5.into_bytes())
                .unwrap_err()
                .to_string()
                .contains("version 5")
        );
        let err =
            Database::parse("s3://b/build_cache/index.json", b"{not json".to_vec()).unwrap_err();
        assert!(err.to_string().contains("s3://b/build_cache/index.json"));
    }

    #[test]
    fn a_repeated_install_key_is_refused_and_named() {
        let record = r#""rqh2vuf6fqwkmipzgi2wjx352mq7y7ez":{"spec":{"name":"libelf","version":"0.8.13","hash":"rqh2vuf6fqwkmipzgi2wjx352mq7y7ez"},"ref_count":1,"in_buildcache":true}"#;
        let text = format!(r#"{{"database":{{"version":"8","installs":{{{record},{record}}}}}}}"#);
        let err = Database::parse("s3://b/build_cache/index.json", text.into_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s3://b/build_cache/index.json")
                && err.contains("rqh2vuf6fqwkmipzgi2wjx352mq7y7ez")
                && err.contains("twice"),
            "{err}"
        );
    }

    #[test]
    fn an_index_read_from_a_file_is_the_index_read_from_memory() {
        // Trailing white space is part of what `index.json.hash` covers.
        let text = format!("{DB}\n");
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        let from_file = Database::read_file("t", file).unwrap();
        let from_memory = Database::parse("t", text.clone().into_bytes()).unwrap();
        assert_eq!(from_file.sha256, from_memory.sha256);
        assert_eq!(
            from_file.sha256,
            hex::encode(Sha256::digest(text.as_bytes()))
        );
        assert_eq!(from_file.len, text.len());
        assert_eq!(
            from_file.entries.keys().collect::<Vec<_>>(),
            from_memory.entries.keys().collect::<Vec<_>>()
        );
        assert_eq!(from_file.bytes(), text.as_bytes());
        let removed: HashSet<String> = ["rqh2vuf6fqwkmipzgi2wjx352mq7y7ez".to_string()].into();
        assert_eq!(
            from_file.to_bytes_without(&removed),
            from_memory.to_bytes_without(&removed)
        );
    }

    #[test]
    fn the_version_may_follow_the_records_and_other_keys_are_ignored() {
        let text = r#"{"other":[1,{"a":2}],"database":{"installs":{"rqh2vuf6fqwkmipzgi2wjx352mq7y7ez":{"spec":{"name":"libelf","version":"0.8.13","hash":"rqh2vuf6fqwkmipzgi2wjx352mq7y7ez"},"ref_count":1,"in_buildcache":true}},"extra":null,"version":"7"}}"#;
        let db = Database::parse("t", text.as_bytes().to_vec()).unwrap();
        assert_eq!(db.version, "7");
        assert_eq!(db.entries.len(), 1);
        let missing = text.replace(r#","version":"7""#, "");
        let err = Database::parse("idx", missing.into_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("database.version is missing"),
            "{err}"
        );
    }

    #[test]
    fn an_unsupported_version_stops_before_the_records_and_repeated_keys_are_refused() {
        // A record this code could not read: the version, read first, is what is reported.
        let future = DB
            .replace("\"version\":\"8\"", "\"version\":\"99\"")
            .replace("\"name\":\"libelf\"", "\"name\":17");
        let err = Database::parse("idx", future.into_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("database version 99 is not supported"),
            "{err}"
        );
        for repeated in [
            DB.replace("{\"database\":{", "{\"database\":{},\"database\":{"),
            DB.replace("\"version\":\"8\",", "\"version\":\"8\",\"version\":\"8\","),
            DB.replace("}}}}", "}},\"installs\":{}}}"),
        ] {
            let err = Database::parse("idx", repeated.clone().into_bytes())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("idx") && err.contains("duplicate field"),
                "{repeated}: {err}"
            );
        }
    }

    #[test]
    fn an_invalid_record_is_named_and_trailing_garbage_refused() {
        let bad = DB.replace(
            "rqh2vuf6fqwkmipzgi2wjx352mq7y7ez\":{\"spec\"",
            "not-a-hash\":{\"spec\"",
        );
        let err = Database::parse("idx", bad.into_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("idx") && err.contains("`not-a-hash` is not a DAG hash"),
            "{err}"
        );
        let err = Database::parse("idx", format!("{DB} {{").into_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("idx") && err.contains("not a Spack database index"),
            "{err}"
        );
    }

    #[test]
    fn hash_file_rule() {
        let content = hash_file_content(DB.as_bytes());
        assert_eq!(content.len(), 65);
        assert!(hash_file_matches(&content, DB.as_bytes()));
        let db = Database::parse("t", DB.as_bytes().to_vec()).unwrap();
        assert!(hash_file_names(&content, &db.sha256));
        assert!(!hash_file_names(b"", &db.sha256));
        assert!(!hash_file_matches(&content[..63], DB.as_bytes()));
        assert!(!hash_file_matches(
            &content.to_ascii_uppercase(),
            DB.as_bytes()
        ));
        assert!(!hash_file_matches(&content, b"other"));
    }
}
