//! What a public key's own self-signatures vouch for: its user IDs, which subkeys belong to it
//! and may sign, and whether it or a subkey was revoked. Only signatures issued by the primary
//! key count: `gpg --export` also carries third-party certifications, which say nothing about
//! the key's validity here (GnuPG's `--verify` ignores them too without a trust model).

use pgp::composed::SignedPublicKey;
use pgp::packet::{PublicKey, Signature, SignatureType};
use pgp::types::{KeyDetails, Tag};

/// One subkey as its bindings describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Subkey {
    /// No valid binding signature by the primary key: not part of the key (ignored, its
    /// signatures are an unknown signer's).
    Unbound,
    /// Bound; `sign`: its newest valid binding allows signing (RFC 9580 5.2.3.29, key flag
    /// 0x02; GnuPG refuses other subkeys' signatures: "wrong key usage"); `revoked`: a valid
    /// subkey revocation by the primary key.
    Bound { sign: bool, revoked: bool },
}

/// Whether `sig` names `primary` as its issuer (fingerprint or key id).
fn by_primary(sig: &Signature, primary: &PublicKey) -> bool {
    let fingerprint = primary.fingerprint();
    let id = primary.legacy_key_id();
    sig.issuer_fingerprint().iter().any(|f| **f == fingerprint)
        || sig.issuer_key_id().iter().any(|i| **i == id)
}

/// The first user ID without a valid self-certification, if any (GnuPG drops such a user ID,
/// and a key without a valid one is not usable).
pub(super) fn unbound_user(key: &SignedPublicKey) -> Option<String> {
    let primary = &key.primary_key;
    key.details
        .users
        .iter()
        .find(|u| {
            !u.signatures.iter().any(|s| {
                by_primary(s, primary)
                    && s.typ() != Some(SignatureType::CertRevocation)
                    && s.verify_certification(primary, Tag::UserId, &u.id).is_ok()
            })
        })
        .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
}

/// Whether the primary key carries a valid key revocation signature of its own.
pub(super) fn primary_revoked(key: &SignedPublicKey) -> bool {
    let primary = &key.primary_key;
    key.details
        .revocation_signatures
        .iter()
        .chain(&key.details.direct_signatures)
        .any(|s| {
            s.typ() == Some(SignatureType::KeyRevocation)
                && by_primary(s, primary)
                && s.verify_key(primary).is_ok()
        })
}

/// Each subkey of `key`, in order.
pub(super) fn subkeys(key: &SignedPublicKey) -> Vec<Subkey> {
    let primary = &key.primary_key;
    key.public_subkeys
        .iter()
        .map(|sub| {
            let valid = |s: &&Signature| {
                by_primary(s, primary) && s.verify_subkey_binding(primary, &sub.key).is_ok()
            };
            let newest = sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
                .filter(valid)
                // A signing subkey must also sign back (the "primary key binding" signature).
                .filter(|s| {
                    !s.key_flags().sign()
                        || s.embedded_signature().is_some_and(|b| {
                            b.verify_primary_key_binding(&sub.key, primary).is_ok()
                        })
                })
                .max_by_key(|s| s.created().map(|t| t.as_secs()));
            let Some(binding) = newest else {
                return Subkey::Unbound;
            };
            let revoked = sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyRevocation))
                .any(|s| valid(&s));
            Subkey::Bound {
                sign: binding.key_flags().sign(),
                revoked,
            }
        })
        .collect()
}
