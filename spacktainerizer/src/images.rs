//! The base images, their build folders and the inputs that decide a rebuild: a checksum of
//! the folder, the Spack commit (looked up with `git ls-remote`, no clone), tool versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use common::config::Config;

/// Label suffixes (after the configured namespace) the plan compares.
pub use common::labels::{
    BUILD_FILES_CHECKSUM as LABEL_CHECKSUM, OS_IMAGE as LABEL_OS_IMAGE,
    SPACK_COMMIT as LABEL_SPACK_COMMIT, TOOL_VERSIONS as LABEL_TOOL_VERSIONS,
};

/// One image to build, per architecture.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub name: &'static str,
    /// The folder with its Dockerfile, relative to the repository.
    pub folder: PathBuf,
    /// Label suffix → value; any difference from the registry's labels means a rebuild.
    pub inputs: BTreeMap<&'static str, String>,
}

/// The images, with their inputs. `spack_commit` is only looked up when `builder` or `runtime`
/// is wanted.
pub fn images(
    repo: &Path,
    cfg: &Config,
    wanted: &[String],
    spack_commit: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<Vec<ImageSpec>> {
    let all = ["builder", "runtime", "singularitah"];
    let wanted: Vec<&str> = if wanted.is_empty() {
        all.to_vec()
    } else {
        wanted.iter().map(String::as_str).collect()
    };
    if let Some(bad) = wanted.iter().find(|w| !all.contains(w)) {
        bail!("unknown image `{bad}` (expected one of {})", all.join(", "));
    }
    let base = &cfg.base_images;
    let commit = if wanted.iter().any(|w| *w != "singularitah") {
        Some(spack_commit()?)
    } else {
        None
    };
    let mut out = Vec::new();
    for name in all.into_iter().filter(|a| wanted.contains(a)) {
        let (folder, mut inputs) = match name {
            "builder" | "runtime" => (
                PathBuf::from("spacktainerizer/images").join(name),
                BTreeMap::from([(LABEL_SPACK_COMMIT, commit.clone().unwrap_or_default())]),
            ),
            _ => (
                PathBuf::from("spacktainerizer/images/singularitah"),
                BTreeMap::from([(
                    LABEL_TOOL_VERSIONS,
                    format!(
                        "singularity={} s3cmd={}",
                        base.singularity_version, base.s3cmd_version
                    ),
                )]),
            ),
        };
        inputs.insert(LABEL_OS_IMAGE, base.os_image.clone());
        inputs.insert(LABEL_CHECKSUM, checksum(&repo.join(&folder))?);
        out.push(ImageSpec {
            name,
            folder,
            inputs,
        });
    }
    Ok(out)
}

/// sha256 over the folder's files: each relative path (with `/`) and content, in sorted order.
/// Timestamps and the checkout location do not count, so every machine computes the same.
pub fn checksum(folder: &Path) -> anyhow::Result<String> {
    use common::checksum::{TreeHash, files, relative_name};
    let files = files(folder).with_context(|| format!("reading {}", folder.display()))?;
    if files.is_empty() {
        bail!("{} has no build files", folder.display());
    }
    let mut h = TreeHash::new();
    for f in files {
        h.file(&relative_name(&f, folder), &f)
            .with_context(|| format!("reading {}", f.display()))?;
    }
    Ok(h.finish())
}

/// The commit at the head of `branch` in `repository`, from `git ls-remote` (no clone).
pub fn spack_commit(repository: &str, branch: &str) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args([
            "ls-remote",
            "--heads",
            repository,
            &format!("refs/heads/{branch}"),
        ])
        .output()
        .context("running git (needed to look up the Spack commit)")?;
    if !out.status.success() {
        bail!(
            "git ls-remote {repository} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(commit) if commit.len() >= 40 => Ok(commit.to_string()),
        _ => bail!("branch `{branch}` does not exist in {repository}"),
    }
}
