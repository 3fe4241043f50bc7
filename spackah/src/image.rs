//! What a Spack container's image is, known without asking any service: its definition, the
//! lockfile stage 2 concretized for it, its tag (from the main package's version), its image
//! reference and the labels a build records (lockfile sha256, definition checksum).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use model::checksum::{TreeHash, files, relative_name};
use model::config::Config;
use model::definitions::{self, ContainerDefinition, Kind};
use model::labels;
use model::spack::lockfile::Lockfile;
use oci::registry::ImageRef;

/// Where a project's containers are defined and concretized, for one branch.
#[derive(Debug, Clone)]
pub struct Project {
    pub config: Config,
    /// The repository with `container_definitions/`.
    pub repo: PathBuf,
    pub branch: String,
    /// Where stage 2 left `<arch>/<container>/spack.lock`.
    pub lockfiles: PathBuf,
}

impl Project {
    /// The image of the Spack container `def`.
    pub fn image(&self, def: &ContainerDefinition) -> anyhow::Result<SpackImage> {
        spack_image(&self.config, &self.repo, &self.lockfiles, &self.branch, def)
    }

    /// The Spack container `container` of `arch`.
    pub fn definition(&self, container: &str, arch: &str) -> anyhow::Result<ContainerDefinition> {
        spack_definition(&self.config, &self.repo, container, arch)
    }
}

/// A tag from a version: characters a tag cannot hold become `_`; off the default branch the
/// branch slug follows (`1.2.3__my-branch`); `-<arch>` when several architectures are built.
/// The suffix survives the 128-character limit: cut off, two architectures would share a tag.
/// Every architecture's version part is cut at the same length, that of the longest suffix, so
/// that they all share one multi-arch tag.
pub fn tag(cfg: &Config, version: &str, branch: &str, arch: &str) -> String {
    let mut t = version_tag(version, branch, cfg);
    if cfg.tags.arch_suffix && cfg.architectures.len() > 1 {
        let longest = cfg.architectures.keys().map(String::len).max().unwrap_or(0);
        t.truncate(MAX_TAG - 1 - longest);
        t.push_str(&format!("-{arch}"));
    } else {
        t.truncate(MAX_TAG);
    }
    t
}

/// The multi-architecture tag joining the per-architecture tags of [`tag`]: `tag` without
/// its `-<arch>`; none when tags carry no architecture.
pub fn multi_arch_tag(cfg: &Config, tag: &str, arch: &str) -> Option<String> {
    (cfg.tags.arch_suffix && cfg.architectures.len() > 1)
        .then(|| tag.strip_suffix(&format!("-{arch}")))
        .flatten()
        .map(String::from)
}

/// The longest tag a registry takes (the distribution spec's tag pattern).
const MAX_TAG: usize = 128;

/// `version` as a tag, with the branch slug off the default branch.
fn version_tag(version: &str, branch: &str, cfg: &Config) -> String {
    let mut t: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() || t.starts_with(['.', '-']) {
        t.insert(0, 'v');
    }
    if branch != cfg.default_branch {
        t.push_str(&format!("__{branch}"));
    }
    t
}

/// The lockfile a definition's plan reads.
pub fn lockfile_path(lockfiles: &Path, def: &ContainerDefinition) -> PathBuf {
    lockfiles.join(&def.arch).join(&def.name).join("spack.lock")
}

/// sha256 over the definition, its epilogue and every file it copies (folders walked in
/// sorted order), each under a name that does not depend on where the repository is.
pub fn definition_checksum(repo: &Path, def: &ContainerDefinition) -> anyhow::Result<String> {
    let read = |p: &Path| format!("reading {}", p.display());
    let mut h = TreeHash::new();
    h.file("definition", &def.path)
        .with_context(|| read(&def.path))?;
    if let Kind::Spack {
        epilogue,
        files: copies,
        ..
    } = &def.kind
    {
        if let Some(e) = epilogue {
            h.file("epilogue", e).with_context(|| read(e))?;
        }
        for copy in copies {
            let src = repo.join(&copy.source);
            for p in files(&src).with_context(|| read(&copy.source))? {
                let name = format!("{}->{}", relative_name(&p, repo), copy.target);
                h.file(&name, &p).with_context(|| read(&p))?;
            }
        }
    }
    Ok(h.finish())
}

/// What a Spack container's image is called and records.
#[derive(Debug, Clone)]
pub struct SpackImage {
    pub image: ImageRef,
    pub tag: String,
    /// The multi-architecture image listing this one (`spackah index` writes it); none when
    /// tags carry no architecture.
    pub multi_arch: Option<ImageRef>,
    /// Labels a build records: lockfile sha256 and definition checksum, namespaced.
    pub record: BTreeMap<String, String>,
}

/// The image of `def` (a Spack container of `cfg`) on `branch`, from its lockfile under
/// `lockfiles`.
pub fn spack_image(
    cfg: &Config,
    repo: &Path,
    lockfiles: &Path,
    branch: &str,
    def: &ContainerDefinition,
) -> anyhow::Result<SpackImage> {
    let lock_path = lockfile_path(lockfiles, def);
    if !lock_path.is_file() {
        bail!(
            "{}: no spack.lock at {} (stage 2 concretizes it: `spack-cacher generate`)",
            def.path.display(),
            lock_path.display()
        );
    }
    let lock = Lockfile::read(&lock_path)?;
    let first = def
        .specs()
        .into_iter()
        .next()
        .with_context(|| format!("{}: no spec", def.path.display()))?;
    let main = lock.main_package(&first).with_context(|| {
        format!(
            "{}: tagging from {}",
            def.path.display(),
            lock_path.display()
        )
    })?;
    let tag = tag(cfg, &main.version, branch, &def.arch);
    let image: ImageRef = format!("{}/{}:{tag}", cfg.registry.url, def.name).parse()?;
    let multi_arch = multi_arch_tag(cfg, &tag, &def.arch).map(|t| image.with_reference(&t));
    let ns = &cfg.labels.namespace;
    let record = BTreeMap::from([
        (
            labels::namespaced(ns, labels::LOCKFILE_SHA256),
            lock.sha256.clone(),
        ),
        (
            labels::namespaced(ns, labels::DEFINITION_CHECKSUM),
            definition_checksum(repo, def)?,
        ),
    ]);
    Ok(SpackImage {
        image,
        tag,
        multi_arch,
        record,
    })
}

/// A definition's architecture must be one the configuration knows.
pub fn check_arch(cfg: &Config, def: &ContainerDefinition) -> anyhow::Result<()> {
    if cfg.arch(&def.arch).is_none() {
        bail!(
            "{}: architecture `{}` is not in the configuration",
            def.path.display(),
            def.arch
        );
    }
    Ok(())
}

/// The Spack container `container` of `arch` in `repo`, for the commands that work on one.
pub fn spack_definition(
    cfg: &Config,
    repo: &Path,
    container: &str,
    arch: &str,
) -> anyhow::Result<ContainerDefinition> {
    let def = definitions::discover(repo)?
        .containers
        .into_iter()
        .find(|d| d.name == container && d.arch == arch)
        .with_context(|| format!("no container `{container}` for {arch}"))?;
    check_arch(cfg, &def)?;
    if let Kind::Singularity { .. } = def.kind {
        bail!(
            "{}: `.def` containers become SIF files, not images",
            def.path.display()
        );
    }
    Ok(def)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_long_tag_keeps_its_architecture_and_one_multi_arch_tag_for_all() {
        let mut cfg = Config::read(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/spacktainerizah.yaml"),
        )
        .unwrap();
        let amd = cfg.architectures["amd64"].clone();
        cfg.architectures.insert("ppc64le".into(), amd);
        let branch = "b".repeat(63);
        let version = "1.".repeat(40);
        let tags: Vec<String> = ["amd64", "ppc64le"]
            .iter()
            .map(|arch| tag(&cfg, &version, &branch, arch))
            .collect();
        for (t, arch) in tags.iter().zip(["amd64", "ppc64le"]) {
            assert!(t.len() <= MAX_TAG, "{t}");
            assert!(t.ends_with(&format!("-{arch}")), "{t}");
        }
        let multi: Vec<Option<String>> = tags
            .iter()
            .zip(["amd64", "ppc64le"])
            .map(|(t, arch)| multi_arch_tag(&cfg, t, arch))
            .collect();
        assert!(multi[0].is_some());
        assert_eq!(multi[0], multi[1], "one tag joins both");
    }
}
