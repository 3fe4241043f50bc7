//! A whole build cache at a glance: one listing of the store and one read of each index,
//! joined so every index entry knows its objects and every object its owner (or none).

use std::collections::HashMap;
use std::time::SystemTime;

use futures::StreamExt;

use super::{CacheError, LoadedIndex, load_index};
use crate::{ObjectInfo, Store};
use model::spack::buildcache::{Layout, SpecObjects, v2, v3};
use model::spack::spec::Shared;

/// The listing and indexes of one cache.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub url: String,
    /// Every object of the store, as listed.
    pub objects: Vec<ObjectInfo>,
    /// One loaded index per layout present, v2 first.
    pub indexes: Vec<LoadedIndex>,
    /// v2: hash → positions in `objects` of its spec file(s) and tarball.
    pub v2_objects: HashMap<Shared, Vec<u32>>,
    /// v3: hash → position in `objects` of its spec manifest.
    pub v3_manifests: HashMap<Shared, u32>,
}

impl Catalog {
    /// List the store once, find the layouts from the listing itself, then read each index.
    /// `on_listed` is called every 1000 objects listed (for progress).
    pub async fn load(
        store: &Store,
        mut on_listed: impl FnMut(u64),
    ) -> Result<Catalog, CacheError> {
        // The indexes are read before the listing: their version tags then guard a rewrite
        // against any `update-index` that runs while the listing is read. Read after it, an
        // update in between would pass the guard and its new entries would look incomplete.
        let mut indexes = Vec::new();
        for layout in [Layout::V2, Layout::V3] {
            match load_index(store, layout).await {
                Ok(index) => indexes.push(index),
                Err(CacheError::MissingIndex { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut objects = Vec::new();
        let mut listing = store.list("");
        while let Some(item) = listing.next().await {
            objects.push(item?);
            if objects.len().is_multiple_of(1000) {
                on_listed(objects.len() as u64);
            }
        }
        on_listed(objects.len() as u64);
        let has = |l: Layout| indexes.iter().any(|i| i.layout == l);
        if !has(Layout::V2) && objects.iter().any(|o| o.key.starts_with(v2::PREFIX)) {
            return Err(CacheError::MissingIndex {
                layout: Layout::V2,
                location: store.location(v2::INDEX_KEY),
            });
        }
        if !has(Layout::V3) && objects.iter().any(|o| o.key.starts_with("v3/")) {
            return Err(CacheError::MissingIndex {
                layout: Layout::V3,
                location: store.location(v3::INDEX_MANIFEST_KEY),
            });
        }
        if indexes.is_empty() {
            return Err(CacheError::NoCache { url: store.url() });
        }
        // The hashes the indexes hold are shared, not copied: a cache lists each spec's
        // objects once per object.
        let shared = |hash: &str| -> Shared {
            indexes
                .iter()
                .find_map(|i| i.db.entries.get_key_value(hash).map(|(k, _)| k.clone()))
                .unwrap_or_else(|| Shared::from(hash))
        };
        let found = SpecObjects::classify(objects.iter().map(|o| o.key.as_str()), shared);
        Ok(Catalog {
            url: store.url(),
            objects,
            indexes,
            v2_objects: found.v2,
            v3_manifests: found.v3,
        })
    }

    /// The listed objects of the spec `hash` in `layout` (v3: its manifest only; the blobs are
    /// known from the manifest's content).
    pub fn objects_of(&self, layout: Layout, hash: &str) -> Vec<&ObjectInfo> {
        match layout {
            Layout::V2 => self
                .v2_objects
                .get(hash)
                .map(|v| v.iter().map(|&i| &self.objects[i as usize]).collect())
                .unwrap_or_default(),
            Layout::V3 => self
                .v3_manifests
                .get(hash)
                .map(|&i| vec![&self.objects[i as usize]])
                .unwrap_or_default(),
        }
    }

    /// The newest last-modified time among `objects`.
    pub fn newest(objects: &[&ObjectInfo]) -> Option<SystemTime> {
        objects.iter().map(|o| o.last_modified).max()
    }

    pub fn layouts(&self) -> Vec<Layout> {
        self.indexes.iter().map(|i| i.layout).collect()
    }
}
