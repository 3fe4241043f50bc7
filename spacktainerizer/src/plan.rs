//! `spacktainerizer plan`: for each base image and architecture, build or skip, and why, from
//! the labels the registry holds under the branch's tag.

use std::collections::BTreeMap;

use oci::registry::{ImageRef, RegistryClient, RegistryError};
use serde::Serialize;

use crate::context::Context;
use crate::images::{
    ImageSpec, LABEL_CHECKSUM, LABEL_COMPILERS, LABEL_SPACK_COMMIT, LABEL_SPACK_PACKAGES,
    LABEL_TOOL_VERSIONS,
};

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

/// Build or skip each of `specs` for each architecture, asking `client` (the project
/// registry's) what the branch's tag holds. A registry that is down or refuses is an error,
/// never "build everything".
pub async fn plan(
    ctx: &Context,
    specs: &[ImageSpec],
    client: &RegistryClient,
) -> anyhow::Result<Vec<Decision>> {
    let cfg = &ctx.config;
    let tag = ctx.tag();
    let mut out = Vec::new();
    // Per architecture without tools here, what the release says: looked up once, for the
    // builder and the tools image alike.
    let mut released: BTreeMap<&str, Result<String, String>> = BTreeMap::new();
    for spec in specs {
        let image: ImageRef = format!("{}/{}:{tag}", cfg.registry.url, spec.name).parse()?;
        for arch in cfg.architectures.keys() {
            let inputs = match spec.inputs_for(arch) {
                Some(inputs) => Ok(inputs),
                None => {
                    if !released.contains_key(arch.as_str()) {
                        released.insert(arch, released_tools(ctx, client, arch).await?);
                    }
                    released[arch.as_str()]
                        .as_deref()
                        .map(|checksum| spec.inputs_with_tools(checksum))
                        .map_err(Clone::clone)
                }
            };
            let inputs = match inputs {
                Ok(inputs) => inputs,
                Err(why) => {
                    out.push(Decision {
                        image: spec.name.into(),
                        arch: arch.clone(),
                        reference: image.to_string(),
                        build: true,
                        reason: format!("{}; {why}", ctx.tools.missing(arch)),
                        labels: labels(&cfg.labels.namespace, &spec.inputs),
                    });
                    continue;
                }
            };
            let wanted = labels(&cfg.labels.namespace, &inputs);
            let (build, reason) = match client.resolve(&image, arch).await {
                Ok(found) => compare(&cfg.labels.namespace, &inputs, &found.labels),
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
                labels: wanted,
            });
        }
    }
    Ok(out)
}

/// The checksum of the tools `arch`'s build job will put in an image, for an architecture whose
/// tools are not here (the planning job holds its own runner's): that job runs in the released
/// tools image on `arch`'s runner, and that image's `arch` variant records its tools' checksum.
/// Compared with it, an image is rebuilt when the released tools change, not on every pipeline
/// (a rebuild gets a new digest, and the builder's digest is an input of every concretization).
/// `Ok(Err(why))` when the release does not say; an unreachable registry is an error.
async fn released_tools(
    ctx: &Context,
    client: &RegistryClient,
    arch: &str,
) -> anyhow::Result<Result<String, String>> {
    let cfg = &ctx.config;
    let reference = cfg.release_tools_image();
    let release: ImageRef = reference.parse()?;
    if release.registry != crate::registry_host(ctx)? {
        return Ok(Err(format!(
            "the released tools image {reference} is not in the project registry, so its \
             {arch} tools cannot be compared"
        )));
    }
    let found = match client.resolve(&release, arch).await {
        Ok(found) => found,
        Err(e @ (RegistryError::NotFound { .. } | RegistryError::ArchitectureMissing { .. })) => {
            return Ok(Err(format!("no {arch} tools released ({e})")));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("looking up {reference}"))),
    };
    let label = model::labels::namespaced(&cfg.labels.namespace, LABEL_TOOL_VERSIONS);
    Ok(found.labels.get(&label).cloned().ok_or_else(|| {
        format!("the released tools image {reference} has no {label} label for {arch}")
    }))
}

/// The namespaced labels recording an image's `inputs` (for one architecture).
pub fn labels(
    namespace: &str,
    inputs: &BTreeMap<&'static str, String>,
) -> BTreeMap<String, String> {
    inputs
        .iter()
        .map(|(k, v)| (model::labels::namespaced(namespace, k), v.clone()))
        .collect()
}

/// Build or skip from the registry's labels, naming the first input that changed.
fn compare(
    namespace: &str,
    inputs: &BTreeMap<&'static str, String>,
    found: &BTreeMap<String, String>,
) -> (bool, String) {
    let describe = |k: &str| match k {
        LABEL_CHECKSUM => "build files changed",
        LABEL_SPACK_COMMIT => "Spack commit changed",
        LABEL_SPACK_PACKAGES => "spack-packages commit changed",
        LABEL_TOOL_VERSIONS => "tools changed",
        LABEL_COMPILERS => "compilers changed",
        _ => "base OS image changed",
    };
    for (k, want) in inputs {
        let have = found.get(&model::labels::namespaced(namespace, k));
        if have != Some(want) {
            let was = have.map(String::as_str).unwrap_or("none");
            return (true, format!("{} ({was} → {want})", describe(k)));
        }
    }
    (false, "up to date".into())
}
