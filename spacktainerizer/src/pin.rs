//! `spacktainerizer pin`: the base images at stage 1's tag resolved to the digests they have
//! now, as a dotenv report every later job of the pipeline takes its images from.

use model::config::Config;
use model::env_names::{BUILDER_IMAGE, RUNTIME_IMAGE, TOOLS_IMAGE};
use oci::registry::{ImageRef, RegistryClient};

/// Each base image and the variable that names it pinned.
pub const PINNED: [(&str, &str); 3] = [
    ("builder", BUILDER_IMAGE),
    ("runtime", RUNTIME_IMAGE),
    ("tools", TOOLS_IMAGE),
];

/// `BUILDER_IMAGE=<registry>/builder@sha256:…` and the others, one a line. Two pipelines of one
/// branch move the same tags: a job that names its image by digest runs what its pipeline
/// built, never the other's. A missing image is an error: the stage that builds it ran before.
pub async fn pin(cfg: &Config, tag: &str, client: &RegistryClient) -> anyhow::Result<String> {
    let mut out = String::new();
    for (image, variable) in PINNED {
        let tagged = cfg.base_image(image, tag);
        let reference: ImageRef = tagged.parse()?;
        let fetched = client
            .manifest(&reference)
            .await
            .map_err(|e| anyhow::anyhow!("pinning {tagged}: {e}"))?;
        out.push_str(&format!(
            "{variable}={}\n",
            pinned(cfg, image, &fetched.digest)
        ));
    }
    Ok(out)
}

/// `<registry>/<image>@<digest>`.
pub fn pinned(cfg: &Config, image: &str, digest: &str) -> String {
    format!("{}/{image}@{digest}", cfg.registry.url)
}
