//! `spacktainerizer plan|build|index --image tools` against the real registry and daemon.
//!
//! Built for both architectures, up to date after, rebuilt on the architecture whose tools
//! change. The build files are a stand-in (`tests/tests/images.rs` builds the real ones); the
//! tools are stand-in files whose checksum is what the plan compares.

use std::path::Path;
use std::process::Output;

use spacktainerizah_tests::{registry, repo_root, unique_name};

fn run(repo: &Path, args: &[&str]) -> Output {
    spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spacktainerizer"))
        .args(args)
        .args(["--image", "tools"])
        .args(["--branch", "main", "--output", "json", "--repo"])
        .arg(repo)
        .arg("--config")
        .arg(repo.join("spacktainerizah.yaml"))
        .arg(format!(
            "--tools-dir=amd64={}",
            repo.join("tools").display()
        ))
        .arg(format!(
            "--tools-dir=arm64={}",
            repo.join("tools-arm64").display()
        ))
        .output()
        .unwrap()
}

#[test]
#[ignore = "NOT RUN: needs the Docker daemon and the OCI registry (./scripts/test.sh starts them)"]
fn build_index_up_to_date_then_new_tools() {
    let repo = tempfile::tempdir().unwrap();
    let image = repo.path().join("base-images/tools");
    std::fs::create_dir_all(&image).unwrap();
    std::fs::copy("/bin/busybox", image.join("busybox")).unwrap();
    std::fs::write(
        image.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY bin/ /usr/local/bin/\n",
    )
    .unwrap();
    let tools = repo.path().join("tools");
    for (dir, arch) in [
        (&tools, "amd64"),
        (&repo.path().join("tools-arm64"), "arm64"),
    ] {
        std::fs::create_dir_all(dir).unwrap();
        for tool in model::commands::TOOLS {
            std::fs::write(dir.join(tool), format!("{tool} 1.0 {arch}")).unwrap();
        }
    }
    let config = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: registry.example.org/hpc/spacktainers",
            &format!("url: {}/{}", registry(), unique_name("tools")),
        )
        .replace(
            "base_images:\n",
            "base_images:\n  build_files: base-images\n",
        );
    std::fs::write(repo.path().join("spacktainerizah.yaml"), &config).unwrap();

    let out = run(repo.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let plan: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan.len(), 2, "one image, two architectures");
    assert!(plan.iter().all(|d| d["image"] == "tools"));
    for arch in ["amd64", "arm64"] {
        let out = run(repo.path(), &["build", "--arch", arch, "--push"]);
        spacktainerizah_tests::succeeded(&out);
    }
    assert!(run(repo.path(), &["index"]).status.success());
    assert_eq!(run(repo.path(), &["plan"]).status.code(), Some(0));

    // A new build of one amd64 tool: the tools image is out of date on amd64 only (each
    // architecture's image holds its own executables).
    std::fs::write(tools.join("spackah"), "spackah 1.1").unwrap();
    let out = run(repo.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let plan: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let builds: Vec<(&str, &str)> = plan
        .iter()
        .filter(|d| d["build"] == true)
        .map(|d| (d["arch"].as_str().unwrap(), d["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(builds.len(), 1, "{plan:?}");
    assert_eq!(builds[0].0, "amd64");
    assert!(builds[0].1.starts_with("tools changed"), "{plan:?}");
}
