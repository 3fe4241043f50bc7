//! The build-cache janitor's deletion planner: from a cache's listing, indexes and manifest
//! references, the keep lists, ages and rules, which specs and objects go and why, in which
//! order, and the index that results. Pure: the janitor (`spackitor`) reads the cache, hands it
//! here as a [`CacheView`], and carries the plan out.

pub mod cache;
pub mod decision;
pub mod keys;
pub mod leftovers;
pub mod objects;
pub mod order;
pub mod packages;
pub mod plan;
pub mod purge;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

pub use cache::{
    BlobRef, CacheView, Key, LayoutView, Listing, Manifests, Object, SpecRecord, Unowned, V2Objects,
};
pub use decision::{DependentOf, LayoutPlan, PlannedOrphan, PlannedSpec, Reason, Rules};
pub use leftovers::{Recorded, leftovers};
pub use order::deletion_waves;
pub use packages::Packages;
pub use plan::plan;
pub use purge::{PurgeRefused, SpecLabel, purge};
