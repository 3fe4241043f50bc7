//! Stage 3: one image per container definition from the builder and runtime images, tagged
//! from the main package's version, skipped when the registry already holds the same lockfile
//! and definition; its SIF, the public hub, and the child pipeline that does it. The library
//! behind `spackah`, callable from tests.

pub mod attest;
pub mod bases;
pub mod build;
pub mod cli;
pub mod concretize;
pub mod context;
pub mod dockerfile;
pub mod hub;
pub mod image;
pub mod index;
pub mod pipeline;
pub mod plan;
pub mod provenance;
pub mod publish;
pub mod split;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use model::ci::Pipeline;
use model::config::Config;
use oci::engine::Engine;
use oci::registry::insecure::Insecure;
use terminal::cli::{OutputOptions, exit};
use terminal::printer::{Printer, table};

pub use crate::bases::Pinned;
use crate::build::BuildOptions;
use crate::image::Project;
use crate::pipeline::PipelineOptions;
use crate::plan::{ContainerKind, PlanOptions, Services};
use crate::provenance::ProvenanceOptions;
use crate::publish::{Publish, PublishOptions};

/// The project every command works on, as the command line names it: the configuration file
/// (read by [`run`]), the repository with `container_definitions/`, where stage 2 left the
/// lockfiles, the branch slug.
#[derive(Debug, Clone)]
pub struct ProjectOptions {
    pub config: PathBuf,
    pub repo: PathBuf,
    pub lockfiles: PathBuf,
    pub branch: String,
}

impl ProjectOptions {
    /// The project, its configuration read.
    fn read(self) -> anyhow::Result<Project> {
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
    Plan(PlanCommand),
    Build(BuildCommand),
    Publish(PublishCommand),
    Index(IndexCommand),
    Pipeline(PipelineCommand),
    Provenance(ProvenanceOptions),
}

/// `spackah plan`.
#[derive(Debug, Clone)]
pub struct PlanCommand {
    pub project: ProjectOptions,
    pub containers: Vec<String>,
    pub concretize: bool,
    pub spack: Option<PathBuf>,
}

impl PlanCommand {
    /// The plan's options, the configuration read.
    fn options(self) -> anyhow::Result<PlanOptions> {
        Ok(PlanOptions {
            project: self.project.read()?,
            containers: self.containers,
            concretize: self.concretize,
            spack: self.spack,
        })
    }
}

/// `spackah build`.
#[derive(Debug, Clone)]
pub struct BuildCommand {
    pub project: ProjectOptions,
    pub environments: PathBuf,
    pub base_tag: String,
    pub container: String,
    pub arch: String,
    pub push: bool,
    pub pinned: Pinned,
}

impl BuildCommand {
    /// The build's options, the configuration and the project registry's login read.
    fn options(self) -> anyhow::Result<BuildOptions> {
        let project = self.project.read()?;
        Ok(BuildOptions {
            login: project.config.registry.login()?,
            project,
            container: self.container,
            arch: self.arch,
            environments: self.environments,
            base_tag: self.base_tag,
            pinned: self.pinned,
            push: self.push,
            invocation: invocation_from_env(),
        })
    }
}

/// The CI run this process belongs to, from GitLab's predefined variables (unset outside CI).
fn invocation_from_env() -> model::attest::provenance::Invocation {
    use model::env_names::{CI_JOB_URL, CI_PIPELINE_ID, CI_PIPELINE_URL};
    let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    model::attest::provenance::Invocation {
        pipeline_url: var(CI_PIPELINE_URL),
        pipeline_id: var(CI_PIPELINE_ID),
        job_url: var(CI_JOB_URL),
    }
}

/// `spackah publish`.
#[derive(Debug, Clone)]
pub struct PublishCommand {
    pub project: ProjectOptions,
    pub container: String,
    pub arch: String,
}

impl PublishCommand {
    /// The publication's options, the configuration read.
    fn options(self) -> anyhow::Result<PublishOptions> {
        Ok(PublishOptions {
            project: self.project.read()?,
            container: self.container,
            arch: self.arch,
        })
    }
}

/// `spackah index`.
#[derive(Debug, Clone)]
pub struct IndexCommand {
    pub project: ProjectOptions,
    pub container: String,
}

/// `spackah pipeline`.
#[derive(Debug, Clone)]
pub struct PipelineCommand {
    pub project: ProjectOptions,
    pub environments: PathBuf,
    pub base_tag: String,
    /// Where to write the pipeline (its parts beside it).
    pub out: PathBuf,
    pub tools_image: Option<String>,
    pub pinned: Pinned,
    /// The parent's job whose artifacts hold the pipeline (and its parts).
    pub artifacts_job: String,
}

impl PipelineCommand {
    /// The pipeline's options, the configuration read.
    fn options(&self) -> anyhow::Result<PipelineOptions> {
        Ok(PipelineOptions::new(
            self.project.clone().read()?,
            self.environments.clone(),
            self.base_tag.clone(),
            self.tools_image.clone(),
            self.pinned.clone(),
        ))
    }
}

/// Run `command`, printing through a printer made from `output`; the process exit code.
pub fn main(output: &OutputOptions, command: Command) -> ExitCode {
    let printer = Printer::new(output);
    terminal::cli::finish(&printer, run(&printer, command))
}

/// Run a command; returns the process exit code. The services (registry clients, containers
/// buckets, the Docker daemon) are made here, once per run, and each opens at its first use:
/// only those the command needs.
pub fn run(printer: &Printer, command: Command) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        match command {
            Command::Plan(c) => {
                let opts = c.options()?;
                let services = Services::new(&opts.project.config);
                print_plan(printer, &plan::plan(&opts, &services).await?)
            }
            Command::Publish(c) => {
                let opts = c.options()?;
                let services = Services::new(&opts.project.config);
                let done = match publish::decide(&opts, &services.registries).await? {
                    Publish::Nothing(why) => why,
                    // The daemon only when there is something to push: a job that has nothing
                    // to publish does not need one.
                    Publish::Push(push) => {
                        let engine = Engine::connect().await?;
                        publish::push(&push, &engine, &services.registries).await?
                    }
                };
                printer.data(&format!("{done}\n"))?;
                Ok(exit::SUCCESS)
            }
            Command::Index(c) => {
                let project = c.project.read()?;
                let services = Services::new(&project.config);
                for tag in index::index(&project, &c.container, &services.registries).await? {
                    printer.data(&format!("{tag}\n"))?;
                }
                Ok(exit::SUCCESS)
            }
            Command::Pipeline(c) => {
                let opts = c.options()?;
                let services = Services::new(&opts.plan.project.config);
                let decisions = plan::plan(&opts.plan, &services).await?;
                let p = pipeline::pipeline(&opts, &decisions);
                write_pipeline(p, &opts.plan.project.config, &c.out, &c.artifacts_job)?;
                Ok(exit::SUCCESS)
            }
            Command::Provenance(opts) => {
                let registries =
                    oci::registry::Clients::new(Insecure::from_env_and(std::iter::empty::<&str>()));
                print_provenance(printer, &opts, &registries).await
            }
            Command::Build(c) => {
                let opts = c.options()?;
                let engine = Engine::connect().await?;
                let image = build::build(&opts, &engine, printer).await?;
                if opts.push {
                    let registries = Services::new(&opts.project.config).registries;
                    let started = std::time::Instant::now();
                    let docs = attest::attach(&opts.attest(), &registries).await?;
                    let sizes: Vec<String> = docs
                        .iter()
                        .map(|d| format!("{} ({} bytes)", d.kind.file_name(), d.bytes.len()))
                        .collect();
                    let what = if sizes.is_empty() {
                        "nothing new (its SBOM and provenance were there)".to_string()
                    } else {
                        sizes.join(", ")
                    };
                    printer.log(format!(
                        "attached to {image} in {:.1} s: {what}",
                        started.elapsed().as_secs_f64()
                    ));
                }
                printer.data(&format!("{image}\n"))?;
                Ok(exit::SUCCESS)
            }
        }
    })
}

/// The documents of `opts.target` as a table (or JSON), written out with `--extract`; exit 1
/// when it carries none.
async fn print_provenance(
    printer: &Printer,
    opts: &ProvenanceOptions,
    registries: &oci::registry::Clients,
) -> anyhow::Result<u8> {
    let found = provenance::find(opts, registries).await?;
    if found.is_empty() {
        printer.warn(format!(
            "{} carries no SBOM or provenance",
            provenance::describe(&opts.target)
        ));
        return Ok(exit::FOUND);
    }
    if let Some(dir) = &opts.extract {
        provenance::extract(&found, dir)?;
    }
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|f| {
            vec![
                f.kind.to_string(),
                f.artifact_type.to_string(),
                f.digest.clone(),
                f.size.to_string(),
                f.file.clone(),
            ]
        })
        .collect();
    let text = table(
        &["KIND", "ARTIFACT TYPE", "DIGEST", "SIZE", "FILE"],
        &rows,
        &[false, false, false, true, false],
    );
    printer.emit(&found, &text)?;
    Ok(exit::SUCCESS)
}

/// The plan as a table (or JSON); exit 1 when something needs work, since the plan is a check.
fn print_plan(printer: &Printer, decisions: &[plan::Decision]) -> anyhow::Result<u8> {
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
    Ok(if decisions.iter().any(plan::Decision::needs_work) {
        exit::FOUND
    } else {
        exit::SUCCESS
    })
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
    if let Some(i) = &d.index {
        if i.write {
            actions.push("index");
        }
        why.push(i.reason.clone());
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

/// Write `p` at `out`, split into parts (beside it) when too large for one file, each checked
/// first.
fn write_pipeline(
    p: Pipeline,
    cfg: &Config,
    out: &Path,
    artifacts_job: &str,
) -> anyhow::Result<()> {
    let files = split::split(
        p,
        cfg,
        &out.display().to_string(),
        model::ci::MAX_FILE_BYTES,
        artifacts_job,
    );
    for (file, p) in files {
        p.check()
            .with_context(|| format!("generated pipeline {file}"))?;
        if let Some(dir) = Path::new(&file).parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&file, p.to_yaml()).with_context(|| format!("writing {file}"))?;
    }
    Ok(())
}
