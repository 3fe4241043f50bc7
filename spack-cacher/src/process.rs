//! `spack-cacher process`: turn the pipelines `spack ci generate` wrote for the environments of
//! one architecture into what GitLab runs: one merged set of jobs (a job shared by several
//! environments once, in its earliest stage), one child pipeline per stage, and the trigger
//! pipeline that runs them in order.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indexmap::IndexMap;
use model::ci::{ARTIFACTS_EXPIRE_IN, Job, Need, Pipeline, Rule, Trigger};
use model::config::JobSettings;

/// Jobs Spack adds that are not package builds; they run once, after every build stage.
const SERVICE_JOBS: &[&str] = &["rebuild-index", "wait-for-build-jobs"];
/// The job Spack writes when nothing needs building.
pub const NOOP_JOB: &str = "no-specs-to-rebuild";
/// The last child pipeline: index update and the jobs it waits on.
pub const SERVICE_PIPELINE: &str = "rebuild-index";

#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Architecture the pipelines build for (names the output).
    pub arch: String,
    /// Generated pipeline files, or folders holding `<env>/*.yml` as `spack ci generate` wrote.
    pub inputs: Vec<PathBuf>,
    pub output_dir: PathBuf,
    /// `output_dir` as the CI job sees it, relative to the project (artifact paths).
    pub artifacts_path: String,
    /// The job of the parent pipeline that runs `process`, whose artifacts hold the pipelines.
    pub artifacts_job: String,
    /// CI variables of every child pipeline: the architecture's, and the build cache's key
    /// pair as `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` references, never values
    /// (`BucketConfig::aws_variables`).
    pub variables: IndexMap<String, String>,
    /// The settings of Spack's jobs (`jobs.spack_builds`: timeout, retry, variables, tags):
    /// they replace what Spack wrote (its retry runs a failed build three times).
    pub builds: JobSettings,
    /// The settings of the jobs that only move files (fetching the pipelines, no-ops).
    pub tools: JobSettings,
    /// The architecture's runner tag: jobs Spack leaves untagged get it.
    pub runner_tag: String,
    pub pull_policy: Option<Vec<String>>,
    /// A stage with more jobs is split into several child pipelines run side by side.
    pub max_jobs_per_pipeline: usize,
    /// A child pipeline file stays under this many bytes: GitLab refuses a larger
    /// configuration (`max_yaml_size_bytes`), so a stage is split further by size.
    pub max_file_bytes: usize,
}

/// Where a job sits in the order: a numbered build stage, or the services after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Build(u32),
    Services,
}

impl Stage {
    fn of(stage: Option<&str>) -> Option<Stage> {
        match stage? {
            "stage-rebuild-index" | "stage-wait" => Some(Stage::Services),
            s => s.strip_prefix("stage-")?.parse().ok().map(Stage::Build),
        }
    }

    pub fn name(self) -> String {
        match self {
            Stage::Build(n) => format!("stage-{n}"),
            Stage::Services => SERVICE_PIPELINE.to_string(),
        }
    }
}

/// The merged jobs of every input.
#[derive(Debug, Default)]
pub struct Merged {
    pub jobs: IndexMap<String, (Stage, Job)>,
    /// Inputs that had only the no-op job.
    pub noop_inputs: usize,
}

/// Read the inputs: files as given, folders as `<folder>/<env>/*.yml` (and `.yaml`), sorted.
pub fn input_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_file() {
            files.push(input.clone());
            continue;
        }
        let read =
            |d: &Path| std::fs::read_dir(d).with_context(|| format!("reading {}", d.display()));
        let mut found = Vec::new();
        for env in read(input)? {
            let env = env?.path();
            if !env.is_dir() {
                continue;
            }
            for f in read(&env)? {
                let f = f?.path();
                if f.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                    found.push(f);
                }
            }
        }
        if found.is_empty() {
            bail!(
                "no generated pipeline under {} (expected <environment>/*.yml)",
                input.display()
            );
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// Merge pipelines: a job name in several inputs is kept once, the copy in the lowest stage
/// (on a tie, the first input's); each job carries its own file's variables, since they name
/// its environment's folders.
pub fn merge(pipelines: Vec<(PathBuf, Pipeline)>) -> anyhow::Result<Merged> {
    let mut merged = Merged::default();
    for (path, p) in pipelines {
        if p.jobs.contains_key(NOOP_JOB) && p.jobs.len() == 1 {
            merged.noop_inputs += 1;
            continue;
        }
        for (name, mut job) in p.jobs {
            if name.starts_with('.') {
                continue;
            }
            let stage = Stage::of(job.stage.as_deref())
                .or_else(|| {
                    SERVICE_JOBS
                        .contains(&name.as_str())
                        .then_some(Stage::Services)
                })
                .with_context(|| {
                    format!("{}: job `{name}` has no `stage-N` stage", path.display())
                })?;
            for (k, v) in &p.variables {
                job.variables.entry(k.clone()).or_insert_with(|| v.clone());
            }
            match merged.jobs.get(&name) {
                Some((kept, _)) if *kept <= stage => {}
                _ => {
                    merged.jobs.insert(name, (stage, job));
                }
            }
        }
    }
    Ok(merged)
}

/// The child pipelines (file name, pipeline), in run order, and the trigger pipeline that runs
/// them.
pub fn split(merged: Merged, opts: &ProcessOptions) -> (Vec<(String, Pipeline)>, Pipeline) {
    if merged.jobs.is_empty() {
        let noop = Pipeline::noop(
            "All specs already up to date, nothing to rebuild.",
            vec![opts.runner_tag.clone()],
        );
        return (Vec::new(), noop.into_child());
    }
    let mut by_stage: std::collections::BTreeMap<Stage, Vec<(String, Job)>> = Default::default();
    for (name, (stage, job)) in merged.jobs {
        by_stage.entry(stage).or_default().push((name, job));
    }
    // GitLab includes child pipelines only from artifacts of a job of the same pipeline: the
    // trigger pipeline's first job takes the generated files over from the parent's job.
    let fetch = format!("fetch {} pipelines", opts.arch);
    let mut trigger = Pipeline {
        stages: vec!["fetch".into()],
        ..Pipeline::default()
    };
    trigger.jobs.insert(
        fetch.clone(),
        model::ci::fetch_job(
            &opts.artifacts_job,
            &opts.artifacts_path,
            vec![opts.runner_tag.clone()],
        )
        .with_settings(&opts.tools),
    );
    let mut children = Vec::new();
    let mut previous: Vec<String> = Vec::new();
    for (stage, jobs) in by_stage {
        let stage_name = stage.name();
        trigger.stages.push(stage_name.clone());
        let jobs: Vec<(String, Job)> = jobs
            .into_iter()
            .map(|(name, job)| (name, adapt(job, &stage_name, stage, opts)))
            .collect();
        let parts = parts(&jobs, opts);
        let mut this_stage = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let suffix = if parts.len() > 1 {
                format!("-part-{}", i + 1)
            } else {
                String::new()
            };
            let file = format!("{}/{stage_name}{suffix}.yml", opts.arch);
            let mut child = Pipeline {
                stages: vec![stage_name.clone()],
                variables: opts.variables.clone(),
                ..Pipeline::default()
            };
            child.jobs.extend(part.iter().cloned());
            let include = format!("{}/{file}", opts.artifacts_path.trim_end_matches('/'));
            children.push((file, child.into_child()));
            let trigger_name = format!("build {} {stage_name}{suffix}", opts.arch);
            trigger.jobs.insert(
                trigger_name.clone(),
                trigger_job(stage, include, &fetch, &previous),
            );
            this_stage.push(trigger_name);
        }
        previous = this_stage;
    }
    (children, trigger.into_child())
}

/// The job of the trigger pipeline that runs the child pipeline `include` of `stage`, after
/// the fetch job and the child pipelines of the stage before (`previous`).
fn trigger_job(stage: Stage, include: String, fetch: &str, previous: &[String]) -> Job {
    Job {
        stage: Some(stage.name()),
        trigger: Some(Trigger::from_artifact(include, fetch.to_string())),
        needs: Some(
            std::iter::once(fetch)
                .chain(previous.iter().map(String::as_str))
                .map(Need::job)
                .collect(),
        ),
        // Spack gives its index update `when: always`: what the stages before uploaded is
        // indexed even when one of them failed partly.
        rules: match stage {
            Stage::Services => vec![Rule {
                when: Some("always".into()),
                ..Rule::default()
            }],
            Stage::Build(_) => Vec::new(),
        },
        ..Job::default()
    }
}

/// The stage's jobs cut into child pipelines of at most `max_jobs_per_pipeline` jobs and
/// `max_file_bytes` bytes each (a job's size as written: the output has no YAML anchors).
fn parts<'a>(jobs: &'a [(String, Job)], opts: &ProcessOptions) -> Vec<&'a [(String, Job)]> {
    // Room for the pipeline's own keys (stages, variables, workflow).
    let budget = opts
        .max_file_bytes
        .saturating_sub(model::yaml::to_string(&opts.variables).len() + 1024);
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (name, job)) in jobs.iter().enumerate() {
        let size = model::ci::job_size(name, job);
        let full = i - start >= opts.max_jobs_per_pipeline.max(1) || bytes + size > budget;
        if full && i > start {
            out.push(&jobs[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < jobs.len() {
        out.push(&jobs[start..]);
    }
    out
}

/// A job as it runs in its stage's child pipeline: needs on jobs of other stages go (the stage
/// order covers them), needs on the generating pipeline stay; the configured settings of
/// Spack's jobs, a runner tag, an artifact expiry and the pull policy are set.
fn adapt(mut job: Job, stage_name: &str, stage: Stage, opts: &ProcessOptions) -> Job {
    job.stage = Some(stage_name.to_string());
    if let Some(needs) = job.needs.take() {
        let kept: Vec<Need> = needs
            .into_iter()
            .filter(|n| match n {
                Need::Detailed {
                    pipeline: Some(_), ..
                } => true,
                // Service jobs need each other inside their own pipeline.
                other => stage == Stage::Services && SERVICE_JOBS.contains(&other.job_name()),
            })
            .collect();
        job.needs = Some(kept);
    }
    if job.tags.is_empty() {
        // Spack's `wait-for-build-jobs` has none: on runners that are all tagged it would stay
        // pending.
        job.tags.push(opts.runner_tag.clone());
    }
    if let Some(a) = job.artifacts.as_mut()
        && a.expire_in.is_none()
    {
        a.expire_in = Some(ARTIFACTS_EXPIRE_IN.into());
    }
    // A job that only waits keeps Spack's settings; every job that runs Spack gets ours.
    let job = if job.image.is_some() {
        job.with_settings(&opts.builds)
    } else {
        job
    };
    job.with_pull_policy(opts.pull_policy.as_deref())
}

/// Read, merge, split and write. Returns the files written (children, then the trigger).
pub fn run(opts: &ProcessOptions) -> anyhow::Result<Vec<PathBuf>> {
    let files = input_files(&opts.inputs)?;
    let pipelines = files
        .iter()
        .map(|f| Ok((f.clone(), Pipeline::read(f)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (children, trigger) = split(merge(pipelines)?, opts);
    let mut written = Vec::new();
    for (file, p) in children
        .iter()
        .chain(std::iter::once(&(format!("{}.yml", opts.arch), trigger)))
    {
        p.check()
            .with_context(|| format!("generated pipeline {file}"))?;
        let path = opts.output_dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(&opts.output_dir))
            .with_context(|| format!("creating {}", opts.output_dir.display()))?;
        std::fs::write(&path, p.to_yaml())
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
