//! The cache as the janitor read it: the planner's view of it ([`CacheView`]) and what writing
//! back needs beside it (the objects' version tags, each index's version tag, how the v3
//! manifests were known). Read with one listing, one read of each index and, for v3, one read
//! of each new or changed manifest.

use std::collections::HashMap;

use anyhow::Context;
use model::cleanup::{CacheView, LayoutView, Listing, Manifests, V2Objects};
use model::spack::buildcache::Layout;
use stores::Store;
use stores::cache::LoadedIndex;
use stores::cache::catalog::{Catalog, Etags};
use terminal::printer::Printer;

use crate::manifests::{self, MemoUse, Reads, Tagged};

/// What writing one layout's index and manifest memo back needs, beside its view.
#[derive(Debug, Clone)]
pub struct WriteBack {
    /// The version tag of the index as read (v2 `index.json`, v3 index manifest): a rewrite is
    /// conditional on it.
    pub index_etag: Option<String>,
    /// How this run knew the layout's v3 manifests.
    pub memo: MemoUse,
}

/// The whole cache as read.
#[derive(Debug)]
pub struct LoadedCache {
    pub url: String,
    pub view: CacheView,
    /// By listing position: the object's version tag, where the listing gives one.
    pub etags: Etags,
    /// One per layout of `view`, in the same order.
    pub write_backs: Vec<WriteBack>,
}

impl LoadedCache {
    /// [`LoadedCache::load`] with a count of the objects listed on the terminal: a listing of a
    /// large cache over S3 takes a while.
    pub async fn load_shown(
        store: &Store,
        reads: Reads,
        printer: &Printer,
    ) -> anyhow::Result<LoadedCache> {
        let pb = printer.progress(None, "listing");
        let loaded = LoadedCache::load(store, reads, |n| pb.set_position(n)).await;
        pb.finish_and_clear();
        loaded
    }

    /// `reads`: whether v3 manifests the memo does not know are read (`clean`, `verify`) or left
    /// unknown (`ls`, `stats`: no request per object).
    pub async fn load(
        store: &Store,
        reads: Reads,
        on_listed: impl FnMut(u64),
    ) -> anyhow::Result<LoadedCache> {
        let catalog = Catalog::load(store, on_listed)
            .await
            .with_context(|| format!("reading build cache {}", store.url()))?;
        // The indexes move into the views: an index can be as large as the rest together.
        let Catalog {
            url,
            listing,
            v2_objects,
            etags,
            indexes,
        } = catalog;
        // Only v3 manifests name objects by key.
        let positions = if indexes.iter().any(|i| i.layout == Layout::V3) {
            listing.positions()
        } else {
            HashMap::new()
        };
        let listed = Tagged {
            listing: &listing,
            etags: &etags,
        };
        let mut layouts = Vec::new();
        let mut write_backs = Vec::new();
        for index in indexes {
            let (refs, memo) = match (&index.manifest, index.layout) {
                (Some(m), Layout::V3) => {
                    let index_manifest = (index.guard_key.as_str(), m);
                    manifests::read(store, listed, &positions, index_manifest, reads).await?
                }
                _ => (Manifests::default(), MemoUse::default()),
            };
            let (view, back) = layout_of(index, (&listing, &v2_objects), refs, memo);
            layouts.push(view);
            write_backs.push(back);
        }
        // The views hold their own objects' positions now.
        drop((positions, v2_objects));
        Ok(LoadedCache {
            url,
            view: CacheView { listing, layouts },
            etags,
            write_backs,
        })
    }

    /// Each layout's view with what writing it back needs.
    pub fn layouts(&self) -> impl Iterator<Item = (&LayoutView, &WriteBack)> {
        self.view.layouts.iter().zip(&self.write_backs)
    }

    /// The listing with the objects' version tags.
    pub fn tagged(&self) -> Tagged<'_> {
        Tagged {
            listing: &self.view.listing,
            etags: &self.etags,
        }
    }
}

/// One index read, as the planner's view of its layout and what writing it back needs.
fn layout_of(
    index: LoadedIndex,
    listed: (&Listing, &V2Objects),
    refs: Manifests,
    memo: MemoUse,
) -> (LayoutView, WriteBack) {
    let LoadedIndex {
        layout,
        db,
        guard_etag,
        // As read before the listing: an index rewritten since makes its guard fail.
        guard_time,
        ..
    } = index;
    let back = WriteBack {
        index_etag: guard_etag,
        memo,
    };
    (LayoutView::new(layout, db, guard_time, listed, refs), back)
}
