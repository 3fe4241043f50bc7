//! A Spack build cache in a store: which layouts it holds, its indexes read with the version
//! tag a rewrite is guarded by, indexes written back, and the catalog joining one listing with
//! them. The formats themselves are `model::spack::buildcache`.

pub mod catalog;

use crate::{Store, StoreError};
use model::spack::FormatError;
use model::spack::buildcache::{Database, Layout, index, v2, v3};

/// Errors reading a build cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(
        "no build cache at {url}: neither {} nor {} exists",
        v2::INDEX_KEY,
        v3::LAYOUT_KEY
    )]
    NoCache { url: String },
    #[error(
        "{location} is missing: the {layout} index was not found (run `spackitor reindex` to rebuild it from the spec files)"
    )]
    MissingIndex { layout: Layout, location: String },
}

/// The layouts present in a store, from the marker objects Spack writes: `build_cache/index.json`
/// for v2 and `v3/layout.json` for v3.
pub async fn detect_layouts(store: &Store) -> Result<Vec<Layout>, CacheError> {
    let mut found = Vec::new();
    for (layout, marker) in [(Layout::V2, v2::INDEX_KEY), (Layout::V3, v3::LAYOUT_KEY)] {
        match store.head(marker).await {
            Ok(_) => found.push(layout),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if found.is_empty() {
        return Err(CacheError::NoCache { url: store.url() });
    }
    Ok(found)
}

/// An index as read from a store, with what a conditional rewrite needs.
#[derive(Debug, Clone)]
pub struct LoadedIndex {
    pub layout: Layout,
    pub db: Database,
    /// The key whose etag guards a rewrite: `build_cache/index.json` (v2) or the index
    /// manifest (v3).
    pub guard_key: String,
    pub guard_etag: Option<String>,
    /// Last-modified of the guard object as read: anything newer may belong to an upload that
    /// is still running.
    pub guard_time: std::time::SystemTime,
    /// v3: the index manifest as read.
    pub manifest: Option<v3::Manifest>,
}

/// v2: whether `build_cache/index.json.hash` holds the sha256 of the index read (Spack's rule:
/// its first 64 bytes, lowercase hex); `None` when there is no hash file.
pub async fn hash_file_matches(
    store: &Store,
    index: &LoadedIndex,
) -> Result<Option<bool>, CacheError> {
    match store.get(v2::INDEX_HASH_KEY).await {
        Ok(h) => Ok(Some(index::hash_file_names(&h.bytes, &index.db.sha256))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Read the index of `layout` from `store`.
pub async fn load_index(store: &Store, layout: Layout) -> Result<LoadedIndex, CacheError> {
    let missing = |e: StoreError, key: &str| match e {
        StoreError::NotFound { .. } => CacheError::MissingIndex {
            layout,
            location: store.location(key),
        },
        other => CacheError::Store(other),
    };
    match layout {
        Layout::V2 => {
            let (info, db) = fetch_index(store, v2::INDEX_KEY)
                .await
                .map_err(|e| match e {
                    CacheError::Store(e) => missing(e, v2::INDEX_KEY),
                    other => other,
                })?;
            Ok(LoadedIndex {
                layout,
                db,
                guard_key: v2::INDEX_KEY.to_string(),
                guard_time: info.last_modified,
                guard_etag: info.etag,
                manifest: None,
            })
        }
        Layout::V3 => {
            let key = v3::INDEX_MANIFEST_KEY;
            let obj = store.get(key).await.map_err(|e| missing(e, key))?;
            let manifest = v3::Manifest::parse(&store.location(key), &obj.bytes)?;
            let record = manifest.find(v3::INDEX_MEDIA_PREFIX).ok_or_else(|| {
                FormatError::invalid(
                    store.location(key),
                    "the index manifest lists no index blob",
                )
            })?;
            let blob_key = record.key();
            let (_, db) = fetch_index(store, &blob_key).await.map_err(|e| match e {
                CacheError::Store(StoreError::NotFound { location }) => {
                    CacheError::Format(FormatError::invalid(
                        location,
                        format!(
                            "index blob referenced by {} is missing",
                            store.location(key)
                        ),
                    ))
                }
                other => other,
            })?;
            Ok(LoadedIndex {
                layout,
                db,
                guard_key: key.to_string(),
                guard_time: obj.info.last_modified,
                guard_etag: obj.info.etag,
                manifest: Some(manifest),
            })
        }
    }
}

/// Fetch the index at `key` into an unnamed temporary file and parse it from there: an index of a
/// million specs is most of a gigabyte of JSON, which memory never holds whole.
async fn fetch_index(
    store: &Store,
    key: &str,
) -> Result<(crate::ObjectInfo, Database), CacheError> {
    let what = store.location(key);
    // The temporary copy's own failures name where it is, not the object.
    let io = |e: std::io::Error| {
        CacheError::Store(StoreError::Io {
            location: format!(
                "a temporary copy of {what} in {}",
                std::env::temp_dir().display()
            ),
            source: e,
        })
    };
    let temp = tempfile::NamedTempFile::new().map_err(io)?;
    let local = temp.path().display().to_string();
    let (info, _) = store
        .get_to_file(key, temp.path(), &|_| {})
        .await
        .map_err(|e| match e {
            // Only the index itself missing is a missing index: the temporary file gone (a
            // cleaned /tmp) is an I/O error, never "no index".
            StoreError::NotFound { location } if location == local => StoreError::Io {
                location,
                source: std::io::ErrorKind::NotFound.into(),
            },
            other => other,
        })?;
    // Reopened before the name goes: the copy lives as long as the index that reads it.
    let file = temp.reopen().map_err(io)?;
    drop(temp);
    // Parsed on this thread, not on the blocking pool: glibc gives each thread its own
    // allocator arena, and what the parse frees (its string tables, the map's tables before it
    // grew) stayed resident in the pool thread's arena for the rest of the run, never reused
    // by the listing and the plan made on this thread. Where the runtime has other workers,
    // they take over its other tasks meanwhile.
    let parse = || Database::read_file(&what, file);
    let db = match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(parse),
        _ => parse(),
    }?;
    Ok((info, db))
}

/// Write `bytes` (a database) as the index of `layout`, the index object guarded by `guard`.
/// v2: `index.json.hash` is emptied first, then `index.json` and its hash are written. Spack
/// takes an invalid hash file as none and fetches the index; a stale one would make it keep a
/// cached index that still lists deleted specs, so no interruption may leave one. v3: the
/// content-addressed index blob first (the manifest never points at nothing), then the index
/// manifest. Returns the objects written.
pub async fn write_index(
    store: &Store,
    layout: Layout,
    bytes: Vec<u8>,
    db_version: &str,
    guard: &crate::Condition,
) -> Result<usize, StoreError> {
    use crate::Condition;
    let none = Default::default();
    match layout {
        Layout::V2 => {
            let hash = index::hash_file_content(&bytes);
            store
                .put(v2::INDEX_HASH_KEY, Vec::new(), &none, &Condition::None)
                .await?;
            store.put(v2::INDEX_KEY, bytes, &none, guard).await?;
            store
                .put(v2::INDEX_HASH_KEY, hash, &none, &Condition::None)
                .await?;
            return Ok(3);
        }
        Layout::V3 => {
            use sha2::{Digest, Sha256};
            let checksum = hex::encode(Sha256::digest(&bytes));
            let manifest = v3::Manifest {
                version: 3,
                data: vec![v3::BlobRecord {
                    content_length: bytes.len() as u64,
                    media_type: format!("{}{db_version}+json", v3::INDEX_MEDIA_PREFIX),
                    compression: "none".into(),
                    checksum_algorithm: "sha256".into(),
                    checksum: checksum.clone(),
                }],
            };
            store
                .put(
                    &v3::blob_key("sha256", &checksum),
                    bytes,
                    &none,
                    &Condition::None,
                )
                .await?;
            store
                .put(v3::INDEX_MANIFEST_KEY, manifest.to_bytes(), &none, guard)
                .await?;
        }
    }
    Ok(2)
}
