//! The SBOM and build provenance of one built Spack container, gathered from what made it: its
//! definition and concretized `spack.lock`, the builder image (its Spack commits, from its
//! labels) and the runtime image (its OS packages, read from its dpkg database through the
//! registry), the build cache, and the CI pipeline that ran the build.

use anyhow::{Context, bail};
use model::attest::Document;
use model::attest::dpkg::{self, OsPackage};
use model::attest::provenance::{self, Image, Invocation, ProvenanceInput};
use model::attest::sbom::{self, OsPackages, SbomInput};
use model::checksum::{relative_name, sha256_hex};
use model::definitions::ContainerDefinition;
use model::labels;
use model::spack::lockfile::Lockfile;
use oci::image_file;
use oci::registry::{Clients, ImageRef, RegistryClient, Resolved};

use crate::bases::Pinned;
use crate::image::{self, Project, SpackImage};

/// Which container's documents, and what only the caller knows: the base images it was built
/// on, the CI run, and the time to record.
#[derive(Debug, Clone)]
pub struct AttestOptions {
    pub project: Project,
    pub container: String,
    pub arch: String,
    /// The base images' tag (stage 1's `BUILDER_TAG`), and their digests when pinned.
    pub base_tag: String,
    pub pinned: Pinned,
    /// GitLab's `CI_PIPELINE_URL`, `CI_PIPELINE_ID` and `CI_JOB_URL`, read at the binary's edge
    /// (names in `model::env_names`).
    pub invocation: Invocation,
    /// When the documents are made, `YYYY-MM-DDThh:mm:ssZ` (`model::time::rfc3339`).
    pub created: String,
}

/// The tool recorded as the documents' creator and the builder.
fn tool() -> String {
    format!("spackah-{}", env!("CARGO_PKG_VERSION"))
}

/// Everything the two documents are made from, gathered.
struct Gathered {
    def: ContainerDefinition,
    planned: SpackImage,
    lockfile: Lockfile,
    built: Resolved,
    builder: Base,
    runtime: Base,
    os: Os,
    /// OS packages the image has beyond the runtime's.
    added: Vec<OsPackage>,
    build_cache: String,
}

/// The SBOM (SPDX 2.3 JSON) and the provenance (in-toto Statement v1, SLSA Provenance v1) of
/// the container of `opts` as the project registry holds it, asking the registries through
/// `registries`. The image must be there with the checksums its plan records (a stale image
/// is refused, as publishing refuses it); the builder and runtime images at the pinned digests
/// or the base tag. Attaching them to the image is the caller's business.
pub async fn documents(
    opts: &AttestOptions,
    registries: &Clients,
) -> anyhow::Result<Vec<Document>> {
    let g = gather(opts, registries).await?;
    let tool = tool();
    let sbom = sbom::sbom(&SbomInput {
        image: &g.planned.image,
        digest: &g.built.manifest.digest,
        created: &opts.created,
        creator: &tool,
        lockfile: &g.lockfile,
        build_cache: &g.build_cache,
        os: OsPackages {
            image: &g.runtime.image,
            digest: &g.runtime.resolved.manifest.digest,
            distro: &g.os.distro,
            packages: &g.os.packages,
            added: &g.added,
        },
    })
    .with_context(|| format!("the SBOM of {}", g.planned.image))?;
    let provenance = provenance_of(opts, &g, &tool)?;
    Ok(vec![sbom, provenance])
}

/// Make the documents of the container of `opts` and attach them to its image in the project
/// registry as OCI referrers (what `sif build` and the hub copy read); the documents attached
/// (none of a kind the image already has).
pub async fn attach(opts: &AttestOptions, registries: &Clients) -> anyhow::Result<Vec<Document>> {
    let docs = documents(opts, registries).await?;
    let p = &opts.project;
    let planned = p.image(&p.definition(&opts.container, &opts.arch)?)?;
    let client = registries.get(
        "project",
        &planned.image.registry,
        &p.config.registry.login()?,
    )?;
    let attached =
        crate::publish::attach_documents(&client, &planned.image, &opts.arch, &docs).await?;
    Ok(docs
        .into_iter()
        .filter(|d| {
            attached
                .iter()
                .any(|a| a.artifact_type.as_deref() == Some(d.kind.artifact_type()))
        })
        .collect())
}

/// What the registries and files say of the container of `opts`.
async fn gather(opts: &AttestOptions, registries: &Clients) -> anyhow::Result<Gathered> {
    let p = &opts.project;
    let cfg = &p.config;
    let def = p.definition(&opts.container, &opts.arch)?;
    let planned = p.image(&def)?;
    let lockfile = Lockfile::read(&image::lockfile_path(&p.lockfiles, &def))?;
    let client = registries.get("project", &planned.image.registry, &cfg.registry.login()?)?;
    let built = resolve(&client, &planned.image, &opts.arch).await?;
    if let Some((k, want)) = planned
        .record
        .iter()
        .find(|(k, v)| built.labels.get(*k) != Some(*v))
    {
        bail!(
            "{} holds other checksums than the plan ({k}: {} there, {want} planned): it is not the image these documents would describe",
            planned.image,
            built.labels.get(k).map(String::as_str).unwrap_or("none")
        );
    }
    let builder_ref = opts.pinned.builder(cfg, &opts.base_tag);
    let builder = base(registries, cfg, &builder_ref, &opts.arch).await?;
    let runtime_ref = opts.pinned.runtime(cfg, &opts.base_tag);
    let runtime = base(registries, cfg, &runtime_ref, &opts.arch).await?;
    let os = os_packages(&runtime).await?;
    // The image's own database too: what its epilogue installed is in it, not the runtime's.
    // Only the layers the image adds to the runtime's are read (the runtime's database is read
    // already, and the image's software layers are most of its size); none holding a database
    // means the runtime's is the image's.
    let runtime_layers: Vec<&str> = runtime
        .resolved
        .layers
        .iter()
        .map(|l| l.digest.as_str())
        .collect();
    let mut own = built.clone();
    own.layers
        .retain(|l| !runtime_layers.contains(&l.digest.as_str()));
    let image = Base {
        image: planned.image.clone(),
        client,
        resolved: own,
    };
    let added: Vec<OsPackage> = os_packages(&image)
        .await?
        .packages
        .into_iter()
        .filter(|p| !os.packages.contains(p))
        .collect();
    let build_cache = cfg
        .arch(&opts.arch)
        .with_context(|| format!("architecture `{}` is not in the configuration", opts.arch))?
        .build_cache
        .url_for(p.branch == cfg.default_branch)
        .to_string();
    Ok(Gathered {
        def,
        planned,
        lockfile,
        built,
        builder,
        runtime,
        os,
        added,
        build_cache,
    })
}

/// The provenance: the builder's labels give its Spack and package-repository commits.
fn provenance_of(opts: &AttestOptions, g: &Gathered, tool: &str) -> anyhow::Result<Document> {
    let p = &opts.project;
    let ns = &p.config.labels.namespace;
    let label = |name: &str| g.builder.resolved.labels.get(&labels::namespaced(ns, name));
    let spack = label(labels::SPACK_COMMIT).with_context(|| {
        format!(
            "the builder {} has no label {} (stage 1 records its Spack commit there)",
            g.builder.image,
            labels::namespaced(ns, labels::SPACK_COMMIT)
        )
    })?;
    let path = &g.def.path;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let definition_checksum = g
        .planned
        .record
        .get(&labels::namespaced(ns, labels::DEFINITION_CHECKSUM))
        .map(String::as_str)
        .unwrap_or_default();
    provenance::provenance(&ProvenanceInput {
        subject: Image {
            image: &g.planned.image,
            digest: &g.built.manifest.digest,
        },
        container: &g.def.name,
        arch: &g.def.arch,
        definition_path: &relative_name(path, &p.repo),
        definition_sha256: &sha256_hex(&bytes),
        definition_checksum,
        lockfile_sha256: &g.lockfile.sha256,
        build_cache: &g.build_cache,
        spack,
        spack_packages: label(labels::SPACK_PACKAGES_COMMIT).map(String::as_str),
        builder: g.builder.by_digest(),
        runtime: g.runtime.by_digest(),
        tool,
        invocation: &opts.invocation,
    })
    .with_context(|| format!("the provenance of {}", g.planned.image))
}

async fn resolve(
    client: &RegistryClient,
    image: &ImageRef,
    arch: &str,
) -> anyhow::Result<Resolved> {
    client
        .resolve(image, arch)
        .await
        .with_context(|| format!("looking up {image} for {arch}"))
}

/// A base image, its client and what the registry says of it.
struct Base {
    image: ImageRef,
    client: std::sync::Arc<RegistryClient>,
    resolved: Resolved,
}

impl Base {
    fn by_digest(&self) -> Image<'_> {
        Image {
            image: &self.image,
            digest: &self.resolved.manifest.digest,
        }
    }
}

async fn base(
    registries: &Clients,
    cfg: &model::config::Config,
    name: &str,
    arch: &str,
) -> anyhow::Result<Base> {
    let image: ImageRef = name.parse()?;
    let client = registries.get("project", &image.registry, &cfg.registry.login()?)?;
    let resolved = resolve(&client, &image, arch).await?;
    Ok(Base {
        image,
        client,
        resolved,
    })
}

/// The OS packages of an image and its distribution.
struct Os {
    distro: String,
    packages: Vec<OsPackage>,
}

/// The installed packages of `runtime`'s dpkg database (none when it has no dpkg: an rpm
/// image's are not read, see `model::attest::dpkg`), and its distribution's `ID` from
/// os-release (`/usr/lib/os-release`, which `/etc/os-release` links to on Debian and Ubuntu;
/// os-release(5)), `debian` when it has none, dpkg's own default vendor.
async fn os_packages(runtime: &Base) -> anyhow::Result<Os> {
    let read = |path: &'static str| async move {
        image_file::read_file(&runtime.client, &runtime.image, &runtime.resolved, path)
            .await
            .with_context(|| format!("reading {path} from {}", runtime.image))
    };
    let packages = match read(dpkg::STATUS_PATH).await? {
        Some(bytes) => {
            let file = format!("{}:{}", runtime.image, dpkg::STATUS_PATH);
            dpkg::parse_status(&file, &String::from_utf8_lossy(&bytes))?
        }
        None => Vec::new(),
    };
    let mut distro = None;
    for path in ["/usr/lib/os-release", "/etc/os-release"] {
        if let Some(bytes) = read(path).await? {
            distro = os_release_id(&String::from_utf8_lossy(&bytes));
            break;
        }
    }
    Ok(Os {
        distro: distro.unwrap_or_else(|| "debian".into()),
        packages,
    })
}

/// `ID=` of an os-release file, unquoted.
fn os_release_id(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use model::config::Config;
    use oci::registry::MemoryRegistry;
    use spacktainerizah_tests::{fixtures, repo_root};

    const STATUS: &str = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\n\nPackage: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\nPackage: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n";
    const SPACK_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    /// A tar layer of regular files.
    fn layer(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, content.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// The greeter's definition and real lockfile in a repository, the example configuration,
    /// and the registry in memory holding the base images, the runtime's one layer holding
    /// `runtime_files` (the built image is pushed by each test).
    fn setup(
        dir: &std::path::Path,
        runtime_files: &[(&str, &str)],
    ) -> (AttestOptions, MemoryRegistry) {
        let defs = dir.join("container_definitions/amd64");
        std::fs::create_dir_all(&defs).unwrap();
        std::fs::copy(
            repo_root().join("examples/container_definitions/amd64/greeter.yaml"),
            defs.join("greeter.yaml"),
        )
        .unwrap();
        let locks = dir.join("locks/amd64/greeter");
        std::fs::create_dir_all(&locks).unwrap();
        std::fs::copy(
            fixtures().join("spack/lockfiles/greeter__spack-1.0.2.lock"),
            locks.join("spack.lock"),
        )
        .unwrap();
        let project = Project {
            config: Config::read(&repo_root().join("examples/spacktainerizah.yaml")).unwrap(),
            repo: dir.to_path_buf(),
            branch: "main".into(),
            lockfiles: dir.join("locks"),
        };
        let registry = MemoryRegistry::new();
        let cfg = &project.config;
        let ns = &cfg.labels.namespace;
        let builder_labels = BTreeMap::from([
            (
                labels::namespaced(ns, labels::SPACK_COMMIT),
                SPACK_COMMIT.to_string(),
            ),
            (
                labels::namespaced(ns, labels::SPACK_PACKAGES_COMMIT),
                "f".repeat(40),
            ),
        ]);
        let tag = "2026.12.06";
        let builder: ImageRef = cfg.base_image("builder", tag).parse().unwrap();
        registry.put_image(&builder, "amd64", &builder_labels);
        let runtime: ImageRef = cfg.base_image("runtime", tag).parse().unwrap();
        registry.put_image_config(
            &runtime,
            "amd64",
            serde_json::json!({}),
            &[layer(runtime_files)],
        );
        let opts = AttestOptions {
            project,
            container: "greeter".into(),
            arch: "amd64".into(),
            base_tag: tag.into(),
            pinned: Pinned::default(),
            invocation: Invocation {
                pipeline_url: Some("https://gitlab.example/p/-/pipelines/9".into()),
                pipeline_id: Some("9".into()),
                job_url: Some("https://gitlab.example/p/-/jobs/99".into()),
            },
            created: "2026-12-06T00:00:00Z".into(),
        };
        (opts, registry)
    }

    fn push_built(opts: &AttestOptions, registry: &MemoryRegistry) -> String {
        let p = &opts.project;
        let planned = p.image(&p.definition("greeter", "amd64").unwrap()).unwrap();
        registry
            .put_image(&planned.image, "amd64", &planned.record)
            .digest
    }

    fn json(d: &Document) -> serde_json::Value {
        serde_json::from_slice(&d.bytes).unwrap()
    }

    #[tokio::test]
    async fn the_greeter_gets_an_sbom_of_its_lockfile_and_runtime_and_its_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let (opts, registry) = setup(
            dir.path(),
            &[
                ("var/lib/dpkg/status", STATUS),
                (
                    "usr/lib/os-release",
                    "PRETTY_NAME=\"Debian 12\"\nID=debian\n",
                ),
            ],
        );
        let digest = push_built(&opts, &registry);
        let docs = documents(&opts, &Clients::memory(&registry)).await.unwrap();
        let kinds: Vec<_> = docs.iter().map(|d| d.kind).collect();
        assert_eq!(kinds, model::attest::DocumentKind::ALL);
        let sbom = json(&docs[0]);
        // The image and its runtime, the 7 specs of the lockfile, the 2 installed OS packages.
        assert_eq!(sbom["packages"].as_array().unwrap().len(), 2 + 7 + 2);
        assert_eq!(
            sbom["packages"][0]["checksums"][0]["checksumValue"],
            digest[7..]
        );
        let text = String::from_utf8_lossy(&docs[0].bytes);
        assert!(text.contains("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&upstream=glibc"));
        assert!(text.contains("s3://"), "the build cache is recorded");
        let prov = json(&docs[1]);
        assert_eq!(prov["subject"][0]["digest"]["sha256"], digest[7..]);
        let build = &prov["predicate"]["buildDefinition"];
        assert_eq!(
            build["externalParameters"]["definition"]["path"],
            "container_definitions/amd64/greeter.yaml"
        );
        let deps = build["resolvedDependencies"].as_array().unwrap();
        let names: Vec<&str> = deps.iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["spack", "spack-packages", "builder", "runtime"]);
        assert_eq!(deps[0]["digest"]["gitCommit"], SPACK_COMMIT);
        assert_eq!(
            prov["predicate"]["runDetails"]["metadata"]["invocationId"],
            "https://gitlab.example/p/-/jobs/99"
        );
    }

    #[tokio::test]
    async fn a_stale_image_is_refused_and_a_runtime_without_dpkg_has_no_os_packages() {
        let dir = tempfile::tempdir().unwrap();
        let (opts, registry) = setup(dir.path(), &[("etc/hostname", "x")]);
        let p = &opts.project;
        let planned = p.image(&p.definition("greeter", "amd64").unwrap()).unwrap();
        registry.put_image(&planned.image, "amd64", &BTreeMap::new());
        let clients = Clients::memory(&registry);
        let err = format!("{:#}", documents(&opts, &clients).await.unwrap_err());
        assert!(err.contains("other checksums"), "{err}");
        push_built(&opts, &registry);
        let docs = documents(&opts, &clients).await.unwrap();
        let sbom = json(&docs[0]);
        assert_eq!(sbom["packages"].as_array().unwrap().len(), 2 + 7);
        // Said, not left to look like a runtime without packages.
        let runtime = sbom["packages"][1]["comment"].as_str().unwrap();
        assert!(runtime.contains("no dpkg database"), "{runtime}");
    }

    #[tokio::test]
    async fn packages_the_image_adds_to_its_runtime_are_the_images_own() {
        let dir = tempfile::tempdir().unwrap();
        let (opts, registry) = setup(dir.path(), &[("var/lib/dpkg/status", STATUS)]);
        let p = &opts.project;
        let planned = p.image(&p.definition("greeter", "amd64").unwrap()).unwrap();
        // The epilogue installed curl on top of the runtime's packages.
        let status = format!(
            "{STATUS}\nPackage: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10\n"
        );
        registry.put_image_config(
            &planned.image,
            "amd64",
            serde_json::json!({ "Labels": planned.record }),
            &[layer(&[("var/lib/dpkg/status", &status)])],
        );
        let docs = documents(&opts, &Clients::memory(&registry)).await.unwrap();
        let sbom = json(&docs[0]);
        assert_eq!(sbom["packages"].as_array().unwrap().len(), 2 + 7 + 3);
        let contains = |from: &str| -> Vec<String> {
            sbom["relationships"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["spdxElementId"] == from && r["relationshipType"] == "CONTAINS")
                .map(|r| r["relatedSpdxElement"].as_str().unwrap().to_string())
                .filter(|id| id.contains("Deb") || id.contains("deb"))
                .collect()
        };
        let (image, runtime) = (contains("SPDXRef-Image"), contains("SPDXRef-RuntimeImage"));
        assert_eq!(image.len(), 1, "{image:?}");
        assert!(image[0].contains("curl"), "{image:?}");
        assert_eq!(runtime.len(), 2, "{runtime:?}");
    }

    #[tokio::test]
    async fn a_malformed_dpkg_database_names_the_image_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let (opts, registry) = setup(dir.path(), &[("var/lib/dpkg/status", "garbage\n")]);
        push_built(&opts, &registry);
        let err = format!(
            "{:#}",
            documents(&opts, &Clients::memory(&registry))
                .await
                .unwrap_err()
        );
        assert!(
            err.contains("runtime:2026.12.06:/var/lib/dpkg/status"),
            "{err}"
        );
    }
}
