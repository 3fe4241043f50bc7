//! What the planner decides: the rules it applies and, per layout, the specs and objects that
//! go and why.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use smallvec::SmallVec;

use super::cache::{Key, LayoutView, Unowned};
use super::packages::Packages;
use crate::spack::buildcache::Layout;
use crate::spack::spec::Shared;

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
    /// It links to or runs a spec that goes. Boxed: a reason is held by every spec a plan
    /// deletes (up to ~1,000,000), most of them for another reason, and the two names in place
    /// made every one 32 bytes larger.
    DependentOf(Box<DependentOf>),
    /// Some of its objects are missing: it cannot be installed anyway.
    Incomplete,
    /// Named in `spackitor purge`.
    Purged,
}

/// The spec that goes, which a dependent goes with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DependentOf {
    pub of_hash: Shared,
    pub of_name: Shared,
}

impl Reason {
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Expired => "expired",
            Reason::PackageRemoved => "package removed",
            Reason::DependentOf(_) => "dependent of a deleted spec",
            Reason::Incomplete => "incomplete",
            Reason::Purged => "purged",
        }
    }
}

/// A spec that goes, with the objects that go with it.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedSpec {
    pub layout: Layout,
    pub hash: Shared,
    pub name: Shared,
    pub version: Shared,
    #[serde(flatten)]
    pub reason: Reason,
    /// Objects deleted with it (v3 blobs another manifest still uses are not among them). Two
    /// held in place (a v2 spec's spec file and tarball): a list of its own cost ~48 bytes more
    /// a deleted spec, of which a plan can hold 750,000.
    #[serde(serialize_with = "keys")]
    pub objects: SmallVec<[Key; 2]>,
    pub bytes: u64,
    /// 0 for specs no deleted spec depends on; deleted in increasing order.
    #[serde(skip)]
    pub layer: u32,
}

fn keys<S: serde::Serializer>(keys: &SmallVec<[Key; 2]>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(keys)
}

/// An object no index entry owns that goes.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedOrphan {
    pub layout: Layout,
    pub key: Key,
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
    pub going: Going,
    pub kept_by_lockfile: usize,
    pub kept_as_in_flight: usize,
}

/// Why a spec goes, as the planner holds it while planning: the spec it depends on by graph
/// position, not by hash and name. 8 bytes, where a [`Reason`] is 40.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Expired,
    PackageRemoved,
    /// Of the spec at this graph position.
    DependentOf(u32),
    Incomplete,
    Purged,
}

impl Why {
    /// The reason as a plan gives it, the spec depended on named.
    pub fn reason(self, lm: &LayoutView) -> Reason {
        match self {
            Why::Expired => Reason::Expired,
            Why::PackageRemoved => Reason::PackageRemoved,
            Why::Incomplete => Reason::Incomplete,
            Why::Purged => Reason::Purged,
            Why::DependentOf(of) => {
                let of_hash = lm.graph().hash(of as usize).clone();
                Reason::DependentOf(Box::new(DependentOf {
                    of_name: lm.node(&of_hash).name.clone(),
                    of_hash,
                }))
            }
        }
    }
}

/// The specs of a layout that go and why, by graph position ([`SpecGraph::position`]): a list
/// of small entries, not a map keyed by hash holding each reason's strings (~50 bytes a
/// deleted spec less while the plan is made; 750,000 of 1,000,000 specs can go).
///
/// [`SpecGraph::position`]: crate::spack::graph::SpecGraph::position
#[derive(Debug, Clone, Default)]
pub struct Going {
    /// [`Why::pack`]ed; 0 for a spec that stays.
    why: Vec<u32>,
    len: usize,
}

impl Why {
    /// In 4 bytes, never 0: the kind in the low 3 bits, the position depended on above them
    /// (graphs hold fewer than 2^28 nodes).
    fn pack(self) -> u32 {
        match self {
            Why::Expired => 1,
            Why::PackageRemoved => 2,
            Why::Incomplete => 3,
            Why::Purged => 4,
            Why::DependentOf(of) => 5 | of << 3,
        }
    }

    fn unpack(packed: u32) -> Option<Why> {
        Some(match packed & 7 {
            1 => Why::Expired,
            2 => Why::PackageRemoved,
            3 => Why::Incomplete,
            4 => Why::Purged,
            5 => Why::DependentOf(packed >> 3),
            _ => return None,
        })
    }
}

impl Going {
    /// Nothing going yet, in a graph of `nodes` nodes.
    pub fn new(nodes: usize) -> Going {
        Going {
            why: vec![0; nodes],
            len: 0,
        }
    }

    /// Mark the spec at `position` as going for `why`, unless it already goes.
    pub fn insert(&mut self, position: usize, why: Why) {
        let slot = &mut self.why[position];
        if *slot == 0 {
            *slot = why.pack();
            self.len += 1;
        }
    }

    pub fn contains(&self, position: usize) -> bool {
        self.why.get(position).is_some_and(|&w| w != 0)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The specs that go, by increasing graph position, and why.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Why)> + '_ {
        self.why
            .iter()
            .enumerate()
            .filter_map(|(i, &w)| Some((i, Why::unpack(w)?)))
    }
}

/// How old something last modified at `t` is at `now`; never listed counts as infinitely old.
pub fn age(now: SystemTime, t: Option<SystemTime>) -> Duration {
    t.map(|t| now.duration_since(t).unwrap_or_default())
        .unwrap_or(Duration::MAX)
}
