//! Registries spoken to over plain HTTP though they are not on this machine: named by the user
//! (`SPACKTAINERIZAH_INSECURE_REGISTRIES`, `--insecure-registry`, or `insecure: true` of a
//! registry in the configuration), as Docker's `insecure-registries`, skopeo's
//! `--tls-verify=false` and crane's `--insecure` allow. Loopback registries always are.

use std::collections::BTreeSet;

use model::env_names;
use model::reference::registry_host;

/// The registries of one run spoken to over plain HTTP, besides loopback ones: a value handed
/// to the registry clients, never process-wide state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Insecure {
    hosts: BTreeSet<String>,
}

impl Insecure {
    /// `named` (configuration, flags) and those of `SPACKTAINERIZAH_INSECURE_REGISTRIES`.
    pub fn from_env_and<S: AsRef<str>>(named: impl IntoIterator<Item = S>) -> Insecure {
        let listed = std::env::var(env_names::INSECURE_REGISTRIES).unwrap_or_default();
        Insecure::named(
            listed
                .split(',')
                .map(str::to_string)
                .chain(named.into_iter().map(|s| s.as_ref().to_string())),
        )
    }

    /// Exactly `named` (`host[:port]`, or registry URLs with a namespace).
    pub fn named<S: AsRef<str>>(named: impl IntoIterator<Item = S>) -> Insecure {
        Insecure {
            hosts: named
                .into_iter()
                .map(|r| registry_host(r.as_ref().trim()).to_string())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// Whether `registry` (`host[:port]`) is spoken to over plain HTTP: loopback ones always.
    pub fn contains(&self, registry: &str) -> bool {
        let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
        host == "localhost"
            || host.starts_with("127.")
            || host == "[::1]"
            || self.hosts.contains(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_registries_and_loopback_only() {
        let insecure = Insecure::named(["lab.example.org:5000/spacktainers"]);
        assert!(insecure.contains("lab.example.org:5000"));
        assert!(
            !insecure.contains("lab.example.org"),
            "another port is another registry"
        );
        assert!(!Insecure::default().contains("lab.example.org:5000"));
        assert!(Insecure::default().contains("127.0.0.1:5000"));
        assert!(Insecure::default().contains("localhost"));
    }
}
