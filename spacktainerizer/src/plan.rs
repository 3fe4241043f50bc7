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
    for spec in specs {
        let image: ImageRef = format!("{}/{}:{tag}", cfg.registry.url, spec.name).parse()?;
        for arch in cfg.architectures.keys() {
            let Some(inputs) = spec.inputs_for(arch) else {
                // Nothing to compare the image's tools with, and nothing to build it from
                // here: the build job (on that architecture's runner, in its tools image) has
                // them.
                out.push(Decision {
                    image: spec.name.into(),
                    arch: arch.clone(),
                    reference: image.to_string(),
                    build: true,
                    reason: ctx.tools.missing(arch),
                    labels: labels(&cfg.labels.namespace, &spec.inputs),
                });
                continue;
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
