//! Spec strings as users write them (`neurodamus-models+coreneuron@1.2 %gcc ^mpich`): the
//! package name is what the tools need from them.

/// The package name at the front of a spec string, without a namespace (`builtin.zlib` →
/// `zlib`). `None` for an anonymous spec (`+mpi`, `@1.2`, `%gcc`, `model=x`) or an empty one.
pub fn package_name(spec: &str) -> Option<&str> {
    let spec = spec.trim_start();
    let end = spec
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(spec.len());
    let token = &spec[..end];
    // `model=neocortex` is a variant, not a name.
    if token.is_empty() || spec[end..].starts_with('=') {
        return None;
    }
    let name = token.rsplit('.').next().unwrap_or(token);
    (!name.is_empty() && name.starts_with(|c: char| c.is_ascii_alphanumeric())).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_from_realistic_specs() {
        for (spec, name) in [
            (
                "neurodamus-neocortex+coreneuron@1.2 %gcc ^mpich",
                "neurodamus-neocortex",
            ),
            (
                "neurodamus-models~coreneuron+ngv+metabolism model=neocortex",
                "neurodamus-models",
            ),
            (
                "neurodamus-models model=neocortex ~plasticity+coreneuron+caliper",
                "neurodamus-models",
            ),
            ("py-astrovascpy@0.1.5:", "py-astrovascpy"),
            ("  brainbuilder", "brainbuilder"),
            ("builtin.zlib@1.3", "zlib"),
            ("neuron~caliper", "neuron"),
            ("py_foo", "py_foo"),
        ] {
            assert_eq!(package_name(spec), Some(name), "{spec}");
        }
    }

    #[test]
    fn anonymous_specs_have_no_name() {
        for spec in ["", "+mpi", "@1.2", "%gcc@12", "model=x", "^mpich", "   "] {
            assert_eq!(package_name(spec), None, "{spec:?}");
        }
    }

    proptest! {
        #[test]
        fn name_survives_any_suffix(
            name in "[a-z][a-z0-9-]{0,20}",
            suffix in "(@[0-9.:]{1,6}|\\+[a-z]{1,5}|~[a-z]{1,5}| %gcc@12| \\^mpich| [a-z]{1,5}=[a-z]{1,5}){0,4}",
        ) {
            let spec = format!("{name}{suffix}");
            prop_assert_eq!(package_name(&spec), Some(name.as_str()));
        }
    }
}
