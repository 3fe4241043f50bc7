//! `spack-cacher generate` reusing recorded concretizations: an unchanged environment whose
//! specs are all in the cache needs no Spack; a changed one is concretized, alone.

use std::path::{Path, PathBuf};

use model::config::Config;
use spack_cacher::prepare::{self, PrepareOptions};
use spacktainerizah_tests::{copy_dir, repo_root};

/// A copy of the examples whose caches are folders under `work`, prepared for `branch` with a
/// builder pinned by digest.
struct Project {
    work: tempfile::TempDir,
    repo: PathBuf,
    config: PathBuf,
    envs: PathBuf,
}

const BUILDER: &str = "registry.example.org/builder@sha256:0000000000000000000000000000000000000000000000000000000000000001";
const BRANCH: &str = "my-feature";

impl Project {
    fn new() -> Project {
        let work = tempfile::tempdir().unwrap();
        let repo = work.path().join("repo");
        copy_dir(&repo_root().join("examples"), &repo);
        let text = std::fs::read_to_string(repo.join("spacktainerizah.yaml"))
            .unwrap()
            .replace(
                "url: s3://spack-build-cache\n",
                &format!("url: file://{}/prod\n", work.path().display()),
            )
            .replace(
                "branch_url: s3://spack-build-cache-dev",
                &format!("branch_url: file://{}/dev", work.path().display()),
            );
        let config = work.path().join("spacktainerizah.yaml");
        std::fs::write(&config, text).unwrap();
        let envs = work.path().join("envs");
        Project {
            work,
            repo,
            config,
            envs,
        }
    }

    fn prepare(&self) {
        self.prepare_with(Some(BUILDER));
    }

    /// `prepare` as CI runs it, with the builder it is given (by digest, or `None`).
    fn prepare_with(&self, builder_image: Option<&str>) {
        prepare::run(&PrepareOptions {
            repo: self.repo.clone(),
            config: Config::read(&self.config).unwrap(),
            output: self.envs.clone(),
            branch: BRANCH.into(),
            base_tag: "2026.12.06-my-feature".into(),
            builder_image: builder_image.map(str::to_string),
            project_dir: Some(self.repo.clone()),
        })
        .unwrap();
    }

    fn cacher(&self, args: &[&str]) -> std::process::Output {
        spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spack-cacher"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--envs")
            .arg(&self.envs)
            // No Spack on PATH: what reuses needs none.
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    }

    fn generate(&self, extra: &[&str]) -> std::process::Output {
        let pipelines = self.work.path().join("pipelines").display().to_string();
        let mut args = vec![
            "generate",
            "--arch",
            "amd64",
            "--branch",
            BRANCH,
            "--pipelines",
            &pipelines,
        ];
        args.extend(extra);
        self.cacher(&args)
    }

    fn environments(&self) -> Vec<PathBuf> {
        prepare::environments(&self.envs, "amd64").unwrap()
    }

    /// As a first pipeline leaves it: every environment concretized (the greeter's lockfile)
    /// and recorded with its inputs.
    fn concretized_and_recorded(&self) {
        self.prepare();
        for e in self.environments() {
            std::fs::copy(greeter_lock(), e.join("spack.lock")).unwrap();
        }
        spacktainerizah_tests::succeeded(
            &self.cacher(&["record", "--arch", "amd64", "--branch", BRANCH]),
        );
    }

    /// The branch cache with a v2 index listing every spec of `lock` but `except`.
    fn cache_with(&self, lock: &Path, except: Option<&str>) {
        let lock: serde_json::Value =
            serde_json::from_slice(&std::fs::read(lock).unwrap()).unwrap();
        let mut installs = serde_json::Map::new();
        for (hash, spec) in lock["concrete_specs"].as_object().unwrap() {
            if Some(hash.as_str()) == except {
                continue;
            }
            let mut spec = spec.clone();
            spec["hash"] = hash.clone().into();
            installs.insert(
                hash.clone(),
                serde_json::json!({"spec": spec, "ref_count": 0, "in_buildcache": true}),
            );
        }
        let index = serde_json::json!({"database": {"version": "7", "installs": installs}});
        let path = self.work.path().join("dev/build_cache/index.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec(&index).unwrap()).unwrap();
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn greeter_lock() -> PathBuf {
    repo_root().join("tests/fixtures/spack/lockfiles/greeter__spack-1.0.2.lock")
}

#[test]
fn unchanged_environments_reuse_their_lockfile_and_a_changed_one_is_concretized_alone() {
    let p = Project::new();
    p.prepare();
    let envs = p.environments();
    assert!(envs.len() >= 3, "{envs:?}");
    for e in &envs {
        assert!(e.join("inputs.json").is_file(), "{}", e.display());
        std::fs::copy(greeter_lock(), e.join("spack.lock")).unwrap();
    }
    // Nothing recorded yet: every environment needs Spack.
    let first = p.generate(&["--spack", "/bin/false"]);
    assert_eq!(first.status.code(), Some(2), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("no earlier concretization recorded"),
        "{}",
        stderr(&first)
    );

    // As the pipeline does: the concretized lockfiles recorded with their inputs.
    for e in &envs {
        std::fs::copy(greeter_lock(), e.join("spack.lock")).unwrap();
    }
    spacktainerizah_tests::succeeded(&p.cacher(&["record", "--arch", "amd64", "--branch", BRANCH]));
    p.cache_with(&greeter_lock(), None);

    // The next pipeline: prepared again from scratch, nothing changed.
    std::fs::remove_dir_all(&p.envs).unwrap();
    p.prepare();
    let out = p.generate(&[]);
    let err = spacktainerizah_tests::succeeded(&out);
    let log = stderr(&out);
    assert!(
        log.contains(&format!("{0} of {0} environments reused", envs.len())),
        "{log}{err}"
    );
    for e in &envs {
        let name = e.file_name().unwrap().to_string_lossy();
        assert!(
            log.contains(&format!("amd64/{name}: reused")),
            "{name} not reused: {log}"
        );
        assert_eq!(
            std::fs::read(e.join("spack.lock")).unwrap(),
            std::fs::read(greeter_lock()).unwrap(),
            "the recorded lockfile is the environment's again"
        );
    }
    // What `process` makes of it: the no-op child pipeline, which needs no builder image.
    let children = p.work.path().join("children");
    let pipelines = p.work.path().join("pipelines").display().to_string();
    let children_arg = children.display().to_string();
    let processed = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spack-cacher"))
        .args([
            "process",
            "--arch",
            "amd64",
            "--out",
            &children_arg,
            "--artifacts-job",
            "generate",
            &pipelines,
        ])
        .arg("--config")
        .arg(&p.config)
        .output()
        .unwrap();
    spacktainerizah_tests::succeeded(&processed);
    let child = std::fs::read_to_string(children.join("amd64.yml")).unwrap();
    assert!(child.contains("nothing-to-do"), "{child}");
    assert!(!child.contains("image"), "{child}");

    // One definition changes: only its environment is concretized again (here by a Spack that
    // fails, which names what it was asked to do).
    let greeter = p.repo.join("container_definitions/amd64/greeter.yaml");
    let text = std::fs::read_to_string(&greeter).unwrap();
    std::fs::write(&greeter, text.replace("  - greeter", "  - greeter@1.0")).unwrap();
    std::fs::remove_dir_all(&p.envs).unwrap();
    p.prepare();
    let out = p.generate(&["--spack", "/bin/false"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("amd64/greeter: concretized: changed: spack.yaml"),
        "{log}"
    );
    assert!(
        log.contains(&format!("1 of {} environments failed", envs.len())),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{} of {} environments reused",
            envs.len() - 1,
            envs.len()
        )),
        "{log}"
    );
}

#[test]
fn a_spec_missing_from_the_cache_makes_spack_write_its_jobs_without_concretizing() {
    let p = Project::new();
    p.concretized_and_recorded();
    // greetlib was never pushed (its build failed, say).
    p.cache_with(&greeter_lock(), Some("2yojqqvtf4yzbylp7kolb37t2unx5mp7"));
    let out = p.generate(&["--spack", "/bin/false"]);
    assert_eq!(out.status.code(), Some(2));
    let log = stderr(&out);
    assert!(
        log.contains("1 of 5 specs are not in the cache: spack ci generate"),
        "{log}"
    );
    assert!(log.contains("ci generate"), "{log}");
    assert!(
        !log.contains("concretize -f"),
        "a reused environment was concretized: {log}"
    );
}

#[test]
fn a_changed_package_repository_or_builder_concretizes_again() {
    let p = Project::new();
    p.concretized_and_recorded();
    p.cache_with(&greeter_lock(), None);
    // A package of the example repository changes.
    let package = spacktainerizah_tests::walk(&p.repo.join("packages"))
        .into_iter()
        .find(|f| f.ends_with("package.py"))
        .unwrap();
    let mut text = std::fs::read_to_string(&package).unwrap();
    text.push_str("\n# a change\n");
    std::fs::write(&package, text).unwrap();
    std::fs::remove_dir_all(&p.envs).unwrap();
    p.prepare();
    let out = p.generate(&["--spack", "/bin/false"]);
    assert_eq!(out.status.code(), Some(2));
    let log = stderr(&out);
    assert!(log.contains("changed: $CI_PROJECT_DIR/packages"), "{log}");

    // A builder that is not pinned by digest says nothing certain about Spack.
    std::fs::remove_dir_all(&p.envs).unwrap();
    p.prepare_with(None);
    let out = p.generate(&["--spack", "/bin/false"]);
    assert!(
        stderr(&out).contains("the builder is not pinned by digest"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unreadable_index_or_a_second_layout_without_the_spec_leaves_the_check_to_spack() {
    let p = Project::new();
    p.concretized_and_recorded();
    p.cache_with(&greeter_lock(), None);
    // The v3 layout too, without the specs: the builder's Spack may read that one.
    let v3 = p.work.path().join("dev/v3/layout.json");
    std::fs::create_dir_all(v3.parent().unwrap()).unwrap();
    std::fs::write(&v3, r#"{"version": 3}"#).unwrap();
    let out = p.generate(&["--spack", "/bin/false"]);
    let log = stderr(&out);
    assert!(
        log.contains("5 of 5 specs are not in the cache: spack ci generate"),
        "{log}"
    );
    std::fs::remove_file(&v3).unwrap();
    // A damaged index: said, and Spack decides; never an error that stops the others.
    std::fs::write(
        p.work.path().join("dev/build_cache/index.json"),
        "{not json",
    )
    .unwrap();
    let out = p.generate(&["--spack", "/bin/false"]);
    let log = stderr(&out);
    assert!(
        log.contains("warning:") && log.contains("build_cache/index.json"),
        "{log}"
    );
    assert!(
        log.contains("5 of 5 specs are not in the cache: spack ci generate")
            && !log.contains("concretize -f"),
        "{log}"
    );
}

#[test]
fn an_include_or_repository_prepare_cannot_checksum_is_concretized_every_time() {
    let p = Project::new();
    let template = p.repo.join("spack.yaml");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        text.replace(
            "  repos:\n  - packages\n",
            "  repos:\n  - packages\n  - $SITE_REPOS/extra\n",
        ),
    )
    .unwrap();
    p.prepare();
    for e in p.environments() {
        assert!(!e.join("inputs.json").exists(), "{}", e.display());
    }
    let out = p.generate(&["--spack", "/bin/false"]);
    assert!(
        stderr(&out).contains(
            "not reusable: package repository `$SITE_REPOS/extra` is not a path prepare can checksum"
        ),
        "{}",
        stderr(&out)
    );

    // An included file of the project is part of the inputs: changing it concretizes again.
    std::fs::write(
        &template,
        text.replace(
            "  view: false\n",
            "  view: false\n  include:\n  - $CI_PROJECT_DIR/site.yaml\n",
        ),
    )
    .unwrap();
    std::fs::write(p.repo.join("site.yaml"), "config:\n  build_jobs: 2\n").unwrap();
    std::fs::remove_dir_all(&p.envs).unwrap();
    p.concretized_and_recorded();
    p.cache_with(&greeter_lock(), None);
    std::fs::remove_dir_all(&p.envs).unwrap();
    p.prepare();
    spacktainerizah_tests::succeeded(&p.generate(&[]));
    std::fs::write(p.repo.join("site.yaml"), "config:\n  build_jobs: 3\n").unwrap();
    std::fs::remove_dir_all(&p.envs).unwrap();
    p.prepare();
    let out = p.generate(&["--spack", "/bin/false"]);
    assert!(
        stderr(&out).contains("changed: $CI_PROJECT_DIR/site.yaml"),
        "{}",
        stderr(&out)
    );
}
