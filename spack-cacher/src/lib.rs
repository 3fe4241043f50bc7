//! Stage 2: the Spack environment of every container definition per architecture, Spack's
//! `concretize` and `ci generate` on them, the keep lists recorded, the child pipelines that
//! fill the build cache, and the project's chain. The library behind `spack-cacher`, callable
//! from tests.

pub mod chain;
pub mod cli;
pub mod generate;
pub mod prepare;
pub mod process;
pub mod record;
pub mod variables;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use model::config::Config;
use stores::Store;
use terminal::cli::{OutputOptions, exit};
use terminal::printer::Printer;

/// A command, as plain options; configuration files are read by [`run`].
#[derive(Debug, Clone)]
pub enum Command {
    Chain {
        config: PathBuf,
        repo: PathBuf,
        /// `-` for stdout.
        out: PathBuf,
    },
    Variables {
        config: PathBuf,
    },
    Prepare {
        config: PathBuf,
        repo: PathBuf,
        out: PathBuf,
        branch: String,
        /// The base images' tag stage 1 exported (`BUILDER_TAG`).
        base_tag: String,
        builder_image: Option<String>,
        /// `CI_PROJECT_DIR`, the checkout the jobs share.
        project_dir: Option<PathBuf>,
    },
    Generate {
        /// Without reuse: [`run`] adds it when `branch` is given.
        options: generate::GenerateOptions,
        config: PathBuf,
        branch: Option<String>,
    },
    Record {
        config: PathBuf,
        envs: PathBuf,
        arch: String,
        branch: String,
    },
    Process(ProcessCommand),
}

/// `process` as asked on the command line; the architecture's settings come from `config`.
#[derive(Debug, Clone)]
pub struct ProcessCommand {
    pub config: PathBuf,
    pub arch: String,
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub artifacts_job: String,
    /// Overrides the configuration's `jobs.spack_builds.timeout`.
    pub timeout: Option<String>,
    /// Overrides the configuration's `pull_policy`.
    pub pull_policy: Option<String>,
    pub max_jobs: usize,
}

/// Run `command`, printing through a printer made from `output`; the process exit code.
pub fn main(output: &OutputOptions, command: Command) -> ExitCode {
    let printer = Printer::new(output);
    terminal::cli::finish(&printer, run(&printer, command))
}

/// Paths, one a line: what a command wrote.
fn list(printer: &Printer, paths: impl IntoIterator<Item = String>) -> std::io::Result<()> {
    let text: String = paths.into_iter().map(|p| format!("{p}\n")).collect();
    printer.data(&text)
}

/// Run a command; returns the process exit code. Only `record` reaches a service: its store
/// is opened here, once.
pub fn run(printer: &Printer, command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Chain { config, repo, out } => chain(printer, &config, &repo, &out)?,
        Command::Variables { config } => {
            let cfg = Config::read(&config)?;
            printer.data(&variables::markdown(&variables::variables(&cfg)))?;
        }
        Command::Prepare {
            config,
            repo,
            out,
            branch,
            base_tag,
            builder_image,
            project_dir,
        } => {
            let opts = prepare::PrepareOptions {
                config: Config::read(&config)?,
                repo,
                output: out,
                branch,
                base_tag,
                builder_image,
                project_dir,
            };
            let prepared = prepare::run(&opts).context("preparing the Spack environments")?;
            list(
                printer,
                prepared.iter().map(|p| p.path.display().to_string()),
            )?;
        }
        Command::Generate {
            mut options,
            config,
            branch,
        } => {
            if let Some(branch) = branch {
                options.reuse = Some(Box::new(generate::Reuse {
                    config: Config::read(&config)?,
                    branch,
                }));
            }
            let written = generate::run(&options, printer)?;
            list(printer, written.iter().map(|p| p.display().to_string()))?;
        }
        Command::Record {
            config,
            envs,
            arch,
            branch,
        } => {
            let opts = record::RecordOptions {
                config: Config::read(&config)?,
                envs,
                arch,
                branch,
            };
            record(printer, &opts)?;
        }
        Command::Process(command) => {
            let cfg = Config::read(&command.config)?;
            let opts = command.options(&cfg)?;
            let written = process::run(&opts).context("processing the generated pipelines")?;
            list(printer, written.iter().map(|p| p.display().to_string()))?;
        }
    }
    Ok(exit::SUCCESS)
}

/// `chain`: the pipeline of `repo` under `config`, written to `out` (`-`: stdout).
fn chain(printer: &Printer, config: &Path, repo: &Path, out: &Path) -> anyhow::Result<()> {
    let cfg = Config::read(config)?;
    let defs = model::definitions::discover(repo)?;
    let spack_architectures = cfg
        .architectures
        .keys()
        .filter(|a| {
            defs.for_arch(a)
                .any(|d| matches!(d.kind, model::definitions::Kind::Spack { .. }))
        })
        .cloned()
        .collect();
    let opts = chain::ChainOptions {
        package_repos: chain::template_repos(repo)?,
        config: cfg,
        config_path: config.display().to_string(),
        spack_architectures,
    };
    let yaml = format!(
        "# Generated by `spack-cacher chain`; edit spacktainerizah.yaml and run it again.\n{}",
        chain::pipeline(&opts)?.to_yaml()
    );
    if out.as_os_str() == "-" {
        printer.data(&yaml)?;
    } else {
        std::fs::write(out, yaml).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// `record`, with the keep lists' store opened once.
fn record(printer: &Printer, opts: &record::RecordOptions) -> anyhow::Result<()> {
    let (url, s3) = record::keep_lists_store(opts)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let recorded = rt.block_on(async {
        let store = Store::open(&url, &s3)
            .await
            .with_context(|| format!("opening the keep lists {url}"))?;
        record::run(&store, opts).await
    })?;
    list(printer, recorded.written)?;
    for r in recorded.removed {
        printer.log(format!("removed the keep list of a retired container: {r}"));
    }
    Ok(())
}

impl ProcessCommand {
    /// The options of `process`: the architecture's runner tag, CI variables and build-cache
    /// key pair from `cfg`, the configured job settings with the command line's overrides.
    fn options(self, cfg: &Config) -> anyhow::Result<process::ProcessOptions> {
        let a = cfg.arch(&self.arch).with_context(|| {
            format!(
                "architecture `{}` is not in {}",
                self.arch,
                self.config.display()
            )
        })?;
        let mut variables = a.job_variables();
        variables.extend(a.build_cache.aws_variables());
        let mut builds = cfg.jobs.spack_builds.clone();
        builds.timeout = self.timeout.or(builds.timeout);
        Ok(process::ProcessOptions {
            runner_tag: a.runner_tag.clone(),
            arch: self.arch,
            inputs: self.inputs,
            artifacts_path: self.out.display().to_string(),
            output_dir: self.out,
            artifacts_job: self.artifacts_job,
            variables,
            builds,
            tools: cfg.jobs.tools.clone(),
            pull_policy: self
                .pull_policy
                .map(|p| vec![p])
                .or(cfg.pull_policy.clone()),
            max_jobs_per_pipeline: self.max_jobs,
            max_file_bytes: model::ci::MAX_FILE_BYTES,
        })
    }
}
