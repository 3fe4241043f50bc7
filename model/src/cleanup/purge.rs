//! The plan of `purge`: chosen specs go (with their dependents when asked), or nothing goes —
//! never a spec a keep lockfile needs, never one others still link to or run.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use super::cache::{CacheView, LayoutView};
use super::decision::{Decided, Going, LayoutPlan, Why};
use super::objects::materialize;
use super::plan::{cascade, keep_closure};
use crate::spack::buildcache::Layout;
use crate::spack::spec::{DepTypes, Shared};

/// A spec named in a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecLabel {
    pub layout: Layout,
    pub name: Shared,
    pub version: Shared,
    pub hash: Shared,
}

impl SpecLabel {
    fn of(lm: &LayoutView, hash: &str) -> SpecLabel {
        let n = lm.node(hash);
        SpecLabel {
            layout: lm.layout,
            name: n.name.clone(),
            version: n.version.clone(),
            hash: n.hash.clone(),
        }
    }
}

impl fmt::Display for SpecLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} /{} ({})",
            self.name, self.version, self.hash, self.layout
        )
    }
}

/// Why a purge deletes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeRefused {
    /// Cached specs link to or run the chosen ones and are not chosen themselves.
    #[error("{} spec(s) depend on the chosen ones and would break", .0.len())]
    WouldBreak(Vec<SpecLabel>),
    /// The keep lockfiles need these chosen specs (or their dependents).
    #[error("{} spec(s) a keep lockfile needs would be deleted", .0.len())]
    Kept(Vec<SpecLabel>),
}

/// Delete `chosen` (layout, hash) specs; with `with_dependents`, every cached spec that links
/// to or runs them too, else refuse when there is any. Refuse when any spec that would go is in
/// the link/run closure of `keep`. A refusal plans nothing in any layout.
pub fn purge(
    view: &CacheView,
    chosen: &[(Layout, Shared)],
    with_dependents: bool,
    keep: &HashSet<String>,
) -> Result<Vec<LayoutPlan>, PurgeRefused> {
    let mut plans = Vec::new();
    for lm in &view.layouts {
        let g = lm.graph();
        let mut going = Going::new(g.len());
        for (_, h) in chosen
            .iter()
            .filter(|(l, h)| *l == lm.layout && lm.is_cached(h))
        {
            going.insert(
                g.position(h).expect("a cached spec is in the graph"),
                Why::Purged,
            );
        }
        if with_dependents {
            let queue: VecDeque<usize> = going.iter().map(|(i, _)| i).collect();
            cascade(lm, &mut going, queue);
        } else {
            let broken = broken_dependents(lm, &going);
            if !broken.is_empty() {
                return Err(PurgeRefused::WouldBreak(broken));
            }
        }
        let kept = keep_closure(lm, keep);
        let mut refused: Vec<SpecLabel> = going
            .iter()
            .map(|(i, _)| g.hash(i))
            .filter(|h| kept.contains(*h))
            .map(|h| SpecLabel::of(lm, h))
            .collect();
        if !refused.is_empty() {
            refused.sort_by(|a, b| (&a.name, &a.hash).cmp(&(&b.name, &b.hash)));
            return Err(PurgeRefused::Kept(refused));
        }
        let decided = Decided {
            going,
            kept_by_lockfile: kept.len(),
            kept_as_in_flight: 0,
        };
        plans.push(materialize(view, lm, decided, None));
    }
    Ok(plans)
}

/// The cached specs outside `going` that link to or run one in it.
fn broken_dependents(lm: &LayoutView, going: &Going) -> Vec<SpecLabel> {
    let g = lm.graph();
    let mut broken: Vec<SpecLabel> = g
        .dependents_closure(going.iter().map(|(i, _)| &**g.hash(i)), DepTypes::LINK_RUN)
        .into_iter()
        .filter(|d| !g.position(d).is_some_and(|i| going.contains(i)) && lm.is_cached(d))
        .map(|d| SpecLabel::of(lm, &d))
        .collect();
    broken.sort_by(|a, b| (&a.name, &a.hash).cmp(&(&b.name, &b.hash)));
    broken
}
