//! `spacktainerizer plan`, `build` and `index` against the registry and engine in memory (no
//! service): nothing in the registry builds every image and architecture, images with the
//! planned labels are up to date, each input (build files, CA certificates, the build cache,
//! the OS image, the Spack and spack-packages commits, the deployment key, the compilers, the
//! tools) rebuilds exactly the images made from it, an architecture missing from the index
//! builds that architecture only, a registry that is down or refuses stops the plan naming it, and
//! plan → build → push → index → plan ends with nothing to do. `plan.rs` holds the same against
//! the real registry and daemon.

use std::collections::BTreeMap;
use std::path::PathBuf;

use model::config::Config;
use oci::engine::{Engine, MemoryEngine};
use oci::registry::{ImageRef, MemoryRegistry, RegistryClient};
use spacktainerizah_tests::{copy_dir, repo_root};
use spacktainerizer::images::{self, ImageSpec, Inputs, SpackTree, ToolsDirs};
use spacktainerizer::plan::{self, Decision};
use spacktainerizer::{Context, build, index, pipeline, tags};
use terminal::cli::OutputOptions;
use terminal::printer::Printer;

/// The example configuration's project registry, which the registry in memory answers for.
const PROJECT: &str = "registry.example.org/hpc/spacktainers";
/// The repository folder whose build files replace the tools' own.
const IMAGES: &str = "base-images";
/// The Spack commit the tests start from (`git ls-remote` is not asked: the plan compares what
/// it is given).
const SPACK_COMMIT: &str = "1111111111111111111111111111111111111111";
const PACKAGES_COMMIT: &str = "2222222222222222222222222222222222222222";

/// A repository with its own copy of the image folders, a tools folder, the example
/// configuration, and the Spack trees' commits, on the default branch; the registry in memory.
struct Setup {
    dir: tempfile::TempDir,
    spack_commit: String,
    packages_commit: String,
    /// The public key the builder trusts.
    deployment_key: Vec<u8>,
    registry: MemoryRegistry,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_dir(&repo_root().join("spacktainerizer/images"), &d.join(IMAGES));
    // Each architecture's own tools.
    for (folder, arch) in [("tools", "amd64"), ("tools-arm64", "arm64")] {
        std::fs::create_dir_all(d.join(folder)).unwrap();
        for tool in images::TOOLS {
            std::fs::write(d.join(folder).join(tool), format!("{tool} 1.0 {arch}\n")).unwrap();
        }
    }
    let config = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "base_images:\n",
            &format!("base_images:\n  build_files: {IMAGES}\n"),
        );
    std::fs::write(d.join("spacktainerizah.yaml"), config).unwrap();
    Setup {
        dir,
        spack_commit: SPACK_COMMIT.into(),
        packages_commit: PACKAGES_COMMIT.into(),
        deployment_key: b"deployment key 1\n".to_vec(),
        registry: MemoryRegistry::new(),
    }
}

impl Setup {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn ctx(&self) -> Context {
        Context {
            config: Config::read(&self.path("spacktainerizah.yaml")).unwrap(),
            repo: self.dir.path().to_path_buf(),
            branch: "main".into(),
            date: "2026.11.29".into(),
            tools: ToolsDirs {
                per_arch: BTreeMap::from([
                    ("amd64".into(), self.path("tools")),
                    ("arm64".into(), self.path("tools-arm64")),
                ]),
                native: None,
            },
        }
    }

    /// What the images are made from: the Spack trees at the commits of this setup, the tools
    /// of its tools folder.
    fn inputs(&self) -> Inputs {
        let git = |repository: &str, commit: &str| SpackTree::Git {
            repository: repository.into(),
            commit: commit.into(),
        };
        Inputs {
            spack: Some(git(
                "https://github.com/spack/spack.git",
                &self.spack_commit,
            )),
            spack_packages: Some(git(
                "https://github.com/spack/spack-packages.git",
                &self.packages_commit,
            )),
            tools: BTreeMap::from([
                (
                    "amd64".into(),
                    images::tools_checksum(&self.path("tools")).unwrap(),
                ),
                (
                    "arm64".into(),
                    images::tools_checksum(&self.path("tools-arm64")).unwrap(),
                ),
            ]),
            deployment_key: self.deployment_key.clone(),
        }
    }

    fn specs(&self, ctx: &Context) -> Vec<ImageSpec> {
        images::images(&ctx.repo, &ctx.config, &[], true, |_| Ok(self.inputs())).unwrap()
    }

    async fn try_plan(&self) -> anyhow::Result<Vec<Decision>> {
        let ctx = self.ctx();
        plan::plan(
            &ctx,
            &self.specs(&ctx),
            &RegistryClient::memory(&self.registry),
        )
        .await
    }

    async fn plan(&self) -> Vec<Decision> {
        self.try_plan().await.unwrap()
    }

    /// Push what `decisions` plan for `archs` as the build jobs would (each architecture's
    /// image with its labels at its own tag) and join them under the multi-arch tag.
    async fn publish(&self, decisions: &[Decision], archs: &[&str]) {
        let client = RegistryClient::memory(&self.registry);
        let mut entries: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for d in decisions
            .iter()
            .filter(|d| archs.contains(&d.arch.as_str()))
        {
            let per_arch = image(&tags::arch_tag(
                &self.ctx().config,
                &d.image,
                "latest",
                &d.arch,
            ));
            let manifest = self.registry.put_image(&per_arch, &d.arch, &d.labels);
            entries
                .entry(&d.reference)
                .or_default()
                .push(manifest.index_entry(&d.arch));
        }
        for (reference, entries) in entries {
            client
                .push_index(&image(reference), &entries)
                .await
                .unwrap();
        }
    }

    fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn edit_config(&self, from: &str, to: &str) {
        let path = self.path("spacktainerizah.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(from),
            "the example configuration has `{from}`"
        );
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }
}

fn image(name: &str) -> ImageRef {
    name.parse().unwrap()
}

/// `image/arch: reason` of every decision that builds.
fn builds(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .filter(|d| d.build)
        .map(|d| format!("{}/{}: {}", d.image, d.arch, d.reason))
        .collect()
}

#[tokio::test]
async fn nothing_in_the_registry_builds_every_image_and_architecture() {
    let s = setup();
    let d = s.plan().await;
    let planned: Vec<String> = d
        .iter()
        .map(|d| format!("{}/{}", d.image, d.arch))
        .collect();
    assert_eq!(
        planned,
        [
            "builder/amd64",
            "builder/arm64",
            "runtime/amd64",
            "runtime/arm64",
            "tools/amd64",
            "tools/arm64"
        ]
    );
    for d in &d {
        assert_eq!(d.reference, format!("{PROJECT}/{}:latest", d.image));
        assert!(d.build);
        assert_eq!(
            d.reason,
            format!("image missing ({} does not exist)", d.reference)
        );
    }
    // What the next plan compares: the builder records its Spack commit and the tools of its
    // own architecture.
    let builder = &d[0].labels;
    assert_eq!(
        builder["org.example.spacktainerizah.spack-commit"],
        SPACK_COMMIT
    );
    for (d, arch) in [(&d[0], "amd64"), (&d[1], "arm64"), (&d[5], "arm64")] {
        assert_eq!(d.arch, arch);
        assert_eq!(
            d.labels["org.example.spacktainerizah.tool-versions"],
            s.inputs().tools[arch]
        );
    }
    assert_ne!(s.inputs().tools["amd64"], s.inputs().tools["arm64"]);
}

#[tokio::test]
async fn images_with_the_planned_labels_are_up_to_date() {
    let s = setup();
    s.publish(&s.plan().await, &["amd64", "arm64"]).await;
    let d = s.plan().await;
    assert_eq!(builds(&d), Vec::<String>::new());
    assert!(d.iter().all(|d| d.reason == "up to date"), "{d:#?}");
}

/// A change to what the images are made from, what it rebuilds (`image/arch`) and why.
struct Change {
    what: &'static str,
    change: fn(&mut Setup),
    rebuilds: &'static [&'static str],
    reason: &'static str,
}

const ALL: &[&str] = &[
    "builder/amd64",
    "builder/arm64",
    "runtime/amd64",
    "runtime/arm64",
    "tools/amd64",
    "tools/arm64",
];

const CHANGES: &[Change] = &[
    Change {
        what: "a build file of the runtime",
        change: |s| s.write(&format!("{IMAGES}/runtime/extra.txt"), "x\n"),
        rebuilds: &["runtime/amd64", "runtime/arm64"],
        reason: "build files changed",
    },
    Change {
        what: "a CA certificate every image trusts",
        change: |s| {
            s.write("certificates/proxy-ca.crt", "-----BEGIN CERTIFICATE-----\n");
            s.edit_config(
                "  # ca_certificates: [certificates/proxy-ca.crt]\n",
                "  ca_certificates: [certificates/proxy-ca.crt]\n",
            );
        },
        rebuilds: ALL,
        reason: "build files changed",
    },
    Change {
        what: "the build cache the builder installs from",
        change: |s| s.edit_config("url: s3://spack-cache-arm64", "url: s3://new-arm64-cache"),
        rebuilds: &["builder/amd64", "builder/arm64"],
        reason: "build files changed",
    },
    Change {
        what: "the OS image",
        change: |s| s.edit_config("os_image: ubuntu:22.04", "os_image: ubuntu:24.04"),
        rebuilds: ALL,
        reason: "base OS image changed (ubuntu:22.04 → ubuntu:24.04)",
    },
    Change {
        what: "the Spack commit",
        change: |s| s.spack_commit = "3".repeat(40),
        rebuilds: &[
            "builder/amd64",
            "builder/arm64",
            "runtime/amd64",
            "runtime/arm64",
        ],
        reason: "Spack commit changed (1111111111111111111111111111111111111111 → 3333333333333333333333333333333333333333)",
    },
    Change {
        what: "the spack-packages commit",
        change: |s| s.packages_commit = "4".repeat(40),
        rebuilds: &["builder/amd64", "builder/arm64"],
        reason: "spack-packages commit changed",
    },
    Change {
        what: "the deployment key the builder trusts (rotated)",
        change: |s| s.deployment_key = b"deployment key 2\n".to_vec(),
        rebuilds: &["builder/amd64", "builder/arm64"],
        reason: "build files changed",
    },
    Change {
        what: "the compilers",
        change: |s| s.edit_config("%gcc@12.3.0", "%gcc@13.2.0"),
        rebuilds: &["builder/amd64", "builder/arm64"],
        reason: "compilers changed",
    },
    Change {
        what: "an amd64 tool",
        change: |s| s.write("tools/spackah", "spackah 1.1\n"),
        rebuilds: &["builder/amd64", "tools/amd64"],
        reason: "tools changed",
    },
    Change {
        what: "an arm64 tool",
        change: |s| s.write("tools-arm64/spackah", "spackah 1.1\n"),
        rebuilds: &["builder/arm64", "tools/arm64"],
        reason: "tools changed",
    },
];

#[tokio::test]
async fn each_input_rebuilds_exactly_the_images_made_from_it() {
    for c in CHANGES {
        let mut s = setup();
        s.publish(&s.plan().await, &["amd64", "arm64"]).await;
        (c.change)(&mut s);
        let d = s.plan().await;
        let rebuilt: Vec<String> = d
            .iter()
            .filter(|d| d.build)
            .map(|d| format!("{}/{}", d.image, d.arch))
            .collect();
        assert_eq!(rebuilt, c.rebuilds, "{}: {:#?}", c.what, builds(&d));
        for d in d.iter().filter(|d| d.build) {
            assert!(
                d.reason.starts_with(c.reason),
                "{}: {}/{}: {}",
                c.what,
                d.image,
                d.arch,
                d.reason
            );
        }
    }
}

#[tokio::test]
async fn an_architecture_missing_from_the_index_builds_that_architecture_only() {
    let s = setup();
    s.publish(&s.plan().await, &["amd64"]).await;
    let d = s.plan().await;
    assert_eq!(
        builds(&d),
        ["builder", "runtime", "tools"]
            .map(|i| format!("{i}/arm64: architecture arm64 missing from {PROJECT}/{i}:latest"))
    );

    // A tag holding one architecture's image, not an index, is no image for the other.
    let s = setup();
    let d = s.plan().await;
    for d in d.iter().filter(|d| d.arch == "amd64") {
        s.registry
            .put_image(&image(&d.reference), "amd64", &d.labels);
    }
    let d = s.plan().await;
    assert_eq!(
        builds(&d),
        ["builder", "runtime", "tools"]
            .map(|i| format!("{i}/arm64: architecture arm64 missing from {PROJECT}/{i}:latest"))
    );
}

#[tokio::test]
async fn a_registry_that_is_down_or_refuses_stops_the_plan_naming_it() {
    let host = image(PROJECT).registry;
    let s = setup();
    s.registry.set_unreachable(&host);
    let err = format!("{:#}", s.try_plan().await.unwrap_err());
    assert_eq!(
        err.split(": the registry in memory").next().unwrap(),
        format!("looking up {PROJECT}/builder:latest: could not reach registry {host}")
    );

    let s = setup();
    s.registry.deny(&host);
    let err = format!("{:#}", s.try_plan().await.unwrap_err());
    assert_eq!(
        err,
        format!(
            "looking up {PROJECT}/builder:latest: access to {PROJECT}/builder:latest was denied (HTTP 401)"
        )
    );
}

fn quiet() -> Printer {
    Printer::new(&OutputOptions {
        quiet: true,
        ..OutputOptions::default()
    })
}

/// Run what `decisions` ask for as the pipeline's jobs would: build and push each image and
/// architecture on `engine`, then index each image built. The per-architecture tags built.
async fn run_jobs(s: &Setup, engine: &MemoryEngine, decisions: &[Decision]) -> Vec<String> {
    let ctx = s.ctx();
    let specs = s.specs(&ctx);
    let engine_handle = Engine::memory(engine);
    let mut built = Vec::new();
    for d in decisions.iter().filter(|d| d.build) {
        let spec = specs.iter().find(|sp| sp.name == d.image).unwrap();
        let target = build::build(
            &ctx,
            spec,
            &d.arch,
            &s.inputs(),
            &[],
            &engine_handle,
            &quiet(),
        )
        .await
        .unwrap();
        engine_handle.push(&target, None).await.unwrap();
        built.push(target);
    }
    let client = RegistryClient::memory(&s.registry);
    let mut indexed: Vec<&str> = decisions
        .iter()
        .filter(|d| d.build)
        .map(|d| d.image.as_str())
        .collect();
    indexed.dedup();
    for name in indexed {
        let tag = index::index(&ctx, name, &client).await.unwrap();
        assert_eq!(tag, format!("{PROJECT}/{name}:latest"));
    }
    built
}

#[tokio::test]
async fn plan_build_push_index_then_plan_again_has_nothing_to_do() {
    let mut s = setup();
    let engine = MemoryEngine::new(&s.registry);
    let d = s.plan().await;
    let built = run_jobs(&s, &engine, &d).await;
    let per_arch: Vec<String> = ALL
        .iter()
        .map(|b| {
            let (name, arch) = b.split_once('/').unwrap();
            format!("{PROJECT}/{name}:latest-{arch}")
        })
        .collect();
    assert_eq!(built, per_arch);
    assert_eq!(engine.pushed(), per_arch);
    // Each build is asked for its architecture, with the labels the plan compares and the
    // Spack commit it records.
    for ((tag, request), d) in engine.builds().iter().zip(&d) {
        assert_eq!(
            request.architecture.as_deref(),
            Some(d.arch.as_str()),
            "{tag}"
        );
        for (k, v) in &d.labels {
            assert_eq!(request.labels.get(k), Some(v), "{k} on {tag}");
        }
    }
    let (_, builder) = &engine.builds()[0];
    assert_eq!(builder.build_args["SPACK_COMMIT"], SPACK_COMMIT);

    let again = s.plan().await;
    assert_eq!(builds(&again), Vec::<String>::new());
    let (p, _) = pipeline::pipeline(&s.ctx(), &again, "tools:1");
    assert_eq!(p.jobs.keys().collect::<Vec<_>>(), ["nothing-to-do"]);

    // A new Spack commit: the builder and runtime are built again, the tools image stays.
    s.spack_commit = "5".repeat(40);
    let d = s.plan().await;
    let built = run_jobs(&s, &engine, &d).await;
    assert_eq!(built, per_arch[..4]);
    assert_eq!(engine.builds().len(), 10);
    assert_eq!(builds(&s.plan().await), Vec::<String>::new());
    // Each architecture of the new index is the image built for it.
    let client = RegistryClient::memory(&s.registry);
    for arch in ["amd64", "arm64"] {
        let found = client
            .resolve(&image(&format!("{PROJECT}/builder:latest")), arch)
            .await
            .unwrap();
        assert_eq!(found.architecture, arch);
        assert_eq!(
            found.labels["org.example.spacktainerizah.spack-commit"],
            "5".repeat(40)
        );
    }
}

#[tokio::test]
async fn no_index_is_written_while_an_architecture_is_not_built() {
    let s = setup();
    let engine = MemoryEngine::new(&s.registry);
    let ctx = s.ctx();
    let specs = s.specs(&ctx);
    let target = build::build(
        &ctx,
        &specs[0],
        "amd64",
        &s.inputs(),
        &[],
        &Engine::memory(&engine),
        &quiet(),
    )
    .await
    .unwrap();
    Engine::memory(&engine).push(&target, None).await.unwrap();
    let err = format!(
        "{:#}",
        index::index(&ctx, "builder", &RegistryClient::memory(&s.registry))
            .await
            .unwrap_err()
    );
    assert!(
        err.starts_with(&format!(
            "reading {PROJECT}/builder:latest-arm64: {PROJECT}/builder:latest-arm64 does not exist"
        )),
        "{err}"
    );
    assert_eq!(s.registry.written(), [target]);
    assert!(builds(&s.plan().await).contains(&format!(
        "builder/amd64: image missing ({PROJECT}/builder:latest does not exist)"
    )));
}

#[tokio::test]
async fn a_failed_build_names_the_image_and_pushes_nothing() {
    let s = setup();
    let engine = MemoryEngine::new(&s.registry);
    let ctx = s.ctx();
    let specs = s.specs(&ctx);
    let tag = format!("{PROJECT}/runtime:latest-arm64");
    engine.fail_build(&tag, "E: Unable to locate package gcc-12");
    let err = format!(
        "{:#}",
        build::build(
            &ctx,
            &specs[1],
            "arm64",
            &s.inputs(),
            &[],
            &Engine::memory(&engine),
            &quiet()
        )
        .await
        .unwrap_err()
    );
    assert_eq!(
        err,
        format!("building {tag} failed: E: Unable to locate package gcc-12")
    );
    assert!(engine.pushed().is_empty() && s.registry.written().is_empty());
}

#[tokio::test]
async fn an_architecture_without_tools_builds_its_tools_images_elsewhere_and_never_with_others_tools()
 {
    let s = setup();
    let published = s.plan().await;
    s.publish(&published, &["amd64", "arm64"]).await;
    let mut ctx = s.ctx();
    ctx.tools.per_arch.remove("arm64");
    ctx.tools.native = Some(s.path("tools"));
    // Without arm64 tools here, and no arm64 tools released, the images holding them cannot be
    // compared: built, saying why (their build job, on an arm64 runner, has its own tools).
    for tool in model::commands::TOOLS {
        std::fs::write(
            s.path("tools").join(tool),
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0",
        )
        .unwrap();
    }
    let inputs = Inputs {
        tools: ctx
            .tools
            .checksums(ctx.config.architectures.keys())
            .unwrap(),
        ..s.inputs()
    };
    assert_eq!(inputs.tools.keys().collect::<Vec<_>>(), ["amd64"]);
    let specs = images::images(&ctx.repo, &ctx.config, &[], true, |_| Ok(inputs.clone())).unwrap();
    let d = plan::plan(&ctx, &specs, &RegistryClient::memory(&s.registry))
        .await
        .unwrap();
    let why = format!(
        "no arm64 tools: the tools in {} are built for amd64 (give --tools-dir arm64=DIR)",
        s.path("tools").display()
    );
    // (amd64: its stand-in tool was just replaced by an amd64 executable's header.)
    let built = builds(&d);
    assert_eq!(built.len(), 4, "{built:#?}");
    assert!(
        built[0].starts_with("builder/amd64: tools changed"),
        "{built:#?}"
    );
    let unreleased = format!("{why}; no arm64 tools released (");
    assert!(
        built[1].starts_with(&format!("builder/arm64: {unreleased}")),
        "{built:#?}"
    );
    assert!(
        built[2].starts_with("tools/amd64: tools changed"),
        "{built:#?}"
    );
    assert!(
        built[3].starts_with(&format!("tools/arm64: {unreleased}")),
        "{built:#?}"
    );
    // And no arm64 image is ever built with the amd64 tools.
    let engine = MemoryEngine::new(&s.registry);
    let err = build::build(
        &ctx,
        &specs[2],
        "arm64",
        &inputs,
        &[],
        &Engine::memory(&engine),
        &quiet(),
    )
    .await
    .unwrap_err();
    assert_eq!(format!("{err:#}"), format!("tools: {why}"));
    assert!(engine.builds().is_empty());

    // With the arm64 tools released (the image arm64 jobs run in, labelled with its tools'
    // checksum), the arm64 images are compared with those: up to date, not rebuilt on every
    // pipeline (a rebuild's new digest would change every environment's concretization inputs).
    let arm_tools = published
        .iter()
        .find(|d| d.image == "tools" && d.arch == "arm64")
        .unwrap();
    s.registry.put_image(
        &image(&ctx.config.release_tools_image()),
        "arm64",
        &arm_tools.labels,
    );
    let d = plan::plan(&ctx, &specs, &RegistryClient::memory(&s.registry))
        .await
        .unwrap();
    let arm: Vec<_> = d.iter().filter(|d| d.arch == "arm64").collect();
    assert!(arm.iter().all(|d| !d.build), "{arm:#?}");
    // A new arm64 release of the tools rebuilds them.
    let mut newer = arm_tools.labels.clone();
    let label =
        model::labels::namespaced(&ctx.config.labels.namespace, model::labels::TOOL_VERSIONS);
    newer.insert(label.clone(), "sha256:newer".into());
    s.registry
        .put_image(&image(&ctx.config.release_tools_image()), "arm64", &newer);
    let d = plan::plan(&ctx, &specs, &RegistryClient::memory(&s.registry))
        .await
        .unwrap();
    let built = builds(&d);
    assert!(
        built.iter().any(
            |b| b.starts_with("tools/arm64: tools changed (") && b.ends_with("→ sha256:newer)")
        ),
        "{built:#?}"
    );
    assert!(arm_tools.labels.contains_key(&label));
}
