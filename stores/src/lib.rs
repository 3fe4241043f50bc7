//! Object stores: one interface over S3 buckets (`s3://bucket[/prefix]`), directories
//! (`file:///dir` or a plain path) and memory (the fake tests use), with streaming listings,
//! user metadata, conditional puts and batched deletes.

mod file;
mod memory;
mod s3;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use file::{FileStore, RESERVED_DIR};
pub use memory::MemoryStore;
pub use model::progress::Progress;
pub use model::store_url::{S3Options, StoreUrl};
pub use s3::S3Store;
pub use stats::{Request, RequestCounts};

pub mod cache;
pub mod keep_lists;
pub mod sif_published;

/// At most this many keys go into one delete request (the S3 limit).
pub const DELETE_BATCH: usize = 1000;
/// Delete requests kept in flight at once.
pub const DELETE_CONCURRENCY: usize = 4;
/// Files larger than this go to S3 in parts of this size (S3's minimum part is 5 MiB).
pub const DEFAULT_PART_SIZE: u64 = 64 * 1024 * 1024;
/// The smallest part S3 accepts (but for the last one).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// User metadata of an object: name → value.
pub type Metadata = BTreeMap<String, String>;

/// What a listing or a head request tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key relative to the store's root (its prefix removed).
    pub key: String,
    pub size: u64,
    pub last_modified: SystemTime,
    /// The store's version tag of the content, usable with [`Condition::IfMatch`]. Listings of a
    /// directory leave it out (it would cost a stat per file more than the listing does).
    pub etag: Option<String>,
}

/// An object read whole.
#[derive(Debug, Clone)]
pub struct Object {
    pub info: ObjectInfo,
    pub metadata: BTreeMap<String, String>,
    pub bytes: Vec<u8>,
}

/// A precondition on a put.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Condition {
    #[default]
    None,
    /// Only create: fail when the key exists (`If-None-Match: *`).
    IfNoneMatch,
    /// Only replace the version read before (`If-Match: <etag>`).
    IfMatch(String),
}

/// One key a delete request did not remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteFailure {
    pub key: String,
    pub code: String,
    pub message: String,
}

/// The outcome of a batched delete: how many keys went, and per key what did not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteReport {
    /// Keys deleted (or already absent); a count, as a clean of 100,000 specs deletes many.
    pub deleted: usize,
    pub failed: Vec<DeleteFailure>,
    /// Delete requests sent (one per batch).
    pub requests: usize,
}

/// Errors of store operations. "Not found" is kept apart from "could not reach" and "denied",
/// so callers can decide between building, retrying and stopping. No variant carries
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{location} does not exist")]
    NotFound { location: String },
    #[error("bucket `{bucket}` does not exist")]
    NoSuchBucket { bucket: String },
    #[error("access to {location} was denied: {message}")]
    AccessDenied { location: String, message: String },
    #[error("{location} was changed by someone else (precondition failed)")]
    PreconditionFailed { location: String },
    #[error(transparent)]
    InvalidUrl(#[from] model::store_url::InvalidStoreUrl),
    #[error("invalid key `{key}`: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("{location}: {source}")]
    Io {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not reach {location}: {message}")]
    Unreachable { location: String, message: String },
    #[error("{location}: {code}: {message}")]
    Service {
        location: String,
        code: String,
        message: String,
    },
    #[error("S3 credentials: {0}")]
    Credentials(String),
}

impl StoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

/// What a backend hands back for a streamed read.
pub type ObjectReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// One kind of object store: S3 ([`S3Store`]), a directory ([`FileStore`]) or memory
/// ([`MemoryStore`], the fake tests use). [`Store`] is the handle tools hold; every backend
/// keeps the same contract, which `tests/tests/stores.rs` checks on each:
///
/// - Keys are relative to the store's root, `/`-separated, without empty, `.` or `..`
///   components; another key is [`StoreError::InvalidKey`].
/// - A missing object is [`StoreError::NotFound`], never a transport error; a store that cannot
///   be reached is [`StoreError::Unreachable`], never "missing".
/// - Listings come in the byte order of the keys (S3's order), whatever the backend.
/// - Puts honour [`Condition`] as S3 honours `If-None-Match: *` and `If-Match`: a put whose
///   condition does not hold is [`StoreError::PreconditionFailed`] and changes nothing.
/// - [`ObjectStore::delete_many`] sends the keys in batches of at most [`DELETE_BATCH`]. Per
///   key: a key that does not exist counts as deleted (as in S3); a key that was not deleted —
///   an invalid key too, on every backend — is a [`DeleteFailure`] in the report, and the
///   other keys go on. `Err` only when a request as a whole could not be made or was refused
///   (the store unreachable, the bucket or folder missing, access to it denied, a server
///   error): nothing is known then of its keys, and batches not yet sent are not sent.
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// The URL of the store root, for messages.
    fn url(&self) -> String;
    /// Where `key` lives, for messages (`s3://bucket/prefix/key`, a path, `memory://key`).
    fn location(&self, key: &str) -> String;
    /// The folder holding the objects as files, for a directory.
    fn local_root(&self) -> Option<&Path> {
        None
    }
    /// The requests this store (and its clones) sent so far.
    fn requests(&self) -> RequestCounts;
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>>;
    fn head<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(ObjectInfo, Metadata), StoreError>>;
    fn reader<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(ObjectInfo, ObjectReader), StoreError>>;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Object, StoreError>>;
    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Vec<u8>,
        metadata: &'a Metadata,
        condition: &'a Condition,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;
    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
        metadata: &'a Metadata,
        part_size: u64,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn get_to_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, Result<(ObjectInfo, Metadata), StoreError>>;
    fn delete_many(&self, keys: Vec<String>) -> BoxFuture<'_, Result<DeleteReport, StoreError>>;
}

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

impl DeleteFailure {
    /// `key` could not even be sent: every backend reports an invalid key this way.
    pub(crate) fn invalid_key(key: String, error: &StoreError) -> DeleteFailure {
        DeleteFailure {
            key,
            code: "InvalidKey".into(),
            message: error.to_string(),
        }
    }
}

/// Check a key: relative, `/`-separated, no empty, `.` or `..` component.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason: &str| StoreError::InvalidKey {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if key.is_empty() {
        return Err(bad("empty"));
    }
    if key.starts_with('/') {
        return Err(bad("keys are relative to the store root"));
    }
    if key
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad("empty, `.` or `..` path component"));
    }
    Ok(())
}
