//! Layout v2 (Spack 0.22–0.23): every object under `build_cache/`, named from the spec's
//! architecture, compiler, name, version and hash.

use crate::spack::is_dag_hash;
use crate::spack::spec::{Compiler, SpecNode};

pub const PREFIX: &str = "build_cache/";
pub const INDEX_KEY: &str = "build_cache/index.json";
pub const INDEX_HASH_KEY: &str = "build_cache/index.json.hash";
pub const KEY_INDEX_KEY: &str = "build_cache/_pgp/index.json";

/// `<arch>-<compiler>-<compiler version>-<name>-<version>-<hash>`, the stem of every per-spec
/// object name.
pub fn stem(node: &SpecNode, compiler: &Compiler) -> String {
    format!(
        "{}-{}-{}-{}-{}-{}",
        node.architecture(),
        compiler.name,
        compiler.version,
        node.name,
        node.version,
        node.hash
    )
}

/// The spec file key, signed (`.spec.json.sig`) or not (`.spec.json`).
pub fn spec_key(node: &SpecNode, compiler: &Compiler, signed: bool) -> String {
    let ext = if signed {
        ".spec.json.sig"
    } else {
        ".spec.json"
    };
    format!("{PREFIX}{}{ext}", stem(node, compiler))
}

/// The binary tarball key:
/// `build_cache/<arch>/<compiler>-<version>/<name>-<version>/<stem>.spack`.
pub fn tarball_key(node: &SpecNode, compiler: &Compiler) -> String {
    format!(
        "{PREFIX}{}/{}-{}/{}-{}/{}.spack",
        node.architecture(),
        compiler.name,
        compiler.version,
        node.name,
        node.version,
        stem(node, compiler)
    )
}

/// What a key under a v2 mirror is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    SpecFile {
        hash: String,
        signed: bool,
    },
    Tarball {
        hash: String,
    },
    Index,
    IndexHash,
    PublicKey {
        fingerprint: String,
    },
    KeyIndex,
    /// Anything else under `build_cache/`.
    Other,
}

/// Classify a key relative to the mirror root; `None` when it is not under `build_cache/`.
pub fn classify(key: &str) -> Option<Object> {
    let rest = key.strip_prefix(PREFIX)?;
    Some(match rest {
        "index.json" => Object::Index,
        "index.json.hash" => Object::IndexHash,
        "_pgp/index.json" => Object::KeyIndex,
        _ => {
            let file = rest.rsplit('/').next().unwrap_or(rest);
            if let Some(fpr) = rest
                .strip_prefix("_pgp/")
                .and_then(|r| r.strip_suffix(".pub"))
            {
                Object::PublicKey {
                    fingerprint: fpr.to_string(),
                }
            } else if let Some(s) = file.strip_suffix(".spec.json.sig") {
                hash_of(s).map_or(Object::Other, |hash| Object::SpecFile {
                    hash,
                    signed: true,
                })
            } else if let Some(s) = file.strip_suffix(".spec.json") {
                hash_of(s).map_or(Object::Other, |hash| Object::SpecFile {
                    hash,
                    signed: false,
                })
            } else if let Some(s) = file.strip_suffix(".spack") {
                hash_of(s).map_or(Object::Other, |hash| Object::Tarball { hash })
            } else {
                Object::Other
            }
        }
    })
}

/// Names and versions may contain `-`: the hash is the last field.
fn hash_of(stem: &str) -> Option<String> {
    let h = stem.rsplit('-').next()?;
    is_dag_hash(h).then(|| h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_fixture_names() {
        assert_eq!(
            classify(
                "build_cache/test-debian6-m1-none-none-compiler-wrapper-1.0-qeehcxyvluwnihsc2qxstmpomtxo3lrc.spec.json.sig"
            ),
            Some(Object::SpecFile {
                hash: "qeehcxyvluwnihsc2qxstmpomtxo3lrc".into(),
                signed: true
            })
        );
        assert_eq!(
            classify(
                "build_cache/test-debian6-core2/gcc-10.2.1/libelf-0.8.13/test-debian6-core2-gcc-10.2.1-libelf-0.8.13-rqh2vuf6fqwkmipzgi2wjx352mq7y7ez.spack"
            ),
            Some(Object::Tarball {
                hash: "rqh2vuf6fqwkmipzgi2wjx352mq7y7ez".into()
            })
        );
        assert_eq!(
            classify("build_cache/_pgp/A98A04B882E19D85FD36EE069565D80B055C92FF.pub"),
            Some(Object::PublicKey {
                fingerprint: "A98A04B882E19D85FD36EE069565D80B055C92FF".into()
            })
        );
        assert_eq!(
            classify("build_cache/index.json.hash"),
            Some(Object::IndexHash)
        );
        assert_eq!(classify("build_cache/junk.txt"), Some(Object::Other));
        assert_eq!(classify("v3/layout.json"), None);
    }
}
