//! What an environment's concretization depends on, and whether an earlier one can be reused.
//!
//! Spack's concretizer gives the same result for the same inputs: the environment (`spack.yaml`
//! and what it includes), Spack itself and the package repositories it reads, and the
//! environment of the job that runs it (with `concretizer: reuse`, also what the caches hold:
//! a reused lockfile's specs are checked against the cache, and missing ones are built).
//! `prepare` writes these inputs beside each environment (`inputs.json`); `record` keeps them
//! beside the concretized `spack.lock`; the next pipeline reuses that lockfile when its own
//! inputs are the same, and concretizes again only the environments whose inputs changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checksum::sha256_hex;

/// The file name of the inputs, beside an environment's `spack.yaml` and beside its recorded
/// `spack.lock`.
pub const FILE: &str = "inputs.json";
/// Beside an environment whose inputs cannot all be known: why (it is concretized every time).
pub const NOT_REUSABLE_FILE: &str = "not-reusable.txt";

/// The inputs of one environment's concretization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// sha256 of the merged `spack.yaml` as written: the template and the definition, the
    /// architecture's base requirement, the mirror and the CI section.
    pub spack_yaml: String,
    /// The builder image by digest. Spack's commit and the builtin packages' commit are the
    /// builder's labels, so part of its configuration and of its digest; so are the compilers
    /// Spack finds and the site configuration (mirrors, package repository).
    pub builder: String,
    /// Each package repository and included configuration the environment reads (as written
    /// in `spack.yaml`), by the checksum of its files.
    pub sources: BTreeMap<String, String>,
    /// sha256 of the architecture's CI variables: the environment `spack concretize` runs in.
    pub variables: String,
}

/// Why an earlier concretization cannot be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// Nothing was recorded for the environment.
    NotRecorded,
    /// The recorded inputs could not be read (another version of the tools wrote them, or
    /// they are damaged): concretizing again is always safe.
    Unreadable(String),
    /// These inputs differ from the recorded ones.
    Changed(Vec<String>),
    /// The recorded lockfile is not the one the inputs were recorded with.
    LockfileMismatch,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::NotRecorded => f.write_str("no earlier concretization recorded"),
            Stale::Unreadable(why) => write!(f, "the recorded inputs are unreadable ({why})"),
            Stale::Changed(what) => write!(f, "changed: {}", what.join(", ")),
            Stale::LockfileMismatch => {
                f.write_str("the recorded spack.lock is not the one its inputs were recorded with")
            }
        }
    }
}

/// Recorded inputs: the inputs and the sha256 of the lockfile they produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    pub key: String,
    pub inputs: Inputs,
    pub lockfile_sha256: String,
}

impl Inputs {
    /// The key the inputs are known by: sha256 of their canonical JSON.
    pub fn key(&self) -> String {
        // Field order is fixed by the struct and the sources are sorted: the same inputs
        // give the same bytes on every machine.
        sha256_hex(&serde_json::to_vec(self).expect("plain strings serialize"))
    }

    /// The inputs as `prepare` writes them beside the environment.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("plain strings serialize")
    }

    /// Read the inputs `prepare` wrote; `what` names the file.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Inputs, super::FormatError> {
        serde_json::from_slice(bytes).map_err(|source| super::FormatError::Json {
            what: what.to_string(),
            source,
        })
    }

    /// The record kept beside the lockfile these inputs produced.
    pub fn record(&self, lockfile: &[u8]) -> Recorded {
        Recorded {
            key: self.key(),
            inputs: self.clone(),
            lockfile_sha256: sha256_hex(lockfile),
        }
    }

    /// What differs from `earlier`, by name; empty when nothing does.
    pub fn changes(&self, earlier: &Inputs) -> Vec<String> {
        let mut changed = Vec::new();
        if self.spack_yaml != earlier.spack_yaml {
            changed.push("spack.yaml".to_string());
        }
        if self.builder != earlier.builder {
            changed.push("the builder image (Spack, its packages or compilers)".to_string());
        }
        let names: std::collections::BTreeSet<&String> =
            self.sources.keys().chain(earlier.sources.keys()).collect();
        for name in names {
            if self.sources.get(name) != earlier.sources.get(name) {
                changed.push(name.clone());
            }
        }
        if self.variables != earlier.variables {
            changed.push("the architecture's CI variables".to_string());
        }
        changed
    }

    /// Whether the lockfile recorded as `recorded` (its record's bytes) with `lockfile` can
    /// stand for these inputs' concretization.
    pub fn reusable(&self, recorded: Option<&[u8]>, lockfile: &[u8]) -> Result<(), Stale> {
        let Some(bytes) = recorded else {
            return Err(Stale::NotRecorded);
        };
        let recorded: Recorded =
            serde_json::from_slice(bytes).map_err(|e| Stale::Unreadable(e.to_string()))?;
        let changed = self.changes(&recorded.inputs);
        if !changed.is_empty() {
            return Err(Stale::Changed(changed));
        }
        // A record written by hand or half-copied: its key must be its inputs' key.
        if recorded.key != self.key() {
            return Err(Stale::Unreadable("its key is not its inputs' key".into()));
        }
        if recorded.lockfile_sha256 != sha256_hex(lockfile) {
            return Err(Stale::LockfileMismatch);
        }
        Ok(())
    }
}

impl Recorded {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("plain strings serialize")
    }
}

/// sha256 of CI variables as `name=value` lines, sorted by name.
pub fn variables_checksum<'a>(variables: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let sorted: BTreeMap<&str, &str> = variables.into_iter().collect();
    let text: String = sorted.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    sha256_hex(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            spack_yaml: sha256_hex(b"spack: {specs: [zlib]}"),
            builder: "registry/builder@sha256:aa".into(),
            sources: BTreeMap::from([("$CI_PROJECT_DIR/repo".into(), "11".into())]),
            variables: variables_checksum([("A", "1")]),
        }
    }

    #[test]
    fn the_same_inputs_reuse_the_lockfile_they_were_recorded_with() {
        let lock = b"{\"lock\": 1}";
        let record = inputs().record(lock).to_json();
        assert_eq!(inputs().reusable(Some(&record), lock), Ok(()));
        assert_eq!(
            inputs().reusable(Some(&record), b"{\"lock\": 2}"),
            Err(Stale::LockfileMismatch),
            "a lockfile replaced after its inputs were recorded"
        );
        assert_eq!(inputs().reusable(None, lock), Err(Stale::NotRecorded));
    }

    #[test]
    fn each_changed_input_is_named() {
        let lock = b"{}";
        let record = inputs().record(lock).to_json();
        let mut now = inputs();
        now.builder = "registry/builder@sha256:bb".into();
        now.sources
            .insert("$CI_PROJECT_DIR/repo".into(), "22".into());
        now.sources.insert("/other".into(), "33".into());
        let Err(Stale::Changed(changed)) = now.reusable(Some(&record), lock) else {
            panic!("changed inputs reused");
        };
        assert_eq!(
            changed,
            [
                "the builder image (Spack, its packages or compilers)",
                "$CI_PROJECT_DIR/repo",
                "/other",
            ]
        );
        let mut yaml = inputs();
        yaml.spack_yaml = sha256_hex(b"spack: {specs: [zlib@1.3]}");
        assert_eq!(
            yaml.reusable(Some(&record), lock),
            Err(Stale::Changed(vec!["spack.yaml".into()]))
        );
        let mut vars = inputs();
        vars.variables = variables_checksum([("A", "2")]);
        assert!(vars.reusable(Some(&record), lock).is_err());
    }

    #[test]
    fn a_damaged_or_forged_record_is_not_reused() {
        let lock = b"{}";
        assert!(matches!(
            inputs().reusable(Some(b"{not json"), lock),
            Err(Stale::Unreadable(_))
        ));
        let mut forged = inputs().record(lock);
        forged.key = "0".repeat(64);
        assert!(matches!(
            inputs().reusable(Some(&forged.to_json()), lock),
            Err(Stale::Unreadable(_))
        ));
    }

    #[test]
    fn the_key_does_not_depend_on_the_order_variables_are_given_in() {
        assert_eq!(
            variables_checksum([("A", "1"), ("B", "2")]),
            variables_checksum([("B", "2"), ("A", "1")])
        );
        let mut other = inputs();
        other.variables = variables_checksum([("A", "1"), ("B", "2")]);
        assert_ne!(other.key(), inputs().key());
    }
}
