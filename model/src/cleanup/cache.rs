//! The cache as the planner sees it: the listing, and per layout every cached index entry with
//! its objects, age and size, the dependency graph, and (v3) which blobs each manifest
//! references. Built from what was read; reads nothing itself.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use smallvec::SmallVec;

use crate::spack::buildcache::index::{Database, IndexEntry};
use crate::spack::buildcache::{Layout, SpecObjects, v2, v3};
use crate::spack::graph::{Edges, SpecGraph};
use crate::spack::spec::{Shared, SpecNode};

pub use super::keys::Key;

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: Key,
    pub size: u64,
    /// Nanoseconds since the Unix epoch: half the size of a `SystemTime`, over the 2,000,000
    /// objects of a 1,000,000-spec cache; exact from 1678 to 2261, the times listings give.
    modified: i64,
}

impl Object {
    pub fn new(key: Key, size: u64, last_modified: SystemTime) -> Object {
        // Outside what 64 bits of nanoseconds hold, a time is held at the nearest end: an
        // object stays as old (or as new) as its listing says, relative to any time inside.
        let modified = match last_modified.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        };
        Object {
            key,
            size,
            modified,
        }
    }

    /// When the listing says the object was last written.
    pub fn last_modified(&self) -> SystemTime {
        let since = Duration::from_nanos(self.modified.unsigned_abs());
        if self.modified >= 0 {
            UNIX_EPOCH + since
        } else {
            UNIX_EPOCH - since
        }
    }
}

/// Every object of the cache, and where the v3 spec manifests sit among them. Objects are named
/// by their position in `objects`.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub objects: Vec<Object>,
    /// v3: hash → position of its spec manifest.
    pub v3_manifests: HashMap<Shared, u32>,
}

/// v2: hash → positions of its spec file(s) and tarball. Only the views are built from it (each
/// record then holds its own positions), so it is not kept beside them: ~100 bytes a spec.
pub type V2Objects = HashMap<Shared, SmallVec<[u32; 3]>>;

impl Listing {
    /// The listing of `objects` and where the v2 spec objects sit, classified by key; `shared`
    /// gives each hash's string (the index's own, so that the listing does not copy it).
    pub fn new(objects: Vec<Object>, shared: impl FnMut(&str) -> Shared) -> (Listing, V2Objects) {
        let found = SpecObjects::classify(objects.iter().map(|o| &*o.key), shared);
        let listing = Listing {
            objects,
            v3_manifests: found.v3,
        };
        (listing, found.v2)
    }

    pub fn object(&self, position: u32) -> &Object {
        &self.objects[position as usize]
    }

    pub fn key(&self, position: u32) -> &str {
        &self.object(position).key
    }

    /// Key → position, for finding what manifests name.
    pub fn positions(&self) -> HashMap<&str, u32> {
        self.objects
            .iter()
            .enumerate()
            .map(|(i, o)| (&*o.key, i as u32))
            .collect()
    }
}

/// A blob a manifest references, with the length the manifest gives it: its position in the
/// listing, or its key when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobRef {
    Listed { at: u32, length: u64 },
    Missing { key: Box<str>, length: u64 },
}

impl BlobRef {
    /// The reference to `key` as the listing has it.
    pub fn new(key: &str, length: u64, positions: &HashMap<&str, u32>) -> BlobRef {
        match positions.get(key) {
            Some(&at) => BlobRef::Listed { at, length },
            None => BlobRef::Missing {
                key: key.into(),
                length,
            },
        }
    }

    pub fn listed(&self) -> Option<u32> {
        match self {
            BlobRef::Listed { at, .. } => Some(*at),
            BlobRef::Missing { .. } => None,
        }
    }
}

/// v3: the blobs each listed manifest references, by the manifest's position.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub by_manifest: HashMap<u32, Vec<BlobRef>>,
    /// Manifests whose content was not read: what they reference is unknown.
    pub unread: HashSet<u32>,
}

/// One index entry that has objects in the cache (`in_buildcache`). Its node (name, version,
/// architecture) is the index entry's: [`LayoutView::node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecRecord {
    /// Positions of its objects that exist (v2: spec file(s) and tarball; v3: manifest and
    /// blobs). Up to three held in place: one record per cached spec, and a list of its own
    /// took 24 bytes more each.
    pub objects: SmallVec<[u32; 3]>,
    /// Objects it should have and that are not in the listing.
    pub missing: Missing,
    /// False for a v3 spec whose manifest was not read: its blobs (and so its size) are unknown.
    pub blobs_known: bool,
}

/// Size and age are read from the listing, not held: 24 bytes a cached spec less.
impl SpecRecord {
    /// The total size of its listed objects.
    pub fn bytes(&self, listing: &Listing) -> u64 {
        self.objects.iter().map(|&i| listing.object(i).size).sum()
    }

    /// The newest last-modified of its listed objects; `None` when none is listed.
    pub fn newest(&self, listing: &Listing) -> Option<SystemTime> {
        self.objects
            .iter()
            .map(|&i| listing.object(i).last_modified())
            .max()
    }
}

/// The keys of a spec's missing objects, behind one thin pointer: most specs miss nothing, and
/// a boxed slice held 16 bytes a cached spec for it.
#[derive(Clone, PartialEq, Eq, Default)]
// The box is the point: a pointer to the list is 8 bytes, the list itself 24.
#[allow(clippy::box_collection)]
pub struct Missing(Option<Box<Vec<String>>>);

impl From<Vec<String>> for Missing {
    fn from(keys: Vec<String>) -> Missing {
        Missing((!keys.is_empty()).then(|| Box::new(keys)))
    }
}

impl std::ops::Deref for Missing {
    type Target = [String];
    fn deref(&self) -> &[String] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl<'a> IntoIterator for &'a Missing {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::fmt::Debug for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One layout of the cache.
#[derive(Debug)]
pub struct LayoutView {
    pub layout: Layout,
    pub db: Database,
    /// Last-modified of the index object as read before the listing: anything newer may belong
    /// to an upload still running.
    pub index_time: SystemTime,
    /// By the entry's position in `db`: the record of each cached entry. The index's own map
    /// finds them by hash; a second map keyed by the same hashes cost ~36 bytes a spec.
    records: Vec<Option<SpecRecord>>,
    cached: usize,
    /// Between every index entry (externals included): [`LayoutView::graph`].
    edges: Edges,
    pub manifests: Manifests,
}

impl LayoutView {
    /// The view of the index `db` of `layout` over `listing` (where its v2 spec objects are
    /// `v2`), with what the v3 `manifests` reference.
    pub fn new(
        layout: Layout,
        db: Database,
        index_time: SystemTime,
        (listing, v2): (&Listing, &V2Objects),
        manifests: Manifests,
    ) -> LayoutView {
        let edges = Edges::new(&db.entries);
        // Sized once: grown by doubling, the list would hold up to twice the room it needs.
        let mut records = Vec::with_capacity(db.entries.len());
        records.extend(db.entries.values().map(|entry| {
            if !entry.in_buildcache {
                return None;
            }
            let (objects, missing, blobs_known) = match layout {
                Layout::V2 => v2_objects(&db, entry, listing, v2),
                Layout::V3 => v3_objects(entry, listing, &manifests),
            };
            let record = SpecRecord {
                // By length, not by the list's spare room (`from_vec` keeps a list of 3
                // grown to room for 4 on the heap).
                objects: SmallVec::from_slice(&objects),
                missing: missing.into(),
                blobs_known,
            };
            Some(record)
        }));
        LayoutView {
            layout,
            db,
            index_time,
            cached: records.iter().flatten().count(),
            records,
            edges,
            manifests,
        }
    }

    /// The record of the cached spec `hash`; `None` when the index does not list it or it has
    /// no objects in the cache.
    pub fn spec(&self, hash: &str) -> Option<&SpecRecord> {
        let i = self.db.entries.get_index_of(hash)?;
        self.records[i].as_ref()
    }

    /// Whether `hash` is a cached spec of this layout.
    pub fn is_cached(&self, hash: &str) -> bool {
        self.spec(hash).is_some()
    }

    /// The cached specs with their records, in index order.
    pub fn specs(&self) -> impl Iterator<Item = (&Shared, &SpecRecord)> {
        let records = self.records.iter();
        self.db
            .entries
            .keys()
            .zip(records)
            .filter_map(|(hash, r)| Some((hash, r.as_ref()?)))
    }

    /// How many specs are cached.
    pub fn cached(&self) -> usize {
        self.cached
    }

    /// The dependency graph over every index entry (externals included), whose positions are
    /// the entries' positions in the index.
    pub fn graph(&self) -> SpecGraph<'_, IndexEntry> {
        SpecGraph::new(&self.db.entries, &self.edges)
    }

    /// The index node of a spec.
    pub fn node(&self, hash: &str) -> &SpecNode {
        &self.db.entries[hash].node
    }

    /// Objects of this layout that no cached index entry owns: spec files, tarballs and spec
    /// manifests of unknown hashes, blobs no manifest references, and stray keys. The index, its
    /// hash file, keys and `layout.json` belong to the cache and are never listed here.
    pub fn unowned<'a>(&self, listing: &'a Listing) -> Vec<(u32, &'a Object, Unowned)> {
        let mut owned = vec![false; listing.objects.len()];
        for &i in self.specs().flat_map(|(_, s)| &s.objects) {
            owned[i as usize] = true;
        }
        let mut referenced = vec![false; listing.objects.len()];
        for i in self
            .manifests
            .by_manifest
            .values()
            .flatten()
            .filter_map(BlobRef::listed)
        {
            referenced[i as usize] = true;
        }
        listing
            .objects
            .iter()
            .enumerate()
            .filter(|(i, _)| !owned[*i])
            .filter_map(|(i, o)| {
                let kind = match self.layout {
                    Layout::V2 => match v2::classify(&o.key)? {
                        v2::Object::SpecFile { hash, .. } => Unowned::SpecFile { hash },
                        v2::Object::Tarball { hash } => Unowned::Tarball { hash },
                        v2::Object::Other => Unowned::Stray,
                        _ => return None,
                    },
                    Layout::V3 => match v3::classify(&o.key)? {
                        v3::Object::SpecManifest { hash } => Unowned::SpecManifest { hash },
                        v3::Object::Blob { .. } if !referenced[i] => Unowned::Blob,
                        v3::Object::Other => Unowned::Stray,
                        _ => return None,
                    },
                };
                Some((i as u32, o, kind))
            })
            .collect()
    }
}

/// v2: the listed spec file(s) and tarball of `entry`, and the keys of those missing.
fn v2_objects(
    db: &Database,
    entry: &IndexEntry,
    listing: &Listing,
    v2: &V2Objects,
) -> (Vec<u32>, Vec<String>, bool) {
    let node = &entry.node;
    let listed = v2
        .get(&*node.hash)
        .map(|v| v.as_slice())
        .unwrap_or_default();
    let has = |want: fn(&v2::Object) -> bool| {
        listed
            .iter()
            .any(|&i| v2::classify(listing.key(i)).is_some_and(|o| want(&o)))
    };
    let compiler = db.compiler_of(node);
    let mut missing = Vec::new();
    if !has(|o| matches!(o, v2::Object::SpecFile { .. })) {
        missing.push(v2::spec_key(node, &compiler, true));
    }
    if !has(|o| matches!(o, v2::Object::Tarball { .. })) {
        missing.push(v2::tarball_key(node, &compiler));
    }
    (listed.to_vec(), missing, true)
}

/// v3: the listed spec manifest of `entry` and the blobs it references, the keys of those
/// missing, and whether the manifest was read.
fn v3_objects(
    entry: &IndexEntry,
    listing: &Listing,
    manifests: &Manifests,
) -> (Vec<u32>, Vec<String>, bool) {
    let node = &entry.node;
    // The listing finds a manifest by hash even if name or version differ.
    let Some(&m) = listing.v3_manifests.get(&*node.hash) else {
        let key = v3::spec_manifest_key(&node.name, &node.version, &node.hash);
        return (Vec::new(), vec![key], true);
    };
    let (mut objects, mut missing) = (vec![m], Vec::new());
    for blob in manifests.by_manifest.get(&m).into_iter().flatten() {
        match blob {
            BlobRef::Listed { at, .. } => objects.push(*at),
            BlobRef::Missing { key, .. } => missing.push(key.to_string()),
        }
    }
    (objects, missing, !manifests.unread.contains(&m))
}

/// Why an object belongs to no index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Unowned {
    /// A v2 spec file whose hash the index does not list (its tarball may be missing too).
    SpecFile { hash: String },
    /// A v2 tarball whose hash the index does not list.
    Tarball { hash: String },
    /// A v3 spec manifest whose hash the index does not list.
    SpecManifest { hash: String },
    /// A v3 blob no manifest references.
    Blob,
    /// Anything else under `build_cache/` or `v3/`: never deleted by the janitor.
    Stray,
}

impl Unowned {
    /// The spec hash the object's name carries (spec files, tarballs, spec manifests).
    pub fn hash(&self) -> Option<&str> {
        match self {
            Unowned::SpecFile { hash }
            | Unowned::Tarball { hash }
            | Unowned::SpecManifest { hash } => Some(hash),
            Unowned::Blob | Unowned::Stray => None,
        }
    }
}

/// The whole cache: its listing and one view per layout that has an index (v2 first).
#[derive(Debug)]
pub struct CacheView {
    pub listing: Listing,
    pub layouts: Vec<LayoutView>,
}

impl CacheView {
    /// The key of a listed object.
    pub fn key(&self, position: u32) -> &str {
        self.listing.key(position)
    }
}
