//! `spackah plan`: for each container definition and architecture, build or skip, and why. A
//! Spack container is tagged with its main package's version (from the lockfile stage 2
//! concretized) and rebuilt when the registry lacks it or holds other checksums; a `.def`
//! container is rebuilt when its source image changed since its SIF was published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use common::config::{Config, Credentials};
use common::definitions::{self, ContainerDefinition, Kind};
use common::registry::{ImageRef, Login, RegistryClient};
use common::spack::lockfile::Lockfile;
use common::store::{Store, StoreUrl};
use serde::Serialize;

use crate::checksum::definition_checksum;

/// Label suffixes (after the configured namespace) the plan compares.
pub const LABEL_LOCKFILE: &str = "lockfile-sha256";
pub const LABEL_DEFINITION: &str = "definition-checksum";
/// SIF object metadata: the digest of the image a `.def` container was built from.
pub const META_SOURCE_DIGEST: &str = "source-digest";

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
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub container: String,
    pub arch: String,
    pub kind: &'static str,
    /// The image (Spack containers) or SIF object (`.def` containers) looked at.
    pub target: String,
    pub build: bool,
    pub reason: String,
    /// Labels (Spack) or SIF metadata (`.def`) a build records.
    pub record: BTreeMap<String, String>,
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
        if cfg.arch(&def.arch).is_none() {
            bail!(
                "{}: architecture `{}` is not in the configuration",
                def.path.display(),
                def.arch
            );
        }
        let decision = match &def.kind {
            Kind::Spack { .. } => spack_decision(opts, def, &login, &mut clients).await?,
            // The source of a `.def` container is a public image: read anonymously.
            Kind::Singularity { from } => def_decision(opts, def, from, &mut clients).await?,
        };
        out.push(decision);
    }
    Ok(out)
}

fn client<'a>(
    clients: &'a mut BTreeMap<String, RegistryClient>,
    registry: &str,
    login: &Option<Login>,
) -> anyhow::Result<&'a RegistryClient> {
    if !clients.contains_key(registry) {
        clients.insert(
            registry.to_string(),
            RegistryClient::new(registry, login.clone())?,
        );
    }
    Ok(&clients[registry])
}

async fn spack_decision(
    opts: &PlanOptions,
    def: &ContainerDefinition,
    login: &Option<Login>,
    clients: &mut BTreeMap<String, RegistryClient>,
) -> anyhow::Result<Decision> {
    let cfg = &opts.config;
    let lock_path = lockfile_path(&opts.lockfiles, def);
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
    let client = client(clients, &image.registry, login)?;
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
    Ok(Decision {
        container: def.name.clone(),
        arch: def.arch.clone(),
        kind: "spack",
        target: image.to_string(),
        build,
        reason,
        record,
    })
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
    let digest = match client(clients, &source.registry, &None)?
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
    let on_default = opts.branch == cfg.default_branch;
    let url: StoreUrl = bucket.url_for(on_default).parse()?;
    let store = Store::open(&url, &bucket.s3_options()).await?;
    let key = format!(
        "{}__{}.sif",
        def.name,
        tag(cfg, &source.reference, &opts.branch, &def.arch)
    );
    let record = BTreeMap::from([(META_SOURCE_DIGEST.to_string(), digest.clone())]);
    let (build, reason) = match store.head(&key).await {
        Ok((_, meta)) if meta.get(META_SOURCE_DIGEST) == Some(&digest) => {
            (false, "up to date".to_string())
        }
        Ok((_, meta)) => (
            true,
            format!(
                "source image changed ({} → {digest})",
                meta.get(META_SOURCE_DIGEST)
                    .map(String::as_str)
                    .unwrap_or("none")
            ),
        ),
        Err(e) if e.is_not_found() => (true, "SIF missing".to_string()),
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("looking up {}", store.location(&key)))
            );
        }
    };
    Ok(Decision {
        container: def.name.clone(),
        arch: def.arch.clone(),
        kind: "def",
        target: store.location(&key),
        build,
        reason,
        record,
    })
}

/// The lockfile a definition's plan reads.
pub fn lockfile_path(lockfiles: &Path, def: &ContainerDefinition) -> PathBuf {
    lockfiles.join(&def.arch).join(&def.name).join("spack.lock")
}
