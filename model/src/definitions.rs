//! Container definitions, discovered under `container_definitions/<arch>/`: `<name>.yaml`,
//! `<name>/spack.yaml` (with an optional `Dockerfile.epilogue` and `spacktainer: files:`),
//! and `<name>.def` (Singularity definitions built from another image).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::spack::environment::Environment;
use crate::yaml::{self, Value, YamlError};

/// The folder, under the repository root, holding the definitions.
pub const DEFINITIONS_DIR: &str = "container_definitions";
pub const EPILOGUE_FILE: &str = "Dockerfile.epilogue";

/// A file the container copies in: `source` (relative to the repository root, existing, never
/// escaping it) to the absolute `target` path inside the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    pub source: PathBuf,
    pub target: String,
}

/// What a definition builds.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A Spack environment, optionally with a Dockerfile epilogue and files to copy.
    Spack {
        environment: Environment,
        epilogue: Option<PathBuf>,
        files: Vec<FileCopy>,
    },
    /// A Singularity definition bootstrapped from a registry image (`From: image:tag`).
    Singularity { from: String },
}

#[derive(Debug, Clone)]
pub struct ContainerDefinition {
    /// The container (and registry repository) name.
    pub name: String,
    pub arch: String,
    /// The definition file: `<name>.yaml`, `<name>/spack.yaml` or `<name>.def`.
    pub path: PathBuf,
    pub kind: Kind,
}

impl ContainerDefinition {
    /// The user specs of a Spack definition (empty for `.def` containers).
    pub fn specs(&self) -> Vec<String> {
        match &self.kind {
            Kind::Spack { environment, .. } => environment.specs(),
            Kind::Singularity { .. } => Vec::new(),
        }
    }
}

/// A definition that cannot be used; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn invalid(path: &Path, message: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Every definition found, by architecture; architectures are the folders under
/// `container_definitions/` whose name does not start with `_`.
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    pub architectures: Vec<String>,
    pub containers: Vec<ContainerDefinition>,
}

impl Definitions {
    pub fn for_arch<'a>(
        &'a self,
        arch: &'a str,
    ) -> impl Iterator<Item = &'a ContainerDefinition> + 'a {
        self.containers.iter().filter(move |c| c.arch == arch)
    }
}

/// Discover the definitions of the repository at `repo` (the folder holding
/// `container_definitions/`).
pub fn discover(repo: &Path) -> Result<Definitions, DefinitionError> {
    let dir = repo.join(DEFINITIONS_DIR);
    let mut out = Definitions::default();
    for arch_dir in sorted_entries(&dir)? {
        let arch = file_name(&arch_dir);
        if !arch_dir.is_dir() || arch.starts_with('_') || arch.starts_with('.') {
            continue;
        }
        out.architectures.push(arch.clone());
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for entry in sorted_entries(&arch_dir)? {
            let fname = file_name(&entry);
            let def = if entry.is_dir() {
                let spack_yaml = entry.join("spack.yaml");
                if !spack_yaml.is_file() {
                    return Err(invalid(&entry, "a definition folder needs a spack.yaml"));
                }
                read_spack_definition(repo, &arch, &fname, &spack_yaml, Some(&entry))?
            } else if let Some(name) = fname.strip_suffix(".yaml") {
                read_spack_definition(repo, &arch, name, &entry, None)?
            } else if let Some(name) = fname.strip_suffix(".def") {
                read_singularity_definition(&arch, name, &entry)?
            } else {
                continue;
            };
            if let Some(first) = seen.insert(def.name.clone(), def.path.clone()) {
                return Err(invalid(
                    &def.path,
                    format!(
                        "container `{}` is also defined by {}",
                        def.name,
                        first.display()
                    ),
                ));
            }
            out.containers.push(def);
        }
    }
    Ok(out)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DefinitionError> {
    let io = |source| DefinitionError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort();
    Ok(entries)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A valid registry repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_valid_repository_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
    {
        return false;
    }
    // Separators: one `.`, one or two `_`, or any run of `-`; never mixed or longer.
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let sep = &name[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// The shape of a Spack definition file; unknown keys are errors that point at their line.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionDoc {
    spack: Value,
    #[serde(default)]
    spacktainer: Option<SpacktainerSection>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SpacktainerSection {
    /// `source:target` pairs.
    #[serde(default)]
    files: Vec<String>,
}

/// An error at the first place `needle` appears in `text` (or the file as a whole).
fn located(path: &Path, text: &str, needle: &str, message: String) -> DefinitionError {
    match text.find(needle) {
        Some(at) => {
            let line = text[..at].matches('\n').count() + 1;
            let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
            YamlError::Located {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
            .into()
        }
        None => invalid(path, message),
    }
}

/// A container name: a valid registry repository name without `__`, which separates the name
/// from the tag in SIF file names (`<name>__<tag>.sif`): `a__b__1.0.sif` could not be read back.
fn check_name(path: &Path, name: &str) -> Result<(), DefinitionError> {
    if !is_valid_repository_name(name) {
        return Err(invalid(
            path,
            format!(
                "`{name}` is not a valid registry repository name (lowercase letters, digits, and . _ - between them)"
            ),
        ));
    }
    if name.contains("__") {
        return Err(invalid(
            path,
            format!(
                "`{name}`: container names may not contain `__`, which separates the name from the tag in SIF file names"
            ),
        ));
    }
    Ok(())
}

fn read_spack_definition(
    repo: &Path,
    arch: &str,
    name: &str,
    path: &Path,
    folder: Option<&Path>,
) -> Result<ContainerDefinition, DefinitionError> {
    check_name(path, name)?;
    let text = std::fs::read_to_string(path).map_err(|source| DefinitionError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: DefinitionDoc = yaml::parse(path, &text)?;
    let mut root = yaml::Mapping::new();
    root.insert(Value::String("spack".into()), doc.spack);
    let environment = Environment::from_value(path, Value::Mapping(root))?;
    if environment.specs().is_empty() {
        return Err(located(
            path,
            &text,
            "specs",
            "`spack.specs` lists no spec: the first spec names the main package".into(),
        ));
    }
    let files = doc
        .spacktainer
        .map(|s| s.files)
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            parse_file_copy(repo, entry)
                .map_err(|m| located(path, &text, entry, format!("files entry `{entry}`: {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let epilogue = folder
        .map(|f| f.join(EPILOGUE_FILE))
        .filter(|p| p.is_file());
    Ok(ContainerDefinition {
        name: name.to_string(),
        arch: arch.to_string(),
        path: path.to_path_buf(),
        kind: Kind::Spack {
            environment,
            epilogue,
            files,
        },
    })
}

/// Parse and check one `source:target` entry.
pub fn parse_file_copy(repo: &Path, entry: &str) -> Result<FileCopy, String> {
    let parts: Vec<&str> = entry.split(':').collect();
    let [source, target] = parts.as_slice() else {
        return Err(format!(
            "needs exactly one `:` between source and target, found {}",
            parts.len() - 1
        ));
    };
    let src = Path::new(source);
    if source.is_empty() || src.is_absolute() {
        return Err("the source must be a path relative to the repository".into());
    }
    if src
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("the source may not leave the repository (`..`)".into());
    }
    if !target.starts_with('/') {
        return Err("the target must be an absolute path in the image".into());
    }
    let full = repo.join(src);
    let (Ok(real), Ok(real_repo)) = (full.canonicalize(), repo.canonicalize()) else {
        return Err(format!("the source {} does not exist", full.display()));
    };
    // A symlink inside the repository may still point outside it.
    if !real.starts_with(&real_repo) {
        return Err("the source resolves to a path outside the repository".into());
    }
    Ok(FileCopy {
        source: src.to_path_buf(),
        target: target.to_string(),
    })
}

fn read_singularity_definition(
    arch: &str,
    name: &str,
    path: &Path,
) -> Result<ContainerDefinition, DefinitionError> {
    check_name(path, name)?;
    let text = std::fs::read_to_string(path).map_err(|source| DefinitionError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let from = crate::sif::definition::SingularityDef::parse(path, &text)
        .map_err(|e| invalid(path, e.reason))?
        .from;
    Ok(ContainerDefinition {
        name: name.to_string(),
        arch: arch.to_string(),
        path: path.to_path_buf(),
        kind: Kind::Singularity { from },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in [
            "brainbuilder",
            "neurodamus-neocortex",
            "py_foo",
            "a__b",
            "a.b",
            "x--y",
            "n3",
        ] {
            assert!(is_valid_repository_name(ok), "{ok}");
        }
        for bad in [
            "", "Upper", "-a", "a-", "a..b", "a___b", "a_-b", "a b", "a/b",
        ] {
            assert!(!is_valid_repository_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_name_a_sif_file_name_cannot_give_back_is_refused() {
        let repo = tempfile::tempdir().unwrap();
        let dir = repo.path().join(DEFINITIONS_DIR).join("amd64");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a__b.yaml"), "spack:\n  specs: [zlib]\n").unwrap();
        let err = discover(repo.path()).unwrap_err().to_string();
        assert!(err.contains("a__b.yaml") && err.contains("`__`"), "{err}");
        std::fs::remove_file(dir.join("a__b.yaml")).unwrap();
        std::fs::write(dir.join("x__y.def"), "Bootstrap: docker\nFrom: a/b:1\n").unwrap();
        let err = discover(repo.path()).unwrap_err().to_string();
        assert!(err.contains("x__y.def"), "{err}");
    }

    #[test]
    fn file_copy_rules() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(repo.path().join("spacktainer/files")).unwrap();
        std::fs::write(repo.path().join("spacktainer/files/s.sh"), "x").unwrap();
        let ok = parse_file_copy(repo.path(), "spacktainer/files/s.sh:/opt/s.sh").unwrap();
        assert_eq!(ok.target, "/opt/s.sh");
        for (entry, why) in [
            ("spacktainer/files/s.sh", "exactly one"),
            ("a:b:c", "exactly one"),
            ("../x:/opt/x", "leave the repository"),
            ("/etc/passwd:/x", "relative"),
            ("spacktainer/files/s.sh:opt", "absolute"),
            ("missing.sh:/opt/m", "does not exist"),
        ] {
            let err = parse_file_copy(repo.path(), entry).unwrap_err();
            assert!(err.contains(why), "{entry}: {err}");
        }
    }
}
