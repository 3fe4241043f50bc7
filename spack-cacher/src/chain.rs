//! `spack-cacher chain`: the project's `.gitlab-ci.yml`, chaining the stages in order —
//! base images, build cache (per architecture), containers, cleanup — each stage's jobs in a
//! child pipeline taken from the artifacts of the job that generated it (no API token).

use std::collections::BTreeMap;

use anyhow::Context;
use common::ci::{Artifacts, Image, Job, Need, Pipeline, Rule, Trigger, Workflow};
use common::commands::{
    Arg, CacherGenerate, CacherPrepare, CacherProcess, CacherRecord, S3Access, SifPruneBranches,
    SpackahPipeline, SpackitorClean, SpacktainerizerPipeline,
};
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
const OTHER_BRANCH_WEB: &str =
    "$CI_PIPELINE_SOURCE == \"web\" && $CI_COMMIT_BRANCH != $CI_DEFAULT_BRANCH";

#[derive(Debug, Clone)]
pub struct ChainOptions {
    pub config: Config,
    /// Package repositories the environments use besides Spack's own (the template's
    /// `spack: repos:`, relative to the repository root): the janitor is told of them, so the
    /// "package removed" rule knows their packages.
    pub package_repos: Vec<String>,
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
                SpacktainerizerPipeline {
                    out: "base-images.yml".into(),
                    dotenv: "base-images.env".into(),
                }
                .line()
                .render(),
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

    // Stage 2: the build cache, per architecture, once the builder image exists; cleanup as
    // soon as an architecture's cache is filled.
    let mut cache_triggers = Vec::new();
    for (arch, ac) in &cfg.architectures {
        let (generate, trigger_name) = add_build_cache(&mut p, opts, arch, ac)?;
        add_cleaners(&mut p, opts, arch, ac, &generate, &trigger_name)?;
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
            script: vec![
                SpackahPipeline {
                    environments: "envs".into(),
                    out: "containers.yml".into(),
                }
                .line()
                .render(),
            ],
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

/// The job that prepares, concretizes and records `arch`'s environments and writes the
/// pipelines that fill its cache, and the trigger running them; their names.
fn add_build_cache(
    p: &mut Pipeline,
    opts: &ChainOptions,
    arch: &str,
    ac: &common::config::ArchConfig,
) -> anyhow::Result<(String, String)> {
    let cfg = &opts.config;
    let generate = common::ci::build_cache_generate_job(arch);
    let scratch = format!("jobs_scratch_dir.{arch}");
    let mut variables: indexmap::IndexMap<String, String> = ac.variables.clone();
    variables.extend(ac.build_cache.aws_variables());
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
            needs: Some(vec![
                Need::with_artifacts("generate base images", true),
                Need::job("base images"),
            ]),
            script: vec![
                CacherPrepare { out: "envs".into() }.line().render(),
                CacherGenerate {
                    envs: "envs".into(),
                    arch: arch.to_string(),
                    pipelines: scratch.clone(),
                }
                .line()
                .render(),
                // The keep lists go into the cache before any build job starts.
                CacherRecord {
                    envs: "envs".into(),
                    arch: arch.to_string(),
                }
                .line()
                .render(),
                CacherProcess {
                    arch: arch.to_string(),
                    out: format!("{scratch}/pipelines"),
                    input: scratch.clone(),
                }
                .line()
                .render(),
            ],
            artifacts: Some(Artifacts {
                paths: vec![format!("envs/{arch}"), scratch.clone()],
                when: Some("always".into()),
                ..Artifacts::default()
            }),
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

    Ok((generate, trigger_name))
}

/// The cleaning jobs of `arch`'s caches: after its build (`generate`, `trigger_name`) and on
/// schedules.
fn add_cleaners(
    p: &mut Pipeline,
    opts: &ChainOptions,
    arch: &str,
    ac: &common::config::ArchConfig,
    generate: &str,
    trigger_name: &str,
) -> anyhow::Result<()> {
    let cfg = &opts.config;
    // Cleanup may start as soon as this architecture's cache is filled. Every cleaning
    // keeps what every living branch recorded, whichever pipeline runs it; a branch's
    // pipeline cleans the cache it fills, with that cache's age.
    let after_build = |on_default: bool| {
        let keep = format!("envs/{arch}");
        Job {
            needs: Some(vec![
                Need::with_artifacts("generate base images", true),
                Need::with_artifacts(generate, true),
                Need::job(trigger_name),
            ]),
            ..clean_job(opts, ac, arch, on_default, Some(&keep), "$BUILDER_TAG")
        }
    };
    let separate_branch_cache = ac
        .build_cache
        .branch_url
        .as_ref()
        .is_some_and(|b| *b != ac.build_cache.url);
    if separate_branch_cache {
        p.add_job(
            format!("clean build cache {arch}"),
            Job {
                rules: vec![
                    Rule::when_if(SCHEDULE, "never"),
                    Rule::when_if(DEFAULT_BRANCH, "on_success"),
                ],
                ..after_build(true)
            },
        )?;
        p.add_job(
            format!("clean branch build cache {arch}"),
            Job {
                rules: vec![
                    Rule::when_if(SCHEDULE, "never"),
                    Rule::when_if(OTHER_BRANCH_WEB, "on_success"),
                ],
                ..after_build(false)
            },
        )?;
    } else {
        p.add_job(
            format!("clean build cache {arch}"),
            Job {
                rules: vec![
                    Rule::when_if(SCHEDULE, "never"),
                    Rule::when_if(DEFAULT_BRANCH, "on_success"),
                    Rule::when_if(WEB, "on_success"),
                ],
                ..after_build(true)
            },
        )?;
    }
    // The scheduled runs: the janitor alone, each cache with its own age, on the default
    // branch's builder (no stage 1 runs on a schedule).
    let tag = cfg.tags.default_branch.clone();
    let scheduled = |on_default: bool| Job {
        needs: Some(vec![]),
        rules: vec![Rule::when_if(SCHEDULE, "always")],
        ..clean_job(opts, ac, arch, on_default, None, &tag)
    };
    p.add_job(
        format!("scheduled clean build cache {arch}"),
        scheduled(true),
    )?;
    if separate_branch_cache {
        p.add_job(
            format!("scheduled clean branch build cache {arch}"),
            scheduled(false),
        )?;
    }
    Ok(())
}

/// Scheduled: SIFs of branches deleted since go, from each containers bucket and from the
/// shared directory (on the runner that mounts it). The remote is the project's own, read with
/// the job token through git's environment.
fn add_prune_jobs(p: &mut Pipeline, opts: &ChainOptions) -> anyhow::Result<()> {
    let cfg = &opts.config;
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
        let cmd = SifPruneBranches {
            store: url.clone(),
            s3: S3Access::of(bucket),
        }
        .line()
        .render();
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
                SifPruneBranches {
                    store: sync.dir.clone(),
                    s3: S3Access::default(),
                }
                .line()
                .render(),
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

/// `spackitor clean` of the cache branches (`on_default`: the default branch) fill, keeping
/// every keep list recorded in any cache of the architecture by a branch the remote still has
/// (and `keep`, this pipeline's own lockfiles), with Spack's package repository (in the
/// builder, tagged `builder_tag`) and the project's.
fn clean_job(
    opts: &ChainOptions,
    ac: &common::config::ArchConfig,
    arch: &str,
    on_default: bool,
    own_keep: Option<&str>,
    builder_tag: &str,
) -> Job {
    let bucket = &ac.build_cache;
    let mut caches = vec![bucket.url_for(true)];
    caches.extend(bucket.branch_url.as_deref());
    caches.dedup();
    let mut keep: Vec<Arg> = caches
        .into_iter()
        .filter_map(|c| crate::record::records_url(c).ok())
        .map(|records| Arg::quoted(records.to_string()))
        .collect();
    keep.extend(own_keep.map(Arg::word));
    let mut spack_repos = vec![Arg::var("SPACK_ROOT")];
    spack_repos.extend(opts.package_repos.iter().map(Arg::quoted));
    let cmd = SpackitorClean {
        cache: bucket.url_for(on_default).to_string(),
        max_age_days: bucket.max_age_for(on_default),
        s3: S3Access::of(bucket),
        keep,
        spack_repos,
    }
    .line()
    .render();
    Job {
        stage: Some("cleanup".into()),
        image: Some(Image::Detailed {
            name: format!("{}/builder:{builder_tag}", opts.config.registry.url),
            entrypoint: Some(vec![String::new()]),
            pull_policy: None,
        }),
        tags: vec![ac.runner_tag.clone()],
        script: vec![cmd],
        // One janitor at a time per cache.
        resource_group: Some(format!(
            "build-cache-{arch}{}",
            if on_default { "" } else { "-branches" }
        )),
        ..Job::default()
    }
}

/// The package repositories the template `spack.yaml` of `repo` lists (`spack: repos:`, a list
/// or, as Spack 1.x writes it, a map), as written.
pub fn template_repos(repo: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let path = repo.join("spack.yaml");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let doc: common::yaml::Value = common::yaml::read(&path)?;
    let repos = doc.get("spack").and_then(|s| s.get("repos"));
    Ok(match repos {
        Some(common::yaml::Value::Sequence(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(common::yaml::Value::Mapping(m)) => m
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    })
}

fn dotenv(file: &str) -> common::yaml::Value {
    let mut m = common::yaml::Mapping::new();
    m.insert("dotenv".into(), file.into());
    common::yaml::Value::Mapping(m)
}
