//! `spack-cacher chain`: the `.gitlab-ci.yml` of a definitions repository, chaining the stages
//! in order — base images, build cache (per architecture with Spack definitions), containers,
//! cleanup — each stage's jobs in a child pipeline taken from the artifacts of the job that
//! generated it (no API token). Stage 1 runs in the released tools image and builds the
//! branch's own builder, runtime and tools images; every later job runs in those, pinned by the
//! digests stage 1 exports (`BUILDER_IMAGE`, `TOOLS_IMAGE`), with its kind's settings.

use std::collections::BTreeMap;

use anyhow::Context;
use model::ci::{
    ARTIFACTS_EXPIRE_IN, Artifacts, Image, Job, Need, Pipeline, Rule, Trigger, Workflow,
};
use model::commands::{
    Arg, CacherGenerate, CacherPrepare, CacherProcess, CacherRecord, S3Access, SifPruneBranches,
    SpackahPipeline, SpackitorClean, SpacktainerizerPin, SpacktainerizerPipeline,
};
use model::config::{ArchConfig, Config};
use model::env_names;

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
/// The job that pins the base images stage 1 built by digest; its dotenv report holds
/// `BUILDER_IMAGE`, `RUNTIME_IMAGE` and `TOOLS_IMAGE`.
pub const PIN_BASE_IMAGES: &str = "pin base images";

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

/// The branch's own image as stage 1 built it, pinned by digest (`$BUILDER_IMAGE`,
/// `$TOOLS_IMAGE`): a tag another pipeline of the branch may move before this job starts.
fn pinned_image(variable: &str) -> Option<Image> {
    image(format!("${variable}"))
}

/// What a job of stages 2 and 3 needs of stage 1: `BUILDER_TAG`, and the pinned images.
fn stage_one_needs() -> Vec<Need> {
    vec![
        Need::with_artifacts(GENERATE_BASE_IMAGES, true),
        Need::with_artifacts(PIN_BASE_IMAGES, true),
    ]
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
    add_base_images(&mut p, cfg)?;

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

    add_containers(&mut p, cfg, &cache_triggers)?;
    p.check().context("the generated .gitlab-ci.yml")?;
    Ok(p)
}

/// Stage 1: the base images, planned in the released tools image (the branch's own does not
/// exist yet), built by a child pipeline, then pinned by digest for every later job.
fn add_base_images(p: &mut Pipeline, cfg: &Config) -> anyhow::Result<()> {
    // The generating job exports the builder tag for every later job.
    let generate_base_images = SpacktainerizerPipeline {
        out: "base-images.yml".into(),
        dotenv: "base-images.env".into(),
    };
    p.add_job(
        GENERATE_BASE_IMAGES,
        tools_job(
            cfg,
            "generate",
            image(cfg.release_tools_image()),
            None,
            generate_base_images.line().render(),
            Artifacts {
                paths: vec!["base-images.yml".into()],
                // BUILDER_TAG for the jobs that need this one.
                extra: [("reports".to_string(), dotenv("base-images.env"))]
                    .into_iter()
                    .collect(),
                ..Artifacts::default()
            },
        ),
    )?;
    p.add_job(
        "base images",
        trigger("base-images", GENERATE_BASE_IMAGES, "base-images.yml"),
    )?;
    // Two pushes of a branch move the same tags: every later job takes its image by the digest
    // this pipeline's stage 1 left behind.
    let pin = SpacktainerizerPin {
        dotenv: "pinned.env".into(),
    };
    p.add_job(
        PIN_BASE_IMAGES,
        tools_job(
            cfg,
            "base-images",
            image(cfg.release_tools_image()),
            Some(vec![
                Need::with_artifacts(GENERATE_BASE_IMAGES, true),
                Need::job("base images"),
            ]),
            pin.line().render(),
            Artifacts {
                extra: [("reports".to_string(), dotenv("pinned.env"))]
                    .into_iter()
                    .collect(),
                ..Artifacts::default()
            },
        ),
    )?;
    Ok(())
}

/// Stage 3: the containers, from the lockfiles of every architecture (`cache_triggers`: each
/// architecture's generating job and build-cache trigger).
fn add_containers(
    p: &mut Pipeline,
    cfg: &Config,
    cache_triggers: &[(String, String)],
) -> anyhow::Result<()> {
    let mut needs: Vec<Need> = stage_one_needs();
    for (generate, trigger_name) in cache_triggers {
        needs.push(Need::with_artifacts(generate, true));
        needs.extend(cache_trigger_needs(p, trigger_name));
    }
    let containers = SpackahPipeline {
        environments: "envs".into(),
        out: "containers.yml".into(),
    };
    p.add_job(
        "generate containers",
        tools_job(
            cfg,
            "containers",
            pinned_image(env_names::TOOLS_IMAGE),
            Some(needs),
            containers.line().render(),
            Artifacts {
                // A pipeline too large for one file has its parts beside it.
                paths: vec![
                    "containers.yml".into(),
                    model::ci::CONTAINER_PARTS_DIR.into(),
                ],
                ..Artifacts::default()
            },
        ),
    )?;
    p.add_job(
        "containers",
        trigger("containers", "generate containers", "containers.yml"),
    )?;
    Ok(())
}

/// A job of no architecture that runs one tools command in `image`, on the tools' runners
/// with their settings, never on a schedule; its `artifacts` expire.
fn tools_job(
    cfg: &Config,
    stage: &str,
    image: Option<Image>,
    needs: Option<Vec<Need>>,
    line: String,
    artifacts: Artifacts,
) -> Job {
    Job {
        stage: Some(stage.into()),
        image,
        needs,
        script: vec![line],
        artifacts: Some(Artifacts {
            expire_in: Some(ARTIFACTS_EXPIRE_IN.into()),
            ..artifacts
        }),
        tags: cfg.tools_tags(),
        rules: not_on_schedule(),
        ..Job::default()
    }
    .with_settings(&cfg.jobs.tools)
    .with_pull_policy(cfg.pull_policy.as_deref())
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
    let generate = model::ci::build_cache_generate_job(arch);
    let scratch = format!("jobs_scratch_dir.{arch}");
    let mut variables = ac.job_variables();
    variables.extend(ac.build_cache.aws_variables());
    p.add_job(
        generate.clone(),
        Job {
            stage: Some("build-cache".into()),
            image: pinned_image(env_names::BUILDER_IMAGE),
            tags: vec![ac.runner_tag.clone()],
            variables,
            needs: Some(stage_one_needs()),
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
                expire_in: Some(ARTIFACTS_EXPIRE_IN.into()),
                ..Artifacts::default()
            }),
            rules: not_on_schedule(),
            ..Job::default()
        }
        .with_settings(&cfg.jobs.generate)
        .with_pull_policy(cfg.pull_policy.as_deref()),
    )?;
    let trigger_name = add_cache_triggers(p, ac, arch, &generate, &scratch)?;
    Ok((generate, trigger_name))
}

/// The trigger(s) running `arch`'s build-cache pipeline, which `generate` wrote under
/// `scratch`; the name later jobs need.
fn add_cache_triggers(
    p: &mut Pipeline,
    ac: &ArchConfig,
    arch: &str,
    generate: &str,
    scratch: &str,
) -> anyhow::Result<String> {
    let trigger_name = format!("build cache {arch}");
    let file = format!("{scratch}/pipelines/{arch}.yml");
    let bucket = &ac.build_cache;
    if bucket.url_for(false) == bucket.url_for(true) {
        p.add_job(
            trigger_name.clone(),
            Job {
                resource_group: Some(cache_group(bucket.url_for(true))),
                ..trigger("build-cache", generate, &file)
            },
        )?;
    } else {
        // One trigger per cache it may fill, so each holds its own cache's resource group
        // (a variable in `resource_group:` is not reliably expanded:
        // https://gitlab.com/gitlab-org/gitlab/-/issues/462514); later jobs need both,
        // optionally, as only one exists in a pipeline.
        p.add_job(
            trigger_name.clone(),
            Job {
                resource_group: Some(cache_group(bucket.url_for(true))),
                rules: vec![
                    Rule::when_if(SCHEDULE, "never"),
                    Rule::when_if(DEFAULT_BRANCH, "on_success"),
                ],
                ..trigger("build-cache", generate, &file)
            },
        )?;
        p.add_job(
            branch_trigger(&trigger_name),
            Job {
                resource_group: Some(cache_group(bucket.url_for(false))),
                rules: vec![
                    Rule::when_if(SCHEDULE, "never"),
                    Rule::when_if(DEFAULT_BRANCH, "never"),
                    Rule::when_if(MERGE_REQUEST, "on_success"),
                    Rule::when_if(WEB, "on_success"),
                ],
                ..trigger("build-cache", generate, &file)
            },
        )?;
    }
    Ok(trigger_name)
}

/// The trigger that fills an architecture's branch cache, beside `trigger_name`'s production.
fn branch_trigger(trigger_name: &str) -> String {
    format!("{trigger_name} (branches)")
}

/// The needs on an architecture's build-cache trigger(s): optional, as a pipeline has one of
/// them when the branches fill a cache of their own
/// (https://docs.gitlab.com/ci/yaml/#needsoptional).
fn cache_trigger_needs(p: &Pipeline, trigger_name: &str) -> Vec<Need> {
    let branch = branch_trigger(trigger_name);
    if !p.jobs.contains_key(&branch) {
        return vec![Need::job(trigger_name)];
    }
    [trigger_name.to_string(), branch]
        .into_iter()
        .map(|job| Need::Detailed {
            job,
            pipeline: None,
            artifacts: Some(false),
            optional: Some(true),
        })
        .collect()
}

/// The resource group of everything that writes a cache's index or deletes from it: filling
/// it (Spack's index update runs last in the build-cache child pipeline, and a trigger holds
/// its group until the child pipeline ends:
/// https://docs.gitlab.com/ci/resource_groups/#pipeline-level-concurrency-control-with-cross-projectparent-child-pipelines)
/// and cleaning it never overlap, nor two fills of one cache by two pipelines. GitLab allows
/// letters, digits, `-`, `_`, `/`, `.` and spaces in the name.
pub fn cache_group(url: &str) -> String {
    let name: String = url
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("build-cache-{}", name.trim_matches('-'))
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
    let trigger_needs = cache_trigger_needs(p, trigger_name);
    let after_build = |on_default: bool| {
        let keep = format!("envs/{arch}");
        let mut needs = stage_one_needs();
        needs.push(Need::with_artifacts(generate, true));
        needs.extend(trigger_needs.iter().cloned());
        Job {
            needs: Some(needs),
            // A janitor that fails after a build leaves the cache as it was (it validates
            // everything before its first change): the pipeline shows it as a warning and
            // still passes, since the containers it built are good. A scheduled janitor's
            // failure fails its pipeline, so that someone is told.
            allow_failure: Some(true),
            ..clean_job(
                opts,
                ac,
                on_default,
                Some(&keep),
                &format!("${}", env_names::BUILDER_IMAGE),
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
    add_scheduled_cleaners(p, opts, arch, ac, separate_branch_cache)
}

/// The scheduled runs of `arch`'s janitors: the janitor alone, each cache with its own age, on
/// the default branch's builder (no stage 1 runs on a schedule).
fn add_scheduled_cleaners(
    p: &mut Pipeline,
    opts: &ChainOptions,
    arch: &str,
    ac: &ArchConfig,
    separate_branch_cache: bool,
) -> anyhow::Result<()> {
    let cfg = &opts.config;
    let builder = cfg.base_image("builder", &cfg.tags.default_branch);
    let scheduled = |on_default: bool| Job {
        needs: Some(vec![]),
        rules: vec![Rule::when_if(SCHEDULE, "always")],
        ..clean_job(opts, ac, on_default, None, &builder)
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
    let mut buckets: BTreeMap<String, (&model::config::BucketConfig, &str)> = BTreeMap::new();
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
        let prune = SifPruneBranches {
            store: sync.dir.clone(),
            s3: S3Access::default(),
        };
        let job = scheduled_job(opts, &sync.runner_tag, prune.line().render()).on_sync_runner(sync);
        p.add_job("scheduled prune branch SIFs shared", job)?;
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
    .with_pull_policy(cfg.pull_policy.as_deref())
}

/// `spackitor clean` of the cache branches (`on_default`: the default branch) fill, keeping
/// every keep list recorded in any cache of the architecture by a branch the remote still has
/// (and `own_keep`, this pipeline's own lockfiles), with Spack's package repository (in the
/// image `builder`) and the project's.
fn clean_job(
    opts: &ChainOptions,
    ac: &ArchConfig,
    on_default: bool,
    own_keep: Option<&str>,
    builder: &str,
) -> Job {
    let bucket = &ac.build_cache;
    let mut caches = vec![bucket.url_for(true)];
    caches.extend(bucket.branch_url.as_deref());
    caches.dedup();
    let mut keep: Vec<Arg> = caches
        .into_iter()
        .filter_map(|c| crate::record::records_url(c).ok())
        // As a URL: a directory cache's records folder may not exist yet (nothing recorded),
        // which a path would make an error.
        .map(|records| Arg::quoted(records.as_url()))
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
        image: image(builder.to_string()),
        tags: vec![ac.runner_tag.clone()],
        script: vec![cmd],
        // Never beside a fill of this cache (its index update) nor another janitor.
        resource_group: Some(cache_group(bucket.url_for(on_default))),
        ..Job::default()
    }
    .with_settings(&opts.config.jobs.cleanup)
    .with_pull_policy(opts.config.pull_policy.as_deref())
}

/// The package repositories the template `spack.yaml` of `repo` lists (`spack: repos:`, a list
/// or, as Spack 1.x writes it, a map), as written.
pub fn template_repos(repo: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let path = repo.join("spack.yaml");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let doc: model::yaml::Value = model::yaml::read(&path)?;
    let repos = doc.get("spack").and_then(|s| s.get("repos"));
    Ok(match repos {
        Some(model::yaml::Value::Sequence(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(model::yaml::Value::Mapping(m)) => m
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    })
}

fn dotenv(file: &str) -> model::yaml::Value {
    let mut m = model::yaml::Mapping::new();
    m.insert("dotenv".into(), file.into());
    model::yaml::Value::Mapping(m)
}
