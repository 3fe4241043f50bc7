//! The stage-1 images, their build folders and the inputs that decide a rebuild: a checksum of
//! the folder, the Spack commit (looked up with `git ls-remote`, no clone), tool versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use common::config::Config;
use sha2::{Digest, Sha256};

/// Label suffixes (after the configured namespace) the plan compares.
pub const LABEL_CHECKSUM: &str = "build-files-checksum";
pub const LABEL_SPACK_COMMIT: &str = "spack-commit";
pub const LABEL_TOOL_VERSIONS: &str = "tool-versions";
pub const LABEL_OS_IMAGE: &str = "os-image";

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
                PathBuf::from("singularitah/image"),
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
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in walkdir::WalkDir::new(folder) {
        let entry = entry.with_context(|| format!("reading {}", folder.display()))?;
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    if files.is_empty() {
        bail!("{} has no build files", folder.display());
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let rel = f
            .strip_prefix(folder)
            .unwrap_or(&f)
            .to_string_lossy()
            .replace('\\', "/");
        let content = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        h.update(rel.as_bytes());
        h.update([0]);
        h.update((content.len() as u64).to_le_bytes());
        h.update(&content);
    }
    Ok(hex::encode(h.finalize()))
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
