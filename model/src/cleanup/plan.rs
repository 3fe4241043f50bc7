//! Which specs go and why: the keep closure, the in-flight guard, the age, package and
//! completeness rules, and the cascade to dependents.

use std::collections::{HashSet, VecDeque};

use super::cache::{CacheView, LayoutView};
use super::decision::{Decided, Going, LayoutPlan, Rules, Why, age};
use super::objects::{self, OrphanRule};
use crate::spack::spec::{DepTypes, Shared};

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
            objects::materialize(view, lm, decide(view, lm, rules), orphans)
        })
        .collect()
}

/// The specs of `lm` that go under `rules`, and why.
fn decide(view: &CacheView, lm: &LayoutView, rules: &Rules) -> Decided {
    let listing = &view.listing;
    let keep = keep_closure(lm, &rules.keep);
    // Anything newer than the index may belong to a pipeline still uploading: keep it, and
    // everything it needs.
    let fresh: Vec<&str> = lm
        .specs()
        .filter(|(_, s)| s.newest(listing).is_some_and(|t| t > lm.index_time))
        .map(|(h, _)| &**h)
        .collect();
    let kept_as_in_flight = fresh.iter().filter(|h| !keep.contains(**h)).count();
    let protected: HashSet<Shared> = lm
        .graph()
        .dependencies_closure(
            keep.iter().map(|h| &**h).chain(fresh.iter().copied()),
            DepTypes::LINK_RUN,
        )
        .into_iter()
        .collect();

    let g = lm.graph();
    let mut going = Going::new(g.len());
    let mut queue = VecDeque::new();
    for (hash, s) in lm.specs().filter(|(h, _)| !protected.contains(*h)) {
        let why = if !s.missing.is_empty() {
            Why::Incomplete
        } else if rules
            .packages
            .as_ref()
            .is_some_and(|p| !p.contains(&lm.node(hash).name))
        {
            Why::PackageRemoved
        } else if age(rules.now, s.newest(listing)) > rules.max_age {
            Why::Expired
        } else {
            continue;
        };
        let i = g.position(hash).expect("every index entry is in the graph");
        going.insert(i, why);
        queue.push_back(i);
    }
    cascade(lm, &mut going, queue);
    // A dependent of a deleted spec cannot be protected: protection is closed under
    // dependencies.
    debug_assert!(going.iter().all(|(i, _)| !protected.contains(g.hash(i))));
    Decided {
        going,
        kept_by_lockfile: keep.len(),
        kept_as_in_flight,
    }
}

/// The cached specs of `lm` the keep lockfiles need: their hashes, closed under link and run
/// dependencies.
pub fn keep_closure(lm: &LayoutView, keep: &HashSet<String>) -> HashSet<Shared> {
    let roots = keep
        .iter()
        .filter(|h| lm.graph().contains(h))
        .map(String::as_str);
    lm.graph()
        .dependencies_closure(roots, DepTypes::LINK_RUN)
        .into_iter()
        .filter(|h| lm.is_cached(h))
        .collect()
}

/// Add to `going` every cached dependent (through link and run edges: a package cannot be
/// installed without them) of the specs at the graph positions in `queue`.
pub fn cascade(lm: &LayoutView, going: &mut Going, mut queue: VecDeque<usize>) {
    let g = lm.graph();
    while let Some(i) = queue.pop_front() {
        for dependent in g.neighbour_positions(i, DepTypes::LINK_RUN, true) {
            if going.contains(dependent) || !lm.is_cached(g.hash(dependent)) {
                continue;
            }
            going.insert(dependent, Why::DependentOf(i as u32));
            queue.push_back(dependent);
        }
    }
}
