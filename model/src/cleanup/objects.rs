//! From decided deletions to objects: each spec's own objects (a v3 blob another manifest that
//! stays still references is not among them), the orphans that go, and the deletion layers.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::cache::{BlobRef, CacheView, LayoutView, Object, Unowned};
use super::decision::{Decided, Going, LayoutPlan, PlannedOrphan, PlannedSpec, age};
use super::order;

/// Which unowned objects go (`--orphans`): those older than the index and than `max_age` at
/// `now`, but never the objects of a spec the keep lockfiles name (`keep`), listed in the index
/// or not — a kept spec the index does not list is still what an environment installs.
#[derive(Debug, Clone, Copy)]
pub struct OrphanRule<'a> {
    pub now: SystemTime,
    pub max_age: Duration,
    pub keep: &'a HashSet<String>,
}

impl OrphanRule<'_> {
    fn old_enough(&self, lm: &LayoutView, o: &Object) -> bool {
        o.last_modified() < lm.index_time && age(self.now, Some(o.last_modified())) > self.max_age
    }
}

/// Turn `decided` into the plan of `lm`: the objects of each spec, the deletion layers, and,
/// with `orphans`, the orphans that rule lets go (and the blobs of orphan manifests that no
/// manifest that stays references, under the same rule).
pub fn materialize(
    view: &CacheView,
    lm: &LayoutView,
    decided: Decided,
    orphans: Option<OrphanRule<'_>>,
) -> LayoutPlan {
    let Decided {
        going,
        kept_by_lockfile,
        kept_as_in_flight,
    } = decided;
    let candidates = orphans.map_or_else(Vec::new, |rule| orphan_candidates(view, lm, rule));
    let orphan_manifests: HashSet<u32> = candidates
        .iter()
        .filter(|(_, o)| matches!(o.kind, Unowned::SpecManifest { .. }))
        .map(|(i, _)| *i)
        .collect();
    let mut gone_manifests = deleted_manifests(view, lm, &going);
    gone_manifests.extend(&orphan_manifests);
    let still_referenced = still_referenced(view, lm, &gone_manifests);

    let mut planned: HashSet<u32> = candidates.iter().map(|(i, _)| *i).collect();
    let mut orphan_list: Vec<PlannedOrphan> = candidates.into_iter().map(|(_, o)| o).collect();
    if let Some(rule) = orphans {
        // The blobs of orphan manifests go with them, under the same conditions.
        for i in orphan_manifests
            .iter()
            .filter_map(|m| lm.manifests.by_manifest.get(m))
            .flatten()
            .filter_map(BlobRef::listed)
        {
            let o = view.listing.object(i);
            if !still_referenced[i as usize] && rule.old_enough(lm, o) && planned.insert(i) {
                orphan_list.push(orphan(lm, o, Unowned::Blob));
            }
        }
    }
    orphan_list.sort_by(|a, b| a.key.cmp(&b.key));
    let specs = planned_specs(view, lm, going, &still_referenced);
    LayoutPlan {
        layout: lm.layout,
        kept: lm.cached() - specs.len(),
        kept_by_lockfile,
        kept_as_in_flight,
        specs,
        orphans: orphan_list,
        leftovers: Vec::new(),
    }
}

/// A planned orphan of `lm`'s layout.
pub fn orphan(lm: &LayoutView, o: &Object, kind: Unowned) -> PlannedOrphan {
    PlannedOrphan {
        layout: lm.layout,
        key: o.key.clone(),
        bytes: o.size,
        kind,
    }
}

/// The unowned objects `rule` lets go, strays never.
fn orphan_candidates(
    view: &CacheView,
    lm: &LayoutView,
    rule: OrphanRule<'_>,
) -> Vec<(u32, PlannedOrphan)> {
    lm.unowned(&view.listing)
        .into_iter()
        .filter(|(_, o, kind)| *kind != Unowned::Stray && rule.old_enough(lm, o))
        .filter(|(_, _, kind)| kind.hash().is_none_or(|h| !rule.keep.contains(h)))
        .map(|(i, o, kind)| (i, orphan(lm, o, kind)))
        .collect()
}

/// The positions of the v3 spec manifests of the specs that go.
fn deleted_manifests(view: &CacheView, lm: &LayoutView, going: &Going) -> HashSet<u32> {
    going
        .iter()
        .filter_map(|(i, _)| lm.spec(lm.graph().hash(i)))
        .flat_map(|s| s.objects.iter().copied())
        .filter(|&i| view.key(i).starts_with("v3/"))
        .collect()
}

/// By position: whether a manifest that stays (any but `gone`) references the object.
fn still_referenced(view: &CacheView, lm: &LayoutView, gone: &HashSet<u32>) -> Vec<bool> {
    let mut out = vec![false; view.listing.objects.len()];
    for (m, blobs) in &lm.manifests.by_manifest {
        if gone.contains(m) {
            continue;
        }
        for i in blobs.iter().filter_map(BlobRef::listed) {
            out[i as usize] = true;
        }
    }
    out
}

/// The specs that go, with their objects (those `still_referenced` stay), ordered by layer:
/// dependents before their dependencies.
fn planned_specs(
    view: &CacheView,
    lm: &LayoutView,
    going: Going,
    still_referenced: &[bool],
) -> Vec<PlannedSpec> {
    let layers = order::layers(lm, &going);
    let mut specs = Vec::with_capacity(going.len());
    specs.extend(going.iter().filter_map(|(i, why)| {
        let hash = lm.graph().hash(i).clone();
        let s = lm.spec(&hash)?;
        let node = lm.node(&hash);
        let objects: Vec<&Object> = s
            .objects
            .iter()
            .filter(|&&i| !still_referenced[i as usize])
            .map(|&i| view.listing.object(i))
            .collect();
        Some(PlannedSpec {
            layout: lm.layout,
            bytes: objects.iter().map(|o| o.size).sum(),
            objects: objects.iter().map(|o| o.key.clone()).collect(),
            layer: layers[i],
            name: node.name.clone(),
            version: node.version.clone(),
            hash,
            reason: why.reason(lm),
        })
    }));
    // Unstable: hashes are unique, so the order is the same, and no buffer of half the specs.
    specs.sort_unstable_by(|a, b| (a.layer, &a.name, &a.hash).cmp(&(b.layer, &b.name, &b.hash)));
    specs
}
