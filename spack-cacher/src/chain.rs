//! `spack-cacher chain`: the project's `.gitlab-ci.yml`, chaining the stages in order —
//! base images, build cache (per architecture), containers, cleanup — each stage's jobs in a
//! child pipeline taken from the artifacts of the job that generated it (no API token).

use std::collections::BTreeMap;

use anyhow::Context;
use common::ci::{Artifacts, Image, Job, Need, Pipeline, Rule, Trigger, Workflow};
use common::config::Config;

pub const STAGES: [&str; 5] = [
    "generate",
    "base-images",
    "build-cache",
    "containers",
    "cleanup",
];

const MERGE_REQUEST: &str = "$CI_PIPELINE_SOURCE == \"merge_request_event\"";
const DEFAULT_BRANCH: &str = "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH";
const WEB: &str = "$CI_PIPELINE_SOURCE == \"web\"";
const SCHEDULE: &str = "$CI_PIPELINE_SOURCE == \"schedule\"";

#[derive(Debug, Clone)]
pub struct ChainOptions {
    pub config: Config,
    /// Path of the configuration file in the repository, as the jobs read it.
    pub config_path: String,
    /// Image holding the Spacktainerizah tools, for the jobs that only run them.
    pub tools_image: String,
}

/// Jobs that build run on merge requests, the default branch and manual runs; the schedule
/// runs only the janitor.
fn not_on_schedule() -> Vec<Rule> {
    vec![
        Rule::when_if(SCHEDULE, "never"),
        Rule::when_if(MERGE_REQUEST, "on_success"),
        Rule::when_if(DEFAULT_BRANCH, "on_success"),
        Rule::when_if(WEB, "on_success"),
    ]
}

fn tools(image: &str) -> Option<Image> {
    Some(Image::Detailed {
        name: image.to_string(),
        entrypoint: Some(vec![String::new()]),
        pull_policy: None,
    })
}

/// A trigger job running the child pipeline `file` produced by `job`.
fn trigger(stage: &str, job: &str, file: &str, extra_needs: Vec<Need>) -> Job {
    let mut needs = vec![Need::with_artifacts(job, true)];
    needs.extend(extra_needs);
    Job {
        stage: Some(stage.into()),
        trigger: Some(Trigger::from_artifact(file, job)),
        needs: Some(needs),
        // Child pipelines fetch their parent's artifacts by pipeline id.
        variables: [(
            "PARENT_PIPELINE_ID".to_string(),
            "$CI_PIPELINE_ID".to_string(),
        )]
        .into_iter()
        .collect(),
        rules: not_on_schedule(),
        ..Job::default()
    }
}

pub fn pipeline(opts: &ChainOptions) -> anyhow::Result<Pipeline> {
    let cfg = &opts.config;
    let mut p = Pipeline {
        workflow: Some(Workflow {
            name: None,
            rules: [MERGE_REQUEST, DEFAULT_BRANCH, WEB, SCHEDULE]
                .iter()
                .map(|c| Rule::when_if(*c, "always"))
                .collect(),
        }),
        stages: STAGES.iter().map(|s| s.to_string()).collect(),
        variables: [(
            "SPACKTAINERIZAH_CONFIG".to_string(),
            opts.config_path.clone(),
        )]
        .into_iter()
        .collect(),
        ..Pipeline::default()
    };
    // Stage 1: base images. The generating job also exports the builder tag for later jobs.
    p.add_job(
        "generate base images",
        Job {
            stage: Some("generate".into()),
            image: tools(&opts.tools_image),
            script: vec![
                "spacktainerizer pipeline --file base-images.yml --dotenv base-images.env".into(),
            ],
            artifacts: Some(Artifacts {
                paths: vec!["base-images.yml".into()],
                // BUILDER_TAG for the jobs that need this one.
                extra: [("reports".to_string(), dotenv("base-images.env"))]
                    .into_iter()
                    .collect(),
                ..Artifacts::default()
            }),
            rules: not_on_schedule(),
            ..Job::default()
        },
    )?;
    p.add_job(
        "base images",
        trigger(
            "base-images",
            "generate base images",
            "base-images.yml",
            vec![],
        ),
    )?;

    // Stage 2: the build cache, per architecture, once the builder image exists.
    let mut cache_triggers = Vec::new();
    for (arch, ac) in &cfg.architectures {
        let generate = common::ci::build_cache_generate_job(arch);
        let scratch = format!("jobs_scratch_dir.{arch}");
        let credentials = ac.build_cache.credentials.as_ref();
        let mut variables: indexmap::IndexMap<String, String> = ac.variables.clone();
        if let Some(c) = credentials {
            variables.insert("AWS_ACCESS_KEY_ID".into(), format!("${}", c.user_env));
            variables.insert("AWS_SECRET_ACCESS_KEY".into(), format!("${}", c.secret_env));
        }
        p.add_job(
            generate.clone(),
            Job {
                stage: Some("build-cache".into()),
                image: Some(Image::Detailed {
                    name: format!("{}/builder:$BUILDER_TAG", cfg.registry.url),
                    entrypoint: Some(vec![String::new()]),
                    pull_policy: Some("always".into()),
                }),
                tags: vec![ac.runner_tag.clone()],
                variables,
                needs: Some(vec![Need::with_artifacts("generate base images", true), Need::job("base images")]),
                script: vec![
                    "spack-cacher prepare --output envs --branch \"$CI_COMMIT_REF_SLUG\"".into(),
                    format!("spack-cacher generate --envs envs --arch {arch} --pipelines {scratch}"),
                    format!("spack-cacher process --arch {arch} --output {scratch}/pipelines --artifacts-job \"$CI_JOB_NAME\" {scratch}"),
                ],
                artifacts: Some(Artifacts { paths: vec![format!("envs/{arch}"), scratch.clone()], when: Some("always".into()), ..Artifacts::default() }),
                rules: not_on_schedule(),
                ..Job::default()
            },
        )?;
        let trigger_name = format!("build cache {arch}");
        p.add_job(
            trigger_name.clone(),
            trigger(
                "build-cache",
                &generate,
                &format!("{scratch}/pipelines/{arch}.yml"),
                vec![],
            ),
        )?;

        // Cleanup may start as soon as this architecture's cache is filled; the lockfiles
        // concretized for it are the keep lists.
        p.add_job(
            format!("clean build cache {arch}"),
            Job {
                needs: Some(vec![
                    Need::with_artifacts(generate.clone(), true),
                    Need::job(trigger_name.clone()),
                ]),
                rules: vec![
                    Rule::when_if(SCHEDULE, "never"),
                    Rule::when_if(DEFAULT_BRANCH, "on_success"),
                    Rule::when_if(WEB, "on_success"),
                ],
                ..clean_job(opts, ac, arch, Some(&format!("envs/{arch}")))
            },
        )?;
        // The scheduled run: the janitor alone, by age (no pipeline's lockfiles to keep).
        p.add_job(
            format!("scheduled clean build cache {arch}"),
            Job {
                needs: Some(vec![]),
                rules: vec![Rule::when_if(SCHEDULE, "always")],
                ..clean_job(opts, ac, arch, None)
            },
        )?;
        cache_triggers.push((generate, trigger_name));
    }

    add_prune_jobs(&mut p, opts)?;

    // Stage 3: containers, from the lockfiles of every architecture.
    let mut needs: Vec<Need> = vec![Need::with_artifacts("generate base images", true)];
    for (generate, trigger_name) in &cache_triggers {
        needs.push(Need::with_artifacts(generate, true));
        needs.push(Need::job(trigger_name));
    }
    p.add_job(
        "generate containers",
        Job {
            stage: Some("containers".into()),
            image: tools(&opts.tools_image),
            needs: Some(needs),
            script: vec!["spackah pipeline --environments envs --file containers.yml".into()],
            artifacts: Some(Artifacts {
                paths: vec!["containers.yml".into()],
                ..Artifacts::default()
            }),
            rules: not_on_schedule(),
            ..Job::default()
        },
    )?;
    p.add_job(
        "containers",
        trigger(
            "containers",
            "generate containers",
            "containers.yml",
            vec![],
        ),
    )?;
    p.check().context("the generated .gitlab-ci.yml")?;
    Ok(p)
}

/// Scheduled: SIFs of branches deleted since go, from each containers bucket and from the
/// shared directory (on the runner that mounts it). The remote is the project's own, read with
/// the job token through git's environment.
fn add_prune_jobs(p: &mut Pipeline, opts: &ChainOptions) -> anyhow::Result<()> {
    let cfg = &opts.config;
    let prune = "singularitah sif prune-branches --repo \"$CI_PROJECT_URL\" --default-branch \"$CI_DEFAULT_BRANCH\" --git-token-env CI_JOB_TOKEN";
    let mut buckets: BTreeMap<String, (&common::config::BucketConfig, &str)> = BTreeMap::new();
    for ac in cfg.architectures.values() {
        if let Some(b) = &ac.containers_bucket {
            for url in [b.url_for(true), b.url_for(false)] {
                buckets
                    .entry(url.to_string())
                    .or_insert((b, &ac.runner_tag));
            }
        }
    }
    for (i, (url, (bucket, runner))) in buckets.iter().enumerate() {
        let cmd = format!(
            "{prune} --in {}{}",
            common::ci::shell_quote(url),
            bucket.cli_flags()
        );
        let name = match i {
            0 => "scheduled prune branch SIFs".to_string(),
            _ => format!("scheduled prune branch SIFs {}", i + 1),
        };
        p.add_job(name, scheduled_job(opts, runner, cmd))?;
    }
    if let Some(sync) = &cfg.sif_sync {
        p.add_job(
            "scheduled prune branch SIFs shared",
            scheduled_job(
                opts,
                &sync.runner_tag,
                format!("{prune} --in {}", common::ci::shell_quote(&sync.dir)),
            ),
        )?;
    }
    Ok(())
}

fn scheduled_job(opts: &ChainOptions, runner: &str, cmd: String) -> Job {
    Job {
        stage: Some("cleanup".into()),
        image: tools(&opts.tools_image),
        tags: vec![runner.to_string()],
        needs: Some(vec![]),
        script: vec![cmd],
        rules: vec![Rule::when_if(SCHEDULE, "always")],
        ..Job::default()
    }
}

fn clean_job(
    opts: &ChainOptions,
    ac: &common::config::ArchConfig,
    arch: &str,
    keep: Option<&str>,
) -> Job {
    let bucket = &ac.build_cache;
    // On the default branch the production cache and age; a scheduled run is on it too.
    let mut cmd = format!("spackitor clean --cache {} --orphans", bucket.url);
    if let Some(age) = bucket.max_age_for(true) {
        cmd.push_str(&format!(" --max-age {age}"));
    }
    // Variable names, not values: the tool reads the secrets from the job's environment.
    cmd.push_str(&bucket.cli_flags());
    if let Some(k) = keep {
        cmd.push_str(&format!(" --keep {k}"));
    }
    Job {
        stage: Some("cleanup".into()),
        image: tools(&opts.tools_image),
        tags: vec![ac.runner_tag.clone()],
        script: vec![cmd],
        // One janitor at a time per cache.
        resource_group: Some(format!("build-cache-{arch}")),
        ..Job::default()
    }
}

fn dotenv(file: &str) -> common::yaml::Value {
    let mut m = common::yaml::Mapping::new();
    m.insert("dotenv".into(), file.into());
    common::yaml::Value::Mapping(m)
}
