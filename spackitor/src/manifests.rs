//! What each v3 manifest references. A manifest is read once and remembered between runs in
//! the cache itself (`.spackitor/manifests.json.gz`, keyed by the manifest's ETag, or size and
//! mtime in a directory), so a run reads only the manifests that are new or changed.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::time::UNIX_EPOCH;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use model::cleanup::{BlobRef, Listing, Manifests, Object};
use model::spack::buildcache::v3::{self, Manifest};
use serde::{Deserialize, Serialize};
use stores::cache::catalog::Etags;
use stores::{Condition, Store};

/// A manifest the listing showed was gone when read: someone (another janitor) deleted it
/// meanwhile. The cache is read again rather than guessing what it referenced.
#[derive(Debug, thiserror::Error)]
#[error("{location} was listed but is gone: the cache changed while it was read")]
pub struct Vanished {
    pub location: String,
}

/// Where the janitor remembers manifest contents, relative to the cache root. Spack ignores it.
pub const MEMO_KEY: &str = ".spackitor/manifests.json.gz";

/// Bumped when the memo's format changes; an older memo is ignored.
const MEMO_VERSION: u32 = 2;

/// Manifests read at once.
const READS_IN_FLIGHT: usize = 32;

/// How the manifests of one layout were known this run: for the report, and whether the memo
/// must be written again.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoUse {
    /// Manifests read from the store.
    pub read: usize,
    /// Manifests known from the memo.
    pub remembered: usize,
    /// Whether the memo differs from what it should now say.
    pub stale: bool,
}

/// Whether manifests missing from the memo may be read (one request each over S3; a
/// directory's are always read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    All,
    MemoOnly,
}

#[derive(Deserialize, Default)]
struct Memo {
    version: u32,
    manifests: HashMap<String, MemoEntry>,
}

#[derive(Deserialize)]
struct MemoEntry {
    /// The manifest's ETag, or `size-mtime` where the store gives none.
    tag: String,
    /// Blob keys and the lengths the manifest gives them.
    blobs: Vec<(String, u64)>,
}

/// What identifies a version of object `o`: its ETag, else its size and mtime.
fn tag(o: &Object, etag: Option<&str>) -> String {
    match etag {
        Some(e) => e.to_string(),
        None => {
            let mtime = o
                .last_modified()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("{}-{mtime}", o.size)
        }
    }
}

fn is_manifest(key: &str) -> bool {
    key.starts_with(v3::MANIFESTS_PREFIX) && key.ends_with(".manifest.json")
}

/// The listing with the objects' version tags, as the memo needs them.
#[derive(Debug, Clone, Copy)]
pub struct Tagged<'a> {
    pub listing: &'a Listing,
    /// By position: the object's ETag, where the listing gives one.
    pub etags: &'a Etags,
}

impl Tagged<'_> {
    fn tag(&self, i: u32) -> String {
        tag(self.listing.object(i), self.etags.get(i))
    }
}

/// The references of every manifest in the listing. `index_manifest` (already read with the
/// index) is taken as given. A manifest that cannot be parsed is an error naming it: nothing is
/// deleted on a guess.
pub async fn read(
    store: &Store,
    listed: Tagged<'_>,
    positions: &HashMap<&str, u32>,
    index_manifest: (&str, &Manifest),
    reads: Reads,
) -> anyhow::Result<(Manifests, MemoUse)> {
    let memo = read_memo(store, listed.listing).await;
    let mut out = Manifests::default();
    let mut used = MemoUse::default();
    let mut to_read = Vec::new();
    let mut listed_count = 0;
    for (i, o) in listed.listing.objects.iter().enumerate() {
        if !is_manifest(&o.key) {
            continue;
        }
        let i = i as u32;
        if &*o.key == index_manifest.0 {
            out.by_manifest
                .insert(i, refs_of(index_manifest.1, positions));
            continue;
        }
        listed_count += 1;
        match memo
            .manifests
            .get(&*o.key)
            .filter(|e| e.tag == listed.tag(i))
        {
            Some(e) => {
                let refs = e
                    .blobs
                    .iter()
                    .map(|(k, len)| BlobRef::new(k, *len, positions))
                    .collect();
                out.by_manifest.insert(i, refs);
                used.remembered += 1;
            }
            None => to_read.push(i),
        }
    }
    // Over a network a manifest read is a request per object; a directory reads files.
    if reads == Reads::MemoOnly && !store.is_local() {
        out.unread = to_read.drain(..).collect();
    }
    let read = read_manifests(store, listed.listing, positions, to_read).await?;
    used.read = read.len();
    out.by_manifest.extend(read);
    used.stale = used.read > 0 || memo.manifests.len() != listed_count;
    Ok((out, used))
}

fn refs_of(m: &Manifest, positions: &HashMap<&str, u32>) -> Vec<BlobRef> {
    m.data
        .iter()
        .map(|r| BlobRef::new(&r.key(), r.content_length, positions))
        .collect()
}

/// Read the manifests at `to_read`, each reduced to its references as soon as it is read.
async fn read_manifests(
    store: &Store,
    listing: &Listing,
    positions: &HashMap<&str, u32>,
    to_read: Vec<u32>,
) -> anyhow::Result<Vec<(u32, Vec<BlobRef>)>> {
    futures::stream::iter(to_read)
        .map(|i| async move {
            let key = listing.key(i);
            let obj = match store.get(key).await {
                Err(e) if e.is_not_found() => {
                    return Err(anyhow::Error::new(Vanished {
                        location: store.location(key),
                    }));
                }
                other => {
                    other.with_context(|| format!("reading manifest {}", store.location(key)))?
                }
            };
            let manifest = Manifest::parse(&store.location(key), &obj.bytes)?;
            Ok::<_, anyhow::Error>((i, refs_of(&manifest, positions)))
        })
        .buffer_unordered(READS_IN_FLIGHT)
        .try_collect()
        .await
}

async fn read_memo(store: &Store, listing: &Listing) -> Memo {
    if !listing.objects.iter().any(|o| &*o.key == MEMO_KEY) {
        return Memo::default();
    }
    // A memo that cannot be read is only a lost optimisation: read the manifests instead.
    let Ok(obj) = store.get(MEMO_KEY).await else {
        return Memo::default();
    };
    let mut json = Vec::new();
    if flate2::read::GzDecoder::new(&obj.bytes[..])
        .read_to_end(&mut json)
        .is_err()
    {
        return Memo::default();
    }
    serde_json::from_slice::<Memo>(&json)
        .ok()
        .filter(|m| m.version == MEMO_VERSION)
        .unwrap_or_default()
}

/// The memo as written: entries are serialised straight from the references, so a memo of
/// 100,000 manifests is never built in memory.
struct MemoOut<'a> {
    listed: Tagged<'a>,
    refs: &'a Manifests,
    gone: &'a HashSet<u32>,
}

/// One manifest's entry: its tag and the blobs it references.
struct EntryOut<'a> {
    listed: Tagged<'a>,
    manifest: u32,
    blobs: &'a [BlobRef],
}

impl Serialize for EntryOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};
        struct Blobs<'a>(&'a Listing, &'a [BlobRef]);
        impl Serialize for Blobs<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.1.len()))?;
                for b in self.1 {
                    match b {
                        BlobRef::Listed { at, length } => {
                            seq.serialize_element(&(self.0.key(*at), length))?
                        }
                        BlobRef::Missing { key, length } => {
                            seq.serialize_element(&(key, length))?
                        }
                    }
                }
                seq.end()
            }
        }
        let mut st = s.serialize_struct("MemoEntry", 2)?;
        st.serialize_field("tag", &self.listed.tag(self.manifest))?;
        st.serialize_field("blobs", &Blobs(self.listed.listing, self.blobs))?;
        st.end()
    }
}

impl Serialize for MemoOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeStruct};
        struct Entries<'a>(&'a MemoOut<'a>);
        impl Serialize for Entries<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let m = self.0;
                let mut map = s.serialize_map(None)?;
                for (&i, blobs) in &m.refs.by_manifest {
                    let key = m.listed.listing.key(i);
                    // The index manifest changes with every index write: it is read with the
                    // index anyway.
                    if m.gone.contains(&i) || key == v3::INDEX_MANIFEST_KEY {
                        continue;
                    }
                    let entry = EntryOut {
                        listed: m.listed,
                        manifest: i,
                        blobs,
                    };
                    map.serialize_entry(key, &entry)?;
                }
                map.end()
            }
        }
        let mut st = s.serialize_struct("Memo", 2)?;
        st.serialize_field("version", &MEMO_VERSION)?;
        st.serialize_field("manifests", &Entries(self))?;
        st.end()
    }
}

/// Remember the references of the manifests that remain (all listed but `gone`).
pub async fn write_memo(
    store: &Store,
    listed: Tagged<'_>,
    refs: &Manifests,
    gone: &HashSet<u32>,
) -> anyhow::Result<()> {
    let memo = MemoOut { listed, refs, gone };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    serde_json::to_writer(&mut gz, &memo)?;
    store
        .put(
            MEMO_KEY,
            gz.finish()?,
            &Default::default(),
            &Condition::None,
        )
        .await
        .with_context(|| format!("writing {}", store.location(MEMO_KEY)))?;
    Ok(())
}
