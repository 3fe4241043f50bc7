//! `spack-cacher process` on the reconstructed `spack ci generate` output: the merge rule, the
//! per-stage split, the trigger chain, and GitLab's schema for every file written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::ci::{Need, Pipeline};
use spack_cacher::process::{self, ProcessOptions, Stage};
use spacktainerizah_tests::{fixtures, repo_root, validate_gitlab_ci};

fn generated(name: &str) -> PathBuf {
    fixtures().join("spack/ci-generate").join(name)
}

fn read(name: &str) -> (PathBuf, Pipeline) {
    (generated(name), Pipeline::read(&generated(name)).unwrap())
}

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(generated("expected-merge.json")).unwrap()).unwrap()
}

#[test]
fn merge_keeps_each_job_once_in_its_earliest_stage() {
    let want = expected();
    for inputs in [["envA.yml", "envB.yml"], ["envB.yml", "envA.yml"]] {
        let merged = process::merge(inputs.iter().map(|n| read(n)).collect()).unwrap();
        assert_eq!(
            merged.jobs.len() as u64,
            want["counts"]["merged_jobs"].as_u64().unwrap()
        );
        let mut per_stage: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, (stage, _)) in &merged.jobs {
            let s = match stage {
                Stage::Build(n) => format!("stage-{n}"),
                Stage::Services => "stage-rebuild-index".into(),
            };
            per_stage.entry(s).or_default().push(name.clone());
        }
        for jobs in per_stage.values_mut() {
            jobs.sort();
        }
        let mut expected: BTreeMap<String, Vec<String>> =
            serde_json::from_value(want["merged_jobs_per_stage"].clone()).unwrap();
        for jobs in expected.values_mut() {
            jobs.sort();
        }
        assert_eq!(per_stage, expected, "inputs {inputs:?}");
        // On a tie the first input's copy stays: it names that input's environment folder.
        let first_env = if inputs[0] == "envA.yml" {
            "all-pythons"
        } else {
            "py-numpy"
        };
        let (_, job) = &merged.jobs["rebuild-index"];
        assert!(
            job.variables["SPACK_ARTIFACTS_ROOT"].ends_with(first_env),
            "{inputs:?}"
        );
    }
}

fn options(out: &Path, inputs: &[&str], max_jobs: usize) -> ProcessOptions {
    ProcessOptions {
        arch: "amd64".into(),
        inputs: inputs.iter().map(|n| generated(n)).collect(),
        output_dir: out.to_path_buf(),
        artifacts_path: "jobs_scratch_dir.amd64/pipelines".into(),
        artifacts_job: "generate build cache population jobs for amd64".into(),
        variables: [
            ("KUBERNETES_CPU_REQUEST", "4"),
            ("AWS_ACCESS_KEY_ID", "$BUILD_CACHE_ACCESS_KEY_ID"),
            ("AWS_SECRET_ACCESS_KEY", "$BUILD_CACHE_SECRET_ACCESS_KEY"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        builds: model::config::JobSettings {
            timeout: Some("2h".into()),
            ..model::config::JobKind::SpackBuilds.defaults()
        },
        tools: model::config::JobKind::Tools.defaults(),
        runner_tag: "kubernetes".into(),
        pull_policy: Some(vec!["always".into()]),
        max_jobs_per_pipeline: max_jobs,
        max_file_bytes: model::ci::MAX_FILE_BYTES,
    }
}

#[test]
fn one_child_per_stage_chained_by_the_trigger_pipeline() {
    let out = tempfile::tempdir().unwrap();
    let written = process::run(&options(
        out.path(),
        &["envA.yml", "envB.yml", "noop.yml"],
        500,
    ))
    .unwrap();
    assert_eq!(
        written.len(),
        12 + 1,
        "11 build stages, the services, and the trigger pipeline"
    );
    for f in &written {
        let text = std::fs::read_to_string(f).unwrap();
        validate_gitlab_ci(&text).unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        assert!(
            !text.contains("SECRET_ACCESS_KEY: ")
                || text.contains("AWS_SECRET_ACCESS_KEY: $BUILD_CACHE_SECRET_ACCESS_KEY")
        );
    }
    let trigger = Pipeline::read(&out.path().join("amd64.yml")).unwrap();
    // Each stage waits for the one before; the first for the fetch of the generated files.
    let mut expected_needs = vec!["fetch amd64 pipelines".to_string()];
    for n in 0..=10 {
        let job = &trigger.jobs[&format!("build amd64 stage-{n}")];
        let needs: Vec<String> = job
            .needs
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.job_name().to_string())
            .collect();
        assert_eq!(needs, expected_needs, "stage-{n}");
        expected_needs = vec![
            "fetch amd64 pipelines".to_string(),
            format!("build amd64 stage-{n}"),
        ];
    }
    assert!(
        trigger.jobs["build amd64 rebuild-index"]
            .needs
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.job_name() == "build amd64 stage-10")
    );
    // The three jobs envB builds earlier are in envB's stage.
    let stage6 = Pipeline::read(&out.path().join("amd64/stage-6.yml")).unwrap();
    assert!(stage6.jobs.keys().any(|k| k.starts_with("openssl@3.4.1")));
    for (name, job) in &stage6.jobs {
        assert_eq!(job.stage.as_deref(), Some("stage-6"));
        assert_eq!(job.timeout.as_deref(), Some("2h"));
        // Only the need on the generating pipeline is left: the other stages are other pipelines.
        assert!(
            job.needs.as_ref().unwrap().iter().all(|n| matches!(
                n,
                Need::Detailed {
                    pipeline: Some(_),
                    ..
                }
            )),
            "{name}"
        );
    }
    assert_eq!(
        stage6.variables["AWS_ACCESS_KEY_ID"],
        "$BUILD_CACHE_ACCESS_KEY_ID"
    );
    assert_eq!(stage6.variables["KUBERNETES_CPU_REQUEST"], "4");
}

#[test]
fn large_stages_are_split_and_the_next_stage_waits_for_every_part() {
    let out = tempfile::tempdir().unwrap();
    process::run(&options(out.path(), &["envA.yml", "envB.yml"], 3)).unwrap();
    let trigger = Pipeline::read(&out.path().join("amd64.yml")).unwrap();
    let parts: Vec<&String> = trigger
        .jobs
        .keys()
        .filter(|k| k.starts_with("build amd64 stage-2-part-"))
        .collect();
    assert!(parts.len() >= 2, "{parts:?}");
    let next: Vec<&str> = trigger
        .jobs
        .iter()
        .find(|(k, _)| k.starts_with("build amd64 stage-3"))
        .unwrap()
        .1
        .needs
        .as_ref()
        .unwrap()
        .iter()
        .map(Need::job_name)
        .collect();
    for p in parts {
        assert!(next.contains(&p.as_str()), "stage-3 waits for {p}");
    }
    validate_gitlab_ci(&std::fs::read_to_string(out.path().join("amd64.yml")).unwrap()).unwrap();
}

#[test]
fn nothing_to_rebuild_is_still_a_valid_pipeline() {
    let out = tempfile::tempdir().unwrap();
    let written = process::run(&options(out.path(), &["noop.yml"], 500)).unwrap();
    assert_eq!(written.len(), 1);
    let text = std::fs::read_to_string(&written[0]).unwrap();
    validate_gitlab_ci(&text).unwrap();
    assert_eq!(Pipeline::read(&written[0]).unwrap().jobs.len(), 1);
}

#[test]
fn current_spack_service_jobs_stay_together() {
    let out = tempfile::tempdir().unwrap();
    process::run(&options(out.path(), &["current.yml"], 500)).unwrap();
    let services = Pipeline::read(&out.path().join("amd64/rebuild-index.yml")).unwrap();
    let needs: Vec<&str> = services.jobs["rebuild-index"]
        .needs
        .as_ref()
        .unwrap()
        .iter()
        .map(Need::job_name)
        .collect();
    assert!(needs.contains(&"wait-for-build-jobs"), "{needs:?}");
    for f in spacktainerizah_tests::walk(out.path()) {
        validate_gitlab_ci(&std::fs::read_to_string(&f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
    }
}

#[test]
fn the_command_reads_the_configuration_and_names_secrets_only_by_variable() {
    let out = tempfile::tempdir().unwrap();
    let status = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spack-cacher"))
        .args([
            "process",
            "--arch",
            "amd64",
            "--out",
            &out.path().display().to_string(),
        ])
        .args([
            "--config",
            &repo_root()
                .join("examples/spacktainerizah.yaml")
                .display()
                .to_string(),
        ])
        .args(["--artifacts-job", "generate amd64"])
        .arg(generated("envA.yml"))
        .env("BUILD_CACHE_SECRET_ACCESS_KEY", "very-secret-value")
        .output()
        .unwrap();
    spacktainerizah_tests::succeeded(&status);
    for f in spacktainerizah_tests::walk(out.path()) {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("very-secret-value"));
    }
    let stage0 = std::fs::read_to_string(out.path().join("amd64/stage-0.yml")).unwrap();
    assert!(
        stage0.contains("AWS_SECRET_ACCESS_KEY: $BUILD_CACHE_SECRET_ACCESS_KEY"),
        "{stage0}"
    );
    assert!(stage0.contains("KUBERNETES_MEMORY_LIMIT: 8Gi"));

    let bad = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spack-cacher"))
        .args([
            "process",
            "--arch",
            "riscv",
            "--out",
            "x",
            "--artifacts-job",
            "g",
        ])
        .args([
            "--config",
            &repo_root()
                .join("examples/spacktainerizah.yaml")
                .display()
                .to_string(),
        ])
        .arg(generated("envA.yml"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("riscv"));
}

#[test]
fn a_stage_too_large_for_one_file_is_split_by_size_and_spack_jobs_get_the_configured_settings() {
    let out = tempfile::tempdir().unwrap();
    let mut opts = options(out.path(), &["current.yml"], 500);
    // GitLab refuses a configuration past `max_yaml_size_bytes`: a stage that would be larger
    // goes into several files, each under the limit.
    opts.max_file_bytes = 8_000;
    opts.builds.tags = Some(vec!["big-iron".into()]);
    opts.builds
        .variables
        .insert("SPACK_BUILD_JOBS".into(), "16".into());
    let written = process::run(&opts).unwrap();
    let children: Vec<_> = written
        .iter()
        .filter(|p| !p.ends_with("amd64.yml"))
        .collect();
    assert!(
        children
            .iter()
            .any(|p| p.to_string_lossy().contains("-part-2")),
        "{children:?}"
    );
    for child in children {
        let text = std::fs::read_to_string(child).unwrap();
        assert!(
            text.len() <= 8_000,
            "{}: {} bytes",
            child.display(),
            text.len()
        );
        let p = model::ci::Pipeline::parse(child, &text).unwrap();
        for (name, job) in p.jobs.iter().filter(|(_, j)| j.image.is_some()) {
            assert_eq!(job.timeout.as_deref(), Some("2h"), "{name}");
            assert!(job.tags.contains(&"big-iron".to_string()), "{name}");
            assert_eq!(job.variables["SPACK_BUILD_JOBS"], "16", "{name}");
            // Spack's own retry (three runs of a failed build) is replaced.
            let Some(model::ci::Retry::Detailed { when, .. }) = &job.retry else {
                panic!("{name}: {:?}", job.retry);
            };
            assert!(
                !when.iter().any(|w| w == "script_failure"),
                "{name}: {when:?}"
            );
        }
    }
}

#[test]
fn every_child_pipeline_stays_within_the_size_limit_with_the_keys_added_for_a_child() {
    // Many small jobs per file: what a child pipeline adds to each job (its `rules:`) must
    // count, or a full file goes over the limit by that much per job.
    let dir = tempfile::tempdir().unwrap();
    let mut input = String::from("stages: [stage-0]\n");
    for n in 0..600 {
        input.push_str(&format!(
            "pkg{n}@1.0 /{n:07x}:\n  stage: stage-0\n  image: builder\n  tags: [kubernetes]\n  script: [spack ci rebuild]\n"
        ));
    }
    let file = dir.path().join("many.yml");
    std::fs::write(&file, input).unwrap();
    for limit in [30_000, 100_000] {
        let out = tempfile::tempdir().unwrap();
        let mut opts = options(out.path(), &[], 10_000);
        opts.inputs = vec![file.clone()];
        opts.max_file_bytes = limit;
        let written = process::run(&opts).unwrap();
        let children: Vec<_> = written
            .iter()
            .filter(|p| !p.ends_with("amd64.yml"))
            .collect();
        assert!(children.len() > 1, "limit {limit}: not split");
        for child in children {
            let text = std::fs::read_to_string(child).unwrap();
            assert!(
                text.len() <= limit,
                "{}: {} bytes over {limit}",
                child.display(),
                text.len()
            );
        }
    }
}
