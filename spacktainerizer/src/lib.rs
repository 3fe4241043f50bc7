//! Stage 1: the base images (builder, runtime, tools) — planned from the registry's labels,
//! built on a Docker daemon, joined under multi-arch tags, and the child pipeline that does it.
//! The library behind `spacktainerizer`, callable from tests.

pub mod build;
pub mod cli;
pub mod context;
pub mod images;
pub mod index;
pub mod pin;
pub mod pipeline;
pub mod plan;
pub mod tags;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use model::config::Config;
use oci::engine::Engine;
use oci::registry::RegistryClient;
use oci::registry::insecure::Insecure;
use terminal::cli::{OutputOptions, exit};
use terminal::printer::{Printer, table};

pub use crate::context::Context;

/// The project every command works on, as the command line names it: the configuration file
/// (read by [`run`]), the repository with the image folders, the branch, the date of its tag
/// and the tools folders.
#[derive(Debug, Clone)]
pub struct ProjectOptions {
    pub config: PathBuf,
    pub repo: PathBuf,
    pub branch: String,
    /// Today when not given.
    pub date: Option<String>,
    /// Where the tools to put in the images are (`--tools-dir [ARCH=]DIR` values): this
    /// program's own folder, for its own architecture, when none is given.
    pub tools_dirs: Vec<String>,
}

impl ProjectOptions {
    /// What the commands work from, the configuration read.
    fn read(self) -> anyhow::Result<Context> {
        Ok(Context {
            config: Config::read(&self.config)?,
            repo: self.repo,
            branch: self.branch,
            date: self.date.unwrap_or_else(model::config::tag_date_today),
            tools: images::ToolsDirs::parse(&self.tools_dirs)?,
        })
    }
}

/// A command, as plain options.
#[derive(Debug, Clone)]
pub enum Command {
    Plan {
        project: ProjectOptions,
        images: Vec<String>,
    },
    Build {
        project: ProjectOptions,
        image: String,
        arch: String,
        push: bool,
    },
    Index {
        project: ProjectOptions,
        image: String,
    },
    Pipeline {
        project: ProjectOptions,
        out: PathBuf,
        dotenv: Option<PathBuf>,
        tools_image: Option<String>,
    },
    Pin {
        project: ProjectOptions,
        tag: String,
        dotenv: PathBuf,
    },
}

/// Run `command`, printing through a printer made from `output`; the process exit code.
pub fn main(output: &OutputOptions, command: Command) -> ExitCode {
    let printer = Printer::new(output);
    terminal::cli::finish(&printer, run(&printer, command))
}

/// `host[:port]` of the project registry, as image references name it.
pub(crate) fn registry_host(ctx: &Context) -> anyhow::Result<String> {
    let image: oci::registry::ImageRef = format!("{}/x:latest", ctx.config.registry.url).parse()?;
    Ok(image.registry)
}

/// The project registry's client, with its login.
fn project_registry(ctx: &Context) -> anyhow::Result<RegistryClient> {
    Ok(RegistryClient::connect(
        &registry_host(ctx)?,
        ctx.config.registry.login()?,
        &Insecure::from_env_and(ctx.config.insecure_registries()),
    )?)
}

/// Run a command; returns the process exit code. The services (the project registry's client,
/// the Docker daemon) are opened here, once, and only those the command needs.
pub fn run(printer: &Printer, command: Command) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match command {
            Command::Plan { project, images } => {
                let ctx = project.read()?;
                let registry = project_registry(&ctx)?;
                let (specs, _) = ctx.images(&images)?;
                print_plan(printer, &plan::plan(&ctx, &specs, &registry).await?)
            }
            Command::Build {
                project,
                image,
                arch,
                push,
            } => {
                let ctx = project.read()?;
                let engine = Engine::connect().await?;
                let target = build_image(&ctx, &image, &arch, push, &engine, printer).await?;
                printer.data(&format!("{target}\n"))?;
                Ok(exit::SUCCESS)
            }
            Command::Index { project, image } => {
                let ctx = project.read()?;
                let registry = project_registry(&ctx)?;
                let tag = index::index(&ctx, &image, &registry).await?;
                printer.data(&format!("{tag}\n"))?;
                Ok(exit::SUCCESS)
            }
            Command::Pipeline {
                project,
                out,
                dotenv,
                tools_image,
            } => {
                let ctx = project.read()?;
                let registry = project_registry(&ctx)?;
                let (specs, _) = ctx.images(&[])?;
                let decisions = plan::plan(&ctx, &specs, &registry).await?;
                let tools_image = tools_image.unwrap_or_else(|| ctx.config.release_tools_image());
                let (p, env) = pipeline::pipeline(&ctx, &decisions, &tools_image);
                p.check()?;
                write(&out, &p.to_yaml())?;
                if let Some(d) = dotenv {
                    write(&d, &env)?;
                }
                Ok(exit::SUCCESS)
            }
            Command::Pin {
                project,
                tag,
                dotenv,
            } => {
                let ctx = project.read()?;
                let registry = project_registry(&ctx)?;
                let env = pin::pin(&ctx.config, &tag, &registry).await?;
                write(&dotenv, &env)?;
                printer.data(&env)?;
                Ok(exit::SUCCESS)
            }
        }
    })
}

/// Build `image` for `arch` on `engine`, and push it when `push`; its per-architecture tag.
/// The project registry's login is read once: the base images are pulled, and the image
/// pushed, with it.
async fn build_image(
    ctx: &Context,
    image: &str,
    arch: &str,
    push: bool,
    engine: &Engine,
    printer: &Printer,
) -> anyhow::Result<String> {
    let (mut specs, inputs) = ctx.images(&[image.to_string()])?;
    let spec = specs.pop().context("no such image")?;
    let login = ctx.config.registry.login()?;
    let logins: Vec<_> = login
        .iter()
        .map(|l| Ok((registry_host(ctx)?, l.clone())))
        .collect::<anyhow::Result<_>>()?;
    let target = build::build(ctx, &spec, arch, &inputs, &logins, engine, printer).await?;
    if push {
        engine.push(&target, login.as_ref()).await?;
    }
    Ok(target)
}

fn write(path: &Path, content: &str) -> anyhow::Result<()> {
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))
}

/// The plan as a table (or JSON); exit 1 when something needs building, since the plan is a
/// check.
fn print_plan(printer: &Printer, decisions: &[plan::Decision]) -> anyhow::Result<u8> {
    if printer.is_json() {
        printer.json(&decisions)?;
    } else {
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
        printer.data(&table(&["IMAGE", "ARCH", "ACTION", "WHY"], &rows, &[]))?;
    }
    Ok(if decisions.iter().any(|d| d.build) {
        exit::FOUND
    } else {
        exit::SUCCESS
    })
}
