//! Command-line interface of `singularitah`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use clap::{Parser, Subcommand};
use common::cli::{EXIT_CODES_HELP, OutputArgs};
use common::printer::Printer;
use spacktainerizer::build::BuildOptions;
use spacktainerizer::cli::Common;

use crate::sif_build::SifBuildOptions;

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
    /// SIF files: made from registry images without Singularity.
    Sif {
        #[command(subcommand)]
        command: SifCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SifCommand {
    /// Make a SIF of IMAGE for one architecture: its layers applied in order (whiteouts, hard
    /// links, symlinks, permissions, ownership), a gzip squashfs, the image labels plus
    /// `--label`s as the metadata `singularity inspect` shows.
    Build {
        /// The image in a registry (`registry/repository:tag` or `@sha256:…`).
        image: String,
        /// The SIF file to write (replaced atomically).
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        #[arg(long, default_value = default_arch())]
        arch: String,
        /// `KEY=VALUE` added to the labels (the project's checksums); repeatable.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Variable holding the registry user (with `--password-env`).
        #[arg(long, requires = "password_env")]
        user_env: Option<String>,
        /// Variable holding the registry password or token.
        #[arg(long, requires = "user_env")]
        password_env: Option<String>,
        /// Use `apptainer`/`singularity build` (when installed) instead of the native path.
        #[arg(long)]
        with_singularity: bool,
    },
}

/// This machine's architecture, by its OCI name.
fn default_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

pub enum Run {
    Image(Box<spacktainerizer::cli::Run>),
    SifBuild(SifBuildOptions),
}

impl Cli {
    pub fn into_run(self) -> anyhow::Result<(Printer, Run)> {
        let printer = Printer::new(&self.output);
        let quiet = self.output.quiet;
        let run = match self.command {
            Command::Sif {
                command:
                    SifCommand::Build {
                        image,
                        out,
                        arch,
                        labels,
                        user_env,
                        password_env,
                        with_singularity,
                    },
            } => {
                let mut parsed = BTreeMap::new();
                for l in labels {
                    let Some((k, v)) = l.split_once('=') else {
                        bail!("--label {l}: expected KEY=VALUE");
                    };
                    parsed.insert(k.to_string(), v.to_string());
                }
                Run::SifBuild(SifBuildOptions {
                    image,
                    arch,
                    output: out,
                    labels: parsed,
                    login_env: user_env.zip(password_env),
                    with_singularity,
                })
            }
            Command::Plan { common } => Run::Image(Box::new(spacktainerizer::cli::Run::Plan(
                common.plan_options(vec![IMAGE.into()])?,
            ))),
            Command::Build { common, arch, push } => {
                let plan = common.plan_options(vec![IMAGE.into()])?;
                let revision = spacktainerizer::build::revision(&plan.repo);
                Run::Image(Box::new(spacktainerizer::cli::Run::Build(BuildOptions {
                    plan,
                    image: IMAGE.into(),
                    arch,
                    push,
                    revision,
                    quiet,
                })))
            }
            Command::Index { common } => Run::Image(Box::new(spacktainerizer::cli::Run::Index(
                common.plan_options(vec![IMAGE.into()])?,
                IMAGE.into(),
            ))),
        };
        Ok((printer, run))
    }
}
