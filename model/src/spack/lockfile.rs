//! Spack environment lockfiles (`spack.lock`, versions 4 to 6): roots and concrete specs.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::spec::{Interner, Shared, SpecNode};
use super::spec_string::package_name;
use super::{FormatError, is_dag_hash};

/// Lockfile versions this code reads.
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u64> = 4..=6;

/// A root of the environment: a user spec and the concrete spec it became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub hash: String,
    pub spec: String,
}

/// A parsed `spack.lock`.
#[derive(Debug, Clone)]
pub struct Lockfile {
    /// Where it was read from, for messages.
    pub source: String,
    pub version: u64,
    pub roots: Vec<Root>,
    /// Concrete specs keyed by DAG hash, in file order.
    pub specs: IndexMap<Shared, SpecNode>,
    /// sha256 of the file's bytes, the checksum images are labelled with.
    pub sha256: String,
}

/// Errors reading a lockfile; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    #[error("cannot read lockfile {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Format(#[from] FormatError),
}

#[derive(Deserialize)]
struct RawLockfile {
    #[serde(rename = "_meta")]
    meta: RawMeta,
    #[serde(default)]
    roots: Vec<RawRoot>,
    concrete_specs: IndexMap<String, Box<RawValue>>,
}

#[derive(Deserialize)]
struct RawMeta {
    #[serde(rename = "lockfile-version")]
    lockfile_version: u64,
    #[serde(rename = "file-type", default)]
    file_type: Option<String>,
}

#[derive(Deserialize)]
struct RawRoot {
    hash: String,
    spec: String,
}

impl Lockfile {
    pub fn read(path: &Path) -> Result<Lockfile, LockfileError> {
        let bytes = std::fs::read(path).map_err(|source| LockfileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Lockfile::parse(&path.display().to_string(), &bytes)?)
    }

    /// Parse the bytes of a lockfile; `source` names it in errors.
    pub fn parse(source: &str, bytes: &[u8]) -> Result<Lockfile, FormatError> {
        let what = format!("lockfile {source}");
        let raw: RawLockfile = serde_json::from_slice(bytes).map_err(|e| {
            FormatError::invalid(
                &what,
                format!("not a Spack lockfile (expected _meta, roots, concrete_specs): {e}"),
            )
        })?;
        raw.meta.check(&what)?;
        let specs = concrete_specs(&raw.concrete_specs, &what)?;
        check_references(&raw.roots, &specs, &what)?;
        Ok(Lockfile {
            source: source.to_string(),
            version: raw.meta.lockfile_version,
            roots: raw
                .roots
                .into_iter()
                .map(|r| Root {
                    hash: r.hash,
                    spec: r.spec,
                })
                .collect(),
            specs,
            sha256: hex::encode(Sha256::digest(bytes)),
        })
    }

    /// The concrete spec of the package named by `user_spec` (the first spec of a container
    /// definition): a root of that name first, else any concrete spec of that name.
    pub fn main_package(&self, user_spec: &str) -> Result<&SpecNode, FormatError> {
        let what = format!("lockfile {}", self.source);
        let name = package_name(user_spec).ok_or_else(|| {
            FormatError::invalid(
                &what,
                format!("spec `{user_spec}` does not start with a package name"),
            )
        })?;
        self.roots
            .iter()
            .filter_map(|r| self.specs.get(r.hash.as_str()))
            .find(|n| &*n.name == name)
            .or_else(|| self.specs.values().find(|n| &*n.name == name))
            .ok_or_else(|| {
                FormatError::invalid(
                    &what,
                    format!("the main package `{name}` is not in the lockfile"),
                )
            })
    }
}

impl RawMeta {
    /// A Spack lockfile of a version this code reads.
    fn check(&self, what: &str) -> Result<(), FormatError> {
        if self
            .file_type
            .as_deref()
            .is_some_and(|t| t != "spack-lockfile")
        {
            return Err(FormatError::invalid(
                what,
                "`_meta.file-type` is not `spack-lockfile`",
            ));
        }
        if !SUPPORTED_VERSIONS.contains(&self.lockfile_version) {
            return Err(FormatError::invalid(
                what,
                format!(
                    "lockfile version {} is not supported (expected {} to {})",
                    self.lockfile_version,
                    SUPPORTED_VERSIONS.start(),
                    SUPPORTED_VERSIONS.end()
                ),
            ));
        }
        Ok(())
    }
}

/// The `concrete_specs` parsed, keyed by their DAG hash in file order.
fn concrete_specs(
    raw: &IndexMap<String, Box<RawValue>>,
    what: &str,
) -> Result<IndexMap<Shared, SpecNode>, FormatError> {
    let mut specs = IndexMap::with_capacity(raw.len());
    let mut strings = Interner::default();
    for (hash, node) in raw {
        if !is_dag_hash(hash) {
            return Err(FormatError::invalid(
                what,
                format!("`{hash}` is not a DAG hash"),
            ));
        }
        let node = SpecNode::from_json(node, Some(hash), what, &mut strings)?;
        specs.insert(node.hash.clone(), node);
    }
    Ok(specs)
}

/// Every root and every dependency names a spec of the lockfile: the graph is closed.
fn check_references(
    roots: &[RawRoot],
    specs: &IndexMap<Shared, SpecNode>,
    what: &str,
) -> Result<(), FormatError> {
    for root in roots {
        if !specs.contains_key(root.hash.as_str()) {
            return Err(FormatError::invalid(
                what,
                format!(
                    "root `{}` names hash {} that is not among concrete_specs",
                    root.spec, root.hash
                ),
            ));
        }
    }
    for node in specs.values() {
        if let Some(e) = node
            .dependencies
            .iter()
            .find(|e| !specs.contains_key(&*e.hash))
        {
            return Err(FormatError::invalid(
                what,
                format!(
                    "`{}` depends on {} ({}) which is not among concrete_specs",
                    node.name, e.name, e.hash
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_version_and_dangling_edges() {
        let v9 = br#"{"_meta":{"file-type":"spack-lockfile","lockfile-version":9},"roots":[],"concrete_specs":{}}"#;
        assert!(
            Lockfile::parse("x.lock", v9)
                .unwrap_err()
                .to_string()
                .contains("version 9")
        );
        let dangling = br#"{"_meta":{"lockfile-version":5},"roots":[],"concrete_specs":{
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":{"name":"a","version":"1","dependencies":[{"name":"b","hash":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","parameters":{"deptypes":["link"]}}]}}}"#;
        let err = Lockfile::parse("y.lock", dangling).unwrap_err().to_string();
        assert!(
            err.contains("y.lock") && err.contains("not among concrete_specs"),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_names_the_file() {
        let err = Lockfile::parse("broken.lock", b"{\"_meta\":")
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken.lock"), "{err}");
    }
}
