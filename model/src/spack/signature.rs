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
    /// A valid revocation of the primary key: none of its signatures counts.
    revoked: bool,
    /// What the bindings say of each of `key.public_subkeys`, in order.
    subkeys: Vec<binding::Subkey>,
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
    /// Made by a trusted key (`fingerprint`: the primary key or subkey) that was revoked.
    Revoked { fingerprint: String },
    /// Made by a subkey of a trusted key (`fingerprint`) that is not bound for signing
    /// (GnuPG refuses it: "wrong key usage").
    WrongKeyUsage { fingerprint: String },
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
            Verdict::Revoked { fingerprint } => {
                write!(f, "signed by revoked key {fingerprint}")
            }
            Verdict::WrongKeyUsage { fingerprint } => write!(
                f,
                "signed by subkey {fingerprint}, which is not bound for signing (wrong key usage)"
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
            // Not `verify_bindings`: it fails on third-party certifications and on any subkey
            // with a bad binding, which GnuPG ignores.
            if let Some(user) = binding::unbound_user(&key) {
                return Err(KeyError::BadSelfSignature {
                    what: what.to_string(),
                    fingerprint,
                    reason: format!("user ID {user:?} has no valid self-signature"),
                });
            }
            added.push(fingerprint.clone());
            self.keys.push(TrustedKey {
                revoked: binding::primary_revoked(&key),
                subkeys: binding::subkeys(&key),
                key,
                fingerprint,
            });
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
        let mut refused = None;
        let mut signers = Vec::new();
        for sig in msg.signatures() {
            match self.check_one(sig, signed.as_bytes()) {
                Signer::Trusted(fingerprint) => {
                    return (Verdict::Trusted { fingerprint }, Some(signed));
                }
                Signer::Refused(verdict) => refused = refused.or(Some(verdict)),
                Signer::Unknown(named) => signers.extend(named),
            }
        }
        (refused.unwrap_or(Verdict::UnknownSigner { signers }), None)
    }

    /// One signature: the trusted key it names (primary or bound subkey), whether it verifies
    /// and whether that key may sign.
    fn check_one(&self, sig: &Signature, signed: &[u8]) -> Signer {
        let named = issuers(sig);
        let mut refused = None;
        for trusted in &self.keys {
            let Some(verdict) = trusted.check(&named, sig, signed) else {
                continue;
            };
            match verdict {
                Verdict::Trusted { fingerprint } => return Signer::Trusted(fingerprint),
                v => refused = refused.or(Some(v)),
            }
        }
        match refused {
            Some(v) => Signer::Refused(v),
            None => Signer::Unknown(named.into_iter().map(|i| i.shown).collect()),
        }
    }
}

impl TrustedKey {
    /// The verdict on `sig` when it names this key's primary key or one of its bound subkeys.
    fn check(&self, named: &[Issuer], sig: &Signature, signed: &[u8]) -> Option<Verdict> {
        let k = &self.key;
        let fpr = |f: pgp::types::Fingerprint| hex::encode_upper(f.as_bytes());
        let (verified, key_fpr, sign, revoked) = if names(named, &k.primary_key) {
            let ok = sig.verify(&k.primary_key, signed).is_ok();
            (ok, self.fingerprint.clone(), true, false)
        } else {
            let (sub, state) = k
                .public_subkeys
                .iter()
                .zip(&self.subkeys)
                .find(|(s, b)| **b != binding::Subkey::Unbound && names(named, &s.key))?;
            let binding::Subkey::Bound { sign, revoked } = *state else {
                return None;
            };
            let ok = sig.verify(&sub.key, signed).is_ok();
            (ok, fpr(sub.key.fingerprint()), sign, revoked)
        };
        Some(if !verified {
            Verdict::BadSignature {
                fingerprint: self.fingerprint.clone(),
            }
        } else if self.revoked {
            Verdict::Revoked {
                fingerprint: self.fingerprint.clone(),
            }
        } else if revoked {
            Verdict::Revoked {
                fingerprint: key_fpr,
            }
        } else if !sign {
            Verdict::WrongKeyUsage {
                fingerprint: key_fpr,
            }
        } else {
            Verdict::Trusted {
                fingerprint: self.fingerprint.clone(),
            }
        })
    }
}

enum Signer {
    Trusted(String),
    /// A trusted key's signature that does not count: bad, revoked key, wrong usage.
    Refused(Verdict),
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

mod binding;
#[cfg(test)]
mod tests;
