//! The test-only GitLab runner (`spacktainerizah_tests::runner`) as a command, for
//! `scripts/e2e.sh`: runs one pipeline file of a project checkout for one pipeline source and
//! writes a JSON report of the jobs that ran.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use spacktainerizah_tests::runner::{Runner, RunnerOptions};

/// Run a GitLab pipeline file job by job in Docker, as a runner would.
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
    #[arg(long, default_value = "main")]
    branch: String,
    #[arg(long, default_value = "main")]
    default_branch: String,
    /// `CI_PROJECT_URL`: a git remote the jobs can read.
    #[arg(long)]
    project_url: String,
    /// Project CI/CD variables, `KEY=VALUE` lines (secrets stay out of arguments).
    #[arg(long)]
    variables_file: Option<PathBuf>,
    /// `HOST[:CONTAINER]` mounted in every job (repeatable).
    #[arg(long = "volume")]
    volumes: Vec<String>,
    /// The image of jobs that name none.
    #[arg(long)]
    default_image: String,
    /// Where the JSON report of the jobs goes.
    #[arg(long)]
    report: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut project_variables = BTreeMap::new();
    if let Some(f) = &cli.variables_file {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("ci-runner: {}: {e}", f.display());
                return ExitCode::from(2);
            }
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some((k, v)) = line.split_once('=') else {
                eprintln!("ci-runner: {}: `{line}` is not KEY=VALUE", f.display());
                return ExitCode::from(2);
            };
            project_variables.insert(k.to_string(), v.to_string());
        }
    }
    let volumes = cli
        .volumes
        .iter()
        .map(|v| match v.split_once(':') {
            Some((h, c)) => (PathBuf::from(h), PathBuf::from(c)),
            None => (PathBuf::from(v), PathBuf::from(v)),
        })
        .collect();
    let mut runner = Runner::new(RunnerOptions {
        project: cli.project.clone(),
        work: cli.work.clone(),
        source: cli.source.clone(),
        branch: cli.branch.clone(),
        default_branch: cli.default_branch.clone(),
        project_url: cli.project_url.clone(),
        project_variables,
        volumes,
        default_image: cli.default_image.clone(),
        docker_host: std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
    });
    let result = runner.run_file(&cli.project.join(&cli.file));
    for run in &runner.runs {
        eprintln!(
            "ci-runner: {} {:>7.1}s  {}  [{}]",
            if run.success { "ok  " } else { "FAIL" },
            run.seconds,
            run.name,
            run.file
        );
    }
    let report = serde_json::json!({
        "pipeline": result.as_ref().ok().cloned().flatten(),
        "jobs": runner.runs,
        "error": result.as_ref().err().map(|e| e.to_string()),
    });
    if let Err(e) = std::fs::write(&cli.report, report.to_string()) {
        eprintln!("ci-runner: {}: {e}", cli.report.display());
        return ExitCode::from(2);
    }
    match result {
        Ok(Some(_)) => ExitCode::SUCCESS,
        Ok(None) => {
            eprintln!("ci-runner: the workflow rules start no pipeline for this source");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ci-runner: {e}");
            ExitCode::from(1)
        }
    }
}
