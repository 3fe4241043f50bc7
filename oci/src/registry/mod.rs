//! OCI distribution client: resolve a tag to a manifest or an index, pick one architecture's
//! manifest, read the config labels, push manifests and multi-arch indexes, attach documents
//! as OCI referrers and list them; over HTTP to a real registry, or to one in memory for
//! tests. "Does not exist" is kept apart from "could not reach" and "denied".

pub mod auth;
mod distribution;
mod http;
pub mod insecure;
mod memory;
pub use model::reference;
mod referrers;
pub mod saved_logins;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

pub use auth::Login;
use distribution::{ConfigDoc, ConfigSection, IndexDoc, ManifestDoc};
pub use distribution::{
    DOCKER_LIST, DOCKER_MANIFEST, Descriptor, Distribution, Fetched, MANIFEST_ACCEPT,
    MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, Platform, Pushed,
    RegistryError, Resolved,
};
pub use http::HttpRegistry;
pub use memory::MemoryRegistry;
pub use model::progress::Progress;
pub use model::reference::ImageRef;
pub use referrers::{Attached, referrers_tag};

/// Where the clients of [`Clients`] go.
#[derive(Debug)]
enum Source {
    /// Real registries; plain HTTP to loopback and to the ones named insecure.
    Network(insecure::Insecure),
    Memory(MemoryRegistry),
}

/// Registry clients made once each and reused: one per registry and login (a registry can be
/// both the project's and the public hub, read with different logins), so a challenge is
/// answered once per run.
#[derive(Debug)]
pub struct Clients {
    source: Source,
    clients: Mutex<BTreeMap<String, Arc<RegistryClient>>>,
}

impl Default for Clients {
    fn default() -> Clients {
        Clients::new(insecure::Insecure::default())
    }
}

impl Clients {
    /// No client yet; those made speak plain HTTP to loopback and `insecure` registries.
    pub fn new(insecure: insecure::Insecure) -> Clients {
        Clients {
            source: Source::Network(insecure),
            clients: Mutex::default(),
        }
    }

    /// Clients of the registries in `fake`, whatever registry and login they are asked for.
    pub fn memory(fake: &MemoryRegistry) -> Clients {
        Clients {
            source: Source::Memory(fake.clone()),
            clients: Mutex::default(),
        }
    }

    /// The client for `registry` with `login`; `purpose` tells apart logins of one registry
    /// (`project`, `hub`, `anonymous`).
    pub fn get(
        &self,
        purpose: &str,
        registry: &str,
        login: &Option<Login>,
    ) -> Result<Arc<RegistryClient>, RegistryError> {
        let key = format!("{purpose}:{registry}");
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = Arc::new(match &self.source {
            Source::Network(insecure) => {
                RegistryClient::connect(registry, login.clone(), insecure)?
            }
            Source::Memory(fake) => RegistryClient::memory(fake),
        });
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// A client for one registry (over HTTP), or for the registries of a [`MemoryRegistry`].
#[derive(Debug)]
pub struct RegistryClient {
    api: Box<dyn Distribution>,
}

impl RegistryClient {
    /// `registry` is `host[:port]`, spoken to over plain HTTP when loopback, over HTTPS
    /// otherwise. Without `login`, the one `docker login` or `podman login` saved is used
    /// when the registry asks for one.
    pub fn new(registry: &str, login: Option<Login>) -> Result<RegistryClient, RegistryError> {
        RegistryClient::connect(registry, login, &insecure::Insecure::default())
    }

    /// As [`RegistryClient::new`], with plain HTTP to the registries `insecure` names too.
    pub fn connect(
        registry: &str,
        login: Option<Login>,
        insecure: &insecure::Insecure,
    ) -> Result<RegistryClient, RegistryError> {
        Ok(RegistryClient::over(HttpRegistry::connect(
            registry, login, insecure,
        )?))
    }

    /// A client of the registries in `fake` (each image names its registry).
    pub fn memory(fake: &MemoryRegistry) -> RegistryClient {
        RegistryClient::over(fake.clone())
    }

    /// A client sending its requests to `api`.
    pub fn over(api: impl Distribution + 'static) -> RegistryClient {
        RegistryClient { api: Box::new(api) }
    }

    /// The manifest or index behind a tag or digest.
    pub async fn manifest(&self, image: &ImageRef) -> Result<Fetched, RegistryError> {
        self.api.manifest(image).await
    }

    /// Whether the repository of `image` exists (its tag list answers).
    pub async fn repository_exists(&self, image: &ImageRef) -> Result<bool, RegistryError> {
        self.api.repository_exists(image).await
    }

    /// A blob (an image config), checked against its digest; at most [`MAX_CONFIG_BYTES`].
    pub async fn blob(&self, image: &ImageRef, digest: &str) -> Result<Vec<u8>, RegistryError> {
        self.api.blob(image, digest).await
    }

    /// A blob streamed into `dest` (never held in memory), checked against its digest and
    /// refused as soon as it is longer than `size` (the length its descriptor gives).
    pub async fn blob_to_file(
        &self,
        image: &ImageRef,
        digest: &str,
        size: u64,
        dest: &std::path::Path,
        progress: &dyn model::progress::Progress,
    ) -> Result<u64, RegistryError> {
        self.api
            .blob_to_file(image, digest, size, dest, progress)
            .await
    }

    /// Put a manifest (or index) at a tag; returns its digest.
    pub async fn put_manifest(
        &self,
        image: &ImageRef,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, RegistryError> {
        Ok(self
            .api
            .put_manifest(image, media_type, bytes)
            .await?
            .digest)
    }

    /// What `image` is for `arch` (`amd64`, `arm64`): from an index, the entry for linux/arch —
    /// never another architecture's — and its config labels.
    pub async fn resolve(&self, image: &ImageRef, arch: &str) -> Result<Resolved, RegistryError> {
        let name = image.to_string();
        let top = self.manifest(image).await?;
        let protocol = |m: String| RegistryError::Protocol {
            image: name.clone(),
            message: m,
        };
        let (manifest, index_digest, bytes) =
            if top.media_type == OCI_INDEX || top.media_type == DOCKER_LIST {
                let index: IndexDoc = serde_json::from_slice(&top.bytes)
                    .map_err(|e| protocol(format!("index: {e}")))?;
                let entry = index
                    .manifests
                    .into_iter()
                    .find(|d| {
                        d.platform
                            .as_ref()
                            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                    })
                    .ok_or_else(|| RegistryError::ArchitectureMissing {
                        image: name.clone(),
                        arch: arch.into(),
                    })?;
                let m = self.manifest(&image.with_reference(&entry.digest)).await?;
                (entry, Some(top.digest), m.bytes)
            } else {
                (top.descriptor(), None, top.bytes)
            };
        let doc: ManifestDoc =
            serde_json::from_slice(&bytes).map_err(|e| protocol(format!("manifest: {e}")))?;
        let config: ConfigDoc =
            serde_json::from_slice(&self.blob(image, &doc.config.digest).await?)
                .map_err(|e| protocol(format!("config: {e}")))?;
        // A single-arch tag of another architecture is no image for this one.
        if index_digest.is_none() && !config.architecture.is_empty() && config.architecture != arch
        {
            return Err(RegistryError::ArchitectureMissing {
                image: name,
                arch: arch.into(),
            });
        }
        let section: ConfigSection = match &config.config {
            serde_json::Value::Null => ConfigSection::default(),
            value => {
                ConfigSection::deserialize(value).map_err(|e| protocol(format!("config: {e}")))?
            }
        };
        Ok(Resolved {
            manifest,
            index_digest,
            architecture: config.architecture,
            labels: section.labels.unwrap_or_default(),
            layers: doc.layers,
            env: section.env.unwrap_or_default(),
            entrypoint: section.entrypoint.unwrap_or_default(),
            cmd: section.cmd.unwrap_or_default(),
            config: config.config,
        })
    }

    /// Write the multi-arch OCI index `image` listing `manifests` (already in the repository).
    pub async fn push_index(
        &self,
        image: &ImageRef,
        manifests: &[Descriptor],
    ) -> Result<String, RegistryError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Index<'a> {
            schema_version: u32,
            media_type: &'a str,
            manifests: &'a [Descriptor],
        }
        let bytes = serde_json::to_vec(&Index {
            schema_version: 2,
            media_type: OCI_INDEX,
            manifests,
        })
        .map_err(|e| RegistryError::Protocol {
            image: image.to_string(),
            message: e.to_string(),
        })?;
        self.put_manifest(image, OCI_INDEX, bytes).await
    }
}
