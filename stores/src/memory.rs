//! The store in memory: a fake S3 bucket for tests, keeping the objects, their user metadata
//! (names lowercased, as S3 returns them), etags and last-modified times, honouring conditional
//! puts, listing in S3's order, counting requests as S3 would be sent them, and failing on
//! demand (a key that cannot be deleted, a store that cannot be reached).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use sha2::{Digest, Sha256};

use crate::object_store::{
    Condition, DeleteFailure, DeleteReport, Metadata, Object, ObjectInfo, ObjectReader,
    ObjectStore, StoreError, check_key,
};
use crate::stats::{Request, RequestCounts, RequestStats};
use model::progress::Progress;

/// S3 lists at most this many keys a page.
const PAGE: usize = 1000;

#[derive(Debug, Clone)]
struct Stored {
    bytes: Arc<Vec<u8>>,
    metadata: Metadata,
    etag: String,
    last_modified: SystemTime,
}

impl Stored {
    fn info(&self, key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.to_string(),
            size: self.bytes.len() as u64,
            last_modified: self.last_modified,
            etag: Some(self.etag.clone()),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Stored>,
    /// Keys whose deletion fails, as S3 fails single keys of a DeleteObjects request.
    undeletable: BTreeSet<String>,
    /// Every request fails as if the server were down.
    unreachable: bool,
}

/// A bucket in memory. Clones share the objects and the request counts; hand one to
/// [`Store::new`](crate::Store::new) and keep another to age objects or inject failures.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    stats: Arc<RequestStats>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Give `key` another last-modified time (as a janitor sees an old object).
    pub fn set_last_modified(&self, key: &str, time: SystemTime) -> Result<(), StoreError> {
        let mut state = self.state();
        let object = state
            .objects
            .get_mut(key)
            .ok_or_else(|| self.not_found(key))?;
        object.last_modified = time;
        Ok(())
    }

    /// Make every delete of `key` fail for that key alone (`AccessDenied`), as an object
    /// policy or a lock makes S3 refuse it inside a successful request.
    pub fn refuse_deletes_of(&self, key: &str) {
        self.state().undeletable.insert(key.to_string());
    }

    /// Make every request fail as a whole with [`StoreError::Unreachable`] (`true`), or
    /// succeed again (`false`).
    pub fn set_unreachable(&self, unreachable: bool) {
        self.state().unreachable = unreachable;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_found(&self, key: &str) -> StoreError {
        StoreError::NotFound {
            location: self.location(key),
        }
    }

    /// Count a request and refuse it when the store is down.
    fn request(&self, kind: Request) -> Result<MutexGuard<'_, State>, StoreError> {
        self.stats.count(kind);
        let state = self.state();
        if state.unreachable {
            return Err(StoreError::Unreachable {
                location: self.url(),
                message: "the store in memory was told to be unreachable".into(),
            });
        }
        Ok(state)
    }

    fn read(&self, kind: Request, key: &str) -> Result<(Stored, ObjectInfo), StoreError> {
        check_key(key)?;
        let state = self.request(kind)?;
        let stored = state
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| self.not_found(key))?;
        let info = stored.info(key);
        Ok((stored, info))
    }

    fn write(
        &self,
        key: &str,
        bytes: Vec<u8>,
        metadata: &Metadata,
        condition: &Condition,
    ) -> Result<String, StoreError> {
        check_key(key)?;
        let mut state = self.request(Request::Put)?;
        let current = state.objects.get(key).map(|o| o.etag.as_str());
        let holds = match (condition, current) {
            (Condition::None, _) => true,
            (Condition::IfNoneMatch, current) => current.is_none(),
            (Condition::IfMatch(want), Some(have)) => want == have,
            (Condition::IfMatch(_), None) => false,
        };
        if !holds {
            return Err(StoreError::PreconditionFailed {
                location: self.location(key),
            });
        }
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..16]));
        let stored = Stored {
            bytes: Arc::new(bytes),
            // S3 carries user metadata in HTTP headers, whose names come back lowercase.
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_lowercase(), v.clone()))
                .collect(),
            etag: etag.clone(),
            last_modified: SystemTime::now(),
        };
        state.objects.insert(key.to_string(), stored);
        Ok(etag)
    }

    fn list_now(&self, prefix: &str) -> Vec<Result<ObjectInfo, StoreError>> {
        let state = match self.request(Request::List) {
            Ok(state) => state,
            Err(e) => return vec![Err(e)],
        };
        let listed: Vec<_> = state
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| Ok(o.info(k)))
            .collect();
        drop(state);
        // One request a page, the first one counted above.
        for _ in 1..listed.len().div_ceil(PAGE) {
            self.stats.count(Request::List);
        }
        listed
    }

    fn delete_batch(&self, batch: &[String], report: &mut DeleteReport) -> Result<(), StoreError> {
        let mut state = self.request(Request::Delete)?;
        report.requests += 1;
        for key in batch {
            if state.undeletable.contains(key) {
                report.failed.push(DeleteFailure {
                    key: key.clone(),
                    code: "AccessDenied".into(),
                    message: "the store in memory was told to refuse deleting it".into(),
                });
            } else {
                state.objects.remove(key);
                report.deleted += 1;
            }
        }
        Ok(())
    }

    fn delete_now(&self, keys: Vec<String>) -> Result<DeleteReport, StoreError> {
        let mut report = DeleteReport::default();
        let mut valid = Vec::with_capacity(keys.len());
        for key in keys {
            match check_key(&key) {
                Ok(()) => valid.push(key),
                Err(e) => report.failed.push(DeleteFailure::invalid_key(key, &e)),
            }
        }
        for batch in valid.chunks(crate::object_store::DELETE_BATCH) {
            self.delete_batch(batch, &mut report)?;
        }
        Ok(report)
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        location: path.display().to_string(),
        source,
    }
}

impl ObjectStore for MemoryStore {
    fn url(&self) -> String {
        "memory://".into()
    }

    fn location(&self, key: &str) -> String {
        format!("memory://{key}")
    }

    fn requests(&self) -> RequestCounts {
        self.stats.snapshot()
    }

    /// The objects as they are when the listing is first polled, whole (S3 reads page by page
    /// as the caller goes; nothing a caller may rely on tells the two apart).
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        let this = self.clone();
        let prefix = prefix.to_string();
        stream::once(async move { stream::iter(this.list_now(&prefix)) })
            .flatten()
            .boxed()
    }

    fn head<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(ObjectInfo, Metadata), StoreError>> {
        async move {
            let (stored, info) = self.read(Request::Head, key)?;
            Ok((info, stored.metadata))
        }
        .boxed()
    }

    fn reader<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(ObjectInfo, ObjectReader), StoreError>> {
        async move {
            let (stored, info) = self.read(Request::Get, key)?;
            let reader: ObjectReader = Box::new(std::io::Cursor::new(stored.bytes.to_vec()));
            Ok((info, reader))
        }
        .boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Object, StoreError>> {
        async move {
            let (stored, info) = self.read(Request::Get, key)?;
            Ok(Object {
                info,
                metadata: stored.metadata,
                bytes: stored.bytes.to_vec(),
            })
        }
        .boxed()
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
        metadata: &'a Metadata,
        condition: &'a Condition,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        async move { self.write(key, bytes, metadata, condition).map(Some) }.boxed()
    }

    /// One request whatever the size: there are no parts to lose in memory.
    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
        metadata: &'a Metadata,
        _part_size: u64,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            check_key(key)?;
            let bytes = tokio::fs::read(path).await.map_err(|e| io(path, e))?;
            let size = bytes.len() as u64;
            self.write(key, bytes, metadata, &Condition::None)?;
            progress(size);
            Ok(())
        }
        .boxed()
    }

    fn get_to_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, Result<(ObjectInfo, Metadata), StoreError>> {
        async move {
            let (stored, info) = self.read(Request::Get, key)?;
            tokio::fs::write(path, stored.bytes.as_slice())
                .await
                .map_err(|e| io(path, e))?;
            progress(info.size);
            Ok((info, stored.metadata))
        }
        .boxed()
    }

    fn delete_many(&self, keys: Vec<String>) -> BoxFuture<'_, Result<DeleteReport, StoreError>> {
        async move { self.delete_now(keys) }.boxed()
    }
}
