//! Registries spoken to over plain HTTP though they are not on this machine: named by the user
//! (`SPACKTAINERIZAH_INSECURE_REGISTRIES`, `--insecure-registry`, or `insecure: true` of a
//! registry in the configuration), as Docker's `insecure-registries`, skopeo's
//! `--tls-verify=false` and crane's `--insecure` allow. Loopback registries always are.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::reference::registry_host;
use model::env_names;

/// Named during this run (configuration, flags), beside the variable's list.
static ALLOWED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Speak to `registry` (`host[:port]`, or a registry URL with a namespace) over plain HTTP.
pub fn allow(registry: &str) {
    ALLOWED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(registry_host(registry).to_string());
}

/// Whether `registry` was named insecure.
pub fn is_insecure(registry: &str) -> bool {
    let named = std::env::var(env_names::INSECURE_REGISTRIES).unwrap_or_default();
    named
        .split(',')
        .map(str::trim)
        .any(|r| !r.is_empty() && registry_host(r) == registry)
        || ALLOWED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_registries_only() {
        assert!(!is_insecure("lab.example.org:5000"));
        allow("lab.example.org:5000/spacktainers");
        assert!(is_insecure("lab.example.org:5000"));
        assert!(
            !is_insecure("lab.example.org"),
            "another port is another registry"
        );
    }
}
