//! `spackah plan`: for each container definition and architecture, what needs doing, and why,
//! asking the services that know: the registry (is the image there, with which labels), the
//! containers bucket (is the SIF there, with which checksums), the public hub. What a container
//! is made of, without asking anyone, is `crate::image`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use model::config::{BucketConfig, Config};
use model::definitions::{self, ContainerDefinition, Kind};
use model::labels;
use oci::registry::insecure::Insecure;
use oci::registry::{Clients, ImageRef, RegistryClient};
use serde::Serialize;
use stores::sif_published;
use stores::{S3Options, Store, StoreUrl};

use crate::hub;
use crate::image::{self, Project, SpackImage, check_arch, definition_checksum};

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub project: Project,
    /// Only these containers (all when empty).
    pub containers: Vec<String>,
    /// Concretize each environment in `lockfiles` (as `spack-cacher prepare` wrote it) with the
    /// real `spack` first, instead of reading a lockfile stage 2 left.
    pub concretize: bool,
    /// The `spack` to run; the one on PATH when not given.
    pub spack: Option<PathBuf>,
}

/// What a definition builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// A Spack environment: an image, its SIF, the hub.
    Spack,
    /// A Singularity definition: a SIF only.
    Def,
}

/// The services `plan` and `publish` ask, opened once: registry clients (the project's, the
/// hub's, anonymous ones for `.def` sources) and the containers buckets, by URL.
#[derive(Debug, Default)]
pub struct Services {
    pub registries: Clients,
    stores: tokio::sync::Mutex<BTreeMap<String, Store>>,
}

impl Services {
    /// The services of one run: each registry client and containers bucket is opened at its
    /// first use and shared by everything after; registries speak plain HTTP to loopback, to
    /// the insecure ones `config` names and to those of `SPACKTAINERIZAH_INSECURE_REGISTRIES`.
    pub fn new(config: &Config) -> Services {
        Services::with_registries(Clients::new(Insecure::from_env_and(
            config.insecure_registries(),
        )))
    }

    /// Services asking `registries` (those of a `MemoryRegistry` in tests); containers
    /// buckets are opened by URL unless given with [`Services::with_store`].
    pub fn with_registries(registries: Clients) -> Services {
        Services {
            registries,
            stores: Default::default(),
        }
    }

    /// These services with `store` standing for the containers bucket at `url` (a store in
    /// memory in tests): it is used instead of opening `url`.
    pub fn with_store(mut self, url: &StoreUrl, store: Store) -> Services {
        self.stores.get_mut().insert(url.to_string(), store);
        self
    }

    /// The store behind `url` with `s3`'s access, opened once.
    pub async fn store(&self, url: &StoreUrl, s3: &S3Options) -> anyhow::Result<Store> {
        let mut stores = self.stores.lock().await;
        let key = url.to_string();
        if let Some(s) = stores.get(&key) {
            return Ok(s.clone());
        }
        let store = Store::open(url, s3)
            .await
            .with_context(|| format!("opening {url}"))?;
        stores.insert(key, store.clone());
        Ok(store)
    }

    fn project_registry(
        &self,
        cfg: &Config,
        image: &ImageRef,
    ) -> anyhow::Result<Arc<RegistryClient>> {
        Ok(self
            .registries
            .get("project", &image.registry, &cfg.registry.login()?)?)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub container: String,
    pub arch: String,
    pub kind: ContainerKind,
    /// The definition file, relative to the repository.
    pub definition: PathBuf,
    /// The image (Spack containers) or SIF object (`.def` containers) looked at.
    pub target: String,
    /// Build the image (Spack) or the SIF (`.def`).
    pub build: bool,
    pub reason: String,
    /// Labels the build records: the image's (Spack) or the SIF's (`.def`). The SIF object's
    /// metadata are their checksums (`stores::sif_published::checksums`).
    pub record: BTreeMap<String, String>,
    /// The SIF in the architecture's containers bucket; none when it has no bucket.
    pub sif: Option<SifPlan>,
    /// The public hub, on the default branch when one is configured (Spack containers).
    pub hub: Option<HubPlan>,
    /// The multi-arch tag listing the image, when tags carry the architecture (Spack
    /// containers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexPlan>,
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

/// Whether the multi-arch tag lists this architecture's image as it is now.
#[derive(Debug, Clone, Serialize)]
pub struct IndexPlan {
    pub target: String,
    pub write: bool,
    pub reason: String,
}

impl Decision {
    /// True when any of image, SIF, hub or multi-arch tag needs work.
    pub fn needs_work(&self) -> bool {
        self.build
            || self.sif.as_ref().is_some_and(|s| s.build)
            || self.hub.as_ref().is_some_and(|h| h.push)
            || self.index.as_ref().is_some_and(|i| i.write)
    }

    /// The tag of a Spack container's image.
    pub fn tag(&self) -> &str {
        self.target
            .rsplit_once(':')
            .map(|(_, t)| t)
            .unwrap_or_default()
    }
}

pub async fn plan(opts: &PlanOptions, services: &Services) -> anyhow::Result<Vec<Decision>> {
    let cfg = &opts.project.config;
    let defs = definitions::discover(&opts.project.repo)?;
    let mut out = Vec::new();
    for def in defs
        .containers
        .iter()
        .filter(|d| opts.containers.is_empty() || opts.containers.contains(&d.name))
    {
        check_arch(cfg, def)?;
        let decision = match &def.kind {
            Kind::Spack { .. } => spack_decision(opts, def, services).await?,
            // The source of a `.def` container is a public image: read anonymously.
            Kind::Singularity { from } => def_decision(opts, def, from, services).await?,
        };
        out.push(decision);
    }
    Ok(out)
}

async fn spack_decision(
    opts: &PlanOptions,
    def: &ContainerDefinition,
    services: &Services,
) -> anyhow::Result<Decision> {
    let cfg = &opts.project.config;
    if opts.concretize {
        crate::concretize::concretize(&opts.project.lockfiles, opts.spack.as_deref(), def)?;
    }
    let SpackImage {
        image,
        tag,
        multi_arch,
        record,
    } = opts.project.image(def)?;
    let client = services.project_registry(cfg, &image)?;
    let (build, reason, digest) = match client.resolve(&image, &def.arch).await {
        Ok(found) => match record
            .iter()
            .find(|(k, v)| found.labels.get(*k) != Some(*v))
        {
            Some((k, _)) if k.ends_with(labels::LOCKFILE_SHA256) => {
                (true, "lockfile changed".to_string(), None)
            }
            Some(_) => (true, "definition changed".to_string(), None),
            None => (false, "up to date".to_string(), Some(found.manifest.digest)),
        },
        Err(e) if e.means_build() => (true, e.to_string(), None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("looking up {image}"))),
    };
    let index = match multi_arch {
        Some(target) => Some(index_plan(&client, target, &def.arch, digest.as_deref()).await?),
        None => None,
    };
    let sif = match cfg
        .arch(&def.arch)
        .and_then(|a| a.containers_bucket.as_ref())
    {
        Some(bucket) => Some(sif_plan(opts, services, bucket, def, &tag, &record).await?),
        None => None,
    };
    let hub = hub_plan(opts, def, &tag, &record, services).await?;
    Ok(Decision {
        container: def.name.clone(),
        arch: def.arch.clone(),
        kind: ContainerKind::Spack,
        definition: relative(&opts.project.repo, &def.path),
        target: image.to_string(),
        build,
        reason,
        record,
        sif,
        hub,
        index,
    })
}

/// Whether the multi-arch tag `target` lists the image of `arch` whose manifest is `current`
/// (none: the image is to be built, so the tag is to be written again after it).
async fn index_plan(
    client: &RegistryClient,
    target: ImageRef,
    arch: &str,
    current: Option<&str>,
) -> anyhow::Result<IndexPlan> {
    let (write, reason) = match (current, client.resolve(&target, arch).await) {
        (None, _) => (true, "image to be built".to_string()),
        (Some(_), Ok(listed)) if listed.index_digest.is_none() => {
            (true, "multi-arch tag is a single image".to_string())
        }
        (Some(current), Ok(listed)) if listed.manifest.digest == current => {
            (false, "multi-arch tag up to date".to_string())
        }
        (Some(_), Ok(_)) => (true, "multi-arch tag lists another image".to_string()),
        (Some(_), Err(e)) if e.means_build() => (true, format!("multi-arch tag: {e}")),
        (Some(_), Err(e)) => {
            return Err(anyhow::Error::new(e).context(format!("looking up {target}")));
        }
    };
    Ok(IndexPlan {
        target: target.to_string(),
        write,
        reason,
    })
}

/// Whether the containers bucket holds `<container>__<tag>.sif` with the checksums of `record`.
async fn sif_plan(
    opts: &PlanOptions,
    services: &Services,
    bucket: &BucketConfig,
    def: &ContainerDefinition,
    tag: &str,
    record: &BTreeMap<String, String>,
) -> anyhow::Result<SifPlan> {
    let url: StoreUrl = bucket
        .url_for(opts.project.branch == opts.project.config.default_branch)
        .parse()?;
    let store = services.store(&url, &bucket.s3_options()).await?;
    let key = sif_published::file_name(&def.name, tag);
    let want = sif_published::checksums(record);
    let (build, reason, changed) = match store.head(&key).await {
        Ok((_, meta)) if sif_published::same_checksums(&want, &meta) => {
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
    services: &Services,
) -> anyhow::Result<Option<HubPlan>> {
    let cfg = &opts.project.config;
    let Some(public) = cfg
        .registry
        .public
        .as_ref()
        .filter(|_| opts.project.branch == cfg.default_branch)
    else {
        return Ok(None);
    };
    let target = hub::target(public, &def.name, tag)?;
    let client = services
        .registries
        .get("hub", &target.registry, &public.login()?)?;
    let (push, reason) = match hub::state(&client, &target, &def.arch, record).await {
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
    services: &Services,
) -> anyhow::Result<Decision> {
    let cfg = &opts.project.config;
    let source: ImageRef = from
        .parse()
        .with_context(|| format!("{}: `From: {from}`", def.path.display()))?;
    let digest = match services
        .registries
        .get("anonymous", &source.registry, &None)?
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
    let tag = image::tag(cfg, &source.reference, &opts.project.branch, &def.arch);
    let record = BTreeMap::from([
        (model::labels::source_digest_label(), digest.clone()),
        (
            labels::namespaced(&cfg.labels.namespace, labels::DEFINITION_CHECKSUM),
            definition_checksum(&opts.project.repo, def)?,
        ),
    ]);
    let sif = sif_plan(opts, services, bucket, def, &tag, &record).await?;
    let store: StoreUrl = sif.store.parse()?;
    let changed = |key: &str| sif.changed.iter().any(|c| c == key);
    let reason = if changed(sif_published::META_SOURCE_DIGEST) {
        format!("source image changed (now {digest})")
    } else if changed(sif_published::META_CONTAINER_CHECKSUM) {
        "definition changed".to_string()
    } else {
        sif.reason.clone()
    };
    Ok(Decision {
        container: def.name.clone(),
        arch: def.arch.clone(),
        kind: ContainerKind::Def,
        definition: relative(&opts.project.repo, &def.path),
        target: format!("{}/{}", store.to_string().trim_end_matches('/'), sif.key),
        build: sif.build,
        reason,
        record,
        sif: Some(sif),
        hub: None,
        index: None,
    })
}

fn relative(repo: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(repo).unwrap_or(path).to_path_buf()
}
