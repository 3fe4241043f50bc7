//! Who signed a Spack spec file or spec manifest: the OpenPGP clear signatures Spack writes
//! (`gpg --clearsign`), checked against the public keys a user trusts.
//!
//! Spack checks them with `gpg --verify` against every key in its gpg home
//! (`spack/util/gpg.py: verify`, called by `url_buildcache.py: try_verify` and the v3 manifest
//! read that raises "Signature could not be verified"): a document is good when one of its
//! signatures verifies with an imported key. This is the same rule, without gpg.

use std::fmt;

use pgp::composed::{CleartextSignedMessage, PublicOrSecret, SignedPublicKey};
use pgp::packet::Signature;
use pgp::types::{KeyDetails, VerifyingKey};
use serde::Serialize;

use crate::spack::clearsign;

/// A key file that is not a usable OpenPGP public key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{what} is not an OpenPGP public key (broken armor or packets): {reason}")]
    Unreadable { what: String, reason: String },
    #[error(
        "{what} holds a secret key: give the public key instead (`gpg --armor --export FINGERPRINT`)"
    )]
    Secret { what: String },
    #[error("{what} holds no key")]
    Empty { what: String },
    #[error("{what}: the self-signatures of key {fingerprint} do not verify: {reason}")]
    BadSelfSignature {
        what: String,
        fingerprint: String,
        reason: String,
    },
}

/// One trusted public key, with its subkeys (GnuPG often signs with a subkey).
#[derive(Debug, Clone)]
struct TrustedKey {
    key: SignedPublicKey,
    /// The primary key's fingerprint, upper-case hex as Spack names keys (`_pgp/<FPR>.pub`).
    fingerprint: String,
}

/// The public keys whose signatures count.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<TrustedKey>,
}

/// What the signatures of one document say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// A signature made by a trusted key verifies: `fingerprint` is that key's primary key.
    Trusted { fingerprint: String },
    /// No clear signature at all.
    Unsigned,
    /// A trusted key (`fingerprint`) made a signature, but it does not verify: the text was
    /// changed after signing.
    BadSignature { fingerprint: String },
    /// Signed only by keys that are not trusted; `signers` are the issuers the signatures
    /// name (fingerprints, or 16-digit key ids of older signatures).
    UnknownSigner { signers: Vec<String> },
    /// It starts as a clear-signed document but cannot be read as one.
    Malformed { reason: String },
}

impl Verdict {
    /// Whether Spack, trusting the same keys, accepts the document.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Verdict::Trusted { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Trusted { fingerprint } => write!(f, "signed by trusted key {fingerprint}"),
            Verdict::Unsigned => f.write_str("unsigned"),
            Verdict::BadSignature { fingerprint } => write!(
                f,
                "bad signature: the signature of trusted key {fingerprint} does not match the \
                 text (changed after signing)"
            ),
            Verdict::UnknownSigner { signers } if signers.is_empty() => {
                f.write_str("signed by an unknown key (the signature names none)")
            }
            Verdict::UnknownSigner { signers } => {
                write!(f, "signed by an unknown key: {}", signers.join(", "))
            }
            Verdict::Malformed { reason } => write!(f, "unreadable signature: {reason}"),
        }
    }
}

impl TrustedKeys {
    /// Add every public key of a key file (ASCII-armored as `gpg --armor --export` writes it,
    /// or binary); `what` names the file in errors. Returns the primary keys' fingerprints.
    pub fn add(&mut self, what: &str, data: &[u8]) -> Result<Vec<String>, KeyError> {
        let unreadable = |e: pgp::errors::Error| KeyError::Unreadable {
            what: what.to_string(),
            reason: e.to_string(),
        };
        let (keys, _) = PublicOrSecret::from_reader_many(data).map_err(unreadable)?;
        let mut added = Vec::new();
        for key in keys {
            let key = match key.map_err(unreadable)? {
                PublicOrSecret::Public(k) => k,
                PublicOrSecret::Secret(_) => {
                    return Err(KeyError::Secret {
                        what: what.to_string(),
                    });
                }
            };
            let fingerprint = hex::encode_upper(key.primary_key.fingerprint().as_bytes());
            key.verify_bindings()
                .map_err(|e| KeyError::BadSelfSignature {
                    what: what.to_string(),
                    fingerprint: fingerprint.clone(),
                    reason: e.to_string(),
                })?;
            added.push(fingerprint.clone());
            self.keys.push(TrustedKey { key, fingerprint });
        }
        if added.is_empty() {
            return Err(KeyError::Empty {
                what: what.to_string(),
            });
        }
        Ok(added)
    }

    /// The primary keys' fingerprints.
    pub fn fingerprints(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.fingerprint.as_str()).collect()
    }

    /// Check a spec file or spec manifest as stored (clear-signed or not).
    pub fn check(&self, document: &[u8]) -> Verdict {
        self.check_text(document).0
    }

    /// [`Self::check`], with the text the trusted signature covers when it is trusted: what a
    /// reader must use, since anything outside the signed text is the attacker's to choose.
    pub fn check_text(&self, document: &[u8]) -> (Verdict, Option<String>) {
        if !clearsign::is_clearsigned(document) {
            return (Verdict::Unsigned, None);
        }
        let Ok(text) = std::str::from_utf8(document) else {
            let reason = "not UTF-8 text".into();
            return (Verdict::Malformed { reason }, None);
        };
        let msg = match CleartextSignedMessage::from_string(text.trim_start()) {
            Ok((msg, _)) => msg,
            Err(e) => {
                let reason = e.to_string();
                return (Verdict::Malformed { reason }, None);
            }
        };
        let signed = msg.signed_text();
        let mut bad = None;
        let mut signers = Vec::new();
        for sig in msg.signatures() {
            match self.check_one(sig, signed.as_bytes()) {
                Signer::Trusted(fingerprint) => {
                    return (Verdict::Trusted { fingerprint }, Some(signed));
                }
                Signer::Bad(fingerprint) => bad = bad.or(Some(fingerprint)),
                Signer::Unknown(named) => signers.extend(named),
            }
        }
        match bad {
            Some(fingerprint) => (Verdict::BadSignature { fingerprint }, None),
            None => (Verdict::UnknownSigner { signers }, None),
        }
    }

    /// One signature: the trusted key it names (primary or subkey), whether it verifies.
    fn check_one(&self, sig: &Signature, signed: &[u8]) -> Signer {
        let named = issuers(sig);
        let mut bad = None;
        for trusted in &self.keys {
            let k = &trusted.key;
            let verified = if names(&named, &k.primary_key) {
                Some(sig.verify(&k.primary_key, signed).is_ok())
            } else {
                k.public_subkeys
                    .iter()
                    .find(|s| names(&named, &s.key))
                    .map(|s| sig.verify(&s.key, signed).is_ok())
            };
            match verified {
                Some(true) => return Signer::Trusted(trusted.fingerprint.clone()),
                Some(false) => bad = bad.or(Some(trusted.fingerprint.clone())),
                None => {}
            }
        }
        match bad {
            Some(fingerprint) => Signer::Bad(fingerprint),
            None => Signer::Unknown(named.into_iter().map(|i| i.shown).collect()),
        }
    }
}

enum Signer {
    Trusted(String),
    Bad(String),
    Unknown(Vec<String>),
}

/// An issuer a signature names: a fingerprint (v4+ signatures) or a legacy key id.
struct Issuer {
    bytes: Vec<u8>,
    shown: String,
}

fn issuers(sig: &Signature) -> Vec<Issuer> {
    let fingerprints = sig
        .issuer_fingerprint()
        .into_iter()
        .map(|f| f.as_bytes().to_vec());
    let ids = sig
        .issuer_key_id()
        .into_iter()
        .map(|id| id.as_ref().to_vec());
    let mut out: Vec<Issuer> = fingerprints
        .chain(ids)
        .map(|bytes| Issuer {
            shown: hex::encode_upper(&bytes),
            bytes,
        })
        .collect();
    // A key id that is the tail of a fingerprint already named says nothing more.
    let fprs: Vec<Vec<u8>> = out
        .iter()
        .filter(|i| i.bytes.len() > 8)
        .map(|i| i.bytes.clone())
        .collect();
    out.retain(|i| i.bytes.len() > 8 || !fprs.iter().any(|f| f.ends_with(&i.bytes)));
    out
}

/// Whether one of `named` is `key` (by fingerprint or key id).
fn names(named: &[Issuer], key: &impl VerifyingKey) -> bool {
    let fingerprint = key.fingerprint();
    let id = key.legacy_key_id();
    named
        .iter()
        .any(|i| i.bytes == fingerprint.as_bytes() || i.bytes == id.as_ref())
}

#[cfg(test)]
mod tests;
