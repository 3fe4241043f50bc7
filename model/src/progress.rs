//! Progress of a transfer, as the adapters report it to whoever watches.

/// What watches a transfer: called with the bytes moved as they move (a progress bar's `inc`,
/// or `&|_| ()` when nobody watches).
pub trait Progress: Fn(u64) + Sync {}
impl<F: Fn(u64) + Sync> Progress for F {}
