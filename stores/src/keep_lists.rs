//! Keep lists recorded in a build cache: each container's concretized `spack.lock`, per branch,
//! architecture and container, under `_spacktainerizah/keep/` beside Spack's own objects
//! (Spack ignores it). Stage 2 writes them as it fills the cache; the janitor keeps every spec
//! they name, for every branch that still exists, whichever pipeline runs it. Beside each, the
//! inputs its concretization came from (`model::spack::inputs`), so the next pipeline reuses it
//! when they have not changed.

use std::collections::HashSet;

use futures::TryStreamExt;

use crate::{Condition, Store, StoreError};

/// Where the records are, relative to a cache's root.
pub const PREFIX: &str = "_spacktainerizah/keep";

/// The key of a record under [`PREFIX`]'s store: `<branch>/<arch>/<container>/spack.lock`.
pub fn key(branch: &str, arch: &str, container: &str) -> String {
    format!("{branch}/{arch}/{container}/spack.lock")
}

/// The key of the inputs recorded with a keep list: `<branch>/<arch>/<container>/inputs.json`.
pub fn inputs_key(branch: &str, arch: &str, container: &str) -> String {
    format!("{branch}/{arch}/{container}/{}", model::spack::inputs::FILE)
}

/// A keep list to record: a container's lockfile and, when its concretization's inputs are
/// known, their record (`model::spack::inputs::Recorded`).
#[derive(Debug, Clone)]
pub struct KeepList {
    pub container: String,
    pub lockfile: Vec<u8>,
    pub inputs: Option<Vec<u8>>,
}

impl From<(String, Vec<u8>)> for KeepList {
    fn from((container, lockfile): (String, Vec<u8>)) -> KeepList {
        KeepList {
            container,
            lockfile,
            inputs: None,
        }
    }
}

/// What was recorded for a container: its inputs' record (when there is one) and lockfile.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub inputs: Option<Vec<u8>>,
    pub lockfile: Vec<u8>,
}

/// The keep list recorded for `container` of `arch` on `branch`, with its inputs; `None`
/// when nothing was recorded.
pub async fn recorded(
    store: &Store,
    branch: &str,
    arch: &str,
    container: &str,
) -> Result<Option<Recorded>, StoreError> {
    let lockfile = match store.get(&key(branch, arch, container)).await {
        Ok(o) => o.bytes,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let inputs = match store.get(&inputs_key(branch, arch, container)).await {
        Ok(o) => Some(o.bytes),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    Ok(Some(Recorded { inputs, lockfile }))
}

/// One recorded keep list: where it is, and the branch it was recorded for (`None` for a
/// `spack.lock` found under the prefix in another shape: kept whatever the branches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub branch: Option<String>,
}

impl Record {
    fn from_key(key: &str) -> Option<Record> {
        if !(key == "spack.lock" || key.ends_with("/spack.lock")) {
            return None;
        }
        let parts: Vec<&str> = key.split('/').collect();
        Some(Record {
            key: key.to_string(),
            branch: (parts.len() == 4).then(|| parts[0].to_string()),
        })
    }
}

/// Every `spack.lock` of `store` (a records prefix).
pub async fn list(store: &Store) -> Result<Vec<Record>, StoreError> {
    store
        .list("")
        .try_filter_map(|o| async move { Ok(Record::from_key(&o.key)) })
        .try_collect()
        .await
}

/// Record `lockfile` (its bytes) for a container of `arch` built on `branch`, in the records
/// prefix `store`.
pub async fn record(
    store: &Store,
    branch: &str,
    arch: &str,
    container: &str,
    lockfile: Vec<u8>,
) -> Result<(), StoreError> {
    store
        .put(
            &key(branch, arch, container),
            lockfile,
            &Default::default(),
            &Condition::None,
        )
        .await
        .map(|_| ())
}

/// Record the keep lists of every container of `arch` built on `branch` (with their inputs
/// when known), then remove the lists of that branch and architecture whose container is not
/// among them: a container taken out of the definitions stops protecting its specs. Returns
/// the keys removed.
pub async fn record_arch(
    store: &Store,
    branch: &str,
    arch: &str,
    lists: impl IntoIterator<Item = impl Into<KeepList>>,
) -> Result<Vec<String>, StoreError> {
    let mut current = HashSet::new();
    for list in lists {
        let list: KeepList = list.into();
        let inputs = inputs_key(branch, arch, &list.container);
        // The lockfile first, its inputs after: the inputs record names the lockfile's sha256,
        // so a reader in between sees a record that does not match and concretizes again.
        record(store, branch, arch, &list.container, list.lockfile).await?;
        match list.inputs {
            Some(bytes) => {
                store
                    .put(&inputs, bytes, &Default::default(), &Condition::None)
                    .await?;
            }
            None => {
                store.delete_all(vec![inputs]).await?;
            }
        }
        current.insert(list.container);
    }
    // Written first, pruned after: a janitor reading in between keeps too much, never too little.
    let retired: Vec<String> = store
        .list(&format!("{branch}/{arch}/"))
        .try_filter_map(|o| {
            let parts: Vec<&str> = o.key.split('/').collect();
            let ours = parts.len() == 4
                && (Record::from_key(&o.key).is_some() || parts[3] == model::spack::inputs::FILE);
            let retired = ours && !current.contains(parts[2]);
            async move { Ok(retired.then_some(o.key)) }
        })
        .try_collect()
        .await?;
    if !retired.is_empty() {
        store.delete_all(retired.clone()).await?;
    }
    Ok(retired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_say_their_branch_when_they_have_the_shape() {
        assert_eq!(
            Record::from_key(&key("my-branch", "amd64", "pythons")),
            Some(Record {
                key: "my-branch/amd64/pythons/spack.lock".into(),
                branch: Some("my-branch".into())
            })
        );
        assert_eq!(
            Record::from_key("old/spack.lock").unwrap().branch,
            None,
            "another shape: no branch to drop it by"
        );
        assert_eq!(Record::from_key("a/b/c/spack.yaml"), None);
    }
}
