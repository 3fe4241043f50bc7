//! Object stores: one interface over S3 buckets (`s3://bucket[/prefix]`), directories
//! (`file:///dir` or a plain path) and memory (the fake tests use), with streaming listings,
//! user metadata, conditional puts and batched deletes.

mod file;
mod memory;
mod object_store;
mod s3;
mod sorted_walk;
mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::stream::BoxStream;

pub use file::{FileStore, RESERVED_DIR};
pub use memory::MemoryStore;
pub use model::progress::Progress;
pub use model::store_url::{S3Options, StoreUrl};
pub use object_store::{
    Condition, DEFAULT_PART_SIZE, DELETE_BATCH, DELETE_CONCURRENCY, DeleteFailure, DeleteReport,
    MIN_PART_SIZE, Metadata, Object, ObjectInfo, ObjectReader, ObjectStore, StoreError,
};
pub use s3::S3Store;
pub use stats::{Request, RequestCounts};

pub mod cache;
pub mod keep_lists;
pub mod sif_published;

/// A store: a directory, an S3 bucket (with an optional key prefix) or memory. Cloning is
/// cheap, and clones share the backend (its connections and request counts).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn ObjectStore>,
}

impl Store {
    /// A store over `backend`.
    pub fn new(backend: impl ObjectStore + 'static) -> Store {
        Store {
            backend: Arc::new(backend),
        }
    }

    /// Open the store behind `url`. S3 stores are configured from `s3`; nothing is sent yet.
    pub async fn open(url: &StoreUrl, s3: &S3Options) -> Result<Store, StoreError> {
        Ok(match url {
            StoreUrl::Dir(path) => Store::new(FileStore::new(path.clone())),
            StoreUrl::S3 { bucket, prefix } => {
                Store::new(S3Store::connect(bucket.clone(), prefix.clone(), s3).await?)
            }
        })
    }

    /// A new, empty store in memory (`memory://`), behaving as an S3 bucket does. To age its
    /// objects or make requests fail, make a [`MemoryStore`] and hand a clone to [`Store::new`].
    pub fn memory() -> Store {
        Store::new(MemoryStore::new())
    }

    /// True for a directory: reading an object is a file read, not a network request. A store
    /// in memory stands in for S3 and answers false, so the code under test takes S3's paths.
    pub fn is_local(&self) -> bool {
        self.backend.local_root().is_some()
    }

    /// The file holding `key`, for a directory.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.backend.local_root().map(|root| root.join(key))
    }

    /// The URL of the store root, for messages.
    pub fn url(&self) -> String {
        self.backend.url()
    }

    /// The requests this store (and its clones) sent so far.
    pub fn requests(&self) -> RequestCounts {
        self.backend.requests()
    }

    /// Where `key` lives, for messages (`s3://bucket/prefix/key`, a path, `memory://key`).
    pub fn location(&self, key: &str) -> String {
        self.backend.location(key)
    }

    /// Every object whose key starts with `prefix`, streamed page by page in the byte order
    /// of the keys (on every backend).
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        self.backend.list(prefix)
    }

    /// Size, last-modified, etag and user metadata of `key`.
    pub async fn head(
        &self,
        key: &str,
    ) -> Result<(ObjectInfo, BTreeMap<String, String>), StoreError> {
        self.backend.head(key).await
    }

    /// Read `key` as a stream of bytes (its size known up front), for objects too large to
    /// hold: memory stays bounded whatever their size.
    pub async fn reader(
        &self,
        key: &str,
    ) -> Result<(ObjectInfo, Box<dyn tokio::io::AsyncRead + Send + Unpin>), StoreError> {
        self.backend.reader(key).await
    }

    pub async fn get(&self, key: &str) -> Result<Object, StoreError> {
        self.backend.get(key).await
    }

    /// Write `bytes` at `key` with user `metadata`, honouring `condition`; returns the new
    /// etag when the store reports one.
    pub async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        metadata: &BTreeMap<String, String>,
        condition: &Condition,
    ) -> Result<Option<String>, StoreError> {
        self.backend.put(key, bytes, metadata, condition).await
    }

    /// Upload the file at `path` to `key` with user `metadata`, streamed from disk: a file
    /// larger than `part_size` goes to S3 as a multipart upload (aborted when a part fails, so no
    /// half object appears), and into a directory through a temporary file and a rename.
    /// `progress` counts the bytes sent (a hidden bar when nobody watches).
    pub async fn put_file(
        &self,
        key: &str,
        path: &std::path::Path,
        metadata: &BTreeMap<String, String>,
        part_size: u64,
        progress: &dyn Progress,
    ) -> Result<(), StoreError> {
        self.backend
            .put_file(key, path, metadata, part_size, progress)
            .await
    }

    /// Stream `key` into the file `path` (created or truncated); returns what a head returns.
    /// The caller writes to a temporary name and renames when the copy must be atomic.
    /// `progress` counts the bytes received.
    pub async fn get_to_file(
        &self,
        key: &str,
        path: &std::path::Path,
        progress: &dyn Progress,
    ) -> Result<(ObjectInfo, BTreeMap<String, String>), StoreError> {
        self.backend.get_to_file(key, path, progress).await
    }

    /// Delete `keys` in batches of at most [`DELETE_BATCH`], several batches in flight. A key
    /// that does not exist counts as deleted, as in S3. Per-key failures (an invalid key
    /// among them) are in the report; an `Err` means a request as a whole could not be made
    /// or was refused, and nothing about its keys is known (see [`ObjectStore`]).
    pub async fn delete_many(&self, keys: Vec<String>) -> Result<DeleteReport, StoreError> {
        self.backend.delete_many(keys).await
    }

    /// [`Store::delete_many`] for callers with nothing to do about single keys: the first key
    /// not deleted is the error, named by its location.
    pub async fn delete_all(&self, keys: Vec<String>) -> Result<usize, StoreError> {
        let report = self.delete_many(keys).await?;
        match report.failed.into_iter().next() {
            None => Ok(report.deleted),
            Some(f) => Err(StoreError::Service {
                location: self.location(&f.key),
                code: f.code,
                message: f.message,
            }),
        }
    }
}
