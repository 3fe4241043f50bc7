//! The tags of the base images: the branch's tag (`latest` on the default branch,
//! `<date>-<branch>` elsewhere) and, when several architectures are built, the per-architecture
//! tags the multi-arch index joins.

use model::config::Config;

/// The tag of the base images on `branch` (its slug) for `date` (`YYYY.MM.DD`).
pub fn tag(cfg: &Config, branch: &str, date: &str) -> String {
    cfg.tags
        .base_tag(branch == cfg.default_branch, branch, date)
}

/// `<registry>/<image>:<tag>`, with `-<arch>` when several architectures are built.
pub fn arch_tag(cfg: &Config, image: &str, tag: &str, arch: &str) -> String {
    let suffix = if cfg.tags.arch_suffix && cfg.architectures.len() > 1 {
        format!("-{arch}")
    } else {
        String::new()
    };
    format!("{}/{image}:{tag}{suffix}", cfg.registry.url)
}
