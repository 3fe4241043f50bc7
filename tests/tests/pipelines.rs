//! The CI pipeline model against GitLab's own schema: Spack's generated pipelines read and
//! written back, and the pipeline shapes the tools emit.

use std::path::Path;

use common::ci::{Artifacts, Image, Job, Need, Pipeline, Rule, Trigger, Workflow};
use spacktainerizah_tests::{fixtures, validate_gitlab_ci};

#[test]
fn the_validator_rejects_what_gitlab_rejects() {
    // Negative controls: without them a broken validator would pass everything.
    assert!(validate_gitlab_ci("job:\n  scriptt: [echo]\n").is_err());
    assert!(validate_gitlab_ci("job:\n  script: [echo]\n  needs: [{pipeline: $X}]\n").is_err());
    assert!(validate_gitlab_ci("job:\n  script: [echo]\n").is_ok());
}

#[test]
fn spack_generated_pipelines_round_trip_and_stay_valid() {
    for name in ["envA.yml", "envB.yml", "noop.yml", "current.yml"] {
        let path = fixtures().join("spack/ci-generate").join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        validate_gitlab_ci(&text).unwrap_or_else(|e| panic!("fixture {name} itself: {e:?}"));
        let pipeline = Pipeline::read(&path).unwrap();
        let raw: serde_norway::Mapping = serde_norway::from_str(&text).unwrap();
        let reserved = ["stages", "variables", "workflow"];
        let job_count = raw
            .keys()
            .filter(|k| !reserved.contains(&k.as_str().unwrap()))
            .count();
        assert_eq!(pipeline.jobs.len(), job_count, "{name}");
        let emitted = pipeline.to_yaml();
        validate_gitlab_ci(&emitted).unwrap_or_else(|e| panic!("{name} re-emitted: {e:?}"));
        // Nothing is lost: reading what we wrote gives the same model.
        assert_eq!(
            Pipeline::parse(Path::new(name), &emitted).unwrap(),
            pipeline,
            "{name}"
        );
    }
}

#[test]
fn spack_jobs_keep_needs_on_the_generating_pipeline() {
    let p = Pipeline::read(&fixtures().join("spack/ci-generate/envA.yml")).unwrap();
    let (_, job) = p
        .jobs
        .iter()
        .find(|(n, _)| n.starts_with("python@3.13.5"))
        .unwrap();
    let needs = job.needs.as_ref().unwrap();
    assert!(
        needs
            .iter()
            .any(|n| matches!(n, Need::Detailed { pipeline: Some(p), .. } if p == "187421"))
    );
    assert_eq!(job.variables["SPACK_JOB_SPEC_PKG_NAME"], "python");
}

/// The shape every stage uses: a generator job whose artifact is run as a child pipeline.
fn parent_and_child() -> (Pipeline, Pipeline) {
    let mut parent = Pipeline {
        workflow: Some(Workflow {
            name: None,
            rules: vec![
                Rule::when_if("$CI_PIPELINE_SOURCE == \"merge_request_event\"", "always"),
                Rule::when_if("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "always"),
                Rule::when_if("$CI_PIPELINE_SOURCE == \"web\"", "always"),
            ],
        }),
        stages: vec!["generate".into(), "build".into()],
        variables: [(
            "SPACK_BUILD_CACHE".to_string(),
            "s3://spack-build-cache".to_string(),
        )]
        .into_iter()
        .collect(),
        ..Pipeline::default()
    };
    parent
        .add_job(
            "generate",
            Job {
                stage: Some("generate".into()),
                image: Some(Image::Detailed {
                    name: "builder:latest".into(),
                    entrypoint: Some(vec![String::new()]),
                    pull_policy: None,
                }),
                tags: vec!["kubernetes".into()],
                script: vec!["spack-cacher process --out child.yml".into()],
                artifacts: Some(Artifacts {
                    paths: vec!["child.yml".into()],
                    when: Some("always".into()),
                    ..Artifacts::default()
                }),
                ..Job::default()
            },
        )
        .unwrap();
    parent
        .add_job(
            "build",
            Job {
                stage: Some("build".into()),
                needs: Some(vec![Need::job("generate")]),
                trigger: Some(Trigger::from_artifact("child.yml", "generate")),
                ..Job::default()
            },
        )
        .unwrap();
    let mut child = Pipeline::default();
    child
        .add_job(
            "use-artifacts",
            Job {
                needs: Some(vec![Need::other_pipeline(
                    "$PARENT_PIPELINE_ID",
                    "generate",
                )]),
                script: vec!["ls".into()],
                variables: [(
                    "AWS_ACCESS_KEY_ID".to_string(),
                    "$BUILD_CACHE_ACCESS_KEY_ID".to_string(),
                )]
                .into_iter()
                .collect(),
                ..Job::default()
            },
        )
        .unwrap();
    (parent, child)
}

#[test]
fn parent_trigger_and_child_needs_validate() {
    let (parent, child) = parent_and_child();
    parent.check().unwrap();
    child.check().unwrap();
    validate_gitlab_ci(&parent.to_yaml()).unwrap();
    validate_gitlab_ci(&child.to_yaml()).unwrap();
    assert!(parent.to_yaml().contains("strategy: depend"));
}

#[test]
fn the_noop_pipeline_is_valid() {
    let p = Pipeline::noop(
        "All images are up to date, nothing to build.",
        vec!["kubernetes".into()],
    )
    .into_child();
    p.check().unwrap();
    validate_gitlab_ci(&p.to_yaml()).unwrap();
}
