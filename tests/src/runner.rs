//! A test-only GitLab runner: reads a pipeline file as GitLab would (strictly: a key it does not
//! know is an error), applies `workflow:` and `rules:` for the pipeline source, orders jobs by
//! `needs:` and stages, runs each job's script in its `image:` on the real Docker daemon with
//! the job's variables, passes artifacts and dotenv reports on, and runs `trigger: include:
//! artifact` child pipelines with `PARENT_PIPELINE_ID`. One job at a time; the first failure
//! stops the pipeline. What GitLab does and this runner does not (services, `cache:`, manual
//! jobs, `=~`) is refused by name, never skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ci::{Image, Job, Need, Pipeline, Rule};
use common::yaml::Value;

/// What a pipeline runs with.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The project checkout each job gets a fresh copy of.
    pub project: PathBuf,
    /// Where jobs' copies, artifacts and logs go.
    pub work: PathBuf,
    /// `push`, `web`, `merge_request_event`, `schedule`.
    pub source: String,
    pub branch: String,
    pub default_branch: String,
    /// The project's URL (`CI_PROJECT_URL`): a remote the jobs can list branches of.
    pub project_url: String,
    /// Project CI/CD variables (secrets among them): given to jobs in an env file, never as
    /// arguments.
    pub project_variables: BTreeMap<String, String>,
    /// `(host, container)` paths mounted in every job (a directory cache, a shared folder,
    /// the Docker socket of a runner that exposes it).
    pub volumes: Vec<(PathBuf, PathBuf)>,
    /// The image of jobs that name none (a runner's default image).
    pub default_image: String,
    /// The Docker daemon jobs run on (`DOCKER_HOST` of the `docker` client).
    pub docker_host: String,
}

/// One job that ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRun {
    pub pipeline: u32,
    /// The pipeline file, for reports.
    pub file: String,
    pub name: String,
    pub seconds: f64,
    pub success: bool,
    /// The commands its script runs (`spack ci rebuild`, `spackah build`, …), first two words
    /// of each line; empty for a trigger.
    pub commands: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{file}: {message}")]
    Pipeline { file: String, message: String },
    #[error("job `{job}` of {file} failed: {message}")]
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

/// The artifacts and dotenv of a job that ran.
#[derive(Debug, Clone, Default)]
struct Done {
    artifacts: Option<PathBuf>,
    dotenv: BTreeMap<String, String>,
}

/// A runner for one project: pipelines it ran, by id.
pub struct Runner {
    opts: RunnerOptions,
    next_pipeline: u32,
    next_job: u32,
    pipelines: BTreeMap<u32, BTreeMap<String, Done>>,
    pub runs: Vec<JobRun>,
}

const TOP_KEYS: &[&str] = &["workflow", "stages", "variables"];
const JOB_KEYS: &[&str] = &[
    "stage",
    "image",
    "tags",
    "variables",
    "rules",
    "needs",
    "dependencies",
    "before_script",
    "script",
    "after_script",
    "artifacts",
    "trigger",
    "timeout",
    "retry",
    "interruptible",
    "when",
    // One job at a time: a resource group is always free.
    "resource_group",
];
const IMAGE_KEYS: &[&str] = &["name", "entrypoint", "pull_policy"];
const RULE_KEYS: &[&str] = &["if", "when"];
const NEED_KEYS: &[&str] = &["job", "pipeline", "artifacts", "optional"];
const ARTIFACT_KEYS: &[&str] = &["paths", "when", "expire_in", "reports"];
const REPORT_KEYS: &[&str] = &["dotenv"];
const TRIGGER_KEYS: &[&str] = &["include", "strategy", "forward"];
const INCLUDE_KEYS: &[&str] = &["artifact", "job"];
const FORWARD_KEYS: &[&str] = &["pipeline_variables", "yaml_variables"];
const RETRY_KEYS: &[&str] = &["max", "when"];

/// Every key of `value` (a mapping) must be in `known`.
fn keys(value: &Value, known: &[&str], at: &str) -> Result<(), String> {
    let Some(m) = value.as_mapping() else {
        return Ok(());
    };
    for k in m.keys() {
        let k = k.as_str().unwrap_or("?");
        if !known.contains(&k) {
            return Err(format!("{at}: this runner does not know `{k}`"));
        }
    }
    Ok(())
}

/// The strict reading: every key of every level is one the runner implements.
fn check_keys(doc: &Value) -> Result<(), String> {
    let top = doc.as_mapping().ok_or("not a mapping")?;
    for (k, v) in top {
        let name = k.as_str().unwrap_or("?");
        if TOP_KEYS.contains(&name) {
            if name == "workflow" {
                keys(v, &["rules"], "workflow")?;
                for r in v["rules"].as_sequence().into_iter().flatten() {
                    keys(r, RULE_KEYS, "workflow rule")?;
                }
            }
            continue;
        }
        if matches!(name, "include" | "default" | "image" | "services" | "cache") {
            return Err(format!("this runner does not know top-level `{name}`"));
        }
        let at = format!("job `{name}`");
        keys(v, JOB_KEYS, &at)?;
        keys(&v["image"], IMAGE_KEYS, &format!("{at}: image"))?;
        for r in v["rules"].as_sequence().into_iter().flatten() {
            keys(r, RULE_KEYS, &format!("{at}: rule"))?;
        }
        for n in v["needs"].as_sequence().into_iter().flatten() {
            keys(n, NEED_KEYS, &format!("{at}: need"))?;
        }
        keys(&v["artifacts"], ARTIFACT_KEYS, &format!("{at}: artifacts"))?;
        keys(
            &v["artifacts"]["reports"],
            REPORT_KEYS,
            &format!("{at}: reports"),
        )?;
        keys(&v["trigger"], TRIGGER_KEYS, &format!("{at}: trigger"))?;
        keys(
            &v["trigger"]["forward"],
            FORWARD_KEYS,
            &format!("{at}: forward"),
        )?;
        for i in v["trigger"]["include"].as_sequence().into_iter().flatten() {
            keys(i, INCLUDE_KEYS, &format!("{at}: include"))?;
        }
        keys(&v["retry"], RETRY_KEYS, &format!("{at}: retry"))?;
    }
    Ok(())
}

/// `$NAME` and `${NAME}` replaced from `vars` (unknown names become empty, as in GitLab).
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => ("", after),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// A `rules: if:` expression: `A == B`, `A != B`, a bare `$VAR`, joined by `&&` and `||`;
/// operands are `$VAR`, `"string"` or `null`.
pub fn evaluate(expr: &str, vars: &BTreeMap<String, String>) -> Result<bool, String> {
    let operand = |s: &str| -> Result<Option<String>, String> {
        let s = s.trim();
        if let Some(name) = s.strip_prefix('$') {
            return Ok(vars.get(name).cloned().filter(|v| !v.is_empty()));
        }
        if let Some(lit) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            return Ok(Some(lit.to_string()));
        }
        if s == "null" {
            return Ok(None);
        }
        Err(format!("`{s}` is not an operand this runner knows"))
    };
    let mut any = false;
    for alternative in expr.split("||") {
        let mut all = true;
        for term in alternative.split("&&") {
            if term.contains("=~") || term.contains('(') {
                return Err(format!("`{term}`: this runner does not evaluate it"));
            }
            let value = if let Some((a, b)) = term.split_once("==") {
                operand(a)? == operand(b)?
            } else if let Some((a, b)) = term.split_once("!=") {
                operand(a)? != operand(b)?
            } else {
                operand(term)?.is_some()
            };
            all &= value;
        }
        any |= all;
    }
    Ok(any)
}

/// The first matching rule's `when` (`on_success` when it has none); `None` when no rule
/// matches. No rules at all: `on_success`.
fn decide(rules: &[Rule], vars: &BTreeMap<String, String>) -> Result<Option<String>, String> {
    if rules.is_empty() {
        return Ok(Some("on_success".into()));
    }
    for r in rules {
        let matched = match &r.if_ {
            Some(e) => evaluate(e, vars)?,
            None => true,
        };
        if matched {
            return Ok(Some(r.when.clone().unwrap_or_else(|| "on_success".into())));
        }
    }
    Ok(None)
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

fn copy_tree(from: &Path, to: &Path) -> Result<(), RunnerError> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .map_err(|e| io("cp", e))?;
    if !status.success() {
        return Err(io(
            "copying",
            format!("{} to {}", from.display(), to.display()),
        ));
    }
    Ok(())
}

/// The order jobs run in: each after what it needs (or, without `needs:`, after every job of
/// the stages before its own).
fn order(p: &Pipeline, selected: &[String]) -> Result<Vec<String>, String> {
    let stage_of = |j: &Job| -> usize {
        let s = j.stage.as_deref().unwrap_or("test");
        p.stages.iter().position(|x| x == s).unwrap_or(0)
    };
    let mut deps: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for name in selected {
        let job = &p.jobs[name];
        let d = deps.entry(name).or_default();
        match &job.needs {
            Some(needs) => {
                for n in needs {
                    if let Need::Detailed {
                        pipeline: Some(_), ..
                    } = n
                    {
                        continue;
                    }
                    let target = n.job_name();
                    let optional = matches!(
                        n,
                        Need::Detailed {
                            optional: Some(true),
                            ..
                        }
                    );
                    if selected.iter().any(|s| s == target) {
                        d.insert(target);
                    } else if !optional {
                        return Err(format!(
                            "job `{name}` needs `{target}`, which does not run in this pipeline"
                        ));
                    }
                }
            }
            None => {
                for other in selected {
                    if stage_of(&p.jobs[other]) < stage_of(job) {
                        d.insert(other);
                    }
                }
            }
        }
    }
    let mut done: Vec<String> = Vec::new();
    while done.len() < selected.len() {
        let next = selected.iter().find(|n| {
            !done.contains(n) && deps[n.as_str()].iter().all(|d| done.iter().any(|x| x == d))
        });
        match next {
            Some(n) => done.push(n.clone()),
            None => return Err("the jobs' needs form a cycle".into()),
        }
    }
    Ok(done)
}

impl Runner {
    pub fn new(opts: RunnerOptions) -> Runner {
        Runner {
            opts,
            next_pipeline: 1000,
            next_job: 1,
            pipelines: BTreeMap::new(),
            runs: Vec::new(),
        }
    }

    fn predefined(&self, pipeline: u32, source: &str) -> BTreeMap<String, String> {
        let o = &self.opts;
        let slug: String = o
            .branch
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let mut v = BTreeMap::from([
            ("CI".to_string(), "true".to_string()),
            ("GITLAB_CI".into(), "true".into()),
            ("CI_PIPELINE_ID".into(), pipeline.to_string()),
            ("CI_PIPELINE_SOURCE".into(), source.to_string()),
            ("CI_COMMIT_REF_NAME".into(), o.branch.clone()),
            ("CI_COMMIT_REF_SLUG".into(), slug),
            ("CI_DEFAULT_BRANCH".into(), o.default_branch.clone()),
            ("CI_PROJECT_DIR".into(), "/builds/project".into()),
            ("CI_PROJECT_URL".into(), o.project_url.clone()),
            // A remote this runner's jobs read without a token; the variable still exists.
            ("CI_JOB_TOKEN".into(), "test-runner-job-token".into()),
        ]);
        if source != "merge_request_event" {
            v.insert("CI_COMMIT_BRANCH".into(), o.branch.clone());
        }
        v
    }

    /// Run the pipeline in `file` for the configured source; returns its id. A workflow that
    /// matches no rule runs nothing (`Ok(None)`).
    pub fn run_file(&mut self, file: &Path) -> Result<Option<u32>, RunnerError> {
        let text = std::fs::read_to_string(file).map_err(|e| io(&file.display().to_string(), e))?;
        let source = self.opts.source.clone();
        self.run_pipeline(&file.display().to_string(), &text, &source, BTreeMap::new())
    }

    fn run_pipeline(
        &mut self,
        file: &str,
        text: &str,
        source: &str,
        inherited: BTreeMap<String, String>,
    ) -> Result<Option<u32>, RunnerError> {
        let bad = |message: String| RunnerError::Pipeline {
            file: file.to_string(),
            message,
        };
        let doc: Value = serde_norway::from_str(text).map_err(|e| bad(e.to_string()))?;
        check_keys(&doc).map_err(bad)?;
        let p: Pipeline = serde_norway::from_value(doc).map_err(|e| bad(e.to_string()))?;
        let id = self.next_pipeline;
        self.next_pipeline += 1;
        // YAML variables may name project and inherited ones (`$BUILD_CACHE_ACCESS_KEY_ID`),
        // which still win where both set the same name.
        let mut outer = inherited.clone();
        outer.extend(self.opts.project_variables.clone());
        let mut vars = self.predefined(id, source);
        for (k, v) in &p.variables {
            let mut scope = vars.clone();
            scope.extend(outer.clone());
            let value = expand(v, &scope);
            vars.insert(k.clone(), value);
        }
        vars.extend(outer);
        if let Some(w) = &p.workflow
            && decide(&w.rules, &vars)
                .map_err(bad)?
                .is_none_or(|w| w == "never")
        {
            return Ok(None);
        }
        let mut selected = Vec::new();
        for (name, job) in &p.jobs {
            match decide(&job.rules, &vars).map_err(bad)? {
                None => {}
                Some(w) if w == "never" => {}
                Some(w) if w == "on_success" || w == "always" => selected.push(name.clone()),
                Some(w) => return Err(bad(format!("job `{name}`: `when: {w}` is not run here"))),
            }
        }
        let order = order(&p, &selected).map_err(bad)?;
        self.pipelines.insert(id, BTreeMap::new());
        for name in order {
            let job = &p.jobs[&name];
            let started = Instant::now();
            let result = self.run_job(file, id, &p, &name, job, &vars, &inherited);
            self.runs.push(JobRun {
                pipeline: id,
                file: file.to_string(),
                name: name.clone(),
                seconds: started.elapsed().as_secs_f64(),
                success: result.is_ok(),
                commands: job
                    .script
                    .iter()
                    .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
                    .collect(),
            });
            let done = result?;
            self.pipelines
                .get_mut(&id)
                .expect("inserted")
                .insert(name, done);
        }
        Ok(Some(id))
    }

    /// The jobs whose artifacts and dotenv `job` receives: its needs (with artifacts), or
    /// every earlier job (its `dependencies:` when given).
    fn inputs(
        &self,
        pipeline: u32,
        p: &Pipeline,
        job: &Job,
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<Done>, String> {
        let this = &self.pipelines[&pipeline];
        let mut out = Vec::new();
        match &job.needs {
            Some(needs) => {
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
                        Some(pid) => {
                            let pid = expand(pid, vars);
                            let pid: u32 = pid
                                .parse()
                                .map_err(|_| format!("need on pipeline `{pid}`"))?;
                            self.pipelines
                                .get(&pid)
                                .and_then(|j| j.get(target))
                                .ok_or_else(|| format!("no job `{target}` in pipeline {pid}"))?
                        }
                        None => match this.get(target) {
                            Some(d) => d,
                            None => continue,
                        },
                    };
                    out.push(found.clone());
                }
            }
            None => {
                for (name, done) in this {
                    if job
                        .dependencies
                        .as_ref()
                        .is_none_or(|d| d.iter().any(|x| x == name))
                        && p.jobs.contains_key(name)
                    {
                        out.push(done.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_job(
        &mut self,
        file: &str,
        pipeline: u32,
        p: &Pipeline,
        name: &str,
        job: &Job,
        pipeline_vars: &BTreeMap<String, String>,
        inherited: &BTreeMap<String, String>,
    ) -> Result<Done, RunnerError> {
        let fail = |message: String| RunnerError::Job {
            file: file.to_string(),
            job: name.to_string(),
            message,
        };
        let job_id = self.next_job;
        self.next_job += 1;
        // Precedence, low to high: predefined and YAML variables, dotenv of the jobs it
        // depends on, project variables, what the trigger forwarded.
        let mut vars = pipeline_vars.clone();
        vars.insert("CI_JOB_NAME".into(), name.to_string());
        vars.insert("CI_JOB_ID".into(), job_id.to_string());
        vars.insert(
            "CI_JOB_STAGE".into(),
            job.stage.clone().unwrap_or_else(|| "test".into()),
        );
        for (k, v) in &job.variables {
            let value = expand(v, &vars);
            vars.insert(k.clone(), value);
        }
        let inputs = self.inputs(pipeline, p, job, &vars).map_err(fail)?;
        for i in &inputs {
            vars.extend(i.dotenv.clone());
        }
        vars.extend(self.opts.project_variables.clone());
        vars.extend(inherited.clone());

        let work = self.opts.work.join(format!("job-{job_id}"));
        let dir = work.join("project");
        std::fs::create_dir_all(&dir).map_err(|e| io("job folder", e))?;
        copy_tree(&self.opts.project, &dir)?;
        for i in &inputs {
            if let Some(a) = &i.artifacts {
                copy_tree(a, &dir)?;
            }
        }
        if let Some(t) = &job.trigger {
            return self.run_trigger(file, pipeline, name, t, &vars, job);
        }
        let timeout = match &job.timeout {
            Some(t) => parse_timeout(t).map_err(fail)?,
            None => Duration::from_secs(3600),
        };
        let image = match &job.image {
            Some(Image::Name(n)) => expand(n, &vars),
            Some(Image::Detailed { name, .. }) => expand(name, &vars),
            None => self.opts.default_image.clone(),
        };
        let always_pull = matches!(
            &job.image,
            Some(Image::Detailed { pull_policy: Some(Value::String(s)), .. }) if s == "always"
        );
        let log = work.join("job.log");
        let status = self
            .docker_run(&work, &dir, &image, always_pull, job, &vars, timeout, &log)
            .map_err(|e| fail(e.to_string()))?;
        let success = status.is_ok();
        let mut done = Done::default();
        if let Some(a) = &job.artifacts
            && (success || a.when.as_deref() == Some("always"))
        {
            let store = work.join("artifacts");
            std::fs::create_dir_all(&store).map_err(|e| io("artifacts", e))?;
            for path in &a.paths {
                let path = expand(path, &vars);
                let from = dir.join(&path);
                if !from.exists() {
                    continue;
                }
                let to = store.join(&path);
                std::fs::create_dir_all(to.parent().expect("a relative path"))
                    .map_err(|e| io("artifacts", e))?;
                let ok = Command::new("cp")
                    .arg("-a")
                    .arg(&from)
                    .arg(&to)
                    .status()
                    .map_err(|e| io("cp", e))?
                    .success();
                if !ok {
                    return Err(io("artifacts", format!("copying {path}")));
                }
            }
            if let Some(file) = a.extra.get("reports").and_then(|r| r.get("dotenv")) {
                let file = file.as_str().unwrap_or_default();
                let text = std::fs::read_to_string(dir.join(file))
                    .map_err(|e| fail(format!("dotenv report {file}: {e}")))?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let (k, v) = line
                        .split_once('=')
                        .ok_or_else(|| fail(format!("dotenv report {file}: `{line}`")))?;
                    done.dotenv.insert(k.to_string(), v.to_string());
                }
            }
            done.artifacts = Some(store);
        }
        status.map_err(|e| {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            fail(format!("{e}; log {}:\n{tail}", log.display()))
        })?;
        Ok(done)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_trigger(
        &mut self,
        file: &str,
        pipeline: u32,
        name: &str,
        trigger: &common::ci::Trigger,
        vars: &BTreeMap<String, String>,
        job: &Job,
    ) -> Result<Done, RunnerError> {
        let fail = |message: String| RunnerError::Job {
            file: file.to_string(),
            job: name.to_string(),
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
        let store = self.pipelines[&pipeline]
            .get(from)
            .and_then(|d| d.artifacts.clone())
            .ok_or_else(|| fail(format!("job `{from}` left no artifacts")))?;
        let child_file = store.join(&artifact);
        let text = std::fs::read_to_string(&child_file)
            .map_err(|e| fail(format!("{artifact} from `{from}`: {e}")))?;
        // What the child pipeline inherits: the trigger job's variables (PARENT_PIPELINE_ID
        // among them), and with `forward: pipeline_variables` the parent's.
        let mut inherited: BTreeMap<String, String> = job
            .variables
            .keys()
            .filter_map(|k| vars.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        if trigger
            .forward
            .as_ref()
            .and_then(|f| f.pipeline_variables)
            .unwrap_or(false)
        {
            for (k, v) in vars {
                inherited.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for k in ["CI_PIPELINE_ID", "CI_JOB_NAME", "CI_JOB_ID", "CI_JOB_STAGE"] {
                inherited.remove(k);
            }
        }
        let label = format!("{file} → {artifact}");
        let result = self.run_pipeline(&label, &text, "parent_pipeline", inherited);
        match (result, trigger.strategy.as_deref()) {
            (Ok(_), _) => Ok(Done::default()),
            (Err(e), Some("depend")) => Err(e),
            // Without `depend` GitLab marks the trigger job passed whatever the child does.
            (Err(_), _) => Ok(Done::default()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn docker_run(
        &self,
        work: &Path,
        dir: &Path,
        image: &str,
        always_pull: bool,
        job: &Job,
        vars: &BTreeMap<String, String>,
        timeout: Duration,
        log: &Path,
    ) -> Result<Result<(), String>, RunnerError> {
        // The variables, secrets among them, go in a file only this user reads.
        let env_file = work.join("job.env");
        let mut env = String::new();
        for (k, v) in vars {
            if v.contains('\n') {
                return Err(io("variables", format!("{k} holds a newline")));
            }
            env.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(&env_file, env).map_err(|e| io("env file", e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("env file", e))?;
        let mut script = String::from("set -e\ncd /builds/project\n");
        for line in job.before_script.iter().chain(&job.script) {
            script.push_str(line);
            script.push('\n');
        }
        std::fs::write(work.join("job.sh"), script).map_err(|e| io("job script", e))?;
        let container = format!("ci-runner-{}", work.file_name().unwrap().to_string_lossy());
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", &self.opts.docker_host)
            .args(["run", "--rm", "--name", &container, "--network", "host"])
            .arg("--env-file")
            .arg(&env_file)
            .arg("-v")
            .arg(format!("{}:/builds/project", dir.display()))
            .arg("-v")
            .arg(format!(
                "{}:/builds/job.sh:ro",
                work.join("job.sh").display()
            ));
        for (host, inside) in &self.opts.volumes {
            cmd.arg("-v")
                .arg(format!("{}:{}", host.display(), inside.display()));
        }
        if always_pull {
            cmd.args(["--pull", "always"]);
        }
        cmd.args(["--entrypoint", "/bin/sh", image, "/builds/job.sh"]);
        let out = std::fs::File::create(log).map_err(|e| io("job log", e))?;
        let err = out.try_clone().map_err(|e| io("job log", e))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| io("docker", e))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(|e| io("docker", e))? {
                return Ok(if status.success() {
                    Ok(())
                } else {
                    Err(format!("exit status {}", status.code().unwrap_or(-1)))
                });
            }
            if started.elapsed() > timeout {
                let _ = Command::new("docker")
                    .env("DOCKER_HOST", &self.opts.docker_host)
                    .args(["kill", &container])
                    .status();
                let _ = child.wait();
                return Ok(Err(format!("timed out after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rules_are_evaluated_as_gitlab_does() {
        let v = vars(&[
            ("CI_PIPELINE_SOURCE", "web"),
            ("CI_COMMIT_BRANCH", "feature"),
            ("CI_DEFAULT_BRANCH", "main"),
        ]);
        assert!(evaluate("$CI_PIPELINE_SOURCE == \"web\"", &v).unwrap());
        assert!(!evaluate("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", &v).unwrap());
        assert!(
            evaluate(
                "$CI_PIPELINE_SOURCE == \"web\" && $CI_COMMIT_BRANCH != $CI_DEFAULT_BRANCH",
                &v
            )
            .unwrap()
        );
        assert!(evaluate("$NOPE == null || $CI_COMMIT_BRANCH", &v).unwrap());
        assert!(evaluate("$CI_COMMIT_TAG =~ /^v/", &v).is_err());
        assert!(evaluate("$A == unquoted", &v).is_err());
    }

    #[test]
    fn variables_timeouts_and_unknown_keys() {
        let v = vars(&[("BUILDER_TAG", "latest")]);
        assert_eq!(expand("reg/builder:$BUILDER_TAG", &v), "reg/builder:latest");
        assert_eq!(expand("${BUILDER_TAG}-x $NOPE.", &v), "latest-x .");
        assert_eq!(parse_timeout("2h 30m").unwrap(), Duration::from_secs(9000));
        assert_eq!(parse_timeout("30m").unwrap(), Duration::from_secs(1800));
        assert!(parse_timeout("soon").is_err());
        let doc: Value =
            serde_norway::from_str("job:\n  script: [true]\n  cache: {paths: [x]}\n").unwrap();
        assert!(check_keys(&doc).unwrap_err().contains("`cache`"));
        let doc: Value = serde_norway::from_str(
            "job:\n  script: [true]\n  rules:\n  - if: $X\n    changes: [a]\n",
        )
        .unwrap();
        assert!(check_keys(&doc).unwrap_err().contains("`changes`"));
    }
}
