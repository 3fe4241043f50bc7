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
    let (children, trigger) = split_rendered(merged, opts);
    (
        children.into_iter().map(|c| (c.file, c.pipeline)).collect(),
        trigger,
    )
}

/// A child pipeline with its text: its jobs were serialized once, to size and to write it.
struct Child {
    file: String,
    pipeline: Pipeline,
    text: String,
}

fn split_rendered(merged: Merged, opts: &ProcessOptions) -> (Vec<Child>, Pipeline) {
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
        let jobs: Vec<(String, Job, String)> = render(
            jobs.into_iter()
                .map(|(name, job)| (name, adapt(job, &stage_name, stage, opts)))
                .collect(),
        );
        // Every child of the stage has the same keys of its own.
        let header = Pipeline {
            stages: vec![stage_name.clone()],
            variables: opts.variables.clone(),
            ..Pipeline::default()
        }
        .into_child();
        let parts = parts(jobs, header.to_yaml().len(), opts);
        let count = parts.len();
        let mut this_stage = Vec::new();
        for (i, part) in parts.into_iter().enumerate() {
            let suffix = if count > 1 {
                format!("-part-{}", i + 1)
            } else {
                String::new()
            };
            let file = format!("{}/{stage_name}{suffix}.yml", opts.arch);
            let text = header.to_yaml_with(part.iter().map(|(_, _, entry)| entry.as_str()));
            let mut pipeline = header.clone();
            pipeline
                .jobs
                .extend(part.into_iter().map(|(name, job, _)| (name, job)));
            let include = format!("{}/{file}", opts.artifacts_path.trim_end_matches('/'));
            children.push(Child {
                file,
                pipeline,
                text,
            });
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

/// Each job with its entry in a pipeline file ([`model::ci::job_entry`]), serialized on every
/// core: serializing is most of the time `process` spends after reading.
fn render(jobs: Vec<(String, Job)>) -> Vec<(String, Job, String)> {
    let threads = workers(jobs.len());
    let chunk = jobs.len().div_ceil(threads).max(1);
    let entries: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|(n, j)| model::ci::job_entry(n, j))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a serializing thread panicked"))
            .collect()
    });
    jobs.into_iter()
        .zip(entries)
        .map(|((n, j), e)| (n, j, e))
        .collect()
}

/// Threads for `items` pieces of work: one per core, never more than the work.
fn workers(items: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items)
        .max(1)
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
/// `max_file_bytes` bytes each: a file is its own keys (`header` bytes) and its jobs' entries.
fn parts(
    jobs: Vec<(String, Job, String)>,
    header: usize,
    opts: &ProcessOptions,
) -> Vec<Vec<(String, Job, String)>> {
    let budget = opts.max_file_bytes.saturating_sub(header);
    let mut out = Vec::new();
    let mut part: Vec<(String, Job, String)> = Vec::new();
    let mut bytes = 0;
    for job in jobs {
        let size = job.2.len();
        let full = part.len() >= opts.max_jobs_per_pipeline.max(1) || bytes + size > budget;
        if full && !part.is_empty() {
            out.push(std::mem::take(&mut part));
            bytes = 0;
        }
        bytes += size;
        part.push(job);
    }
    if !part.is_empty() {
        out.push(part);
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
    // What `into_child` would add once the file is assembled counts in its size.
    let mut job = job.with_pull_policy(opts.pull_policy.as_deref());
    job.make_child();
    job
}

/// Read, merge, split and write. Returns the files written (children, then the trigger).
pub fn run(opts: &ProcessOptions) -> anyhow::Result<Vec<PathBuf>> {
    let files = input_files(&opts.inputs)?;
    let (children, trigger) = split_rendered(merge(read_all(&files)?)?, opts);
    let trigger_text = trigger.to_yaml();
    let trigger_file = format!("{}.yml", opts.arch);
    let mut written = Vec::new();
    for (file, p, text) in children
        .iter()
        .map(|c| (&c.file, &c.pipeline, &c.text))
        .chain(std::iter::once((&trigger_file, &trigger, &trigger_text)))
    {
        p.check()
            .with_context(|| format!("generated pipeline {file}"))?;
        let path = opts.output_dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(&opts.output_dir))
            .with_context(|| format!("creating {}", opts.output_dir.display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Parse the generated pipelines on every core (parsing Spack's YAML is most of the work), in
/// the order given; the first file that fails is the error.
fn read_all(files: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, Pipeline)>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<Pipeline, model::yaml::YamlError>)> =
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers(files.len()))
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(f) = files.get(i) else { break done };
                            done.push((i, Pipeline::read(f)));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a reading thread panicked"))
                .collect()
        });
    results.sort_by_key(|(i, _)| *i);
    results
        .into_iter()
        .map(|(i, p)| Ok((files[i].clone(), p?)))
        .collect()
}
