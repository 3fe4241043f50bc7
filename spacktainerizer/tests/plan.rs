//! `spacktainerizer plan` against the real registry: missing images, up to date after a push
//! with the planned labels, a changed build file, a new Spack commit, an architecture missing
//! from the index, and a registry that is down.

use std::process::Output;

use oci::registry::{Descriptor, ImageRef, RegistryClient};
use serde_json::Value;
use spacktainerizah_tests::{copy_dir, git, push_test_image, registry, repo_root, unique_name};

/// The repository folder whose build files replace the tools' own.
const IMAGES: &str = "base-images";

struct Setup {
    dir: tempfile::TempDir,
    namespace: String,
}

/// A repository with its own copy of the image folders (`base_images.build_files`), a local
/// "Spack" git repository, and a configuration pointing at the test registry under a fresh
/// namespace.
fn setup(registry_url: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &repo_root().join("spacktainerizer/images"),
        &dir.path().join(IMAGES),
    );
    let spack = dir.path().join("spack.git");
    std::fs::create_dir_all(&spack).unwrap();
    git(&spack, &["init", "-q", "-b", "releases/v1.0"]);
    git(&spack, &["commit", "-q", "--allow-empty", "-m", "one"]);
    // The example's Spack 1.x takes its packages from spack-packages.
    let packages = dir.path().join("spack-packages.git");
    std::fs::create_dir_all(&packages).unwrap();
    git(&packages, &["init", "-q", "-b", "releases/v2025.07"]);
    git(&packages, &["commit", "-q", "--allow-empty", "-m", "one"]);
    // Stand-ins for the arm64 tools (the amd64 ones are this build's own).
    let arm64_tools = dir.path().join("tools-arm64");
    std::fs::create_dir_all(&arm64_tools).unwrap();
    for tool in model::commands::TOOLS {
        std::fs::write(arm64_tools.join(tool), format!("{tool} for arm64")).unwrap();
    }
    let namespace = unique_name("ns");
    let config = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: registry.example.org/hpc/spacktainers",
            &format!("url: {registry_url}/{namespace}"),
        )
        .replace(
            "repository: https://github.com/spack/spack.git",
            &format!("repository: {}", spack.display()),
        )
        .replace(
            "repository: https://github.com/spack/spack-packages.git",
            &format!("repository: {}", packages.display()),
        )
        .replace(
            "base_images:\n",
            &format!("base_images:\n  build_files: {IMAGES}\n"),
        );
    std::fs::write(dir.path().join("spacktainerizah.yaml"), config).unwrap();
    Setup { dir, namespace }
}

/// `--tools-dir arm64=…`: the setup's stand-in arm64 tools.
fn arm64_tools(s: &Setup) -> String {
    format!(
        "--tools-dir=arm64={}",
        s.dir.path().join("tools-arm64").display()
    )
}

fn plan(s: &Setup) -> (Option<i32>, Vec<Value>, String) {
    let out: Output = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spacktainerizer"))
        .args(["plan", "--output", "json", "--branch", "main", "--repo"])
        .arg(s.dir.path())
        .arg("--config")
        .arg(s.dir.path().join("spacktainerizah.yaml"))
        .arg(arm64_tools(s))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let decisions = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code(), decisions, stderr)
}

fn build_set(decisions: &[Value]) -> Vec<String> {
    decisions
        .iter()
        .filter(|d| d["build"] == true)
        .map(|d| {
            format!(
                "{}/{}: {}",
                d["image"].as_str().unwrap(),
                d["arch"].as_str().unwrap(),
                d["reason"].as_str().unwrap()
            )
        })
        .collect()
}

/// Push what the plan says should be built, with its labels, as per-arch images joined by the
/// multi-arch `latest` index (only `archs`).
async fn publish(s: &Setup, decisions: &[Value], archs: &[&str]) {
    let reg = registry();
    let client = RegistryClient::new(&reg, None).unwrap();
    let mut by_image: std::collections::BTreeMap<String, Vec<Descriptor>> = Default::default();
    for d in decisions
        .iter()
        .filter(|d| archs.contains(&d["arch"].as_str().unwrap()))
    {
        let (image, arch) = (d["image"].as_str().unwrap(), d["arch"].as_str().unwrap());
        let labels: Vec<(String, String)> = d["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let repo = format!("{}/{image}", s.namespace);
        push_test_image(&reg, &repo, &format!("latest-{arch}"), arch, &pairs, None);
        let m = client
            .manifest(
                &format!("{reg}/{repo}:latest-{arch}")
                    .parse::<ImageRef>()
                    .unwrap(),
            )
            .await
            .unwrap();
        by_image.entry(repo).or_default().push(m.index_entry(arch));
    }
    for (repo, entries) in by_image {
        client
            .push_index(&format!("{reg}/{repo}:latest").parse().unwrap(), &entries)
            .await
            .unwrap();
    }
}

#[tokio::test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
async fn plan_builds_what_changed_and_nothing_else() {
    let s = setup(&registry());
    let (code, decisions, err) = plan(&s);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(decisions.len(), 6, "three images, two architectures");
    assert!(
        decisions
            .iter()
            .all(|d| d["build"] == true
                && d["reason"].as_str().unwrap().starts_with("image missing"))
    );

    publish(&s, &decisions, &["amd64", "arm64"]).await;
    let (code, again, _) = plan(&s);
    assert_eq!(code, Some(0), "{:?}", build_set(&again));

    // A build file changes: that image rebuilds, on every architecture.
    std::fs::write(s.dir.path().join(IMAGES).join("runtime/extra.txt"), "x").unwrap();
    let (_, d, _) = plan(&s);
    assert_eq!(
        build_set(&d)
            .iter()
            .filter(|b| b.contains("build files changed"))
            .count(),
        2,
        "{:?}",
        build_set(&d)
    );
    assert!(build_set(&d).iter().all(|b| b.starts_with("runtime/")));
    std::fs::remove_file(s.dir.path().join(IMAGES).join("runtime/extra.txt")).unwrap();

    // A new Spack commit: builder and runtime, not the tools image.
    git(
        &s.dir.path().join("spack.git"),
        &["commit", "-q", "--allow-empty", "-m", "two"],
    );
    let (_, d, _) = plan(&s);
    let builds = build_set(&d);
    assert_eq!(builds.len(), 4, "{builds:?}");
    assert!(
        builds
            .iter()
            .all(|b| b.contains("Spack commit changed") && !b.starts_with("tools/"))
    );
}

#[tokio::test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
async fn an_architecture_missing_from_the_index_builds_that_architecture_only() {
    let s = setup(&registry());
    let (_, decisions, _) = plan(&s);
    publish(&s, &decisions, &["amd64"]).await;
    let (code, d, _) = plan(&s);
    assert_eq!(code, Some(1));
    let builds = build_set(&d);
    assert_eq!(builds.len(), 3, "{builds:?}");
    assert!(
        builds
            .iter()
            .all(|b| b.contains("/arm64: architecture arm64 missing")),
        "{builds:?}"
    );
}

#[test]
fn a_registry_that_is_down_stops_the_plan() {
    let s = setup("127.0.0.1:9");
    let (code, decisions, err) = plan(&s);
    assert_eq!(code, Some(2), "{decisions:?}");
    assert!(
        err.contains("could not reach registry 127.0.0.1:9"),
        "{err}"
    );
    assert!(
        decisions.is_empty(),
        "nothing is planned for a registry that did not answer"
    );
}

/// Stand-in Dockerfiles (a static busybox, nothing pulled): this test is about the plan, the
/// pipeline and the index; `tests/tests/images.rs` builds the real ones.
fn stand_in_images(s: &Setup) {
    for image in ["builder", "runtime", "tools"] {
        let dir = s.dir.path().join(IMAGES).join(image);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy("/bin/busybox", dir.join("busybox")).unwrap();
        std::fs::write(
            dir.join("Dockerfile"),
            "FROM scratch\nARG SPACK_COMMIT\nCOPY busybox /bin/busybox\nLABEL stand-in=yes\n",
        )
        .unwrap();
    }
}

fn tool(s: &Setup, args: &[&str]) -> Output {
    spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spacktainerizer"))
        .args(args)
        .args(["--branch", "my-feature", "--date", "2026.11.29", "--repo"])
        .arg(s.dir.path())
        .arg("--config")
        .arg(s.dir.path().join("spacktainerizah.yaml"))
        .arg(arm64_tools(s))
        .output()
        .unwrap()
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the OCI registry (./scripts/test.sh starts them)"]
async fn pipeline_build_index_then_up_to_date() {
    let s = setup(&registry());
    stand_in_images(&s);
    let file = s.dir.path().join("base-images.yml");
    let dotenv = s.dir.path().join("base-images.env");
    let out = tool(
        &s,
        &[
            "pipeline",
            "--file",
            &file.display().to_string(),
            "--dotenv",
            &dotenv.display().to_string(),
        ],
    );
    spacktainerizah_tests::succeeded(&out);
    let text = std::fs::read_to_string(&file).unwrap();
    spacktainerizah_tests::validate_gitlab_ci(&text).unwrap();
    let p = model::ci::Pipeline::read(&file).unwrap();
    assert_eq!(p.jobs.keys().filter(|k| k.starts_with("build ")).count(), 6);
    assert_eq!(p.jobs["build builder arm64"].tags, vec!["aws_graviton"]);
    let needs: Vec<&str> = p.jobs["index builder"]
        .needs
        .as_ref()
        .unwrap()
        .iter()
        .map(model::ci::Need::job_name)
        .collect();
    assert_eq!(needs, ["build builder amd64", "build builder arm64"]);
    assert_eq!(
        std::fs::read_to_string(&dotenv).unwrap(),
        "BUILDER_TAG=2026.11.29-my-feature\n"
    );

    // Run what the pipeline says, as its jobs would.
    for job in p
        .jobs
        .values()
        .filter(|j| j.stage.as_deref() == Some("build"))
    {
        let args: Vec<&str> = job.script[0]
            .split_whitespace()
            .skip(1)
            .take_while(|a| *a != "--branch")
            .collect();
        let out = tool(&s, &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for image in ["builder", "runtime", "tools"] {
        let out = tool(&s, &["index", "--image", image]);
        spacktainerizah_tests::succeeded(&out);
    }
    let out = tool(&s, &["plan", "--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The labels read back: the plan's inputs, the OCI ones, and the right architecture.
    let client = RegistryClient::new(&registry(), None).unwrap();
    let tag: ImageRef = format!(
        "{}/{}/builder:2026.11.29-my-feature",
        registry(),
        s.namespace
    )
    .parse()
    .unwrap();
    let arm = client.resolve(&tag, "arm64").await.unwrap();
    assert_eq!(arm.architecture, "arm64");
    assert_eq!(arm.labels["org.opencontainers.image.title"], "builder");
    assert!(arm.labels.keys().any(|k| k.ends_with(".spack-commit")));

    // Nothing left to build: a pipeline with one no-op job, still valid.
    let out = tool(&s, &["pipeline", "--file", &file.display().to_string()]);
    assert!(out.status.success());
    let p = model::ci::Pipeline::read(&file).unwrap();
    assert_eq!(p.jobs.len(), 1);
    spacktainerizah_tests::validate_gitlab_ci(&std::fs::read_to_string(&file).unwrap()).unwrap();
}
