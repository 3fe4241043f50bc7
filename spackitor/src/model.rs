//! The cache as the janitor sees it: per layout, every index entry with its objects, ages and
//! sizes, the dependency graph, and (v3) which blobs each manifest references. Built from one
//! listing, one read of each index and, for v3, one read of each new or changed manifest.

use std::collections::HashMap;
use std::time::SystemTime;

use anyhow::Context;
use model::spack::buildcache::v3;
use model::spack::buildcache::{Layout, v2};
use model::spack::graph::SpecGraph;
use model::spack::spec::{Shared, SpecNode};
use stores::cache::LoadedIndex;
use stores::cache::catalog::Catalog;
use stores::{ObjectInfo, Store};

use crate::manifests::{self, BlobRef, ManifestRefs, Reads};

/// One index entry that has objects in the cache (`in_buildcache`). Its node (name, version,
/// architecture) is the index entry's: [`LayoutModel::node`].
#[derive(Debug, Clone)]
pub struct SpecRecord {
    /// Positions in the catalog's listing of its objects that exist (v2: spec file(s) and
    /// tarball; v3: manifest and blobs).
    pub objects: Vec<u32>,
    /// Objects it should have and that are not in the listing.
    pub missing: Vec<String>,
    pub bytes: u64,
    /// Newest last-modified of its objects.
    pub newest: Option<SystemTime>,
    /// False for a v3 spec whose manifest was not read: its blobs (and so its size) are unknown.
    pub blobs_known: bool,
}

/// One layout of the cache.
#[derive(Debug)]
pub struct LayoutModel {
    pub layout: Layout,
    pub index: LoadedIndex,
    /// Last-modified of the index object (v2 `index.json`, v3 index manifest).
    pub index_time: SystemTime,
    /// Cached entries by hash, in index order.
    pub specs: indexmap::IndexMap<Shared, SpecRecord>,
    /// Over every index entry (externals included).
    pub graph: SpecGraph,
    /// v3: the blobs every listed manifest references.
    pub manifests: ManifestRefs,
}

impl LayoutModel {
    /// The index node of a cached spec.
    pub fn node(&self, hash: &str) -> &SpecNode {
        &self.index.db.entries[hash].node
    }

    /// Objects of this layout that no cached index entry owns: spec files, tarballs and spec
    /// manifests of unknown hashes, blobs no manifest references, and stray keys. The index, its
    /// hash file, keys and `layout.json` belong to the cache and are never listed here.
    pub fn unowned<'a>(&self, catalog: &'a Catalog) -> Vec<(u32, &'a ObjectInfo, Unowned)> {
        let mut owned = vec![false; catalog.objects.len()];
        for &i in self.specs.values().flat_map(|s| &s.objects) {
            owned[i as usize] = true;
        }
        let mut referenced = vec![false; catalog.objects.len()];
        for i in self
            .manifests
            .by_manifest
            .values()
            .flatten()
            .filter_map(BlobRef::listed)
        {
            referenced[i as usize] = true;
        }
        catalog
            .objects
            .iter()
            .zip(owned)
            .enumerate()
            .filter(|(_, (_, owned))| !owned)
            .filter_map(|(i, (o, _))| {
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

/// Why an object belongs to no index entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    /// Anything else under `build_cache/` or `v3/`: never deleted by `clean`.
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

/// The whole cache.
#[derive(Debug)]
pub struct CacheModel {
    pub catalog: Catalog,
    pub layouts: Vec<LayoutModel>,
}

impl CacheModel {
    /// [`CacheModel::load`] with a count of the objects listed on the terminal: a listing of
    /// a large cache over S3 takes a while.
    pub async fn load_shown(
        store: &Store,
        reads: Reads,
        printer: &terminal::printer::Printer,
    ) -> anyhow::Result<CacheModel> {
        let pb = printer.progress(None, "listing");
        let model = CacheModel::load(store, reads, |n| pb.set_position(n)).await;
        pb.finish_and_clear();
        model
    }

    /// `reads`: whether v3 manifests the memo does not know are read (`clean`, `verify`) or left
    /// unknown (`ls`, `stats`: no request per object).
    pub async fn load(
        store: &Store,
        reads: Reads,
        on_listed: impl FnMut(u64),
    ) -> anyhow::Result<CacheModel> {
        let mut catalog = Catalog::load(store, on_listed)
            .await
            .with_context(|| format!("reading build cache {}", store.url()))?;
        let position: HashMap<&str, u32> = catalog
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.key.as_str(), i as u32))
            .collect();
        let mut layouts = Vec::new();
        // The indexes move into the layouts: an index can be as large as the rest together.
        for index in std::mem::take(&mut catalog.indexes) {
            // As read before the listing: an index rewritten since makes its guard fail.
            let index_time = index.guard_time;
            let manifests = match (&index.manifest, index.layout) {
                (Some(m), Layout::V3) => {
                    manifests::read(store, &catalog, &position, (&index.guard_key, m), reads)
                        .await?
                }
                _ => ManifestRefs::default(),
            };
            let graph = SpecGraph::new(index.db.entries.values().map(|e| &e.node));
            let mut specs = indexmap::IndexMap::new();
            for entry in index.db.cached() {
                let node = &entry.node;
                let mut objects: Vec<u32> = Vec::new();
                let mut missing = Vec::new();
                let mut blobs_known = true;
                match index.layout {
                    Layout::V2 => {
                        let listed = catalog
                            .v2_objects
                            .get(&*node.hash)
                            .map(Vec::as_slice)
                            .unwrap_or_default();
                        objects.extend_from_slice(listed);
                        let has = |want: fn(&v2::Object) -> bool| {
                            listed.iter().any(|&i| {
                                v2::classify(&catalog.objects[i as usize].key)
                                    .is_some_and(|o| want(&o))
                            })
                        };
                        let compiler = index.db.compiler_of(node);
                        if !has(|o| matches!(o, v2::Object::SpecFile { .. })) {
                            missing.push(v2::spec_key(node, &compiler, true));
                        }
                        if !has(|o| matches!(o, v2::Object::Tarball { .. })) {
                            missing.push(v2::tarball_key(node, &compiler));
                        }
                    }
                    // The listing finds a manifest by hash even if name or version differ.
                    Layout::V3 => match catalog.v3_manifests.get(&*node.hash) {
                        Some(&m) => {
                            objects.push(m);
                            blobs_known = !manifests.unread.contains(&m);
                            for blob in manifests.by_manifest.get(&m).into_iter().flatten() {
                                match blob {
                                    BlobRef::Listed { at, .. } => objects.push(*at),
                                    BlobRef::Missing { key, .. } => missing.push(key.to_string()),
                                }
                            }
                        }
                        None => missing.push(v3::spec_manifest_key(
                            &node.name,
                            &node.version,
                            &node.hash,
                        )),
                    },
                }
                let infos: Vec<&ObjectInfo> = objects
                    .iter()
                    .map(|&i| &catalog.objects[i as usize])
                    .collect();
                specs.insert(
                    node.hash.clone(),
                    SpecRecord {
                        bytes: infos.iter().map(|o| o.size).sum(),
                        newest: Catalog::newest(&infos),
                        objects,
                        missing,
                        blobs_known,
                    },
                );
            }
            layouts.push(LayoutModel {
                layout: index.layout,
                index,
                index_time,
                specs,
                graph,
                manifests,
            });
        }
        drop(position);
        Ok(CacheModel { catalog, layouts })
    }

    /// The key of a listed object.
    pub fn key(&self, position: u32) -> &str {
        &self.catalog.objects[position as usize].key
    }
}
