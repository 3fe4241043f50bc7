//! The build provenance of a container image: an in-toto Statement v1 whose predicate is SLSA
//! Provenance v1.
//!
//! The Statement (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>):
//! `_type` `https://in-toto.io/Statement/v1`, `subject` a list of ResourceDescriptors each with
//! a `digest`, `predicateType`, `predicate`. A ResourceDescriptor
//! (`spec/v1/resource_descriptor.md`) has at least one of `uri`, `digest`, `content`; a digest
//! maps an algorithm (`sha256`, `gitCommit`) to lowercase hex. The predicate
//! (<https://slsa.dev/spec/v1.0/provenance>): `buildDefinition` with `buildType` (a URI
//! documenting how to read the rest, required), `externalParameters` (what the user controls,
//! required), `internalParameters` and `resolvedDependencies`; `runDetails` with `builder.id`
//! (required) and `metadata.invocationId`. Times are not recorded: the document is a pure
//! function of its inputs.

use serde_json::{Value, json};

use super::sbom::PROJECT_URL;
use super::{AttestError, Document, DocumentKind, oci_purl, sha256_hex};
use crate::reference::ImageRef;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// Our build type: a `spackah build` of one container definition.
pub fn build_type() -> String {
    format!("{PROJECT_URL}/build-types/spackah-build/v1")
}

/// An image and its manifest digest (`sha256:…`).
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    pub image: &'a ImageRef,
    pub digest: &'a str,
}

/// The CI run that built it, from GitLab's predefined variables (`CI_PIPELINE_URL`,
/// `CI_PIPELINE_ID`, `CI_JOB_URL`); all empty outside CI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    pub pipeline_url: Option<String>,
    pub pipeline_id: Option<String>,
    pub job_url: Option<String>,
}

/// What the provenance of one image is made from.
#[derive(Debug, Clone, Copy)]
pub struct ProvenanceInput<'a> {
    /// The subject: the image built.
    pub subject: Image<'a>,
    pub container: &'a str,
    pub arch: &'a str,
    /// The container definition, relative to the repository, and its sha256.
    pub definition_path: &'a str,
    pub definition_sha256: &'a str,
    /// The checksum the image is labelled with (definition, epilogue, copied files).
    pub definition_checksum: &'a str,
    /// The concretized environment installed: sha256 of its `spack.lock`.
    pub lockfile_sha256: &'a str,
    pub build_cache: &'a str,
    /// The Spack and package-repository trees of the builder, as its labels give them: a git
    /// commit, or `sha256:<archive checksum>`.
    pub spack: &'a str,
    pub spack_packages: Option<&'a str>,
    pub builder: Image<'a>,
    pub runtime: Image<'a>,
    /// The tool that built it, `name-version` (`spackah-0.1.0`).
    pub tool: &'a str,
    pub invocation: &'a Invocation,
}

/// The in-toto Statement (SLSA Provenance v1) of `input`.
pub fn provenance(input: &ProvenanceInput) -> Result<Document, AttestError> {
    let subject_hex = sha256_hex(input.subject.digest, "image digest")?;
    let definition_digest = format!("sha256:{}", input.definition_sha256);
    let definition_hex = sha256_hex(&definition_digest, "definition sha256")?;
    let mut dependencies = vec![tree("spack", input.spack)?];
    if let Some(p) = input.spack_packages {
        dependencies.push(tree("spack-packages", p)?);
    }
    dependencies.push(image("builder", input.builder)?);
    dependencies.push(image("runtime", input.runtime)?);
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": format!("{}/{}", input.subject.image.registry, input.subject.image.repository),
            "digest": {"sha256": subject_hex},
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type(),
                "externalParameters": {
                    "container": input.container,
                    "arch": input.arch,
                    "definition": {
                        "path": input.definition_path,
                        "digest": {"sha256": definition_hex},
                    },
                },
                "internalParameters": internal(input),
                "resolvedDependencies": dependencies,
            },
            "runDetails": run_details(input),
        },
    });
    Ok(Document {
        kind: DocumentKind::Provenance,
        bytes: serde_json::to_vec_pretty(&statement).expect("a JSON value serializes"),
    })
}

fn internal(input: &ProvenanceInput) -> Value {
    let mut v = json!({
        "lockfileSha256": input.lockfile_sha256,
        "definitionChecksum": input.definition_checksum,
        "buildCache": input.build_cache,
        "tag": input.subject.image.reference,
    });
    let i = input.invocation;
    for (key, value) in [
        ("pipelineUrl", &i.pipeline_url),
        ("pipelineId", &i.pipeline_id),
        ("jobUrl", &i.job_url),
    ] {
        if let Some(value) = value {
            v[key] = json!(value);
        }
    }
    v
}

/// The builder is the tool at its version; the invocation is the CI job, else its pipeline.
fn run_details(input: &ProvenanceInput) -> Value {
    let (name, version) = input.tool.rsplit_once('-').unwrap_or((input.tool, ""));
    let mut run = json!({
        "builder": {
            "id": format!("{PROJECT_URL}/builders/{name}"),
            "version": {name: version},
        },
    });
    let i = input.invocation;
    if let Some(id) = i.job_url.as_ref().or(i.pipeline_url.as_ref()) {
        run["metadata"] = json!({"invocationId": id});
    }
    run
}

/// A Spack or package-repository tree: a git commit (`gitCommit`, 40 or 64 hex digits) or an
/// archive by its sha256.
fn tree(name: &str, id: &str) -> Result<Value, AttestError> {
    if id.starts_with("sha256:") {
        let hex = sha256_hex(id, name)?;
        return Ok(json!({"name": name, "digest": {"sha256": hex}}));
    }
    let is_commit =
        matches!(id.len(), 40 | 64) && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !is_commit {
        return Err(AttestError {
            what: format!("{name} tree"),
            value: id.into(),
            message: "neither a git commit nor `sha256:<archive checksum>`".into(),
        });
    }
    Ok(json!({"name": name, "digest": {"gitCommit": id}}))
}

/// A base image by its tag and manifest digest; the URI is the image's purl (type `oci`).
fn image(name: &str, i: Image) -> Result<Value, AttestError> {
    let hex = sha256_hex(i.digest, &format!("{name} image digest"))?;
    Ok(json!({
        "name": name,
        "uri": oci_purl(i.image, hex),
        "digest": {"sha256": hex},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_with<'a>(
        refs: &'a [ImageRef; 3],
        digests: &'a [String; 3],
        invocation: &'a Invocation,
        spack: &'a str,
    ) -> ProvenanceInput<'a> {
        ProvenanceInput {
            subject: Image {
                image: &refs[0],
                digest: &digests[0],
            },
            container: "greeter",
            arch: "amd64",
            definition_path: "container_definitions/amd64/greeter.yaml",
            definition_sha256: &digests[0][7..],
            definition_checksum: "c",
            lockfile_sha256: "l",
            build_cache: "s3://cache",
            spack,
            spack_packages: None,
            builder: Image {
                image: &refs[1],
                digest: &digests[1],
            },
            runtime: Image {
                image: &refs[2],
                digest: &digests[2],
            },
            tool: "spackah-0.1.0",
            invocation,
        }
    }

    #[test]
    fn the_statement_binds_the_image_to_its_inputs() {
        let refs = [
            "r.example/c/greeter:1.0".parse().unwrap(),
            "r.example/c/builder:2026.12".parse().unwrap(),
            "r.example/c/runtime:2026.12".parse().unwrap(),
        ];
        let digests = ["a", "b", "c"].map(|c| format!("sha256:{}", c.repeat(64)));
        let invocation = Invocation {
            pipeline_url: Some("https://gitlab.example/p/-/pipelines/7".into()),
            pipeline_id: Some("7".into()),
            job_url: None,
        };
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let d = provenance(&input_with(&refs, &digests, &invocation, commit)).unwrap();
        assert_eq!(d.kind, DocumentKind::Provenance);
        let v: Value = serde_json::from_slice(&d.bytes).unwrap();
        assert_eq!(v["_type"], STATEMENT_TYPE);
        assert_eq!(v["subject"][0]["name"], "r.example/c/greeter");
        assert_eq!(v["subject"][0]["digest"]["sha256"], "a".repeat(64));
        let p = &v["predicate"];
        let deps = p["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        assert_eq!(deps[0]["digest"]["gitCommit"], commit);
        assert_eq!(deps[2]["digest"]["sha256"], "c".repeat(64));
        assert_eq!(
            p["runDetails"]["metadata"]["invocationId"],
            "https://gitlab.example/p/-/pipelines/7"
        );
        assert_eq!(
            p["buildDefinition"]["internalParameters"]["pipelineId"],
            "7"
        );
        // The same inputs, the same bytes.
        let again = provenance(&input_with(&refs, &digests, &invocation, commit)).unwrap();
        assert_eq!(d.bytes, again.bytes);
        let err = provenance(&input_with(&refs, &digests, &invocation, "main"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("spack") && err.contains("main"), "{err}");
    }
}
