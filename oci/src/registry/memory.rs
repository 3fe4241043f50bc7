//! Registries in memory: the fake tests use instead of real registries. It holds repositories
//! (of any registry host) with their blobs, manifests, indexes and tags, answers as a
//! registry does (missing is "not found", manifests by digest are checked, a manifest naming a
//! blob or manifest the repository lacks is refused), records every manifest written, and
//! fails on demand (a registry that cannot be reached, or that refuses). It has the referrers
//! API unless made [`without_referrers_api`](MemoryRegistry::without_referrers_api), as the
//! Debian `docker-registry` is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::registry::distribution::{
    DOCKER_LIST, Descriptor, Distribution, Fetched, IndexDoc, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES,
    ManifestDoc, OCI_INDEX, OCI_MANIFEST, Pushed, RegistryError, sha256_digest,
};
use model::progress::Progress;
use model::reference::ImageRef;

/// The media type of the configs and layers [`MemoryRegistry::put_image_config`] writes.
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

#[derive(Debug, Default)]
struct Repository {
    blobs: BTreeMap<String, Arc<Vec<u8>>>,
    /// Digest → media type and content.
    manifests: BTreeMap<String, (String, Arc<Vec<u8>>)>,
    /// Tag → digest.
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct State {
    /// `registry/repository` → its content.
    repositories: BTreeMap<String, Repository>,
    unreachable: BTreeSet<String>,
    denied: BTreeSet<String>,
    /// Every manifest written through a client, as `registry/repository:reference`.
    written: Vec<String>,
    /// The registries answer 404 to the referrers API and ignore `subject`.
    no_referrers_api: bool,
}

/// Registries in memory. Clones share their content: hand one to [`RegistryClient::memory`]
/// or [`Clients::memory`] and keep another to fill them, inject failures and see what was
/// written.
///
/// [`RegistryClient::memory`]: super::RegistryClient::memory
/// [`Clients::memory`]: super::Clients::memory
#[derive(Debug, Clone, Default)]
pub struct MemoryRegistry {
    state: Arc<Mutex<State>>,
}

fn repository_key(image: &ImageRef) -> String {
    format!("{}/{}", image.registry, image.repository)
}

impl MemoryRegistry {
    /// Registries without any repository, with the referrers API.
    pub fn new() -> MemoryRegistry {
        MemoryRegistry::default()
    }

    /// Registries without any repository nor the referrers API: clients keep the referrers
    /// tag schema instead.
    pub fn without_referrers_api() -> MemoryRegistry {
        let fake = MemoryRegistry::default();
        fake.state().no_referrers_api = true;
        fake
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store `bytes` as a blob of the repository of `image`; its digest.
    pub fn put_blob(&self, image: &ImageRef, bytes: Vec<u8>) -> String {
        let digest = sha256_digest(&bytes);
        self.state()
            .repositories
            .entry(repository_key(image))
            .or_default()
            .blobs
            .insert(digest.clone(), Arc::new(bytes));
        digest
    }

    /// Push an image for linux/`arch` with `labels` and no layer at the tag of `image` (as a
    /// build would have pushed it); the manifest written, for an index entry.
    pub fn put_image(
        &self,
        image: &ImageRef,
        arch: &str,
        labels: &BTreeMap<String, String>,
    ) -> Fetched {
        self.put_image_config(image, arch, serde_json::json!({ "Labels": labels }), &[])
    }

    /// Push an image for linux/`arch` whose config section (`Labels`, `Env`, `Cmd`…) is
    /// `config`, with `layers` (uncompressed tars) at the tag of `image`; the manifest written.
    pub fn put_image_config(
        &self,
        image: &ImageRef,
        arch: &str,
        config: serde_json::Value,
        layers: &[Vec<u8>],
    ) -> Fetched {
        let manifest = self.image_blobs(image, arch, config, layers);
        let digest = sha256_digest(&manifest);
        let mut state = self.state();
        let repo = state.repositories.entry(repository_key(image)).or_default();
        store_manifest(repo, image, OCI_MANIFEST, manifest.clone());
        Fetched {
            media_type: OCI_MANIFEST.into(),
            digest,
            bytes: manifest,
        }
    }

    /// An image with `labels` pushed as a client pushes it (so a registry that is down or
    /// refuses fails it, and it is among the manifests [`written`](MemoryRegistry::written)):
    /// what an engine in memory pushes.
    pub(crate) fn push_image(
        &self,
        image: &ImageRef,
        arch: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, RegistryError> {
        // Nothing reaches a registry that is down, not even the blobs.
        drop(self.answering(image)?);
        let manifest = self.image_blobs(image, arch, serde_json::json!({ "Labels": labels }), &[]);
        Ok(self.write(image, OCI_MANIFEST, manifest)?.digest)
    }

    /// Put the config and layer blobs of an image into the repository of `image`; the image
    /// manifest naming them.
    fn image_blobs(
        &self,
        image: &ImageRef,
        arch: &str,
        config: serde_json::Value,
        layers: &[Vec<u8>],
    ) -> Vec<u8> {
        let descriptor = |media_type: &str, bytes: &[u8], digest: String| serde_json::json!({ "mediaType": media_type, "digest": digest, "size": bytes.len() });
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": [] },
        }))
        .expect("a JSON value serializes");
        let config_descriptor = descriptor(
            CONFIG_MEDIA_TYPE,
            &config,
            self.put_blob(image, config.clone()),
        );
        let layers: Vec<_> = layers
            .iter()
            .map(|l| descriptor(LAYER_MEDIA_TYPE, l, self.put_blob(image, l.clone())))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor,
            "layers": layers,
        }))
        .expect("a JSON value serializes")
    }

    /// The tags of the repository of `image`, sorted.
    pub fn tags(&self, image: &ImageRef) -> Vec<String> {
        self.state()
            .repositories
            .get(&repository_key(image))
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every manifest and index written through a client so far, as
    /// `registry/repository:reference`, in order.
    pub fn written(&self) -> Vec<String> {
        self.state().written.clone()
    }

    /// Make every request to `registry` (`host[:port]`) fail as if it were down.
    pub fn set_unreachable(&self, registry: &str) {
        self.state().unreachable.insert(registry.to_string());
    }

    /// Make `registry` refuse every request (HTTP 401), as one that wants a login does.
    pub fn deny(&self, registry: &str) {
        self.state().denied.insert(registry.to_string());
    }

    /// The state, once the registry of `image` answers at all.
    fn answering(&self, image: &ImageRef) -> Result<MutexGuard<'_, State>, RegistryError> {
        let state = self.state();
        if state.unreachable.contains(&image.registry) {
            return Err(RegistryError::Unreachable {
                registry: image.registry.clone(),
                message: "the registry in memory was told to be unreachable".into(),
            });
        }
        if state.denied.contains(&image.registry) {
            return Err(RegistryError::Denied {
                image: image.to_string(),
                status: 401,
            });
        }
        Ok(state)
    }

    fn read_manifest(&self, image: &ImageRef) -> Result<Fetched, RegistryError> {
        let state = self.answering(image)?;
        let not_found = || RegistryError::NotFound {
            image: image.to_string(),
        };
        let repo = state
            .repositories
            .get(&repository_key(image))
            .ok_or_else(not_found)?;
        let digest = match image.is_digest() {
            true => &image.reference,
            false => repo.tags.get(&image.reference).ok_or_else(not_found)?,
        };
        let (media_type, bytes) = repo.manifests.get(digest).ok_or_else(not_found)?;
        Ok(Fetched {
            media_type: media_type.clone(),
            digest: digest.clone(),
            bytes: bytes.to_vec(),
        })
    }

    fn read_blob(&self, image: &ImageRef, digest: &str) -> Result<Arc<Vec<u8>>, RegistryError> {
        self.answering(image)?
            .repositories
            .get(&repository_key(image))
            .and_then(|r| r.blobs.get(digest).cloned())
            .ok_or_else(|| RegistryError::NotFound {
                image: image.with_reference(digest).to_string(),
            })
    }

    fn write(
        &self,
        image: &ImageRef,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Pushed, RegistryError> {
        let refused = |message: String| RegistryError::Protocol {
            image: image.to_string(),
            message,
        };
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(refused(format!(
                "the manifest has {} bytes, over the {MAX_MANIFEST_BYTES} allowed",
                bytes.len()
            )));
        }
        let digest = sha256_digest(&bytes);
        if image.is_digest() && image.reference != digest {
            return Err(refused(format!("content has digest {digest}")));
        }
        let mut state = self.answering(image)?;
        let subject_processed = !state.no_referrers_api && subject(media_type, &bytes).is_some();
        let repo = state.repositories.entry(repository_key(image)).or_default();
        missing_references(repo, media_type, &bytes).map_err(refused)?;
        let digest = store_manifest(repo, image, media_type, bytes);
        state.written.push(image.to_string());
        Ok(Pushed {
            digest,
            subject_processed,
        })
    }

    /// The referrers API: the manifests of the repository of `image` whose subject is
    /// `digest`, as descriptors; `None` without the API.
    fn read_referrers(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let state = self.answering(image)?;
        if state.no_referrers_api {
            return Ok(None);
        }
        let Some(repo) = state.repositories.get(&repository_key(image)) else {
            return Ok(Some(Vec::new()));
        };
        Ok(Some(
            repo.manifests
                .iter()
                .filter_map(|(d, (media_type, bytes))| {
                    let doc = subject(media_type, bytes)?;
                    let s = doc.subject.as_ref()?;
                    (s.digest == digest).then(|| doc.referrer(d, bytes.len() as u64))
                })
                .collect(),
        ))
    }
}

/// An image manifest with a `subject`, read.
fn subject(media_type: &str, bytes: &[u8]) -> Option<ManifestDoc> {
    if media_type != OCI_MANIFEST {
        return None;
    }
    serde_json::from_slice::<ManifestDoc>(bytes)
        .ok()
        .filter(|d| d.subject.is_some())
}

/// Keep a manifest in `repo`, at the tag of `image` when it names one; its digest.
fn store_manifest(
    repo: &mut Repository,
    image: &ImageRef,
    media_type: &str,
    bytes: Vec<u8>,
) -> String {
    let digest = sha256_digest(&bytes);
    repo.manifests
        .insert(digest.clone(), (media_type.to_string(), Arc::new(bytes)));
    if !image.is_digest() {
        repo.tags.insert(image.reference.clone(), digest.clone());
    }
    digest
}

/// Refuse a manifest naming what its repository lacks, as a registry does: an index's
/// manifests, an image's config and layers.
fn missing_references(repo: &Repository, media_type: &str, bytes: &[u8]) -> Result<(), String> {
    let invalid = |e: serde_json::Error| format!("invalid manifest: {e}");
    let missing = if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        let index: IndexDoc = serde_json::from_slice(bytes).map_err(invalid)?;
        index
            .manifests
            .into_iter()
            .map(|d| d.digest)
            .find(|d| !repo.manifests.contains_key(d))
    } else {
        let manifest: ManifestDoc = serde_json::from_slice(bytes).map_err(invalid)?;
        std::iter::once(manifest.config)
            .chain(manifest.layers)
            .map(|d| d.digest)
            .find(|d| !repo.blobs.contains_key(d))
    };
    match missing {
        Some(digest) => Err(format!("it names {digest}, which the repository lacks")),
        None => Ok(()),
    }
}

/// Each image names the registry it is read from or written to.
impl Distribution for MemoryRegistry {
    fn manifest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Fetched, RegistryError>> {
        async move { self.read_manifest(image) }.boxed()
    }

    fn repository_exists<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<bool, RegistryError>> {
        async move {
            let state = self.answering(image)?;
            Ok(state
                .repositories
                .get(&repository_key(image))
                .is_some_and(|r| !r.manifests.is_empty()))
        }
        .boxed()
    }

    fn blob<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, RegistryError>> {
        async move {
            let bytes = self.read_blob(image, digest)?;
            if bytes.len() as u64 > MAX_CONFIG_BYTES {
                return Err(RegistryError::Protocol {
                    image: image.with_reference(digest).to_string(),
                    message: format!(
                        "the answer has {} bytes or more, over the {MAX_CONFIG_BYTES} allowed",
                        bytes.len()
                    ),
                });
            }
            Ok(bytes.to_vec())
        }
        .boxed()
    }

    fn blob_to_file<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a str,
        size: u64,
        dest: &'a std::path::Path,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, Result<u64, RegistryError>> {
        async move {
            let bytes = self.read_blob(image, digest)?;
            let protocol = |message: String| RegistryError::Protocol {
                image: image.with_reference(digest).to_string(),
                message,
            };
            if bytes.len() as u64 > size {
                return Err(protocol(format!(
                    "the blob is longer than the {size} bytes its descriptor gives"
                )));
            }
            tokio::fs::write(dest, bytes.as_slice())
                .await
                .map_err(|e| protocol(format!("writing {}: {e}", dest.display())))?;
            progress(bytes.len() as u64);
            Ok(bytes.len() as u64)
        }
        .boxed()
    }

    fn put_manifest<'a>(
        &'a self,
        image: &'a ImageRef,
        media_type: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<Pushed, RegistryError>> {
        async move { self.write(image, media_type, bytes) }.boxed()
    }

    fn put_blob<'a>(
        &'a self,
        image: &'a ImageRef,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, RegistryError>> {
        async move {
            // Nothing reaches a registry that is down or refuses.
            drop(self.answering(image)?);
            Ok(MemoryRegistry::put_blob(self, image, bytes))
        }
        .boxed()
    }

    fn referrers<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<Descriptor>>, RegistryError>> {
        async move { self.read_referrers(image, digest) }.boxed()
    }
}
