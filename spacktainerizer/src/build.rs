//! `spacktainerizer build`: one base image for one architecture, from its build files and the
//! context it needs — the site's CA certificates, the Spack tree (an archive, or the fork's
//! commit as a build argument), the instance configuration (the build-cache mirror, the package
//! repository), the deployment key's public half, the tools — with the labels the plan
//! compares and the standard OCI ones, on a Docker daemon.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use model::config::Config;
use model::env_names;
use oci::engine::{BuildRequest, Engine, base_registries};
use oci::registry::Login;
use oci::registry::saved_logins::pull_logins;
use terminal::printer::Printer;

use crate::context::Context;
use crate::images::{self, ImageSpec, SpackTree};
use crate::tags;

/// Build `spec` for `arch` under its per-architecture tag; returns that tag. `inputs` are what
/// the plan resolved (Spack trees, tools), the tools are copied from `arch`'s tools folder
/// (`ctx.tools`).
/// `logins` are the configuration's registry logins (`host[:port]` → login): the base
/// images are pulled with them, or with the ones `docker login` saved.
pub async fn build(
    ctx: &Context,
    spec: &ImageSpec,
    arch: &str,
    inputs: &images::Inputs,
    logins: &[(String, Login)],
    engine: &Engine,
    printer: &Printer,
) -> anyhow::Result<String> {
    let cfg = &ctx.config;
    if cfg.arch(arch).is_none() {
        bail!("architecture `{arch}` is not in the configuration")
    }
    // The tools' checksum recorded is that of the executables copied: the architecture's own.
    let (image_inputs, tools) = match &spec.tools {
        None => (spec.inputs.clone(), None),
        Some(_) => match (spec.inputs_for(arch), ctx.tools.dir_for(arch)?) {
            (Some(inputs), Some(dir)) => (inputs, Some(dir)),
            _ => bail!("{}: {}", spec.name, ctx.tools.missing(arch)),
        },
    };
    let tag = ctx.tag();
    let target = tags::arch_tag(cfg, spec.name, &tag, arch);
    let context = tempfile::tempdir().context("a folder for the build context")?;
    let dir = context.path();
    let args = write_context(ctx, spec, inputs, tools.as_deref(), dir)?;
    let dockerfile = spec.files.get("Dockerfile").map(Vec::as_slice);
    let registries = base_registries(&String::from_utf8_lossy(dockerfile.unwrap_or(&[])), &args);
    let registry_logins = pull_logins(&registries, logins)?;
    engine
        .build(
            &target,
            &BuildRequest {
                context: dir.to_path_buf(),
                build_args: args,
                registry_logins,
                labels: labels(ctx, spec.name, &image_inputs, &tag),
                // No secret goes into a base image, and every input that decides a rebuild
                // changes a build file, argument or copied file: the daemon's layer cache is
                // safe, and spares the compilers' installation when only the tools changed.
                no_cache: false,
                architecture: Some(arch.to_string()),
                ..BuildRequest::default()
            },
            |line| printer.log(line),
        )
        .await?;
    Ok(target)
}

/// The labels of the image `name` tagged `tag`: those the plan compares (its `inputs` for the
/// architecture built), and the standard OCI ones.
fn labels(
    ctx: &Context,
    name: &str,
    inputs: &BTreeMap<&'static str, String>,
    tag: &str,
) -> BTreeMap<String, String> {
    let mut labels = crate::plan::labels(&ctx.config.labels.namespace, inputs);
    labels.insert("org.opencontainers.image.title".into(), name.into());
    labels.insert("org.opencontainers.image.version".into(), tag.to_string());
    labels.insert(
        "org.opencontainers.image.created".into(),
        terminal::printer::rfc3339(std::time::SystemTime::now()),
    );
    labels.insert(
        "org.opencontainers.image.source".into(),
        std::env::var(env_names::CI_PROJECT_URL).unwrap_or_else(|_| "spacktainerizah".into()),
    );
    if let Some(r) = host::git::revision(&ctx.repo) {
        labels.insert("org.opencontainers.image.revision".into(), r);
    }
    labels
}

/// Write the build context of `spec` into `dir`: its build files, the site's CA certificates,
/// what the builder alone gets, and the tools from `tools` (but in the runtime); returns the
/// build arguments.
fn write_context(
    ctx: &Context,
    spec: &ImageSpec,
    inputs: &images::Inputs,
    tools: Option<&Path>,
    dir: &Path,
) -> anyhow::Result<BTreeMap<String, String>> {
    for (rel, content) in &spec.files {
        put(dir, rel, content)?;
    }
    // Folders every Dockerfile copies, empty when there is nothing to put in them.
    std::fs::create_dir_all(dir.join("ca-certificates"))?;
    for (i, c) in images::ca_certificates(&ctx.repo, &ctx.config)?
        .iter()
        .enumerate()
    {
        put(dir, &format!("ca-certificates/{i}.crt"), c)?;
    }
    let mut args = BTreeMap::from([(
        "OS_IMAGE".to_string(),
        ctx.config.base_images.os_image.clone(),
    )]);
    if spec.name == "builder" {
        builder_context(ctx, inputs, dir, &mut args)?;
    }
    if let Some(tools) = tools {
        std::fs::create_dir_all(dir.join("bin"))?;
        for tool in images::TOOLS {
            let from = tools.join(tool);
            std::fs::copy(&from, dir.join("bin").join(tool))
                .with_context(|| format!("copying {}", from.display()))?;
        }
    }
    Ok(args)
}

/// What the builder alone gets: the Spack trees (archives in `spack-source/`, or repository
/// and commit as build arguments), its compilers' packages, the deployment key's public half.
fn builder_context(
    ctx: &Context,
    inputs: &images::Inputs,
    dir: &Path,
    args: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("spack-source"))?;
    let trees = [
        (inputs.spack.as_ref(), "spack.tar", "SPACK"),
        (
            inputs.spack_packages.as_ref(),
            "spack-packages.tar",
            "SPACK_PACKAGES",
        ),
    ];
    for (tree, archive_name, arg) in trees {
        match tree {
            Some(SpackTree::Archive { path, .. }) => {
                let to = dir.join("spack-source").join(archive_name);
                std::fs::copy(path, &to).with_context(|| format!("copying {}", path.display()))?;
            }
            Some(SpackTree::Git { repository, commit }) => {
                args.insert(format!("{arg}_REPOSITORY"), repository.clone());
                args.insert(format!("{arg}_COMMIT"), commit.clone());
            }
            None => {}
        }
    }
    args.insert(
        "COMPILER_PACKAGES".into(),
        ctx.config.compiler_packages().join(" "),
    );
    Ok(())
}

/// Write `content` at `rel` in the context `dir`.
fn put(dir: &Path, rel: &str, content: &[u8]) -> anyhow::Result<()> {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("a path in the context"))?;
    std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))
}

/// The public half of the deployment key, read from the file its variable names (a GitLab
/// File variable: `signing.trust_variable`, else `SPACK_DEPLOYMENT_KEY_PUBLIC`); empty when the
/// variable is unset and the cache unsigned. A signed cache needs it: a builder trusting no key
/// could install nothing from it.
pub fn deployment_key(
    cfg: &Config,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> anyhow::Result<Vec<u8>> {
    let var = cfg
        .signing
        .as_ref()
        .map_or(env_names::SPACK_DEPLOYMENT_KEY_PUBLIC, |s| {
            &s.trust_variable
        });
    match env(var) {
        Some(path) if !path.is_empty() => std::fs::read(&path).with_context(|| {
            format!(
                "reading the deployment key {} (`{var}` names a file)",
                Path::new(&path).display(),
            )
        }),
        _ if cfg.signing.is_some() => bail!(
            "`{var}` (the public key to trust, a File variable) is not set, and the build cache \
             is signed (`signing` in the configuration)"
        ),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_cache_needs_the_public_key_and_an_unsigned_one_does_not() {
        // Signed, with a trust variable no environment sets.
        let text = format!(
            "{}signing: {{trust_variable: STZ_TEST_UNSET_PUBLIC_KEY}}\n",
            include_str!("../../examples/spacktainerizah.yaml").replace(
                "url: s3://spack-cache-arm64\n",
                "url: s3://spack-cache-arm64\n      branch_url: s3://spack-cache-arm64-dev\n",
            )
        );
        let cfg = Config::parse(Path::new("c.yaml"), &text).unwrap();
        let unset = |_: &str| None;
        let err = format!("{:#}", deployment_key(&cfg, unset).unwrap_err());
        assert!(err.contains("`STZ_TEST_UNSET_PUBLIC_KEY`"), "{err}");
        // Set, it is the file the variable names.
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("deployment.pub");
        std::fs::write(&key, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n").unwrap();
        let named = |v: &str| (v == "STZ_TEST_UNSET_PUBLIC_KEY").then(|| key.clone().into());
        assert_eq!(
            deployment_key(&cfg, named).unwrap(),
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"
        );
        let unsigned = Config {
            signing: None,
            ..cfg
        };
        assert!(deployment_key(&unsigned, unset).unwrap().is_empty());
    }
}
