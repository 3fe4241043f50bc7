//! What a registry is to the client: the requests of the OCI distribution API
//! ([`Distribution`]) and their contract, the media types, manifests, descriptors and errors
//! they deal in.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use model::progress::Progress;
use model::reference::ImageRef;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The config of an artifact manifest, whose content is `{}` (image-spec `manifest.md`,
/// "Guidance for an Empty Descriptor").
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Every manifest kind, so no registry falls back to the deprecated schema 1.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The tag or the repository does not exist: build it.
    #[error("{image} does not exist")]
    NotFound { image: String },
    /// The tag is an index without this architecture: build that architecture.
    #[error("{image} has no image for architecture {arch}")]
    ArchitectureMissing { image: String, arch: String },
    #[error("access to {image} was denied (HTTP {status})")]
    Denied { image: String, status: u16 },
    #[error("could not reach registry {registry}: {message}")]
    Unreachable { registry: String, message: String },
    #[error("{image}: {message}")]
    Protocol { image: String, message: String },
    #[error("registry credentials: {0}")]
    Credentials(String),
}

impl From<model::secret::MissingCredentials> for RegistryError {
    fn from(e: model::secret::MissingCredentials) -> Self {
        RegistryError::Credentials(e.to_string())
    }
}

impl RegistryError {
    /// True when the answer means "build it", false when it means "stop": a registry that is
    /// down or refuses must never look like an empty one.
    pub fn means_build(&self) -> bool {
        matches!(
            self,
            RegistryError::NotFound { .. } | RegistryError::ArchitectureMissing { .. }
        )
    }
}

/// A manifest or index as the registry returned it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Fetched {
    /// This manifest as the entry for linux/`arch` of a multi-arch index.
    pub fn index_entry(&self, arch: &str) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: Some(Platform {
                architecture: arch.to_string(),
                os: "linux".into(),
                variant: None,
            }),
            ..Descriptor::default()
        }
    }

    /// This manifest as the `subject` of a referrer.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            ..Descriptor::default()
        }
    }
}

/// OS and architecture of an image, as in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Content a manifest or index points at: one manifest of a multi-arch index, a config, a
/// layer, or a referrer (with its artifact type and annotations).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What a manifest PUT answered: the digest, and whether the registry processed the manifest's
/// `subject` (its `OCI-Subject` header), which only a registry with the referrers API does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub digest: String,
    pub subject_processed: bool,
}

/// What a tag resolves to for one architecture.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The architecture's image manifest.
    pub manifest: Descriptor,
    /// The index it was picked from, when the tag is multi-arch.
    pub index_digest: Option<String>,
    pub architecture: String,
    pub labels: BTreeMap<String, String>,
    /// The image's layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// The config's `Env`, `Entrypoint` and `Cmd`.
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// The config's `config` object as the registry holds it (Cmd, Entrypoint, Env,
    /// WorkingDir, Labels…): what Apptainer keeps in a SIF as `oci-config.json`.
    pub config: serde_json::Value,
}

/// An index (or manifest list) as read: its manifests.
#[derive(Deserialize)]
pub(crate) struct IndexDoc {
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

/// An image manifest as read: its config and layers, and for an artifact its type and
/// subject.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestDoc {
    pub(crate) config: Descriptor,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
    #[serde(default)]
    pub(crate) artifact_type: Option<String>,
    #[serde(default)]
    pub(crate) subject: Option<Descriptor>,
    #[serde(default)]
    pub(crate) annotations: BTreeMap<String, String>,
}

impl ManifestDoc {
    /// This manifest (of `digest` and `size`) as a referrer of its subject: its artifact type,
    /// else its config's media type, and its annotations (distribution spec, "Listing
    /// Referrers").
    pub(crate) fn referrer(&self, digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.into(),
            size,
            artifact_type: Some(
                self.artifact_type
                    .clone()
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| self.config.media_type.clone()),
            ),
            annotations: self.annotations.clone(),
            ..Descriptor::default()
        }
    }
}

/// An image config as read.
#[derive(Deserialize)]
pub(crate) struct ConfigDoc {
    #[serde(default)]
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) config: serde_json::Value,
}

/// The `config` section of an image config, the parts the tools read.
#[derive(Deserialize, Default)]
pub(crate) struct ConfigSection {
    #[serde(rename = "Labels", default)]
    pub(crate) labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Env", default)]
    pub(crate) env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default)]
    pub(crate) entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub(crate) cmd: Option<Vec<String>>,
}

/// The largest manifest or index read (the distribution spec lets registries refuse more).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The largest blob read into memory (image configs): anything bigger is not a config.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The requests of the OCI distribution API a [`RegistryClient`](super::RegistryClient) is
/// built on, as one registry answers them: over HTTP ([`HttpRegistry`](super::HttpRegistry))
/// or from memory ([`MemoryRegistry`](super::MemoryRegistry), the fake tests use). Both keep the contract `tests/tests/registry.rs` checks: a missing repository, tag,
/// manifest or blob is [`RegistryError::NotFound`]; a registry that cannot be reached is
/// [`RegistryError::Unreachable`] and one that refuses is [`RegistryError::Denied`], never
/// "missing"; what is read by digest is checked against it.
pub trait Distribution: Send + Sync + std::fmt::Debug {
    /// The manifest or index behind a tag or digest (at most [`MAX_MANIFEST_BYTES`]).
    fn manifest<'a>(&'a self, image: &'a ImageRef)
    -> BoxFuture<'a, Result<Fetched, RegistryError>>;
    /// Whether the repository of `image` exists.
    fn repository_exists<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<bool, RegistryError>>;
    /// A blob of the repository of `image` (an image config), at most [`MAX_CONFIG_BYTES`].
    fn blob<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, RegistryError>>;
    /// A blob streamed into `dest`, refused as soon as it is longer than `size`; its length.
    fn blob_to_file<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a str,
        size: u64,
        dest: &'a std::path::Path,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, Result<u64, RegistryError>>;
    /// Put a manifest (or index) at the tag or digest of `image`; its digest, and whether the
    /// registry processed its `subject`.
    fn put_manifest<'a>(
        &'a self,
        image: &'a ImageRef,
        media_type: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<Pushed, RegistryError>>;
    /// Put a blob into the repository of `image` unless it holds it already; its digest.
    fn put_blob<'a>(
        &'a self,
        image: &'a ImageRef,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, RegistryError>>;
    /// The referrers API's answer for the manifest `digest` in the repository of `image`: the
    /// descriptors of the manifests whose `subject` it is, or `None` when the registry has no
    /// referrers API (it answers 404, distribution spec "Listing Referrers").
    fn referrers<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<Descriptor>>, RegistryError>>;
}
