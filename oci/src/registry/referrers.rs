//! Documents (SBOM, provenance) attached to an image as OCI 1.1 referrers: one artifact manifest
//! per document whose `subject` is the image manifest, listed through the referrers API or, on
//! registries without it, through the referrers tag schema the client keeps up to date.

use model::attest::{Document, DocumentKind};
use serde::Serialize;

use crate::registry::RegistryClient;
use crate::registry::distribution::{
    Descriptor, IndexDoc, ManifestDoc, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, RegistryError,
    sha256_digest,
};
use model::reference::ImageRef;

/// The annotation naming a document's file (what `oras pull` writes it as).
const TITLE: &str = "org.opencontainers.image.title";

/// A document attached to an image, and the referrer descriptor it was found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub descriptor: Descriptor,
    pub document: Document,
}

/// The tag holding the referrers of the manifest `digest` on a registry without the referrers
/// API (distribution spec, "Referrers Tag Schema"): the algorithm truncated to 32 characters,
/// `-`, the encoded part truncated to 64, any character a tag cannot hold replaced by `-`.
pub fn referrers_tag(digest: &str) -> String {
    let (alg, encoded) = digest.split_once(':').unwrap_or(("", digest));
    let truncate = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    format!("{}-{}", truncate(alg, 32), truncate(encoded, 64))
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '-',
        })
        .collect()
}

/// An image index as written: the referrers tag schema's list.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: &'a [Descriptor],
}

/// The artifact manifest of `document`, held in the blob `layer`, with `config` the empty
/// blob (image-spec `manifest.md`, "Guidelines for Artifact Usage": `artifactType` set, an
/// empty config); its title annotation names the document's file.
fn artifact_manifest(
    subject: &Descriptor,
    document: &Document,
    config: &str,
    layer: &str,
) -> serde_json::Value {
    let kind = document.kind;
    let title = serde_json::json!({ TITLE: kind.file_name() });
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": kind.artifact_type(),
        "config": { "mediaType": OCI_EMPTY, "digest": config, "size": 2 },
        "layers": [{
            "mediaType": kind.artifact_type(),
            "digest": layer,
            "size": document.bytes.len(),
            "annotations": title,
        }],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
        "annotations": title,
    })
}

impl RegistryClient {
    /// Attach `document` to the manifest `subject` in the repository of `image`: the empty
    /// config, the document and its artifact manifest pushed, and, when the registry does not
    /// process subjects, the referrers tag schema's index updated. The referrer's descriptor.
    pub async fn attach(
        &self,
        image: &ImageRef,
        subject: &Descriptor,
        document: &Document,
    ) -> Result<Descriptor, RegistryError> {
        let config = self.api.put_blob(image, b"{}".to_vec()).await?;
        let layer = self.api.put_blob(image, document.bytes.clone()).await?;
        let manifest = artifact_manifest(subject, document, &config, &layer);
        let bytes = serde_json::to_vec(&manifest).expect("a JSON value serializes");
        let digest = sha256_digest(&bytes);
        let descriptor: ManifestDoc =
            serde_json::from_value(manifest).expect("the manifest written reads back");
        let descriptor = descriptor.referrer(&digest, bytes.len() as u64);
        let pushed = self
            .api
            .put_manifest(&image.with_reference(&digest), OCI_MANIFEST, bytes)
            .await?;
        if !pushed.subject_processed {
            self.add_to_referrers_tag(image, &subject.digest, &descriptor)
                .await?;
        }
        Ok(descriptor)
    }

    /// The referrers tag schema's index of `subject`, `descriptor` added (distribution spec,
    /// "Pushing Manifests with Subject": without `OCI-Subject` in the answer the client pulls
    /// the tag, starts from an empty index on 404, refuses anything but an index, adds the
    /// referrer once, and pushes the index back to the same tag).
    async fn add_to_referrers_tag(
        &self,
        image: &ImageRef,
        subject: &str,
        descriptor: &Descriptor,
    ) -> Result<(), RegistryError> {
        let tag = image.with_reference(&referrers_tag(subject));
        let mut manifests = match self.api.manifest(&tag).await {
            Ok(f) if f.media_type == OCI_INDEX => parse_index(&tag, &f.bytes)?,
            Ok(f) => {
                return Err(RegistryError::Protocol {
                    image: tag.to_string(),
                    message: format!(
                        "holds a {}, not the image index of the referrers tag schema: not overwritten",
                        f.media_type
                    ),
                });
            }
            Err(RegistryError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        if manifests.iter().any(|d| d.digest == descriptor.digest) {
            return Ok(());
        }
        manifests.push(descriptor.clone());
        let bytes = serde_json::to_vec(&Index {
            schema_version: 2,
            media_type: OCI_INDEX,
            manifests: &manifests,
        })
        .expect("an index serializes");
        self.api.put_manifest(&tag, OCI_INDEX, bytes).await?;
        Ok(())
    }

    /// The referrers of the manifest `digest` in the repository of `image`: the referrers
    /// API's answer, or on a registry without it (404) the referrers tag schema's index; no
    /// valid index there means none (distribution spec, "Listing Referrers").
    pub async fn referrers(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        if let Some(list) = self.api.referrers(image, digest).await? {
            return Ok(list);
        }
        let tag = image.with_reference(&referrers_tag(digest));
        match self.api.manifest(&tag).await {
            Ok(f) if f.media_type == OCI_INDEX => {
                Ok(parse_index(&tag, &f.bytes).unwrap_or_default())
            }
            Ok(_) | Err(RegistryError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The documents of our kinds attached to the manifest `digest` (other referrers, such as
    /// signatures, are left out), each read by digest and checked to be attached to it, by
    /// kind then referrer digest.
    pub async fn documents(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<Vec<Attached>, RegistryError> {
        let mut found = Vec::new();
        for descriptor in self.referrers(image, digest).await? {
            let Some(kind) = descriptor
                .artifact_type
                .as_deref()
                .and_then(DocumentKind::from_artifact_type)
            else {
                continue;
            };
            let document = self.document(image, digest, &descriptor, kind).await?;
            found.push(Attached {
                descriptor,
                document,
            });
        }
        found.sort_by(|a, b| {
            (a.document.kind, &a.descriptor.digest).cmp(&(b.document.kind, &b.descriptor.digest))
        });
        Ok(found)
    }

    /// The document the referrer `descriptor` holds: its manifest (whose subject must be
    /// `subject` and whose type `kind`: a tag schema index is anyone's to write) and its one
    /// layer.
    async fn document(
        &self,
        image: &ImageRef,
        subject: &str,
        descriptor: &Descriptor,
        kind: DocumentKind,
    ) -> Result<Document, RegistryError> {
        let at = image.with_reference(&descriptor.digest);
        let bad = |message: String| RegistryError::Protocol {
            image: at.to_string(),
            message,
        };
        let fetched = self.api.manifest(&at).await?;
        let manifest: ManifestDoc = serde_json::from_slice(&fetched.bytes)
            .map_err(|e| bad(format!("referrer manifest: {e}")))?;
        if manifest.subject.as_ref().map(|s| s.digest.as_str()) != Some(subject) {
            return Err(bad(format!(
                "listed as a referrer of {subject}, but not attached to it"
            )));
        }
        if manifest.artifact_type.as_deref() != Some(kind.artifact_type()) {
            return Err(bad(format!(
                "listed as {}, but of another artifact type",
                kind.artifact_type()
            )));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(bad(format!(
                "a document has one layer, this referrer {}",
                manifest.layers.len()
            )));
        };
        let bytes = self.api.blob(image, &layer.digest).await?;
        Ok(Document { kind, bytes })
    }
}

/// The descriptors of a referrers index read from `tag`.
fn parse_index(tag: &ImageRef, bytes: &[u8]) -> Result<Vec<Descriptor>, RegistryError> {
    serde_json::from_slice::<IndexDoc>(bytes)
        .map(|i| i.manifests)
        .map_err(|e| RegistryError::Protocol {
            image: tag.to_string(),
            message: format!("referrers index: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrers_tags_follow_the_spec_examples() {
        let a64 = "a".repeat(64);
        assert_eq!(
            referrers_tag(&format!("sha256:{a64}")),
            format!("sha256-{a64}")
        );
        assert_eq!(
            referrers_tag(&format!("sha512:{}", "a".repeat(128))),
            format!("sha512-{a64}")
        );
        assert_eq!(
            referrers_tag(
                "test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall+truncation:alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharactersToExcerciseEncodedTruncation"
            ),
            "test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacementAndLotsAndLot"
        );
    }
}
