//! What an interrupted run left: the objects of the specs it took out of the index (as its
//! recorded plan names them) that are still there, deleted by the next run whatever their age.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use super::cache::{BlobRef, CacheView, LayoutView, Unowned};
use super::decision::{LayoutPlan, PlannedOrphan};
use super::objects::orphan;
use crate::spack::buildcache::Layout;

/// A plan found in the cache: a run that took these hashes out of the index and may not have
/// deleted their objects.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When it was written (the store's clock): objects newer than this are uploads that
    /// started afterwards, and stay.
    pub time: SystemTime,
    pub hashes: HashMap<Layout, HashSet<String>>,
    /// v3 blob keys: once a spec manifest is deleted nothing else says which blobs were its own.
    pub blobs: HashMap<Layout, HashSet<String>>,
}

/// What an interrupted run left of the specs it recorded for `lm`'s layout: the objects of the
/// recorded hashes that the index no longer lists, and (v3) their blobs that no manifest that
/// stays references. A hash with any object newer than the record is an upload that started
/// since, and stays whole; so does a hash the index lists again. Keys `plan` already deletes
/// are left out.
pub fn leftovers(
    view: &CacheView,
    lm: &LayoutView,
    plan: &LayoutPlan,
    recorded: &Recorded,
) -> Vec<PlannedOrphan> {
    let none = HashSet::new();
    let hashes = recorded.hashes.get(&lm.layout).unwrap_or(&none);
    let blobs = recorded.blobs.get(&lm.layout).unwrap_or(&none);
    if hashes.is_empty() && blobs.is_empty() {
        return Vec::new();
    }
    let planned: HashSet<&str> = planned_keys(plan);
    let (mut out, left_manifests) = left_of_hashes(view, lm, hashes, recorded.time);
    out.retain(|o| !planned.contains(&*o.key));
    let mut gone = gone_manifests(view, plan);
    gone.extend(&left_manifests);
    // The blobs of manifests still there, and those recorded (their manifest may be gone).
    let mut candidates: HashSet<u32> = left_manifests
        .iter()
        .filter_map(|m| lm.manifests.by_manifest.get(m))
        .flatten()
        .filter_map(BlobRef::listed)
        .collect();
    if !blobs.is_empty() {
        candidates.extend(
            (0..view.listing.objects.len() as u32).filter(|&i| blobs.contains(view.key(i))),
        );
    }
    out.extend(unreferenced_blobs(
        view,
        lm,
        (&gone, &candidates),
        &planned,
        recorded.time,
    ));
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    out
}

/// The unowned objects of the recorded `hashes` the index does not list again and that no
/// upload touched since `time`, and the positions of the spec manifests among them.
fn left_of_hashes(
    view: &CacheView,
    lm: &LayoutView,
    hashes: &HashSet<String>,
    time: SystemTime,
) -> (Vec<PlannedOrphan>, HashSet<u32>) {
    let mut by_hash: HashMap<&str, Vec<(u32, PlannedOrphan)>> = HashMap::new();
    let mut fresh: HashSet<&str> = HashSet::new();
    let unowned = lm.unowned(&view.listing);
    for (i, o, kind) in &unowned {
        let Some(h) = kind.hash().filter(|h| hashes.contains(*h)) else {
            continue;
        };
        if lm.db.entries.contains_key(h) {
            continue;
        }
        if o.last_modified() >= time {
            fresh.insert(h);
        }
        by_hash
            .entry(h)
            .or_default()
            .push((*i, orphan(lm, o, kind.clone())));
    }
    by_hash.retain(|h, _| !fresh.contains(h));
    let mut out = Vec::new();
    let mut manifests = HashSet::new();
    for (i, o) in by_hash.into_values().flatten() {
        if matches!(o.kind, Unowned::SpecManifest { .. }) {
            manifests.insert(i);
        }
        out.push(o);
    }
    (out, manifests)
}

fn planned_keys(plan: &LayoutPlan) -> HashSet<&str> {
    plan.specs
        .iter()
        .flat_map(|s| s.objects.iter().map(|k| &**k))
        .chain(plan.orphans.iter().map(|o| &*o.key))
        .collect()
}

/// The positions of the v3 spec manifests `plan` deletes.
fn gone_manifests(view: &CacheView, plan: &LayoutPlan) -> HashSet<u32> {
    let hashes = plan
        .specs
        .iter()
        .map(|s| &*s.hash)
        .chain(plan.orphans.iter().filter_map(|o| match &o.kind {
            Unowned::SpecManifest { hash } => Some(hash.as_str()),
            _ => None,
        }));
    hashes
        .filter_map(|h| view.listing.v3_manifests.get(h).copied())
        .collect()
}

/// v3: the `candidates` blobs that no manifest but the `gone` ones references, older than
/// `time`.
fn unreferenced_blobs(
    view: &CacheView,
    lm: &LayoutView,
    (gone, candidates): (&HashSet<u32>, &HashSet<u32>),
    planned: &HashSet<&str>,
    time: SystemTime,
) -> Vec<PlannedOrphan> {
    let still_referenced: HashSet<u32> = lm
        .manifests
        .by_manifest
        .iter()
        .filter(|(m, _)| !gone.contains(m))
        .flat_map(|(_, blobs)| blobs.iter().filter_map(BlobRef::listed))
        .collect();
    candidates
        .iter()
        .filter(|i| !still_referenced.contains(i))
        .map(|&i| view.listing.object(i))
        .filter(|o| o.last_modified() < time && !planned.contains(&*o.key))
        .map(|o| orphan(lm, o, Unowned::Blob))
        .collect()
}
