//! Spack package repositories: which packages still exist. Accepts a repository (a folder with
//! `repo.yaml` and `packages/`), a Spack checkout (`var/spack/repos/…`) or a spack-packages
//! checkout (`repos/spack_repo/builtin/…`), and folder names in both styles (`py-foo`, `py_foo`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// How deep below a given folder package repositories are looked for.
const MAX_DEPTH: usize = 6;

/// Package names, normalised so `py_foo`, `py-foo` and `_7zip`/`7zip` match.
#[derive(Debug, Clone, Default)]
pub struct PackageSet {
    names: HashSet<String>,
    /// The package folders found, for messages.
    pub sources: Vec<PathBuf>,
}

/// Spack ≥ 1.0 names package modules after the package: `-` becomes `_`, and a leading digit
/// gets a `_` in front.
pub fn normalise(name: &str) -> String {
    name.trim_start_matches('_')
        .replace('_', "-")
        .to_ascii_lowercase()
}

impl PackageSet {
    pub fn contains(&self, package: &str) -> bool {
        self.names.contains(&normalise(package))
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Find the package folders under every path; a path without any is an error, since it
    /// would make every package look removed.
    pub fn load(paths: &[PathBuf]) -> anyhow::Result<PackageSet> {
        let mut set = PackageSet::default();
        for path in paths {
            if !path.is_dir() {
                bail!("Spack repository {} is not a folder", path.display());
            }
            let found =
                packages_dirs(path).with_context(|| format!("searching {}", path.display()))?;
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
                        set.names
                            .insert(normalise(&entry.file_name().to_string_lossy()));
                    }
                }
                set.sources.push(dir);
            }
        }
        Ok(set)
    }
}

/// `packages/` folders whose parent holds a `repo.yaml`, at most [`MAX_DEPTH`] below `root`.
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
            if entry.file_type()?.is_dir() && !name.starts_with('.') && name != "packages" {
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
    fn a_folder_without_repositories_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let err = PackageSet::load(&[t.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no Spack package repository"), "{err}");
    }
}
