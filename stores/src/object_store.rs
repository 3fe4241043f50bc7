//! What every object store is: the [`ObjectStore`] requests and their contract, the objects,
//! conditions, delete reports and errors they deal in, and which keys are keys.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::stats::RequestCounts;
use model::progress::Progress;

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

/// One kind of object store: S3 ([`S3Store`](crate::S3Store)), a directory
/// ([`FileStore`](crate::FileStore)) or memory ([`MemoryStore`](crate::MemoryStore), the fake
/// tests use). [`Store`](crate::Store) is the handle tools hold; every backend
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

/// The methods of [`ObjectStore`] a backend with inherent async methods of the same names and
/// arguments (`S3Store`, `FileStore`) implements by calling them: written once here rather than
/// once per backend.
macro_rules! forward_to_inherent {
    ($backend:ty) => {
        fn list(
            &self,
            prefix: &str,
        ) -> futures::stream::BoxStream<'static, Result<$crate::ObjectInfo, $crate::StoreError>> {
            <$backend>::list(self, prefix)
        }

        fn head<'a>(
            &'a self,
            key: &'a str,
        ) -> futures::future::BoxFuture<
            'a,
            Result<($crate::ObjectInfo, $crate::Metadata), $crate::StoreError>,
        > {
            futures::FutureExt::boxed(<$backend>::head(self, key))
        }

        fn reader<'a>(
            &'a self,
            key: &'a str,
        ) -> futures::future::BoxFuture<
            'a,
            Result<($crate::ObjectInfo, $crate::ObjectReader), $crate::StoreError>,
        > {
            futures::FutureExt::boxed(<$backend>::reader(self, key))
        }

        fn get<'a>(
            &'a self,
            key: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<$crate::Object, $crate::StoreError>> {
            futures::FutureExt::boxed(<$backend>::get(self, key))
        }

        fn put<'a>(
            &'a self,
            key: &'a str,
            bytes: Vec<u8>,
            metadata: &'a $crate::Metadata,
            condition: &'a $crate::Condition,
        ) -> futures::future::BoxFuture<'a, Result<Option<String>, $crate::StoreError>> {
            futures::FutureExt::boxed(<$backend>::put(self, key, bytes, metadata, condition))
        }

        fn get_to_file<'a>(
            &'a self,
            key: &'a str,
            path: &'a std::path::Path,
            progress: &'a dyn $crate::Progress,
        ) -> futures::future::BoxFuture<
            'a,
            Result<($crate::ObjectInfo, $crate::Metadata), $crate::StoreError>,
        > {
            futures::FutureExt::boxed(<$backend>::get_to_file(self, key, path, progress))
        }

        fn delete_many(
            &self,
            keys: Vec<String>,
        ) -> futures::future::BoxFuture<'_, Result<$crate::DeleteReport, $crate::StoreError>> {
            futures::FutureExt::boxed(<$backend>::delete_many(self, keys))
        }
    };
}
pub(crate) use forward_to_inherent;
