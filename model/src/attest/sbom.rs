//! The SBOM of a container image as an SPDX 2.3 JSON document: the image, every Spack package
//! of its concretized `spack.lock` with its dependencies as relationships, and the OS packages
//! of its runtime base image.
//!
//! Field rules are SPDX 2.3's (<https://spdx.github.io/spdx-spec/v2.3/>): creation information
//! (§6: `spdxVersion`, `dataLicense` `CC0-1.0`, `SPDXID` `SPDXRef-DOCUMENT`, a unique absolute
//! `documentNamespace` URI without `#`, `created` as `YYYY-MM-DDThh:mm:ssZ`, creators
//! `Tool: name-version`), packages (§7: `SPDXRef-` + `[A-Za-z0-9.-]+` identifiers,
//! `downloadLocation` `NOASSERTION` when unknown, `filesAnalyzed: false` as no file is listed,
//! external references `PACKAGE-MANAGER purl` or `OTHER` with a locator free of spaces), and
//! relationships (§11: `DESCRIBES`, `CONTAINS`, `DEPENDS_ON`, `BUILD_DEPENDENCY_OF`,
//! `TEST_DEPENDENCY_OF`). The output is deterministic: the same inputs give the same bytes.

use serde_json::{Value, json};

use super::dpkg::OsPackage;
use super::{
    AttestError, Document, DocumentKind, check_created, oci_purl, purl_encode, sha256_hex,
};
use crate::reference::ImageRef;
use crate::spack::lockfile::Lockfile;
use crate::spack::spec::{DepTypes, Edge, SpecNode};

/// Where our document namespaces and build types live: the project's URL (the workspace's
/// `repository`).
pub const PROJECT_URL: &str = env!("CARGO_PKG_REPOSITORY");
// Without it, namespaces would be relative paths, which SPDX refuses.
const _: () = assert!(!PROJECT_URL.is_empty());

/// The OS packages of an image and the distribution they come from.
#[derive(Debug, Clone, Copy)]
pub struct OsPackages<'a> {
    /// The image they were read from and its manifest digest (`sha256:…`).
    pub image: &'a ImageRef,
    pub digest: &'a str,
    /// The distribution's `ID` (`/etc/os-release`): the purl namespace, `debian`, `ubuntu`.
    pub distro: &'a str,
    pub packages: &'a [OsPackage],
    /// Those the image itself has beyond the runtime's (installed by the definition's
    /// `Dockerfile.epilogue`): in the image's own database, not the runtime's.
    pub added: &'a [OsPackage],
}

/// What the SBOM of one image is made from.
#[derive(Debug, Clone, Copy)]
pub struct SbomInput<'a> {
    /// The image described (its tag, for the name) and its manifest digest (`sha256:…`).
    pub image: &'a ImageRef,
    pub digest: &'a str,
    /// When the document is made, `YYYY-MM-DDThh:mm:ssZ`: given, never read from the clock,
    /// so the same inputs make the same document.
    pub created: &'a str,
    /// The tool writing it, `name-version`.
    pub creator: &'a str,
    pub lockfile: &'a Lockfile,
    /// The build cache the Spack packages were installed from.
    pub build_cache: &'a str,
    pub os: OsPackages<'a>,
}

const IMAGE_ID: &str = "SPDXRef-Image";
const RUNTIME_ID: &str = "SPDXRef-RuntimeImage";

/// The SPDX 2.3 JSON SBOM of `input`.
pub fn sbom(input: &SbomInput) -> Result<Document, AttestError> {
    let hex = sha256_hex(input.digest, "image digest")?;
    check_created(input.created)?;
    let runtime_hex = sha256_hex(input.os.digest, "runtime image digest")?;
    let lock = input.lockfile;
    let mut runtime = image_package(input.os.image, runtime_hex, Some(RUNTIME_ID));
    if input.os.packages.is_empty() {
        // Said, not left to look like an image without packages.
        runtime["comment"] = json!(
            "the runtime base image the container's software was copied onto; it has no dpkg database, so its OS packages are not listed (rpm databases are not read)"
        );
    }
    let mut packages = vec![image_package(input.image, hex, None), runtime];
    let mut specs: Vec<&SpecNode> = lock.specs.values().collect();
    specs.sort_by(|a, b| (&a.name, &a.hash).cmp(&(&b.name, &b.hash)));
    packages.extend(
        specs
            .iter()
            .map(|n| spack_package(n, lock, input.build_cache)),
    );
    packages.extend(
        input
            .os
            .packages
            .iter()
            .chain(input.os.added)
            .map(|p| os_package(p, input.os.distro)),
    );
    let doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": input.image.to_string(),
        "documentNamespace": format!(
            "{PROJECT_URL}/spdx/{}/{}/sha256-{hex}",
            input.image.registry, input.image.repository
        ),
        "creationInfo": {
            "created": input.created,
            "creators": [format!("Tool: {}", input.creator)],
        },
        "documentDescribes": [IMAGE_ID],
        "packages": packages,
        "relationships": relationships(lock, &specs, &input.os),
    });
    Ok(Document {
        kind: DocumentKind::Sbom,
        bytes: serde_json::to_vec_pretty(&doc).expect("a JSON value serializes"),
    })
}

/// `s` made an SPDX identifier part: characters SPDX does not allow in one (`+`, `_`, `~`…)
/// are written `-X<hex>-`, upper case, which no lower-case package name holds by itself.
fn id_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            out.push(c);
        } else {
            out.push_str(&format!("-X{:X}-", c as u32));
        }
    }
    out
}

fn spack_id(n: &SpecNode) -> String {
    format!("SPDXRef-Spack-{}-{}", id_part(&n.name), n.hash)
}

fn os_id(p: &OsPackage) -> String {
    format!(
        "SPDXRef-Deb-{}-{}",
        id_part(&p.name),
        id_part(&p.architecture)
    )
}

/// The package of an image: its repository, tag and manifest digest, and its purl.
fn image_package(image: &ImageRef, hex: &str, id: Option<&str>) -> Value {
    let purl = oci_purl(image, hex);
    let mut p = json!({
        "name": format!("{}/{}", image.registry, image.repository),
        "SPDXID": id.unwrap_or(IMAGE_ID),
        "versionInfo": image.reference,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl,
        }],
        "primaryPackagePurpose": "CONTAINER",
    });
    if id.is_some() {
        p["comment"] = json!("the runtime base image the container's software was copied onto");
    }
    p
}

/// A Spack package: its version, and its whole concrete spec (variants, compiler,
/// architecture, DAG hash) in Spack's spec syntax; built ones come from the build cache,
/// externals from the system.
fn spack_package(n: &SpecNode, lock: &Lockfile, build_cache: &str) -> Value {
    let lookup = |h: &str| {
        lock.specs
            .get(h)
            .map(|d| (d.name.clone(), d.version.clone()))
    };
    let mut spec = format!("{}@{}", n.name, n.version);
    for v in &n.traits.variants {
        spec.push(' ');
        spec.push_str(v);
    }
    let compiler = n.compiler_shown(lookup);
    if compiler != "-" {
        let compiler = match compiler.starts_with('%') {
            true => compiler,
            false => format!("%{compiler}"),
        };
        spec.push_str(&format!(" {compiler}"));
    }
    spec.push_str(&format!(" arch={} /{}", n.architecture(), n.hash));
    let mut refs = vec![json!({
        "referenceCategory": "OTHER",
        "referenceType": "spack-dag-hash",
        "referenceLocator": &*n.hash,
    })];
    let source = if n.traits.external {
        "a Spack external: found on the system, not built by Spack".to_string()
    } else {
        refs.push(json!({
            "referenceCategory": "OTHER",
            "referenceType": "spack-build-cache",
            "referenceLocator": build_cache,
        }));
        format!("built by Spack, installed from the build cache {build_cache}")
    };
    json!({
        "name": &*n.name,
        "SPDXID": spack_id(n),
        "versionInfo": &*n.version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "sourceInfo": source,
        "comment": format!("Spack spec: {spec}"),
        "externalRefs": refs,
    })
}

/// An OS package, with a purl of type `deb` whose `upstream` qualifier names its source
/// package (<https://github.com/package-url/purl-spec/blob/main/PURL-TYPES.rst>, `deb`).
fn os_package(p: &OsPackage, distro: &str) -> Value {
    let mut upstream = p.source.clone();
    if let Some(v) = &p.source_version {
        upstream.push_str(&format!("@{v}"));
    }
    let purl = format!(
        "pkg:deb/{}/{}@{}?arch={}&upstream={}",
        purl_encode(distro),
        purl_encode(&p.name),
        purl_encode(&p.version),
        purl_encode(&p.architecture),
        purl_encode(&upstream),
    );
    let source = match &p.source_version {
        Some(v) => format!("built from the source package {} {v}", p.source),
        None => format!("built from the source package {}", p.source),
    };
    json!({
        "name": p.name,
        "SPDXID": os_id(p),
        "versionInfo": p.version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "sourceInfo": source,
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl,
        }],
    })
}

fn relationship(from: &str, kind: &str, to: &str, comment: Option<String>) -> Value {
    let mut r = json!({
        "spdxElementId": from,
        "relationshipType": kind,
        "relatedSpdxElement": to,
    });
    if let Some(c) = comment {
        r["comment"] = json!(c);
    }
    r
}

/// The document describes the image; the image contains the roots of the lockfile and its
/// runtime base, which contains the OS packages; every dependency edge of the lockfile is one
/// relationship (see [`edge_relationship`]).
fn relationships(lock: &Lockfile, specs: &[&SpecNode], os: &OsPackages) -> Vec<Value> {
    let mut out = vec![relationship(
        "SPDXRef-DOCUMENT",
        "DESCRIBES",
        IMAGE_ID,
        None,
    )];
    let mut roots: Vec<&SpecNode> = lock
        .roots
        .iter()
        .filter_map(|r| lock.specs.get(r.hash.as_str()))
        .collect();
    roots.sort_by(|a, b| (&a.name, &a.hash).cmp(&(&b.name, &b.hash)));
    roots.dedup_by(|a, b| a.hash == b.hash);
    out.extend(
        roots
            .iter()
            .map(|n| relationship(IMAGE_ID, "CONTAINS", &spack_id(n), None)),
    );
    out.push(relationship(IMAGE_ID, "CONTAINS", RUNTIME_ID, None));
    out.extend(
        os.packages
            .iter()
            .map(|p| relationship(RUNTIME_ID, "CONTAINS", &os_id(p), None)),
    );
    out.extend(
        os.added
            .iter()
            .map(|p| relationship(IMAGE_ID, "CONTAINS", &os_id(p), None)),
    );
    for n in specs {
        let mut edges: Vec<&Edge> = n.dependencies.iter().collect();
        edges.sort_by(|a, b| (&a.name, &a.hash).cmp(&(&b.name, &b.hash)));
        for e in edges {
            if let Some(d) = lock.specs.get(&*e.hash) {
                out.push(edge_relationship(n, d, e));
            }
        }
    }
    out
}

/// One dependency edge: `DEPENDS_ON` when the dependent needs it installed (link or run),
/// else `BUILD_DEPENDENCY_OF` or `TEST_DEPENDENCY_OF` from the dependency; the comment keeps
/// Spack's dependency types and the virtuals the edge provides.
fn edge_relationship(from: &SpecNode, to: &SpecNode, e: &Edge) -> Value {
    let mut comment = format!(
        "Spack dependency types: {}",
        e.params.types.names().join(", ")
    );
    if !e.params.virtuals.is_empty() {
        let virtuals: Vec<&str> = e.params.virtuals.iter().map(|v| &**v).collect();
        comment.push_str(&format!("; provides {}", virtuals.join(", ")));
    }
    let (a, b) = (spack_id(from), spack_id(to));
    if e.params.types.intersects(DepTypes::LINK_RUN) {
        relationship(&a, "DEPENDS_ON", &b, Some(comment))
    } else if e.params.types.intersects(DepTypes::BUILD) {
        relationship(&b, "BUILD_DEPENDENCY_OF", &a, Some(comment))
    } else {
        relationship(&b, "TEST_DEPENDENCY_OF", &a, Some(comment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"{"_meta":{"file-type":"spack-lockfile","lockfile-version":6,"specfile-version":5},
      "roots":[{"hash":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","spec":"app"}],
      "concrete_specs":{
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":{"name":"app","version":"1.0",
          "arch":{"platform":"linux","platform_os":"debian12","target":"x86_64"},
          "parameters":{"shared":true,"build_system":"cmake","cflags":["-O2"],"ldflags":[]},
          "dependencies":[
            {"name":"lib_x","hash":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","parameters":{"deptypes":["build","link"],"virtuals":[]}},
            {"name":"gcc","hash":"cccccccccccccccccccccccccccccccc","parameters":{"deptypes":["build"],"virtuals":["c"]}}]},
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb":{"name":"lib_x","version":"2",
          "arch":{"platform":"linux","platform_os":"debian12","target":"x86_64"}},
        "cccccccccccccccccccccccccccccccc":{"name":"gcc","version":"12.2.0","external":{"path":"/usr"},
          "arch":{"platform":"linux","platform_os":"debian12","target":"x86_64"}}}}"#;

    fn doc(created: &str) -> Result<Value, AttestError> {
        let lock = Lockfile::parse("spack.lock", LOCK.as_bytes()).unwrap();
        let image: ImageRef = "registry.example/c/app:1.0".parse().unwrap();
        let runtime: ImageRef = "registry.example/c/runtime:2026.12".parse().unwrap();
        let os = [OsPackage {
            name: "libstdc++6".into(),
            version: "12.2.0-14".into(),
            architecture: "amd64".into(),
            source: "gcc-12".into(),
            source_version: None,
        }];
        let input = SbomInput {
            image: &image,
            digest: &format!("sha256:{}", "a".repeat(64)),
            created,
            creator: "spackah-0.1.0",
            lockfile: &lock,
            build_cache: "s3://cache/amd64",
            os: OsPackages {
                image: &runtime,
                digest: &format!("sha256:{}", "b".repeat(64)),
                distro: "debian",
                packages: &os,
                added: &[],
            },
        };
        let d = sbom(&input)?;
        assert_eq!(d.kind, DocumentKind::Sbom);
        Ok(serde_json::from_slice(&d.bytes).unwrap())
    }

    fn find<'a>(doc: &'a Value, name: &str) -> &'a Value {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
    }

    #[test]
    fn every_spec_every_edge_and_every_os_package() {
        let d = doc("2026-12-06T00:00:00Z").unwrap();
        assert_eq!(d["packages"].as_array().unwrap().len(), 2 + 3 + 1);
        let app = find(&d, "app");
        let comment = app["comment"].as_str().unwrap();
        assert_eq!(
            comment,
            "Spack spec: app@1.0 build_system=cmake cflags=\"-O2\" +shared %c=gcc@12.2.0 arch=linux-debian12-x86_64 /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        );
        assert_eq!(
            find(&d, "lib_x")["SPDXID"],
            "SPDXRef-Spack-lib-X5F-x-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        );
        let gcc = find(&d, "gcc");
        assert_eq!(gcc["externalRefs"].as_array().unwrap().len(), 1);
        let deb = find(&d, "libstdc++6");
        assert_eq!(deb["SPDXID"], "SPDXRef-Deb-libstdc-X2B--X2B-6-amd64");
        assert_eq!(
            deb["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&upstream=gcc-12"
        );
        let rels = d["relationships"].as_array().unwrap();
        let has = |a: &str, kind: &str, b: &str| {
            rels.iter().any(|r| {
                r["spdxElementId"] == a
                    && r["relationshipType"] == kind
                    && r["relatedSpdxElement"] == b
            })
        };
        let (a, l, g) = (
            "SPDXRef-Spack-app-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "SPDXRef-Spack-lib-X5F-x-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "SPDXRef-Spack-gcc-cccccccccccccccccccccccccccccccc",
        );
        assert!(has(a, "DEPENDS_ON", l));
        assert!(has(g, "BUILD_DEPENDENCY_OF", a));
        assert!(has("SPDXRef-Image", "CONTAINS", a));
        assert!(has(
            "SPDXRef-RuntimeImage",
            "CONTAINS",
            "SPDXRef-Deb-libstdc-X2B--X2B-6-amd64"
        ));
        assert!(PROJECT_URL.starts_with("https://"));
        assert_eq!(
            d["documentNamespace"],
            format!(
                "{PROJECT_URL}/spdx/registry.example/c/app/sha256-{}",
                "a".repeat(64)
            )
        );
    }

    #[test]
    fn the_same_inputs_make_the_same_bytes_and_bad_inputs_are_refused() {
        assert_eq!(
            doc("2026-12-06T00:00:00Z").unwrap(),
            doc("2026-12-06T00:00:00Z").unwrap()
        );
        let e = doc("yesterday").unwrap_err().to_string();
        assert!(e.contains("yesterday"), "{e}");
    }
}
