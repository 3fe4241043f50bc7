//! What every `spacktainerizer` command works from: the configuration read, the repository
//! with the image folders, the branch and date that make the base images' tag, and the folder
//! of each architecture's tools the images get.

use std::path::PathBuf;

use anyhow::Context as _;
use model::config::Config;

use crate::{images, tags};

/// What every command works from.
#[derive(Debug, Clone)]
pub struct Context {
    pub config: Config,
    /// The repository holding the image folders.
    pub repo: PathBuf,
    /// The branch slug; the default branch gets the default-branch tag.
    pub branch: String,
    /// `YYYY.MM.DD` of branch tags.
    pub date: String,
    /// Where the tools images and builders of each architecture get their tools from.
    pub tools: images::ToolsDirs,
}

impl Context {
    /// The base images' tag on this branch.
    pub fn tag(&self) -> String {
        tags::tag(&self.config, &self.branch, &self.date)
    }

    /// What the images are made from: the Spack trees (only resolved when `spack`), the
    /// tools.
    pub fn inputs(&self, spack: bool) -> anyhow::Result<images::Inputs> {
        let base = &self.config.base_images;
        let tree = |s, what| images::SpackTree::resolve(&self.repo, s, what);
        Ok(images::Inputs {
            spack: spack
                .then(|| tree(&base.spack, "base_images.spack"))
                .transpose()?,
            spack_packages: match (&base.spack_packages, spack) {
                (Some(p), true) => Some(tree(p, "base_images.spack_packages")?),
                _ => None,
            },
            tools: self.tools.checksums(self.config.architectures.keys())?,
            // Only the builder trusts it, and a signed cache's builder needs it.
            deployment_key: if spack {
                crate::build::deployment_key(&self.config, |v| std::env::var_os(v))?
            } else {
                Vec::new()
            },
        })
    }

    /// The images `wanted` (all when empty), with their inputs.
    pub fn images(
        &self,
        wanted: &[String],
    ) -> anyhow::Result<(Vec<images::ImageSpec>, images::Inputs)> {
        let mut resolved = None;
        let on_default = self.branch == self.config.default_branch;
        let specs = images::images(&self.repo, &self.config, wanted, on_default, |spack| {
            let inputs = self.inputs(spack)?;
            resolved = Some(inputs.clone());
            Ok(inputs)
        })?;
        Ok((specs, resolved.context("the images' inputs")?))
    }
}
