//! Request counters: every store counts what it sends (a directory counts a listing page per
//! 1000 entries, as S3 pages), so tools and benchmarks can show they make no request per object.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct RequestStats {
    list: AtomicU64,
    head: AtomicU64,
    get: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub enum Request {
    #[default]
    List,
    Head,
    Get,
    Put,
    Delete,
}

/// Requests sent so far, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    pub list: u64,
    pub head: u64,
    pub get: u64,
    pub put: u64,
    pub delete: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.list + self.head + self.get + self.put + self.delete
    }
}

impl RequestStats {
    pub(crate) fn count(&self, r: Request) {
        let c = match r {
            Request::List => &self.list,
            Request::Head => &self.head,
            Request::Get => &self.get,
            Request::Put => &self.put,
            Request::Delete => &self.delete,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            list: self.list.load(Ordering::Relaxed),
            head: self.head.load(Ordering::Relaxed),
            get: self.get.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
        }
    }
}
