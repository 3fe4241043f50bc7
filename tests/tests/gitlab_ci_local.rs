//! The generated CI files read by a third-party GitLab CI implementation, `gitlab-ci-local`
//! (installed by the test command): the committed example chain in a checkout with a remote,
//! and which jobs a default-branch push, a merge request, a manual run and a schedule each
//! start; the child pipelines the tools generate parse and validate too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use spacktainerizah_tests::{copy_dir, git, repo_root};

mod support;

fn gitlab_ci_local() -> PathBuf {
    PathBuf::from(
        std::env::var("SPACKTAINERIZAH_TEST_GITLAB_CI_LOCAL")
            .expect("the test command installs gitlab-ci-local"),
    )
}

/// `dir` made a repository on `main` holding all its files, with the project `name` on the
/// example GitLab as its `origin`.
fn commit_all(dir: &Path, name: &str) {
    git(dir, &["init", "-q", "-b", "main"]);
    let origin = format!("https://gitlab.example.org/hpc/{name}.git");
    git(dir, &["remote", "add", "origin", &origin]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", name]);
}

/// A definitions repository like `examples/` with its committed `.gitlab-ci.yml`, the child
/// pipelines the tools write beside it, and an `origin` remote; on `branch`.
fn checkout(branch: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples"), dir.path());
    for (file, p) in support::generated() {
        if file != ".gitlab-ci.yml" {
            std::fs::write(dir.path().join(&file), p.to_yaml()).unwrap();
        }
    }
    commit_all(dir.path(), "definitions");
    if branch != "main" {
        git(dir.path(), &["checkout", "-q", "-b", branch]);
    }
    dir
}

/// The jobs `gitlab-ci-local` would run for `source` (`when: never` left out), from `file`.
fn jobs(dir: &Path, file: &str, source: &str) -> BTreeSet<String> {
    let out = Command::new(gitlab_ci_local())
        .args(["--list-csv", "--file", file])
        .args(["--variable", &format!("CI_PIPELINE_SOURCE={source}")])
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gitlab-ci-local on {file} ({source}): {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split(';').next())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

const BUILD: &[&str] = &[
    "generate base images",
    "base images",
    "generate build cache amd64",
    "build cache amd64",
    "generate build cache arm64",
    "build cache arm64",
    "generate containers",
    "containers",
    "pin base images",
];

#[test]
#[ignore = "NOT RUN: needs gitlab-ci-local (./scripts/test.sh installs it)"]
fn each_pipeline_source_starts_the_jobs_it_should() {
    let main = checkout("main");
    let mut push = set(BUILD);
    // The default branch cleans the production caches after building.
    push.extend(set(&["clean build cache amd64", "clean build cache arm64"]));
    assert_eq!(jobs(main.path(), ".gitlab-ci.yml", "push"), push);
    assert_eq!(jobs(main.path(), ".gitlab-ci.yml", "web"), push);
    let scheduled = set(&[
        "scheduled clean build cache amd64",
        "scheduled clean branch build cache amd64",
        "scheduled clean build cache arm64",
        "scheduled prune branch SIFs",
        "scheduled prune branch SIFs shared",
    ]);
    assert_eq!(
        jobs(main.path(), ".gitlab-ci.yml", "schedule"),
        scheduled,
        "a schedule runs the janitors only"
    );

    let feature = checkout("my-feature");
    // Other branches fill amd64's branch cache, through the trigger holding its resource
    // group.
    let mut branch_build = set(BUILD);
    branch_build.remove("build cache amd64");
    branch_build.insert("build cache amd64 (branches)".into());
    assert_eq!(
        jobs(feature.path(), ".gitlab-ci.yml", "merge_request_event"),
        branch_build,
        "a merge request builds and cleans nothing"
    );
    let mut web = branch_build.clone();
    // A manual run of a branch cleans that branch's own cache, never a production one.
    web.insert("clean branch build cache amd64".into());
    assert_eq!(jobs(feature.path(), ".gitlab-ci.yml", "web"), web);
    assert!(
        jobs(feature.path(), ".gitlab-ci.yml", "push").is_empty(),
        "a push to a branch without a merge request starts no pipeline"
    );
}

#[test]
#[ignore = "NOT RUN: needs gitlab-ci-local (./scripts/test.sh installs it)"]
fn the_generated_child_pipelines_parse() {
    let main = checkout("main");
    for (file, p) in support::generated() {
        if file == ".gitlab-ci.yml" {
            continue;
        }
        // Child pipelines run whatever started them: every job, on any source.
        let found = jobs(main.path(), &file, "parent_pipeline");
        let want: BTreeSet<String> = p.jobs.keys().cloned().collect();
        assert_eq!(found, want, "{file}");
    }
}

/// The project's own CI tests and publishes the tools; it is not a chain (that belongs to a
/// definitions repository).
#[test]
#[ignore = "NOT RUN: needs gitlab-ci-local (./scripts/test.sh installs it)"]
fn the_projects_own_ci_tests_builds_and_publishes_the_tools_image() {
    let text = std::fs::read_to_string(repo_root().join(".gitlab-ci.yml")).unwrap();
    spacktainerizah_tests::validate_gitlab_ci(&text).unwrap();
    assert!(
        !text.contains("trigger:") && !text.contains("spack-cacher prepare"),
        "no chain in the tools' repository"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join(".gitlab-ci.yml"),
        dir.path().join(".gitlab-ci.yml"),
    )
    .unwrap();
    copy_dir(&repo_root().join(".ci"), &dir.path().join(".ci"));
    commit_all(dir.path(), "spacktainerizah");
    assert_eq!(
        jobs(dir.path(), ".gitlab-ci.yml", "push"),
        set(&["test", "build tools", "build tools arm64"])
    );
    let out = Command::new(gitlab_ci_local())
        .args(["--list-csv", "--variable", "CI_COMMIT_TAG=v0.1.0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    for job in [
        "publish tools image amd64;",
        "publish tools image arm64;",
        "publish tools index;",
    ] {
        assert!(listed.contains(job), "{job} {listed}");
    }

    // The release configuration names the image the example chain starts from.
    let out = Command::new(repo_root().join(".ci/tools-image-config.sh"))
        .args([
            "registry.example.org/hpc/spacktainerizah",
            env!("CARGO_PKG_VERSION"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = dir.path().join("release.yaml");
    std::fs::write(&path, &out.stdout).unwrap();
    let release = model::config::Config::read(&path).unwrap();
    let tag = spacktainerizer::tags::tag(&release, "release", "2026.11.30");
    // The index joining both architectures' images (`<tag>-<arch>`).
    assert_eq!(
        format!("{}/tools:{tag}", release.registry.url),
        support::config().release_tools_image()
    );
    for arch in ["amd64", "arm64"] {
        assert_eq!(
            spacktainerizer::tags::arch_tag(&release, "tools", &tag, arch),
            format!("{}-{arch}", support::config().release_tools_image())
        );
    }
}
