//! The builder and runtime images a Spack container is built on: pinned by digest when stage 1
//! pinned them, else at the base images' tag.

use model::config::Config;

/// The base images pinned by digest, when stage 1 pinned them: containers are built from
/// these rather than from the tag, which another pipeline may move meanwhile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pinned {
    pub builder: Option<String>,
    pub runtime: Option<String>,
}

impl Pinned {
    /// The builder image: the pinned one, else the one at `base_tag`.
    pub fn builder(&self, cfg: &Config, base_tag: &str) -> String {
        pinned_or_tagged(&self.builder, cfg, "builder", base_tag)
    }

    /// The runtime image: the pinned one, else the one at `base_tag`.
    pub fn runtime(&self, cfg: &Config, base_tag: &str) -> String {
        pinned_or_tagged(&self.runtime, cfg, "runtime", base_tag)
    }
}

fn pinned_or_tagged(pinned: &Option<String>, cfg: &Config, name: &str, base_tag: &str) -> String {
    pinned
        .clone()
        .unwrap_or_else(|| cfg.base_image(name, base_tag))
}
