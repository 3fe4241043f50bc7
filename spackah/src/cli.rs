//! Command-line interface of `spackah`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::cli::{EXIT_CODES_HELP, OutputArgs};
use common::config::Config;
use common::env_names;
use common::printer::Printer;

use crate::build::BuildOptions;
use crate::pipeline::PipelineOptions;
use crate::plan::PlanOptions;
use crate::publish::PublishOptions;

#[derive(Debug, Parser)]
#[command(name = "spackah", version, about = "Builds and publishes one container image per container definition (stage 3).", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// For each container and architecture: what needs work (image, SIF, public hub), and why.
    /// Spack containers are tagged with the main package's version from their lockfile and
    /// rebuilt when the registry lacks the tag or holds another lockfile or definition checksum;
    /// their SIF is remade when the containers bucket lacks it with the same checksums; `.def`
    /// containers when their source image or definition changed since their SIF was published.
    /// Exit 1 when something needs work.
    Plan {
        #[command(flatten)]
        common: Common,
        /// Only this container (repeatable).
        #[arg(long = "container")]
        containers: Vec<String>,
        /// Concretize each prepared environment under `--lockfiles` with `spack` first, instead
        /// of reading the lockfiles stage 2 left there.
        #[arg(long)]
        concretize: bool,
        /// The `spack` to run (default: the one on PATH).
        #[arg(long, requires = "concretize")]
        spack: Option<PathBuf>,
    },
    /// Write the stage-3 child pipeline, with jobs only for what `plan` says needs work: image
    /// builds (push, public hub on the default branch), hub pushes, SIF builds and uploads, and
    /// a sync of the shared SIF directory after them.
    Pipeline {
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Where `spack-cacher prepare` wrote the environments (the jobs read them there too).
        #[arg(long)]
        environments: PathBuf,
        /// Where stage 2 left `<arch>/<container>/spack.lock` (default: the environments).
        #[arg(long)]
        lockfiles: Option<PathBuf>,
        #[arg(long, env = "CI_COMMIT_REF_SLUG")]
        branch: String,
        /// The base images' tag (stage 1's `BUILDER_TAG`).
        #[arg(long, env = "BUILDER_TAG")]
        base_tag: String,
        /// Where to write the pipeline.
        #[arg(long)]
        file: PathBuf,
        /// The image with the Spacktainerizah tools the jobs run in
        /// (default: `<registry>/spacktainerizah:latest`).
        #[arg(long)]
        tools_image: Option<String>,
    },
    /// Copy a built container to the public hub: on the default branch only, when the public
    /// repository exists and lacks the tag or holds other checksums.
    Publish {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        container: String,
        #[arg(long)]
        arch: String,
    },
    /// Build one Spack container for one architecture on the branch's builder and runtime
    /// images, with the labels `plan` compares; `--push` pushes it.
    Build {
        #[command(flatten)]
        common: Common,
        /// Where `spack-cacher prepare` wrote the environments.
        #[arg(long)]
        environments: PathBuf,
        /// The base images' tag (stage 1's `BUILDER_TAG`).
        #[arg(long, env = "BUILDER_TAG")]
        base_tag: String,
        #[arg(long)]
        container: String,
        #[arg(long)]
        arch: String,
        #[arg(long)]
        push: bool,
    },
}

/// What `plan`, `publish` and `build` all read.
#[derive(Debug, clap::Args)]
pub struct Common {
    #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
    config: PathBuf,
    /// The repository with `container_definitions/`.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Where stage 2 left `<arch>/<container>/spack.lock`.
    #[arg(long)]
    lockfiles: PathBuf,
    #[arg(long, env = "CI_COMMIT_REF_SLUG")]
    branch: String,
}

impl Common {
    fn plan_options(self, containers: Vec<String>) -> anyhow::Result<PlanOptions> {
        Ok(PlanOptions {
            config: Config::read(&self.config)?,
            repo: self.repo,
            branch: self.branch,
            lockfiles: self.lockfiles,
            containers,
            concretize: false,
            spack: None,
        })
    }
}

pub enum Run {
    Plan(PlanOptions),
    Build(BuildOptions),
    Publish(PublishOptions),
    Pipeline(PipelineOptions, PathBuf),
}

impl Cli {
    pub fn into_run(self) -> anyhow::Result<(Printer, Run)> {
        let printer = Printer::new(&self.output);
        let quiet = self.output.quiet;
        let run = match self.command {
            Command::Plan {
                common,
                containers,
                concretize,
                spack,
            } => Run::Plan(PlanOptions {
                concretize,
                spack,
                ..common.plan_options(containers)?
            }),
            Command::Pipeline {
                config,
                repo,
                environments,
                lockfiles,
                branch,
                base_tag,
                file,
                tools_image,
            } => {
                let config = Config::read(&config)?;
                let tools_image = tools_image
                    .unwrap_or_else(|| format!("{}/spacktainerizah:latest", config.registry.url));
                Run::Pipeline(
                    PipelineOptions {
                        plan: PlanOptions {
                            config,
                            repo,
                            branch,
                            lockfiles: lockfiles.unwrap_or_else(|| environments.clone()),
                            containers: Vec::new(),
                            concretize: false,
                            spack: None,
                        },
                        environments,
                        base_tag,
                        tools_image,
                    },
                    file,
                )
            }
            Command::Publish {
                common,
                container,
                arch,
            } => Run::Publish(PublishOptions {
                plan: common.plan_options(Vec::new())?,
                container,
                arch,
            }),
            Command::Build {
                common,
                environments,
                base_tag,
                container,
                arch,
                push,
            } => Run::Build(BuildOptions {
                plan: common.plan_options(Vec::new())?,
                container,
                arch,
                environments,
                base_tag,
                push,
                quiet,
            }),
        };
        Ok((printer, run))
    }
}
