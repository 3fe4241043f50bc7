//! Spack's file formats: environments, lockfiles, concrete specs, spec strings, the dependency
//! graph and the binary build cache in both layouts.

pub mod buildcache;
pub mod clearsign;
pub mod environment;
pub mod graph;
pub mod inputs;
pub mod lockfile;
pub mod signature;
pub mod spec;
pub mod spec_string;

/// A Spack file or object whose content is not what Spack writes.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

impl FormatError {
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        FormatError::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }

    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        FormatError::Json {
            what: what.into(),
            source,
        }
    }
}

/// True for a Spack DAG hash: 32 characters of lowercase base32 (`[a-z2-7]`); digits 0, 1, 8
/// and 9 are accepted as Spack's own manifest-name check (`[a-z0-9]{32}`) does.
pub fn is_dag_hash(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}
