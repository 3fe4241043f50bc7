//! Which Spack packages still exist, by name: Spack ≥ 1.0 spells a package's module `py_foo`
//! or `_7zip` where specs say `py-foo` and `7zip`, so names are compared in one normal form.

use std::collections::HashSet;

/// `name` in the form every spelling of it shares: `-` for `_`, no leading `_`, lowercase.
pub fn normalise(name: &str) -> String {
    name.trim_start_matches('_')
        .replace('_', "-")
        .to_ascii_lowercase()
}

/// Package names, normalised so `py_foo`, `py-foo` and `_7zip`/`7zip` match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packages {
    names: HashSet<String>,
}

impl Packages {
    pub fn insert(&mut self, name: &str) {
        self.names.insert(normalise(name));
    }

    pub fn contains(&self, package: &str) -> bool {
        self.names.contains(&normalise(package))
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Packages {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> Packages {
        let mut out = Packages::default();
        for n in names {
            out.insert(n.as_ref());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_name_matches() {
        let p: Packages = ["py_foo", "_7zip", "ZLib"].into_iter().collect();
        assert!(p.contains("py-foo") && p.contains("py_foo"));
        assert!(p.contains("7zip") && p.contains("_7zip"));
        assert!(p.contains("zlib"));
        assert!(!p.contains("py-bar"));
        assert_eq!(p.len(), 3);
    }
}
