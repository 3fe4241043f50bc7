//! Command-line interface of `spacktainerizer`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::cli::{EXIT_CODES_HELP, OutputArgs};
use common::config::Config;
use common::env_names;
use common::printer::Printer;

use crate::build::BuildOptions;
use crate::plan::PlanOptions;

#[derive(Debug, Parser)]
#[command(name = "spacktainerizer", version, about = "Builds the builder and runtime base images (stage 1).", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// For each base image and architecture: build or skip, and why (image or architecture
    /// missing, build files, Spack commit or tool versions changed), from the registry's labels.
    /// Exit 1 when something needs building.
    Plan {
        #[command(flatten)]
        common: Common,
        /// Only this image (`builder`, `runtime`, `singularitah`; repeatable).
        #[arg(long = "image")]
        images: Vec<String>,
    },
    /// Build one image for one architecture with the labels `plan` compares and the standard
    /// OCI labels; `--push` pushes it under its per-architecture tag.
    Build {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        image: String,
        #[arg(long)]
        arch: String,
        #[arg(long)]
        push: bool,
    },
    /// Join the per-architecture tags of an image under its multi-arch tag.
    Index {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        image: String,
    },
    /// Write the stage-1 child pipeline: jobs only for what `plan` says needs building.
    Pipeline {
        #[command(flatten)]
        common: Common,
        /// Where to write the pipeline.
        #[arg(long)]
        file: PathBuf,
        /// Also write `BUILDER_TAG=…` here (a GitLab dotenv report) for later stages.
        #[arg(long)]
        dotenv: Option<PathBuf>,
        /// The image with the Spacktainerizah tools the jobs run in.
        #[arg(long)]
        tools_image: Option<String>,
    },
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
    config: PathBuf,
    /// The repository holding the image folders.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The branch slug; the default branch gets the default-branch tag.
    #[arg(long, env = "CI_COMMIT_REF_SLUG")]
    branch: String,
    /// Date of branch tags, `YYYY.MM.DD` (today when not given).
    #[arg(long)]
    date: Option<String>,
}

impl Common {
    pub fn plan_options(self, images: Vec<String>) -> anyhow::Result<PlanOptions> {
        Ok(PlanOptions {
            config: Config::read(&self.config)?,
            repo: self.repo,
            branch: self.branch,
            date: self.date.unwrap_or_else(common::config::tag_date_today),
            images,
        })
    }
}

pub enum Run {
    Plan(PlanOptions),
    Build(BuildOptions),
    Index(PlanOptions, String),
    Pipeline {
        plan: PlanOptions,
        file: PathBuf,
        dotenv: Option<PathBuf>,
        tools_image: String,
    },
}

impl Cli {
    pub fn into_run(self) -> anyhow::Result<(Printer, Run)> {
        let printer = Printer::new(&self.output);
        let quiet = self.output.quiet;
        Ok((
            printer,
            match self.command {
                Command::Plan { common, images } => Run::Plan(common.plan_options(images)?),
                Command::Build {
                    common,
                    image,
                    arch,
                    push,
                } => {
                    let plan = common.plan_options(vec![image.clone()])?;
                    let revision = crate::build::revision(&plan.repo);
                    Run::Build(BuildOptions {
                        plan,
                        image,
                        arch,
                        push,
                        revision,
                        quiet,
                    })
                }
                Command::Index { common, image } => {
                    Run::Index(common.plan_options(vec![image.clone()])?, image)
                }
                Command::Pipeline {
                    common,
                    file,
                    dotenv,
                    tools_image,
                } => {
                    let plan = common.plan_options(Vec::new())?;
                    let tools_image = tools_image.unwrap_or_else(|| {
                        format!("{}/spacktainerizah:latest", plan.config.registry.url)
                    });
                    Run::Pipeline {
                        plan,
                        file,
                        dotenv,
                        tools_image,
                    }
                }
            },
        ))
    }
}
