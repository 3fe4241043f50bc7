//! Layout v3 (Spack ≥ 1.0): manifests under `v3/manifests/` pointing at content-addressed
//! blobs under `blobs/`.

use serde::{Deserialize, Serialize};

use crate::spack::{FormatError, clearsign, is_dag_hash};

pub const LAYOUT_KEY: &str = "v3/layout.json";
pub const MANIFESTS_PREFIX: &str = "v3/manifests/";
pub const SPEC_MANIFESTS_PREFIX: &str = "v3/manifests/spec/";
pub const INDEX_MANIFEST_KEY: &str = "v3/manifests/index/index.manifest.json";
pub const KEY_INDEX_MANIFEST_KEY: &str = "v3/manifests/key/keys.manifest.json";
pub const BLOBS_PREFIX: &str = "blobs/";
/// What `v3/layout.json` holds, byte for byte as Spack writes it.
pub const LAYOUT_JSON: &str = "{\"signing\": \"gpg\"}";

/// Media-type prefixes: Spack bumps the version inside the type, so match by prefix.
pub const SPEC_MEDIA_PREFIX: &str = "application/vnd.spack.spec.v";
pub const INDEX_MEDIA_PREFIX: &str = "application/vnd.spack.db.v";
pub const TARBALL_MEDIA_PREFIX: &str = "application/vnd.spack.install.v";
pub const KEY_MEDIA_TYPE: &str = "application/pgp-keys";
pub const KEY_INDEX_MEDIA_PREFIX: &str = "application/vnd.spack.keyindex.v";

/// One blob a manifest points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobRecord {
    pub content_length: u64,
    pub media_type: String,
    pub compression: String,
    pub checksum_algorithm: String,
    pub checksum: String,
}

impl BlobRecord {
    /// `blobs/<algorithm>/<checksum[0:2]>/<checksum>`.
    pub fn key(&self) -> String {
        blob_key(&self.checksum_algorithm, &self.checksum)
    }
}

pub fn blob_key(algorithm: &str, checksum: &str) -> String {
    format!(
        "{BLOBS_PREFIX}{algorithm}/{}/{checksum}",
        &checksum[..checksum.len().min(2)]
    )
}

/// A manifest (`*.manifest.json`): version 3 and a list of blob records. Unknown keys are
/// ignored, as Spack's schema allows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub data: Vec<BlobRecord>,
}

impl Manifest {
    /// Parse manifest bytes, clear-signed or not; `what` names the object in errors.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Manifest, FormatError> {
        let body = clearsign::strip(bytes).ok_or_else(|| {
            FormatError::invalid(
                what,
                "clear-signed manifest without a complete body and signature",
            )
        })?;
        let m: Manifest = serde_json::from_slice(&body)
            .map_err(|e| FormatError::invalid(what, format!("not a build-cache manifest: {e}")))?;
        if m.version != 3 {
            return Err(FormatError::invalid(
                what,
                format!("manifest version {} (expected 3)", m.version),
            ));
        }
        for r in &m.data {
            let hex_ok = r.checksum.len() >= 2 && r.checksum.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex_ok || r.checksum_algorithm.is_empty() || r.checksum_algorithm.contains('/') {
                return Err(FormatError::invalid(
                    what,
                    format!(
                        "blob record with invalid checksum `{}:{}`",
                        r.checksum_algorithm, r.checksum
                    ),
                ));
            }
        }
        Ok(m)
    }

    /// The first record whose media type starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Option<&BlobRecord> {
        self.data.iter().find(|r| r.media_type.starts_with(prefix))
    }

    /// Serialised as Spack does: `indent=0`, compact separators, no trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::from("{\n\"version\":3,\n\"data\":[\n");
        for (i, r) in self.data.iter().enumerate() {
            if i > 0 {
                out.push_str(",\n");
            }
            out.push_str(&format!(
                "{{\n\"contentLength\":{},\n\"mediaType\":{},\n\"compression\":{},\n\"checksumAlgorithm\":{},\n\"checksum\":{}\n}}",
                r.content_length,
                serde_json::Value::from(r.media_type.as_str()),
                serde_json::Value::from(r.compression.as_str()),
                serde_json::Value::from(r.checksum_algorithm.as_str()),
                serde_json::Value::from(r.checksum.as_str()),
            ));
        }
        out.push_str("\n]\n}");
        out.into_bytes()
    }
}

/// `v3/manifests/spec/<name>/<name>-<version>-<hash>.spec.manifest.json`.
pub fn spec_manifest_key(name: &str, version: &str, hash: &str) -> String {
    format!("{SPEC_MANIFESTS_PREFIX}{name}/{name}-{version}-{hash}.spec.manifest.json")
}

/// What a key under a v3 mirror is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    SpecManifest {
        hash: String,
    },
    /// The index manifest; `view` is set for an index view.
    IndexManifest {
        view: Option<String>,
    },
    KeyManifest {
        fingerprint: String,
    },
    KeyIndexManifest,
    Blob {
        algorithm: String,
        checksum: String,
    },
    Layout,
    Other,
}

/// Classify a key relative to the mirror root; `None` when it is neither under `v3/` nor
/// `blobs/`.
pub fn classify(key: &str) -> Option<Object> {
    if key == LAYOUT_KEY {
        return Some(Object::Layout);
    }
    if let Some(rest) = key.strip_prefix(BLOBS_PREFIX) {
        let parts: Vec<&str> = rest.split('/').collect();
        return Some(match parts.as_slice() {
            [alg, pre, sum] if sum.starts_with(pre) && pre.len() == 2 => Object::Blob {
                algorithm: alg.to_string(),
                checksum: sum.to_string(),
            },
            _ => Object::Other,
        });
    }
    let rest = key.strip_prefix("v3/")?;
    let Some(m) = rest.strip_prefix("manifests/") else {
        return Some(Object::Other);
    };
    let file = m.rsplit('/').next().unwrap_or(m);
    Some(
        if let Some(stem) = m
            .strip_prefix("spec/")
            .and(file.strip_suffix(".spec.manifest.json"))
        {
            match stem.rsplit('-').next() {
                Some(h) if is_dag_hash(h) => Object::SpecManifest {
                    hash: h.to_string(),
                },
                _ => Object::Other,
            }
        } else if m == "index/index.manifest.json" {
            Object::IndexManifest { view: None }
        } else if let Some(view) = m
            .strip_prefix("index/")
            .and_then(|v| v.strip_suffix("/index.manifest.json"))
        {
            Object::IndexManifest {
                view: Some(view.to_string()),
            }
        } else if m == "key/keys.manifest.json" {
            Object::KeyIndexManifest
        } else if let Some(fpr) = m
            .strip_prefix("key/")
            .and_then(|k| k.strip_suffix(".key.manifest.json"))
        {
            Object::KeyManifest {
                fingerprint: fpr.to_string(),
            }
        } else {
            Object::Other
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_v3_keys() {
        assert_eq!(
            classify(
                "v3/manifests/spec/libelf/libelf-0.8.13-rqh2vuf6fqwkmipzgi2wjx352mq7y7ez.spec.manifest.json"
            ),
            Some(Object::SpecManifest {
                hash: "rqh2vuf6fqwkmipzgi2wjx352mq7y7ez".into()
            })
        );
        assert_eq!(
            classify(
                "blobs/sha256/fc/fc129b8fab649ab4c5623c874c73bd998a76fd30d2218b9d99340d045c1ec759"
            ),
            Some(Object::Blob {
                algorithm: "sha256".into(),
                checksum: "fc129b8fab649ab4c5623c874c73bd998a76fd30d2218b9d99340d045c1ec759".into()
            })
        );
        assert_eq!(
            classify("v3/manifests/index/index.manifest.json"),
            Some(Object::IndexManifest { view: None })
        );
        assert_eq!(
            classify("v3/manifests/index/prod/index.manifest.json"),
            Some(Object::IndexManifest {
                view: Some("prod".into())
            })
        );
        assert_eq!(
            classify("v3/manifests/key/keys.manifest.json"),
            Some(Object::KeyIndexManifest)
        );
        assert_eq!(classify("v3/layout.json"), Some(Object::Layout));
        assert_eq!(classify("build_cache/index.json"), None);
    }

    #[test]
    fn manifest_round_trip_is_spack_bytes() {
        let text = "{\n\"version\":3,\n\"data\":[\n{\n\"contentLength\":6473,\n\"mediaType\":\"application/vnd.spack.db.v8+json\",\n\"compression\":\"none\",\n\"checksumAlgorithm\":\"sha256\",\n\"checksum\":\"fc129b8fab649ab4c5623c874c73bd998a76fd30d2218b9d99340d045c1ec759\"\n}\n]\n}";
        let m = Manifest::parse("idx", text.as_bytes()).unwrap();
        assert_eq!(m.to_bytes(), text.as_bytes());
        assert!(m.find(INDEX_MEDIA_PREFIX).is_some());
        assert!(m.find(SPEC_MEDIA_PREFIX).is_none());
    }

    #[test]
    fn bad_manifests() {
        assert!(
            Manifest::parse("m", br#"{"version":2,"data":[]}"#)
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
        let bad_sum = br#"{"version":3,"data":[{"contentLength":1,"mediaType":"x","compression":"none","checksumAlgorithm":"sha256","checksum":"../../etc"}]}"#;
        assert!(Manifest::parse("m", bad_sum).is_err());
        assert!(Manifest::parse("m", br#"{"version":3}"#).is_err());
    }
}
