//! The test-only GitLab runner (`spacktainerizah_tests::runner`) as a command, for
//! `scripts/e2e.sh`: runs one pipeline file of a project checkout for one pipeline source and
//! writes a JSON report of the jobs that ran.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use spacktainerizah_tests::runner::{Limits, PipelineRef, Runner, RunnerOptions, RunnerSpec};

/// Run a GitLab pipeline file job by job in Docker, as GitLab and its runners would.
///
/// Exit status: 0 when the pipeline succeeded or GitLab would create none; 1 when it failed,
/// GitLab would refuse it, or a job would stay pending; 2 for a usage or infrastructure error.
#[derive(Debug, Parser)]
#[command(name = "ci-runner")]
struct Cli {
    /// The pipeline file, relative to the project.
    file: PathBuf,
    /// The project checkout.
    #[arg(long)]
    project: PathBuf,
    /// Folder for the jobs' copies, artifacts and logs.
    #[arg(long)]
    work: PathBuf,
    /// `push`, `web`, `merge_request_event` or `schedule`.
    #[arg(long)]
    source: String,
    /// The branch; for `merge_request_event`, the merge request's source branch.
    #[arg(long, default_value = "main")]
    branch: String,
    #[arg(long, default_value = "main")]
    default_branch: String,
    /// For `merge_request_event`: the merge request's target branch (default: the default
    /// branch).
    #[arg(long)]
    target_branch: Option<String>,
    /// For `merge_request_event`: the merge request's IID.
    #[arg(long, default_value_t = 1)]
    mr_iid: u32,
    /// `CI_PROJECT_URL`: a git remote the jobs can read.
    #[arg(long)]
    project_url: String,
    /// Project CI/CD variables, `KEY=VALUE` lines (secrets stay out of arguments);
    /// `protected KEY=VALUE` for a protected variable, which only pipelines of the default
    /// branch get (not merge requests, not other branches).
    #[arg(long)]
    variables_file: Option<PathBuf>,
    /// `HOST[:CONTAINER]` mounted in every job (repeatable).
    #[arg(long = "volume")]
    volumes: Vec<String>,
    /// The image of jobs that name none, and the machine of shell runners that name none.
    #[arg(long)]
    default_image: String,
    /// A runner of the project (repeatable; asked for jobs in this order):
    /// `TAGS[:EXECUTOR[:OPTIONS[:HOST_IMAGE]]]`. TAGS: comma-separated, `-` for none.
    /// EXECUTOR: `docker` (default) or `shell` (ignores the job's `image:`: runs in
    /// HOST_IMAGE, default --default-image). OPTIONS, comma-separated: `run-untagged` (the
    /// default only for a runner without tags), `pull=always|if-not-present|never`
    /// (repeatable: the allowed pull policies, default `always`), `platform=OS/ARCH` (the
    /// runner's machine, when it is not this one: its containers run as that platform).
    /// Examples: `local:docker:run-untagged`, `bb5_map:shell`,
    /// `local-arm64:docker:platform=linux/arm64`. Default: one Docker runner without tags.
    #[arg(long = "runner", verbatim_doc_comment)]
    runners: Vec<String>,
    /// The most jobs one job may `needs:` (GitLab's `ci_needs_size_limit`).
    #[arg(long, default_value_t = Limits::default().max_needs)]
    max_needs: usize,
    /// The largest pipeline file, also with its YAML aliases expanded (GitLab's
    /// `max_yaml_size_bytes`).
    #[arg(long, default_value_t = Limits::default().max_yaml_size_bytes)]
    max_yaml_size_bytes: usize,
    /// The deepest nesting of a pipeline file (GitLab's `max_yaml_depth`).
    #[arg(long, default_value_t = Limits::default().max_yaml_depth)]
    max_yaml_depth: usize,
    /// The largest child pipeline file read from an artifact (GitLab's
    /// `max_artifacts_content_include_size`).
    #[arg(long, default_value_t = Limits::default().max_include_artifact_bytes)]
    max_include_artifact_bytes: usize,
    /// Where the JSON report of the jobs goes.
    #[arg(long)]
    report: PathBuf,
}

/// The project variables of `--variables-file`: the open ones, and those marked protected.
type ProjectVariables = (BTreeMap<String, String>, BTreeMap<String, String>);

/// `KEY=VALUE` lines; `protected KEY=VALUE` for a variable only protected refs get.
fn project_variables(cli: &Cli) -> Result<ProjectVariables, String> {
    let (mut open, mut protected) = (BTreeMap::new(), BTreeMap::new());
    let Some(f) = &cli.variables_file else {
        return Ok((open, protected));
    };
    let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (vars, entry) = match line.strip_prefix("protected ") {
            Some(rest) => (&mut protected, rest),
            None => (&mut open, line),
        };
        // The line itself is never shown: it holds the value.
        let Some((k, v)) = entry.split_once('=') else {
            return Err(format!(
                "{}: a line is not KEY=VALUE or protected KEY=VALUE",
                f.display()
            ));
        };
        vars.insert(k.to_string(), v.to_string());
    }
    Ok((open, protected))
}

fn options(cli: &Cli) -> Result<RunnerOptions, String> {
    let volumes = cli
        .volumes
        .iter()
        .map(|v| match v.split_once(':') {
            Some((h, c)) => (PathBuf::from(h), PathBuf::from(c)),
            None => (PathBuf::from(v), PathBuf::from(v)),
        })
        .collect();
    let mut runners = cli
        .runners
        .iter()
        .map(|r| RunnerSpec::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    if runners.is_empty() {
        runners.push(RunnerSpec::untagged_docker());
    }
    let git_ref = match cli.source.as_str() {
        "merge_request_event" => PipelineRef::MergeRequest {
            iid: cli.mr_iid,
            source_branch: cli.branch.clone(),
            target_branch: cli
                .target_branch
                .clone()
                .unwrap_or_else(|| cli.default_branch.clone()),
        },
        _ => PipelineRef::Branch(cli.branch.clone()),
    };
    let (project_variables, protected_variables) = project_variables(cli)?;
    Ok(RunnerOptions {
        project: cli.project.clone(),
        work: cli.work.clone(),
        source: cli.source.clone(),
        git_ref,
        default_branch: cli.default_branch.clone(),
        project_url: cli.project_url.clone(),
        project_variables,
        protected_variables,
        volumes,
        default_image: cli.default_image.clone(),
        docker_host: std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
        runners,
        limits: Limits {
            max_yaml_size_bytes: cli.max_yaml_size_bytes,
            max_yaml_depth: cli.max_yaml_depth,
            max_needs: cli.max_needs,
            max_include_artifact_bytes: cli.max_include_artifact_bytes,
        },
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = match options(&cli) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ci-runner: {e}");
            return ExitCode::from(2);
        }
    };
    let mut runner = Runner::new(opts);
    let result = runner.run_file(&cli.project.join(&cli.file));
    for run in &runner.runs {
        let status = match (run.success, run.allow_failure) {
            (true, _) => "ok  ",
            (false, true) => "FAIL (allowed)",
            (false, false) => "FAIL",
        };
        eprintln!(
            "ci-runner: {status} {:>7.1}s  {}  [{}]{}",
            run.seconds,
            run.name,
            run.file,
            match run.attempts.len() {
                1 => String::new(),
                n => format!(" after {n} attempts"),
            }
        );
    }
    for s in &runner.skipped {
        eprintln!(
            "ci-runner: skipped   {} (when: {})  [{}]",
            s.name, s.when, s.file
        );
    }
    let report = serde_json::json!({
        "pipeline": result.as_ref().ok().cloned().flatten(),
        "jobs": runner.runs,
        "skipped": runner.skipped,
        "error": result.as_ref().err().map(|e| e.to_string()),
    });
    if let Err(e) = std::fs::write(&cli.report, report.to_string()) {
        eprintln!("ci-runner: {}: {e}", cli.report.display());
        return ExitCode::from(2);
    }
    match result {
        Ok(Some(_)) => ExitCode::SUCCESS,
        Ok(None) => {
            eprintln!(
                "ci-runner: no pipeline created: the workflow rules or the jobs' rules add nothing for this source"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ci-runner: {e}");
            ExitCode::from(1)
        }
    }
}
