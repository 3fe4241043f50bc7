//! Command-line interface of `spack-cacher`: clap types turned into the plain options the
//! library takes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use model::env_names;
use terminal::cli::{EXIT_CODES_HELP, OutputArgs, OutputOptions};

use crate::generate::GenerateOptions;
use crate::{Command, ProcessCommand};

#[derive(Debug, Parser)]
#[command(name = "spack-cacher", version, about = "Fills the Spack binary build cache from the container definitions (stage 2).", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Write the Spack environment of every container definition and architecture:
    /// `<OUT>/<arch>/<container>/spack.yaml` (the template merged with the definition, the
    /// base requirement, the upload mirror, the CI section).
    Prepare {
        /// The repository with `spack.yaml` (the template) and `container_definitions/`.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The configuration file.
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
        /// The folder the environments are written to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The branch slug; the default branch uses production buckets.
        #[arg(long, env = env_names::CI_COMMIT_REF_SLUG)]
        branch: String,
        /// The base images' tag stage 1 exported: the builder Spack's jobs run in.
        #[arg(long, env = env_names::BUILDER_TAG)]
        base_tag: String,
        /// That builder pinned by digest (`<registry>/builder@sha256:…`), which Spack's jobs
        /// then run in.
        #[arg(long, env = env_names::BUILDER_IMAGE)]
        builder_image: Option<String>,
        /// The checkout every job has: package repositories inside it are written relative to
        /// `$CI_PROJECT_DIR`, absolute paths otherwise.
        #[arg(long, value_name = "DIR", env = env_names::CI_PROJECT_DIR)]
        project_dir: Option<PathBuf>,
    },
    /// Write the pipelines that fill an architecture's build cache: `spack concretize -f` and
    /// `spack ci generate` on each prepared environment, several at once, each with its log in
    /// `generate.log`; with `--branch`, an environment whose inputs are those recorded with its
    /// keep list reuses the recorded `spack.lock`, and needs no Spack when all its specs are in
    /// the cache.
    Generate {
        /// Where `prepare` wrote the environments.
        #[arg(long)]
        envs: PathBuf,
        /// The architecture whose environments are generated.
        #[arg(long)]
        arch: String,
        /// Where the pipelines go: `<PIPELINES>/<container>/pipeline.yml`.
        #[arg(long)]
        pipelines: PathBuf,
        /// The `spack` executable (found on PATH when not given).
        #[arg(long, env = env_names::SPACK)]
        spack: Option<PathBuf>,
        /// Environments processed at once (default: the CPUs this job may use, at most 4: each
        /// concretizer takes 1–2 GB, and a Kubernetes pod without a CPU limit sees the whole
        /// node's CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// The branch slug (`CI_COMMIT_REF_SLUG`) whose recorded concretizations are reused:
        /// an environment whose inputs are those recorded with its keep list takes the
        /// recorded `spack.lock`, and needs no Spack when its specs are all in the cache.
        /// Without it every environment is concretized.
        #[arg(long, env = env_names::CI_COMMIT_REF_SLUG)]
        branch: Option<String>,
        /// The configuration file (where the keep lists are).
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
    },
    /// Record each concretized `spack.lock` of an architecture in the build cache the branch
    /// fills (`_spacktainerizah/keep/<branch>/<arch>/<container>/spack.lock`): the keep lists
    /// `spackitor clean --keep URL` protects.
    Record {
        /// The configuration file.
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
        /// Where `prepare` wrote the environments and `generate` concretized them.
        #[arg(long)]
        envs: PathBuf,
        /// The architecture whose lockfiles are recorded.
        #[arg(long)]
        arch: String,
        /// The branch slug; the default branch records in the production cache.
        #[arg(long, env = env_names::CI_COMMIT_REF_SLUG)]
        branch: String,
    },
    /// Write the project's `.gitlab-ci.yml`: base images, build cache per architecture,
    /// containers and cleanup, each stage a child pipeline from its generating job's artifacts;
    /// a scheduled pipeline runs only the janitor.
    Chain {
        /// The configuration file.
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
        /// Where to write it (`-` for stdout).
        #[arg(long, value_name = "FILE", default_value = ".gitlab-ci.yml")]
        out: PathBuf,
        /// The repository with the template `spack.yaml` and `container_definitions/`.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
    /// The CI/CD variables the chain reads: what the project must define (type, masked,
    /// protected), what GitLab predefines and what the chain sets, as a Markdown table.
    Variables {
        /// The configuration file.
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
    },
    /// Turn the pipelines `spack ci generate` wrote for one architecture into GitLab child
    /// pipelines: jobs merged (a job shared by several environments once, in its earliest
    /// stage), one child pipeline per stage, and the trigger pipeline `<ARCH>.yml` that runs
    /// them in order. The parent's trigger job must pass `PARENT_PIPELINE_ID: $CI_PIPELINE_ID`.
    Process {
        /// Generated pipeline files, or folders of `<environment>/*.yml`.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The architecture the pipelines build for.
        #[arg(long)]
        arch: String,
        /// Configuration file (the architecture's CI variables and build-cache key pair).
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
        /// Folder the pipelines are written to, relative to the project (CI artifacts).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The parent pipeline's job running this command (its artifacts hold the output).
        #[arg(long, env = env_names::CI_JOB_NAME)]
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

impl Cli {
    /// The plain options: no file is read and nothing is run here.
    pub fn into_options(self) -> (OutputOptions, Command) {
        let command = match self.command {
            CliCommand::Chain { config, out, repo } => Command::Chain { config, repo, out },
            CliCommand::Variables { config } => Command::Variables { config },
            CliCommand::Prepare {
                repo,
                config,
                out,
                branch,
                base_tag,
                builder_image,
                project_dir,
            } => Command::Prepare {
                config,
                repo,
                out,
                branch,
                base_tag,
                builder_image,
                project_dir,
            },
            CliCommand::Generate {
                envs,
                arch,
                pipelines,
                spack,
                jobs,
                branch,
                config,
            } => Command::Generate {
                options: GenerateOptions {
                    envs,
                    arch,
                    spack,
                    jobs: jobs.unwrap_or_else(|| {
                        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
                    }),
                    output: pipelines,
                    reuse: None,
                },
                config,
                branch,
            },
            CliCommand::Record {
                config,
                envs,
                arch,
                branch,
            } => Command::Record {
                config,
                envs,
                arch,
                branch,
            },
            CliCommand::Process {
                inputs,
                arch,
                config,
                out,
                artifacts_job,
                timeout,
                pull_policy,
                max_jobs,
            } => Command::Process(ProcessCommand {
                config,
                arch,
                inputs,
                out,
                artifacts_job,
                timeout,
                pull_policy,
                max_jobs,
            }),
        };
        (self.output.options(), command)
    }
}
