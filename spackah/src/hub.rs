//! The public hub (Docker Hub, GHCR): where a container goes there, and whether the hub
//! already holds it — what both `plan` and `publish` ask.

use std::collections::BTreeMap;

use model::config::PublicRegistryConfig;
use oci::registry::{ImageRef, RegistryClient, RegistryError};

/// What the hub holds of a container's tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The repository does not exist: only its owner can create it, so nothing is pushed.
    NoRepository,
    UpToDate,
    OtherChecksums,
    Missing,
}

/// `<hub>/<container>:<tag>`.
pub fn target(
    public: &PublicRegistryConfig,
    container: &str,
    tag: &str,
) -> anyhow::Result<ImageRef> {
    Ok(format!("{}/{container}:{tag}", public.url).parse()?)
}

/// Whether the hub holds `target` for `arch` with the labels of `record`.
pub async fn state(
    client: &RegistryClient,
    target: &ImageRef,
    arch: &str,
    record: &BTreeMap<String, String>,
) -> Result<State, RegistryError> {
    if !client.repository_exists(target).await? {
        return Ok(State::NoRepository);
    }
    match client.resolve(target, arch).await {
        Ok(found) if record.iter().all(|(k, v)| found.labels.get(k) == Some(v)) => {
            Ok(State::UpToDate)
        }
        Ok(_) => Ok(State::OtherChecksums),
        Err(e) if e.means_build() => Ok(State::Missing),
        Err(e) => Err(e),
    }
}
