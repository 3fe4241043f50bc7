//! Spack's binary build cache formats in both layouts: key names, spec files, the index
//! database. Pure formats; reading and writing them through a store is `stores::cache`.

pub mod index;
pub mod v2;
pub mod v3;

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use smallvec::SmallVec;

pub use index::{Database, IndexEntry};

use crate::spack::spec::{Interner, Shared, SpecNode};
use crate::spack::{FormatError, clearsign};

/// A build-cache layout. A mirror can hold both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    V2,
    V3,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::V2 => "v2",
            Layout::V3 => "v3",
        })
    }
}

/// A spec file: the nodes of one spec's DAG (root first), from a v2 `.spec.json[.sig]` or a v3
/// spec blob (gzip-compressed or not).
#[derive(Debug, Clone)]
pub struct SpecFile {
    pub nodes: Vec<SpecNode>,
    /// The nodes as written, for building an index from spec files.
    pub raw_nodes: Vec<serde_json::Value>,
    /// v2 only: the sha256 of the `.spack` tarball.
    pub tarball_sha256: Option<String>,
}

impl SpecFile {
    pub fn parse(what: &str, bytes: &[u8]) -> Result<SpecFile, FormatError> {
        let mut plain = Vec::new();
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut plain)
                .map_err(|e| FormatError::invalid(what, format!("corrupt gzip data: {e}")))?;
            &plain[..]
        } else {
            bytes
        };
        let body = clearsign::strip(bytes).ok_or_else(|| {
            FormatError::invalid(
                what,
                "clear-signed spec file without a complete body and signature",
            )
        })?;
        #[derive(serde::Deserialize)]
        struct Raw {
            spec: RawSpec,
            #[serde(default)]
            binary_cache_checksum: Option<Checksum>,
        }
        #[derive(serde::Deserialize)]
        struct RawSpec {
            nodes: Vec<serde_json::Value>,
        }
        #[derive(serde::Deserialize)]
        struct Checksum {
            hash: String,
        }
        let raw: Raw = serde_json::from_slice(&body)
            .map_err(|e| FormatError::invalid(what, format!("not a Spack spec file: {e}")))?;
        if raw.spec.nodes.is_empty() {
            return Err(FormatError::invalid(what, "spec file without nodes"));
        }
        let raw_nodes = raw.spec.nodes;
        let mut strings = Interner::default();
        let nodes = raw_nodes
            .iter()
            .cloned()
            .map(|n| SpecNode::from_value(n, None, what, &mut strings))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SpecFile {
            nodes,
            raw_nodes,
            tarball_sha256: raw.binary_cache_checksum.map(|c| c.hash),
        })
    }

    pub fn root(&self) -> &SpecNode {
        &self.nodes[0]
    }
}

/// Where each spec's own objects sit in a listing of a cache, by position: v2 spec files and
/// tarballs, v3 spec manifests.
#[derive(Debug, Clone, Default)]
pub struct SpecObjects {
    /// Up to three positions held in place: a list of their own per hash (1,000,000 of them)
    /// left that many small holes behind when freed, which the plan made next never filled.
    pub v2: HashMap<Shared, SmallVec<[u32; 3]>>,
    pub v3: HashMap<Shared, u32>,
}

impl SpecObjects {
    /// The spec objects among `keys` (listed in that order); `shared` gives each hash's string
    /// (the index's own, so that the listing does not copy it).
    pub fn classify<'k, K>(keys: K, mut shared: impl FnMut(&str) -> Shared) -> SpecObjects
    where
        K: IntoIterator<Item = &'k str>,
        K::IntoIter: Clone,
    {
        let keys = keys.into_iter();
        // The maps are sized once, from a first pass: grown by doubling, each left its smaller
        // tables behind as holes nothing after reused (~20 MB at 300,000 specs).
        let (mut v2_specs, mut v3_specs) = (0, 0);
        for key in keys.clone() {
            match v2::classify(key) {
                Some(v2::Object::SpecFile { .. }) => v2_specs += 1,
                Some(_) => {}
                None => {
                    if let Some(v3::Object::SpecManifest { .. }) = v3::classify(key) {
                        v3_specs += 1;
                    }
                }
            }
        }
        let mut found = SpecObjects {
            v2: HashMap::with_capacity(v2_specs),
            v3: HashMap::with_capacity(v3_specs),
        };
        for (i, key) in keys.enumerate() {
            let i = i as u32;
            match v2::classify(key) {
                Some(v2::Object::SpecFile { hash, .. } | v2::Object::Tarball { hash }) => {
                    found.v2.entry(shared(&hash)).or_default().push(i);
                }
                Some(_) => {}
                None => {
                    if let Some(v3::Object::SpecManifest { hash }) = v3::classify(key) {
                        found.v3.insert(shared(&hash), i);
                    }
                }
            }
        }
        found
    }
}
