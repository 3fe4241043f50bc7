//! Object stores: one interface over S3 buckets (`s3://bucket[/prefix]`) and directories
//! (`file:///dir` or a plain path), with streaming listings, user metadata, conditional puts and
//! batched deletes.

mod file;
mod s3;
mod stats;

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::stream::BoxStream;

pub use file::{FileStore, RESERVED_DIR};
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

/// A store: a directory or an S3 bucket (with an optional key prefix).
#[derive(Debug, Clone)]
pub enum Store {
    File(FileStore),
    S3(S3Store),
}

impl Store {
    /// Open the store behind `url`. S3 stores are configured from `s3`; nothing is sent yet.
    pub async fn open(url: &StoreUrl, s3: &S3Options) -> Result<Store, StoreError> {
        Ok(match url {
            StoreUrl::Dir(path) => Store::File(FileStore::new(path.clone())),
            StoreUrl::S3 { bucket, prefix } => {
                Store::S3(S3Store::connect(bucket.clone(), prefix.clone(), s3).await?)
            }
        })
    }

    /// True for a directory: reading an object is a file read, not a network request.
    pub fn is_local(&self) -> bool {
        matches!(self, Store::File(_))
    }

    /// The URL of the store root, for messages.
    pub fn url(&self) -> String {
        match self {
            Store::File(f) => f.root().display().to_string(),
            Store::S3(s) => s.url(),
        }
    }

    /// The requests this store (and its clones) sent so far.
    pub fn requests(&self) -> RequestCounts {
        match self {
            Store::File(f) => f.stats().snapshot(),
            Store::S3(s) => s.stats().snapshot(),
        }
    }

    /// Where `key` lives, for messages (`s3://bucket/prefix/key` or a path).
    pub fn location(&self, key: &str) -> String {
        match self {
            Store::File(f) => f.path_of_unchecked(key).display().to_string(),
            Store::S3(s) => s.location(key),
        }
    }

    /// Every object whose key starts with `prefix`, streamed page by page in the byte order
    /// of the keys (on both backends).
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        match self {
            Store::File(f) => f.list(prefix),
            Store::S3(s) => s.list(prefix),
        }
    }

    /// Size, last-modified, etag and user metadata of `key`.
    pub async fn head(
        &self,
        key: &str,
    ) -> Result<(ObjectInfo, BTreeMap<String, String>), StoreError> {
        match self {
            Store::File(f) => f.head(key).await,
            Store::S3(s) => s.head(key).await,
        }
    }

    /// Read `key` as a stream of bytes (its size known up front), for objects too large to
    /// hold: memory stays bounded whatever their size.
    pub async fn reader(
        &self,
        key: &str,
    ) -> Result<(ObjectInfo, Box<dyn tokio::io::AsyncRead + Send + Unpin>), StoreError> {
        match self {
            Store::File(f) => f.reader(key).await,
            Store::S3(s) => s.reader(key).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Object, StoreError> {
        match self {
            Store::File(f) => f.get(key).await,
            Store::S3(s) => s.get(key).await,
        }
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
        match self {
            Store::File(f) => f.put(key, bytes, metadata, condition).await,
            Store::S3(s) => s.put(key, bytes, metadata, condition).await,
        }
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
        match self {
            Store::File(f) => f.put_file(key, path, metadata, progress).await,
            Store::S3(s) => s.put_file(key, path, metadata, part_size, progress).await,
        }
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
        match self {
            Store::File(f) => f.get_to_file(key, path, progress).await,
            Store::S3(s) => s.get_to_file(key, path, progress).await,
        }
    }

    /// Delete `keys` in batches of at most [`DELETE_BATCH`], several batches in flight. A key
    /// that does not exist counts as deleted, as in S3. Per-key failures are in the report;
    /// an `Err` means a whole request failed, and nothing about its keys is known.
    pub async fn delete_many(&self, keys: Vec<String>) -> Result<DeleteReport, StoreError> {
        match self {
            Store::File(f) => f.delete_many(keys).await,
            Store::S3(s) => s.delete_many(keys).await,
        }
    }
}

impl Store {
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
