//! Directory stores. A key is the file `<root>/<key>`; its last-modified time is the file's
//! mtime and its etag the sha256 of its content. User metadata lives beside the data, in
//! `<root>/.spacktainerizah/meta/<key>.json`, tied to the exact file it describes (size, mtime,
//! inode): metadata of another version of the file is no metadata. Puts are written to
//! uniquely named files in `<root>/.spacktainerizah/tmp/`, synced, renamed into place and the
//! folder synced, so readers never see half a file. The `.spacktainerizah` folder is never
//! listed; symlinked folders are followed.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use sha2::{Digest, Sha256};

use crate::object_store::{
    Condition, DeleteFailure, DeleteReport, Metadata, Object, ObjectInfo, ObjectReader,
    ObjectStore, StoreError, check_key, forward_to_inherent,
};
use crate::sorted_walk::{WalkError, sorted_files, vanished};
use crate::stats::{Request, RequestCounts, RequestStats};
use model::progress::Progress;

/// The folder under the root holding metadata, temporary files and the lock.
pub const RESERVED_DIR: &str = ".spacktainerizah";

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    stats: Arc<RequestStats>,
}

impl FileStore {
    pub fn new(root: PathBuf) -> FileStore {
        FileStore {
            root,
            stats: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        if key == RESERVED_DIR || key.starts_with(&format!("{RESERVED_DIR}/")) {
            return Err(StoreError::InvalidKey {
                key: key.to_string(),
                reason: format!("`{RESERVED_DIR}/` is reserved for the store's own files"),
            });
        }
        Ok(self.root.join(key))
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.root
            .join(RESERVED_DIR)
            .join("meta")
            .join(format!("{key}.json"))
    }

    fn io(&self, path: &Path, source: std::io::Error) -> StoreError {
        if source.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound {
                location: path.display().to_string(),
            }
        } else {
            StoreError::Io {
                location: path.display().to_string(),
                source,
            }
        }
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let stats = self.stats.clone();
        tokio::task::spawn_blocking(move || walk(&root, &prefix, &tx, &stats));
        stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed()
    }

    /// Size, mtime and metadata from a `stat`: the content is not read, so no etag (as in
    /// listings), whatever the file's size.
    async fn head(&self, key: &str) -> Result<(ObjectInfo, BTreeMap<String, String>), StoreError> {
        self.stats.count(Request::Head);
        let path = self.path_of(key)?;
        let meta_path = self.meta_path(key);
        let this = self.clone();
        let key = key.to_string();
        blocking(move || {
            let md = std::fs::metadata(&path).map_err(|e| this.io(&path, e))?;
            let info = ObjectInfo {
                key,
                size: md.len(),
                last_modified: md.modified().map_err(|e| this.io(&path, e))?,
                etag: None,
            };
            Ok((info, read_metadata(&meta_path, &md)?))
        })
        .await
    }

    /// The file, read as it is consumed.
    async fn reader(&self, key: &str) -> Result<(ObjectInfo, ObjectReader), StoreError> {
        self.stats.count(Request::Get);
        let path = self.path_of(key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| self.io(&path, e))?;
        let md = file.metadata().await.map_err(|e| self.io(&path, e))?;
        let info = ObjectInfo {
            key: key.to_string(),
            size: md.len(),
            last_modified: md.modified().map_err(|e| self.io(&path, e))?,
            // Known only once read: callers that stream hash for themselves.
            etag: None,
        };
        Ok((info, Box::new(file)))
    }

    async fn get(&self, key: &str) -> Result<Object, StoreError> {
        self.stats.count(Request::Get);
        self.read(key).await
    }

    async fn read(&self, key: &str) -> Result<Object, StoreError> {
        let path = self.path_of(key)?;
        let meta_path = self.meta_path(key);
        let this = self.clone();
        let key = key.to_string();
        blocking(move || {
            let mut file = std::fs::File::open(&path).map_err(|e| this.io(&path, e))?;
            let md = file.metadata().map_err(|e| this.io(&path, e))?;
            let mut bytes = Vec::with_capacity(md.len() as usize);
            std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| this.io(&path, e))?;
            let metadata = read_metadata(&meta_path, &md)?;
            Ok(Object {
                info: ObjectInfo {
                    key,
                    size: md.len(),
                    last_modified: md.modified().map_err(|e| this.io(&path, e))?,
                    etag: Some(etag_of(&bytes)),
                },
                metadata,
                bytes,
            })
        })
        .await
    }

    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        metadata: &BTreeMap<String, String>,
        condition: &Condition,
    ) -> Result<Option<String>, StoreError> {
        self.stats.count(Request::Put);
        let path = self.path_of(key)?;
        let meta_path = self.meta_path(key);
        let reserved = self.root.join(RESERVED_DIR);
        let metadata = metadata.clone();
        let condition = condition.clone();
        let this = self.clone();
        let location = path.display().to_string();
        blocking(move || {
            let tmp_dir = reserved.join("tmp");
            std::fs::create_dir_all(&tmp_dir).map_err(|e| this.io(&tmp_dir, e))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| this.io(parent, e))?;
            }
            let tmp = write_temp(&tmp_dir, &bytes).map_err(|e| this.io(&tmp_dir, e))?;
            // The lock makes check-then-rename atomic against other conditional writers.
            let _lock = match condition {
                Condition::None => None,
                _ => Some(lock(&reserved).map_err(|e| this.io(&reserved, e))?),
            };
            let current = match std::fs::File::open(&path) {
                Ok(f) => Some(etag_of_reader(f).map_err(|e| this.io(&path, e))?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(this.io(&path, e)),
            };
            let ok = match (&condition, &current) {
                (Condition::None, _) => true,
                (Condition::IfNoneMatch, c) => c.is_none(),
                (Condition::IfMatch(want), Some(have)) => want == have,
                (Condition::IfMatch(_), None) => false,
            };
            if !ok {
                return Err(StoreError::PreconditionFailed { location });
            }
            commit(tmp, &path, &meta_path, &metadata).map_err(|(p, e)| this.io(&p, e))?;
            Ok(Some(etag_of(&bytes)))
        })
        .await
    }

    async fn put_file(
        &self,
        key: &str,
        source: &Path,
        metadata: &BTreeMap<String, String>,
        progress: &dyn Progress,
    ) -> Result<(), StoreError> {
        self.stats.count(Request::Put);
        let path = self.path_of(key)?;
        let meta_path = self.meta_path(key);
        let tmp_dir = self.root.join(RESERVED_DIR).join("tmp");
        let metadata = metadata.clone();
        let source = source.to_path_buf();
        let this = self.clone();
        let copied = blocking(move || {
            std::fs::create_dir_all(&tmp_dir).map_err(|e| this.io(&tmp_dir, e))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| this.io(parent, e))?;
            }
            let tmp = temp_file(&tmp_dir).map_err(|e| this.io(&tmp_dir, e))?;
            let copied = std::fs::copy(&source, tmp.path())
                .and_then(|n| tmp.as_file().sync_all().map(|_| n))
                .map_err(|e| this.io(&source, e))?;
            commit(tmp, &path, &meta_path, &metadata).map_err(|(p, e)| this.io(&p, e))?;
            Ok(copied)
        })
        .await?;
        progress(copied);
        Ok(())
    }

    async fn get_to_file(
        &self,
        key: &str,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<(ObjectInfo, BTreeMap<String, String>), StoreError> {
        self.stats.count(Request::Get);
        let path = self.path_of(key)?;
        let meta_path = self.meta_path(key);
        let dest = dest.to_path_buf();
        let key = key.to_string();
        let this = self.clone();
        blocking(move || {
            let md = std::fs::metadata(&path).map_err(|e| this.io(&path, e))?;
            std::fs::copy(&path, &dest).map_err(|e| this.io(&dest, e))?;
            let etag = etag_of_reader(std::fs::File::open(&dest).map_err(|e| this.io(&dest, e))?)
                .map_err(|e| this.io(&dest, e))?;
            let info = ObjectInfo {
                key,
                size: md.len(),
                last_modified: md.modified().map_err(|e| this.io(&path, e))?,
                etag: Some(etag),
            };
            Ok((info, read_metadata(&meta_path, &md)?))
        })
        .await
        .inspect(|(info, _)| progress(info.size))
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<DeleteReport, StoreError> {
        let this = self.clone();
        blocking(move || {
            this.check_root()?;
            let mut report = DeleteReport::default();
            for chunk in keys.chunks(crate::object_store::DELETE_BATCH) {
                this.stats.count(Request::Delete);
                report.requests += 1;
                for key in chunk {
                    match this.delete_one(key) {
                        Ok(()) => report.deleted += 1,
                        Err(e @ StoreError::InvalidKey { .. }) => report
                            .failed
                            .push(DeleteFailure::invalid_key(key.clone(), &e)),
                        Err(e) => report.failed.push(DeleteFailure {
                            key: key.clone(),
                            code: "IoError".into(),
                            message: e.to_string(),
                        }),
                    }
                }
            }
            Ok(report)
        })
        .await
    }

    /// The root must be a folder, as a bucket must exist: a key of a store that is not there
    /// was not deleted, it was never reached.
    fn check_root(&self) -> Result<(), StoreError> {
        match std::fs::metadata(&self.root) {
            Ok(md) if md.is_dir() => Ok(()),
            Ok(_) => Err(StoreError::Io {
                location: self.root.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "the store's root is not a folder",
                ),
            }),
            Err(e) => Err(self.io(&self.root, e)),
        }
    }

    fn delete_one(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(&path, e)),
        }
        let meta = self.meta_path(key);
        let _ = std::fs::remove_file(&meta);
        // Empty folders left behind would make the tree look unlike a bucket; prune them.
        prune_empty_parents(&path, &self.root);
        prune_empty_parents(&meta, &self.root.join(RESERVED_DIR).join("meta"));
        Ok(())
    }
}

impl ObjectStore for FileStore {
    fn url(&self) -> String {
        self.root.display().to_string()
    }

    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn requests(&self) -> RequestCounts {
        self.stats.snapshot()
    }

    /// A directory takes the file whole: `part_size` is S3's.
    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a Path,
        metadata: &'a Metadata,
        _part_size: u64,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        FileStore::put_file(self, key, path, metadata, progress).boxed()
    }

    forward_to_inherent!(FileStore);
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io {
            location: "directory store worker".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

fn etag_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The etag of a file read in pieces: an index of 100 MB is not loaded again just to compare.
fn etag_of_reader(mut r: impl std::io::Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut r, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// List the files below `root` whose keys start with `prefix` into `tx`, in key order, until
/// the receiver goes away. A page is counted per 1000 entries, as S3 pages.
fn walk(
    root: &Path,
    prefix: &str,
    tx: &tokio::sync::mpsc::Sender<Result<ObjectInfo, StoreError>>,
    stats: &RequestStats,
) {
    stats.count(Request::List);
    let start = match listing_start(root, prefix) {
        Ok(Some(start)) => start,
        Ok(None) => return,
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    };
    let mut listed = 0u64;
    for file in sorted_files(&start, &root.join(RESERVED_DIR)) {
        let item = match listed_file(root, prefix, file) {
            Listed::Skip => continue,
            Listed::Error(e) => Err(e),
            Listed::Object(item) => {
                listed += 1;
                if listed.is_multiple_of(1000) {
                    stats.count(Request::List);
                }
                item
            }
        };
        if tx.blocking_send(item).is_err() {
            return;
        }
    }
}

/// The deepest folder the prefix names, so a narrow listing reads little; `None` when it does
/// not exist (nothing to list), an error when the root itself is missing (a missing bucket).
fn listing_start(root: &Path, prefix: &str) -> Result<Option<PathBuf>, StoreError> {
    let start_rel = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let start = if start_rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(start_rel)
    };
    if start.exists() {
        Ok(Some(start))
    } else if root.is_dir() {
        Ok(None)
    } else {
        Err(StoreError::NotFound {
            location: root.display().to_string(),
        })
    }
}

/// What one file of the walk gives the listing.
enum Listed {
    /// An object's file: its description, or why its `stat` failed.
    Object(Result<ObjectInfo, StoreError>),
    /// A folder that could not be read, or a name that is no key.
    Error(StoreError),
    /// Not an object of this listing.
    Skip,
}

fn listed_file(root: &Path, prefix: &str, file: Result<PathBuf, WalkError>) -> Listed {
    let path = match file {
        Ok(path) => path,
        Err((path, source)) => {
            return Listed::Error(StoreError::Io {
                location: path.display().to_string(),
                source,
            });
        }
    };
    let Ok(rel) = path.strip_prefix(root) else {
        return Listed::Skip;
    };
    let Some(key) = rel
        .to_str()
        .map(|s| s.replace(std::path::MAIN_SEPARATOR, "/"))
    else {
        // A name that is no key would otherwise vanish from the listing unnoticed.
        return Listed::Error(StoreError::InvalidKey {
            key: path.display().to_string(),
            reason: "the file name is not UTF-8, so it cannot be an object key".into(),
        });
    };
    if !key.starts_with(prefix) || key.starts_with(&format!("{RESERVED_DIR}/")) {
        return Listed::Skip;
    }
    file_info(&path, key)
}

/// The object a listed file is; skipped when it was deleted since its folder was read.
fn file_info(path: &Path, key: String) -> Listed {
    let io = |source| StoreError::Io {
        location: path.display().to_string(),
        source,
    };
    // Followed, as the walk follows symlinks: the object is what the link points to.
    let md = match std::fs::metadata(path) {
        Ok(md) if md.is_file() => md,
        // Replaced by a folder since its parent was read: not an object.
        Ok(_) => return Listed::Skip,
        Err(e) if vanished(&e, path) => return Listed::Skip,
        Err(e) => return Listed::Object(Err(io(e))),
    };
    Listed::Object(md.modified().map_err(io).map(|last_modified| ObjectInfo {
        key,
        size: md.len(),
        last_modified,
        etag: None,
    }))
}

/// The file a metadata record belongs to. Every put renames a new file into place, so another
/// version has another inode; inode numbers are reused, so the size and the birth time (where
/// the file system keeps one) go with it. The mtime does not: touching a file (to age it, as
/// rsync and tests do) keeps its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Identity {
    ino: u64,
    size: u64,
    born_ns: Option<u128>,
}

impl Identity {
    fn of(md: &std::fs::Metadata) -> Identity {
        Identity {
            ino: md.ino(),
            size: md.len(),
            born_ns: md
                .created()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos()),
        }
    }
}

/// A metadata file: the user metadata and the identity of the data file it describes.
#[derive(serde::Serialize, serde::Deserialize)]
struct MetaRecord {
    object: Identity,
    metadata: BTreeMap<String, String>,
}

/// The metadata of the file whose `stat` is `data`: none when the record describes another
/// version of it. Records of older versions of this store (a bare map) are taken as they are.
fn read_metadata(
    path: &Path,
    data: &std::fs::Metadata,
) -> Result<BTreeMap<String, String>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(StoreError::Io {
                location: path.display().to_string(),
                source,
            });
        }
    };
    let invalid = |e: serde_json::Error| StoreError::Io {
        location: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    };
    match serde_json::from_slice::<MetaRecord>(&bytes) {
        Ok(r) if r.object == Identity::of(data) => Ok(r.metadata),
        Ok(_) => Ok(BTreeMap::new()),
        Err(_) => serde_json::from_slice(&bytes).map_err(invalid),
    }
}

/// Put the synced temporary file in place, then write (or remove) the metadata of exactly the
/// file now there. A crash between the two leaves data without metadata, never data with the
/// metadata of another version. Errors name the path they concern.
fn commit(
    tmp: tempfile::NamedTempFile,
    path: &Path,
    meta_path: &Path,
    metadata: &BTreeMap<String, String>,
) -> Result<(), (PathBuf, std::io::Error)> {
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| (p, e)
    };
    tmp.persist(path)
        .map_err(|e| (path.to_path_buf(), e.error))?;
    sync_parent(path).map_err(at(path))?;
    if metadata.is_empty() {
        return match std::fs::remove_file(meta_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err((meta_path.to_path_buf(), e)),
            _ => Ok(()),
        };
    }
    let md = std::fs::metadata(path).map_err(at(path))?;
    let record = MetaRecord {
        object: Identity::of(&md),
        metadata: metadata.clone(),
    };
    let parent = meta_path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(at(parent))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".meta-")
        .tempfile_in(parent)
        .map_err(at(parent))?;
    let bytes = serde_json::to_vec(&record).map_err(|e| (meta_path.to_path_buf(), e.into()))?;
    tmp.write_all(&bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(at(meta_path))?;
    tmp.persist(meta_path)
        .map_err(|e| (meta_path.to_path_buf(), e.error))?;
    sync_parent(meta_path).map_err(at(meta_path))
}

/// fsync the folder holding `path`, so a rename into it survives a crash of the machine.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// A new file in `dir` under a random name created exclusively: no other writer, of this
/// host or another sharing the folder, can have it (process ids repeat across containers).
fn temp_file(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new().prefix(".put-").tempfile_in(dir)
}

fn write_temp(dir: &Path, bytes: &[u8]) -> std::io::Result<tempfile::NamedTempFile> {
    let mut f = temp_file(dir)?;
    f.write_all(bytes)?;
    f.as_file().sync_all()?;
    Ok(f)
}

fn lock(reserved: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(reserved.join("lock"))?;
    f.lock()?;
    Ok(f)
}

fn prune_empty_parents(path: &Path, stop: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == stop || !d.starts_with(stop) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}
