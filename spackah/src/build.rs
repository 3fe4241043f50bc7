//! `spackah build`: build one Spack container from its prepared environment and lockfile on
//! the builder and runtime images, labelled with what `plan` compares, and push it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use model::config::Config;
use model::definitions::{ContainerDefinition, Kind};
use model::secret::Secret;
use model::spack::environment::Environment;
use oci::engine::{BuildRequest, Engine, base_registries};
use oci::registry::Login;
use oci::registry::saved_logins::pull_logins;
use terminal::printer::Printer;

use model::attest::provenance::Invocation;

use crate::attest::AttestOptions;
use crate::bases::Pinned;
use crate::context;
use crate::dockerfile::{self, SECRET_KEY, SECRET_KEY_ID};
use crate::image::{self, Project};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub project: Project,
    pub container: String,
    pub arch: String,
    /// Where `spack-cacher prepare` wrote `<arch>/<container>/spack.yaml`.
    pub environments: PathBuf,
    /// The base images' tag (stage 1's `BUILDER_TAG`).
    pub base_tag: String,
    /// The base images pinned by digest, used instead of the tag when given.
    pub pinned: Pinned,
    pub push: bool,
    /// The project registry's login (its named variables, read once): the builder and
    /// runtime images are pulled, and the image pushed, with it.
    pub login: Option<Login>,
    /// The CI run that builds it (GitLab's predefined variables), for its provenance.
    pub invocation: Invocation,
}

impl BuildOptions {
    /// What the SBOM and provenance of the pushed image are made from, recorded now.
    pub fn attest(&self) -> AttestOptions {
        AttestOptions {
            project: self.project.clone(),
            container: self.container.clone(),
            arch: self.arch.clone(),
            base_tag: self.base_tag.clone(),
            pinned: self.pinned.clone(),
            invocation: self.invocation.clone(),
            created: model::time::rfc3339(std::time::SystemTime::now()),
        }
    }
}

/// Build (and push) the container on `engine`; returns the image reference.
pub async fn build(
    opts: &BuildOptions,
    engine: &Engine,
    printer: &Printer,
) -> anyhow::Result<String> {
    let p = &opts.project;
    let cfg = &p.config;
    let def = p.definition(&opts.container, &opts.arch)?;
    // What the image is called and records; whether it needs building is the plan's business.
    let planned = p.image(&def)?;
    let env_path = opts
        .environments
        .join(&def.arch)
        .join(&def.name)
        .join("spack.yaml");
    let env = Environment::read(&env_path)?;
    let secret_dir = tempfile::tempdir().context("a folder for the build secrets")?;
    let secrets = secrets(cfg, &def.arch, secret_dir.path())?;
    // The context folder gets the environment's repositories (and a directory cache); the
    // generated files go in beside them.
    let context = tempfile::tempdir().context("a folder for the build context")?;
    let (env, layout) = context::prepare(&env_path, &env, context.path(), !secrets.is_empty())?;
    let mut extra = context_files(p, &def, &env)?;
    let builder = opts.pinned.builder(cfg, &opts.base_tag);
    let runtime = opts.pinned.runtime(cfg, &opts.base_tag);
    let rendered = dockerfile::render(&def, &env, &builder, &runtime, layout)?;
    // The project registry's own login, else the saved one of each registry the bases are in.
    let configured: Vec<(String, Login)> = opts
        .login
        .iter()
        .map(|l| (planned.image.registry.clone(), l.clone()))
        .collect();
    let registry_logins = pull_logins(&base_registries(&rendered, &BTreeMap::new()), &configured)?;
    extra.insert("Dockerfile".to_string(), rendered.into_bytes());
    let target = planned.image.to_string();
    let request = BuildRequest {
        context: context.path().to_path_buf(),
        extra_files: extra,
        labels: labels(planned.record, &def.name),
        secrets,
        no_cache: true,
        // The Dockerfile mounts secrets or a cache folder.
        buildkit: true,
        architecture: Some(def.arch.clone()),
        registry_logins,
        ..BuildRequest::default()
    };
    build_or_diagnose(engine, &target, &request, printer).await?;
    if opts.push {
        engine.push(&target, opts.login.as_ref()).await?;
    }
    Ok(target)
}

/// The build cache key pair of `arch`, by the variable names the configuration gives, as
/// secret files in `dir` (which lives only for this build): secret id → file. None when the
/// cache needs no key pair.
fn secrets(cfg: &Config, arch: &str, dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut secrets = BTreeMap::new();
    let Some(c) = cfg
        .arch(arch)
        .and_then(|a| a.build_cache.credentials.as_ref())
    else {
        return Ok(secrets);
    };
    for (id, var) in [(SECRET_KEY_ID, &c.user_env), (SECRET_KEY, &c.secret_env)] {
        let value = Secret::from_env(var).with_context(|| {
            format!("environment variable `{var}` (build cache key pair) is not set")
        })?;
        let path = dir.join(id);
        std::fs::write(&path, value.expose()).context("writing a build secret")?;
        secrets.insert(id.to_string(), path);
    }
    Ok(secrets)
}

/// The files the build adds to the context beside what [`context::prepare`] wrote: the
/// environment `env` made ready, its lockfile, the entrypoint, and the files the definition
/// copies (under [`context::copied_file`]).
fn context_files(
    p: &Project,
    def: &ContainerDefinition,
    env: &Environment,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let lock = image::lockfile_path(&p.lockfiles, def);
    let mut extra = BTreeMap::new();
    extra.insert("spack.yaml".to_string(), env.to_yaml().into_bytes());
    extra.insert(
        "spack.lock".to_string(),
        std::fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?,
    );
    extra.insert(
        "entrypoint.sh".to_string(),
        dockerfile::ENTRYPOINT.as_bytes().to_vec(),
    );
    let files = match &def.kind {
        Kind::Spack { files, .. } => files.as_slice(),
        Kind::Singularity { .. } => &[],
    };
    for (i, copy) in files.iter().enumerate() {
        let src = p.repo.join(&copy.source);
        let name = context::copied_file(i, copy);
        for entry in walkdir::WalkDir::new(&src) {
            let entry = entry.with_context(|| format!("reading {}", src.display()))?;
            if entry.file_type().is_file() {
                let rel = entry.path().strip_prefix(&src).unwrap_or(entry.path());
                let name = if rel.as_os_str().is_empty() {
                    name.clone()
                } else {
                    format!("{name}/{}", rel.display())
                };
                extra.insert(
                    name,
                    std::fs::read(entry.path())
                        .with_context(|| format!("reading {}", entry.path().display()))?,
                );
            }
        }
    }
    Ok(extra)
}

/// The labels of the image: what the plan compares (`record`), and the standard OCI ones.
fn labels(mut record: BTreeMap<String, String>, title: &str) -> BTreeMap<String, String> {
    record.insert("org.opencontainers.image.title".into(), title.to_string());
    record.insert(
        "org.opencontainers.image.created".into(),
        terminal::printer::rfc3339(std::time::SystemTime::now()),
    );
    record
}

/// Build `request` as `target`; when it fails, the error carries Spack's output (see
/// [`diagnose`]).
async fn build_or_diagnose(
    engine: &Engine,
    target: &str,
    request: &BuildRequest,
    printer: &Printer,
) -> anyhow::Result<()> {
    let Err(failed) = engine
        .build(target, request, |line| printer.log(line))
        .await
    else {
        return Ok(());
    };
    let why = match diagnose(engine, target, request, printer).await {
        Ok(output) => anyhow::anyhow!(output),
        Err(e) => e.context("the diagnosis failed too"),
    };
    Err(why.context(failed))
}

/// Lines of Spack's output a failed installation shows.
const DIAGNOSIS_LINES: usize = 60;

/// BuildKit reports a failed step without its output: build the diagnosis stage (the same
/// installation, its output kept) and return the end of that output.
async fn diagnose(
    engine: &Engine,
    target: &str,
    request: &BuildRequest,
    printer: &Printer,
) -> anyhow::Result<String> {
    printer.log("the build failed; running the installation again to show Spack's output");
    let diagnosis = format!("{target}-{}", dockerfile::DIAGNOSE_STAGE);
    let request = BuildRequest {
        target: Some(dockerfile::DIAGNOSE_STAGE.into()),
        labels: BTreeMap::new(),
        ..request.clone()
    };
    engine.build(&diagnosis, &request, |_| {}).await?;
    let log = engine.read_file(&diagnosis, dockerfile::DIAGNOSE_LOG).await;
    engine.remove_image(&diagnosis).await?;
    let log = String::from_utf8_lossy(&log?).into_owned();
    let lines: Vec<&str> = log.lines().collect();
    let tail = &lines[lines.len().saturating_sub(DIAGNOSIS_LINES)..];
    Ok(format!(
        "Spack's output (last {} lines):\n{}",
        tail.len(),
        tail.join("\n")
    ))
}
