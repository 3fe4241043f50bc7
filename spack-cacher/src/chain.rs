//! `spack-cacher chain`: the `.gitlab-ci.yml` of a definitions repository, chaining the stages
//! in order — base images, build cache (per architecture with Spack definitions), containers,
//! cleanup — each stage's jobs in a child pipeline taken from the artifacts of the job that
//! generated it (no API token). Stage 1 runs in the released tools image and builds the
//! branch's own builder, runtime and tools images; every later job runs in those, at the tag
//! stage 1 exports (`BUILDER_TAG`), with the timeouts and resources its kind is configured with.

use std::collections::BTreeMap;

use anyhow::Context;
use common::ci::{Artifacts, Image, Job, Need, Pipeline, Rule, Trigger, Workflow};
use common::commands::{
    Arg, CacherGenerate, CacherPrepare, CacherProcess, CacherRecord, S3Access, SifPruneBranches,
    SpackahPipeline, SpackitorClean, SpacktainerizerPipeline,
};
use common::config::{ArchConfig, Config};
use common::env_names::BUILDER_TAG;

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

/// The job that plans stage 1; its dotenv report holds `BUILDER_TAG`.
pub const GENERATE_BASE_IMAGES: &str = "generate base images";

#[derive(Debug, Clone)]
pub struct ChainOptions {
    pub config: Config,
    /// Package repositories the environments use besides Spack's own (the template's
    /// `spack: repos:`, relative to the repository root): the janitor is told of them, so the
    /// "package removed" rule knows their packages.
    pub package_repos: Vec<String>,
    /// Path of the configuration file in the repository, as the jobs read it.
    pub config_path: String,
    /// The architectures with Spack definitions, in configuration order: only they get build
    /// cache jobs (and a janitor).
    pub spack_architectures: Vec<String>,
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

/// `name` as a job's image, its entrypoint blanked so the job's script runs in a plain shell.
fn image(name: String) -> Option<Image> {
    Some(Image::Detailed {
        name,
        entrypoint: Some(vec![String::new()]),
        pull_policy: None,
    })
}

/// A trigger job running the child pipeline `file` produced by `job`.
fn trigger(stage: &str, job: &str, file: &str) -> Job {
    Job {
        stage: Some(stage.into()),
        trigger: Some(Trigger::from_artifact(file, job)),
        needs: Some(vec![Need::with_artifacts(job, true)]),
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

/// The branch's own image `name` (`builder`, `tools`), at the tag stage 1 exports.
fn branch_image(cfg: &Config, name: &str) -> Option<Image> {
    image(cfg.base_image(name, &format!("${BUILDER_TAG}")))
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
    // Stage 1: base images, planned in the released tools image (the branch's own does not
    // exist yet). The generating job exports the builder tag for every later job.
    p.add_job(
        GENERATE_BASE_IMAGES,
        Job {
            stage: Some("generate".into()),
            image: image(cfg.release_tools_image()),
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
        }
        .with_settings(&cfg.jobs.tools),
    )?;
    p.add_job(
        "base images",
        trigger("base-images", GENERATE_BASE_IMAGES, "base-images.yml"),
    )?;

    // Stage 2: the build cache, per architecture with Spack definitions, once the builder
    // image exists; cleanup as soon as an architecture's cache is filled.
    let mut cache_triggers = Vec::new();
    for arch in &opts.spack_architectures {
        let ac = cfg
            .arch(arch)
            .with_context(|| format!("architecture `{arch}` is not in the configuration"))?;
        let (generate, trigger_name) = add_build_cache(&mut p, opts, arch, ac)?;
        add_cleaners(&mut p, opts, arch, ac, &generate, &trigger_name)?;
        cache_triggers.push((generate, trigger_name));
    }

    add_prune_jobs(&mut p, opts)?;

    // Stage 3: containers, from the lockfiles of every architecture.
    let mut needs: Vec<Need> = vec![Need::with_artifacts(GENERATE_BASE_IMAGES, true)];
    for (generate, trigger_name) in &cache_triggers {
        needs.push(Need::with_artifacts(generate, true));
        needs.push(Need::job(trigger_name));
    }
    if cache_triggers.is_empty() {
        // Only `.def` containers: their SIFs need the tools image stage 1 builds.
        needs.push(Need::job("base images"));
    }
    p.add_job(
        "generate containers",
        Job {
            stage: Some("containers".into()),
            image: branch_image(cfg, "tools"),
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
        }
        .with_settings(&cfg.jobs.tools),
    )?;
    p.add_job(
        "containers",
        trigger("containers", "generate containers", "containers.yml"),
    )?;
    p.check().context("the generated .gitlab-ci.yml")?;
    Ok(p)
}

/// The job that prepares, concretizes and records `arch`'s environments and writes the
/// pipelines that fill its cache — in the builder, which has Spack and the tools — and the
/// trigger running them; their names.
fn add_build_cache(
    p: &mut Pipeline,
    opts: &ChainOptions,
    arch: &str,
    ac: &ArchConfig,
) -> anyhow::Result<(String, String)> {
    let cfg = &opts.config;
    let generate = common::ci::build_cache_generate_job(arch);
    let scratch = format!("jobs_scratch_dir.{arch}");
    let mut variables = ac.variables.clone();
    variables.extend(ac.build_cache.aws_variables());
    p.add_job(
        generate.clone(),
        Job {
            stage: Some("build-cache".into()),
            image: Some(Image::Detailed {
                name: cfg.base_image("builder", &format!("${BUILDER_TAG}")),
                entrypoint: Some(vec![String::new()]),
                pull_policy: Some("always".into()),
            }),
            tags: vec![ac.runner_tag.clone()],
            variables,
            needs: Some(vec![
                Need::with_artifacts(GENERATE_BASE_IMAGES, true),
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
        }
        .with_settings(&cfg.jobs.generate),
    )?;
    let trigger_name = format!("build cache {arch}");
    p.add_job(
        trigger_name.clone(),
        trigger(
            "build-cache",
            &generate,
            &format!("{scratch}/pipelines/{arch}.yml"),
        ),
    )?;
    Ok((generate, trigger_name))
}

/// The cleaning jobs of `arch`'s caches: after its build (`generate`, `trigger_name`) and on
/// schedules. Every cleaning keeps what every living branch recorded, whichever pipeline runs
/// it; a branch's pipeline cleans the cache it fills, with that cache's age.
fn add_cleaners(
    p: &mut Pipeline,
    opts: &ChainOptions,
    arch: &str,
    ac: &ArchConfig,
    generate: &str,
    trigger_name: &str,
) -> anyhow::Result<()> {
    let cfg = &opts.config;
    let after_build = |on_default: bool| {
        let keep = format!("envs/{arch}");
        Job {
            needs: Some(vec![
                Need::with_artifacts(GENERATE_BASE_IMAGES, true),
                Need::with_artifacts(generate, true),
                Need::job(trigger_name),
            ]),
            ..clean_job(
                opts,
                ac,
                arch,
                on_default,
                Some(&keep),
                &format!("${BUILDER_TAG}"),
            )
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
        // One cache for every branch is the production cache: only the default branch (a push
        // or a manual run there) cleans it after a build; the schedule does the rest.
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

/// A scheduled job in the default branch's tools image.
fn scheduled_job(opts: &ChainOptions, runner: &str, cmd: String) -> Job {
    let cfg = &opts.config;
    Job {
        stage: Some("cleanup".into()),
        image: image(cfg.base_image("tools", &cfg.tags.default_branch)),
        tags: vec![runner.to_string()],
        needs: Some(vec![]),
        script: vec![cmd],
        rules: vec![Rule::when_if(SCHEDULE, "always")],
        ..Job::default()
    }
    .with_settings(&cfg.jobs.cleanup)
}

/// `spackitor clean` of the cache branches (`on_default`: the default branch) fill, keeping
/// every keep list recorded in any cache of the architecture by a branch the remote still has
/// (and `own_keep`, this pipeline's own lockfiles), with Spack's package repository (in the
/// builder, tagged `builder_tag`) and the project's.
fn clean_job(
    opts: &ChainOptions,
    ac: &ArchConfig,
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
        image: image(opts.config.base_image("builder", builder_tag)),
        tags: vec![ac.runner_tag.clone()],
        script: vec![cmd],
        // One janitor at a time per cache.
        resource_group: Some(format!(
            "build-cache-{arch}{}",
            if on_default { "" } else { "-branches" }
        )),
        ..Job::default()
    }
    .with_settings(&opts.config.jobs.cleanup)
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
