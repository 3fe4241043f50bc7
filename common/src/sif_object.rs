//! Published SIF files: their names in a bucket or directory (`<container>__<tag>.sif`) and the
//! checksums they carry as object metadata, taken from the labels the SIF itself records.

use std::collections::BTreeMap;

use futures::TryStreamExt;

use crate::store::{ObjectInfo, Store, StoreError};

/// Object metadata keys (S3 user metadata is lowercase) and the label suffix each comes from.
pub const META_CONTAINER_CHECKSUM: &str = "container-checksum";
pub const META_LOCKFILE_SHA256: &str = "lockfile-sha256";
pub const META_SOURCE_DIGEST: &str = "source-digest";
const FROM_LABEL: &[(&str, &str)] = &[
    (".definition-checksum", META_CONTAINER_CHECKSUM),
    (".lockfile-sha256", META_LOCKFILE_SHA256),
    (".source-digest", META_SOURCE_DIGEST),
];
/// Architecture suffixes a tag may end with (`-amd64`).
const ARCHES: &[&str] = &["amd64", "arm64", "ppc64le", "s390x", "riscv64"];

/// The checksums a SIF records, as object metadata: labels named `<namespace>.definition-checksum`,
/// `<namespace>.lockfile-sha256` and `<namespace>.source-digest`, whatever the namespace.
pub fn checksums(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter_map(|(k, v)| {
            FROM_LABEL
                .iter()
                .find(|(suffix, _)| k.ends_with(suffix))
                .map(|(_, meta)| (meta.to_string(), v.clone()))
        })
        .collect()
}

/// The checksums among an object's metadata (which may hold other keys too).
pub fn checksums_of_metadata(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    metadata
        .iter()
        .filter(|(k, _)| FROM_LABEL.iter().any(|(_, meta)| meta == k))
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
