//! The CI pipeline model against GitLab's own schema: Spack's generated pipelines read and
//! written back, and the pipeline shapes the tools emit.

use std::path::Path;

use model::ci::{Artifacts, Image, Job, Need, Pipeline, Rule, Trigger, Workflow};
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

// What a real GitLab does with every pipeline the chain writes (the chain, stage 1's, stage
// 2's from Spack's real output, stage 3's).

mod support;

/// Trigger jobs run on GitLab itself: no runner, no tags.
fn runs_on_a_runner(job: &model::ci::Job) -> bool {
    job.trigger.is_none()
}

#[test]
fn every_child_pipeline_has_jobs_in_a_merge_request_pipeline() {
    // A job without rules gets `only: [branches, tags]`, which a merge-request pipeline and its
    // children do not match: each child needs its own rules, or its trigger fails.
    for (file, p) in support::everything() {
        if file == ".gitlab-ci.yml" {
            continue;
        }
        let workflow = p
            .workflow
            .as_ref()
            .unwrap_or_else(|| panic!("{file}: no workflow"));
        assert_eq!(
            workflow.rules[0].if_.as_deref(),
            Some(model::ci::CHILD_SOURCE),
            "{file}"
        );
        for (name, job) in &p.jobs {
            assert!(!job.rules.is_empty(), "{file}: `{name}` has no rules");
            assert!(
                job.when.is_none(),
                "{file}: `{name}`: `when` beside `rules`"
            );
        }
    }
}

#[test]
fn every_job_asks_for_a_runner_by_tag() {
    for (file, p) in support::everything() {
        for (name, job) in p.jobs.iter().filter(|(_, j)| runs_on_a_runner(j)) {
            assert!(!job.tags.is_empty(), "{file}: `{name}` would stay pending");
        }
    }
}

#[test]
fn gitlab_limits_hold() {
    for (file, p) in support::everything() {
        let text = p.to_yaml();
        assert!(
            text.len() < model::ci::MAX_FILE_BYTES,
            "{file}: {} bytes",
            text.len()
        );
        for (name, job) in &p.jobs {
            let needs = job.needs.as_ref().map_or(0, Vec::len);
            assert!(needs <= 50, "{file}: `{name}` needs {needs} jobs");
            if let Some(a) = &job.artifacts {
                assert!(
                    a.expire_in.is_some(),
                    "{file}: `{name}`: artifacts never expire"
                );
            }
        }
    }
}

#[test]
fn only_infrastructure_failures_are_retried() {
    for (file, p) in support::everything() {
        for (name, job) in p.jobs.iter().filter(|(_, j)| runs_on_a_runner(j)) {
            // `wait-for-build-jobs` only echoes: Spack gives it `retry: 0`.
            if name == "wait-for-build-jobs" {
                continue;
            }
            match &job.retry {
                Some(model::ci::Retry::Detailed { max, when }) => {
                    assert!(*max > 0, "{file}: `{name}`");
                    assert!(
                        when.iter()
                            .all(|w| model::config::INFRASTRUCTURE_FAILURES.contains(&w.as_str())),
                        "{file}: `{name}` is retried on {when:?}"
                    );
                }
                other => panic!("{file}: `{name}` has retry {other:?}"),
            }
        }
    }
}

#[test]
fn the_index_update_runs_after_a_failed_stage_and_shares_the_janitors_lock() {
    let cache = support::build_cache(&support::config());
    let trigger = &cache[0].1;
    let index = trigger
        .jobs
        .iter()
        .find(|(n, _)| n.contains("rebuild-index"))
        .map(|(_, j)| j)
        .expect("an index trigger");
    assert_eq!(index.rules[0].when.as_deref(), Some("always"));
    let generated = support::everything();
    let chain = &generated[0].1;
    for (trigger, janitor) in [
        ("build cache amd64", "clean build cache amd64"),
        (
            "build cache amd64 (branches)",
            "clean branch build cache amd64",
        ),
        ("build cache amd64", "scheduled clean build cache amd64"),
    ] {
        assert!(chain.jobs[trigger].resource_group.is_some());
        assert_eq!(
            chain.jobs[trigger].resource_group, chain.jobs[janitor].resource_group,
            "{trigger} and {janitor} write one cache"
        );
    }
    assert_ne!(
        chain.jobs["build cache amd64"].resource_group,
        chain.jobs["build cache amd64 (branches)"].resource_group
    );
}
