//! `spacktainerizer plan`: for each image and architecture, build or skip, and why, from the
//! labels the registry holds under the branch's tag.

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::config::Config;
use common::registry::{ImageRef, RegistryClient, RegistryError};
use serde::Serialize;

use crate::images::{self, ImageSpec, LABEL_CHECKSUM, LABEL_SPACK_COMMIT, LABEL_TOOL_VERSIONS};

#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub repo: PathBuf,
    pub config: Config,
    /// Branch slug; the default branch gets the default-branch tag.
    pub branch: String,
    /// `YYYY.MM.DD` for branch tags.
    pub date: String,
    /// Only these images (all when empty).
    pub images: Vec<String>,
}

/// One image and architecture.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub image: String,
    pub arch: String,
    /// The multi-arch tag looked at.
    pub reference: String,
    pub build: bool,
    pub reason: String,
    /// The labels a build gets (namespaced), which the next plan compares.
    pub labels: BTreeMap<String, String>,
}

/// The tag of the base images on this branch.
pub fn tag(cfg: &Config, branch: &str, date: &str) -> String {
    cfg.tags
        .base_tag(branch == cfg.default_branch, branch, date)
}

pub async fn plan(opts: &PlanOptions) -> anyhow::Result<Vec<Decision>> {
    let cfg = &opts.config;
    let base = &cfg.base_images;
    let specs = images::images(&opts.repo, cfg, &opts.images, || {
        images::spack_commit(&base.spack.repository, &base.spack.branch)
    })?;
    let login = crate::build::login(cfg)?;
    let tag = tag(cfg, &opts.branch, &opts.date);
    let mut clients: BTreeMap<String, RegistryClient> = BTreeMap::new();
    let mut out = Vec::new();
    for spec in &specs {
        let image: ImageRef = format!("{}/{}:{tag}", cfg.registry.url, spec.name).parse()?;
        if !clients.contains_key(&image.registry) {
            clients.insert(
                image.registry.clone(),
                RegistryClient::new(&image.registry, login.clone())?,
            );
        }
        let client = &clients[&image.registry];
        let wanted = labels(&cfg.labels.namespace, spec);
        for arch in cfg.architectures.keys() {
            let (build, reason) = match client.resolve(&image, arch).await {
                Ok(found) => compare(&cfg.labels.namespace, spec, &found.labels),
                Err(e @ RegistryError::NotFound { .. }) => (true, format!("image missing ({e})")),
                Err(RegistryError::ArchitectureMissing { .. }) => {
                    (true, format!("architecture {arch} missing from {image}"))
                }
                // Down or refusing is not "empty": stop rather than rebuild everything.
                Err(e) => return Err(anyhow::Error::new(e).context(format!("looking up {image}"))),
            };
            out.push(Decision {
                image: spec.name.into(),
                arch: arch.clone(),
                reference: image.to_string(),
                build,
                reason,
                labels: wanted.clone(),
            });
        }
    }
    Ok(out)
}

fn labels(namespace: &str, spec: &ImageSpec) -> BTreeMap<String, String> {
    spec.inputs
        .iter()
        .map(|(k, v)| (format!("{namespace}.{k}"), v.clone()))
        .collect()
}

/// Build or skip from the registry's labels, naming the first input that changed.
fn compare(namespace: &str, spec: &ImageSpec, found: &BTreeMap<String, String>) -> (bool, String) {
    let describe = |k: &str| match k {
        LABEL_CHECKSUM => "build files changed",
        LABEL_SPACK_COMMIT => "Spack commit changed",
        LABEL_TOOL_VERSIONS => "tool versions changed",
        _ => "base OS image changed",
    };
    for (k, want) in &spec.inputs {
        let have = found.get(&format!("{namespace}.{k}"));
        if have != Some(want) {
            let was = have.map(String::as_str).unwrap_or("none");
            return (true, format!("{} ({was} → {want})", describe(k)));
        }
    }
    (false, "up to date".into())
}
