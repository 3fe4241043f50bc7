//! The test-only GitLab runner on the real Docker daemon: pipelines that GitLab runs
//! differently from "every job in order, stop at the first failure" — retries, `when:
//! always` after a failure, `allow_failure`, shell runners that ignore `image:`, pull policies,
//! and merge request pipelines whose children leave out jobs without rules.

use std::collections::BTreeMap;
use std::path::Path;

use spacktainerizah_tests::runner::{
    Limits, PipelineRef, Runner, RunnerError, RunnerOptions, RunnerSpec,
};
use spacktainerizah_tests::{docker_host, os_image};

/// A runner for a project whose `.gitlab-ci.yml` is `ci`, with `child.yml` when given;
/// `/shared` in every job is `dir/shared`.
fn runner(
    dir: &Path,
    ci: &str,
    child: Option<&str>,
    source: (&str, PipelineRef),
    runners: &[&str],
) -> Runner {
    Runner::new(options(dir, ci, child, source, runners))
}

fn options(
    dir: &Path,
    ci: &str,
    child: Option<&str>,
    (source, git_ref): (&str, PipelineRef),
    runners: &[&str],
) -> RunnerOptions {
    let project = dir.join("project");
    let shared = dir.join("shared");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(project.join(".gitlab-ci.yml"), ci).unwrap();
    if let Some(child) = child {
        std::fs::write(project.join("child.yml"), child).unwrap();
    }
    RunnerOptions {
        project,
        work: dir.join("work"),
        source: source.into(),
        git_ref,
        default_branch: "main".into(),
        project_url: "https://example.invalid/project.git".into(),
        project_variables: BTreeMap::new(),
        protected_variables: BTreeMap::new(),
        volumes: vec![(shared, "/shared".into())],
        default_image: os_image(),
        docker_host: docker_host(),
        runners: runners
            .iter()
            .map(|r| RunnerSpec::parse(r).unwrap())
            .collect(),
        limits: Limits::default(),
    }
}

fn run(r: &mut Runner, dir: &Path) -> Result<Option<u32>, RunnerError> {
    r.run_file(&dir.join("project/.gitlab-ci.yml"))
}

const AFTER_A_FAILURE: &str = r#"
stages: [build, index]
flaky:
  stage: build
  script:
    - n=$(cat /shared/count 2>/dev/null || echo 0); echo $((n+1)) > /shared/count; test "$n" -ge 1
  retry: 1
broken:
  stage: build
  script: [echo broken > why, exit 3]
  retry: {max: 2, when: runner_system_failure}
  artifacts: {when: on_failure, paths: [why]}
tolerated:
  stage: build
  script: [exit 1]
  allow_failure: true
after:
  stage: index
  script: [touch /shared/after]
rebuild-index:
  stage: index
  script: [touch /shared/indexed]
  when: always
cleanup:
  stage: index
  script: [cp why /shared/cleanup]
  when: on_failure
"#;

/// https://docs.gitlab.com/ci/yaml/#retry, #when, #allow_failure and #artifactswhen: a flaky job succeeds on
/// its retry; a script failure is not retried when only runner system failures are; the
/// failed job fails the pipeline but `when: always` (Spack's `rebuild-index`) and
/// `on_failure` jobs still run, `on_success` ones are skipped, and a failure allowed to fail
/// fails nothing.
#[test]
#[ignore = "NOT RUN: needs the Docker daemon and the test OS image in the OCI registry (./scripts/test.sh sets them up)"]
fn a_failed_job_fails_the_pipeline_and_when_always_jobs_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let branch = PipelineRef::Branch("main".into());
    let mut r = runner(dir.path(), AFTER_A_FAILURE, None, ("push", branch), &["-"]);
    let err = run(&mut r, dir.path()).unwrap_err();
    let RunnerError::Failed { jobs, .. } = &err else {
        panic!("{err}");
    };
    assert!(jobs.starts_with("broken (exit status 3"), "{jobs}");
    assert!(!jobs.contains("tolerated"), "{jobs}");
    let run_of = |name: &str| r.runs.iter().find(|j| j.name == name).unwrap();
    let flaky = run_of("flaky");
    assert!(flaky.success);
    assert_eq!(flaky.attempts.len(), 2);
    let broken = run_of("broken");
    assert_eq!(
        broken.attempts.len(),
        1,
        "script failures are not retried here"
    );
    let reason = serde_json::to_value(broken.attempts[0].failure_reason).unwrap();
    assert_eq!(reason, "script_failure");
    assert!(run_of("tolerated").allow_failure);
    let shared = dir.path().join("shared");
    assert!(
        shared.join("indexed").exists(),
        "when: always runs after a failure"
    );
    assert!(
        shared.join("cleanup").exists(),
        "when: on_failure runs after a failure"
    );
    assert!(
        !shared.join("after").exists(),
        "on_success jobs are skipped"
    );
    let skipped: Vec<&str> = r.skipped.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skipped, ["after"]);
}

const IMAGES: &str = r#"
on-the-machine:
  image: 127.0.0.1:9/no-such-image:1
  tags: [bb5_map]
  script: [touch /shared/machine]
in-the-image:
  image: 127.0.0.1:9/no-such-image:1
  tags: [local]
  script: [touch /shared/image]
  allow_failure: true
cached:
  image: {name: debian, pull_policy: if-not-present}
  tags: [local]
  script: [touch /shared/cached]
  allow_failure: true
"#;

/// A shell runner runs the script on its own machine whatever `image:` says
/// (https://docs.gitlab.com/runner/executors/shell/); a Docker runner needs the image; a pull
/// policy the runner does not allow fails the job as a system failure
/// (https://docs.gitlab.com/ci/yaml/#imagepull_policy).
#[test]
#[ignore = "NOT RUN: needs the Docker daemon and the test OS image in the OCI registry (./scripts/test.sh sets them up)"]
fn shell_runners_ignore_image_and_docker_runners_enforce_pull_policies() {
    let dir = tempfile::tempdir().unwrap();
    let branch = PipelineRef::Branch("main".into());
    let runners = ["bb5_map:shell", "local:docker"];
    let mut r = runner(dir.path(), IMAGES, None, ("push", branch), &runners);
    run(&mut r, dir.path()).unwrap();
    let shared = dir.path().join("shared");
    assert!(shared.join("machine").exists());
    assert!(!shared.join("image").exists());
    let runner_of = |name: &str| {
        let j = r.runs.iter().find(|j| j.name == name).unwrap();
        (j.runner.clone().unwrap(), j.success)
    };
    assert_eq!(runner_of("on-the-machine"), ("bb5_map:shell".into(), true));
    assert_eq!(runner_of("in-the-image"), ("local:docker".into(), false));
    let cached = r.runs.iter().find(|j| j.name == "cached").unwrap();
    let message = cached.attempts[0].message.clone().unwrap();
    assert!(
        message.contains("is not one of the allowed_pull_policies ([always])"),
        "{message}"
    );
    assert!(!shared.join("cached").exists());
}

/// A parent that passes the project's `child.yml` on as an artifact and runs it.
const PARENT: &str = r#"
generate:
  rules: [{if: $CI_MERGE_REQUEST_IID}]
  script: [cp child.yml generated.yml]
  artifacts: {paths: [generated.yml]}
run-child:
  rules: [{if: $CI_MERGE_REQUEST_IID}]
  needs: [generate]
  trigger: {include: [{artifact: generated.yml, job: generate}], strategy: depend}
without-rules:
  script: [touch /shared/without-rules]
"#;

/// A merge request pipeline runs on the merge request's ref: jobs without rules (default
/// `only: [branches, tags]`) are not added, in it or in its child pipelines, which start with
/// `CI_PIPELINE_SOURCE=parent_pipeline` and the merge request's variables
/// (https://docs.gitlab.com/ci/pipelines/downstream_pipelines/#run-child-pipelines-with-merge-request-pipelines);
/// a child left without jobs fails its trigger job: "downstream pipeline can not be created".
#[test]
#[ignore = "NOT RUN: needs the Docker daemon and the test OS image in the OCI registry (./scripts/test.sh sets them up)"]
fn merge_request_pipelines_and_their_children() {
    let mr = PipelineRef::MergeRequest {
        iid: 7,
        source_branch: "feature".into(),
        target_branch: "main".into(),
    };
    let child = r#"plain: {script: [touch /shared/plain]}
ruled:
  rules: [{if: $CI_MERGE_REQUEST_IID}]
  script:
    - echo "$CI_PIPELINE_SOURCE $CI_COMMIT_REF_NAME $CI_MERGE_REQUEST_IID ${CI_COMMIT_BRANCH:-none}" > /shared/ruled
"#;
    let dir = tempfile::tempdir().unwrap();
    let source = ("merge_request_event", mr.clone());
    let mut r = runner(dir.path(), PARENT, Some(child), source, &["-"]);
    run(&mut r, dir.path()).unwrap();
    let shared = dir.path().join("shared");
    let env = std::fs::read_to_string(shared.join("ruled")).unwrap();
    assert_eq!(env.trim(), "parent_pipeline feature 7 none");
    assert!(!shared.join("plain").exists());
    assert!(!shared.join("without-rules").exists());

    let empty = "plain: {script: [touch /shared/plain]}\n";
    let dir = tempfile::tempdir().unwrap();
    let source = ("merge_request_event", mr);
    let mut r = runner(dir.path(), PARENT, Some(empty), source, &["-"]);
    let err = run(&mut r, dir.path()).unwrap_err().to_string();
    assert!(err.contains("run-child"), "{err}");
    assert!(
        err.contains(
            "downstream pipeline can not be created, the resulting pipeline would have been empty"
        ),
        "{err}"
    );
    assert!(err.contains("generated.yml"), "{err}");
}

/// Spack's generated pipelines (`spack ci generate`, anchors and aliases, `retry` with a list
/// of failure types, `interruptible`, the `when: always` index job) are created as GitLab
/// creates them: every job on the runner with Spack's `kubernetes` tag (which also runs the
/// untagged no-op job), the index job added with `when: always`.
#[test]
fn spack_generated_pipelines_are_created() {
    use spacktainerizah_tests::fixtures;
    use spacktainerizah_tests::runner::plan::{Context, Created, create};
    let runners = [RunnerSpec::parse("kubernetes:docker:run-untagged").unwrap()];
    let git_ref = PipelineRef::Branch("main".into());
    for name in ["envA.yml", "envB.yml", "noop.yml", "current.yml"] {
        let text =
            std::fs::read_to_string(fixtures().join("spack/ci-generate").join(name)).unwrap();
        let ctx = Context {
            source: "parent_pipeline",
            git_ref: &git_ref,
            default_branch: "main",
            project_url: "u",
            limits: &Limits::default(),
            runners: &runners,
            outer: &BTreeMap::new(),
        };
        let Created::Plan(plan) =
            create(&text, 1, &ctx).unwrap_or_else(|e| panic!("{name}: {e:?}"))
        else {
            panic!("{name}: no pipeline");
        };
        assert!(plan.jobs.iter().all(|j| j.runner.is_some()), "{name}");
        let index = plan.jobs.iter().find(|j| j.name == "rebuild-index");
        match name {
            "noop.yml" => assert!(index.is_none()),
            _ => assert_eq!(index.expect(name).when, "always", "{name}"),
        }
    }
}

/// With `strategy: depend` the trigger job mirrors its child's failure; without it the
/// trigger job passes once the child is created (https://docs.gitlab.com/ci/yaml/#triggerstrategy).
/// A child file over `max_artifacts_content_include_size` is not created.
#[test]
#[ignore = "NOT RUN: needs the Docker daemon and the test OS image in the OCI registry (./scripts/test.sh sets them up)"]
fn trigger_jobs_mirror_their_child_with_depend() {
    let mr = PipelineRef::MergeRequest {
        iid: 2,
        source_branch: "feature".into(),
        target_branch: "main".into(),
    };
    let failing = "fails:\n  rules: [{if: $CI_MERGE_REQUEST_IID}]\n  script: [exit 4]\n";
    let dir = tempfile::tempdir().unwrap();
    let source = ("merge_request_event", mr.clone());
    let mut r = runner(dir.path(), PARENT, Some(failing), source, &["-"]);
    let err = run(&mut r, dir.path()).unwrap_err().to_string();
    assert!(err.contains("run-child (downstream pipeline"), "{err}");
    assert!(err.contains("failed: fails (exit status 4"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let independent = PARENT.replace(", strategy: depend", "");
    let source = ("merge_request_event", mr.clone());
    let mut r = runner(dir.path(), &independent, Some(failing), source, &["-"]);
    run(&mut r, dir.path()).unwrap();
    assert!(r.runs.iter().any(|j| j.name == "fails" && !j.success));

    let dir = tempfile::tempdir().unwrap();
    let source = ("merge_request_event", mr);
    let mut opts = options(dir.path(), &independent, Some(failing), source, &["-"]);
    opts.limits.max_include_artifact_bytes = 20;
    let mut r = Runner::new(opts);
    let err = run(&mut r, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("max_artifacts_content_include_size (20)"),
        "{err}"
    );
}

/// The command: `--runner` gives the project's runners; the report names the runner of each
/// job; a job no runner takes fails the command before any job runs, naming its tags.
#[test]
#[ignore = "NOT RUN: needs the Docker daemon and the test OS image in the OCI registry (./scripts/test.sh sets them up)"]
fn the_command_takes_runners() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let ci = "a:\n  script: [echo]\nb:\n  tags: [bb5_map]\n  script: [echo]\n";
    std::fs::write(project.join(".gitlab-ci.yml"), ci).unwrap();
    let report = dir.path().join("report.json");
    let command = |runners: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ci-runner"));
        cmd.env("DOCKER_HOST", docker_host())
            .arg(".gitlab-ci.yml")
            .args(["--source", "push", "--project-url", "u", "--default-image"])
            .arg(os_image())
            .arg("--project")
            .arg(&project)
            .arg("--work")
            .arg(dir.path().join("work"))
            .arg("--report")
            .arg(&report);
        for r in runners {
            cmd.args(["--runner", r]);
        }
        cmd.output().unwrap()
    };
    let out = command(&["local:docker:run-untagged", "bb5_map:shell"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let runners: Vec<(&str, &str)> = json["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["name"].as_str().unwrap(), j["runner"].as_str().unwrap()))
        .collect();
    assert_eq!(
        runners,
        [("a", "local:docker:run-untagged"), ("b", "bb5_map:shell")]
    );
    let out = command(&["local:docker:run-untagged"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("job `b` needs a runner with tags [bb5_map]"),
        "{stderr}"
    );
}
