//! The order of the deletes: dependents before their dependencies, v3 manifests before their
//! blobs, and the keys cut into batches run wave by wave.

use std::collections::{HashSet, VecDeque};

use super::cache::{LayoutView, Unowned};
use super::decision::{Going, LayoutPlan};
use crate::spack::buildcache::{Layout, v3};
use crate::spack::spec::DepTypes;

/// Layer 0: deleted specs no other deleted spec depends on (through any edge); each dependency
/// one layer after its deepest deleted dependent (Kahn's algorithm over the deleted part of the
/// graph, so deep DAGs need no deep recursion). By graph position, as `deleted`: lists, not maps
/// keyed by hash, ~40 bytes a deleted spec less while the plan is made. Specs that stay are at
/// layer 0.
pub fn layers(lm: &LayoutView, deleted: &Going) -> Vec<u32> {
    let g = lm.graph();
    let is_deleted = |i: usize| deleted.contains(i);
    // Per deleted spec: the edges from deleted dependents not yet layered.
    let mut pending = vec![0u32; g.len()];
    let mut queue = VecDeque::new();
    for (i, _) in deleted.iter() {
        pending[i] = g
            .neighbour_positions(i, DepTypes::ALL, true)
            .filter(|&d| is_deleted(d))
            .count() as u32;
        if pending[i] == 0 {
            queue.push_back(i);
        }
    }
    let mut layer = vec![0u32; g.len()];
    while let Some(i) = queue.pop_front() {
        let next = layer[i] + 1;
        for dep in g.neighbour_positions(i, DepTypes::ALL, false) {
            if is_deleted(dep) {
                layer[dep] = layer[dep].max(next);
                pending[dep] -= 1;
                if pending[dep] == 0 {
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
        .flat_map(|p| p.specs.iter().map(|s| s.layer as usize))
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
                    s.layer as usize
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
