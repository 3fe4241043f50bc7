//! `spackah provenance` run as a user runs it: the SBOM and provenance of a SIF listed and
//! extracted, a SIF without them and a file that is no SIF named with their exit codes; against
//! the real registry (no referrers API: the tag schema), those attached to an image after its
//! push, and an image that does not exist.

use std::path::Path;
use std::process::Output;

use model::attest::{Document, DocumentKind};
use model::sif::format::{SifSpec, write};
use oci::registry::RegistryClient;
use spacktainerizah_tests::{push_test_image, registry, run_tool, unique_name};

fn documents() -> Vec<Document> {
    vec![
        Document {
            kind: DocumentKind::Sbom,
            bytes: br#"{"spdxVersion":"SPDX-2.3","name":"pythons"}"#.to_vec(),
        },
        Document {
            kind: DocumentKind::Provenance,
            bytes: br#"{"_type":"https://in-toto.io/Statement/v1"}"#.to_vec(),
        },
    ]
}

fn spackah<I: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = I>) -> Output {
    run_tool(env!("CARGO_BIN_EXE_spackah"), args)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A SIF at `path` carrying `documents` (its squashfs a stand-in: only the header is checked).
fn sif(path: &Path, documents: Vec<Document>) {
    let squashfs = path.with_extension("squashfs");
    let mut bytes = vec![0u8; 4096];
    bytes[..4].copy_from_slice(b"hsqs");
    bytes[20] = 1;
    std::fs::write(&squashfs, bytes).unwrap();
    let spec = SifSpec {
        arch: "amd64".into(),
        deffile: "Bootstrap: docker\nFrom: x/y:1\n".into(),
        squashfs,
        documents,
        ..SifSpec::default()
    };
    write(&spec, &mut std::fs::File::create(path).unwrap(), path).unwrap();
}

/// Each document listed (kind, type, digest, size) and extracted under its file name.
fn check_listed_and_extracted(target: &str, dir: &Path) {
    let out = spackah(["provenance", target, "--extract", dir.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for doc in documents() {
        let line = stdout
            .lines()
            .find(|l| l.contains(doc.kind.file_name()))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(line.contains(doc.kind.artifact_type()), "{line}");
        assert!(line.contains(&doc.bytes.len().to_string()), "{line}");
        assert!(line.contains("sha256:"), "{line}");
        assert_eq!(
            std::fs::read(dir.join(doc.kind.file_name())).unwrap(),
            doc.bytes
        );
    }
    let json = spackah(["provenance", target, "--output", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(listed[0]["kind"], "sbom");
    assert_eq!(listed[1]["artifact_type"], "application/vnd.in-toto+json");
}

#[test]
fn a_sifs_documents_are_listed_and_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pythons.sif");
    sif(&path, documents());
    check_listed_and_extracted(path.to_str().unwrap(), &dir.path().join("out"));
    // A second extraction into the same folder overwrites nothing and says why.
    let sbom = dir.path().join("out/sbom.spdx.json");
    std::fs::write(&sbom, b"kept").unwrap();
    let out = spackah([
        "provenance",
        path.to_str().unwrap(),
        "--extract",
        dir.path().join("out").to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("sbom.spdx.json exists"), "{stderr}");
    assert_eq!(std::fs::read(&sbom).unwrap(), b"kept");
}

#[test]
fn a_sif_without_documents_and_a_file_that_is_no_sif_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("bare.sif");
    sif(&bare, Vec::new());
    let out = spackah(["provenance", bare.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("bare.sif carries no SBOM or provenance"),
        "{stderr}"
    );
    let junk = dir.path().join("junk.sif");
    std::fs::write(&junk, b"not a SIF at all, just text").unwrap();
    let missing = dir.path().join("missing.sif");
    for (path, why) in [(&junk, "not a SIF file"), (&missing, "No such file")] {
        let out = spackah(["provenance", path.to_str().unwrap()]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(stderr.contains(name) && stderr.contains(why), "{stderr}");
    }
}

#[test]
#[ignore = "NOT RUN: needs the test registry, umoci and skopeo (./scripts/test.sh starts them)"]
fn an_images_attached_documents_are_listed_and_extracted() {
    let reg = registry();
    let repo = unique_name("provenance");
    push_test_image(&reg, &repo, "v1", "amd64", &[], None);
    let image = format!("{reg}/{repo}:v1");
    let out = spackah(["provenance", image.as_str()]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).1.contains("carries no SBOM or provenance"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = RegistryClient::new(&reg, None).unwrap();
        spackah::publish::attach_documents(&client, &image.parse().unwrap(), "amd64", &documents())
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    check_listed_and_extracted(&image, dir.path());

    let out = spackah(["provenance", &format!("{reg}/{repo}:nope")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("no such image: {reg}/{repo}:nope")),
        "{stderr}"
    );
}
