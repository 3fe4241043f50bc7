//! A test-only GitLab runner that behaves as GitLab's documentation says GitLab does: it
//! reads a pipeline file strictly (a key it does not know is an error) within GitLab's size,
//! depth and `needs` limits; creates the pipeline for a source and ref (`workflow:` and
//! `rules:`, the default `only: [branches, tags]` that leaves jobs without rules out of merge
//! request pipelines, child pipelines with `CI_PIPELINE_SOURCE=parent_pipeline` on their
//! parent's ref); gives each job to a runner that has all its tags (a job no runner takes is
//! an error: GitLab would leave it pending); runs the jobs one at a time on the real Docker
//! daemon, in the job's `image:` or, on a shell runner, in the image standing for the runner's
//! machine; retries as `retry:` says; after a failure skips `on_success` jobs and still runs
//! `when: always` and `on_failure` ones; passes artifacts and dotenv reports on; and fails
//! the pipeline when a job without `allow_failure` failed. What GitLab does and this runner
//! does not (services, `cache:`, manual jobs, `only`/`except`, `=~`) is refused by name,
//! never skipped.

pub mod config;
mod exec;
pub mod outcome;
pub mod plan;
pub mod rules;
pub mod runners;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use model::ci::{Image, Job, Need, Pipeline, Trigger};
use model::yaml::Value;

pub use config::Limits;
use outcome::{FailureReason, Status};
use plan::{Created, Planned, Refused};
pub use rules::{PipelineRef, evaluate, expand};
pub use runners::{Executor, RunnerSpec};

/// What a pipeline runs with.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The project checkout each job gets a fresh copy of.
    pub project: PathBuf,
    /// Where jobs' copies, artifacts and logs go.
    pub work: PathBuf,
    /// `push`, `web`, `merge_request_event`, `schedule`.
    pub source: String,
    /// The branch, or the merge request, the pipeline runs for.
    pub git_ref: PipelineRef,
    pub default_branch: String,
    /// The project's URL (`CI_PROJECT_URL`): a remote the jobs can list branches of.
    pub project_url: String,
    /// Project CI/CD variables (secrets among them): given to jobs in an env file, never as
    /// arguments.
    pub project_variables: BTreeMap<String, String>,
    /// Project CI/CD variables marked protected: given only to pipelines of protected refs
    /// (see [`RunnerOptions::variables`]).
    pub protected_variables: BTreeMap<String, String>,
    /// `(host, container)` paths mounted in every job (a directory cache, a shared folder,
    /// the Docker socket of a runner that exposes it).
    pub volumes: Vec<(PathBuf, PathBuf)>,
    /// The image of jobs that name none (a runner's default image), and the machine of a
    /// shell runner that names none.
    pub default_image: String,
    /// The Docker daemon jobs run on (`DOCKER_HOST` of the `docker` client).
    pub docker_host: String,
    /// The project's runners, in the order they ask for jobs.
    pub runners: Vec<RunnerSpec>,
    pub limits: Limits,
}

impl RunnerOptions {
    /// Whether the pipeline runs on a protected ref: GitLab protects a project's default
    /// branch when the project is made
    /// (https://docs.gitlab.com/user/project/repository/branches/protected/), and a merge
    /// request pipeline runs on the merge request's ref, which is never protected, whatever its
    /// source branch (https://gitlab.com/groups/gitlab-org/-/epics/17186: "protected variables
    /// ... not available in merge request pipelines").
    pub fn protected_ref(&self) -> bool {
        matches!(&self.git_ref, PipelineRef::Branch(b) if *b == self.default_branch)
    }

    /// The project variables a job of this pipeline gets: a protected variable is exported
    /// "to pipelines running on protected branches and protected tags only"
    /// (https://docs.gitlab.com/ci/variables/#protect-a-cicd-variable).
    pub fn variables(&self) -> BTreeMap<String, String> {
        let mut vars = self.project_variables.clone();
        if self.protected_ref() {
            vars.extend(self.protected_variables.clone());
        }
        vars
    }
}

/// One run of a job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attempt {
    pub job_id: u32,
    pub seconds: f64,
    /// `None` when it succeeded.
    pub failure_reason: Option<FailureReason>,
    pub message: Option<String>,
}

/// One job that ran (once, or more with `retry`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRun {
    pub pipeline: u32,
    /// The pipeline file, for reports.
    pub file: String,
    pub name: String,
    /// All its attempts together.
    pub seconds: f64,
    /// Its last attempt succeeded.
    pub success: bool,
    /// It failed, and `allow_failure: true` keeps the pipeline from failing.
    pub allow_failure: bool,
    /// The commands its script runs (`spack ci rebuild`, `spackah build`, …), first two words
    /// of each line; empty for a trigger.
    pub commands: Vec<String>,
    /// The runner that took it (`TAGS:EXECUTOR`); none for a trigger.
    pub runner: Option<String>,
    pub attempts: Vec<Attempt>,
}

/// A job added to a pipeline that did not run: its `when` and what it waited for said so.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub pipeline: u32,
    pub file: String,
    pub name: String,
    pub when: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// GitLab would not create the pipeline.
    #[error("{file}: {message}")]
    Pipeline { file: String, message: String },
    /// A job that no runner takes: it would stay pending forever.
    #[error("{file}: {message}")]
    Pending { file: String, message: String },
    /// The pipeline ran and failed: the jobs that failed it.
    #[error("pipeline of {file} failed: {jobs}")]
    Failed { file: String, jobs: String },
    /// This runner could not run a job.
    #[error("job `{job}` of {file}: {message}")]
    Job {
        file: String,
        job: String,
        message: String,
    },
    #[error("{0}")]
    Io(String),
}

fn io(what: &str, e: impl std::fmt::Display) -> RunnerError {
    RunnerError::Io(format!("{what}: {e}"))
}

/// `30m`, `1h`, `8h`, `2h 30m`, `45s`, `1h30m`.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .map_err(|_| format!("timeout `{text}` is not a duration"))?;
        number.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("timeout `{text}` is not a duration")),
        };
    }
    if !number.is_empty() || total == 0 {
        return Err(format!("timeout `{text}` is not a duration"));
    }
    Ok(Duration::from_secs(total))
}

/// The artifacts and dotenv of a job that ran.
#[derive(Debug, Clone, Default)]
struct Done {
    success: bool,
    artifacts: Option<PathBuf>,
    dotenv: BTreeMap<String, String>,
}

/// How one attempt of a job ended.
struct End {
    done: Done,
    failure: Option<(FailureReason, String)>,
}

impl End {
    fn failed(reason: FailureReason, message: String) -> End {
        End {
            done: Done::default(),
            failure: Some((reason, message)),
        }
    }
}

/// How a pipeline ended.
enum Ran {
    NotCreated(String),
    Ended { status: Status, failed: Vec<String> },
}

/// What a job of a pipeline runs with.
struct JobCtx<'a> {
    file: &'a str,
    pipeline: u32,
    p: &'a Pipeline,
    name: &'a str,
    job: &'a Job,
    vars: &'a BTreeMap<String, String>,
    inherited: &'a BTreeMap<String, String>,
}

/// A runner for one project: pipelines it ran, by id.
pub struct Runner {
    opts: RunnerOptions,
    next_pipeline: u32,
    next_job: u32,
    pipelines: BTreeMap<u32, BTreeMap<String, Done>>,
    pub runs: Vec<JobRun>,
    pub skipped: Vec<Skipped>,
}

impl Runner {
    pub fn new(opts: RunnerOptions) -> Runner {
        Runner {
            opts,
            next_pipeline: 1000,
            next_job: 1,
            pipelines: BTreeMap::new(),
            runs: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Run the pipeline in `file` for the configured source; returns its id. When GitLab
    /// would create no pipeline (workflow rules, or no job added) it runs nothing
    /// (`Ok(None)`); a pipeline that fails is an error naming the jobs that failed it.
    pub fn run_file(&mut self, file: &Path) -> Result<Option<u32>, RunnerError> {
        let text = std::fs::read_to_string(file).map_err(|e| io(&file.display().to_string(), e))?;
        let source = self.opts.source.clone();
        let label = file.display().to_string();
        let id = self.next_pipeline;
        match self.run_pipeline(&label, &text, &source, BTreeMap::new())? {
            Ran::NotCreated(_) => Ok(None),
            Ran::Ended {
                status: Status::Failed { .. },
                failed,
            } => Err(RunnerError::Failed {
                file: label,
                jobs: failed.join("; "),
            }),
            Ran::Ended { .. } => Ok(Some(id)),
        }
    }

    /// The pipeline GitLab creates, `Err` with GitLab's reason when it creates none.
    fn create(
        &self,
        file: &str,
        text: &str,
        id: u32,
        source: &str,
        inherited: &BTreeMap<String, String>,
    ) -> Result<Result<plan::Plan, String>, RunnerError> {
        let mut outer = inherited.clone();
        outer.extend(self.opts.variables());
        let ctx = plan::Context {
            source,
            git_ref: &self.opts.git_ref,
            default_branch: &self.opts.default_branch,
            project_url: &self.opts.project_url,
            limits: &self.opts.limits,
            runners: &self.opts.runners,
            outer: &outer,
        };
        let file = file.to_string();
        match plan::create(text, id, &ctx) {
            Ok(Created::Plan(p)) => Ok(Ok(*p)),
            Ok(Created::Nothing(why)) => Ok(Err(why)),
            Err(Refused::Config(message)) => Err(RunnerError::Pipeline { file, message }),
            Err(Refused::Pending(message)) => Err(RunnerError::Pending { file, message }),
        }
    }

    fn run_pipeline(
        &mut self,
        file: &str,
        text: &str,
        source: &str,
        inherited: BTreeMap<String, String>,
    ) -> Result<Ran, RunnerError> {
        let id = self.next_pipeline;
        self.next_pipeline += 1;
        let plan = match self.create(file, text, id, source, &inherited)? {
            Ok(plan) => plan,
            Err(why) => return Ok(Ran::NotCreated(why)),
        };
        self.pipelines.insert(id, BTreeMap::new());
        let mut statuses: BTreeMap<String, Status> = BTreeMap::new();
        let mut failed = Vec::new();
        for planned in &plan.jobs {
            let waits: Vec<Status> = planned.waits_for.iter().map(|w| statuses[w]).collect();
            if !outcome::runs(&planned.when, &waits, planned.by_needs) {
                self.skipped.push(Skipped {
                    pipeline: id,
                    file: file.to_string(),
                    name: planned.name.clone(),
                    when: planned.when.clone(),
                });
                statuses.insert(planned.name.clone(), Status::Skipped);
                continue;
            }
            let job = &plan.pipeline.jobs[&planned.name];
            let ctx = JobCtx {
                file,
                pipeline: id,
                p: &plan.pipeline,
                name: &planned.name,
                job,
                vars: &plan.vars,
                inherited: &inherited,
            };
            let run = self.run_with_retries(&ctx, planned)?;
            let status = match (run.success, run.allow_failure) {
                (true, _) => Status::Success,
                (false, allow_failure) => Status::Failed { allow_failure },
            };
            if status
                == (Status::Failed {
                    allow_failure: false,
                })
            {
                let last = run.attempts.last().and_then(|a| a.message.clone());
                failed.push(format!("{} ({})", run.name, last.unwrap_or_default()));
            }
            statuses.insert(planned.name.clone(), status);
            self.runs.push(run);
        }
        let all: Vec<Status> = statuses.values().copied().collect();
        Ok(Ran::Ended {
            status: outcome::composite(&all),
            failed,
        })
    }

    /// Run a job, again as long as `retry:` says a failure is retried (a trigger job is
    /// never retried).
    fn run_with_retries(&mut self, c: &JobCtx, planned: &Planned) -> Result<JobRun, RunnerError> {
        let mut attempts = Vec::new();
        let started = Instant::now();
        loop {
            let job_id = self.next_job;
            self.next_job += 1;
            let attempt_started = Instant::now();
            let end = self.run_job(c, job_id, planned.runner.as_ref())?;
            let (reason, message) = match &end.failure {
                Some((r, m)) => (Some(*r), Some(m.clone())),
                None => (None, None),
            };
            attempts.push(Attempt {
                job_id,
                seconds: attempt_started.elapsed().as_secs_f64(),
                failure_reason: reason,
                message,
            });
            let retried = match reason {
                Some(r) if c.job.trigger.is_none() => {
                    outcome::retries(c.job.retry.as_ref(), attempts.len() as u32, r)
                }
                _ => false,
            };
            if retried {
                continue;
            }
            let success = end.failure.is_none();
            let done = Done {
                success,
                ..end.done
            };
            self.pipelines
                .get_mut(&c.pipeline)
                .expect("inserted")
                .insert(c.name.to_string(), done);
            return Ok(JobRun {
                pipeline: c.pipeline,
                file: c.file.to_string(),
                name: c.name.to_string(),
                seconds: started.elapsed().as_secs_f64(),
                success,
                allow_failure: !success && c.job.allow_failure.unwrap_or(false),
                commands: c
                    .job
                    .script
                    .iter()
                    .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
                    .collect(),
                runner: planned.runner.as_ref().map(ToString::to_string),
                attempts,
            });
        }
    }

    /// The jobs whose artifacts and dotenv `job` receives: its needs (with artifacts), or
    /// every earlier job (its `dependencies:` when given).
    fn inputs(&self, c: &JobCtx, vars: &BTreeMap<String, String>) -> Result<Vec<Done>, String> {
        let this = &self.pipelines[&c.pipeline];
        let mut out = Vec::new();
        let Some(needs) = &c.job.needs else {
            for (name, done) in this {
                let listed = c.job.dependencies.as_ref();
                if listed.is_none_or(|d| d.iter().any(|x| x == name)) && c.p.jobs.contains_key(name)
                {
                    out.push(done.clone());
                }
            }
            return Ok(out);
        };
        for n in needs {
            let (target, from_pipeline, artifacts) = match n {
                Need::Job(j) => (j.as_str(), None, true),
                Need::Detailed {
                    job,
                    pipeline,
                    artifacts,
                    ..
                } => (job.as_str(), pipeline.as_ref(), artifacts.unwrap_or(true)),
            };
            if !artifacts {
                continue;
            }
            let found = match from_pipeline {
                // "The job listed in `needs:pipeline:job` must complete with a status of
                // `success` or the artifacts can't be fetched"
                // (https://docs.gitlab.com/ci/yaml/#needspipelinejob).
                Some(pid) => {
                    let pid = expand(pid, vars);
                    let pid: u32 = pid
                        .parse()
                        .map_err(|_| format!("need on pipeline `{pid}`"))?;
                    self.pipelines
                        .get(&pid)
                        .and_then(|j| j.get(target))
                        .filter(|d| d.success)
                        .ok_or_else(|| format!("no successful job `{target}` in pipeline {pid}"))?
                }
                None => match this.get(target) {
                    Some(d) => d,
                    None => continue,
                },
            };
            out.push(found.clone());
        }
        Ok(out)
    }

    /// The variables of a job. Precedence, low to high: predefined and YAML variables,
    /// dotenv of the jobs it depends on, project variables, what the trigger forwarded.
    fn job_vars(
        &self,
        c: &JobCtx,
        job_id: u32,
    ) -> Result<(BTreeMap<String, String>, Vec<Done>), String> {
        let mut vars = c.vars.clone();
        vars.insert("CI_JOB_NAME".into(), c.name.to_string());
        vars.insert("CI_JOB_ID".into(), job_id.to_string());
        vars.insert(
            "CI_JOB_STAGE".into(),
            c.job.stage.clone().unwrap_or_else(|| "test".into()),
        );
        for (k, v) in &c.job.variables {
            let value = expand(v, &vars);
            vars.insert(k.clone(), value);
        }
        let inputs = self.inputs(c, &vars)?;
        for i in &inputs {
            vars.extend(i.dotenv.clone());
        }
        vars.extend(self.opts.variables());
        vars.extend(c.inherited.clone());
        Ok((vars, inputs))
    }

    /// One attempt of a job: a fresh copy of the project with its inputs' artifacts, then its
    /// trigger or its script.
    fn run_job(
        &mut self,
        c: &JobCtx,
        job_id: u32,
        runner: Option<&RunnerSpec>,
    ) -> Result<End, RunnerError> {
        let fail = |message: String| RunnerError::Job {
            file: c.file.to_string(),
            job: c.name.to_string(),
            message,
        };
        let (vars, inputs) = self.job_vars(c, job_id).map_err(fail)?;
        let work = self.opts.work.join(format!("job-{job_id}"));
        let dir = work.join("project");
        std::fs::create_dir_all(&dir).map_err(|e| io("job folder", e))?;
        exec::copy_tree(&self.opts.project, &dir)?;
        for i in &inputs {
            if let Some(a) = &i.artifacts {
                exec::copy_tree(a, &dir)?;
            }
        }
        match (&c.job.trigger, runner) {
            (Some(t), _) => self.run_trigger(c, t, &vars),
            (None, Some(r)) => self.run_script(c, r, &vars, &work, &dir),
            (None, None) => unreachable!("every job but a trigger has a runner"),
        }
    }

    /// The image a job runs in, and `docker run --pull`: the job's `image:` with its pull
    /// policy on a Docker runner; the runner's machine on a shell runner, which ignores
    /// `image:` and pull policies.
    fn image(
        &self,
        job: &Job,
        runner: &RunnerSpec,
        vars: &BTreeMap<String, String>,
    ) -> Result<(String, String), String> {
        if let Executor::Shell { host_image } = &runner.executor {
            let machine = host_image
                .clone()
                .unwrap_or_else(|| self.opts.default_image.clone());
            return Ok((machine, "missing".into()));
        }
        let (image, policies) = match &job.image {
            Some(Image::Name(n)) => (expand(n, vars), Vec::new()),
            Some(Image::Detailed {
                name, pull_policy, ..
            }) => (expand(name, vars), pull_policies(pull_policy.as_ref())),
            None => (self.opts.default_image.clone(), Vec::new()),
        };
        let policy = runners::pull_policy(runner, &image, &policies)?;
        let pull = match policy.as_str() {
            "if-not-present" => "missing",
            other => other,
        };
        Ok((image, pull.to_string()))
    }

    fn run_script(
        &mut self,
        c: &JobCtx,
        runner: &RunnerSpec,
        vars: &BTreeMap<String, String>,
        work: &Path,
        dir: &Path,
    ) -> Result<End, RunnerError> {
        let fail = |message: String| RunnerError::Job {
            file: c.file.to_string(),
            job: c.name.to_string(),
            message,
        };
        let timeout = match &c.job.timeout {
            Some(t) => parse_timeout(t).map_err(fail)?,
            None => Duration::from_secs(3600),
        };
        let (image, pull) = match self.image(c.job, runner, vars) {
            Ok(i) => i,
            Err(e) => return Ok(End::failed(FailureReason::RunnerSystemFailure, e)),
        };
        let container = exec::Container {
            docker_host: &self.opts.docker_host,
            work,
            dir,
            image: &image,
            pull: &pull,
            platform: runner.platform.as_deref(),
            volumes: &self.opts.volumes,
            timeout,
        };
        let lines: Vec<String> = c
            .job
            .before_script
            .iter()
            .chain(&c.job.script)
            .cloned()
            .collect();
        let exit = exec::docker_run(&container, &lines, vars)?;
        let success = exit.success();
        let mut done = Done::default();
        // `artifacts:when`: `on_success` (default), `on_failure` or `always`
        // (https://docs.gitlab.com/ci/yaml/#artifactswhen).
        if let Some(a) = &c.job.artifacts
            && match a.when.as_deref().unwrap_or("on_success") {
                "always" => true,
                "on_failure" => !success,
                _ => success,
            }
        {
            let got = exec::collect(a, work, dir, vars)?;
            done.artifacts = Some(got.store);
            done.dotenv = got.dotenv.map_err(fail)?;
        }
        if success {
            return Ok(End {
                done,
                failure: None,
            });
        }
        let tail = exec::log_tail(work);
        let reason = outcome::classify(exit.code, exit.timed_out, &tail);
        let log = work.join("job.log");
        let message = format!("{}; log {}:\n{tail}", exit.describe(), log.display());
        Ok(End {
            done,
            failure: Some((reason, message)),
        })
    }

    /// A trigger job: the child pipeline in an artifact of this pipeline, created with
    /// `CI_PIPELINE_SOURCE=parent_pipeline` ("For pipelines triggered by a parent/child
    /// pipeline", https://docs.gitlab.com/ci/jobs/job_rules/#ci_pipeline_source-predefined-variable)
    /// on the parent's ref: "Child pipelines run under the same project, ref, and commit SHA as
    /// the parent pipeline" (https://docs.gitlab.com/ci/pipelines/downstream_pipelines/#parent-child-pipelines),
    /// so the child of a merge request pipeline is on the merge request too. It fails when the child
    /// cannot be created ("downstream pipeline can not be created",
    /// https://docs.gitlab.com/ci/pipelines/downstream_pipelines_troubleshooting/), and with
    /// `strategy: depend` (or `mirror`) when the child fails; otherwise it passes "as soon as
    /// the downstream pipeline is created" (https://docs.gitlab.com/ci/yaml/#triggerstrategy).
    fn run_trigger(
        &mut self,
        c: &JobCtx,
        trigger: &Trigger,
        vars: &BTreeMap<String, String>,
    ) -> Result<End, RunnerError> {
        let fail = |message: String| RunnerError::Job {
            file: c.file.to_string(),
            job: c.name.to_string(),
            message,
        };
        let [include] = trigger.include.as_slice() else {
            return Err(fail("a trigger includes exactly one artifact here".into()));
        };
        let (Some(artifact), Some(from)) = (&include.artifact, &include.job) else {
            return Err(fail(
                "only `include: artifact:` with `job:` is run here".into(),
            ));
        };
        let artifact = expand(artifact, vars);
        let label = format!("{} → {artifact}", c.file);
        let cannot = |why: String| {
            let message = format!("downstream pipeline can not be created, {why} ({label})");
            Ok(End::failed(
                FailureReason::DownstreamPipelineCreationFailed,
                message,
            ))
        };
        let Some(store) = self.pipelines[&c.pipeline]
            .get(from)
            .and_then(|d| d.artifacts.clone())
        else {
            return cannot(format!("job `{from}` left no artifacts"));
        };
        let child_file = store.join(&artifact);
        let size = std::fs::metadata(&child_file).map(|m| m.len()).unwrap_or(0);
        let limit = self.opts.limits.max_include_artifact_bytes;
        if size > limit as u64 {
            return cannot(format!(
                "{artifact} has {size} bytes, more than max_artifacts_content_include_size ({limit})"
            ));
        }
        let text = match std::fs::read_to_string(&child_file) {
            Ok(t) => t,
            Err(e) => return cannot(format!("{artifact} from `{from}`: {e}")),
        };
        let inherited = forwarded(c.p, c.job, trigger, vars);
        let ran = match self.run_pipeline(&label, &text, "parent_pipeline", inherited) {
            Err(RunnerError::Pipeline { message, .. }) => return cannot(message),
            other => other?,
        };
        let depend = matches!(trigger.strategy.as_deref(), Some("depend" | "mirror"));
        match ran {
            Ran::NotCreated(why) => cannot(why),
            Ran::Ended {
                status: Status::Failed { .. },
                failed,
            } if depend => Ok(End::failed(
                FailureReason::UnknownFailure,
                format!("downstream pipeline {label} failed: {}", failed.join("; ")),
            )),
            Ran::Ended { .. } => Ok(End {
                done: Done::default(),
                failure: None,
            }),
        }
    }
}

/// What a child pipeline inherits (https://docs.gitlab.com/ci/yaml/#triggerforward): with
/// `yaml_variables` (the default), the trigger job's YAML variables, its own
/// (`PARENT_PIPELINE_ID`) and the top-level ones it inherits; with `pipeline_variables`, the
/// variables the parent pipeline was run with (a manual run's, a schedule's), of which this
/// runner's pipelines have none beyond the project's, which every pipeline has anyway.
/// Predefined variables are never forwarded: the child sets its own
/// (`CI_PIPELINE_SOURCE=parent_pipeline`).
fn forwarded(
    p: &Pipeline,
    job: &Job,
    trigger: &Trigger,
    vars: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let yaml = trigger
        .forward
        .as_ref()
        .and_then(|f| f.yaml_variables)
        .unwrap_or(true);
    if !yaml {
        return BTreeMap::new();
    }
    job.variables
        .keys()
        .chain(p.variables.keys())
        .filter_map(|k| vars.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// `image: pull_policy`: one policy or a list of them.
fn pull_policies(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_inherits_yaml_variables_never_the_parents_predefined_ones() {
        let p = Pipeline::parse(
            Path::new("p.yml"),
            "variables:\n  CONFIG: c.yaml\nt:\n  variables:\n    PARENT_PIPELINE_ID: $CI_PIPELINE_ID\n  trigger:\n    include:\n    - artifact: x.yml\n      job: g\n    forward:\n      pipeline_variables: true\n",
        )
        .unwrap();
        let job = &p.jobs["t"];
        let trigger = job.trigger.as_ref().unwrap();
        let vars: BTreeMap<String, String> = [
            ("CONFIG", "c.yaml"),
            ("PARENT_PIPELINE_ID", "1000"),
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_BRANCH", "main"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let got = forwarded(&p, job, trigger, &vars);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["CONFIG", "PARENT_PIPELINE_ID"],
            "a child's CI_PIPELINE_SOURCE is parent_pipeline, not its parent's"
        );
        let mut off = trigger.clone();
        off.forward.as_mut().unwrap().yaml_variables = Some(false);
        assert!(forwarded(&p, job, &off, &vars).is_empty());
    }

    #[test]
    fn protected_variables_reach_only_the_default_branch_not_merge_requests() {
        let opts = |git_ref| RunnerOptions {
            project: "p".into(),
            work: "w".into(),
            source: "push".into(),
            git_ref,
            default_branch: "main".into(),
            project_url: "u".into(),
            project_variables: [("OPEN".to_string(), "1".to_string())].into(),
            protected_variables: [("KEY".to_string(), "secret".to_string())].into(),
            volumes: Vec::new(),
            default_image: "i".into(),
            docker_host: "h".into(),
            runners: Vec::new(),
            limits: Limits::default(),
        };
        let main = opts(PipelineRef::Branch("main".into())).variables();
        assert_eq!(main.keys().collect::<Vec<_>>(), ["KEY", "OPEN"]);
        let feature = opts(PipelineRef::Branch("feature".into())).variables();
        assert_eq!(feature.keys().collect::<Vec<_>>(), ["OPEN"]);
        // A merge request from the default branch itself runs on the merge request's ref.
        let mr = opts(PipelineRef::MergeRequest {
            iid: 1,
            source_branch: "main".into(),
            target_branch: "release".into(),
        })
        .variables();
        assert_eq!(mr.keys().collect::<Vec<_>>(), ["OPEN"]);
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("2h 30m").unwrap(), Duration::from_secs(9000));
        assert_eq!(parse_timeout("30m").unwrap(), Duration::from_secs(1800));
        assert!(parse_timeout("soon").is_err());
    }
}
