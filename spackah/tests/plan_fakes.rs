//! `spackah plan`, `publish` and `build` against the registries, containers bucket and engine in
//! memory (no service): the decisions a user relies on — nothing published builds everything,
//! what was published with the planned checksums is up to date, a changed lockfile, definition
//! or source image remakes that container only, an architecture missing from a multi-arch index
//! builds that architecture only, a registry or bucket that is down stops the plan naming it,
//! only the image the plan describes reaches the hub, with the documents the project image carries
//! (with and without the referrers API), and plan → build → push → plan ends with nothing to
//! do. `plan.rs` and `build.rs` hold the same against the real services.

use std::collections::BTreeMap;
use std::path::PathBuf;

use model::attest::{Document, DocumentKind};
use model::config::Config;
use oci::engine::{Engine, MemoryEngine};
use oci::registry::{Clients, ImageRef, MemoryRegistry, RegistryClient, referrers_tag};
use spackah::Pinned;
use spackah::build::{self, BuildOptions};
use spackah::image::Project;
use spackah::pipeline::{self, PipelineOptions};
use spackah::plan::{self, ContainerKind, Decision, PlanOptions, Services};
use spackah::provenance::{self, ProvenanceOptions, Target};
use spackah::publish::{self, Publish, PublishOptions};
use spacktainerizah_tests::{fixtures, repo_root};
use stores::{MemoryStore, Store, sif_published};
use terminal::cli::OutputOptions;
use terminal::printer::Printer;

/// The example configuration's project registry, containers bucket and public hub: the
/// registries and bucket in memory answer for them.
const PROJECT: &str = "registry.example.org/hpc/spacktainers";
const BUCKET: &str = "s3://sboinfrastructureassets/containers";
/// The public image the example `.def` container starts `From:`.
const SOURCE: &str = "docker.io/bluebrain/nexus-storage:latest";
const HUB_REPOSITORY: &str = "docker.io/bluebrain/pythons";

/// A definitions repository (`pythons` for amd64 and arm64, the example's `nexus-storage.def`
/// for amd64) with the lockfiles stage 2 left, the example configuration, and the registries
/// and containers bucket it names, in memory, holding only the `.def` container's source.
struct Setup {
    dir: tempfile::TempDir,
    registry: MemoryRegistry,
    bucket: MemoryStore,
    /// The digest of the `.def` container's source image.
    source_digest: String,
}

fn setup() -> Setup {
    setup_with(|config| config)
}

/// [`setup`] with the example configuration changed by `edit`.
fn setup_with(edit: impl FnOnce(String) -> String) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for arch in ["amd64", "arm64"] {
        let defs = d.join("container_definitions").join(arch);
        std::fs::create_dir_all(&defs).unwrap();
        std::fs::write(
            defs.join("pythons.yaml"),
            "spack:\n  specs:\n    - python@3.13 +optimizations\n",
        )
        .unwrap();
        let locks = d.join("locks").join(arch).join("pythons");
        std::fs::create_dir_all(&locks).unwrap();
        std::fs::copy(
            fixtures().join("spack/lockfiles/spack__all-pythons__spack.lock"),
            locks.join("spack.lock"),
        )
        .unwrap();
        // As `spack-cacher prepare` writes it, for the builds.
        let env = d.join("envs").join(arch).join("pythons");
        std::fs::create_dir_all(&env).unwrap();
        std::fs::write(
            env.join("spack.yaml"),
            "spack:\n  specs: [python@3.13]\n  mirrors:\n    buildcache-destination:\n      url: s3://spack-build-cache\n",
        )
        .unwrap();
    }
    std::fs::copy(
        repo_root().join("examples/container_definitions/amd64/nexus-storage.def"),
        d.join("container_definitions/amd64/nexus-storage.def"),
    )
    .unwrap();
    let config =
        std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml")).unwrap();
    std::fs::write(d.join("spacktainerizah.yaml"), edit(config)).unwrap();
    let registry = MemoryRegistry::new();
    let source = registry.put_image(&image(SOURCE), "amd64", &labels(&[("rev", "1")]));
    Setup {
        dir,
        registry,
        bucket: MemoryStore::new(),
        source_digest: source.digest,
    }
}

/// [`setup`] on `registry` (one without the referrers API, say).
fn setup_on(registry: MemoryRegistry) -> Setup {
    let s = setup();
    let source = registry.put_image(&image(SOURCE), "amd64", &labels(&[("rev", "1")]));
    Setup {
        registry,
        source_digest: source.digest,
        ..s
    }
}

fn image(name: &str) -> ImageRef {
    name.parse().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Setup {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn project(&self, branch: &str) -> Project {
        Project {
            config: Config::read(&self.path("spacktainerizah.yaml")).unwrap(),
            repo: self.dir.path().to_path_buf(),
            branch: branch.into(),
            lockfiles: self.path("locks"),
        }
    }

    fn options(&self, branch: &str, containers: &[&str]) -> PlanOptions {
        PlanOptions {
            project: self.project(branch),
            containers: containers.iter().map(|c| c.to_string()).collect(),
            concretize: false,
            spack: None,
        }
    }

    /// The services `spackah` opens, in memory.
    fn services(&self) -> Services {
        Services::with_registries(Clients::memory(&self.registry))
            .with_store(&BUCKET.parse().unwrap(), Store::new(self.bucket.clone()))
    }

    async fn try_plan(&self, branch: &str, containers: &[&str]) -> anyhow::Result<Vec<Decision>> {
        plan::plan(&self.options(branch, containers), &self.services()).await
    }

    /// The plan of every container on the default branch.
    async fn plan(&self) -> Vec<Decision> {
        self.try_plan("main", &[]).await.unwrap()
    }

    /// Publish what `decisions` ask for as the jobs would: each image with the labels its
    /// build records, each SIF with the checksums of those labels, then the multi-arch tags
    /// (`spackah index`) of the containers whose tag needs writing.
    async fn publish(&self, decisions: &[Decision]) {
        for d in decisions {
            if d.kind == ContainerKind::Spack && d.build {
                self.registry
                    .put_image(&image(&d.target), &d.arch, &d.record);
            }
            self.put_sif(d, &d.record).await;
        }
        self.write_indexes(decisions).await;
    }

    /// `spackah index` of each container whose multi-arch tag `decisions` say needs writing,
    /// as its job does after the builds; the tags written.
    async fn write_indexes(&self, decisions: &[Decision]) -> Vec<String> {
        let indexed: std::collections::BTreeSet<&str> = decisions
            .iter()
            .filter(|d| d.index.as_ref().is_some_and(|i| i.write))
            .map(|d| d.container.as_str())
            .collect();
        let mut written = Vec::new();
        for container in indexed {
            let registries = Clients::memory(&self.registry);
            let project = self.project("main");
            written.extend(
                spackah::index::index(&project, container, &registries)
                    .await
                    .unwrap(),
            );
        }
        written
    }

    /// The SIF of `d`, recording `labels`.
    async fn put_sif(&self, d: &Decision, labels: &BTreeMap<String, String>) {
        let sif = d.sif.as_ref().expect("every container has a SIF");
        Store::new(self.bucket.clone())
            .put(
                &sif.key,
                b"SIF".to_vec(),
                &sif_published::checksums(labels),
                &Default::default(),
            )
            .await
            .unwrap();
    }

    fn append(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        let mut content = std::fs::read_to_string(&path).unwrap();
        content.push_str(text);
        std::fs::write(&path, content).unwrap();
    }
}

fn find<'a>(decisions: &'a [Decision], container: &str, arch: &str) -> &'a Decision {
    decisions
        .iter()
        .find(|d| d.container == container && d.arch == arch)
        .unwrap_or_else(|| panic!("no decision for {container} {arch}: {decisions:#?}"))
}

/// `container arch` of every decision that needs work.
fn work(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .filter(|d| d.needs_work())
        .map(|d| format!("{} {}", d.container, d.arch))
        .collect()
}

#[tokio::test]
async fn nothing_published_builds_every_container_and_architecture() {
    let s = setup();
    let d = s.plan().await;
    assert_eq!(d.len(), 3, "{d:#?}");
    for arch in ["amd64", "arm64"] {
        let py = find(&d, "pythons", arch);
        // The tag comes from the lockfile's main package, one per architecture.
        assert_eq!(py.target, format!("{PROJECT}/pythons:3.13.5-{arch}"));
        assert!(py.build);
        assert_eq!(py.reason, format!("{} does not exist", py.target));
        let sif = py.sif.as_ref().unwrap();
        assert_eq!(sif.key, format!("pythons__3.13.5-{arch}.sif"));
        assert_eq!(sif.store, BUCKET);
        assert_eq!((sif.build, sif.reason.as_str()), (true, "SIF missing"));
        // The hub has no such repository: only its owner may create it.
        let hub = py.hub.as_ref().unwrap();
        assert_eq!(
            (hub.push, hub.reason.as_str()),
            (false, "hub repository does not exist")
        );
    }
    let storage = find(&d, "nexus-storage", "amd64");
    assert_eq!(storage.kind, ContainerKind::Def);
    assert_eq!(
        storage.target,
        format!("{BUCKET}/nexus-storage__latest-amd64.sif")
    );
    assert_eq!(
        (storage.build, storage.reason.as_str()),
        (true, "SIF missing")
    );
    assert_eq!(
        storage.record[&model::labels::source_digest_label()],
        s.source_digest
    );
}

#[tokio::test]
async fn what_was_published_with_the_planned_checksums_is_up_to_date() {
    let s = setup();
    s.publish(&s.plan().await).await;
    let d = s.plan().await;
    assert!(work(&d).is_empty(), "{d:#?}");
    for arch in ["amd64", "arm64"] {
        let py = find(&d, "pythons", arch);
        assert_eq!((py.build, py.reason.as_str()), (false, "up to date"));
        assert_eq!(py.sif.as_ref().unwrap().reason, "SIF up to date");
    }
    assert_eq!(find(&d, "nexus-storage", "amd64").reason, "SIF up to date");
}

#[tokio::test]
async fn a_changed_lockfile_remakes_that_container_and_architecture_only() {
    let s = setup();
    let before = s.plan().await;
    s.publish(&before).await;
    s.append("locks/amd64/pythons/spack.lock", "\n");
    let d = s.plan().await;
    assert_eq!(work(&d), ["pythons amd64"]);
    let py = find(&d, "pythons", "amd64");
    assert_eq!((py.build, py.reason.as_str()), (true, "lockfile changed"));
    let sif = py.sif.as_ref().unwrap();
    assert!(sif.build);
    assert_eq!(sif.reason, "SIF has another lockfile-sha256");
    assert_eq!(sif.changed, [sif_published::META_LOCKFILE_SHA256]);
    assert_ne!(py.record, find(&before, "pythons", "amd64").record);
}

#[tokio::test]
async fn a_changed_definition_remakes_that_container_only() {
    let s = setup();
    s.publish(&s.plan().await).await;
    s.append(
        "container_definitions/arm64/pythons.yaml",
        "    - py-numpy\n",
    );
    s.append(
        "container_definitions/amd64/nexus-storage.def",
        "%help\n  The storage service.\n",
    );
    let d = s.plan().await;
    assert_eq!(work(&d), ["nexus-storage amd64", "pythons arm64"]);
    let py = find(&d, "pythons", "arm64");
    assert_eq!((py.build, py.reason.as_str()), (true, "definition changed"));
    assert_eq!(
        py.sif.as_ref().unwrap().changed,
        [sif_published::META_CONTAINER_CHECKSUM]
    );
    let storage = find(&d, "nexus-storage", "amd64");
    assert_eq!(
        (storage.build, storage.reason.as_str()),
        (true, "definition changed")
    );
}

#[tokio::test]
async fn a_new_source_image_remakes_the_def_container_only() {
    let s = setup();
    s.publish(&s.plan().await).await;
    let now = s
        .registry
        .put_image(&image(SOURCE), "amd64", &labels(&[("rev", "2")]));
    let d = s.plan().await;
    assert_eq!(work(&d), ["nexus-storage amd64"]);
    let storage = find(&d, "nexus-storage", "amd64");
    assert!(storage.build);
    assert_eq!(
        storage.reason,
        format!("source image changed (now {})", now.digest)
    );
}

#[tokio::test]
async fn an_architecture_missing_from_the_multi_arch_index_builds_that_architecture_only() {
    // Without the architecture suffix both architectures share one tag: a multi-arch index.
    let s = setup_with(|c| c.replace("arch_suffix: true", "arch_suffix: false"));
    let d = s.try_plan("main", &["pythons"]).await.unwrap();
    let amd64 = find(&d, "pythons", "amd64");
    let tag = image(&amd64.target);
    assert_eq!(amd64.target, find(&d, "pythons", "arm64").target);
    let manifest = s.registry.put_image(&tag, "amd64", &amd64.record);
    RegistryClient::memory(&s.registry)
        .push_index(&tag, &[manifest.index_entry("amd64")])
        .await
        .unwrap();

    let d = s.try_plan("main", &["pythons"]).await.unwrap();
    let amd64 = find(&d, "pythons", "amd64");
    assert_eq!((amd64.build, amd64.reason.as_str()), (false, "up to date"));
    let arm64 = find(&d, "pythons", "arm64");
    assert!(arm64.build);
    assert_eq!(
        arm64.reason,
        format!("{} has no image for architecture arm64", arm64.target)
    );
}

#[tokio::test]
async fn a_project_registry_that_is_down_or_refuses_stops_the_plan_naming_it() {
    let host = image(PROJECT).registry;
    let first = format!("{PROJECT}/pythons:3.13.5-amd64");
    let s = setup();
    s.registry.set_unreachable(&host);
    let err = format!("{:#}", s.try_plan("main", &[]).await.unwrap_err());
    assert!(
        err.starts_with(&format!(
            "looking up {first}: could not reach registry {host}"
        )),
        "{err}"
    );

    let s = setup();
    s.registry.deny(&host);
    let err = format!("{:#}", s.try_plan("main", &[]).await.unwrap_err());
    assert_eq!(
        err,
        format!("looking up {first}: access to {first} was denied (HTTP 401)")
    );
}

#[tokio::test]
async fn a_source_registry_that_is_down_stops_the_plan_naming_the_definition() {
    let s = setup();
    let host = image(SOURCE).registry;
    s.registry.set_unreachable(&host);
    let err = format!(
        "{:#}",
        s.try_plan("main", &["nexus-storage"]).await.unwrap_err()
    );
    assert!(
        err.contains("nexus-storage.def: resolving its source image")
            && err.contains(&format!("could not reach registry {host}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_containers_bucket_that_is_down_stops_the_plan_naming_the_sif() {
    let s = setup();
    s.publish(&s.plan().await).await;
    s.bucket.set_unreachable(true);
    let err = format!("{:#}", s.try_plan("main", &["pythons"]).await.unwrap_err());
    // The bucket in memory names its objects `memory://<key>` (S3's `s3://<bucket>/<key>`).
    assert!(
        err.contains("looking up memory://pythons__3.13.5-amd64.sif: could not reach"),
        "{err}"
    );
}

#[tokio::test]
async fn the_hub_gets_what_it_lacks_on_the_default_branch_only() {
    let s = setup();
    s.publish(&s.plan().await).await;
    // The hub's owner creates the repository (with some other tag).
    let seed = image(&format!("{HUB_REPOSITORY}:seed"));
    s.registry.put_image(&seed, "amd64", &BTreeMap::new());
    let d = s.try_plan("main", &["pythons"]).await.unwrap();
    let py = find(&d, "pythons", "amd64");
    assert!(!py.build && py.needs_work(), "{py:#?}");
    let hub = py.hub.as_ref().unwrap();
    assert_eq!(
        hub.target,
        image(HUB_REPOSITORY)
            .with_reference("3.13.5-amd64")
            .to_string()
    );
    assert_eq!((hub.push, hub.reason.as_str()), (true, "hub lacks it"));

    let target = image(&hub.target);
    s.registry
        .put_image(&target, "amd64", &labels(&[("other", "image")]));
    let d = s.try_plan("main", &["pythons"]).await.unwrap();
    let hub = find(&d, "pythons", "amd64").hub.clone().unwrap();
    assert_eq!(
        (hub.push, hub.reason.as_str()),
        (true, "hub holds other checksums")
    );

    s.registry
        .put_image(&target, "amd64", &find(&d, "pythons", "amd64").record);
    let d = s.try_plan("main", &["pythons"]).await.unwrap();
    let hub = find(&d, "pythons", "amd64").hub.clone().unwrap();
    assert_eq!((hub.push, hub.reason.as_str()), (false, "hub up to date"));

    let d = s.try_plan("my-branch", &["pythons"]).await.unwrap();
    assert!(d.iter().all(|d| d.hub.is_none()), "{d:#?}");
}

#[tokio::test]
async fn a_hub_that_cannot_be_asked_leaves_the_push_to_the_job() {
    // Unlike the project registry, the hub only decides a copy: its job asks again.
    let s = setup();
    s.publish(&s.plan().await).await;
    s.registry.set_unreachable(&image(HUB_REPOSITORY).registry);
    let d = s.try_plan("main", &["pythons"]).await.unwrap();
    let py = find(&d, "pythons", "amd64");
    assert!(!py.build);
    let hub = py.hub.as_ref().unwrap();
    assert!(hub.push);
    assert!(
        hub.reason
            .starts_with("hub not checked (could not reach registry"),
        "{}",
        hub.reason
    );
}

fn publish_options(s: &Setup, branch: &str) -> PublishOptions {
    PublishOptions {
        project: s.project(branch),
        container: "pythons".into(),
        arch: "amd64".into(),
    }
}

/// Why `spackah publish` pushes nothing (a push fails the test).
async fn nothing(s: &Setup, branch: &str) -> String {
    match publish::decide(&publish_options(s, branch), &Clients::memory(&s.registry))
        .await
        .unwrap()
    {
        Publish::Nothing(why) => why,
        Publish::Push(p) => panic!("a push: {p:?}"),
    }
}

#[tokio::test]
async fn publish_copies_to_the_hub_only_the_image_the_plan_describes() {
    let s = setup();
    s.publish(&s.plan().await).await;
    assert!(
        nothing(&s, "my-branch")
            .await
            .contains("not on the default branch")
    );
    let why = nothing(&s, "main").await;
    assert!(
        why.contains("does not exist: create it on the hub"),
        "{why}"
    );

    let hub = image(HUB_REPOSITORY);
    s.registry
        .put_image(&hub.with_reference("seed"), "amd64", &BTreeMap::new());
    let engine = MemoryEngine::new(&s.registry);
    let clients = Clients::memory(&s.registry);
    let Publish::Push(push) = publish::decide(&publish_options(&s, "main"), &clients)
        .await
        .unwrap()
    else {
        panic!("the hub lacks the image: a push")
    };
    let done = publish::push(&push, &Engine::memory(&engine), &clients)
        .await
        .unwrap();
    let target = hub.with_reference("3.13.5-amd64").to_string();
    assert_eq!(done, format!("pushed {target}"));
    assert_eq!(engine.pushed(), std::slice::from_ref(&target));
    assert_eq!(s.registry.tags(&hub), ["3.13.5-amd64", "seed"]);
    assert!(nothing(&s, "main").await.ends_with("is up to date"));

    // The lockfile changed since the image was built: the hub must not get that stale image.
    s.append("locks/amd64/pythons/spack.lock", "\n");
    let written = s.registry.written();
    let Publish::Push(push) = publish::decide(&publish_options(&s, "main"), &clients)
        .await
        .unwrap()
    else {
        panic!("the hub holds other checksums: a push")
    };
    let engine = MemoryEngine::new(&s.registry);
    let err = format!(
        "{:#}",
        publish::push(&push, &Engine::memory(&engine), &clients)
            .await
            .unwrap_err()
    );
    assert!(
        err.contains("stale") && err.contains("lockfile-sha256"),
        "{err}"
    );
    assert!(engine.pushed().is_empty());
    assert_eq!(s.registry.written(), written, "nothing reached a registry");

    // A hub that cannot be asked is an error, not a push.
    s.registry.set_unreachable(&hub.registry);
    let err = format!(
        "{:#}",
        publish::decide(&publish_options(&s, "main"), &clients)
            .await
            .unwrap_err()
    );
    assert!(
        err.contains(&format!("looking up {target}")) && err.contains("could not reach registry"),
        "{err}"
    );
}

#[tokio::test]
async fn publish_copies_the_project_images_documents_to_the_hub() {
    let documents = vec![
        Document {
            kind: DocumentKind::Sbom,
            bytes: br#"{"spdxVersion":"SPDX-2.3","name":"pythons"}"#.to_vec(),
        },
        Document {
            kind: DocumentKind::Provenance,
            bytes: br#"{"_type":"https://in-toto.io/Statement/v1"}"#.to_vec(),
        },
    ];
    for (registry, api) in [
        (MemoryRegistry::new(), true),
        (MemoryRegistry::without_referrers_api(), false),
    ] {
        let s = setup_on(registry);
        let decisions = s.plan().await;
        s.publish(&decisions).await;
        // What `spackah build --push` attached to the project's image.
        let built = image(&find(&decisions, "pythons", "amd64").target);
        let clients = Clients::memory(&s.registry);
        let project = RegistryClient::memory(&s.registry);
        let attached = publish::attach_documents(&project, &built, "amd64", &documents)
            .await
            .unwrap();
        assert_eq!(attached.len(), 2);
        // A retried job attaches nothing twice.
        let again = publish::attach_documents(&project, &built, "amd64", &documents)
            .await
            .unwrap();
        assert!(again.is_empty(), "{again:?}");
        let hub = image(HUB_REPOSITORY);
        s.registry
            .put_image(&hub.with_reference("seed"), "amd64", &BTreeMap::new());
        let opts = publish_options(&s, "main");
        let Publish::Push(push) = publish::decide(&opts, &clients).await.unwrap() else {
            panic!("the hub lacks the image: a push")
        };
        let engine = MemoryEngine::new(&s.registry);
        let done = publish::push(&push, &Engine::memory(&engine), &clients)
            .await
            .unwrap();
        let target = hub.with_reference("3.13.5-amd64");
        assert_eq!(done, format!("pushed {target} with 2 attached document(s)"));
        let digest = RegistryClient::memory(&s.registry)
            .manifest(&target)
            .await
            .unwrap()
            .digest;
        // Where the registry does not keep referrers, the tag schema's index does.
        let tagged = s.registry.tags(&hub).contains(&referrers_tag(&digest));
        assert_eq!(tagged, !api);
        // What `spackah provenance` lists and extracts.
        let dir = tempfile::tempdir().unwrap();
        let opts = ProvenanceOptions {
            target: Target::Image(target.clone()),
            extract: Some(dir.path().join("docs")),
        };
        let found = provenance::find(&opts, &clients).await.unwrap();
        assert_eq!(
            found.iter().map(|f| f.kind).collect::<Vec<_>>(),
            ["sbom", "provenance"]
        );
        assert!(found.iter().all(|f| f.subject.as_deref() == Some(&digest)));
        provenance::extract(&found, &dir.path().join("docs")).unwrap();
        for doc in &documents {
            let file = dir.path().join("docs").join(doc.kind.file_name());
            assert_eq!(std::fs::read(file).unwrap(), doc.bytes);
        }
    }
}

/// The example configuration with caches that need no key pair (the build reads a key pair
/// from the variables the configuration names, which a test cannot set safely).
fn without_cache_keys(config: String) -> String {
    ["BUILD_CACHE", "ARM_CACHE"].iter().fold(config, |c, prefix| {
        let pair = format!(
            "      credentials:\n        user_env: {prefix}_ACCESS_KEY_ID\n        secret_env: {prefix}_SECRET_ACCESS_KEY\n"
        );
        assert!(c.contains(&pair), "the example names {prefix}_*");
        c.replace(&pair, "")
    })
}

fn build_options(s: &Setup, d: &Decision) -> BuildOptions {
    BuildOptions {
        project: s.project("main"),
        container: d.container.clone(),
        arch: d.arch.clone(),
        environments: s.path("envs"),
        base_tag: "base".into(),
        pinned: Pinned::default(),
        push: true,
        login: None,
        invocation: Default::default(),
    }
}

fn quiet() -> Printer {
    Printer::new(&OutputOptions {
        quiet: true,
        ..OutputOptions::default()
    })
}

/// Run what `decisions` ask for as the pipeline's jobs would: build and push each image on
/// `engine`, then make each SIF from the labels the registry holds for its image (the `.def`
/// containers' from their record). The images built, in order.
async fn run_jobs(s: &Setup, engine: &MemoryEngine, decisions: &[Decision]) -> Vec<String> {
    let mut built = Vec::new();
    for d in decisions
        .iter()
        .filter(|d| d.build && d.kind == ContainerKind::Spack)
    {
        let target = build::build(&build_options(s, d), &Engine::memory(engine), &quiet())
            .await
            .unwrap();
        assert_eq!(target, d.target);
        built.push(target);
    }
    for d in decisions
        .iter()
        .filter(|d| d.sif.as_ref().is_some_and(|s| s.build))
    {
        let labels = match d.kind {
            ContainerKind::Spack => {
                RegistryClient::memory(&s.registry)
                    .resolve(&image(&d.target), &d.arch)
                    .await
                    .unwrap()
                    .labels
            }
            ContainerKind::Def => d.record.clone(),
        };
        s.put_sif(d, &labels).await;
    }
    s.write_indexes(decisions).await;
    built
}

fn pipeline_jobs(s: &Setup, decisions: &[Decision]) -> Vec<String> {
    let opts = PipelineOptions::new(
        s.project("main"),
        s.path("envs"),
        "base".into(),
        None,
        Pinned::default(),
    );
    pipeline::pipeline(&opts, decisions)
        .jobs
        .into_keys()
        .collect()
}

#[tokio::test]
async fn plan_build_push_then_plan_again_has_nothing_to_do() {
    let s = setup_with(without_cache_keys);
    let engine = MemoryEngine::new(&s.registry);
    let d = s.plan().await;
    assert!(
        pipeline_jobs(&s, &d).contains(&"build pythons amd64".to_string()),
        "{:?}",
        pipeline_jobs(&s, &d)
    );
    let built = run_jobs(&s, &engine, &d).await;
    assert_eq!(
        built,
        [
            format!("{PROJECT}/pythons:3.13.5-amd64"),
            format!("{PROJECT}/pythons:3.13.5-arm64")
        ]
    );
    // Each build is asked for its architecture with the labels the plan compares.
    for ((tag, request), d) in engine.builds().iter().zip(
        d.iter()
            .filter(|d| d.build && d.kind == ContainerKind::Spack),
    ) {
        assert_eq!(tag, &d.target);
        assert_eq!(request.architecture.as_deref(), Some(d.arch.as_str()));
        for (k, v) in &d.record {
            assert_eq!(request.labels.get(k), Some(v), "{k} on {tag}");
        }
        assert!(request.extra_files.contains_key("Dockerfile"));
        assert!(request.extra_files.contains_key("spack.lock"));
    }
    assert_eq!(engine.pushed(), built);
    // One tag for both architectures, listing the images just built.
    let multi = image(&format!("{PROJECT}/pythons:3.13.5"));
    let registry = RegistryClient::memory(&s.registry);
    for arch in ["amd64", "arm64"] {
        let per_arch = image(&format!("{PROJECT}/pythons:3.13.5-{arch}"));
        let listed = registry.resolve(&multi, arch).await.unwrap();
        assert!(listed.index_digest.is_some(), "a multi-arch index");
        assert_eq!(
            listed.manifest.digest,
            registry
                .resolve(&per_arch, arch)
                .await
                .unwrap()
                .manifest
                .digest
        );
    }

    let again = s.plan().await;
    assert!(work(&again).is_empty(), "{again:#?}");
    assert_eq!(pipeline_jobs(&s, &again), ["nothing-to-do"]);

    // A new lockfile for one architecture: that image is built again, and only it.
    s.append("locks/arm64/pythons/spack.lock", "\n");
    let d = s.plan().await;
    assert_eq!(work(&d), ["pythons arm64"]);
    let index = |arch| find(&d, "pythons", arch).index.clone().unwrap();
    assert_eq!(
        (index("amd64").write, index("arm64").write),
        (false, true),
        "the tag is written again after the arm64 build"
    );
    let before = registry
        .resolve(&multi, "arm64")
        .await
        .unwrap()
        .manifest
        .digest;
    let built = run_jobs(&s, &engine, &d).await;
    let after = registry
        .resolve(&multi, "arm64")
        .await
        .unwrap()
        .manifest
        .digest;
    assert_ne!(before, after, "the tag lists the new arm64 image");
    assert_eq!(built, [format!("{PROJECT}/pythons:3.13.5-arm64")]);
    assert_eq!(engine.builds().len(), 3);
    assert!(work(&s.plan().await).is_empty());
}

#[tokio::test]
async fn a_failed_build_pushes_nothing_and_the_next_plan_builds_it_again() {
    let s = setup_with(without_cache_keys);
    let engine = MemoryEngine::new(&s.registry);
    let d = s.try_plan("main", &["pythons"]).await.unwrap();
    let py = find(&d, "pythons", "amd64");
    engine.fail_build(&py.target, "==> Error: python: installation failed");
    let err = format!(
        "{:#}",
        build::build(&build_options(&s, py), &Engine::memory(&engine), &quiet())
            .await
            .unwrap_err()
    );
    assert!(
        err.contains(&format!("building {} failed", py.target))
            && err.contains("installation failed"),
        "{err}"
    );
    assert!(engine.pushed().is_empty());
    assert!(s.registry.written().is_empty());
    let d = s.try_plan("main", &["pythons"]).await.unwrap();
    assert!(find(&d, "pythons", "amd64").build);
}

#[tokio::test]
async fn a_multi_arch_tag_is_not_written_while_an_architecture_lacks_its_image() {
    let s = setup();
    let d = s.plan().await;
    let amd = find(&d, "pythons", "amd64");
    s.registry
        .put_image(&image(&amd.target), "amd64", &amd.record);
    let registries = Clients::memory(&s.registry);
    let e = spackah::index::index(&s.project("main"), "pythons", &registries)
        .await
        .unwrap_err();
    let message = format!("{e:#}");
    assert!(
        message.contains(&format!("{PROJECT}/pythons:3.13.5-arm64")),
        "{message}"
    );
    let multi = image(&format!("{PROJECT}/pythons:3.13.5"));
    assert!(
        RegistryClient::memory(&s.registry)
            .manifest(&multi)
            .await
            .is_err(),
        "no tag listing one architecture of two"
    );
    let e = spackah::index::index(&s.project("main"), "nexus-storage", &registries)
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("no Spack container `nexus-storage`"),
        "{e:#}"
    );
}

#[tokio::test]
async fn a_multi_arch_tag_keeps_listing_an_architecture_that_moved_to_another_version() {
    let s = setup();
    s.publish(&s.plan().await).await;
    let registry = RegistryClient::memory(&s.registry);
    let old = image(&format!("{PROJECT}/pythons:3.13.5"));
    let before = registry
        .resolve(&old, "arm64")
        .await
        .unwrap()
        .manifest
        .digest;
    // arm64 now concretizes another version of the main package.
    let lock = s.path("locks/arm64/pythons/spack.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    let moved = text.replace(
        r#""name":"python","version":"3.13.5""#,
        r#""name":"python","version":"3.13.6""#,
    );
    assert_ne!(moved, text);
    std::fs::write(&lock, moved).unwrap();
    let d = s.plan().await;
    assert_eq!(
        find(&d, "pythons", "arm64").target,
        format!("{PROJECT}/pythons:3.13.6-arm64")
    );
    s.publish(&d).await;
    // The old version's tag still serves arm64 (its image is still there), the new one arm64
    // only.
    let after = registry
        .resolve(&old, "arm64")
        .await
        .unwrap()
        .manifest
        .digest;
    assert_eq!(before, after);
    assert!(registry.resolve(&old, "amd64").await.is_ok());
    let new = image(&format!("{PROJECT}/pythons:3.13.6"));
    assert!(registry.resolve(&new, "arm64").await.is_ok());
    assert!(registry.resolve(&new, "amd64").await.is_err());
    assert!(work(&s.plan().await).is_empty());
}
