//! Published SIF files: their names in a bucket or directory (`<container>__<tag>.sif`), the
//! checksums they carry as object metadata, and what they are — container, branch,
//! architecture — as recorded in their labels and metadata. Decisions that delete (retiring old
//! versions, pruning deleted branches) are made from that record, never from the file name: a
//! name like `a__b__1.0__fix-amd64.sif` can be read several ways.

use std::collections::BTreeMap;

use futures::TryStreamExt;

use crate::{ObjectInfo, Store, StoreError};
use model::labels;

/// Object metadata keys (S3 user metadata is lowercase) and the label suffix each comes from.
pub const META_CONTAINER_CHECKSUM: &str = labels::DEFINITION_CHECKSUM;
pub const META_LOCKFILE_SHA256: &str = labels::LOCKFILE_SHA256;
pub const META_SOURCE_DIGEST: &str = labels::SOURCE_DIGEST;
/// The checksums, each the label `<any namespace>.<name>` and the metadata `<name>`.
const CHECKSUMS: &[&str] = &[
    labels::DEFINITION_CHECKSUM,
    labels::LOCKFILE_SHA256,
    labels::SOURCE_DIGEST,
];
/// Architecture suffixes a tag may end with (`-amd64`).
const ARCHES: &[&str] = &["amd64", "arm64", "ppc64le", "s390x", "riscv64"];

/// Object metadata saying what a SIF is, and the labels (`org.spacktainerizah.<key>`) the SIF
/// records them in, so a copy synced into a plain directory still says it.
pub const META_CONTAINER: &str = "container";
pub const META_BRANCH: &str = "branch";
pub const META_ARCH: &str = "arch";
const LABEL_PREFIX: &str = "org.spacktainerizah.";

/// What a published SIF is: the lineage whose versions replace each other.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct SifIdentity {
    pub container: String,
    /// The branch slug it was built on (the default branch's too).
    pub branch: String,
    pub arch: String,
}

impl SifIdentity {
    /// The labels a SIF records it in.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                format!("{LABEL_PREFIX}{META_CONTAINER}"),
                self.container.clone(),
            ),
            (format!("{LABEL_PREFIX}{META_BRANCH}"), self.branch.clone()),
            (format!("{LABEL_PREFIX}{META_ARCH}"), self.arch.clone()),
        ])
    }

    /// From a SIF's labels; `None` unless all three are there.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<SifIdentity> {
        let get = |k: &str| labels.get(&format!("{LABEL_PREFIX}{k}")).cloned();
        Some(SifIdentity {
            container: get(META_CONTAINER)?,
            branch: get(META_BRANCH)?,
            arch: get(META_ARCH)?,
        })
    }

    /// From an object's metadata; `None` unless all three are there.
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Option<SifIdentity> {
        Some(SifIdentity {
            container: metadata.get(META_CONTAINER)?.clone(),
            branch: metadata.get(META_BRANCH)?.clone(),
            arch: metadata.get(META_ARCH)?.clone(),
        })
    }

    /// As object metadata.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (META_CONTAINER.to_string(), self.container.clone()),
            (META_BRANCH.to_string(), self.branch.clone()),
            (META_ARCH.to_string(), self.arch.clone()),
        ])
    }
}

/// What the SIF object `key` of `store` is, from its metadata or, in a directory whose copy was
/// synced without metadata, from the SIF's own labels. `None` when neither says: such a SIF is
/// never deleted on a guess.
pub async fn identity(store: &Store, key: &str) -> Result<Option<SifIdentity>, StoreError> {
    let (_, metadata) = store.head(key).await?;
    if let Some(id) = SifIdentity::from_metadata(&metadata) {
        return Ok(Some(id));
    }
    if let Some(path) = store.local_path(key) {
        return Ok(model::sif::format::read_labels(&path)
            .ok()
            .and_then(|l| SifIdentity::from_labels(&l)));
    }
    Ok(None)
}

/// What a SIF's object carries as metadata: its checksums and, when recorded, its identity.
pub fn object_metadata(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut m = checksums(labels);
    if let Some(id) = SifIdentity::from_labels(labels) {
        m.extend(id.metadata());
    }
    m
}

/// The checksums a SIF records, as object metadata: labels named `<namespace>.definition-checksum`,
/// `<namespace>.lockfile-sha256` and `<namespace>.source-digest`, whatever the namespace.
pub fn checksums(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter_map(|(k, v)| {
            let (_, name) = k.rsplit_once('.')?;
            CHECKSUMS
                .contains(&name)
                .then(|| (name.to_string(), v.clone()))
        })
        .collect()
}

/// The checksums among an object's metadata (which may hold other keys too).
pub fn checksums_of_metadata(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    metadata
        .iter()
        .filter(|(k, _)| CHECKSUMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// True when `have` (an object's metadata) carries every checksum in `want`, with equal values.
/// An empty `want` never matches: a file without checksums cannot be known to be the same.
pub fn same_checksums(want: &BTreeMap<String, String>, have: &BTreeMap<String, String>) -> bool {
    !want.is_empty() && want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// The object name of a container's SIF.
pub fn file_name(container: &str, tag: &str) -> String {
    format!("{container}__{tag}.sif")
}

/// A SIF object name taken apart: `<container>__<version>[__<branch>][-<arch>].sif`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SifName {
    pub container: String,
    pub version: String,
    /// The branch slug of a SIF built off the default branch.
    pub branch: Option<String>,
    pub arch: Option<String>,
}

impl SifName {
    /// Parse the last path component of `key`; `None` for anything not named like a SIF.
    pub fn parse(key: &str) -> Option<SifName> {
        let base = key.rsplit('/').next()?.strip_suffix(".sif")?;
        let (rest, arch) = ARCHES
            .iter()
            .find_map(|a| {
                base.strip_suffix(&format!("-{a}"))
                    .map(|r| (r, Some(a.to_string())))
            })
            .unwrap_or((base, None));
        let mut parts = rest.splitn(3, "__");
        let container = parts.next().filter(|c| !c.is_empty())?.to_string();
        let version = parts.next().filter(|v| !v.is_empty())?.to_string();
        let branch = parts.next().map(str::to_string);
        Some(SifName {
            container,
            version,
            branch,
            arch,
        })
    }

    /// SIFs of one container, branch and architecture replace each other as versions change.
    pub fn lineage(&self) -> (&str, Option<&str>, Option<&str>) {
        (
            &self.container,
            self.branch.as_deref(),
            self.arch.as_deref(),
        )
    }
}

/// The objects under `prefix` named like SIFs, with their names taken apart.
pub async fn list(store: &Store, prefix: &str) -> Result<Vec<(ObjectInfo, SifName)>, StoreError> {
    store
        .list(prefix)
        .try_filter_map(|o| async move { Ok(SifName::parse(&o.key).map(|n| (o, n))) })
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_with_branch_and_arch() {
        let n = SifName::parse("containers/neuron__9.0.0__my-branch-amd64.sif").unwrap();
        assert_eq!(n.container, "neuron");
        assert_eq!(n.version, "9.0.0");
        assert_eq!(n.branch.as_deref(), Some("my-branch"));
        assert_eq!(n.arch.as_deref(), Some("amd64"));
        let n = SifName::parse("neuron__9.0.0-rc1.sif").unwrap();
        assert_eq!(
            (n.version.as_str(), n.branch, n.arch),
            ("9.0.0-rc1", None, None)
        );
        assert!(SifName::parse("neuron.sif").is_none());
        assert!(SifName::parse("neuron__1.0.tar").is_none());
        assert_eq!(
            SifName::parse(&file_name("a", "1__b-arm64"))
                .unwrap()
                .lineage(),
            ("a", Some("b"), Some("arm64"))
        );
    }

    #[test]
    fn checksums_come_from_labels_of_any_namespace() {
        let labels = BTreeMap::from([
            ("org.example.lockfile-sha256".to_string(), "aa".to_string()),
            (
                "org.example.definition-checksum".to_string(),
                "bb".to_string(),
            ),
            (
                "org.spacktainerizah.source-digest".to_string(),
                "sha256:cc".to_string(),
            ),
            (
                "org.opencontainers.image.title".to_string(),
                "x".to_string(),
            ),
        ]);
        let c = checksums(&labels);
        assert_eq!(c.len(), 3);
        assert_eq!(c[META_CONTAINER_CHECKSUM], "bb");
        let mut have = c.clone();
        have.insert("other".into(), "y".into());
        assert!(same_checksums(&c, &have));
        have.insert(META_LOCKFILE_SHA256.into(), "zz".into());
        assert!(!same_checksums(&c, &have));
        assert!(!same_checksums(&BTreeMap::new(), &have));
    }
}
