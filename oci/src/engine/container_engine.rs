//! What a container engine is to the tools: the [`ContainerEngine`] requests and their
//! contract, what a build is asked for, and the errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bollard::Docker;
use futures::future::{BoxFuture, LocalBoxFuture};

use crate::registry::Login;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("DOCKER_HOST={host}: {message}")]
    Address { host: String, message: String },
    #[error("could not reach the Docker daemon at {host}: {message}")]
    Unreachable { host: String, message: String },
    #[error("building {tag} failed: {message}")]
    Build { tag: String, message: String },
    #[error("reading the build context {}: {source}", path.display())]
    Context {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pushing {image} failed: {message}")]
    Push { image: String, message: String },
    #[error("pulling {image} failed: {message}")]
    Pull { image: String, message: String },
    #[error("{image}: {message}")]
    Inspect { image: String, message: String },
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The folder holding the Dockerfile and what it copies.
    pub context: PathBuf,
    /// Files added to the context (generated Dockerfiles, scripts): relative path → content.
    pub extra_files: BTreeMap<String, Vec<u8>>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// BuildKit secrets: id → file holding the value (`RUN --mount=type=secret,id=…`).
    pub secrets: BTreeMap<String, PathBuf>,
    /// Build without the cache: secrets are not part of the cache key, so a changed secret
    /// needs it.
    pub no_cache: bool,
    /// Target architecture (`amd64`, `arm64`); the daemon's own when not given.
    pub architecture: Option<String>,
    /// Build with BuildKit even without secrets (the Dockerfile uses `RUN --mount`).
    pub buildkit: bool,
    /// The stage to build (the last one when not given).
    pub target: Option<String>,
    /// Registry `host[:port]` → the login the daemon pulls the `FROM` images from it with
    /// (handed over in the request, never a build argument or a file in the context).
    pub registry_logins: Vec<(String, Login)>,
}

/// What builds and moves images, as the tools use it. [`DockerEngine`](super::DockerEngine) and
/// [`MemoryEngine`](super::MemoryEngine) keep the contract `tests/tests/engine.rs` checks: a built image carries the request's
/// labels, a pushed one reaches its registry with them, and each failure is an
/// [`EngineError`] naming the image, file or folder concerned.
pub trait ContainerEngine: Send + Sync + std::fmt::Debug {
    /// Where the engine is, for messages.
    fn host(&self) -> &str;
    /// The Docker client, for a real daemon.
    fn docker(&self) -> Option<&Docker> {
        None
    }
    /// Build `tag` from `req`, handing each log line to `on_log`. The only request whose
    /// future may stay on its thread: BuildKit's session (bollard) is not `Send`.
    fn build<'a>(
        &'a self,
        tag: &'a str,
        req: &'a BuildRequest,
        on_log: &'a mut dyn FnMut(&str),
    ) -> LocalBoxFuture<'a, Result<(), EngineError>>;
    /// The labels of a local image.
    fn labels<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, EngineError>>;
    /// The content of the file `path` in the local image `image`.
    fn read_file<'a>(
        &'a self,
        image: &'a str,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, EngineError>>;
    /// Remove the local image `image` (its tag).
    fn remove_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Give the local image `source` the name `target`.
    fn tag<'a>(
        &'a self,
        source: &'a str,
        target: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Pull `image` for `arch` unless it is here already.
    fn pull<'a>(
        &'a self,
        image: &'a str,
        arch: &'a str,
        login: Option<&'a Login>,
    ) -> BoxFuture<'a, Result<(), EngineError>>;
    /// Push `image` (`registry/repository:tag`).
    fn push<'a>(
        &'a self,
        image: &'a str,
        login: Option<&'a Login>,
    ) -> BoxFuture<'a, Result<(), EngineError>>;
}

/// The daemon's architecture in Docker's words (`amd64`, `arm64`).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
