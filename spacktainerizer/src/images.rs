//! The base images — builder, runtime, tools — their build files (carried by the tools
//! themselves, or a folder of the definitions repository that replaces them), the build
//! context each gets, and the inputs that decide a rebuild: a checksum of the build files, the
//! OS image, the Spack commit (looked up with `git ls-remote`, no clone, or the archive's
//! sha256), the compilers and the tools' own checksum.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use model::checksum::{TreeHash, files, relative_name};
use model::config::{Config, SourceConfig};

/// Label suffixes (after the configured namespace) the plan compares.
pub use model::labels::{
    BUILD_FILES_CHECKSUM as LABEL_CHECKSUM, OS_IMAGE as LABEL_OS_IMAGE,
    SPACK_COMMIT as LABEL_SPACK_COMMIT, TOOL_VERSIONS as LABEL_TOOL_VERSIONS,
};
/// The spack-packages commit (or archive checksum) of a Spack ≥ 1.0 builder.
pub const LABEL_SPACK_PACKAGES: &str = "spack-packages-commit";
/// The OS packages of the builder's compilers.
pub const LABEL_COMPILERS: &str = "compilers";

/// The base images, in build order.
pub const IMAGES: [&str; 3] = ["builder", "runtime", "tools"];
/// The tools a builder and a tools image hold.
pub use model::commands::TOOLS;

/// The build files these tools carry: image → (relative path, content).
fn builtin(image: &str) -> &'static [(&'static str, &'static str)] {
    match image {
        "builder" => &[("Dockerfile", include_str!("../images/builder/Dockerfile"))],
        "runtime" => &[("Dockerfile", include_str!("../images/runtime/Dockerfile"))],
        _ => &[("Dockerfile", include_str!("../images/tools/Dockerfile"))],
    }
}

/// One image to build, per architecture.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub name: &'static str,
    /// Its build files: relative path → content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Label suffix → value; any difference from the registry's labels means a rebuild.
    pub inputs: BTreeMap<&'static str, String>,
}

/// Where the Spack of the builder comes from, resolved.
#[derive(Debug, Clone)]
pub enum SpackTree {
    /// A git repository at a commit.
    Git { repository: String, commit: String },
    /// An archive in the repository: its path, and its sha256.
    Archive { path: PathBuf, sha256: String },
}

impl SpackTree {
    /// What stands for its version in the labels: the commit, or `sha256:<archive checksum>`.
    pub fn id(&self) -> String {
        match self {
            SpackTree::Git { commit, .. } => commit.clone(),
            SpackTree::Archive { sha256, .. } => format!("sha256:{sha256}"),
        }
    }

    /// Resolve `source` (relative archives against `repo`): `git ls-remote` for a branch, the
    /// archive's sha256 otherwise.
    pub fn resolve(repo: &Path, source: &SourceConfig, what: &str) -> anyhow::Result<SpackTree> {
        match (&source.archive, &source.repository) {
            (Some(archive), _) => {
                let path = repo.join(archive);
                let mut h = TreeHash::new();
                h.file("archive", &path)
                    .with_context(|| format!("{what}: reading {}", path.display()))?;
                Ok(SpackTree::Archive {
                    path,
                    sha256: h.finish(),
                })
            }
            (None, Some(repository)) => {
                let branch = source.branch.as_deref().unwrap_or("develop");
                Ok(SpackTree::Git {
                    repository: repository.clone(),
                    commit: host::git::branch_head(repository, branch)?,
                })
            }
            (None, None) => bail!("{what}: give a `repository` (and `branch`) or an `archive`"),
        }
    }
}

/// The build files of `image`: the folder `build_files/<image>` of the repository when the
/// configuration names one, else the tools' own.
fn build_files(
    repo: &Path,
    cfg: &Config,
    image: &str,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let Some(dir) = &cfg.base_images.build_files else {
        return Ok(builtin(image)
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect());
    };
    let folder = repo.join(dir).join(image);
    let found = files(&folder).with_context(|| format!("reading {}", folder.display()))?;
    if found.is_empty() {
        bail!("{} has no build files", folder.display());
    }
    found
        .into_iter()
        .map(|f| {
            let content = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
            Ok((relative_name(&f, &folder), content))
        })
        .collect()
}

/// Where the builder's build context holds the public key it trusts.
pub const DEPLOYMENT_KEY: &str = "deployment_key.pub";

/// What the images are made from besides their build files: the Spack trees (resolved only
/// when the builder or runtime is wanted) and the tools' checksum.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub spack: Option<SpackTree>,
    pub spack_packages: Option<SpackTree>,
    /// sha256 over the tools' executables.
    pub tools: String,
    /// The public key(s) the builder trusts (empty: none). A build file of the builder, so a
    /// rotated key rebuilds it: a builder trusting the old key could install nothing signed
    /// with the new one, and would go on trusting a revoked one.
    pub deployment_key: Vec<u8>,
}

/// The images `wanted` (all when empty), with their inputs; `on_default` when they are the
/// default branch's (the builder's mirror is then the production cache).
pub fn images(
    repo: &Path,
    cfg: &Config,
    wanted: &[String],
    on_default: bool,
    inputs: impl FnOnce(bool) -> anyhow::Result<Inputs>,
) -> anyhow::Result<Vec<ImageSpec>> {
    let wanted: Vec<&str> = if wanted.is_empty() {
        IMAGES.to_vec()
    } else {
        wanted.iter().map(String::as_str).collect()
    };
    if let Some(bad) = wanted.iter().find(|w| !IMAGES.contains(w)) {
        bail!(
            "unknown image `{bad}` (expected one of {})",
            IMAGES.join(", ")
        );
    }
    let needs_spack = wanted.iter().any(|w| *w != "tools");
    let inputs = inputs(needs_spack)?;
    let base = &cfg.base_images;
    let certificates = ca_certificates(repo, cfg)?;
    let mut out = Vec::new();
    for name in IMAGES.into_iter().filter(|a| wanted.contains(a)) {
        let mut files = build_files(repo, cfg, name)?;
        if name == "builder" {
            // Its instance configuration is part of what it is: a new mirror or endpoint
            // rebuilds it.
            files.extend(spack_config(
                cfg,
                on_default,
                inputs.spack_packages.is_some(),
            ));
            files.insert(DEPLOYMENT_KEY.to_string(), inputs.deployment_key.clone());
        }
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_OS_IMAGE, base.os_image.clone());
        // The certificates go into the image: they count as build files.
        let mut all = files.clone();
        for (i, c) in certificates.iter().enumerate() {
            all.insert(format!("ca-certificates/{i}.crt"), c.clone());
        }
        labels.insert(LABEL_CHECKSUM, checksum_of(&all));
        match name {
            "builder" | "runtime" => {
                let spack = inputs.spack.as_ref().context("the Spack tree")?;
                labels.insert(LABEL_SPACK_COMMIT, spack.id());
            }
            _ => {}
        }
        if name == "builder" {
            if let Some(p) = &inputs.spack_packages {
                labels.insert(LABEL_SPACK_PACKAGES, p.id());
            }
            labels.insert(LABEL_COMPILERS, cfg.compiler_packages().join(" "));
        }
        if name != "runtime" {
            labels.insert(LABEL_TOOL_VERSIONS, inputs.tools.clone());
        }
        out.push(ImageSpec {
            name,
            files,
            inputs: labels,
        });
    }
    Ok(out)
}

/// The builder's Spack instance configuration (`spack-config/`, its site scope): the build
/// cache it installs binaries from (no sources: the builds' uploads go to each environment's
/// `buildcache-destination`), and spack-packages as `builtin` for Spack ≥ 1.0. Valid for Spack
/// 0.23 and 1.x alike.
pub fn spack_config(
    cfg: &Config,
    on_default: bool,
    spack_packages: bool,
) -> BTreeMap<String, Vec<u8>> {
    let mut mirrors = String::from("mirrors:\n");
    for (arch, ac) in &cfg.architectures {
        let cache = &ac.build_cache;
        mirrors.push_str(&format!(
            "  build-cache-{arch}:\n    url: {}\n    binary: true\n    source: false\n    signed: {}\n",
            cache.url_for(on_default),
            // Installing from a signed mirror checks every package's signature against the
            // keys the builder trusts (the deployment key).
            cfg.signs(on_default)
        ));
        if let Some(e) = &cache.endpoint_url {
            mirrors.push_str(&format!("    endpoint_url: {e}\n"));
        }
    }
    let mut out = BTreeMap::from([(
        "spack-config/mirrors.yaml".to_string(),
        mirrors.into_bytes(),
    )]);
    if spack_packages {
        out.insert(
            "spack-config/repos.yaml".into(),
            b"repos::\n  builtin: /opt/spack-packages/repos/spack_repo/builtin\n".to_vec(),
        );
    }
    out
}

/// The CA certificate files the configuration names, read.
pub fn ca_certificates(repo: &Path, cfg: &Config) -> anyhow::Result<Vec<Vec<u8>>> {
    cfg.base_images
        .ca_certificates
        .iter()
        .map(|c| {
            let p = repo.join(c);
            std::fs::read(&p).with_context(|| format!("reading CA certificate {}", p.display()))
        })
        .collect()
}

/// sha256 over files given as relative path → content, in sorted order: every machine computes
/// the same.
pub fn checksum_of(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut h = TreeHash::new();
    for (name, content) in files {
        h.bytes(name, content);
    }
    h.finish()
}

/// The folder holding the tools that run now (`spacktainerizer` and its siblings).
pub fn tools_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this program")?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// sha256 over the five tools in `dir`: what a tools image and a builder hold.
pub fn tools_checksum(dir: &Path) -> anyhow::Result<String> {
    let mut h = TreeHash::new();
    for tool in TOOLS {
        let p = dir.join(tool);
        h.file(tool, &p).with_context(|| {
            format!(
                "{} not found: the tools image and the builder take the tools from {}",
                p.display(),
                dir.display()
            )
        })?;
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_verifies_the_default_branch_cache_when_it_is_signed() {
        let text = format!(
            "{}signing: {{}}\n",
            include_str!("../../examples/spacktainerizah.yaml").replace(
                "url: s3://spack-cache-arm64\n",
                "url: s3://spack-cache-arm64\n      branch_url: s3://spack-cache-arm64-dev\n",
            )
        );
        let cfg = Config::parse(Path::new("c.yaml"), &text).unwrap();
        let mirrors = |cfg: &Config, on_default| {
            String::from_utf8(
                spack_config(cfg, on_default, false)["spack-config/mirrors.yaml"].clone(),
            )
            .unwrap()
        };
        let main = mirrors(&cfg, true);
        assert!(
            main.contains("url: s3://spack-build-cache\n") && main.contains("signed: true"),
            "{main}"
        );
        let branch = mirrors(&cfg, false);
        assert!(
            branch.contains("-dev\n") && !branch.contains("signed: true"),
            "{branch}"
        );
        let unsigned = Config {
            signing: None,
            ..cfg
        };
        assert!(!mirrors(&unsigned, true).contains("signed: true"));
    }
}
