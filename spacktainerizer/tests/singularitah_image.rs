//! `spacktainerizer plan|build|index --image singularitah` against the real registry and
//! daemon: built for both architectures, up to date after, rebuilt when the tool versions
//! change.

use std::process::Output;

use spacktainerizah_tests::{registry, repo_root, unique_name};

fn run(repo: &std::path::Path, args: &[&str]) -> Output {
    spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spacktainerizer"))
        .args(args)
        .args(["--image", "singularitah"])
        .args(["--branch", "main", "--output", "json", "--repo"])
        .arg(repo)
        .arg("--config")
        .arg(repo.join("spacktainerizah.yaml"))
        .output()
        .unwrap()
}

#[test]
fn build_index_up_to_date_then_new_tool_versions() {
    let repo = tempfile::tempdir().unwrap();
    let image = repo.path().join("spacktainerizer/images/singularitah");
    std::fs::create_dir_all(&image).unwrap();
    std::fs::copy("/bin/busybox", image.join("busybox")).unwrap();
    // A stand-in for the real Dockerfile, which needs the network.
    std::fs::write(
        image.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n",
    )
    .unwrap();
    let config = std::fs::read_to_string(repo_root().join("spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: registry.example.org/hpc/spacktainers",
            &format!("url: {}/{}", registry(), unique_name("sing")),
        );
    std::fs::write(repo.path().join("spacktainerizah.yaml"), &config).unwrap();

    let out = run(repo.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let plan: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan.len(), 2, "one image, two architectures");
    assert!(plan.iter().all(|d| d["image"] == "singularitah"));
    for arch in ["amd64", "arm64"] {
        let out = run(repo.path(), &["build", "--arch", arch, "--push"]);
        spacktainerizah_tests::succeeded(&out);
    }
    assert!(run(repo.path(), &["index"]).status.success());
    assert_eq!(run(repo.path(), &["plan"]).status.code(), Some(0));

    std::fs::write(
        repo.path().join("spacktainerizah.yaml"),
        config.replace(
            "singularity_version: \"4.1.5\"",
            "singularity_version: \"4.2.0\"",
        ),
    )
    .unwrap();
    let out = run(repo.path(), &["plan"]);
    assert_eq!(out.status.code(), Some(1));
    let plan: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        plan.iter().all(|d| d["reason"]
            .as_str()
            .unwrap()
            .starts_with("tool versions changed")),
        "{plan:?}"
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["plan", "--help"],
        vec!["build", "--help"],
        vec!["index", "--help"],
        vec!["--version"],
    ] {
        let out = spacktainerizah_tests::run_tool(env!("CARGO_BIN_EXE_spacktainerizer"), &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
