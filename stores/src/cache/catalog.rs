//! A whole build cache at a glance: one listing of the store and one read of each index,
//! joined so every index entry knows its objects and every object its owner (or none).

use std::time::SystemTime;

use futures::StreamExt;

use super::{CacheError, LoadedIndex, load_index};
use crate::{ObjectInfo, Store};
use model::cleanup::keys::Packer;
use model::cleanup::{Listing, Object, V2Objects};
use model::spack::buildcache::{Layout, v2, v3};
use model::spack::spec::Shared;

/// The listing and indexes of one cache.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub url: String,
    /// Every object of the store, as listed, and where the v3 spec manifests sit among them.
    pub listing: Listing,
    /// Where the v2 spec objects sit in the listing.
    pub v2_objects: V2Objects,
    /// By listing position: the object's version tag, where the listing gives one.
    pub etags: Etags,
    /// One loaded index per layout present, v2 first.
    pub indexes: Vec<LoadedIndex>,
}

/// By listing position: each object's version tag, where the listing gives one. Nothing is
/// held past the last object that has one: a directory store gives none, and 2,000,000 empty
/// entries took 32 MB.
#[derive(Debug, Clone, Default)]
pub struct Etags(Vec<Option<Box<str>>>);

impl Etags {
    /// The tag of the object at `position`, listed after every object before it.
    fn set(&mut self, position: usize, etag: Option<String>) {
        if let Some(etag) = etag {
            self.0.resize(position, None);
            self.0.push(Some(etag.into_boxed_str()));
        }
    }

    pub fn get(&self, position: u32) -> Option<&str> {
        self.0.get(position as usize).and_then(|e| e.as_deref())
    }
}

/// Listed objects whose keys wait in the packer for their block to be made.
#[derive(Default)]
struct Packing {
    keys: Packer,
    /// Their sizes and last-modified times, in listing order.
    waiting: Vec<(u64, SystemTime)>,
}

impl Packing {
    /// Make the block of the waiting keys and add their objects to `objects`.
    fn flush_into(&mut self, objects: &mut Vec<Object>) {
        let keys = self.keys.take();
        objects.extend(
            keys.zip(self.waiting.drain(..))
                .map(|(key, (size, last_modified))| Object::new(key, size, last_modified)),
        );
    }
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
        // Each object is taken apart as it arrives, its key packed into the shared form the
        // planner keeps a block at a time: converting a whole listing afterwards would hold it
        // twice, and the freed keys (a cache of 1,000,000 specs lists 2,000,000) would stay
        // behind as holes.
        // Room for 1,000,000 objects from the start: a block that large (32 MB) is mapped on
        // its own, grows in place and costs only the pages written, where doubling up from
        // nothing left each smaller copy behind as a hole in the heap (~20 MB at 2,000,000
        // objects). `shrink_to_fit` below hands back what a smaller cache leaves unused.
        let (mut objects, mut etags) = (Vec::with_capacity(1 << 20), Etags::default());
        let mut packing = Packing::default();
        let mut listing = store.list("");
        while let Some(item) = listing.next().await {
            let ObjectInfo {
                key,
                size,
                last_modified,
                etag,
            } = item?;
            let listed = objects.len() + packing.waiting.len();
            etags.set(listed, etag);
            packing.waiting.push((size, last_modified));
            if packing.keys.push(&key) {
                packing.flush_into(&mut objects);
            }
            if (listed + 1).is_multiple_of(1000) {
                on_listed(listed as u64 + 1);
            }
        }
        packing.flush_into(&mut objects);
        on_listed(objects.len() as u64);
        // Grown by doubling: up to half of each would be spare room, for the whole run.
        objects.shrink_to_fit();
        etags.0.shrink_to_fit();
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
        let (listing, v2_objects) = Listing::new(objects, shared);
        Ok(Catalog {
            url: store.url(),
            listing,
            v2_objects,
            etags,
            indexes,
        })
    }

    /// The listed objects of the spec `hash` in `layout` (v3: its manifest only; the blobs are
    /// known from the manifest's content).
    pub fn objects_of(&self, layout: Layout, hash: &str) -> Vec<&Object> {
        let listing = &self.listing;
        match layout {
            Layout::V2 => self
                .v2_objects
                .get(hash)
                .map(|v| v.iter().map(|&i| listing.object(i)).collect())
                .unwrap_or_default(),
            Layout::V3 => listing
                .v3_manifests
                .get(hash)
                .map(|&i| vec![listing.object(i)])
                .unwrap_or_default(),
        }
    }

    pub fn layouts(&self) -> Vec<Layout> {
        self.indexes.iter().map(|i| i.layout).collect()
    }
}
