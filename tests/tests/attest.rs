//! The documents an image carries, checked by third-party tools rather than our own reader: the
//! greeter's SBOM (its real lockfile, made by Spack 1.0.2, and the real dpkg database of the
//! test OS image read through the registry) passes the SPDX project's validator
//! (`pyspdxtools -i`) and the SPDX 2.3 JSON schema; its provenance parses into the in-toto
//! project's own Statement v1 and SLSA Provenance v1 types (`in-toto-attestation`, generated
//! from the upstream protobuf definitions: in-toto and SLSA publish no JSON schema) and passes
//! their validation. Malformed inputs are errors naming the file.

use std::path::{Path, PathBuf};
use std::process::Command;

use model::attest::dpkg::{self, OsPackage};
use model::attest::provenance::{self, Image, Invocation, ProvenanceInput};
use model::attest::sbom::{self, OsPackages, SbomInput};
use model::attest::{Document, DocumentKind};
use model::spack::lockfile::Lockfile;
use oci::image_file;
use oci::registry::{ImageRef, RegistryClient};
use spacktainerizah_tests::{fixtures, os_image};

const GREETER_LOCK: &str = "spack/lockfiles/greeter__spack-1.0.2.lock";

/// The test virtualenv's Python (`SPACKTAINERIZAH_TEST_PYTHON`, set by the test script), with
/// spdx-tools, jsonschema and in-toto-attestation.
fn python() -> PathBuf {
    PathBuf::from(std::env::var("SPACKTAINERIZAH_TEST_PYTHON").expect(
        "NOT RUN: SPACKTAINERIZAH_TEST_PYTHON is not set: ./scripts/test.sh installs the \
         virtualenv with pyspdxtools",
    ))
}

/// Run `program args`; its exit status and both outputs.
fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The installed packages of the test OS image, read from its dpkg database in the registry,
/// and the image's manifest digest.
async fn os_packages(image: &ImageRef) -> (Vec<OsPackage>, String) {
    let client = RegistryClient::new(&image.registry, None).unwrap();
    let resolved = client.resolve(image, "amd64").await.unwrap();
    let status = image_file::read_file(&client, image, &resolved, dpkg::STATUS_PATH)
        .await
        .unwrap()
        .expect("the OS image has a dpkg database");
    let packages = dpkg::parse_status(
        &format!("{image}:{}", dpkg::STATUS_PATH),
        &String::from_utf8(status).unwrap(),
    )
    .unwrap();
    (packages, resolved.manifest.digest)
}

fn write(dir: &Path, d: &Document) -> PathBuf {
    let path = dir.join(d.kind.file_name());
    std::fs::write(&path, &d.bytes).unwrap();
    path
}

/// The validators the end-to-end run uses too: pyspdxtools, the SPDX 2.3 JSON schema, in-toto's
/// own types (`scripts/check-documents.py`) on the documents in `dir`.
fn check_documents(python: &Path, dir: &Path) -> (bool, String) {
    let script = fixtures().join("../../scripts/check-documents.py");
    run(python, &[script.to_str().unwrap(), dir.to_str().unwrap()])
}

#[tokio::test]
#[ignore = "NOT RUN: needs pyspdxtools (./scripts/test.sh installs it) and the test registry's OS image"]
async fn the_greeter_documents_pass_the_spdx_and_in_toto_validators() {
    let python = python();
    let lock = Lockfile::read(&fixtures().join(GREETER_LOCK)).unwrap();
    let os: ImageRef = os_image().parse().unwrap();
    let (packages, os_digest) = os_packages(&os).await;
    assert!(packages.len() > 50, "a Debian base has its packages");
    let image: ImageRef = "registry.example.org/hpc/spacktainers/greeter:1.0"
        .parse()
        .unwrap();
    let digest = format!("sha256:{}", "1".repeat(64));
    let created = model::time::rfc3339(std::time::SystemTime::now());
    let sbom = sbom::sbom(&SbomInput {
        image: &image,
        digest: &digest,
        created: &created,
        creator: "spackah-0.1.0",
        lockfile: &lock,
        build_cache: "s3://spack-build-cache/amd64",
        os: OsPackages {
            image: &os,
            digest: &os_digest,
            distro: "debian",
            packages: &packages,
            added: &[],
        },
    })
    .unwrap();
    let provenance = greeter_provenance(&image, &digest, &os, &os_digest, &lock);
    let dir = tempfile::tempdir().unwrap();
    let sbom_path = write(dir.path(), &sbom);
    let provenance_path = write(dir.path(), &provenance);
    println!(
        "greeter SBOM: {} packages ({} Spack, {} dpkg, 2 images), {} bytes; provenance {} bytes",
        lock.specs.len() + packages.len() + 2,
        lock.specs.len(),
        packages.len(),
        sbom.bytes.len(),
        provenance.bytes.len()
    );

    let (ok, out) = check_documents(&python, dir.path());
    assert!(ok, "{out}");
    assert!(
        out.contains("valid SPDX 2.3") && out.contains("valid in-toto Statement v1"),
        "{out}"
    );
    // The validators do find faults: a package without its SPDXID, a statement with a field
    // in-toto does not know.
    let mut broken: serde_json::Value = serde_json::from_slice(&sbom.bytes).unwrap();
    broken["packages"][0]
        .as_object_mut()
        .unwrap()
        .remove("SPDXID");
    std::fs::write(&sbom_path, serde_json::to_vec(&broken).unwrap()).unwrap();
    let (ok, out) = check_documents(&python, dir.path());
    assert!(
        !ok && out.contains("INVALID") && out.contains("sbom"),
        "{out}"
    );
    std::fs::write(&sbom_path, &sbom.bytes).unwrap();
    let mut broken: serde_json::Value = serde_json::from_slice(&provenance.bytes).unwrap();
    broken["predicate"]["buildDefinition"]["unknownField"] = "x".into();
    std::fs::write(&provenance_path, serde_json::to_vec(&broken).unwrap()).unwrap();
    let (ok, out) = check_documents(&python, dir.path());
    assert!(
        !ok && out.contains("INVALID") && out.contains("provenance"),
        "{out}"
    );

    check_sbom_content(&sbom, &lock, &packages);
}

/// The SBOM holds every spec and OS package once, and every dependency edge of the lockfile
/// as a relationship between the two specs.
fn check_sbom_content(sbom: &Document, lock: &Lockfile, packages: &[OsPackage]) {
    let doc: serde_json::Value = serde_json::from_slice(&sbom.bytes).unwrap();
    let listed = doc["packages"].as_array().unwrap();
    assert_eq!(listed.len(), lock.specs.len() + packages.len() + 2);
    let id = |hash: &str| {
        let p = listed
            .iter()
            .find(|p| {
                p["comment"]
                    .as_str()
                    .is_some_and(|c| c.ends_with(&format!("/{hash}")))
            })
            .unwrap_or_else(|| panic!("no package for {hash}"));
        p["SPDXID"].as_str().unwrap().to_string()
    };
    let relationships = doc["relationships"].as_array().unwrap();
    let mut edges = 0;
    for node in lock.specs.values() {
        for e in &node.dependencies {
            let (a, b) = (id(&node.hash), id(&e.hash));
            assert!(
                relationships.iter().any(|r| {
                    let (from, to) = (&r["spdxElementId"], &r["relatedSpdxElement"]);
                    (from == a.as_str() && to == b.as_str())
                        || (from == b.as_str() && to == a.as_str())
                }),
                "no relationship for {} -> {}",
                node.name,
                e.name
            );
            edges += 1;
        }
    }
    assert!(edges >= 8, "the greeter's lockfile has its edges ({edges})");
}

fn greeter_provenance(
    image: &ImageRef,
    digest: &str,
    os: &ImageRef,
    os_digest: &str,
    lock: &Lockfile,
) -> Document {
    let builder: ImageRef = "registry.example.org/hpc/spacktainers/builder:2026.12.06"
        .parse()
        .unwrap();
    let definition = std::fs::read(
        spacktainerizah_tests::repo_root()
            .join("examples/container_definitions/amd64/greeter.yaml"),
    )
    .unwrap();
    let invocation = Invocation {
        pipeline_url: Some("https://gitlab.example.org/hpc/spacktainers/-/pipelines/42".into()),
        pipeline_id: Some("42".into()),
        job_url: Some("https://gitlab.example.org/hpc/spacktainers/-/jobs/4242".into()),
    };
    let d = provenance::provenance(&ProvenanceInput {
        subject: Image { image, digest },
        container: "greeter",
        arch: "amd64",
        definition_path: "container_definitions/amd64/greeter.yaml",
        definition_sha256: &model::checksum::sha256_hex(&definition),
        definition_checksum: "0".repeat(64).as_str(),
        lockfile_sha256: &lock.sha256,
        build_cache: "s3://spack-build-cache/amd64",
        spack: "6e6a9d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e",
        spack_packages: Some(
            "sha256:2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80912",
        ),
        builder: Image {
            image: &builder,
            digest: &format!("sha256:{}", "2".repeat(64)),
        },
        runtime: Image {
            image: os,
            digest: os_digest,
        },
        tool: "spackah-0.1.0",
        invocation: &invocation,
    })
    .unwrap();
    assert_eq!(d.kind, DocumentKind::Provenance);
    d
}

#[test]
fn a_malformed_lockfile_or_dpkg_database_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("spack.lock");
    let text = std::fs::read_to_string(fixtures().join(GREETER_LOCK)).unwrap();
    std::fs::write(&lock, &text[..text.len() / 2]).unwrap();
    let e = Lockfile::read(&lock).unwrap_err().to_string();
    assert!(e.contains(&lock.display().to_string()), "{e}");
    let e = dpkg::parse_status(
        "runtime:1/var/lib/dpkg/status",
        "Package: a\nStatus: half\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("runtime:1/var/lib/dpkg/status"), "{e}");
}
