//! Keep lists recorded in a build cache: each container's concretized `spack.lock`, per branch,
//! architecture and container, under `_spacktainerizah/keep/` beside Spack's own objects
//! (Spack ignores it). Stage 2 writes them as it fills the cache; the janitor keeps every spec
//! they name, for every branch that still exists, whichever pipeline runs it.

use std::collections::HashSet;

use futures::TryStreamExt;

use crate::{Condition, Store, StoreError};

/// Where the records are, relative to a cache's root.
pub const PREFIX: &str = "_spacktainerizah/keep";

/// The key of a record under [`PREFIX`]'s store: `<branch>/<arch>/<container>/spack.lock`.
pub fn key(branch: &str, arch: &str, container: &str) -> String {
    format!("{branch}/{arch}/{container}/spack.lock")
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

/// Record the keep lists of every container of `arch` built on `branch` (name, lockfile bytes),
/// then remove the lists of that branch and architecture whose container is not among them: a
/// container taken out of the definitions stops protecting its specs. Returns the keys removed.
pub async fn record_arch(
    store: &Store,
    branch: &str,
    arch: &str,
    lists: Vec<(String, Vec<u8>)>,
) -> Result<Vec<String>, StoreError> {
    let mut current = HashSet::new();
    for (container, lockfile) in lists {
        current.insert(key(branch, arch, &container));
        record(store, branch, arch, &container, lockfile).await?;
    }
    // Written first, pruned after: a janitor reading in between keeps too much, never too little.
    let retired: Vec<String> = store
        .list(&format!("{branch}/{arch}/"))
        .try_filter_map(|o| {
            let retired = Record::from_key(&o.key).is_some() && !current.contains(&o.key);
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
