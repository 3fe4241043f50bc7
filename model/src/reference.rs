//! Image references: `host[:port]/name/path:tag` or `…@sha256:…`, with Docker Hub's defaults.

use std::fmt;
use std::str::FromStr;

/// Docker Hub's registry API host, for references without a registry part.
pub const DOCKER_HUB: &str = "registry-1.docker.io";
/// The names Docker Hub goes by in references.
const DOCKER_HUB_NAMES: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// `host[:port]` of a registry URL (`host[:port][/namespace]`).
pub fn registry_host(url: &str) -> &str {
    url.split('/').next().unwrap_or(url)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` of the registry API.
    pub registry: String,
    /// Repository name (`library/busybox`, `hpc/spacktainers/builder`).
    pub repository: String,
    /// A tag or a digest (`sha256:…`).
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{input}`: {reason}")]
pub struct InvalidReference {
    pub input: String,
    pub reason: String,
}

impl ImageRef {
    pub fn is_digest(&self) -> bool {
        self.reference.contains(':')
    }

    /// The same repository at another tag or digest.
    pub fn with_reference(&self, reference: &str) -> ImageRef {
        ImageRef {
            reference: reference.to_string(),
            ..self.clone()
        }
    }
}

impl FromStr for ImageRef {
    type Err = InvalidReference;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| InvalidReference {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        // A tag is after the last `:` that comes after the last `/` (a port has a `/` after it).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ if name.contains('/') => (DOCKER_HUB.to_string(), name.to_string()),
            _ => (DOCKER_HUB.to_string(), format!("library/{name}")),
        };
        // Docker Hub under any of its names, its official images under `library/`, as Docker
        // reads them.
        let (registry, repository) = if DOCKER_HUB_NAMES.contains(&registry.as_str()) {
            let repository = if repository.contains('/') {
                repository
            } else {
                format!("library/{repository}")
            };
            (DOCKER_HUB.to_string(), repository)
        } else {
            (registry, repository)
        };
        if !repository
            .split('/')
            .all(crate::definitions::is_valid_repository_name)
        {
            return Err(bad(
                "repository path components are lowercase letters and digits with . _ - between them",
            ));
        }
        let reference = match (digest, tag) {
            (Some(d), _) => {
                let ok = d.split_once(':').is_some_and(|(alg, hex)| {
                    !alg.is_empty()
                        && !hex.is_empty()
                        && hex.bytes().all(|b| b.is_ascii_alphanumeric())
                });
                if !ok {
                    return Err(bad("a digest is `algorithm:hex`"));
                }
                d.to_string()
            }
            (None, Some(t)) => {
                let ok = !t.is_empty()
                    && t.len() <= 128
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                    && !t.starts_with(['.', '-']);
                if !ok {
                    return Err(bad(
                        "a tag has 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`",
                    ));
                }
                t.to_string()
            }
            (None, None) => "latest".to_string(),
        };
        Ok(ImageRef {
            registry,
            repository,
            reference,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.is_digest() { '@' } else { ':' };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r: ImageRef = "127.0.0.1:5000/hpc/builder:2026.11.29-my-branch"
            .parse()
            .unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "hpc/builder", "2026.11.29-my-branch")
        );
        let r: ImageRef = "bluebrain/nexus-storage:latest".parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            (DOCKER_HUB, "bluebrain/nexus-storage")
        );
        let r: ImageRef = "busybox".parse().unwrap();
        assert_eq!(
            (r.repository.as_str(), r.reference.as_str()),
            ("library/busybox", "latest")
        );
        let r: ImageRef = "localhost:5000/x@sha256:abcd".parse().unwrap();
        assert!(r.is_digest());
        assert_eq!(r.to_string(), "localhost:5000/x@sha256:abcd");
        // Docker Hub, however it is named.
        for name in [
            "busybox",
            "docker.io/busybox",
            "index.docker.io/library/busybox:latest",
            "registry-1.docker.io/busybox",
            "docker.io/library/busybox",
        ] {
            let r: ImageRef = name.parse().unwrap();
            assert_eq!(
                r.to_string(),
                "registry-1.docker.io/library/busybox:latest",
                "{name}"
            );
        }
        let r: ImageRef = "docker.io/bluebrain/spack:1".parse().unwrap();
        assert_eq!(r.repository, "bluebrain/spack");
        for bad in ["Upper/x", "x:+tag", "x@nodigest", "x:-t"] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }
}
