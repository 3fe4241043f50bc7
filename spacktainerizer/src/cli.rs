//! Command-line interface of `spacktainerizer`: clap types turned into the plain options the
//! library takes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use model::env_names;
use terminal::cli::{EXIT_CODES_HELP, OutputArgs, OutputOptions};

use crate::{Command, ProjectOptions};

#[derive(Debug, Parser)]
#[command(name = "spacktainerizer", version, about = "Builds the base images: builder, runtime and tools (stage 1).", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// For each base image and architecture: build or skip, and why (image or architecture
    /// missing, build files, Spack commit or tool versions changed), from the registry's labels.
    /// Exit 1 when something needs building.
    Plan {
        #[command(flatten)]
        project: ProjectArgs,
        /// Only this image (`builder`, `runtime`, `tools`; repeatable).
        #[arg(long = "image")]
        images: Vec<String>,
    },
    /// Build one image for one architecture with the labels `plan` compares and the standard
    /// OCI labels; `--push` pushes it under its per-architecture tag.
    Build {
        #[command(flatten)]
        project: ProjectArgs,
        /// The image: `builder`, `runtime` or `tools`.
        #[arg(long)]
        image: String,
        /// The architecture (`amd64`, `arm64`), as the configuration names it.
        #[arg(long)]
        arch: String,
        /// Push it to the project registry once built.
        #[arg(long)]
        push: bool,
    },
    /// Join the per-architecture tags of an image under its multi-arch tag.
    Index {
        #[command(flatten)]
        project: ProjectArgs,
        /// The image: `builder`, `runtime` or `tools`.
        #[arg(long)]
        image: String,
    },
    /// Write the stage-1 child pipeline: jobs only for what `plan` says needs building.
    Pipeline {
        #[command(flatten)]
        project: ProjectArgs,
        /// Where to write the pipeline.
        #[arg(long, alias = "file", value_name = "FILE")]
        out: PathBuf,
        /// Also write `BUILDER_TAG=…` here (a GitLab dotenv report) for later stages.
        #[arg(long, value_name = "FILE")]
        dotenv: Option<PathBuf>,
        /// The image with the Spacktainerizah tools the jobs run in.
        #[arg(long)]
        tools_image: Option<String>,
    },
    /// Resolve the base images at a tag to their digests now, and write them as a dotenv
    /// report (`BUILDER_IMAGE`, `RUNTIME_IMAGE`, `TOOLS_IMAGE`): the later jobs of a pipeline
    /// run the images it built, whatever another pipeline pushes meanwhile.
    Pin {
        #[command(flatten)]
        project: ProjectArgs,
        /// The base images' tag (stage 1's `BUILDER_TAG`).
        #[arg(long, env = env_names::BUILDER_TAG)]
        tag: String,
        /// Where to write the dotenv report.
        #[arg(long, value_name = "FILE")]
        dotenv: PathBuf,
    },
}

/// The project every command works on.
#[derive(Debug, clap::Args)]
pub struct ProjectArgs {
    /// The configuration file.
    #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
    config: PathBuf,
    /// The repository holding the image folders.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The branch slug; the default branch gets the default-branch tag.
    #[arg(long, env = env_names::CI_COMMIT_REF_SLUG)]
    branch: String,
    /// Date of branch tags, `YYYY.MM.DD` (today when not given).
    #[arg(long)]
    date: Option<String>,
    /// The tools the tools image and the builder get: `ARCH=DIR` for an architecture's tools
    /// (`arm64=target/aarch64-unknown-linux-gnu/release`; repeatable, or separated by commas as
    /// the variable holds several), a plain `DIR` for the
    /// architecture its executables are built for (read from them). Not given: this program's
    /// own folder, for its own architecture. For an architecture without tools, `plan` says
    /// its builder and tools images need building (and why), and `build` refuses to make them.
    #[arg(long = "tools-dir", value_name = "[ARCH=]DIR", env = env_names::TOOLS_DIR, value_delimiter = ',')]
    tools_dirs: Vec<String>,
}

impl From<ProjectArgs> for ProjectOptions {
    fn from(a: ProjectArgs) -> Self {
        ProjectOptions {
            config: a.config,
            repo: a.repo,
            branch: a.branch,
            date: a.date,
            tools_dirs: a.tools_dirs,
        }
    }
}

impl Cli {
    /// The plain options: no file is read and nothing is run here.
    pub fn into_options(self) -> (OutputOptions, Command) {
        let command = match self.command {
            CliCommand::Plan { project, images } => Command::Plan {
                project: project.into(),
                images,
            },
            CliCommand::Build {
                project,
                image,
                arch,
                push,
            } => Command::Build {
                project: project.into(),
                image,
                arch,
                push,
            },
            CliCommand::Index { project, image } => Command::Index {
                project: project.into(),
                image,
            },
            CliCommand::Pipeline {
                project,
                out,
                dotenv,
                tools_image,
            } => Command::Pipeline {
                project: project.into(),
                out,
                dotenv,
                tools_image,
            },
            CliCommand::Pin {
                project,
                tag,
                dotenv,
            } => Command::Pin {
                project: project.into(),
                tag,
                dotenv,
            },
        };
        (self.output.options(), command)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, CliCommand};

    #[test]
    fn tools_dirs_come_repeated_or_separated_by_commas() {
        let cli = Cli::try_parse_from([
            "spacktainerizer",
            "plan",
            "--branch",
            "main",
            "--tools-dir",
            "amd64=dist/amd64,arm64=dist/arm64",
            "--tools-dir",
            "dist/other",
        ])
        .unwrap();
        let CliCommand::Plan { project, .. } = cli.command else {
            panic!("not plan");
        };
        assert_eq!(
            project.tools_dirs,
            ["amd64=dist/amd64", "arm64=dist/arm64", "dist/other"]
        );
    }
}
