//! `spacktainerizer index`: join an image's per-architecture tags under its multi-arch tag.

use anyhow::Context as _;
use oci::registry::{ImageRef, RegistryClient};

use crate::context::Context;
use crate::tags;

/// Write the multi-arch tag of `image` from its per-architecture tags in the registry.
pub async fn index(ctx: &Context, image: &str, client: &RegistryClient) -> anyhow::Result<String> {
    let cfg = &ctx.config;
    let tag = ctx.tag();
    let multi: ImageRef = format!("{}/{image}:{tag}", cfg.registry.url).parse()?;
    let mut entries = Vec::new();
    for arch in cfg.architectures.keys() {
        let per_arch: ImageRef = tags::arch_tag(cfg, image, &tag, arch).parse()?;
        let m = client
            .manifest(&per_arch)
            .await
            .with_context(|| format!("reading {per_arch}"))?;
        entries.push(m.index_entry(arch));
    }
    client.push_index(&multi, &entries).await?;
    Ok(multi.to_string())
}
