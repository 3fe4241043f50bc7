//! `spacktainerizer build`: one base image for one architecture, with the labels the plan
//! compares and the standard OCI ones, on a Docker daemon.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::bail;
use common::engine::{BuildRequest, Engine};
use common::env_names;
use common::printer::Printer;

use crate::Context;
use crate::images::{self, ImageSpec};
use crate::tags;

/// Build `spec` for `arch` under its per-architecture tag; returns that tag.
pub async fn build(
    ctx: &Context,
    spec: &ImageSpec,
    arch: &str,
    revision: Option<String>,
    engine: &Engine,
    printer: &Printer,
) -> anyhow::Result<String> {
    let cfg = &ctx.config;
    let Some(arch_cfg) = cfg.arch(arch) else {
        bail!("architecture `{arch}` is not in the configuration")
    };
    let base = &cfg.base_images;
    let tag = ctx.tag();
    let target = tags::arch_tag(cfg, spec.name, &tag, arch);
    let mut labels = crate::plan::labels(&cfg.labels.namespace, spec);
    labels.insert("org.opencontainers.image.title".into(), spec.name.into());
    labels.insert("org.opencontainers.image.version".into(), tag.clone());
    labels.insert(
        "org.opencontainers.image.created".into(),
        common::printer::rfc3339(std::time::SystemTime::now()),
    );
    labels.insert(
        "org.opencontainers.image.source".into(),
        std::env::var(env_names::CI_PROJECT_URL).unwrap_or_else(|_| "spacktainerizah".into()),
    );
    if let Some(r) = revision {
        labels.insert("org.opencontainers.image.revision".into(), r);
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
                .url_for(ctx.branch == cfg.default_branch)
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
    let key = std::env::var(env_names::SPACK_DEPLOYMENT_KEY_PUBLIC).unwrap_or_default();
    let extra_files = BTreeMap::from([("deployment_key.pub".to_string(), key.into_bytes())]);
    engine
        .build(
            &target,
            &BuildRequest {
                context: ctx.repo.join(&spec.folder),
                build_args: args,
                labels,
                extra_files,
                no_cache: true,
                architecture: Some(arch.to_string()),
                ..BuildRequest::default()
            },
            |line| printer.log(line),
        )
        .await?;
    Ok(target)
}

/// The revision of the repository, when it is a git checkout.
pub fn revision(repo: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
