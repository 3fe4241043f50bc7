//! Command-line interface of `spack-cacher`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use common::cli::EXIT_CODES_HELP;
use common::config::Config;
use common::env_names;

use crate::chain::ChainOptions;
use crate::generate::GenerateOptions;
use crate::prepare::PrepareOptions;
use crate::process::ProcessOptions;
use crate::record::RecordOptions;

#[derive(Debug, Parser)]
#[command(name = "spack-cacher", version, about = "Fills the Spack binary build cache from the container definitions (stage 2).", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the Spack environment of every container definition and architecture:
    /// `<OUTPUT>/<arch>/<container>/spack.yaml` (the template merged with the definition, the
    /// base requirement, the upload mirror, the CI section).
    Prepare {
        /// The repository with `spack.yaml` (the template) and `container_definitions/`.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// The branch slug; the default branch uses production buckets and tags.
        #[arg(long, env = "CI_COMMIT_REF_SLUG")]
        branch: String,
        /// Date of branch image tags, `YYYY.MM.DD` (today when not given).
        #[arg(long)]
        date: Option<String>,
    },
    /// Run `spack concretize -f` and `spack ci generate` on every prepared environment of an
    /// architecture, several at once; each environment's log is kept in `generate.log`.
    Generate {
        /// Where `prepare` wrote the environments.
        #[arg(long)]
        envs: PathBuf,
        #[arg(long)]
        arch: String,
        /// Where the pipelines go: `<PIPELINES>/<container>/pipeline.yml`.
        #[arg(long)]
        pipelines: PathBuf,
        /// The `spack` executable (found on PATH when not given).
        #[arg(long, env = "SPACK")]
        spack: Option<PathBuf>,
        /// Environments processed at once.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        #[command(flatten)]
        out: common::cli::OutputArgs,
    },
    /// Record each concretized `spack.lock` of an architecture in the build cache the branch
    /// fills (`_spacktainerizah/keep/<branch>/<arch>/<container>/spack.lock`): the keep lists
    /// `spackitor clean --keep URL` protects.
    Record {
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
        /// Where `prepare` wrote the environments and `generate` concretized them.
        #[arg(long)]
        envs: PathBuf,
        #[arg(long)]
        arch: String,
        /// The branch slug; the default branch records in the production cache.
        #[arg(long, env = "CI_COMMIT_REF_SLUG")]
        branch: String,
    },
    /// Write the project's `.gitlab-ci.yml`: base images, build cache per architecture,
    /// containers and cleanup, each stage a child pipeline from its generating job's artifacts;
    /// a scheduled pipeline runs only the janitor.
    Chain {
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
        /// The image with the Spacktainerizah tools (defaults to `<registry>/spacktainerizah:latest`).
        #[arg(long)]
        tools_image: Option<String>,
        /// Where to write it (`-` for stdout).
        #[arg(long, default_value = ".gitlab-ci.yml")]
        output: PathBuf,
        /// The repository with the template `spack.yaml` and `container_definitions/`.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
    /// Turn the pipelines `spack ci generate` wrote for one architecture into GitLab child
    /// pipelines: jobs merged (a job shared by several environments once, in its earliest
    /// stage), one child pipeline per stage, and the trigger pipeline `<ARCH>.yml` that runs
    /// them in order. The parent's trigger job must pass `PARENT_PIPELINE_ID: $CI_PIPELINE_ID`.
    Process {
        /// Generated pipeline files, or folders of `<environment>/*.yml`.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long)]
        arch: String,
        /// Configuration file (the architecture's CI variables and build-cache key pair).
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
        /// Folder the pipelines are written to, relative to the project (CI artifacts).
        #[arg(long)]
        output: PathBuf,
        /// The parent pipeline's job running this command (its artifacts hold the output).
        #[arg(long, env = "CI_JOB_NAME")]
        artifacts_job: String,
        /// Timeout of every build job (`2h`, `90m`).
        #[arg(long)]
        timeout: Option<String>,
        /// Image pull policy of every build job (`always`, `if-not-present`).
        #[arg(long)]
        pull_policy: Option<String>,
        /// A stage with more jobs is split into several child pipelines.
        #[arg(long, default_value_t = 500)]
        max_jobs: usize,
    },
}

/// A parsed command with the plain options the library works from.
pub enum Run {
    Record(RecordOptions),
    Chain(ChainOptions, PathBuf),
    Prepare(PrepareOptions),
    Generate(GenerateOptions, common::printer::Printer),
    Process(ProcessOptions),
}

impl Cli {
    pub fn into_run(self) -> anyhow::Result<Run> {
        Ok(match self.command {
            Command::Record {
                config,
                envs,
                arch,
                branch,
            } => Run::Record(RecordOptions {
                config: Config::read(&config)?,
                envs,
                arch,
                branch,
            }),
            Command::Chain {
                config,
                tools_image,
                output,
                repo,
            } => {
                let cfg = Config::read(&config)?;
                let package_repos = crate::chain::template_repos(&repo)?;
                let tools_image = tools_image
                    .unwrap_or_else(|| format!("{}/spacktainerizah:latest", cfg.registry.url));
                Run::Chain(
                    ChainOptions {
                        config: cfg,
                        package_repos,
                        config_path: config.display().to_string(),
                        tools_image,
                    },
                    output,
                )
            }
            Command::Prepare {
                repo,
                config,
                output,
                branch,
                date,
            } => Run::Prepare(PrepareOptions {
                config: Config::read(&config)?,
                repo,
                output,
                branch,
                date: date.unwrap_or_else(common::config::tag_date_today),
            }),
            Command::Generate {
                envs,
                arch,
                pipelines,
                spack,
                jobs,
                out,
            } => Run::Generate(
                GenerateOptions {
                    envs,
                    arch,
                    spack,
                    jobs,
                    output: pipelines,
                },
                common::printer::Printer::new(&out),
            ),
            Command::Process {
                inputs,
                arch,
                config,
                output,
                artifacts_job,
                timeout,
                pull_policy,
                max_jobs,
            } => {
                let cfg = Config::read(&config)?;
                let a = cfg.arch(&arch).with_context(|| {
                    format!("architecture `{arch}` is not in {}", config.display())
                })?;
                Run::Process(ProcessOptions {
                    arch,
                    inputs,
                    artifacts_path: output.display().to_string(),
                    output_dir: output,
                    artifacts_job,
                    variables: a.variables.clone(),
                    key_pair: a
                        .build_cache
                        .credentials
                        .as_ref()
                        .map(|c| (c.user_env.clone(), c.secret_env.clone())),
                    timeout,
                    pull_policy,
                    max_jobs_per_pipeline: max_jobs,
                })
            }
        })
    }
}
