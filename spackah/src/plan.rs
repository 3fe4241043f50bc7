//! `spackah plan`: for each container definition and architecture, what needs doing, and why.
//! A Spack container is tagged with its main package's version (from the lockfile stage 2
//! concretized) and rebuilt when the registry lacks it or holds other checksums; its SIF is made
//! when the containers bucket lacks one with the same checksums, and on the default branch it
//! goes to the public hub when the hub lacks it. A `.def` container's SIF is rebuilt when its
//! source image or its definition changed since the SIF was published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use common::config::{Config, Credentials};
use common::definitions::{self, ContainerDefinition, Kind};
use common::registry::{ImageRef, Login, RegistryClient};
use common::sif_object;
use common::spack::command;
use common::spack::lockfile::Lockfile;
use common::store::{Store, StoreUrl};
use serde::Serialize;

use crate::checksum::definition_checksum;
use crate::hub;

/// Label suffixes (after the configured namespace) the plan compares.
pub const LABEL_LOCKFILE: &str = "lockfile-sha256";
pub const LABEL_DEFINITION: &str = "definition-checksum";
/// The label `singularitah sif build` gives a SIF: the digest of the image it was made from.
pub const LABEL_SOURCE_DIGEST: &str = "org.spacktainerizah.source-digest";

#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The repository with `container_definitions/`.
    pub repo: PathBuf,
    pub config: Config,
    pub branch: String,
    /// Where stage 2 left `<arch>/<container>/spack.lock`.
    pub lockfiles: PathBuf,
    /// Only these containers (all when empty).
    pub containers: Vec<String>,
    /// Concretize each environment in `lockfiles` (as `spack-cacher prepare` wrote it) with the
    /// real `spack` first, instead of reading a lockfile stage 2 left.
    pub concretize: bool,
    /// The `spack` to run; the one on PATH when not given.
    pub spack: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub container: String,
    pub arch: String,
    /// `spack` or `def`.
    pub kind: &'static str,
    /// The definition file, relative to the repository.
    pub definition: PathBuf,
    /// The image (Spack containers) or SIF object (`.def` containers) looked at.
    pub target: String,
    /// Build the image (Spack) or the SIF (`.def`).
    pub build: bool,
    pub reason: String,
    /// Labels the build records: the image's (Spack) or the SIF's (`.def`). The SIF object's
    /// metadata are their checksums (`common::sif_object::checksums`).
    pub record: BTreeMap<String, String>,
    /// The SIF in the architecture's containers bucket; none when it has no bucket.
    pub sif: Option<SifPlan>,
    /// The public hub, on the default branch when one is configured (Spack containers).
    pub hub: Option<HubPlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SifPlan {
    /// The bucket (or directory) holding the SIFs, as `singularitah sif publish` takes it.
    pub store: String,
    /// The object name, `<container>__<tag>.sif`.
    pub key: String,
    pub build: bool,
    pub reason: String,
    /// The metadata keys whose checksums differ from what a build would record.
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HubPlan {
    pub target: String,
    pub push: bool,
    pub reason: String,
}

impl Decision {
    /// True when any of image, SIF or hub needs work.
    pub fn needs_work(&self) -> bool {
        self.build
            || self.sif.as_ref().is_some_and(|s| s.build)
            || self.hub.as_ref().is_some_and(|h| h.push)
    }

    /// The tag of a Spack container's image.
    pub fn tag(&self) -> &str {
        self.target
            .rsplit_once(':')
            .map(|(_, t)| t)
            .unwrap_or_default()
    }
}

/// A tag from a version: characters a tag cannot hold become `_`; off the default branch the
/// branch slug follows (`1.2.3__my-branch`); `-<arch>` when several architectures are built.
pub fn tag(cfg: &Config, version: &str, branch: &str, arch: &str) -> String {
    let mut t: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() || t.starts_with(['.', '-']) {
        t.insert(0, 'v');
    }
    if branch != cfg.default_branch {
        t.push_str(&format!("__{branch}"));
    }
    if cfg.tags.arch_suffix && cfg.architectures.len() > 1 {
        t.push_str(&format!("-{arch}"));
    }
    t.truncate(128);
    t
}

/// The project registry's login, from the variables the configuration names.
pub(crate) fn login(cfg: &Config) -> anyhow::Result<Option<Login>> {
    Credentials::registry_login(cfg.registry.credentials.as_ref())
        .map_err(anyhow::Error::msg)
        .context("registry login")
}

pub async fn plan(opts: &PlanOptions) -> anyhow::Result<Vec<Decision>> {
    let cfg = &opts.config;
    let defs = definitions::discover(&opts.repo)?;
    let login = login(cfg)?;
    let mut clients: BTreeMap<String, RegistryClient> = BTreeMap::new();
    let mut out = Vec::new();
    for def in defs
        .containers
        .iter()
        .filter(|d| opts.containers.is_empty() || opts.containers.contains(&d.name))
    {
        check_arch(cfg, def)?;
        let decision = match &def.kind {
            Kind::Spack { .. } => spack_decision(opts, def, &login, &mut clients).await?,
            // The source of a `.def` container is a public image: read anonymously.
            Kind::Singularity { from } => def_decision(opts, def, from, &mut clients).await?,
        };
        out.push(decision);
    }
    Ok(out)
}

/// The client for `registry` with `login`, made once per `key` (a registry can be both the
/// project's and the hub, with different logins).
fn client<'a>(
    clients: &'a mut BTreeMap<String, RegistryClient>,
    key: &str,
    registry: &str,
    login: &Option<Login>,
) -> anyhow::Result<&'a RegistryClient> {
    if !clients.contains_key(key) {
        clients.insert(
            key.to_string(),
            RegistryClient::new(registry, login.clone())?,
        );
    }
    Ok(&clients[key])
}

/// What a Spack container's image is, known without asking any service: its reference (the
/// tag from the lockfile's main package) and the labels a build records.
#[derive(Debug, Clone)]
pub struct SpackImage {
    pub image: ImageRef,
    pub tag: String,
    pub record: BTreeMap<String, String>,
}

/// The image of `def` (a Spack container), its lockfile read (concretized first when asked).
pub fn spack_image(opts: &PlanOptions, def: &ContainerDefinition) -> anyhow::Result<SpackImage> {
    let cfg = &opts.config;
    let lock_path = lockfile_path(&opts.lockfiles, def);
    if opts.concretize {
        concretize(opts, def, &lock_path)?;
    }
    if !lock_path.is_file() {
        bail!(
            "{}: no spack.lock at {} (stage 2 concretizes it: `spack-cacher generate`)",
            def.path.display(),
            lock_path.display()
        );
    }
    let lock = Lockfile::read(&lock_path)?;
    let first = def
        .specs()
        .into_iter()
        .next()
        .with_context(|| format!("{}: no spec", def.path.display()))?;
    let main = lock.main_package(&first).with_context(|| {
        format!(
            "{}: tagging from {}",
            def.path.display(),
            lock_path.display()
        )
    })?;
    let tag = tag(cfg, &main.version, &opts.branch, &def.arch);
    let image: ImageRef = format!("{}/{}:{tag}", cfg.registry.url, def.name).parse()?;
    let ns = &cfg.labels.namespace;
    let record = BTreeMap::from([
        (format!("{ns}.{LABEL_LOCKFILE}"), lock.sha256.clone()),
        (
            format!("{ns}.{LABEL_DEFINITION}"),
            definition_checksum(&opts.repo, def)?,
        ),
    ]);
    Ok(SpackImage { image, tag, record })
}

fn check_arch(cfg: &Config, def: &ContainerDefinition) -> anyhow::Result<()> {
    if cfg.arch(&def.arch).is_none() {
        bail!(
            "{}: architecture `{}` is not in the configuration",
            def.path.display(),
            def.arch
        );
    }
    Ok(())
}

/// The Spack container `container` of `arch`, for the commands that work on one.
pub fn spack_definition(
    opts: &PlanOptions,
    container: &str,
    arch: &str,
) -> anyhow::Result<ContainerDefinition> {
    let def = definitions::discover(&opts.repo)?
        .containers
        .into_iter()
        .find(|d| d.name == container && d.arch == arch)
        .with_context(|| format!("no container `{container}` for {arch}"))?;
    check_arch(&opts.config, &def)?;
    if let Kind::Singularity { .. } = def.kind {
        bail!(
            "{}: `.def` containers become SIF files, not images",
            def.path.display()
        );
    }
    Ok(def)
}

async fn spack_decision(
    opts: &PlanOptions,
    def: &ContainerDefinition,
    login: &Option<Login>,
    clients: &mut BTreeMap<String, RegistryClient>,
) -> anyhow::Result<Decision> {
    let cfg = &opts.config;
    let SpackImage { image, tag, record } = spack_image(opts, def)?;
    let client = client(clients, &image.registry, &image.registry, login)?;
    let (build, reason) = match client.resolve(&image, &def.arch).await {
        Ok(found) => match record
            .iter()
            .find(|(k, v)| found.labels.get(*k) != Some(*v))
        {
            Some((k, _)) if k.ends_with(LABEL_LOCKFILE) => (true, "lockfile changed".to_string()),
            Some(_) => (true, "definition changed".to_string()),
            None => (false, "up to date".to_string()),
        },
        Err(e) if e.means_build() => (true, e.to_string()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("looking up {image}"))),
    };
    let sif = match cfg
        .arch(&def.arch)
        .and_then(|a| a.containers_bucket.as_ref())
    {
        Some(bucket) => Some(sif_plan(opts, bucket, def, &tag, &record).await?),
        None => None,
    };
    let hub = hub_plan(opts, def, &tag, &record, clients).await?;
    Ok(Decision {
        container: def.name.clone(),
        arch: def.arch.clone(),
        kind: "spack",
        definition: relative(&opts.repo, &def.path),
        target: image.to_string(),
        build,
        reason,
        record,
        sif,
        hub,
    })
}

/// Whether the containers bucket holds `<container>__<tag>.sif` with the checksums of `record`.
async fn sif_plan(
    opts: &PlanOptions,
    bucket: &common::config::BucketConfig,
    def: &ContainerDefinition,
    tag: &str,
    record: &BTreeMap<String, String>,
) -> anyhow::Result<SifPlan> {
    let url: StoreUrl = bucket
        .url_for(opts.branch == opts.config.default_branch)
        .parse()?;
    let store = Store::open(&url, &bucket.s3_options()).await?;
    let key = sif_object::file_name(&def.name, tag);
    let want = sif_object::checksums(record);
    let (build, reason, changed) = match store.head(&key).await {
        Ok((_, meta)) if sif_object::same_checksums(&want, &meta) => {
            (false, "SIF up to date".to_string(), Vec::new())
        }
        Ok((_, meta)) => {
            let changed: Vec<String> = want
                .iter()
                .filter(|(k, v)| meta.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect();
            (
                true,
                format!("SIF has another {}", changed.join(", ")),
                changed,
            )
        }
        Err(e) if e.is_not_found() => (true, "SIF missing".to_string(), Vec::new()),
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("looking up {}", store.location(&key)))
            );
        }
    };
    Ok(SifPlan {
        store: url.to_string(),
        key,
        build,
        reason,
        changed,
    })
}

/// On the default branch, whether the public hub lacks the image or holds other checksums.
/// The hub is read with its login when the variables are set, else anonymously (public
/// repositories are readable); a hub that cannot be asked leaves the decision to the job.
async fn hub_plan(
    opts: &PlanOptions,
    def: &ContainerDefinition,
    tag: &str,
    record: &BTreeMap<String, String>,
    clients: &mut BTreeMap<String, RegistryClient>,
) -> anyhow::Result<Option<HubPlan>> {
    let cfg = &opts.config;
    let Some(public) = cfg
        .registry
        .public
        .as_ref()
        .filter(|_| opts.branch == cfg.default_branch)
    else {
        return Ok(None);
    };
    let target = hub::target(public, &def.name, tag)?;
    let client = client(
        clients,
        &format!("hub:{}", target.registry),
        &target.registry,
        &hub::login(public)?,
    )?;
    let (push, reason) = match hub::state(client, &target, &def.arch, record).await {
        Ok(hub::State::NoRepository) => (false, "hub repository does not exist".to_string()),
        Ok(hub::State::UpToDate) => (false, "hub up to date".to_string()),
        Ok(hub::State::OtherChecksums) => (true, "hub holds other checksums".to_string()),
        Ok(hub::State::Missing) => (true, "hub lacks it".to_string()),
        Err(e) => (true, format!("hub not checked ({e})")),
    };
    Ok(Some(HubPlan {
        target: target.to_string(),
        push,
        reason,
    }))
}

async fn def_decision(
    opts: &PlanOptions,
    def: &ContainerDefinition,
    from: &str,
    clients: &mut BTreeMap<String, RegistryClient>,
) -> anyhow::Result<Decision> {
    let cfg = &opts.config;
    let source: ImageRef = from
        .parse()
        .with_context(|| format!("{}: `From: {from}`", def.path.display()))?;
    let digest = match client(
        clients,
        &format!("anonymous:{}", source.registry),
        &source.registry,
        &None,
    )?
    .resolve(&source, &def.arch)
    .await
    {
        Ok(r) => r.manifest.digest,
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "{}: resolving its source image",
                def.path.display()
            )));
        }
    };
    let bucket = cfg
        .arch(&def.arch)
        .and_then(|a| a.containers_bucket.as_ref())
        .with_context(|| {
            format!(
                "{}: no containers_bucket for {} in the configuration",
                def.path.display(),
                def.arch
            )
        })?;
    let tag = tag(cfg, &source.reference, &opts.branch, &def.arch);
    let record = BTreeMap::from([
        (LABEL_SOURCE_DIGEST.to_string(), digest.clone()),
        (
            format!("{}.{LABEL_DEFINITION}", cfg.labels.namespace),
            definition_checksum(&opts.repo, def)?,
        ),
    ]);
    let sif = sif_plan(opts, bucket, def, &tag, &record).await?;
    let store: StoreUrl = sif.store.parse()?;
    let changed = |key: &str| sif.changed.iter().any(|c| c == key);
    let reason = if changed(sif_object::META_SOURCE_DIGEST) {
        format!("source image changed (now {digest})")
    } else if changed(sif_object::META_CONTAINER_CHECKSUM) {
        "definition changed".to_string()
    } else {
        sif.reason.clone()
    };
    Ok(Decision {
        container: def.name.clone(),
        arch: def.arch.clone(),
        kind: "def",
        definition: relative(&opts.repo, &def.path),
        target: format!("{}/{}", store.to_string().trim_end_matches('/'), sif.key),
        build: sif.build,
        reason,
        record,
        sif: Some(sif),
        hub: None,
    })
}

/// `spack -e ENV concretize -f` in the prepared environment beside `lock_path`, logged to
/// `concretize.log` there.
fn concretize(
    opts: &PlanOptions,
    def: &ContainerDefinition,
    lock_path: &Path,
) -> anyhow::Result<()> {
    let env = lock_path.parent().expect("a lockfile path has a folder");
    if !env.join("spack.yaml").is_file() {
        bail!(
            "{}: no prepared environment at {} to concretize (`spack-cacher prepare` writes it)",
            def.path.display(),
            env.display()
        );
    }
    let spack = command::find(opts.spack.as_deref())?;
    let args = ["-e", &env.display().to_string(), "concretize", "-f"].map(String::from);
    command::run(&spack, &args, &mut Vec::new(), &env.join("concretize.log"))
        .with_context(|| format!("{}/{}", def.arch, def.name))?;
    Ok(())
}

fn relative(repo: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(repo).unwrap_or(path).to_path_buf()
}

/// The lockfile a definition's plan reads.
pub fn lockfile_path(lockfiles: &Path, def: &ContainerDefinition) -> PathBuf {
    lockfiles.join(&def.arch).join(&def.name).join("spack.lock")
}
