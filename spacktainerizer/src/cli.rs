//! Command-line interface of `spacktainerizer`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use common::cli::{EXIT_CODES_HELP, OutputArgs};
use common::config::Config;
use common::env_names;
use common::printer::Printer;

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
        /// Only this image (`builder`, `runtime`, `singularitah`; repeatable).
        #[arg(long = "image")]
        images: Vec<String>,
    },
}

pub enum Run {
    Plan(PlanOptions),
}

impl Cli {
    pub fn into_run(self) -> anyhow::Result<(Printer, Run)> {
        let printer = Printer::new(&self.output);
        Ok((
            printer,
            match self.command {
                Command::Plan {
                    config,
                    repo,
                    branch,
                    date,
                    images,
                } => Run::Plan(PlanOptions {
                    config: Config::read(&config)?,
                    repo,
                    branch,
                    date: date.unwrap_or_else(common::config::tag_date_today),
                    images,
                }),
            },
        ))
    }
}
