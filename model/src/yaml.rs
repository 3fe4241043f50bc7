//! YAML documents: reading with errors that name the file, line and column, and the recursive
//! merge used to lay a container definition over the Spack environment template.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
pub use serde_norway::{Mapping, Value};

/// A YAML file that could not be read or did not have the expected shape.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `line` and `column` are 1-based, as editors show them.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Located {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl YamlError {
    fn from_serde(path: &Path, err: serde_norway::Error) -> Self {
        let full = err.to_string();
        match err.location() {
            Some(loc) => {
                // The library appends " at line L column C"; the location goes in front instead.
                let message = match full.rfind(" at line ") {
                    Some(i) => full[..i].to_string(),
                    None => full,
                };
                YamlError::Located {
                    path: path.to_path_buf(),
                    line: loc.line(),
                    column: loc.column(),
                    message,
                }
            }
            None => YamlError::Invalid {
                path: path.to_path_buf(),
                message: full,
            },
        }
    }

    pub fn invalid(path: &Path, message: impl Into<String>) -> Self {
        YamlError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Parse `text` (the content of `path`) into `T`; errors point into `path`.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
    serde_norway::from_str(text).map_err(|e| YamlError::from_serde(path, e))
}

/// Read and parse the YAML file at `path`.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Serialize a value as block-style YAML.
pub fn to_string<T: serde::Serialize>(value: &T) -> String {
    // Serializing plain data (maps, sequences, scalars) into a String cannot fail.
    serde_norway::to_string(value).expect("YAML serialization of plain data")
}

/// Two different scalars (or a map against a list) at the same place of a merge.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("conflicting values at `{path}`: {left} (template) vs {right} (definition)")]
pub struct MergeConflict {
    /// Dotted path of the conflict, e.g. `spack.packages.all.require`.
    pub path: String,
    pub left: String,
    pub right: String,
}

/// Merge `overlay` into `base`: maps merge recursively, lists concatenate (an item already
/// present is not added twice), equal leaves are fine, a null on either side yields the other,
/// and two different scalars at the same place are a [`MergeConflict`] naming the dotted path.
pub fn merge(base: &mut Value, overlay: Value) -> Result<(), MergeConflict> {
    merge_at(base, overlay, &mut Vec::new())
}

fn merge_at(base: &mut Value, overlay: Value, path: &mut Vec<String>) -> Result<(), MergeConflict> {
    match (base, overlay) {
        (_, Value::Null) => Ok(()),
        (base @ Value::Null, overlay) => {
            *base = overlay;
            Ok(())
        }
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => {
                        path.push(key_name(&k));
                        merge_at(existing, v, path)?;
                        path.pop();
                    }
                    None => {
                        b.insert(k, v);
                    }
                }
            }
            Ok(())
        }
        (Value::Sequence(b), Value::Sequence(o)) => {
            for item in o {
                if !b.contains(&item) {
                    b.push(item);
                }
            }
            Ok(())
        }
        (Value::Tagged(b), Value::Tagged(o)) if b.tag == o.tag => {
            merge_at(&mut b.value, o.value, path)
        }
        (b, o) if *b == o => Ok(()),
        (b, o) => Err(MergeConflict {
            path: path.join("."),
            left: short(b),
            right: short(&o),
        }),
    }
}

fn key_name(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => short(other),
    }
}

fn short(v: &Value) -> String {
    let s = to_string(v);
    let s = s.trim_end();
    if s.contains('\n') {
        format!("{} …", s.lines().next().unwrap_or_default())
    } else {
        s.to_string()
    }
}

/// Replace `needle` by `replacement` inside every string of `value` (keys untouched).
pub fn substitute(value: &mut Value, needle: &str, replacement: &str) {
    match value {
        Value::String(s) if s.contains(needle) => *s = s.replace(needle, replacement),
        Value::Sequence(seq) => seq
            .iter_mut()
            .for_each(|v| substitute(v, needle, replacement)),
        Value::Mapping(map) => map
            .iter_mut()
            .for_each(|(_, v)| substitute(v, needle, replacement)),
        Value::Tagged(t) => substitute(&mut t.value, needle, replacement),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn maps_merge_recursively_and_lists_concatenate() {
        let mut base =
            y("spack:\n  specs:\n  packages:\n    all:\n      providers:\n        mpi: [mpich]\n");
        let over = y(
            "spack:\n  specs: [a, b]\n  packages:\n    all:\n      providers:\n        mpi: [mpich, openmpi]\n    a:\n      require: '@1'\n",
        );
        merge(&mut base, over).unwrap();
        assert_eq!(
            base,
            y(
                "spack:\n  specs: [a, b]\n  packages:\n    all:\n      providers:\n        mpi: [mpich, openmpi]\n    a:\n      require: '@1'\n"
            )
        );
    }

    #[test]
    fn different_scalars_name_the_dotted_path() {
        let mut base = y("spack:\n  packages:\n    all:\n      require: '%gcc'\n");
        let err = merge(
            &mut base,
            y("spack:\n  packages:\n    all:\n      require: '%clang'\n"),
        )
        .unwrap_err();
        assert_eq!(err.path, "spack.packages.all.require");
        assert!(err.to_string().contains("%gcc") && err.to_string().contains("%clang"));
    }

    #[test]
    fn equal_leaves_are_fine() {
        let mut base = y("a: {b: 1}");
        merge(&mut base, y("a: {b: 1}")).unwrap();
        assert_eq!(base, y("a: {b: 1}"));
    }

    #[test]
    fn map_against_list_is_a_conflict() {
        let mut base = y("a: {b: 1}");
        assert_eq!(merge(&mut base, y("a: [1]")).unwrap_err().path, "a");
    }

    #[test]
    fn errors_carry_line_and_column() {
        let err = parse::<Value>(Path::new("x.yaml"), "a: 1\nb: [\n").unwrap_err();
        match err {
            YamlError::Located { line, .. } => assert!(line >= 2, "{err}"),
            other => panic!("expected a located error, got {other}"),
        }
    }

    #[test]
    fn substitute_replaces_inside_strings() {
        let mut v = y("all:\n  require: '%BASE_ARCH%'\n  other: ['x %BASE_ARCH%']\n");
        substitute(&mut v, "%BASE_ARCH%", "%gcc@12 target=x86_64_v3");
        assert_eq!(
            v,
            y(
                "all:\n  require: '%gcc@12 target=x86_64_v3'\n  other: ['x %gcc@12 target=x86_64_v3']\n"
            )
        );
    }
}
