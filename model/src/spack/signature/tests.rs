//! The signatures of the Spack fixtures (v2: signed upstream, key `CBAB2C10…`; v3: signed for
//! the fixtures, key `C6A723B8…`), checked with pgp as `gpg --verify` checks them.

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/spack");
const V2_KEY: &str = "CBAB2C1032C6FF5078049EC0FA61D50C12CAD37E";
const V3_KEY: &str = "C6A723B8FCD8786D78D193D9676D0563A6CF525B";

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn files(rel: &str, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(format!("{FIXTURES}/{rel}"))
        .into_iter()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(suffix))
        .collect();
    out.sort();
    out
}

fn trusting(keys: &[&str]) -> TrustedKeys {
    let mut t = TrustedKeys::default();
    for k in keys {
        t.add(k, &read(k)).unwrap();
    }
    t
}

const V2_PUB: &str =
    "v2_layout/signed/build_cache/_pgp/CBAB2C1032C6FF5078049EC0FA61D50C12CAD37E.pub";
const V3_PUB: &str = "v3_layout/signed/blobs/sha256/3a/3a12130b61d83c0441cdf9e7ef085dea4d60d39f735a9968e14439f2252a2d1c";

#[test]
fn every_signed_fixture_is_signed_by_its_key() {
    let t = trusting(&[V2_PUB, V3_PUB]);
    assert_eq!(t.fingerprints(), [V2_KEY, V3_KEY]);
    let v2 = files("v2_layout/signed/build_cache", ".spec.json.sig");
    let v3 = files("v3_layout/signed/v3/manifests/spec", ".spec.manifest.json");
    assert_eq!((v2.len(), v3.len()), (6, 6));
    for (docs, key) in [(v2, V2_KEY), (v3, V3_KEY)] {
        for f in docs {
            let verdict = t.check(&std::fs::read(&f).unwrap());
            assert_eq!(
                verdict,
                Verdict::Trusted {
                    fingerprint: key.into()
                },
                "{f}"
            );
        }
    }
}

#[test]
fn a_changed_byte_in_the_body_is_a_bad_signature() {
    let t = trusting(&[V2_PUB]);
    let f = &files("v2_layout/signed/build_cache", ".spec.json.sig")[0];
    let doc = String::from_utf8(std::fs::read(f).unwrap()).unwrap();
    // The version of the first node, in the signed JSON.
    let tampered = doc.replacen("\"version\":\"", "\"version\":\"9", 1);
    assert_ne!(doc, tampered);
    assert_eq!(
        t.check(tampered.as_bytes()),
        Verdict::BadSignature {
            fingerprint: V2_KEY.into()
        }
    );
}

#[test]
fn a_key_that_is_not_trusted_is_an_unknown_signer_named_by_the_signature() {
    let t = trusting(&[V3_PUB]);
    let f = &files("v2_layout/signed/build_cache", ".spec.json.sig")[0];
    match t.check(&std::fs::read(f).unwrap()) {
        Verdict::UnknownSigner { signers } => {
            assert!(
                signers.iter().any(|s| V2_KEY.ends_with(s.as_str())),
                "{signers:?}"
            )
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn unsigned_and_unreadable_documents() {
    let t = trusting(&[V2_PUB]);
    let f = &files("v2_layout/unsigned/build_cache", ".spec.json")[0];
    assert_eq!(t.check(&std::fs::read(f).unwrap()), Verdict::Unsigned);
    let truncated = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{}\n";
    assert!(matches!(t.check(truncated), Verdict::Malformed { .. }));
}

#[test]
fn a_file_that_is_no_public_key_is_an_error_naming_it() {
    let mut t = TrustedKeys::default();
    let key = String::from_utf8(read(V2_PUB)).unwrap();
    // Armor whose base64 is damaged in the middle.
    let mid = key.len() / 2;
    let broken = format!("{}!!!{}", &key[..mid], &key[mid + 3..]);
    let signed =
        std::fs::read(&files("v2_layout/signed/build_cache", ".spec.json.sig")[0]).unwrap();
    for (what, data) in [
        ("broken.asc", broken.as_bytes()),
        ("spec.sig", &signed[..]),
        ("empty.asc", b"".as_slice()),
        ("text.asc", b"hello\n".as_slice()),
    ] {
        let e = t.add(what, data).unwrap_err().to_string();
        assert!(e.starts_with(what), "{e}");
    }
    assert!(t.fingerprints().is_empty());
}

/// A key made by pgp: an Ed25519 primary key that certifies and signs, and an Ed25519 subkey
/// bound for authentication only (as ssh subkeys are).
fn generated(uid: &str) -> pgp::composed::SignedSecretKey {
    use pgp::composed::{EncryptionCaps, KeyType, SecretKeyParamsBuilder, SubkeyParamsBuilder};
    let auth = SubkeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_sign(false)
        .can_encrypt(EncryptionCaps::None)
        .can_authenticate(true)
        .build()
        .unwrap();
    SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .can_encrypt(EncryptionCaps::None)
        .primary_user_id(uid.into())
        .subkeys(vec![auth])
        .build()
        .unwrap()
        .generate(rand::thread_rng())
        .unwrap()
}

fn public_file(key: &SignedPublicKey) -> Vec<u8> {
    key.to_armored_bytes(None.into()).unwrap()
}

fn clearsigned(text: &str, key: &impl pgp::types::SigningKey) -> Vec<u8> {
    let pw = pgp::types::Password::empty();
    CleartextSignedMessage::sign(rand::thread_rng(), text, key, &pw)
        .unwrap()
        .to_armored_bytes(None.into())
        .unwrap()
}

#[test]
fn a_subkey_not_bound_for_signing_or_not_bound_at_all_does_not_make_a_trusted_signature() {
    let secret = generated("a <a@example.invalid>");
    let other = generated("b <b@example.invalid>");
    let mut public = SignedPublicKey::from(secret.clone());
    // A subkey with another key's binding: to be ignored, not to reject the key file.
    public
        .public_subkeys
        .push(SignedPublicKey::from(other.clone()).public_subkeys[0].clone());
    let mut keys = TrustedKeys::default();
    keys.add("a.asc", &public_file(&public)).unwrap();
    let primary = hex::encode_upper(secret.primary_key.fingerprint().as_bytes());
    let text = "{\"spec\": 1}\n";

    assert_eq!(
        keys.check(&clearsigned(text, &secret.primary_key)),
        Verdict::Trusted {
            fingerprint: primary
        }
    );
    let auth = &secret.secret_subkeys[0].key;
    assert_eq!(
        keys.check(&clearsigned(text, auth)),
        Verdict::WrongKeyUsage {
            fingerprint: hex::encode_upper(auth.fingerprint().as_bytes())
        }
    );
    let foreign = &other.secret_subkeys[0].key;
    assert_eq!(
        keys.check(&clearsigned(text, foreign)),
        Verdict::UnknownSigner {
            signers: vec![hex::encode_upper(foreign.fingerprint().as_bytes())]
        }
    );
}
