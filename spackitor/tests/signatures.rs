//! `spackitor verify --trust`: who signed each spec, on the signed fixtures and on caches signed
//! by real Spack (layouts v2 and v3); key files that are no public keys; and `reindex` and
//! `clean` leaving a signed cache that Spack installs from with its signature checks on.

use std::path::Path;
use std::process::Output;

use model::spack::buildcache::Layout;
use model::spack::clearsign;
use serde_json::Value;
use spacktainerizah_tests::gpg::{self, Key, Keyring};
use spacktainerizah_tests::spack::{self, Spack};
use spacktainerizah_tests::{copy_dir, fixtures, open_store, walk};
use stores::cache;

mod support;
use support::*;

const V2_KEY: &str = "CBAB2C1032C6FF5078049EC0FA61D50C12CAD37E";
const V3_KEY: &str = "C6A723B8FCD8786D78D193D9676D0563A6CF525B";

fn spackitor(args: &[&str]) -> Output {
    spacktainerizah_tests::run_tool(env!("CARGO_BIN_EXE_spackitor"), args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `verify --output json --trust KEYS…` of the cache at `root`.
fn verify(root: &Path, keys: &[&Path]) -> Output {
    let root = root.display().to_string();
    let mut args = vec!["verify", "--output", "json", "--cache", &root, "--trust"];
    let keys: Vec<String> = keys.iter().map(|k| k.display().to_string()).collect();
    args.extend(keys.iter().map(String::as_str));
    spackitor(&args)
}

/// The per-spec signatures of a `verify --trust --output json` report.
fn signatures(out: &Output) -> Vec<Value> {
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    });
    assert_eq!(report["problems"], serde_json::json!([]), "{report:#}");
    report["signatures"].as_array().unwrap().clone()
}

/// The one signature of the spec document `key`.
fn of<'a>(sigs: &'a [Value], key: &str) -> &'a Value {
    sigs.iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("{key} in {sigs:#?}"))
}

#[test]
fn the_signed_fixtures_are_signed_by_their_keys_and_the_unsigned_reported() {
    let m = mirror("signed");
    let v2_pub = fixtures().join(format!(
        "spack/v2_layout/signed/build_cache/_pgp/{V2_KEY}.pub"
    ));
    let v3_pub = m
        .path()
        .join("blobs/sha256/3a/3a12130b61d83c0441cdf9e7ef085dea4d60d39f735a9968e14439f2252a2d1c");
    let out = verify(m.path(), &[&v2_pub, &v3_pub]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sigs = signatures(&out);
    assert_eq!(sigs.len(), 12);
    for s in &sigs {
        let key = if s["layout"] == "v2" { V2_KEY } else { V3_KEY };
        assert_eq!(s["verdict"], "trusted", "{s:#}");
        assert_eq!(s["fingerprint"], key, "{s:#}");
    }

    // Trusting only the v2 key: the v3 specs are signed by an unknown key, which is named.
    let out = verify(m.path(), &[&v2_pub]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for s in signatures(&out).iter().filter(|s| s["layout"] == "v3") {
        assert_eq!(s["verdict"], "unknown_signer", "{s:#}");
        assert_eq!(s["signers"], serde_json::json!([V3_KEY]), "{s:#}");
    }

    let unsigned = mirror("unsigned");
    let out = verify(unsigned.path(), &[&v2_pub]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sigs = signatures(&out);
    assert_eq!(sigs.len(), 12);
    assert!(sigs.iter().all(|s| s["verdict"] == "unsigned"), "{sigs:#?}");
    // The text report names each spec and what is wrong.
    let root = unsigned.path().display().to_string();
    let trust = v2_pub.display().to_string();
    let out = spackitor(&["verify", "--cache", &root, "--trust", &trust]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("libdwarf@20130729 /sk2gqqz") && l.contains("unsigned")),
        "{text}"
    );
    assert!(stderr(&out).contains("12 of 12 spec(s) not signed by a trusted key"));
}

#[test]
#[ignore = "NOT RUN: needs gpg (./scripts/test.sh installs it)"]
fn a_key_file_that_is_no_public_key_stops_the_run_naming_it() {
    let m = mirror("signed");
    let dir = tempfile::tempdir().unwrap();
    let key = Keyring::new().create("wrong", dir.path());
    let public = std::fs::read_to_string(&key.public).unwrap();
    let broken = dir.path().join("broken.asc");
    let mid = public.len() / 2;
    std::fs::write(
        &broken,
        format!("{}***{}", &public[..mid], &public[mid + 3..]),
    )
    .unwrap();
    let missing = dir.path().join("missing.asc");
    for (file, says) in [
        (&key.secret, "secret key"),
        (&broken, "not an OpenPGP public key"),
        (&missing, "reading key file"),
    ] {
        let out = verify(m.path(), &[&key.public, file]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(out.stdout.is_empty());
        // Nothing of the secret key is shown.
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
}

/// The body of a clear-signed document with one byte changed: the line break after its first
/// line becomes a space (still the same JSON to a parser).
fn tampered(doc: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(doc.to_vec()).unwrap();
    let body = text.find("\n\n").unwrap() + 2;
    let first_break = body + text[body..].find('\n').unwrap();
    let mut out = text.into_bytes();
    out[first_break] = b' ';
    out
}

/// Real Spack installs `spec` from the signed cache at `mirror` alone, trusting `key` and
/// checking signatures (`signed: true`, no `--no-check-signature`), and runs `gpg --verify`
/// on the way (the debug log names each command Spack runs; v3 verifies a temporary copy named
/// after no spec): the proof that the signatures were checked, not skipped.
fn spack_installs_signed(spack: &Spack, mirror: &Path, key: &Key, spec: &str) {
    let work = tempfile::tempdir().unwrap();
    let scope = spack.scope(&work.path().join("scope"), &work.path().join("opt"));
    std::fs::write(
        scope.join("mirrors.yaml"),
        format!(
            "mirrors:\n  cache:\n    url: file://{}\n    signed: true\n",
            mirror.display()
        ),
    )
    .unwrap();
    let home = work.path().join("home");
    spack.trust(&home, &key.public);
    let scope = scope.to_str().unwrap();
    let out = spack
        .command(&home)
        .args(spack::GPG_ENABLED)
        .args([
            "-d",
            "-C",
            scope,
            "install",
            "--cache-only",
            spec,
            "target=x86_64",
        ])
        .output()
        .unwrap();
    spack.stop_gpg(&home);
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{}: {log}", spack.version);
    assert!(
        log.lines()
            .any(|l| l.contains("gpg") && l.contains("--verify")),
        "{}: no gpg --verify while installing {spec}: {log}",
        spack.version
    );
    let found = spack.run(&home, &["-C", scope, "find", spec]);
    assert!(found.contains(spec), "{found}");
}

/// The hash of `name` in a mirror's index.
async fn hash_of(mirror: &Path, layout: Layout, name: &str) -> String {
    let store = open_store(&mirror.display().to_string()).await;
    let idx = cache::load_index(&store, layout).await.unwrap();
    idx.db
        .entries
        .values()
        .find(|e| &*e.node.name == name)
        .unwrap_or_else(|| panic!("{name} in the index"))
        .node
        .hash
        .to_string()
}

/// A copy of a signed mirror where one spec's body was changed, one is unsigned and one is
/// signed by another key: each reported as such.
fn altered_specs_are_reported(mirror: &Path, key: &Key, docs: &[String]) {
    let t = tempfile::tempdir().unwrap();
    copy_dir(mirror, t.path());
    let [changed, unsigned, other] = [&docs[0], &docs[1], &docs[2]];
    let read = |k: &str| std::fs::read(t.path().join(k)).unwrap();
    std::fs::write(t.path().join(changed), tampered(&read(changed))).unwrap();
    let body = clearsign::strip(&read(unsigned)).unwrap().into_owned();
    // v2: an unsigned spec file is `.spec.json`; v3 keeps the manifest's name.
    let unsigned_key = unsigned
        .strip_suffix(".sig")
        .unwrap_or(unsigned)
        .to_string();
    std::fs::remove_file(t.path().join(unsigned)).unwrap();
    std::fs::write(t.path().join(&unsigned_key), body).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let keyring = Keyring::new();
    let stranger = keyring.create("stranger", keys.path());
    let body = clearsign::strip(&read(other)).unwrap().into_owned();
    std::fs::write(t.path().join(other), keyring.clearsign(&stranger, &body)).unwrap();

    let out = verify(t.path(), &[&key.public]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sigs = signatures(&out);
    let bad = of(&sigs, changed);
    assert_eq!(bad["verdict"], "bad_signature", "{bad:#}");
    assert_eq!(bad["fingerprint"], key.fingerprint.as_str());
    assert_eq!(of(&sigs, &unsigned_key)["verdict"], "unsigned");
    let unknown = of(&sigs, other);
    assert_eq!(unknown["verdict"], "unknown_signer", "{unknown:#}");
    assert_eq!(
        unknown["signers"],
        serde_json::json!([stranger.signing_subkey])
    );
    assert_eq!(
        sigs.iter().filter(|s| s["verdict"] == "trusted").count(),
        sigs.len() - 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "NOT RUN: needs the shared Spack tools and gpg (./scripts/test.sh sets them up)"]
async fn caches_signed_by_real_spack_verify_and_stay_installable_after_reindex_and_clean() {
    for version in [spack::V0_23, spack::V1_0] {
        let Some(spack) = Spack::get(version) else {
            spack::not_run(
                "caches_signed_by_real_spack_verify_and_stay_installable_after_reindex_and_clean",
                "no real Spack in the shared tools",
            );
        };
        if !gpg::available() {
            spack::not_run("caches_signed_by_real_spack_…", "no gpg");
        }
        let (signed, key) = spack.signed_examples_mirror();
        let m = tempfile::tempdir().unwrap();
        copy_dir(&signed, m.path());

        // Every spec Spack pushed is signed by the key it was given.
        let out = verify(m.path(), &[&key.public]);
        assert_eq!(out.status.code(), Some(0), "{version}: {}", stderr(&out));
        let sigs = signatures(&out);
        assert!(sigs.len() >= 3, "{version}: {sigs:#?}");
        for s in &sigs {
            assert_eq!(s["verdict"], "trusted", "{version}: {s:#}");
            assert_eq!(s["fingerprint"], key.fingerprint.as_str(), "{version}");
            assert_eq!(s["layout"], spack.layout(), "{version}");
        }
        let docs: Vec<String> = sigs
            .iter()
            .map(|s| s["key"].as_str().unwrap().to_string())
            .collect();
        altered_specs_are_reported(m.path(), &key, &docs);

        // A rebuilt index.
        let layout = if spack.layout() == "v2" {
            Layout::V2
        } else {
            Layout::V3
        };
        let index = match layout {
            Layout::V2 => vec!["build_cache/index.json", "build_cache/index.json.hash"],
            Layout::V3 => vec!["v3/manifests/index/index.manifest.json"],
        };
        for f in index {
            std::fs::remove_file(m.path().join(f)).unwrap();
        }
        let cache = m.path().display().to_string();
        let out = spackitor(&["reindex", "--cache", &cache]);
        assert!(out.status.success(), "{version}: {}", stderr(&out));
        // Spack reading the rebuilt index is `safety.rs`'s reindex test; here: the signatures
        // are untouched. Spack installs from the signed cache once, after the clean below,
        // whose index is written the same way.
        let out = verify(m.path(), &[&key.public]);
        assert_eq!(out.status.code(), Some(0), "{version}: {}", stderr(&out));
        assert_eq!(signatures(&out).len(), sigs.len(), "{version}");

        // A clean that deletes greeter (too old) and rewrites the index.
        for f in walk(m.path()) {
            set_age(&f, 1.0);
        }
        let greeter = hash_of(m.path(), layout, "greeter").await;
        age_spec(m.path(), &greeter, 40.0);
        let r = report(&clean(m.path(), &["--max-age", "30"]));
        let gone: Vec<_> = deleted(&r).into_keys().map(|(_, h)| h).collect();
        assert_eq!(gone, [greeter], "{version}: {r:#}");
        let out = verify(m.path(), &[&key.public]);
        assert_eq!(out.status.code(), Some(0), "{version}: {}", stderr(&out));
        assert_eq!(signatures(&out).len(), sigs.len() - 1, "{version}");
        spack_installs_signed(&spack, m.path(), &key, "greetlib");
    }
}

#[test]
fn deep_trust_checks_tarballs_against_the_signed_checksum_not_an_unsigned_copy() {
    use sha2::Digest;
    let m = mirror("signed");
    let v2_pub = fixtures().join(format!(
        "spack/v2_layout/signed/build_cache/_pgp/{V2_KEY}.pub"
    ));
    let v3_pub = m
        .path()
        .join("blobs/sha256/3a/3a12130b61d83c0441cdf9e7ef085dea4d60d39f735a9968e14439f2252a2d1c");
    // The attack: another tarball, and an unsigned `.spec.json` (sorted before the `.sig`)
    // giving its checksum.
    let spec = "build_cache/test-debian6-core2-gcc-10.2.1-libelf-0.8.13-rqh2vuf6fqwkmipzgi2wjx352mq7y7ez.spec.json";
    let tarball = "build_cache/test-debian6-core2/gcc-10.2.1/libelf-0.8.13/test-debian6-core2-gcc-10.2.1-libelf-0.8.13-rqh2vuf6fqwkmipzgi2wjx352mq7y7ez.spack";
    let evil = b"not the tarball that was signed".to_vec();
    std::fs::write(m.path().join(tarball), &evil).unwrap();
    let signed = std::fs::read(m.path().join(format!("{spec}.sig"))).unwrap();
    let body = String::from_utf8(clearsign::strip(&signed).unwrap().into_owned()).unwrap();
    let good = "48c8aa769a62535f9d9f613722e3d3f5a48b91fde3c99a644b22f277a4502d75";
    assert!(body.contains(good));
    let forged = body.replace(good, &hex::encode(sha2::Sha256::digest(&evil)));
    std::fs::write(m.path().join(spec), forged).unwrap();

    let root = m.path().display().to_string();
    let (v2, v3) = (v2_pub.display().to_string(), v3_pub.display().to_string());
    let out = spackitor(&[
        "verify", "--output", "json", "--deep", "--cache", &root, "--trust", &v2, &v3,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problem = |key: &str| {
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == key)
            .unwrap_or_else(|| panic!("{key} in {report:#}"))["problem"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        problem(tarball).contains(&format!("expected {good}")),
        "{report:#}"
    );
    assert!(
        problem(spec).contains("differs from the signed text"),
        "{report:#}"
    );
    let sigs = report["signatures"].as_array().unwrap();
    assert_eq!(of(sigs, &format!("{spec}.sig"))["verdict"], "trusted");

    // Without --trust, --deep also reads the `.sig`, as Spack does.
    let out = spackitor(&["verify", "--output", "json", "--deep", "--cache", &root]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("expected {good}")), "{text}");
}

/// The fixture mirror with one v2 spec re-signed by `key` of `keyring`; the re-signed key.
fn resigned(keyring: &Keyring, key: &Key) -> (tempfile::TempDir, String) {
    let m = mirror("signed");
    let spec = "build_cache/test-debian6-core2-gcc-10.2.1-libelf-0.8.13-rqh2vuf6fqwkmipzgi2wjx352mq7y7ez.spec.json.sig";
    let body = clearsign::strip(&std::fs::read(m.path().join(spec)).unwrap())
        .unwrap()
        .into_owned();
    std::fs::write(m.path().join(spec), keyring.clearsign(key, &body)).unwrap();
    (m, spec.to_string())
}

#[test]
#[ignore = "NOT RUN: needs gpg (./scripts/test.sh installs it)"]
fn a_key_certified_by_others_is_trusted_and_a_revoked_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Keyring::new();
    let (alice, bob) = (
        keyring.create("alice", dir.path()),
        keyring.create("bob", dir.path()),
    );
    // `gpg --export` of a key others certified carries their certifications.
    keyring.certify(&bob, &alice);
    let (m, spec) = resigned(&keyring, &alice);
    let v2_pub = fixtures().join(format!(
        "spack/v2_layout/signed/build_cache/_pgp/{V2_KEY}.pub"
    ));
    let v3_pub = m
        .path()
        .join("blobs/sha256/3a/3a12130b61d83c0441cdf9e7ef085dea4d60d39f735a9968e14439f2252a2d1c");
    let out = verify(m.path(), &[&alice.public, &v2_pub, &v3_pub]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sigs = signatures(&out);
    assert_eq!(of(&sigs, &spec)["fingerprint"], alice.fingerprint.as_str());

    // Revoked (GnuPG's own revocation certificate imported): its signatures no longer count,
    // and the report names it.
    keyring.revoke(&alice);
    let out = verify(m.path(), &[&alice.public, &v2_pub, &v3_pub]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sigs = signatures(&out);
    let s = of(&sigs, &spec);
    assert_eq!(s["verdict"], "revoked", "{s:#}");
    assert_eq!(s["fingerprint"], alice.fingerprint.as_str(), "{s:#}");
    let root = m.path().display().to_string();
    let keys = [&alice.public, &v2_pub, &v3_pub].map(|k| k.display().to_string());
    let mut args = vec!["verify", "--cache", &root, "--trust"];
    args.extend(keys.iter().map(String::as_str));
    let text = String::from_utf8_lossy(&spackitor(&args).stdout).into_owned();
    assert!(
        text.contains(&format!("signed by revoked key {}", alice.fingerprint)),
        "{text}"
    );
}
