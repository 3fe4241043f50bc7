//! `spacktainerizer build` and `index`: build one image for one architecture with the labels the
//! plan compares (and the standard OCI ones), push it, then join the architectures under the
//! multi-arch tag.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use common::config::{Config, Credentials};
use common::engine::{BuildRequest, Engine};
use common::registry::{ImageRef, Login, RegistryClient};

use crate::images;
use crate::plan::{self, PlanOptions};

/// Variable holding the public half of the deployment key the builder image trusts.
pub const DEPLOYMENT_KEY_VAR: &str = "SPACK_DEPLOYMENT_KEY_PUBLIC";

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub plan: PlanOptions,
    pub image: String,
    pub arch: String,
    pub push: bool,
    /// `git rev-parse HEAD` of this repository, for `org.opencontainers.image.revision`.
    pub revision: Option<String>,
    /// No build log on stderr.
    pub quiet: bool,
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

pub(crate) fn login(cfg: &Config) -> anyhow::Result<Option<Login>> {
    Credentials::registry_login(cfg.registry.credentials.as_ref())
        .map_err(anyhow::Error::msg)
        .context("registry login")
}

pub async fn build(opts: &BuildOptions) -> anyhow::Result<String> {
    let p = &opts.plan;
    let cfg = &p.config;
    let Some(arch_cfg) = cfg.arch(&opts.arch) else {
        bail!("architecture `{}` is not in the configuration", opts.arch)
    };
    let base = &cfg.base_images;
    let spec = images::images(&p.repo, cfg, std::slice::from_ref(&opts.image), || {
        images::spack_commit(&base.spack.repository, &base.spack.branch)
    })?
    .pop()
    .context("no such image")?;
    let tag = plan::tag(cfg, &p.branch, &p.date);
    let target = arch_tag(cfg, spec.name, &tag, &opts.arch);
    let ns = &cfg.labels.namespace;
    let mut labels: BTreeMap<String, String> = spec
        .inputs
        .iter()
        .map(|(k, v)| (format!("{ns}.{k}"), v.clone()))
        .collect();
    labels.insert("org.opencontainers.image.title".into(), spec.name.into());
    labels.insert("org.opencontainers.image.version".into(), tag.clone());
    labels.insert(
        "org.opencontainers.image.created".into(),
        common::printer::rfc3339(std::time::SystemTime::now()),
    );
    labels.insert(
        "org.opencontainers.image.source".into(),
        std::env::var("CI_PROJECT_URL").unwrap_or_else(|_| "spacktainerizah".into()),
    );
    if let Some(r) = &opts.revision {
        labels.insert("org.opencontainers.image.revision".into(), r.clone());
    }
    let mut args = BTreeMap::from([
        ("OS_IMAGE".to_string(), base.os_image.clone()),
        (
            "SINGULARITY_VERSION".to_string(),
            base.singularity_version.clone(),
        ),
        ("S3CMD_VERSION".to_string(), base.s3cmd_version.clone()),
        (
            "SPACK_REPOSITORY".to_string(),
            base.spack.repository.clone(),
        ),
        ("SPACK_BRANCH".to_string(), base.spack.branch.clone()),
        (
            "MIRROR_URL".to_string(),
            arch_cfg
                .build_cache
                .url_for(p.branch == cfg.default_branch)
                .to_string(),
        ),
        (
            "MIRROR_ENDPOINT_URL".to_string(),
            arch_cfg
                .build_cache
                .endpoint_url
                .clone()
                .unwrap_or_default(),
        ),
    ]);
    if let Some(c) = spec.inputs.get(images::LABEL_SPACK_COMMIT) {
        args.insert("SPACK_COMMIT".into(), c.clone());
    }
    // The public half of the deployment key is meant to be in the image: it goes in the
    // context (empty when not given, and the builder then trusts no key).
    let key = std::env::var(DEPLOYMENT_KEY_VAR).unwrap_or_default();
    let extra_files = BTreeMap::from([("deployment_key.pub".to_string(), key.into_bytes())]);
    let engine = Engine::connect().await?;
    let quiet = opts.quiet;
    engine
        .build(
            &target,
            &BuildRequest {
                context: p.repo.join(&spec.folder),
                build_args: args,
                labels,
                extra_files,
                no_cache: true,
                architecture: Some(opts.arch.clone()),
                ..BuildRequest::default()
            },
            |line| {
                if !quiet {
                    eprintln!("{line}");
                }
            },
        )
        .await?;
    if opts.push {
        engine.push(&target, login(cfg)?.as_ref()).await?;
    }
    Ok(target)
}

/// Write the multi-arch tag of `image` from its per-architecture tags in the registry.
pub async fn index(p: &PlanOptions, image: &str) -> anyhow::Result<String> {
    let cfg = &p.config;
    let tag = plan::tag(cfg, &p.branch, &p.date);
    let multi: ImageRef = format!("{}/{image}:{tag}", cfg.registry.url).parse()?;
    let client = RegistryClient::new(&multi.registry, login(cfg)?)?;
    let mut entries = Vec::new();
    for arch in cfg.architectures.keys() {
        let per_arch: ImageRef = arch_tag(cfg, image, &tag, arch).parse()?;
        let m = client
            .manifest(&per_arch)
            .await
            .with_context(|| format!("reading {per_arch}"))?;
        entries.push(m.index_entry(arch));
    }
    client.push_index(&multi, &entries).await?;
    Ok(multi.to_string())
}

/// The revision of the repository, when it is a git checkout.
pub fn revision(repo: &PathBuf) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
