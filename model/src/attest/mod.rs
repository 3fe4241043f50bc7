//! What an image or SIF says about itself: its SBOM and its build provenance, as documents the
//! registry attaches to the image (OCI referrers) and the SIF carries as data objects.

/// Which document: each has one media type, used as the OCI artifact type and to find it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocumentKind {
    /// An SPDX 2.3 JSON software bill of materials.
    Sbom,
    /// An in-toto Statement v1 whose predicate is SLSA Provenance v1.
    Provenance,
}

impl DocumentKind {
    pub const ALL: [DocumentKind; 2] = [DocumentKind::Sbom, DocumentKind::Provenance];

    /// The OCI artifact type (and the media type of the one layer holding the document).
    pub fn artifact_type(self) -> &'static str {
        match self {
            DocumentKind::Sbom => "application/spdx+json",
            DocumentKind::Provenance => "application/vnd.in-toto+json",
        }
    }

    /// The file name the document is extracted to and carries in a SIF.
    pub fn file_name(self) -> &'static str {
        match self {
            DocumentKind::Sbom => "sbom.spdx.json",
            DocumentKind::Provenance => "provenance.intoto.json",
        }
    }

    /// The kind whose artifact type is `artifact_type`, if it is one of ours.
    pub fn from_artifact_type(artifact_type: &str) -> Option<DocumentKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.artifact_type() == artifact_type)
    }
}

/// One document and its bytes (JSON, as written: signatures and digests cover these bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub kind: DocumentKind,
    pub bytes: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_types_round_trip_and_strangers_are_none() {
        for k in DocumentKind::ALL {
            assert_eq!(DocumentKind::from_artifact_type(k.artifact_type()), Some(k));
        }
        assert_eq!(
            DocumentKind::from_artifact_type("application/vnd.oci.image.manifest.v1+json"),
            None
        );
    }
}
