//! `spackah provenance`: the SBOM and provenance of an image (the OCI referrers attached to its
//! manifests) or of a SIF (its data objects), listed and written out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use model::attest::{Document, DocumentKind};
use oci::registry::{Clients, DOCKER_LIST, ImageRef, OCI_INDEX, RegistryError};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What to read the documents of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Image(ImageRef),
    Sif(PathBuf),
}

impl Target {
    /// A path to an existing file or ending in `.sif` is a SIF, anything else an image
    /// reference.
    pub fn parse(s: &str) -> anyhow::Result<Target> {
        let path = Path::new(s);
        if path.is_file() || s.ends_with(".sif") {
            return Ok(Target::Sif(path.to_path_buf()));
        }
        s.parse()
            .map(Target::Image)
            .with_context(|| format!("`{s}` is neither a SIF file nor an image reference"))
    }
}

/// `spackah provenance`, as plain options.
#[derive(Debug, Clone)]
pub struct ProvenanceOptions {
    pub target: Target,
    /// Where to write the documents, each under its file name.
    pub extract: Option<PathBuf>,
}

/// One document found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub kind: &'static str,
    pub artifact_type: &'static str,
    /// Of the document's bytes: the same document has the same digest in an image and a SIF.
    pub digest: String,
    pub size: u64,
    /// The file it is extracted to.
    pub file: String,
    /// For an image: the manifest it is attached to, and the referrer holding it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl Found {
    fn new(doc: Document, subject: Option<String>, referrer: Option<String>) -> Found {
        Found {
            kind: match doc.kind {
                DocumentKind::Sbom => "sbom",
                DocumentKind::Provenance => "provenance",
            },
            artifact_type: doc.kind.artifact_type(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&doc.bytes))),
            size: doc.bytes.len() as u64,
            file: doc.kind.file_name().to_string(),
            subject,
            referrer,
            bytes: doc.bytes,
        }
    }
}

/// The documents of `opts.target`, each with the file name it is extracted to (prefixed with
/// the start of its digest where a kind comes more than once), read through `registries` for
/// an image.
pub async fn find(opts: &ProvenanceOptions, registries: &Clients) -> anyhow::Result<Vec<Found>> {
    let mut found = match &opts.target {
        Target::Sif(path) => model::sif::format::read_documents(path)
            .with_context(|| format!("reading the documents of {}", path.display()))?
            .into_iter()
            .map(|d| Found::new(d, None, None))
            .collect(),
        Target::Image(image) => image_documents(image, registries).await?,
    };
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &found {
        *count.entry(f.kind).or_default() += 1;
    }
    for f in &mut found {
        if count[f.kind] > 1 {
            let short = f.digest.trim_start_matches("sha256:");
            f.file = format!("{}-{}", &short[..12.min(short.len())], f.file);
        }
    }
    Ok(found)
}

/// The documents attached to the manifest `image` names, or to each manifest of the index it
/// names (and to the index itself).
async fn image_documents(image: &ImageRef, registries: &Clients) -> anyhow::Result<Vec<Found>> {
    let client = registries.get("project", &image.registry, &None)?;
    let top = match client.manifest(image).await {
        Err(RegistryError::NotFound { .. }) => bail!("no such image: {image}"),
        other => other.with_context(|| format!("reading {image}"))?,
    };
    let mut subjects = vec![top.digest.clone()];
    if top.media_type == OCI_INDEX || top.media_type == DOCKER_LIST {
        #[derive(serde::Deserialize)]
        struct Index {
            manifests: Vec<oci::registry::Descriptor>,
        }
        let index: Index = serde_json::from_slice(&top.bytes)
            .with_context(|| format!("{image}: reading its index"))?;
        subjects.extend(index.manifests.into_iter().map(|d| d.digest));
    }
    let mut found = Vec::new();
    for subject in subjects {
        let attached = client.documents(image, &subject).await.with_context(|| {
            format!(
                "the documents attached to {}",
                image.with_reference(&subject)
            )
        })?;
        found.extend(
            attached
                .into_iter()
                .map(|a| Found::new(a.document, Some(subject.clone()), Some(a.descriptor.digest))),
        );
    }
    Ok(found)
}

/// Write each document into `dir` (made when missing) under its file name.
pub fn extract(found: &[Found], dir: &Path) -> anyhow::Result<()> {
    // Nothing already there is overwritten, and nothing is written when something is: the
    // documents of another image would otherwise be silently replaced, or half of them.
    if let Some(there) = found.iter().map(|f| dir.join(&f.file)).find(|p| p.exists()) {
        anyhow::bail!(
            "{} exists: extract into an empty or new folder (nothing was written)",
            there.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for f in found {
        let path = dir.join(&f.file);
        std::fs::write(&path, &f.bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// What the target is called in messages.
pub fn describe(target: &Target) -> String {
    match target {
        Target::Image(i) => i.to_string(),
        Target::Sif(p) => p.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sif_paths_and_image_references_are_told_apart() {
        assert_eq!(
            Target::parse("out/pythons.sif").unwrap(),
            Target::Sif("out/pythons.sif".into())
        );
        assert!(matches!(
            Target::parse("registry.example.org/hpc/pythons:3.13").unwrap(),
            Target::Image(_)
        ));
        let err = format!("{:#}", Target::parse("Not An Image!").unwrap_err());
        assert!(
            err.contains("neither a SIF file nor an image reference"),
            "{err}"
        );
    }
}
