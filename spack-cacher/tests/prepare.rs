//! `spack-cacher prepare` and `generate` on the example definitions: the environments written
//! (snapshot-tested), and what happens without a working `spack`.

use std::path::{Path, PathBuf};

use model::config::Config;
use spack_cacher::prepare::{self, PrepareOptions};
use spacktainerizah_tests::{repo_root, walk};

fn options(out: &Path, branch: &str) -> PrepareOptions {
    PrepareOptions {
        repo: repo_root().join("examples"),
        config: Config::read(&repo_root().join("examples/spacktainerizah.yaml")).unwrap(),
        output: out.to_path_buf(),
        branch: branch.into(),
        // What stage 1 exports: the default branch's tag there, a dated branch tag elsewhere.
        base_tag: if branch == "main" {
            "latest".into()
        } else {
            format!("2026.11.29-{branch}")
        },
        builder_image: None,
        // As in a job whose checkout is this repository.
        project_dir: Some(repo_root()),
    }
}

fn snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// The written environments must equal their insta snapshots (`snapshots/prepare__*.snap`;
/// `INSTA_UPDATE=always` rewrites them after a deliberate change: review the diff).
#[test]
fn environments_match_their_snapshots() {
    let out = tempfile::tempdir().unwrap();
    let prepared = prepare::run(&options(out.path(), "my-feature")).unwrap();
    let names: Vec<String> = prepared
        .iter()
        .map(|p| format!("{}/{}", p.arch, p.container))
        .collect();
    assert_eq!(
        names,
        [
            "amd64/brainbuilder",
            "amd64/greeter",
            "amd64/neurodamus-neocortex",
            "amd64/system-benchmarks",
            "arm64/system-benchmarks"
        ],
        "the .def container has no Spack environment"
    );
    let mut snapshot_names = Vec::new();
    for (p, name) in prepared.iter().zip(&names) {
        let got = std::fs::read_to_string(&p.path).unwrap();
        let name = name.replace('/', "-");
        let file = p
            .path
            .strip_prefix(out.path())
            .unwrap()
            .display()
            .to_string();
        insta::with_settings!({ description => file, omit_expression => true }, {
            insta::assert_snapshot!(name.as_str(), got);
        });
        snapshot_names.push(name);
    }
    spacktainerizah_tests::snapshots::assert_all_referenced(
        &snapshots(),
        "prepare",
        &snapshot_names,
    );
    // Deterministic: a second run writes the same bytes.
    let again = tempfile::tempdir().unwrap();
    prepare::run(&options(again.path(), "my-feature")).unwrap();
    for f in walk(out.path()) {
        assert_eq!(
            std::fs::read(&f).unwrap(),
            std::fs::read(again.path().join(f.strip_prefix(out.path()).unwrap())).unwrap()
        );
    }
}

#[test]
fn the_default_branch_uses_production_buckets_and_tags() {
    let out = tempfile::tempdir().unwrap();
    prepare::run(&options(out.path(), "main")).unwrap();
    let amd = std::fs::read_to_string(out.path().join("amd64/brainbuilder/spack.yaml")).unwrap();
    assert!(
        amd.contains("url: s3://spack-build-cache\n") && amd.contains("builder:latest"),
        "{amd}"
    );
    let arm =
        std::fs::read_to_string(out.path().join("arm64/system-benchmarks/spack.yaml")).unwrap();
    assert!(
        arm.contains("target=armv8.4a")
            && arm.contains("aws_graviton")
            && arm.contains("s3://spack-cache-arm64"),
        "{arm}"
    );
    for f in walk(out.path())
        .into_iter()
        .filter(|f| f.ends_with("spack.yaml"))
    {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("%BASE_ARCH%"), "{}", f.display());
        // The key pair appears by variable name only.
        assert!(
            !text.contains("access_pair: [") && text.contains("secret_variable:"),
            "{}",
            f.display()
        );
    }
}

#[test]
fn a_conflicting_definition_names_the_file_and_the_path() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("spack.yaml"),
        "spack:\n  specs: []\n  packages:\n    all:\n      require: '%BASE_ARCH%'\n",
    )
    .unwrap();
    std::fs::create_dir_all(repo.path().join("container_definitions/amd64")).unwrap();
    std::fs::write(
        repo.path().join("container_definitions/amd64/x.yaml"),
        "spack:\n  specs: [zlib]\n  packages:\n    all:\n      require: '%clang'\n",
    )
    .unwrap();
    let mut opts = options(&repo.path().join("out"), "b");
    opts.repo = repo.path().to_path_buf();
    let err = format!("{:#}", prepare::run(&opts).unwrap_err());
    assert!(
        err.contains("x.yaml") && err.contains("spack.packages.all.require"),
        "{err}"
    );
}

fn cacher(args: &[&str]) -> std::process::Output {
    spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spack-cacher"))
        .args(args)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

#[test]
fn generate_says_how_to_get_spack_and_shows_spack_failures() {
    let out = tempfile::tempdir().unwrap();
    prepare::run(&options(out.path(), "b")).unwrap();
    let envs = out.path().display().to_string();
    let pipelines = out.path().join("pipelines").display().to_string();
    let missing = cacher(&[
        "generate",
        "--envs",
        &envs,
        "--arch",
        "arm64",
        "--pipelines",
        &pipelines,
    ]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("`spack` was not found on PATH") && err.contains("--spack"),
        "{err}"
    );

    // A spack that fails: the environment, the command and the log are named.
    let failing = cacher(&[
        "generate",
        "--envs",
        &envs,
        "--arch",
        "arm64",
        "--pipelines",
        &pipelines,
        "--spack",
        "/bin/false",
    ]);
    assert_eq!(failing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&failing.stderr);
    assert!(
        err.contains("arm64/system-benchmarks")
            && err.contains("concretize -f")
            && err.contains("generate.log"),
        "{err}"
    );
    assert!(
        out.path()
            .join("arm64/system-benchmarks/generate.log")
            .is_file()
    );
}

#[test]
fn every_command_has_help() {
    for cmd in [
        vec!["--help"],
        vec!["prepare", "--help"],
        vec!["generate", "--help"],
        vec!["process", "--help"],
        vec!["--version"],
    ] {
        let out = cacher(&cmd);
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn record_puts_each_lockfile_in_the_cache_the_branch_fills() {
    let work = tempfile::tempdir().unwrap();
    let (prod, dev) = (work.path().join("prod"), work.path().join("dev"));
    let text = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: s3://spack-build-cache\n",
            &format!("url: file://{}\n", prod.display()),
        )
        .replace(
            "branch_url: s3://spack-build-cache-dev",
            &format!("branch_url: file://{}", dev.display()),
        );
    let config = work.path().join("spacktainerizah.yaml");
    std::fs::write(&config, text).unwrap();
    let envs = work.path().join("envs");
    prepare::run(&PrepareOptions {
        config: Config::read(&config).unwrap(),
        ..options(&envs, "my-feature")
    })
    .unwrap();
    let record = |branch: &str| {
        spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spack-cacher"))
            .args(["record", "--arch", "amd64", "--branch", branch, "--envs"])
            .arg(&envs)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };
    // Not concretized yet: refused, nothing written.
    let out = record("my-feature");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not concretized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dev.exists());
    let lock = repo_root().join("tests/fixtures/spack/lockfiles/spack__all-pythons__spack.lock");
    for e in prepare::environments(&envs, "amd64").unwrap() {
        std::fs::copy(&lock, e.join("spack.lock")).unwrap();
    }
    for (branch, cache) in [("my-feature", &dev), ("main", &prod)] {
        let out = record(branch);
        spacktainerizah_tests::succeeded(&out);
        for c in ["brainbuilder", "neurodamus-neocortex", "system-benchmarks"] {
            let recorded = cache.join(format!(
                "{}/{branch}/amd64/{c}/spack.lock",
                stores::keep_lists::PREFIX
            ));
            assert_eq!(
                std::fs::read(&recorded).unwrap(),
                std::fs::read(&lock).unwrap()
            );
        }
    }
}

#[test]
fn record_leaves_exactly_the_lists_of_the_containers_still_defined() {
    let work = tempfile::tempdir().unwrap();
    let prod = work.path().join("prod");
    let text = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: s3://spack-build-cache\n",
            &format!("url: file://{}\n", prod.display()),
        );
    let config = work.path().join("spacktainerizah.yaml");
    std::fs::write(&config, text).unwrap();
    let envs = work.path().join("envs");
    prepare::run(&PrepareOptions {
        config: Config::read(&config).unwrap(),
        ..options(&envs, "main")
    })
    .unwrap();
    let lock = repo_root().join("tests/fixtures/spack/lockfiles/spack__all-pythons__spack.lock");
    let environments = prepare::environments(&envs, "amd64").unwrap();
    for e in &environments {
        std::fs::copy(&lock, e.join("spack.lock")).unwrap();
    }
    let records = prod.join(stores::keep_lists::PREFIX);
    let record = || {
        let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spack-cacher"))
            .args(["record", "--arch", "amd64", "--branch", "main", "--envs"])
            .arg(&envs)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        spacktainerizah_tests::succeeded(&out);
        out
    };
    record();
    // Lists of another architecture and another branch are not this record's business.
    for other in ["main/arm64/x", "feature/amd64/x"] {
        let p = records.join(other).join("spack.lock");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy(&lock, &p).unwrap();
    }
    // A container taken out of the definitions: `prepare` no longer writes its environment.
    let retired = environments[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    std::fs::remove_dir_all(&environments[0]).unwrap();
    let out = record();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("main/amd64/{retired}/spack.lock")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut left: Vec<String> = spacktainerizah_tests::walk(&records)
        .iter()
        .map(|p| p.strip_prefix(&records).unwrap().display().to_string())
        .collect();
    left.sort();
    let mut expected: Vec<String> = environments[1..]
        .iter()
        .map(|e| {
            format!(
                "main/amd64/{}/spack.lock",
                e.file_name().unwrap().to_string_lossy()
            )
        })
        .chain([
            "feature/amd64/x/spack.lock".into(),
            "main/arm64/x/spack.lock".into(),
        ])
        .collect();
    expected.sort();
    assert_eq!(left, expected);
}

/// The example configuration with a signed cache (`signing: {}`, and a branch cache for
/// arm64, which signing needs).
fn signed_options(out: &Path, branch: &str) -> PrepareOptions {
    let text = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replacen(
            "url: s3://spack-cache-arm64\n",
            "url: s3://spack-cache-arm64\n      branch_url: s3://spack-cache-arm64-dev\n",
            1,
        )
        + "signing: {}\n";
    PrepareOptions {
        config: Config::parse(Path::new("spacktainerizah.yaml"), &text).unwrap(),
        ..options(out, branch)
    }
}

/// The pipeline-gen entry `job` (`build-job`, `reindex-job`) of a written environment.
fn ci_job(env: &model::yaml::Value, job: &str) -> model::yaml::Value {
    env["spack"]["ci"]["pipeline-gen"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|e| e.get(job).cloned())
        .unwrap()
}

fn before_script(env: &model::yaml::Value, job: &str) -> Vec<String> {
    ci_job(env, job)["before_script"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn written(out: &Path) -> model::yaml::Value {
    let path = out.join("amd64/greeter/spack.yaml");
    model::yaml::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn the_default_branch_signs_with_the_protected_key_and_hides_it_from_spack() {
    let out = tempfile::tempdir().unwrap();
    prepare::run(&signed_options(out.path(), "main")).unwrap();
    let env = written(out.path());
    let mirror = &env["spack"]["mirrors"]["buildcache-destination"];
    assert_eq!(mirror["signed"].as_bool(), Some(true), "{mirror:?}");
    let build = before_script(&env, "build-job").join("\n");
    assert!(
        build.contains("spack gpg trust \"$SPACK_DEPLOYMENT_KEY_PUBLIC\""),
        "{build}"
    );
    // The key is imported from a file or from its base64, then gone before `spack ci rebuild`
    // (which would record it in spack-build-env.txt), and an unsigned push fails.
    assert!(build.contains("base64 -d"), "{build}");
    let unset = build.find("unset SPACK_SIGNING_KEY").expect(&build);
    assert!(
        build.rfind("SPACK_SIGNING_KEY").unwrap() < unset + 10,
        "{build}"
    );
    assert!(
        build.contains("export SPACK_REQUIRE_SIGNING=True"),
        "{build}"
    );
    // The reindex job pushes no package: it never imports the secret key, and drops it.
    let reindex = before_script(&env, "reindex-job").join("\n");
    assert!(
        !reindex.contains("base64 -d")
            && reindex.contains("gpg trust")
            && reindex.ends_with("unset SPACK_SIGNING_KEY"),
        "{reindex}"
    );
}

#[test]
fn other_branches_write_an_unsigned_branch_cache_and_say_so() {
    let out = tempfile::tempdir().unwrap();
    prepare::run(&signed_options(out.path(), "my-feature")).unwrap();
    let env = written(out.path());
    let mirror = &env["spack"]["mirrors"]["buildcache-destination"];
    assert_eq!(mirror["url"].as_str(), Some("s3://spack-build-cache-dev"));
    assert_eq!(mirror["signed"].as_bool(), Some(false), "{mirror:?}");
    let build = before_script(&env, "build-job").join("\n");
    assert!(!build.contains("base64 -d"), "no key imported: {build}");
    assert!(
        build.contains("The branch build cache s3://spack-build-cache-dev is unsigned"),
        "{build}"
    );
    // A protected branch other than the default one gets the protected key too: every job
    // drops it before Spack could import it and record it in its build environment.
    for job in ["build-job", "reindex-job"] {
        let lines = before_script(&env, job);
        assert_eq!(
            lines.last().map(String::as_str),
            Some("unset SPACK_SIGNING_KEY"),
            "{lines:?}"
        );
    }
}

#[test]
fn without_signing_every_cache_is_unsigned_and_the_public_key_optional() {
    let out = tempfile::tempdir().unwrap();
    prepare::run(&options(out.path(), "main")).unwrap();
    let env = written(out.path());
    let mirror = &env["spack"]["mirrors"]["buildcache-destination"];
    assert_eq!(mirror["signed"].as_bool(), Some(false), "{mirror:?}");
    let build = before_script(&env, "build-job").join("\n");
    assert!(
        !build.contains("base64 -d")
            && build.contains("if [ -n \"${SPACK_DEPLOYMENT_KEY_PUBLIC:-}\" ]")
            && build.ends_with("unset SPACK_SIGNING_KEY"),
        "{build}"
    );
}
