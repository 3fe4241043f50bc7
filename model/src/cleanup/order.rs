//! The order of the deletes: dependents before their dependencies, v3 manifests before their
//! blobs, and the keys cut into batches run wave by wave.

use std::collections::{HashMap, HashSet, VecDeque};

use super::cache::{LayoutView, Unowned};
use super::decision::{LayoutPlan, Reason};
use crate::spack::buildcache::{Layout, v3};
use crate::spack::spec::{DepTypes, Shared};

/// Layer 0: deleted specs no other deleted spec depends on (through any edge); each dependency
/// one layer after its deepest deleted dependent (Kahn's algorithm over the deleted part of the
/// graph, so deep DAGs need no deep recursion).
pub fn layers(lm: &LayoutView, deleted: &HashMap<Shared, Reason>) -> HashMap<Shared, usize> {
    let g = &lm.graph;
    let mut pending: HashMap<&str, usize> = deleted
        .keys()
        .map(|h| {
            let dependents = g
                .neighbours(h, DepTypes::ALL, true)
                .into_iter()
                .filter(|(d, _)| deleted.contains_key(*d))
                .count();
            (&**h, dependents)
        })
        .collect();
    let mut layer: HashMap<Shared, usize> = HashMap::new();
    let mut queue: VecDeque<&str> = pending
        .iter()
        .filter(|(_, c)| **c == 0)
        .map(|(h, _)| *h)
        .collect();
    for h in &queue {
        layer.insert(lm.node(h).hash.clone(), 0);
    }
    while let Some(h) = queue.pop_front() {
        let next = layer[h] + 1;
        for (dep, _) in g.neighbours(h, DepTypes::ALL, false) {
            if let Some(count) = pending.get_mut(dep) {
                let l = layer.entry(lm.node(dep).hash.clone()).or_insert(0);
                *l = (*l).max(next);
                *count -= 1;
                if *count == 0 {
                    queue.push_back(dep);
                }
            }
        }
    }
    layer
}

/// The keys to delete, grouped in waves run one after the other. Keys are ordered by phase
/// (dependents' objects before their dependencies', v3 manifests before blobs, orphan blobs
/// last) and cut into batches of `batch` keys; consecutive batches of one phase share a wave
/// and may run in parallel, a batch spanning two phases runs alone. So a dependency is never
/// deleted before its dependent, every key is deleted once, and there are exactly
/// ceil(keys / `batch`) batches.
pub fn deletion_waves(plans: &[LayoutPlan], batch: usize) -> Vec<Vec<&str>> {
    let max_layer = plans
        .iter()
        .flat_map(|p| p.specs.iter().map(|s| s.layer))
        .max()
        .unwrap_or(0);
    let blobs_phase = max_layer + 1;
    let mut keyed: Vec<(usize, &str)> = Vec::new();
    for plan in plans {
        for s in &plan.specs {
            for k in &s.objects {
                let phase = if plan.layout == Layout::V3 && k.starts_with(v3::BLOBS_PREFIX) {
                    blobs_phase
                } else {
                    s.layer
                };
                keyed.push((phase, &**k));
            }
        }
        for o in plan.orphans.iter().chain(&plan.leftovers) {
            let phase = if o.kind == Unowned::Blob {
                blobs_phase + 1
            } else {
                blobs_phase
            };
            keyed.push((phase, &*o.key));
        }
    }
    // A key is deleted once, even when two rules name it.
    let mut seen = HashSet::new();
    keyed.retain(|(_, k)| seen.insert(*k));
    keyed.sort_by_key(|(phase, _)| *phase);

    let mut waves: Vec<Vec<&str>> = Vec::new();
    let mut wave_phase: Option<usize> = None;
    for chunk in keyed.chunks(batch.max(1)) {
        let (lo, hi) = (chunk[0].0, chunk[chunk.len() - 1].0);
        let single = (lo == hi).then_some(lo);
        let keys = chunk.iter().map(|(_, k)| *k);
        match (single, wave_phase, waves.last_mut()) {
            (Some(p), Some(w), Some(last)) if p == w => last.extend(keys),
            _ => waves.push(keys.collect()),
        }
        wave_phase = single;
    }
    waves
}
