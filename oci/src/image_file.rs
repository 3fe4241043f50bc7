//! One file read out of an image in a registry through its layers, top layer first, without
//! unpacking the image: what an SBOM needs of a base image (its package database).

use std::io::Read;
use std::path::{Path, PathBuf};

use model::reference::ImageRef;

use crate::registry::{Descriptor, RegistryClient, RegistryError, Resolved};
use crate::rootfs::{self, RootfsError};

/// The largest file read into memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ImageFileError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Layer(#[from] RootfsError),
    #[error("{image}: {path}: {message}")]
    File {
        image: String,
        path: String,
        message: String,
    },
}

/// What one layer says of a path.
#[derive(Debug, PartialEq, Eq)]
enum InLayer {
    /// The layer holds the file: its content.
    Found(Vec<u8>),
    /// The layer deletes it, or a folder above it, from the layers below.
    Deleted,
    /// The layer leaves it as the layers below have it.
    Untouched,
}

/// The content of the regular file at `path` (absolute) in `image` as `resolved` (its layers),
/// downloaded through `client` one layer at a time into a temporary folder; `None` when the
/// image has no such file.
///
/// A file is the one of the topmost layer that holds it, unless a layer above deletes it:
/// a whiteout `.wh.<name>` of it or of a folder above it, or an opaque marker `.wh..wh..opq`
/// in a folder above it (OCI image spec, `layer.md`, "Whiteouts",
/// <https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts>).
pub async fn read_file(
    client: &RegistryClient,
    image: &ImageRef,
    resolved: &Resolved,
    path: &str,
) -> Result<Option<Vec<u8>>, ImageFileError> {
    let target = PathBuf::from(path.trim_start_matches('/'));
    let file_err = |message: String| ImageFileError::File {
        image: image.to_string(),
        path: path.to_string(),
        message,
    };
    let dir = tempfile::tempdir().map_err(|e| file_err(format!("a temporary folder: {e}")))?;
    let blob = dir.path().join("layer");
    for layer in resolved.layers.iter().rev() {
        client
            .blob_to_file(image, &layer.digest, layer.size, &blob, &|_| ())
            .await?;
        let file = std::fs::File::open(&blob)
            .map_err(|e| file_err(format!("reading layer {}: {e}", layer.digest)))?;
        match in_layer(layer, file, &target).map_err(|e| match e {
            Scan::Layer(e) => ImageFileError::Layer(e),
            Scan::File(m) => file_err(m),
        })? {
            InLayer::Found(bytes) => return Ok(Some(bytes)),
            InLayer::Deleted => return Ok(None),
            InLayer::Untouched => {}
        }
    }
    Ok(None)
}

enum Scan {
    Layer(RootfsError),
    File(String),
}

/// What the layer `layer` (its blob in `file`) says of `target` (relative to the root).
fn in_layer(layer: &Descriptor, file: std::fs::File, target: &Path) -> Result<InLayer, Scan> {
    let err = |message: String| {
        Scan::Layer(RootfsError::Layer {
            layer: layer.digest.clone(),
            message,
        })
    };
    let reader =
        rootfs::decompressor(&layer.digest, &layer.media_type, file).map_err(Scan::Layer)?;
    let mut archive = tar::Archive::new(reader);
    let mut deleted = false;
    for entry in archive.entries().map_err(|e| err(e.to_string()))? {
        let mut entry = entry.map_err(|e| err(e.to_string()))?;
        let raw = entry.path().map_err(|e| err(e.to_string()))?.into_owned();
        let Some(rel) = rootfs::clean(&raw) else {
            continue;
        };
        if rel == target {
            return found(&mut entry, layer).map(InLayer::Found);
        }
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = rel.parent().unwrap_or(Path::new(""));
        if name == rootfs::OPAQUE {
            deleted |= target.starts_with(parent) && target != parent;
        } else if let Some(hidden) = name.strip_prefix(rootfs::WHITEOUT_PREFIX) {
            deleted |= target.starts_with(parent.join(hidden));
        }
    }
    // A whiteout hides only what the layers below hold: the file this layer writes stays.
    Ok(if deleted {
        InLayer::Deleted
    } else {
        InLayer::Untouched
    })
}

/// The content of a regular file entry, at most [`MAX_FILE_BYTES`].
fn found(entry: &mut tar::Entry<'_, impl Read>, layer: &Descriptor) -> Result<Vec<u8>, Scan> {
    let kind = entry.header().entry_type();
    if !kind.is_file() {
        return Err(Scan::File(format!(
            "is a {kind:?} in layer {}, not a regular file (links are not followed)",
            layer.digest
        )));
    }
    let size = entry.header().size().unwrap_or(0);
    if size > MAX_FILE_BYTES {
        return Err(Scan::File(format!(
            "has {size} bytes, over the {MAX_FILE_BYTES} read"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| Scan::File(format!("reading it from layer {}: {e}", layer.digest)))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MemoryRegistry;

    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_gnu();
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, c.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, std::io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    async fn read(layers: &[Vec<u8>], path: &str) -> Result<Option<Vec<u8>>, ImageFileError> {
        let fake = MemoryRegistry::new();
        let image: ImageRef = "r.example/os:1".parse().unwrap();
        fake.put_image_config(&image, "amd64", serde_json::json!({}), layers);
        let client = RegistryClient::memory(&fake);
        let resolved = client.resolve(&image, "amd64").await.unwrap();
        read_file(&client, &image, &resolved, path).await
    }

    const STATUS: &str = "/var/lib/dpkg/status";

    #[tokio::test]
    async fn the_topmost_layer_wins_and_whiteouts_delete() {
        let base = layer(&[
            ("var/lib/dpkg/", None),
            ("var/lib/dpkg/status", Some("old")),
        ]);
        let update = layer(&[("var/lib/dpkg/status", Some("new"))]);
        let other = layer(&[("etc/hostname", Some("x"))]);
        assert_eq!(
            read(&[base.clone(), update.clone(), other.clone()], STATUS)
                .await
                .unwrap(),
            Some(b"new".to_vec())
        );
        assert_eq!(
            read(std::slice::from_ref(&base), "/etc/hostname")
                .await
                .unwrap(),
            None
        );
        let whiteout = layer(&[("var/lib/.wh.dpkg", Some(""))]);
        assert_eq!(read(&[base.clone(), whiteout], STATUS).await.unwrap(), None);
        let opaque = layer(&[("var/lib/dpkg/.wh..wh..opq", Some(""))]);
        assert_eq!(
            read(&[base.clone(), opaque.clone()], STATUS).await.unwrap(),
            None
        );
        // An opaque folder keeps what its own layer writes in it.
        let opaque_and_new = layer(&[
            ("var/lib/dpkg/.wh..wh..opq", Some("")),
            ("var/lib/dpkg/status", Some("mine")),
        ]);
        assert_eq!(
            read(&[base, opaque_and_new], STATUS).await.unwrap(),
            Some(b"mine".to_vec())
        );
    }

    #[tokio::test]
    async fn a_folder_is_not_a_file() {
        let l = layer(&[("var/lib/dpkg/status/", None)]);
        let e = read(&[l], STATUS).await.unwrap_err().to_string();
        assert!(
            e.contains(STATUS) && e.contains("not a regular file"),
            "{e}"
        );
    }
}
