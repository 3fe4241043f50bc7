//! What an image or SIF says about itself: its SBOM and its build provenance, as documents the
//! registry attaches to the image (OCI referrers) and the SIF carries as data objects.

pub mod dpkg;
pub mod provenance;
pub mod sbom;

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

/// An input a document cannot be made from; says which and why.
#[derive(Debug, thiserror::Error)]
#[error("{what} `{value}`: {message}")]
pub struct AttestError {
    pub what: String,
    pub value: String,
    pub message: String,
}

/// The hex of a `sha256:<64 lowercase hex>` digest (`what` names it in the error).
fn sha256_hex<'a>(digest: &'a str, what: &str) -> Result<&'a str, AttestError> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(|| AttestError {
            what: what.into(),
            value: digest.into(),
            message: "not a sha256 digest (`sha256:` and 64 lowercase hex digits)".into(),
        })
}

/// Percent-encoding of a purl component: everything but unreserved characters (purl
/// specification, "Character encoding", <https://github.com/package-url/purl-spec>).
fn purl_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The purl of an image by digest (type `oci`: `pkg:oci/<name>@sha256%3A<hex>` with the
/// `repository_url` and `tag` qualifiers, purl-spec `PURL-TYPES.rst`).
fn oci_purl(image: &crate::reference::ImageRef, hex: &str) -> String {
    let name = image
        .repository
        .rsplit('/')
        .next()
        .unwrap_or(&image.repository);
    let mut purl = format!(
        "pkg:oci/{}@sha256%3A{hex}?repository_url={}",
        purl_encode(name),
        purl_encode(&format!("{}/{}", image.registry, image.repository)),
    );
    if !image.is_digest() {
        purl.push_str(&format!("&tag={}", purl_encode(&image.reference)));
    }
    purl
}

/// A time as both documents write it: UTC to the second, `YYYY-MM-DDThh:mm:ssZ` (SPDX 2.3
/// §6.9, and the RFC 3339 `Z` form the in-toto/SLSA timestamps take).
fn check_created(t: &str) -> Result<(), AttestError> {
    let ok = t.len() == 20
        && t.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if ok {
        Ok(())
    } else {
        Err(AttestError {
            what: "creation time".into(),
            value: t.into(),
            message: "not `YYYY-MM-DDThh:mm:ssZ`".into(),
        })
    }
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
