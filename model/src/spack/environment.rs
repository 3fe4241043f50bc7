//! Spack environments (`spack.yaml`): read with every key kept, merged from the repository's
//! template and a container definition, and written back.

use std::path::Path;

use crate::yaml::{self, Mapping, MergeConflict, Value, YamlError};

/// The placeholder in the template replaced by the architecture's base requirement.
pub const BASE_ARCH_PLACEHOLDER: &str = "%BASE_ARCH%";

/// A Spack environment document. Unknown keys are kept as they are, so writing it back loses
/// nothing but comments.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub doc: Value,
}

impl Environment {
    pub fn read(path: &Path) -> Result<Environment, YamlError> {
        let doc: Value = yaml::read(path)?;
        Environment::from_value(path, doc)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Environment, YamlError> {
        let doc: Value = yaml::parse(path, text)?;
        Environment::from_value(path, doc)
    }

    /// Check the document has a top-level `spack:` mapping and that `specs` is a list of
    /// strings (or empty), so later steps can rely on it.
    pub fn from_value(path: &Path, doc: Value) -> Result<Environment, YamlError> {
        let Some(spack) = doc.get("spack") else {
            return Err(YamlError::invalid(
                path,
                "expected a top-level `spack:` mapping",
            ));
        };
        if !(spack.is_mapping() || spack.is_null()) {
            return Err(YamlError::invalid(path, "`spack:` must be a mapping"));
        }
        match spack.get("specs") {
            None | Some(Value::Null) => {}
            Some(Value::Sequence(items)) => {
                if let Some(bad) = items.iter().find(|v| !v.is_string()) {
                    return Err(YamlError::invalid(
                        path,
                        format!(
                            "`spack.specs` must list spec strings, found {}",
                            yaml::to_string(bad).trim()
                        ),
                    ));
                }
            }
            Some(_) => return Err(YamlError::invalid(path, "`spack.specs` must be a list")),
        }
        Ok(Environment { doc })
    }

    /// The user specs, in order.
    pub fn specs(&self) -> Vec<String> {
        self.doc
            .get("spack")
            .and_then(|s| s.get("specs"))
            .and_then(Value::as_sequence)
            .map(|seq| {
                seq.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The section `key` of the `spack:` mapping, when there is one.
    pub fn section(&self, key: &str) -> Option<&Value> {
        self.doc.get("spack").and_then(|s| s.get(key))
    }

    /// The `spack:` mapping, created when absent or null.
    pub fn spack_mut(&mut self) -> &mut Mapping {
        if !self.doc.is_mapping() {
            self.doc = Value::Mapping(Mapping::new());
        }
        let root = self.doc.as_mapping_mut().expect("made a mapping above");
        let entry = root
            .entry(Value::String("spack".into()))
            .or_insert(Value::Mapping(Mapping::new()));
        if !entry.is_mapping() {
            *entry = Value::Mapping(Mapping::new());
        }
        entry.as_mapping_mut().expect("made a mapping above")
    }

    /// The template with `definition` laid over it (see [`yaml::merge`]).
    pub fn merged(
        template: &Environment,
        definition: &Environment,
    ) -> Result<Environment, MergeConflict> {
        let mut doc = template.doc.clone();
        yaml::merge(&mut doc, definition.doc.clone())?;
        Ok(Environment { doc })
    }

    /// Replace [`BASE_ARCH_PLACEHOLDER`] by the architecture's base requirement.
    pub fn substitute_base_arch(&mut self, requirement: &str) {
        yaml::substitute(&mut self.doc, BASE_ARCH_PLACEHOLDER, requirement);
    }

    pub fn to_yaml(&self) -> String {
        yaml::to_string(&self.doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "spack:\n  specs:\n  packages:\n    all:\n      require: \"%BASE_ARCH%\"\n      providers:\n        mpi: [mpich]\n  view: false\n  unknown_key: {kept: true}\n";

    #[test]
    fn merge_then_substitute_keeps_unknown_keys() {
        let p = Path::new("t.yaml");
        let template = Environment::parse(p, TEMPLATE).unwrap();
        let def = Environment::parse(
            Path::new("d.yaml"),
            "spack:\n  specs:\n    - neurodamus-models model=neocortex\n  packages:\n    all:\n      providers:\n        mpi: [mpich]\n",
        )
        .unwrap();
        let mut env = Environment::merged(&template, &def).unwrap();
        env.substitute_base_arch("%gcc@12 os=ubuntu22.04 target=x86_64_v3");
        assert_eq!(env.specs(), vec!["neurodamus-models model=neocortex"]);
        let text = env.to_yaml();
        assert!(
            text.contains("require: '%gcc@12 os=ubuntu22.04 target=x86_64_v3'"),
            "{text}"
        );
        assert!(text.contains("kept: true"));
        // Round trip: what we write parses to the same document.
        assert_eq!(Environment::parse(p, &text).unwrap(), env);
    }

    #[test]
    fn conflicting_requirement_names_path() {
        let template = Environment::parse(Path::new("t"), TEMPLATE).unwrap();
        let def = Environment::parse(
            Path::new("d"),
            "spack:\n  packages:\n    all:\n      require: '%clang'\n",
        )
        .unwrap();
        assert_eq!(
            Environment::merged(&template, &def).unwrap_err().path,
            "spack.packages.all.require"
        );
    }

    #[test]
    fn specs_must_be_strings() {
        let err = Environment::parse(Path::new("bad.yaml"), "spack:\n  specs:\n    - {a: 1}\n")
            .unwrap_err();
        assert!(err.to_string().starts_with("bad.yaml"), "{err}");
        assert!(Environment::parse(Path::new("x"), "foo: 1\n").is_err());
    }
}
