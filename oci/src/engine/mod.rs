//! Container engines: what builds, tags, pulls and pushes images. The Docker daemon
//! ([`DockerEngine`]) or one in memory ([`MemoryEngine`], the fake tests use), behind the
//! [`Engine`] handle the tools hold.

mod address;
mod base_images;
mod container_engine;
mod docker;
mod memory;

use std::collections::BTreeMap;
use std::sync::Arc;

use bollard::Docker;

use crate::registry::Login;
pub use address::EngineAddress;
pub use base_images::{base_images, base_registries};
pub use container_engine::{BuildRequest, ContainerEngine, EngineError, host_architecture};
pub use docker::{DockerEngine, context_tarball};
pub use memory::MemoryEngine;

/// A container engine. Cloning is cheap; clones share the engine.
#[derive(Debug, Clone)]
pub struct Engine {
    api: Arc<dyn ContainerEngine>,
}

impl Engine {
    /// Connect where Docker's own clients would ([`EngineAddress::from_env`]) and agree on an
    /// API version the daemon speaks.
    pub async fn connect() -> Result<Engine, EngineError> {
        Engine::connect_to(&EngineAddress::from_env()?).await
    }

    pub async fn connect_to(address: &EngineAddress) -> Result<Engine, EngineError> {
        Ok(Engine::over(DockerEngine::connect_to(address).await?))
    }

    /// The engine in memory `fake` (its builds, local images and pushes are shared with it).
    pub fn memory(fake: &MemoryEngine) -> Engine {
        Engine::over(fake.clone())
    }

    /// An engine over `api`.
    pub fn over(api: impl ContainerEngine + 'static) -> Engine {
        Engine { api: Arc::new(api) }
    }

    /// The Docker client, for a real daemon (tests look at what it holds).
    pub fn docker(&self) -> Option<&Docker> {
        self.api.docker()
    }

    /// Where the daemon is, for messages.
    pub fn host(&self) -> &str {
        self.api.host()
    }

    /// Build `tag` from `req`, handing each log line to `on_log`. A build with secrets (or for
    /// another architecture) goes through BuildKit, which gives no log stream: its failures
    /// still carry the failing step and its output.
    pub async fn build(
        &self,
        tag: &str,
        req: &BuildRequest,
        mut on_log: impl FnMut(&str),
    ) -> Result<(), EngineError> {
        self.api.build(tag, req, &mut on_log).await
    }

    /// The labels of a local image.
    pub async fn labels(&self, image: &str) -> Result<BTreeMap<String, String>, EngineError> {
        self.api.labels(image).await
    }

    /// The content of the file `path` in the local image `image` (read from a container that is
    /// created, never started, and removed).
    pub async fn read_file(&self, image: &str, path: &str) -> Result<Vec<u8>, EngineError> {
        self.api.read_file(image, path).await
    }

    /// Remove the local image `image` (its tag; layers other images share stay).
    pub async fn remove_image(&self, image: &str) -> Result<(), EngineError> {
        self.api.remove_image(image).await
    }

    /// Give the local image `source` the name `target` (`registry/repository:tag`).
    pub async fn tag(&self, source: &str, target: &str) -> Result<(), EngineError> {
        self.api.tag(source, target).await
    }

    /// Pull `image` for `arch` unless the daemon has it already (a job other than the one that
    /// built it).
    pub async fn pull(
        &self,
        image: &str,
        arch: &str,
        login: Option<&Login>,
    ) -> Result<(), EngineError> {
        self.api.pull(image, arch, login).await
    }

    /// Push `image` (`registry/repository:tag`), retrying transient failures.
    pub async fn push(&self, image: &str, login: Option<&Login>) -> Result<(), EngineError> {
        self.api.push(image, login).await
    }
}
