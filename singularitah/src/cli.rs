//! Command-line interface of `singularitah`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use model::env_names;
use stores::{DEFAULT_PART_SIZE, StoreUrl};
use terminal::cli::{EXIT_CODES_HELP, OutputArgs, OutputOptions, S3Args};

use crate::sif_build::{SifBuildOptions, SifSource};
use crate::sif_prune::PruneOptions;
use crate::sif_publish::PublishOptions;
use crate::sif_sync::SyncOptions;

#[derive(Debug, Parser)]
#[command(name = "singularitah", version, about = "Singularity images (SIF) of the containers: built from registry images without Singularity, published to buckets, synced to shared directories, pruned.", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// SIF files: made from registry images without Singularity.
    Sif {
        #[command(subcommand)]
        command: SifCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SifCommand {
    /// Make a SIF of IMAGE (or of a `.def` bootstrapped from a registry image) for one
    /// architecture: its layers applied in order (whiteouts, hard links, symlinks, permissions,
    /// ownership), a gzip squashfs, the image labels plus `--label`s as the metadata
    /// `singularity inspect` shows.
    Build {
        /// The image in a registry (`registry/repository:tag` or `@sha256:…`).
        #[arg(required_unless_present = "def", conflicts_with = "def")]
        image: Option<String>,
        /// A Singularity definition (`Bootstrap: docker`); natively its `%labels`,
        /// `%environment`, `%runscript`, `%startscript` and `%help` are applied, while `%post`,
        /// `%files`, `%setup` and `%test` need `--with-singularity`.
        #[arg(long, value_name = "FILE")]
        def: Option<PathBuf>,
        /// The SIF file to write (replaced atomically).
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        /// The architecture of the image to take (`amd64`, `arm64`); this machine's by default.
        #[arg(long, default_value = default_arch())]
        arch: String,
        /// `KEY=VALUE` added to the labels (the project's checksums); repeatable.
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Variable holding the registry user (with `--password-env`); anonymous when unset.
        #[arg(long, requires = "password_env")]
        user_env: Option<String>,
        /// Variable holding the registry password or token.
        #[arg(long, requires = "user_env")]
        password_env: Option<String>,
        /// Read this registry (`host[:port]`) over plain HTTP though it is not on this machine,
        /// as skopeo's `--tls-verify=false`; repeatable (also
        /// `SPACKTAINERIZAH_INSECURE_REGISTRIES`, comma-separated).
        #[arg(long, value_name = "HOST[:PORT]")]
        insecure_registry: Vec<String>,
        /// Use `apptainer`/`singularity build` (when installed) instead of the native path.
        #[arg(long)]
        with_singularity: bool,
        /// The container it is published as; with `--branch`, recorded in its labels (and by
        /// `sif publish` in the object's metadata): retiring and pruning go by that record.
        #[arg(long, requires = "branch")]
        container: Option<String>,
        /// The branch slug it is built on (the default branch's too).
        #[arg(long, requires = "container")]
        branch: Option<String>,
    },
    /// Upload a SIF with its checksums (container, lockfile, source image) as object metadata,
    /// skip it when the object already carries them, then remove the container's older SIFs
    /// (same branch and architecture) older than `--keep-days`; the newest always stays.
    Publish {
        /// The SIF file to upload.
        file: PathBuf,
        /// `s3://bucket/prefix/NAME__TAG.sif`, `DIR/NAME__TAG.sif`, or ending in `/` to keep
        /// the file's name.
        #[arg(long)]
        to: String,
        /// Files larger than this go up in parts of this size (MiB, at least 5).
        #[arg(long, default_value_t = DEFAULT_PART_SIZE >> 20, value_name = "MIB")]
        part_size_mib: u64,
        /// Days an older SIF of the same container, branch and architecture is kept.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(0..=36_500))]
        keep_days: u64,
        /// Say what would be uploaded and removed; change nothing.
        #[arg(long, env = env_names::DRY_RUN, value_parser = terminal::cli::boolish())]
        dry_run: bool,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Bring a directory (a shared filesystem) up to date with the SIFs of a bucket: copy only
    /// those whose checksums differ from what the local SIF records, through a temporary file
    /// renamed into place.
    Sync {
        /// The bucket (`s3://bucket/prefix`) or directory holding the published SIFs.
        #[arg(long, value_parser = terminal::cli::parse_store_url)]
        from: StoreUrl,
        /// The directory to bring up to date (a shared filesystem).
        #[arg(long)]
        to: PathBuf,
        /// Also remove local SIFs the bucket no longer has.
        #[arg(long)]
        delete_removed: bool,
        /// Say what would be copied and removed; change nothing.
        #[arg(long, env = env_names::DRY_RUN, value_parser = terminal::cli::boolish())]
        dry_run: bool,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Remove SIFs (`NAME__VERSION__BRANCH.sif`) of branches the remote no longer has
    /// (`git ls-remote --heads --tags`), never those of the default branch or of tags.
    PruneBranches {
        /// The project's git remote, without credentials in it.
        #[arg(long, env = env_names::CI_PROJECT_URL)]
        repo: String,
        /// The default branch, whose SIFs always stay.
        #[arg(long, default_value = "main", env = env_names::CI_DEFAULT_BRANCH)]
        default_branch: String,
        /// Buckets (`s3://bucket/prefix`) and directories holding SIFs; repeatable.
        #[arg(long = "in", value_name = "URL", required = true, value_parser = terminal::cli::parse_store_url)]
        stores: Vec<StoreUrl>,
        /// HTTP user for a private remote (with `--git-token-env`).
        #[arg(long, default_value = "gitlab-ci-token")]
        git_user: String,
        /// Variable holding the token for a private remote (e.g. `CI_JOB_TOKEN`).
        #[arg(long, value_name = "VAR")]
        git_token_env: Option<String>,
        /// Say what would be removed; change nothing.
        #[arg(long, env = env_names::DRY_RUN, value_parser = terminal::cli::boolish())]
        dry_run: bool,
        #[command(flatten)]
        s3: S3Args,
    },
}

/// `KEY=VALUE`.
fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}`: expected KEY=VALUE"))
}

/// This machine's architecture, by its OCI name.
fn default_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// A command, as plain options.
#[derive(Debug, Clone)]
pub enum Run {
    SifBuild(SifBuildOptions),
    SifPublish(PublishOptions),
    SifSync(SyncOptions),
    SifPrune(PruneOptions),
}

impl Cli {
    /// The plain options: no file is read and nothing is run here.
    pub fn into_options(self) -> (OutputOptions, Run) {
        let run = match self.command {
            Command::Sif {
                command:
                    SifCommand::Build {
                        image,
                        def,
                        out,
                        arch,
                        labels,
                        user_env,
                        password_env,
                        insecure_registry,
                        with_singularity,
                        container,
                        branch,
                    },
            } => {
                let parsed: BTreeMap<String, String> = labels.into_iter().collect();
                // Clap requires one of the two.
                let source = match (image, def) {
                    (_, Some(def)) => SifSource::Def(def),
                    (image, None) => SifSource::Image(image.unwrap_or_default()),
                };
                Run::SifBuild(SifBuildOptions {
                    source,
                    arch,
                    output: out,
                    labels: parsed,
                    login_env: user_env.zip(password_env),
                    insecure_registries: insecure_registry,
                    with_singularity,
                    container,
                    branch,
                })
            }
            Command::Sif {
                command:
                    SifCommand::Publish {
                        file,
                        to,
                        part_size_mib,
                        keep_days,
                        dry_run,
                        s3,
                    },
            } => Run::SifPublish(PublishOptions {
                file,
                to,
                s3: s3.options(),
                part_size: part_size_mib << 20,
                keep_days,
                dry_run,
            }),
            Command::Sif {
                command:
                    SifCommand::Sync {
                        from,
                        to,
                        delete_removed,
                        dry_run,
                        s3,
                    },
            } => Run::SifSync(SyncOptions {
                from,
                to,
                s3: s3.options(),
                delete_removed,
                dry_run,
            }),
            Command::Sif {
                command:
                    SifCommand::PruneBranches {
                        repo,
                        default_branch,
                        stores,
                        git_user,
                        git_token_env,
                        dry_run,
                        s3,
                    },
            } => Run::SifPrune(PruneOptions {
                repo,
                default_branch,
                git_login: git_token_env.map(|v| (git_user, v)),
                stores,
                s3: s3.options(),
                dry_run,
            }),
        };
        (self.output.options(), run)
    }
}
