//! The library behind `singularitah`: SIF files — built natively from registry images or `.def`
//! files, published to buckets with their checksums, synced to shared directories, pruned.

pub mod cli;
pub mod sif_build;
pub mod sif_prune;
pub mod sif_publish;
pub mod sif_sync;
pub mod skeleton;

use std::process::ExitCode;

use anyhow::Context;
use oci::registry::insecure::Insecure;
use oci::registry::{Login, RegistryClient};
use stores::{S3Options, Store, StoreUrl};
use terminal::cli::{OutputOptions, exit};
use terminal::printer::Printer;

use crate::sif_build::SifBuildOptions;
use crate::sif_prune::PruneOptions;
use crate::sif_publish::PublishOptions;
use crate::sif_sync::SyncOptions;

/// A command, as plain options.
#[derive(Debug, Clone)]
pub enum Command {
    SifBuild(SifBuildOptions),
    SifPublish(PublishOptions),
    SifSync(SyncOptions),
    SifPrune(PruneOptions),
}

/// Run `command`, printing through a printer made from `output`; the process exit code.
pub fn main(output: &OutputOptions, command: Command) -> ExitCode {
    let printer = Printer::new(output);
    terminal::cli::finish(&printer, run(&printer, command))
}

/// Run a command; returns the process exit code. The registry client and the stores a command
/// needs are opened here, once, and handed to it.
pub fn run(printer: &Printer, command: Command) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match command {
            Command::SifBuild(opts) => build(printer, &opts).await,
            Command::SifPublish(opts) => {
                let (url, key) = sif_publish::target(&opts.to, &opts.file)?;
                let store = open(&url, &opts.s3).await?;
                let report = sif_publish::publish(&store, &key, &opts, printer).await?;
                printer.emit(&report, &report.text(&opts))?;
                Ok(())
            }
            Command::SifSync(opts) => {
                let store = open(&opts.from, &opts.s3).await?;
                let report = sif_sync::sync(&store, &opts, printer).await?;
                printer.emit(&report, &report.text(opts.dry_run))?;
                Ok(())
            }
            Command::SifPrune(opts) => {
                let mut stores = Vec::with_capacity(opts.stores.len());
                for url in &opts.stores {
                    if let StoreUrl::Dir(p) = url
                        && !p.is_dir()
                    {
                        anyhow::bail!("{}: not a directory", p.display());
                    }
                    stores.push(open(url, &opts.s3).await?);
                }
                let report = sif_prune::prune(&stores, &opts).await?;
                printer.emit(&report, &report.text(opts.dry_run))?;
                Ok(())
            }
        }
    })?;
    Ok(exit::SUCCESS)
}

/// `sif build`, with the registry client of the source image made here.
async fn build(printer: &Printer, opts: &SifBuildOptions) -> anyhow::Result<()> {
    let source = sif_build::Source::read(opts)?;
    let login = registry_login(opts.login_env.as_ref())?;
    let insecure = Insecure::from_env_and(&opts.insecure_registries);
    let client = RegistryClient::connect(&source.image.registry, login.clone(), &insecure)?;
    let digest = sif_build::build(opts, &source, &client, login.as_ref(), printer).await?;
    printer.log(format!("{} from {digest}", opts.output.display()));
    printer.data(&format!("{}\n", opts.output.display()))?;
    Ok(())
}

/// The registry login the named variables hold, as every tool reads one: used when the user
/// variable is set, anonymous otherwise.
fn registry_login(login_env: Option<&(String, String)>) -> anyhow::Result<Option<Login>> {
    match login_env {
        Some((user_env, secret_env)) => {
            model::config::Credentials::registry_login(Some(&model::config::Credentials {
                user_env: user_env.clone(),
                secret_env: secret_env.clone(),
            }))
            .map_err(anyhow::Error::msg)
        }
        None => Ok(None),
    }
}

async fn open(url: &StoreUrl, s3: &S3Options) -> anyhow::Result<Store> {
    Store::open(url, s3)
        .await
        .with_context(|| format!("opening {url}"))
}
