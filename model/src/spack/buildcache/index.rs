//! The build-cache index: a Spack database (`index.json` in v2, the index blob in v3), read
//! without copying its records and written back compactly as Spack does.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::ops::Range;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::spack::spec::{Compiler, Interner, Shared, SpecNode};
use crate::spack::{FormatError, is_dag_hash};

/// Database versions this code reads (`"7"` Spack 0.21–0.23, `"8"` 1.0–1.2, `"9"` 1.3).
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 6..=9;

/// One record of the index.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub node: SpecNode,
    /// `false` for records (externals, for instance) that have no objects in the cache.
    pub in_buildcache: bool,
    pub ref_count: i64,
    /// Where the record's JSON sits in the index bytes, to write it back unchanged.
    raw: Range<usize>,
}

/// A parsed index. The original bytes are kept, gzip-compressed (an index of 100,000 specs is
/// ~100 MB of JSON, a tenth of that compressed), so records can be written back unchanged;
/// records know where they sit in the original.
#[derive(Debug, Clone)]
pub struct Database {
    /// `database.version` as written (a string in Spack ≥ 0.21).
    pub version: String,
    pub entries: IndexMap<Shared, IndexEntry>,
    /// sha256 of the bytes read: what `index.json.hash` must hold.
    pub sha256: String,
    /// Length of the bytes read.
    pub len: usize,
    compressed: Vec<u8>,
}

fn compress(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 8),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    e.write_all(bytes).expect("compressing into memory");
    e.finish().expect("compressing into memory")
}

#[derive(Deserialize)]
struct RawDb<'a> {
    #[serde(borrow)]
    database: RawDatabase<'a>,
}

#[derive(Deserialize)]
struct RawDatabase<'a> {
    version: serde_json::Value,
    /// In file order, duplicates kept: a map would silently keep one of two records of the
    /// same hash, and the rewrite would then copy the wrong bytes.
    #[serde(borrow, default, deserialize_with = "records_in_order")]
    installs: Vec<(&'a str, &'a RawValue)>,
}

/// A JSON object read as its (key, raw value) pairs, in order, without merging repeated keys.
fn records_in_order<'de, D>(d: D) -> Result<Vec<(&'de str, &'de RawValue)>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(&'de str, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of install records")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(pair) = map.next_entry::<&'de str, &'de RawValue>()? {
                out.push(pair);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Pairs)
}

#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(borrow)]
    spec: &'a RawValue,
    #[serde(default)]
    ref_count: i64,
    #[serde(default)]
    in_buildcache: Option<bool>,
}

impl Database {
    /// Parse index bytes; `what` names the object in errors (e.g. `s3://b/build_cache/index.json`).
    pub fn parse(what: &str, bytes: Vec<u8>) -> Result<Database, FormatError> {
        let base = bytes.as_ptr() as usize;
        let (version, entries) = {
            let raw: RawDb<'_> = serde_json::from_slice(&bytes).map_err(|e| {
                FormatError::invalid(what, format!("not a Spack database index (expected {{\"database\": {{\"version\", \"installs\"}}}}): {e}"))
            })?;
            let version = match &raw.database.version {
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
                Ok(v) if SUPPORTED_VERSIONS.contains(&v) => {}
                _ => {
                    return Err(FormatError::invalid(
                        what,
                        format!(
                            "database version {version} is not supported (expected {} to {})",
                            SUPPORTED_VERSIONS.start(),
                            SUPPORTED_VERSIONS.end()
                        ),
                    ));
                }
            }
            let mut entries = IndexMap::with_capacity(raw.database.installs.len());
            let mut strings = Interner::default();
            for (hash, record) in raw.database.installs {
                if !is_dag_hash(hash) {
                    return Err(FormatError::invalid(
                        what,
                        format!("install key `{hash}` is not a DAG hash"),
                    ));
                }
                let rec: RawRecord<'_> = serde_json::from_str(record.get())
                    .map_err(|e| FormatError::invalid(what, format!("record {hash}: {e}")))?;
                let node = SpecNode::from_json(rec.spec, Some(hash), what, &mut strings)?;
                let start = record.get().as_ptr() as usize - base;
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
                        ref_count: rec.ref_count,
                        raw: start..start + record.get().len(),
                    },
                );
            }
            (version, entries)
        };
        Ok(Database {
            version,
            entries,
            sha256: hex::encode(Sha256::digest(&bytes)),
            len: bytes.len(),
            compressed: compress(&bytes),
        })
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
            compressed: compress(&bytes),
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
        // Decompressing what `compress` wrote in memory cannot fail.
        flate2::read::GzDecoder::new(&self.compressed[..])
            .read_to_end(&mut out)
            .expect("decompressing the index kept in memory");
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
        // Records are in file order: one pass over the decompressed stream copies the kept ones.
        let mut original = flate2::read::GzDecoder::new(&self.compressed[..]);
        let mut at = 0usize;
        let mut first = true;
        for (hash, entry) in &self.entries {
            if removed.contains(&**hash) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(hash.as_bytes());
            out.extend_from_slice(b"\":");
            let skip = (entry.raw.start - at) as u64;
            std::io::copy(&mut (&mut original).take(skip), &mut std::io::sink())
                .expect("decompressing the index kept in memory");
            std::io::copy(&mut (&mut original).take(entry.raw.len() as u64), &mut out)
                .expect("decompressing the index kept in memory");
            at = entry.raw.end;
        }
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
    let Some(head) = hash_file.get(..64) else {
        return false;
    };
    head.iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && head == hex::encode(Sha256::digest(index)).as_bytes()
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
        assert!(db.entries["vd7v4ssgnoqdplgxyig3orum67n4vmhq"].node.external);
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
    fn hash_file_rule() {
        let content = hash_file_content(DB.as_bytes());
        assert_eq!(content.len(), 65);
        assert!(hash_file_matches(&content, DB.as_bytes()));
        assert!(!hash_file_matches(&content[..63], DB.as_bytes()));
        assert!(!hash_file_matches(
            &content.to_ascii_uppercase(),
            DB.as_bytes()
        ));
        assert!(!hash_file_matches(&content, b"other"));
    }
}
