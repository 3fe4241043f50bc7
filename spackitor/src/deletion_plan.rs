//! The deletion plan: what `clean` and `purge` delete, decided from the cache model alone (no I/O): the keep closure,
//! age and package rules, the cascade to dependents, orphans, and the deletion order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use model::spack::buildcache::Layout;
use model::spack::spec::{DepTypes, Shared};
use serde::Serialize;

use crate::manifests::BlobRef;
use crate::model::{CacheModel, LayoutModel, Unowned};
use crate::repos::PackageSet;

/// What the rules are applied with.
#[derive(Debug, Clone)]
pub struct Rules {
    pub max_age: Duration,
    /// Hashes of every spec in the keep lockfiles.
    pub keep: HashSet<String>,
    /// Packages that still exist; `None` when no repository was given.
    pub packages: Option<PackageSet>,
    pub orphans: bool,
    pub now: SystemTime,
}

/// Why a spec goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Older than the maximum age.
    Expired,
    /// Its package is in none of the given repositories.
    PackageRemoved,
    /// It links to or runs a spec that goes (named here).
    DependentOf { of_hash: Shared, of_name: Shared },
    /// Some of its objects are missing: it cannot be installed anyway.
    Incomplete,
    /// Named in `spackitor purge`.
    Purged,
}

impl Reason {
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Expired => "expired",
            Reason::PackageRemoved => "package removed",
            Reason::DependentOf { .. } => "dependent of a deleted spec",
            Reason::Incomplete => "incomplete",
            Reason::Purged => "purged",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedSpec {
    pub layout: String,
    pub hash: Shared,
    pub name: Shared,
    pub version: Shared,
    #[serde(flatten)]
    pub reason: Reason,
    /// Objects deleted with it (v3 blobs another manifest still uses are not among them).
    pub objects: Vec<String>,
    pub bytes: u64,
    /// 0 for specs no deleted spec depends on; deleted in increasing order.
    #[serde(skip)]
    pub layer: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedOrphan {
    pub layout: String,
    pub key: String,
    pub bytes: u64,
    #[serde(flatten)]
    pub kind: Unowned,
}

/// The plan for one layout.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutPlan {
    #[serde(skip)]
    pub layout: Layout,
    /// Ordered: dependents before their dependencies.
    pub specs: Vec<PlannedSpec>,
    pub orphans: Vec<PlannedOrphan>,
    /// Objects of specs an interrupted run took out of the index (`crate::journal`): deleted
    /// whatever their age.
    pub leftovers: Vec<PlannedOrphan>,
    /// Cached specs that stay.
    pub kept: usize,
    /// Specs kept because a keep lockfile needs them.
    pub kept_by_lockfile: usize,
    /// Specs kept because one of their objects is newer than the index (an upload in flight).
    pub kept_as_in_flight: usize,
}

impl LayoutPlan {
    pub fn deleted_hashes(&self) -> HashSet<Shared> {
        self.specs.iter().map(|s| s.hash.clone()).collect()
    }

    /// The hashes whose objects are among the leftovers.
    pub fn leftover_hashes(&self) -> impl Iterator<Item = String> + '_ {
        self.leftovers
            .iter()
            .filter_map(|o| o.kind.hash().map(str::to_string))
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty() && self.orphans.is_empty() && self.leftovers.is_empty()
    }
}

pub fn plan(model: &CacheModel, rules: &Rules) -> Vec<LayoutPlan> {
    model
        .layouts
        .iter()
        .map(|lm| plan_layout(model, lm, rules))
        .collect()
}

fn age(now: SystemTime, t: Option<SystemTime>) -> Duration {
    t.map(|t| now.duration_since(t).unwrap_or_default())
        .unwrap_or(Duration::MAX)
}

fn plan_layout(model: &CacheModel, lm: &LayoutModel, rules: &Rules) -> LayoutPlan {
    let g = &lm.graph;
    let keep = keep_closure(lm, &rules.keep);
    // Anything newer than the index may belong to a pipeline still uploading: keep it, and
    // everything it needs.
    let fresh: Vec<&str> = lm
        .specs
        .iter()
        .filter(|(_, s)| s.newest.is_some_and(|t| t > lm.index_time))
        .map(|(h, _)| &**h)
        .collect();
    let kept_as_in_flight = fresh.iter().filter(|h| !keep.contains(**h)).count();
    let protected: HashSet<Shared> = g
        .dependencies_closure(
            keep.iter().map(|h| &**h).chain(fresh.iter().copied()),
            DepTypes::LINK_RUN,
        )
        .into_iter()
        .collect();

    let mut reasons: HashMap<Shared, Reason> = HashMap::new();
    let mut queue: VecDeque<Shared> = VecDeque::new();
    for (hash, s) in lm.specs.iter().filter(|(h, _)| !protected.contains(*h)) {
        let reason = if !s.missing.is_empty() {
            Reason::Incomplete
        } else if rules
            .packages
            .as_ref()
            .is_some_and(|p| !p.contains(&lm.node(hash).name))
        {
            Reason::PackageRemoved
        } else if age(rules.now, s.newest) > rules.max_age {
            Reason::Expired
        } else {
            continue;
        };
        reasons.insert(hash.clone(), reason);
        queue.push_back(hash.clone());
    }
    cascade(lm, &mut reasons, queue);
    debug_assert!(reasons.keys().all(|h| !protected.contains(h)));
    let orphans_rule = rules.orphans.then_some((rules.now, rules.max_age));
    materialize(
        model,
        lm,
        reasons,
        orphans_rule,
        &rules.keep,
        keep.len(),
        kept_as_in_flight,
    )
}

/// Turn decided deletions into a plan: the objects of each spec (v3 blobs another manifest
/// still references stay), the deletion layers, and, with `orphans_rule` (now, max age), the
/// orphans older than both the index and the max age — but never the objects of a spec the keep
/// lockfiles name (`keep`), listed in the index or not.
pub fn materialize(
    model: &CacheModel,
    lm: &LayoutModel,
    reasons: HashMap<Shared, Reason>,
    orphans_rule: Option<(SystemTime, Duration)>,
    keep: &HashSet<String>,
    kept_by_lockfile: usize,
    kept_as_in_flight: usize,
) -> LayoutPlan {
    let layers = layers(lm, &reasons);
    let deleted_manifests: HashSet<u32> = reasons
        .keys()
        .filter_map(|h| lm.specs.get(h))
        .flat_map(|s| {
            s.objects
                .iter()
                .copied()
                .filter(|&i| model.key(i).starts_with("v3/"))
        })
        .collect();

    // Orphans, when asked for: never newer than the index, never younger than the max age.
    let old_enough = |t: SystemTime| {
        orphans_rule.is_some_and(|(now, max_age)| t < lm.index_time && age(now, Some(t)) > max_age)
    };
    let candidates: Vec<(u32, PlannedOrphan)> = if orphans_rule.is_some() {
        lm.unowned(&model.catalog)
            .into_iter()
            .filter(|(_, o, kind)| *kind != Unowned::Stray && old_enough(o.last_modified))
            // A kept spec the index does not list is still what an environment installs.
            .filter(|(_, _, kind)| kind.hash().is_none_or(|h| !keep.contains(h)))
            .map(|(i, o, kind)| {
                (
                    i,
                    PlannedOrphan {
                        layout: lm.layout.to_string(),
                        key: o.key.clone(),
                        bytes: o.size,
                        kind,
                    },
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let orphan_manifests: HashSet<u32> = candidates
        .iter()
        .filter(|(_, o)| matches!(o.kind, Unowned::SpecManifest { .. }))
        .map(|(i, _)| *i)
        .collect();
    let mut planned: HashSet<u32> = candidates.iter().map(|(i, _)| *i).collect();
    let mut orphans: Vec<PlannedOrphan> = candidates.into_iter().map(|(_, o)| o).collect();

    // v3: a blob goes only when no manifest that stays references it.
    let mut still_referenced = vec![false; model.catalog.objects.len()];
    for (m, blobs) in &lm.manifests.by_manifest {
        if deleted_manifests.contains(m) || orphan_manifests.contains(m) {
            continue;
        }
        for i in blobs.iter().filter_map(BlobRef::listed) {
            still_referenced[i as usize] = true;
        }
    }
    // The blobs of orphan manifests go with them, under the same conditions.
    for m in &orphan_manifests {
        for i in lm
            .manifests
            .by_manifest
            .get(m)
            .into_iter()
            .flatten()
            .filter_map(BlobRef::listed)
        {
            let o = &model.catalog.objects[i as usize];
            if !still_referenced[i as usize] && old_enough(o.last_modified) && planned.insert(i) {
                orphans.push(PlannedOrphan {
                    layout: lm.layout.to_string(),
                    key: o.key.clone(),
                    bytes: o.size,
                    kind: Unowned::Blob,
                });
            }
        }
    }
    let mut specs: Vec<PlannedSpec> = reasons
        .into_iter()
        .filter_map(|(hash, reason)| {
            let s = lm.specs.get(&hash)?;
            let node = lm.node(&hash);
            let objects: Vec<&u32> = s
                .objects
                .iter()
                .filter(|&&i| !still_referenced[i as usize])
                .collect();
            Some(PlannedSpec {
                layout: lm.layout.to_string(),
                bytes: objects
                    .iter()
                    .map(|&&i| model.catalog.objects[i as usize].size)
                    .sum(),
                objects: objects.iter().map(|&&i| model.key(i).to_string()).collect(),
                layer: layers.get(&hash).copied().unwrap_or(0),
                name: node.name.clone(),
                version: node.version.clone(),
                hash,
                reason,
            })
        })
        .collect();
    specs.sort_by(|a, b| (a.layer, &a.name, &a.hash).cmp(&(b.layer, &b.name, &b.hash)));
    orphans.sort_by(|a, b| a.key.cmp(&b.key));
    LayoutPlan {
        layout: lm.layout,
        kept: lm.specs.len() - specs.len(),
        kept_by_lockfile,
        kept_as_in_flight,
        specs,
        orphans,
        leftovers: Vec::new(),
    }
}

/// The cached specs of `lm` the keep lockfiles need: their hashes, closed under link and run
/// dependencies.
pub fn keep_closure(lm: &LayoutModel, keep: &HashSet<String>) -> HashSet<Shared> {
    let roots = keep
        .iter()
        .filter(|h| lm.graph.contains(h))
        .map(String::as_str);
    lm.graph
        .dependencies_closure(roots, DepTypes::LINK_RUN)
        .into_iter()
        .filter(|h| lm.specs.contains_key(h))
        .collect()
}

/// Add to `reasons` every cached dependent (through link and run edges: a package cannot be
/// installed without them) of the specs in `queue`.
pub fn cascade(
    lm: &LayoutModel,
    reasons: &mut HashMap<Shared, Reason>,
    mut queue: VecDeque<Shared>,
) {
    let g = &lm.graph;
    while let Some(h) = queue.pop_front() {
        let name = lm.node(&h).name.clone();
        for (dependent, _) in g.neighbours(&h, DepTypes::LINK_RUN, true) {
            if reasons.contains_key(dependent) || !lm.specs.contains_key(dependent) {
                continue;
            }
            let dependent = lm.node(dependent).hash.clone();
            reasons.insert(
                dependent.clone(),
                Reason::DependentOf {
                    of_hash: h.clone(),
                    of_name: name.clone(),
                },
            );
            queue.push_back(dependent);
        }
    }
}

/// Layer 0: deleted specs no other deleted spec depends on; each dependency one layer after
/// its deepest deleted dependent (Kahn's algorithm over the deleted part of the graph, so deep
/// DAGs need no deep recursion).
fn layers(lm: &LayoutModel, deleted: &HashMap<Shared, Reason>) -> HashMap<Shared, usize> {
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
