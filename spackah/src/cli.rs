//! Command-line interface of `spackah`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use model::env_names;
use terminal::cli::{EXIT_CODES_HELP, OutputArgs, OutputOptions};

use crate::provenance::{ProvenanceOptions, Target};
use crate::{
    BuildCommand, Command, IndexCommand, Pinned, PipelineCommand, PlanCommand, ProjectOptions,
    PublishCommand,
};

#[derive(Debug, Parser)]
#[command(name = "spackah", version, about = "Builds and publishes one container image per container definition (stage 3).", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// For each container and architecture: what needs work (image, SIF, public hub), and why.
    /// Spack containers are tagged with the main package's version from their lockfile and
    /// rebuilt when the registry lacks the tag or holds another lockfile or definition checksum;
    /// their SIF is remade when the containers bucket lacks it with the same checksums; `.def`
    /// containers when their source image or definition changed since their SIF was published.
    /// Exit 1 when something needs work.
    Plan {
        #[command(flatten)]
        project: ProjectArgs,
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
        /// The configuration file.
        #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
        config: PathBuf,
        /// The repository with `container_definitions/`.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Where `spack-cacher prepare` wrote the environments (the jobs read them there too).
        #[arg(long)]
        environments: PathBuf,
        /// Where stage 2 left `<arch>/<container>/spack.lock` (default: the environments).
        #[arg(long)]
        lockfiles: Option<PathBuf>,
        /// The branch slug.
        #[arg(long, env = env_names::CI_COMMIT_REF_SLUG)]
        branch: String,
        /// The base images' tag (stage 1's `BUILDER_TAG`).
        #[arg(long, env = env_names::BUILDER_TAG)]
        base_tag: String,
        /// Where to write the pipeline.
        #[arg(long, alias = "file", value_name = "FILE")]
        out: PathBuf,
        /// The image with the Spacktainerizah tools the jobs run in (default: the branch's
        /// tools image, `<registry>/tools:<base tag>`).
        #[arg(long, env = env_names::TOOLS_IMAGE)]
        tools_image: Option<String>,
        #[command(flatten)]
        pinned: PinnedArgs,
        /// The job writing the pipeline, whose artifacts hold it: a pipeline too large for one
        /// file is split into parts its first job takes from there.
        #[arg(long, env = env_names::CI_JOB_NAME, default_value = "generate containers")]
        artifacts_job: String,
    },
    /// Copy a built container to the public hub: on the default branch only, when the public
    /// repository exists and lacks the tag or holds other checksums.
    Publish {
        #[command(flatten)]
        project: ProjectArgs,
        /// The container, as its definition names it.
        #[arg(long)]
        container: String,
        /// The architecture (`amd64`, `arm64`).
        #[arg(long)]
        arch: String,
    },
    /// Build one Spack container for one architecture on the branch's builder and runtime
    /// images, with the labels `plan` compares; `--push` pushes it.
    Build {
        #[command(flatten)]
        project: ProjectArgs,
        /// Where `spack-cacher prepare` wrote the environments.
        #[arg(long)]
        environments: PathBuf,
        /// The base images' tag (stage 1's `BUILDER_TAG`).
        #[arg(long, env = env_names::BUILDER_TAG)]
        base_tag: String,
        /// The container, as its definition names it.
        #[arg(long)]
        container: String,
        /// The architecture (`amd64`, `arm64`).
        #[arg(long)]
        arch: String,
        /// Push it to the project registry once built.
        #[arg(long)]
        push: bool,
        #[command(flatten)]
        pinned: PinnedArgs,
    },
    /// Join a Spack container's per-architecture images (`<tag>-<arch>`, each already in the
    /// project registry) under their multi-arch tag (`<tag>`), one per version the lockfiles
    /// name; prints each tag written.
    Index {
        #[command(flatten)]
        project: ProjectArgs,
        /// The container, as its definitions name it.
        #[arg(long)]
        container: String,
    },
    /// List the SBOM and provenance of an image (the OCI referrers attached to its manifest, or
    /// to each manifest of a multi-arch index) or of a SIF (its data objects): kind, artifact
    /// type, digest and size of each document. Exit 1 when there is none.
    Provenance {
        /// An image (`registry/repository:tag` or `…@sha256:…`), or the path of a `.sif` file.
        #[arg(value_name = "IMAGE|SIF", value_parser = Target::parse)]
        target: Target,
        /// Write each document into DIR (made when missing) under its file name
        /// (`sbom.spdx.json`, `provenance.intoto.json`; prefixed with the start of its digest
        /// when a kind comes more than once).
        #[arg(long, value_name = "DIR")]
        extract: Option<PathBuf>,
    },
}

/// The base images pinned by digest (stage 1's `spacktainerizer pin`): used instead of the
/// tag, which another pipeline may move meanwhile.
#[derive(Debug, clap::Args)]
pub struct PinnedArgs {
    /// The builder image, `<registry>/builder@sha256:…` (default: at the base tag).
    #[arg(long, env = env_names::BUILDER_IMAGE)]
    builder_image: Option<String>,
    /// The runtime image, `<registry>/runtime@sha256:…` (default: at the base tag).
    #[arg(long, env = env_names::RUNTIME_IMAGE)]
    runtime_image: Option<String>,
}

impl From<PinnedArgs> for Pinned {
    fn from(a: PinnedArgs) -> Self {
        Pinned {
            builder: a.builder_image,
            runtime: a.runtime_image,
        }
    }
}

/// The project `plan`, `publish` and `build` work on (`pipeline` takes the same options, its
/// lockfiles by default where the environments are).
#[derive(Debug, clap::Args)]
pub struct ProjectArgs {
    /// The configuration file.
    #[arg(long, env = env_names::CONFIG, default_value = "spacktainerizah.yaml")]
    config: PathBuf,
    /// The repository with `container_definitions/`.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Where stage 2 left `<arch>/<container>/spack.lock`.
    #[arg(long)]
    lockfiles: PathBuf,
    /// The branch slug; the default branch gets the plain version tags and the hub.
    #[arg(long, env = env_names::CI_COMMIT_REF_SLUG)]
    branch: String,
}

impl From<ProjectArgs> for ProjectOptions {
    fn from(c: ProjectArgs) -> ProjectOptions {
        ProjectOptions {
            config: c.config,
            repo: c.repo,
            lockfiles: c.lockfiles,
            branch: c.branch,
        }
    }
}

impl Cli {
    /// The plain options: no file is read and nothing is run here.
    pub fn into_options(self) -> (OutputOptions, Command) {
        let command = match self.command {
            CliCommand::Plan {
                project,
                containers,
                concretize,
                spack,
            } => Command::Plan(PlanCommand {
                project: project.into(),
                containers,
                concretize,
                spack,
            }),
            CliCommand::Pipeline {
                config,
                repo,
                environments,
                lockfiles,
                branch,
                base_tag,
                out,
                tools_image,
                pinned,
                artifacts_job,
            } => Command::Pipeline(PipelineCommand {
                project: ProjectOptions {
                    config,
                    repo,
                    lockfiles: lockfiles.unwrap_or_else(|| environments.clone()),
                    branch,
                },
                environments,
                base_tag,
                out,
                tools_image,
                pinned: pinned.into(),
                artifacts_job,
            }),
            CliCommand::Publish {
                project,
                container,
                arch,
            } => Command::Publish(PublishCommand {
                project: project.into(),
                container,
                arch,
            }),
            CliCommand::Index { project, container } => Command::Index(IndexCommand {
                project: project.into(),
                container,
            }),
            CliCommand::Build {
                project,
                environments,
                base_tag,
                container,
                arch,
                push,
                pinned,
            } => Command::Build(BuildCommand {
                project: project.into(),
                environments,
                base_tag,
                container,
                arch,
                push,
                pinned: pinned.into(),
            }),
            CliCommand::Provenance { target, extract } => {
                Command::Provenance(ProvenanceOptions { target, extract })
            }
        };
        (self.output.options(), command)
    }
}
