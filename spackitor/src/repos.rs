//! Spack package repositories: which packages still exist. Accepts a repository (a folder with
//! `repo.yaml` and `packages/`), a Spack checkout (`var/spack/repos/builtin`; for Spack ≥ 1.0,
//! whose packages live in spack-packages, the repository its `repos.yaml` names), or a
//! spack-packages checkout (`repos/spack_repo/builtin/…`), and folder names in both styles
//! (`py-foo`, `py_foo`). Spack's test and mock repositories never count.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use model::cleanup::Packages;

/// How deep below a given folder package repositories are looked for.
const MAX_DEPTH: usize = 6;

/// The packages found, and where.
#[derive(Debug, Clone, Default)]
pub struct PackageSet {
    pub packages: Packages,
    /// The package folders found, for messages.
    pub sources: Vec<PathBuf>,
}

impl PackageSet {
    pub fn contains(&self, package: &str) -> bool {
        self.packages.contains(package)
    }

    /// Find the package folders under every path; a path without any is an error, since it
    /// would make every package look removed.
    pub fn load(paths: &[PathBuf]) -> anyhow::Result<PackageSet> {
        let mut set = PackageSet::default();
        for path in paths {
            if !path.is_dir() {
                bail!("Spack repository {} is not a folder", path.display());
            }
            let found = match spack_checkout_repos(path)? {
                Some(found) => found,
                None => {
                    packages_dirs(path).with_context(|| format!("searching {}", path.display()))?
                }
            };
            if found.is_empty() {
                bail!(
                    "no Spack package repository under {} (expected a `packages/` folder beside a `repo.yaml`)",
                    path.display()
                );
            }
            for dir in found {
                for entry in
                    std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
                {
                    let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
                    if entry.path().join("package.py").is_file() {
                        set.packages.insert(&entry.file_name().to_string_lossy());
                    }
                }
                set.sources.push(dir);
            }
        }
        Ok(set)
    }
}

/// Folders of Spack's own test and mock repositories: they hold packages no build uses.
const TEST_FOLDERS: &[&str] = &["test_repos", "tests", "builtin.mock", "builtin_mock"];

/// For a Spack checkout (`bin/spack` and `lib/spack/spack`), the package folder of its builtin
/// repository: `var/spack/repos/builtin` before 1.0, else the local folder its `repos.yaml`
/// (site or instance scope) names. A 1.x checkout alone holds only test repositories, which
/// would make every package look removed: that is an error naming what to pass instead.
/// `None` when `root` is not a Spack checkout.
fn spack_checkout_repos(root: &Path) -> anyhow::Result<Option<Vec<PathBuf>>> {
    if !(root.join("bin/spack").is_file() && root.join("lib/spack/spack").is_dir()) {
        return Ok(None);
    }
    let builtin = root.join("var/spack/repos/builtin");
    if builtin.join("repo.yaml").is_file() && builtin.join("packages").is_dir() {
        return Ok(Some(vec![builtin.join("packages")]));
    }
    for scope in ["etc/spack/site/repos.yaml", "etc/spack/repos.yaml"] {
        let file = root.join(scope);
        if !file.is_file() {
            continue;
        }
        let doc: model::yaml::Value = model::yaml::read(&file)?;
        // `repos::` (override) reads as the key `repos:`.
        let entries = doc
            .get("repos")
            .or_else(|| doc.get("repos:"))
            .cloned()
            .unwrap_or_default();
        let paths: Vec<String> = match entries {
            model::yaml::Value::Mapping(m) => m
                .into_iter()
                .filter_map(|(_, v)| match v {
                    model::yaml::Value::String(p) => Some(p),
                    model::yaml::Value::Mapping(m) => m
                        .get("destination")
                        .and_then(|d| d.as_str())
                        .map(str::to_string),
                    _ => None,
                })
                .collect(),
            model::yaml::Value::Sequence(items) => items
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let mut found = Vec::new();
        for p in paths {
            let p = PathBuf::from(p.replace("$spack", &root.display().to_string()));
            let dir = if p.is_absolute() { p } else { root.join(p) };
            found.extend(
                packages_dirs(&dir).with_context(|| format!("searching {}", dir.display()))?,
            );
        }
        if !found.is_empty() {
            return Ok(Some(found));
        }
    }
    bail!(
        "{} is a Spack checkout without its package repository: since Spack 1.0 the packages \
         live in spack-packages (https://github.com/spack/spack-packages), which Spack clones \
         on first use; pass that checkout (its `repos/spack_repo/builtin`) as --spack-repo",
        root.display()
    )
}

/// `packages/` folders whose parent holds a `repo.yaml`, at most [`MAX_DEPTH`] below `root`,
/// Spack's test repositories left out.
fn packages_dirs(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        if dir.join("repo.yaml").is_file() && dir.join("packages").is_dir() {
            out.push(dir.join("packages"));
            continue;
        }
        if depth == MAX_DEPTH {
            continue;
        }
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Package folders themselves and hidden folders hold no repositories.
            if entry.file_type()?.is_dir()
                && !name.starts_with('.')
                && name != "packages"
                && !TEST_FOLDERS.contains(&name.as_ref())
            {
                stack.push((entry.path(), depth + 1));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(root: &Path, repo: &str, name: &str) {
        let d = root.join(repo).join("packages").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("package.py"), "").unwrap();
        std::fs::write(root.join(repo).join("repo.yaml"), "repo:\n  namespace: x\n").unwrap();
    }

    #[test]
    fn both_naming_styles_and_checkout_layouts() {
        let t = tempfile::tempdir().unwrap();
        pkg(t.path(), "var/spack/repos/builtin", "py-numpy");
        pkg(t.path(), "repos/spack_repo/builtin", "py_scipy");
        pkg(t.path(), "repos/spack_repo/builtin", "_7zip");
        let set = PackageSet::load(&[t.path().to_path_buf()]).unwrap();
        assert!(set.contains("py-numpy") && set.contains("py-scipy") && set.contains("7zip"));
        assert!(!set.contains("py-pandas"));
        assert_eq!(set.sources.len(), 2);
    }

    #[test]
    fn test_repositories_never_count() {
        let t = tempfile::tempdir().unwrap();
        pkg(t.path(), "repos/spack_repo/builtin", "zlib");
        pkg(t.path(), "tests/repos/spack_repo/builtin_mock", "mock-only");
        pkg(
            t.path(),
            "var/spack/test_repos/spack_repo/tutorial",
            "tutorial-only",
        );
        let set = PackageSet::load(&[t.path().to_path_buf()]).unwrap();
        assert!(set.contains("zlib"));
        assert!(!set.contains("mock-only") && !set.contains("tutorial-only"));
    }

    /// A Spack checkout: `bin/spack` and `lib/spack/spack`.
    fn checkout(root: &Path) {
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/spack"), "").unwrap();
        std::fs::create_dir_all(root.join("lib/spack/spack")).unwrap();
        pkg(root, "var/spack/test_repos/spack_repo/builtin_mock", "zlib");
    }

    #[test]
    fn a_spack_1_checkout_alone_is_refused_and_its_repos_yaml_followed() {
        let t = tempfile::tempdir().unwrap();
        let spack = t.path().join("spack");
        checkout(&spack);
        let err = PackageSet::load(std::slice::from_ref(&spack))
            .unwrap_err()
            .to_string();
        assert!(err.contains("spack-packages"), "{err}");
        pkg(t.path(), "spack-packages/repos/spack_repo/builtin", "hdf5");
        std::fs::create_dir_all(spack.join("etc/spack")).unwrap();
        std::fs::write(
            spack.join("etc/spack/repos.yaml"),
            format!(
                "repos:\n  builtin: {}\n",
                t.path()
                    .join("spack-packages/repos/spack_repo/builtin")
                    .display()
            ),
        )
        .unwrap();
        let set = PackageSet::load(&[spack]).unwrap();
        assert!(set.contains("hdf5") && !set.contains("zlib"));
    }

    #[test]
    fn a_spack_0_checkout_uses_its_builtin_repository_only() {
        let t = tempfile::tempdir().unwrap();
        checkout(t.path());
        pkg(t.path(), "var/spack/repos/builtin", "hdf5");
        pkg(t.path(), "var/spack/repos/tutorial", "tutorial-only");
        let set = PackageSet::load(&[t.path().to_path_buf()]).unwrap();
        assert!(set.contains("hdf5") && !set.contains("tutorial-only"));
    }

    #[test]
    fn a_folder_without_repositories_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let err = PackageSet::load(&[t.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no Spack package repository"), "{err}");
    }
}
