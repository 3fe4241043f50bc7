//! Command-line interface of `singularitah`: clap types turned into the plain options the
//! library takes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use model::env_names;
use stores::{DEFAULT_PART_SIZE, StoreUrl};
use terminal::cli::{EXIT_CODES_HELP, OutputArgs, OutputOptions, S3Args};

use crate::Command;
use crate::sif_build::{SifBuildOptions, SifSource};
use crate::sif_prune::PruneOptions;
use crate::sif_publish::PublishOptions;
use crate::sif_sync::SyncOptions;

#[derive(Debug, Parser)]
#[command(name = "singularitah", version, about = "Singularity images (SIF) of the containers: built from registry images without Singularity, published to buckets, synced to shared directories, pruned.", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// SIF files: made from registry images without Singularity.
    Sif {
        #[command(subcommand)]
        command: CliSifCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CliSifCommand {
    /// Make a SIF of IMAGE (or of a `.def` bootstrapped from a registry image) for one
    /// architecture: its layers applied in order (whiteouts, hard links, symlinks, permissions,
    /// ownership), a gzip squashfs, the image labels plus `--label`s as the metadata
    /// `singularity inspect` shows.
    Build(SifBuildArgs),
    /// Upload a SIF with its checksums (container, lockfile, source image) as object metadata,
    /// skip it when the object already carries them, then remove the container's older SIFs
    /// (same branch and architecture) older than `--keep-days`; the newest always stays.
    Publish(SifPublishArgs),
    /// Bring a directory (a shared filesystem) up to date with the SIFs of a bucket: copy only
    /// those whose checksums differ from what the local SIF records, through a temporary file
    /// renamed into place.
    Sync(SifSyncArgs),
    /// Remove the SIFs of branches the remote no longer has (`git ls-remote --heads --tags`),
    /// by the branch each SIF records, never those of the default branch or of tags.
    PruneBranches(SifPruneBranchesArgs),
}

#[derive(Debug, Args)]
pub struct SifBuildArgs {
    /// The image in a registry (`registry/repository:tag` or `@sha256:…`).
    #[arg(required_unless_present = "def", conflicts_with = "def")]
    pub image: Option<String>,
    /// A Singularity definition (`Bootstrap: docker`); natively its `%labels`,
    /// `%environment`, `%runscript`, `%startscript` and `%help` are applied, while `%post`,
    /// `%files`, `%setup` and `%test` need `--with-singularity`.
    #[arg(long, value_name = "FILE")]
    pub def: Option<PathBuf>,
    /// The SIF file to write (replaced atomically).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// The architecture of the image to take (`amd64`, `arm64`); this machine's by default.
    #[arg(long, default_value = default_arch())]
    pub arch: String,
    /// `KEY=VALUE` added to the labels (the project's checksums); repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Variable holding the registry user (with `--password-env`); anonymous when unset.
    #[arg(long, requires = "password_env")]
    pub user_env: Option<String>,
    /// Variable holding the registry password or token.
    #[arg(long, requires = "user_env")]
    pub password_env: Option<String>,
    /// Read this registry (`host[:port]`) over plain HTTP though it is not on this machine,
    /// as skopeo's `--tls-verify=false`; repeatable (also
    /// `SPACKTAINERIZAH_INSECURE_REGISTRIES`, comma-separated).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Use `apptainer`/`singularity build` (when installed) instead of the native path.
    #[arg(long)]
    pub with_singularity: bool,
    /// The container it is published as; with `--branch`, recorded in its labels (and by
    /// `sif publish` in the object's metadata): retiring and pruning go by that record.
    #[arg(long, requires = "branch")]
    pub container: Option<String>,
    /// The branch slug it is built on (the default branch's too).
    #[arg(long, requires = "container")]
    pub branch: Option<String>,
}

#[derive(Debug, Args)]
pub struct SifPublishArgs {
    /// The SIF file to upload.
    pub file: PathBuf,
    /// `s3://bucket/prefix/NAME__TAG.sif`, `DIR/NAME__TAG.sif`, or ending in `/` to keep
    /// the file's name.
    #[arg(long)]
    pub to: String,
    /// Files larger than this go up in parts of this size (MiB, at least 5).
    #[arg(long, default_value_t = DEFAULT_PART_SIZE >> 20, value_name = "MIB")]
    pub part_size_mib: u64,
    /// Days an older SIF of the same container, branch and architecture is kept.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(0..=36_500))]
    pub keep_days: u64,
    /// Say what would be uploaded and removed; change nothing.
    #[arg(long, env = env_names::DRY_RUN, value_parser = terminal::cli::boolish())]
    pub dry_run: bool,
    #[command(flatten)]
    pub s3: S3Args,
}

#[derive(Debug, Args)]
pub struct SifSyncArgs {
    /// The bucket (`s3://bucket/prefix`) or directory holding the published SIFs.
    #[arg(long, value_parser = terminal::cli::parse_store_url)]
    pub from: StoreUrl,
    /// The directory to bring up to date (a shared filesystem).
    #[arg(long)]
    pub to: PathBuf,
    /// Also remove local SIFs the bucket no longer has.
    #[arg(long)]
    pub delete_removed: bool,
    /// Say what would be copied and removed; change nothing.
    #[arg(long, env = env_names::DRY_RUN, value_parser = terminal::cli::boolish())]
    pub dry_run: bool,
    #[command(flatten)]
    pub s3: S3Args,
}

#[derive(Debug, Args)]
pub struct SifPruneBranchesArgs {
    /// The project's git remote, without credentials in it.
    #[arg(long, env = env_names::CI_PROJECT_URL)]
    pub repo: String,
    /// The default branch, whose SIFs always stay.
    #[arg(long, default_value = "main", env = env_names::CI_DEFAULT_BRANCH)]
    pub default_branch: String,
    /// Buckets (`s3://bucket/prefix`) and directories holding SIFs; repeatable.
    #[arg(long = "in", value_name = "URL", required = true, value_parser = terminal::cli::parse_store_url)]
    pub stores: Vec<StoreUrl>,
    /// HTTP user for a private remote (with `--git-token-env`).
    #[arg(long, default_value = "gitlab-ci-token")]
    pub git_user: String,
    /// Variable holding the token for a private remote (e.g. `CI_JOB_TOKEN`).
    #[arg(long, value_name = "VAR")]
    pub git_token_env: Option<String>,
    /// Say what would be removed; change nothing.
    #[arg(long, env = env_names::DRY_RUN, value_parser = terminal::cli::boolish())]
    pub dry_run: bool,
    #[command(flatten)]
    pub s3: S3Args,
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

impl Cli {
    /// The plain options: no file is read and nothing is run here.
    pub fn into_options(self) -> (OutputOptions, Command) {
        let command = match self.command {
            CliCommand::Sif { command } => match command {
                CliSifCommand::Build(args) => Command::SifBuild(args.into_options()),
                CliSifCommand::Publish(args) => Command::SifPublish(args.into_options()),
                CliSifCommand::Sync(args) => Command::SifSync(args.into_options()),
                CliSifCommand::PruneBranches(args) => Command::SifPrune(args.into_options()),
            },
        };
        (self.output.options(), command)
    }
}

impl SifBuildArgs {
    fn into_options(self) -> SifBuildOptions {
        // Clap requires one of the two.
        let source = match (self.image, self.def) {
            (_, Some(def)) => SifSource::Def(def),
            (image, None) => SifSource::Image(image.unwrap_or_default()),
        };
        SifBuildOptions {
            source,
            arch: self.arch,
            output: self.out,
            labels: self.labels.into_iter().collect::<BTreeMap<_, _>>(),
            login_env: self.user_env.zip(self.password_env),
            insecure_registries: self.insecure_registry,
            with_singularity: self.with_singularity,
            container: self.container,
            branch: self.branch,
        }
    }
}

impl SifPublishArgs {
    fn into_options(self) -> PublishOptions {
        PublishOptions {
            file: self.file,
            to: self.to,
            s3: self.s3.options(),
            part_size: self.part_size_mib << 20,
            keep_days: self.keep_days,
            dry_run: self.dry_run,
        }
    }
}

impl SifSyncArgs {
    fn into_options(self) -> SyncOptions {
        SyncOptions {
            from: self.from,
            to: self.to,
            s3: self.s3.options(),
            delete_removed: self.delete_removed,
            dry_run: self.dry_run,
        }
    }
}

impl SifPruneBranchesArgs {
    fn into_options(self) -> PruneOptions {
        PruneOptions {
            repo: self.repo,
            default_branch: self.default_branch,
            git_login: self.git_token_env.map(|v| (self.git_user, v)),
            stores: self.stores,
            s3: self.s3.options(),
            dry_run: self.dry_run,
        }
    }
}
