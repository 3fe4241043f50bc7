//! Which specs go and why: the keep closure, the in-flight guard, the age, package and
//! completeness rules, and the cascade to dependents. The plan types live here too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::cache::{CacheView, LayoutView, Unowned};
use super::objects::{self, OrphanRule};
use super::packages::Packages;
use crate::spack::buildcache::Layout;
use crate::spack::spec::{DepTypes, Shared};

/// What the rules of `clean` are applied with.
#[derive(Debug, Clone)]
pub struct Rules {
    pub max_age: Duration,
    /// Hashes of every spec in the keep lockfiles.
    pub keep: HashSet<String>,
    /// Packages that still exist; `None` when no repository was given.
    pub packages: Option<Packages>,
    /// Whether unowned objects go too (older than the index and than `max_age`).
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

/// A spec that goes, with the objects that go with it.
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

/// An object no index entry owns that goes.
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
    /// Objects of specs an interrupted run took out of the index
    /// ([`super::leftovers::leftovers`]): deleted whatever their age.
    pub leftovers: Vec<PlannedOrphan>,
    /// Cached specs that stay.
    pub kept: usize,
    /// Specs kept because a keep lockfile needs them.
    pub kept_by_lockfile: usize,
    /// Specs kept because one of their objects is newer than the index (an upload in flight).
    pub kept_as_in_flight: usize,
}

impl LayoutPlan {
    /// The hashes the plan takes out of the index.
    pub fn deleted_hashes(&self) -> HashSet<Shared> {
        self.specs.iter().map(|s| s.hash.clone()).collect()
    }

    /// The hashes whose objects are among the leftovers.
    pub fn leftover_hashes(&self) -> impl Iterator<Item = String> + '_ {
        self.leftovers
            .iter()
            .filter_map(|o| o.kind.hash().map(str::to_string))
    }

    /// The hashes of the specs and leftovers, as an index names them: what must not come back.
    pub fn gone_hashes(&self) -> HashSet<Shared> {
        let mut out = self.deleted_hashes();
        out.extend(self.leftover_hashes().map(Shared::from));
        out
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty() && self.orphans.is_empty() && self.leftovers.is_empty()
    }

    /// The index of `lm` once the plan is carried out: every record but the deleted specs',
    /// kept byte for byte. `None` when the plan takes nothing out of it.
    pub fn index_after(&self, lm: &LayoutView) -> Option<Vec<u8>> {
        let removed = self.deleted_hashes();
        (!removed.is_empty()).then(|| lm.db.to_bytes_without(&removed))
    }
}

/// What was decided for a layout before its objects are worked out: why each spec goes, and
/// why some stay.
#[derive(Debug, Clone, Default)]
pub struct Decided {
    pub reasons: HashMap<Shared, Reason>,
    pub kept_by_lockfile: usize,
    pub kept_as_in_flight: usize,
}

/// The plan of `clean`, one per layout of `view`.
///
/// A cached spec goes when it is incomplete (objects missing), its package is in none of
/// `rules.packages`, or its newest object is older than `rules.max_age`; every cached spec that
/// links to or runs one that goes, goes with it. The specs of `rules.keep`, those with an object
/// newer than the index (an upload in flight), and their link/run dependencies never go.
pub fn plan(view: &CacheView, rules: &Rules) -> Vec<LayoutPlan> {
    view.layouts
        .iter()
        .map(|lm| {
            let orphans = rules.orphans.then_some(OrphanRule {
                now: rules.now,
                max_age: rules.max_age,
                keep: &rules.keep,
            });
            objects::materialize(view, lm, decide(lm, rules), orphans)
        })
        .collect()
}

/// How old something last modified at `t` is at `now`; never listed counts as infinitely old.
pub fn age(now: SystemTime, t: Option<SystemTime>) -> Duration {
    t.map(|t| now.duration_since(t).unwrap_or_default())
        .unwrap_or(Duration::MAX)
}

/// The specs of `lm` that go under `rules`, and why.
fn decide(lm: &LayoutView, rules: &Rules) -> Decided {
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
    let protected: HashSet<Shared> = lm
        .graph
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
    // A dependent of a deleted spec cannot be protected: protection is closed under
    // dependencies.
    debug_assert!(reasons.keys().all(|h| !protected.contains(h)));
    Decided {
        reasons,
        kept_by_lockfile: keep.len(),
        kept_as_in_flight,
    }
}

/// The cached specs of `lm` the keep lockfiles need: their hashes, closed under link and run
/// dependencies.
pub fn keep_closure(lm: &LayoutView, keep: &HashSet<String>) -> HashSet<Shared> {
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
    lm: &LayoutView,
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
