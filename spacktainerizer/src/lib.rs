//! Stage 1: the base images (builder, runtime, tools) — planned from the registry's labels,
//! built on a Docker daemon, joined under multi-arch tags, and the child pipeline that does it.
//! The library behind `spacktainerizer`, callable from tests.

pub mod build;
pub mod cli;
pub mod images;
pub mod index;
pub mod pin;
pub mod pipeline;
pub mod plan;
pub mod tags;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use model::config::Config;
use oci::engine::Engine;
use oci::registry::RegistryClient;
use oci::registry::insecure::Insecure;
use terminal::cli::{OutputOptions, exit};
use terminal::printer::{Printer, table};

/// What every command works from.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Config,
    /// The repository holding the image folders.
    pub repo: PathBuf,
    /// The branch slug; the default branch gets the default-branch tag.
    pub branch: String,
    /// `YYYY.MM.DD` of branch tags.
    pub date: String,
    /// The folder the tools images and builders get their tools from.
    pub tools_dir: PathBuf,
}

impl Context {
    /// The base images' tag on this branch.
    pub fn tag(&self) -> String {
        tags::tag(&self.config, &self.branch, &self.date)
    }

    /// What the images are made from: the Spack trees (only resolved when `spack`), the
    /// tools.
    pub fn inputs(&self, spack: bool) -> anyhow::Result<images::Inputs> {
        let base = &self.config.base_images;
        let tree = |s, what| images::SpackTree::resolve(&self.repo, s, what);
        Ok(images::Inputs {
            spack: spack
                .then(|| tree(&base.spack, "base_images.spack"))
                .transpose()?,
            spack_packages: match (&base.spack_packages, spack) {
                (Some(p), true) => Some(tree(p, "base_images.spack_packages")?),
                _ => None,
            },
            tools: images::tools_checksum(&self.tools_dir)?,
        })
    }

    /// The images `wanted` (all when empty), with their inputs.
    pub fn images(
        &self,
        wanted: &[String],
    ) -> anyhow::Result<(Vec<images::ImageSpec>, images::Inputs)> {
        let mut resolved = None;
        let on_default = self.branch == self.config.default_branch;
        let specs = images::images(&self.repo, &self.config, wanted, on_default, |spack| {
            let inputs = self.inputs(spack)?;
            resolved = Some(inputs.clone());
            Ok(inputs)
        })?;
        Ok((specs, resolved.context("the images' inputs")?))
    }
}

/// Where the configuration and images are, and for which branch.
#[derive(Debug, Clone)]
pub struct Common {
    pub config: PathBuf,
    pub repo: PathBuf,
    pub branch: String,
    /// Today when not given.
    pub date: Option<String>,
    /// The folder of the tools to put in the images: this program's own when not given.
    pub tools_dir: Option<PathBuf>,
}

/// A command, as plain options.
#[derive(Debug, Clone)]
pub enum Command {
    Plan {
        common: Common,
        images: Vec<String>,
    },
    Build {
        common: Common,
        image: String,
        arch: String,
        push: bool,
    },
    Index {
        common: Common,
        image: String,
    },
    Pipeline {
        common: Common,
        out: PathBuf,
        dotenv: Option<PathBuf>,
        tools_image: Option<String>,
    },
    Pin {
        common: Common,
        tag: String,
        dotenv: PathBuf,
    },
}

/// Run `command`, printing through a printer made from `output`; the process exit code.
pub fn main(output: &OutputOptions, command: Command) -> ExitCode {
    let printer = Printer::new(output);
    terminal::cli::finish(&printer, run(&printer, command))
}

fn context(common: Common) -> anyhow::Result<Context> {
    Ok(Context {
        config: Config::read(&common.config)?,
        repo: common.repo,
        branch: common.branch,
        date: common.date.unwrap_or_else(model::config::tag_date_today),
        tools_dir: match common.tools_dir {
            Some(d) => d,
            None => images::tools_dir()?,
        },
    })
}

/// `host[:port]` of the project registry, as image references name it.
fn registry_host(ctx: &Context) -> anyhow::Result<String> {
    let image: oci::registry::ImageRef = format!("{}/x:latest", ctx.config.registry.url).parse()?;
    Ok(image.registry)
}

/// The project registry's client, with its login.
fn registry(ctx: &Context) -> anyhow::Result<RegistryClient> {
    Ok(RegistryClient::connect(
        &registry_host(ctx)?,
        ctx.config.registry.login()?,
        &Insecure::from_env_and(ctx.config.insecure_registries()),
    )?)
}

/// Run a command; returns the process exit code.
pub fn run(printer: &Printer, command: Command) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match command {
            Command::Plan { common, images } => {
                let ctx = context(common)?;
                let (specs, _) = ctx.images(&images)?;
                let decisions = plan::plan(&ctx, &specs, &registry(&ctx)?).await?;
                print_plan(printer, &decisions)?;
                // The plan is a check: work to do is exit 1.
                Ok(if decisions.iter().any(|d| d.build) {
                    exit::FOUND
                } else {
                    exit::SUCCESS
                })
            }
            Command::Build {
                common,
                image,
                arch,
                push,
            } => {
                let ctx = context(common)?;
                let (mut specs, inputs) = ctx.images(std::slice::from_ref(&image))?;
                let spec = specs.pop().context("no such image")?;
                let engine = Engine::connect().await?;
                // Read once: the base images are pulled, and the image pushed, with it.
                let login = ctx.config.registry.login()?;
                let logins: Vec<_> = login
                    .iter()
                    .map(|l| Ok((registry_host(&ctx)?, l.clone())))
                    .collect::<anyhow::Result<_>>()?;
                let target =
                    build::build(&ctx, &spec, &arch, &inputs, &logins, &engine, printer).await?;
                if push {
                    engine.push(&target, login.as_ref()).await?;
                }
                printer.data(&format!("{target}\n"))?;
                Ok(exit::SUCCESS)
            }
            Command::Index { common, image } => {
                let ctx = context(common)?;
                let tag = index::index(&ctx, &image, &registry(&ctx)?).await?;
                printer.data(&format!("{tag}\n"))?;
                Ok(exit::SUCCESS)
            }
            Command::Pipeline {
                common,
                out,
                dotenv,
                tools_image,
            } => {
                let ctx = context(common)?;
                let (specs, _) = ctx.images(&[])?;
                let decisions = plan::plan(&ctx, &specs, &registry(&ctx)?).await?;
                let tools_image = tools_image.unwrap_or_else(|| ctx.config.release_tools_image());
                let (p, env) = pipeline::pipeline(&ctx, &decisions, &tools_image);
                p.check()?;
                std::fs::write(&out, p.to_yaml())
                    .with_context(|| format!("writing {}", out.display()))?;
                if let Some(d) = dotenv {
                    std::fs::write(&d, env).with_context(|| format!("writing {}", d.display()))?;
                }
                Ok(exit::SUCCESS)
            }
            Command::Pin {
                common,
                tag,
                dotenv,
            } => {
                let ctx = context(common)?;
                let env = pin::pin(&ctx.config, &tag, &registry(&ctx)?).await?;
                std::fs::write(&dotenv, &env)
                    .with_context(|| format!("writing {}", dotenv.display()))?;
                printer.data(&env)?;
                Ok(exit::SUCCESS)
            }
        }
    })
}

fn print_plan(printer: &Printer, decisions: &[plan::Decision]) -> std::io::Result<()> {
    if printer.is_json() {
        return printer.json(&decisions);
    }
    let rows: Vec<Vec<String>> = decisions
        .iter()
        .map(|d| {
            vec![
                d.image.clone(),
                d.arch.clone(),
                if d.build { "build" } else { "skip" }.into(),
                d.reason.clone(),
            ]
        })
        .collect();
    printer.data(&table(&["IMAGE", "ARCH", "ACTION", "WHY"], &rows, &[]))
}
