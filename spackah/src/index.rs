//! `spackah index`: a container's per-architecture images joined under one multi-arch tag.

use std::collections::BTreeMap;

use anyhow::Context;
use model::definitions::{self, Kind};
use oci::registry::{Clients, Descriptor, ImageRef, Platform};

use crate::image::{Project, check_arch};

/// One multi-architecture tag of a container and the per-architecture images it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiArch {
    pub target: ImageRef,
    /// Architecture → its image (`<tag>-<arch>`).
    pub images: BTreeMap<String, ImageRef>,
}

/// The multi-arch tags of the Spack container `container`, from the lockfiles of each of its
/// architectures: one per version, since an architecture may concretize another version of
/// the main package (that tag then lists that architecture only). None when tags carry no
/// architecture.
pub fn multi_arch(project: &Project, container: &str) -> anyhow::Result<Vec<MultiArch>> {
    let mut by_target: BTreeMap<String, MultiArch> = BTreeMap::new();
    let defs = definitions::discover(&project.repo)?;
    let spack = defs
        .containers
        .iter()
        .filter(|d| d.name == container && matches!(d.kind, Kind::Spack { .. }));
    let mut found = false;
    for def in spack {
        found = true;
        check_arch(&project.config, def)?;
        let image = project.image(def)?;
        let Some(target) = image.multi_arch else {
            continue;
        };
        by_target
            .entry(target.to_string())
            .or_insert_with(|| MultiArch {
                target,
                images: BTreeMap::new(),
            })
            .images
            .insert(def.arch.clone(), image.image);
    }
    if !found {
        anyhow::bail!("no Spack container `{container}` in the container definitions");
    }
    Ok(by_target.into_values().collect())
}

/// Write each multi-arch tag of `container` from its per-architecture images in the project
/// registry, each of which must be there (built for its architecture); the tags written. The
/// tag also keeps listing another architecture's image of that version (`<tag>-<arch>`) that is
/// still there: when one architecture moves to a new version, a pull of the old version on the
/// other keeps working.
pub async fn index(
    project: &Project,
    container: &str,
    registries: &Clients,
) -> anyhow::Result<Vec<String>> {
    let cfg = &project.config;
    let mut written = Vec::new();
    for multi in multi_arch(project, container)? {
        let client = registries.get("project", &multi.target.registry, &cfg.registry.login()?)?;
        let mut entries = Vec::new();
        for (arch, image) in &multi.images {
            // `resolve` refuses a single-arch tag built for another architecture.
            let found = client
                .resolve(image, arch)
                .await
                .with_context(|| format!("reading {image} for {}", multi.target))?;
            entries.push(listed(found.manifest, arch));
        }
        for arch in cfg.architectures.keys() {
            if multi.images.contains_key(arch) {
                continue;
            }
            let image = multi
                .target
                .with_reference(&format!("{}-{arch}", multi.target.reference));
            match client.resolve(&image, arch).await {
                Ok(found) => entries.push(listed(found.manifest, arch)),
                Err(e) if e.means_build() => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("reading {image} for {}", multi.target)));
                }
            }
        }
        client
            .push_index(&multi.target, &entries)
            .await
            .with_context(|| format!("writing {}", multi.target))?;
        written.push(multi.target.to_string());
    }
    Ok(written)
}

/// `manifest` as the index's entry for linux/`arch`.
fn listed(mut manifest: Descriptor, arch: &str) -> Descriptor {
    manifest.platform = Some(Platform {
        architecture: arch.to_string(),
        os: "linux".into(),
        variant: None,
    });
    manifest
}
