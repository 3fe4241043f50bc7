//! Stage 3: one image per container definition from the builder and runtime images, tagged
//! from the main package's version, skipped when the registry already holds the same lockfile
//! and definition; its SIF, the public hub, and the child pipeline that does it. The library
//! behind `spackah`, callable from tests.

pub mod build;
pub mod cli;
pub mod concretize;
pub mod context;
pub mod dockerfile;
pub mod hub;
pub mod image;
pub mod pipeline;
pub mod plan;
pub mod publish;
pub mod split;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use model::config::Config;
use oci::engine::Engine;
use terminal::cli::{OutputOptions, exit};
use terminal::printer::{Printer, table};

use crate::build::BuildOptions;
use crate::image::Project;
use crate::pipeline::PipelineOptions;
use crate::plan::{ContainerKind, PlanOptions, Services};
use crate::publish::PublishOptions;

/// What every command reads: the configuration file (read by [`run`]), the repository with
/// `container_definitions/`, where stage 2 left the lockfiles, the branch slug.
#[derive(Debug, Clone)]
pub struct Place {
    pub config: PathBuf,
    pub repo: PathBuf,
    pub lockfiles: PathBuf,
    pub branch: String,
}

impl Place {
    /// The project, its configuration read.
    fn project(self) -> anyhow::Result<Project> {
        Ok(Project {
            config: Config::read(&self.config)?,
            repo: self.repo,
            branch: self.branch,
            lockfiles: self.lockfiles,
        })
    }
}

/// A command, as plain options.
#[derive(Debug, Clone)]
pub enum Command {
    Plan {
        place: Place,
        containers: Vec<String>,
        concretize: bool,
        spack: Option<PathBuf>,
    },
    Build {
        place: Place,
        environments: PathBuf,
        base_tag: String,
        container: String,
        arch: String,
        push: bool,
        pinned: Pinned,
    },
    Publish {
        place: Place,
        container: String,
        arch: String,
    },
    Pipeline {
        place: Place,
        environments: PathBuf,
        base_tag: String,
        out: PathBuf,
        tools_image: Option<String>,
        pinned: Pinned,
        /// The parent's job whose artifacts hold the pipeline (and its parts).
        artifacts_job: String,
    },
}

/// The base images pinned by digest, when stage 1 pinned them: containers are built from
/// these rather than from the tag, which another pipeline may move meanwhile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pinned {
    pub builder: Option<String>,
    pub runtime: Option<String>,
}

/// One line of the plan table: what needs doing (`build`, `sif`, `hub`, or `skip`) and why.
fn plan_row(d: &plan::Decision) -> Vec<String> {
    let mut actions = Vec::new();
    let mut why = vec![d.reason.clone()];
    if d.build {
        actions.push(if d.kind == ContainerKind::Spack {
            "build"
        } else {
            "sif"
        });
    }
    if let Some(s) = d.sif.as_ref().filter(|_| d.kind == ContainerKind::Spack) {
        if s.build {
            actions.push("sif");
        }
        why.push(s.reason.clone());
    }
    if let Some(h) = &d.hub {
        if h.push {
            actions.push("hub");
        }
        why.push(h.reason.clone());
    }
    vec![
        d.container.clone(),
        d.arch.clone(),
        if actions.is_empty() {
            "skip".into()
        } else {
            actions.join("+")
        },
        d.target.clone(),
        why.join("; "),
    ]
}

/// Run `command`, printing through a printer made from `output`; the process exit code.
pub fn main(output: &OutputOptions, command: Command) -> ExitCode {
    let printer = Printer::new(output);
    terminal::cli::finish(&printer, run(&printer, command))
}

/// Run a command; returns the process exit code. The services (registry clients, containers
/// buckets, the Docker daemon) are opened here, once, and only those the command needs.
pub fn run(printer: &Printer, command: Command) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match command {
            Command::Plan {
                place,
                containers,
                concretize,
                spack,
            } => {
                let opts = PlanOptions {
                    project: place.project()?,
                    containers,
                    concretize,
                    spack,
                };
                let services = Services::new(&opts.project.config);
                let decisions = plan::plan(&opts, &services).await?;
                if printer.is_json() {
                    printer.json(&decisions)?;
                } else {
                    let rows: Vec<Vec<String>> = decisions.iter().map(plan_row).collect();
                    printer.data(&table(
                        &["CONTAINER", "ARCH", "ACTION", "TARGET", "WHY"],
                        &rows,
                        &[],
                    ))?;
                }
                // The plan is a check: work to do is exit 1.
                Ok(if decisions.iter().any(plan::Decision::needs_work) {
                    exit::FOUND
                } else {
                    exit::SUCCESS
                })
            }
            Command::Publish {
                place,
                container,
                arch,
            } => {
                let opts = PublishOptions {
                    project: place.project()?,
                    container,
                    arch,
                };
                let services = Services::new(&opts.project.config);
                let what = publish::publish(&opts, &services.registries, Engine::connect).await?;
                printer.data(&format!("{what}\n"))?;
                Ok(exit::SUCCESS)
            }
            Command::Pipeline {
                place,
                environments,
                base_tag,
                out,
                tools_image,
                pinned,
                artifacts_job,
            } => {
                let plan = PlanOptions {
                    project: place.project()?,
                    containers: Vec::new(),
                    concretize: false,
                    spack: None,
                };
                let tools_image = tools_image
                    .unwrap_or_else(|| plan.project.config.base_image("tools", &base_tag));
                let opts = PipelineOptions {
                    plan,
                    environments,
                    base_tag,
                    tools_image,
                    pinned,
                };
                let services = Services::new(&opts.plan.project.config);
                let decisions = plan::plan(&opts.plan, &services).await?;
                let p = pipeline::pipeline(&opts, &decisions);
                let cfg = &opts.plan.project.config;
                let files = split::split(
                    p,
                    cfg,
                    &out.display().to_string(),
                    model::ci::MAX_FILE_BYTES,
                    &artifacts_job,
                );
                for (file, p) in files {
                    p.check()
                        .with_context(|| format!("generated pipeline {file}"))?;
                    if let Some(dir) = std::path::Path::new(&file).parent() {
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                    }
                    std::fs::write(&file, p.to_yaml())
                        .with_context(|| format!("writing {file}"))?;
                }
                Ok(exit::SUCCESS)
            }
            Command::Build {
                place,
                environments,
                base_tag,
                container,
                arch,
                push,
                pinned,
            } => {
                let project = place.project()?;
                let login = project.config.registry.login()?;
                let opts = BuildOptions {
                    project,
                    container,
                    arch,
                    environments,
                    base_tag,
                    pinned,
                    push,
                    login,
                };
                let engine = Engine::connect().await?;
                let image = build::build(&opts, &engine, printer).await?;
                printer.data(&format!("{image}\n"))?;
                Ok(exit::SUCCESS)
            }
        }
    })
}
