//! Command-line interface of `singularitah`.

use clap::{Parser, Subcommand};
use common::cli::{EXIT_CODES_HELP, OutputArgs};
use common::printer::Printer;
use spacktainerizer::build::BuildOptions;
use spacktainerizer::cli::{Common, Run};

/// The image this tool builds.
const IMAGE: &str = "singularitah";

#[derive(Debug, Parser)]
#[command(name = "singularitah", version, about = "Builds the Singularity/Apptainer image (with s3cmd) used for SIF work.", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build or skip the singularitah image, per architecture, and why (exit 1 when a build is
    /// needed): image or architecture missing, build files or tool versions changed.
    Plan {
        #[command(flatten)]
        common: Common,
    },
    /// Build the image for one architecture (`--push` to push it).
    Build {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        arch: String,
        #[arg(long)]
        push: bool,
    },
    /// Join the per-architecture tags under the multi-arch tag.
    Index {
        #[command(flatten)]
        common: Common,
    },
}

impl Cli {
    pub fn into_run(self) -> anyhow::Result<(Printer, Run)> {
        let printer = Printer::new(&self.output);
        let quiet = self.output.quiet;
        let run = match self.command {
            Command::Plan { common } => Run::Plan(common.plan_options(vec![IMAGE.into()])?),
            Command::Build { common, arch, push } => {
                let plan = common.plan_options(vec![IMAGE.into()])?;
                let revision = spacktainerizer::build::revision(&plan.repo);
                Run::Build(BuildOptions {
                    plan,
                    image: IMAGE.into(),
                    arch,
                    push,
                    revision,
                    quiet,
                })
            }
            Command::Index { common } => {
                Run::Index(common.plan_options(vec![IMAGE.into()])?, IMAGE.into())
            }
        };
        Ok((printer, run))
    }
}
