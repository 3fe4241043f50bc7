//! The engine in memory: the fake tests use instead of a Docker daemon. It records every build
//! request, keeps the images built as local images carrying the request's labels (not those
//! the Dockerfile or its base would add), and pushes them into a [`MemoryRegistry`] as images
//! with those labels, so that a plan made afterwards sees what was "built". Builds fail on
//! demand.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::{BoxFuture, LocalBoxFuture};

use crate::engine::container_engine::{
    BuildRequest, ContainerEngine, EngineError, host_architecture,
};
use crate::registry::{ImageRef, Login, MemoryRegistry, RegistryClient};

/// A local image of the engine in memory.
#[derive(Debug, Clone)]
struct LocalImage {
    architecture: String,
    labels: BTreeMap<String, String>,
    /// Path in the image → content, as tests put them there.
    files: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Default)]
struct State {
    /// Tag → image.
    images: BTreeMap<String, LocalImage>,
    builds: Vec<(String, BuildRequest)>,
    pushed: Vec<String>,
    /// Tag → the message its build fails with.
    failing: BTreeMap<String, String>,
}

/// An engine in memory pushing to `registry`. Clones share their state: hand one to
/// [`Engine::memory`](super::Engine::memory) and keep another to see what was built and pushed.
#[derive(Debug, Clone)]
pub struct MemoryEngine {
    registry: MemoryRegistry,
    state: Arc<Mutex<State>>,
}

impl MemoryEngine {
    /// An engine without images, pushing to and pulling from `registry`.
    pub fn new(registry: &MemoryRegistry) -> MemoryEngine {
        MemoryEngine {
            registry: registry.clone(),
            state: Arc::default(),
        }
    }

    /// Every build asked for, in order: its tag and request.
    pub fn builds(&self) -> Vec<(String, BuildRequest)> {
        self.state().builds.clone()
    }

    /// Every image pushed, in order.
    pub fn pushed(&self) -> Vec<String> {
        self.state().pushed.clone()
    }

    /// The local images' tags, sorted.
    pub fn images(&self) -> Vec<String> {
        self.state().images.keys().cloned().collect()
    }

    /// Make the builds of `tag` fail with `message` (and log it), as a failing step does.
    pub fn fail_build(&self, tag: &str, message: &str) {
        self.state()
            .failing
            .insert(tag.to_string(), message.to_string());
    }

    /// Put a file into the local image `image` (for [`ContainerEngine::read_file`]).
    pub fn set_file(&self, image: &str, path: &str, content: &[u8]) -> Result<(), EngineError> {
        let mut state = self.state();
        let local = state
            .images
            .get_mut(image)
            .ok_or_else(|| no_such_image(image, "putting a file in it"))?;
        local.files.insert(path.to_string(), content.to_vec());
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn local(&self, image: &str, doing: &str) -> Result<LocalImage, EngineError> {
        self.state()
            .images
            .get(image)
            .cloned()
            .ok_or_else(|| no_such_image(image, doing))
    }

    /// What a real build checks before it starts: the context folder and its Dockerfile.
    fn check_context(tag: &str, req: &BuildRequest) -> Result<(), EngineError> {
        std::fs::read_dir(&req.context).map_err(|source| EngineError::Context {
            path: req.context.clone(),
            source,
        })?;
        if !req.extra_files.contains_key("Dockerfile") && !req.context.join("Dockerfile").is_file()
        {
            return Err(EngineError::Build {
                tag: tag.to_string(),
                message: format!("{} holds no Dockerfile", req.context.display()),
            });
        }
        Ok(())
    }

    fn build_now(
        &self,
        tag: &str,
        req: &BuildRequest,
        on_log: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError> {
        self.state().builds.push((tag.to_string(), req.clone()));
        MemoryEngine::check_context(tag, req)?;
        if let Some(message) = self.state().failing.get(tag).cloned() {
            on_log(&message);
            return Err(EngineError::Build {
                tag: tag.to_string(),
                message,
            });
        }
        on_log(&format!("building {tag} in memory"));
        let image = LocalImage {
            architecture: req
                .architecture
                .clone()
                .unwrap_or_else(|| host_architecture().to_string()),
            labels: req.labels.clone(),
            files: BTreeMap::new(),
        };
        self.state().images.insert(tag.to_string(), image);
        Ok(())
    }

    async fn pull_now(&self, image: &str, arch: &str) -> Result<(), EngineError> {
        if self.state().images.contains_key(image) {
            return Ok(());
        }
        let failed = |message: String| EngineError::Pull {
            image: image.into(),
            message,
        };
        let reference: ImageRef = image.parse().map_err(|e| failed(format!("{e}")))?;
        let resolved = RegistryClient::memory(&self.registry)
            .resolve(&reference, arch)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let local = LocalImage {
            architecture: resolved.architecture,
            labels: resolved.labels,
            files: BTreeMap::new(),
        };
        self.state().images.insert(image.to_string(), local);
        Ok(())
    }

    fn push_now(&self, image: &str) -> Result<(), EngineError> {
        let failed = |message: String| EngineError::Push {
            image: image.into(),
            message,
        };
        let local = self
            .state()
            .images
            .get(image)
            .cloned()
            .ok_or_else(|| failed("an image does not exist locally with this tag".into()))?;
        let reference: ImageRef = image.parse().map_err(|e| failed(format!("{e}")))?;
        self.registry
            .push_image(&reference, &local.architecture, &local.labels)
            .map_err(|e| failed(e.to_string()))?;
        self.state().pushed.push(image.to_string());
        Ok(())
    }
}

fn no_such_image(image: &str, doing: &str) -> EngineError {
    EngineError::Inspect {
        image: image.into(),
        message: format!("{doing}: no such image"),
    }
}

impl ContainerEngine for MemoryEngine {
    fn host(&self) -> &str {
        "memory://"
    }

    fn build<'a>(
        &'a self,
        tag: &'a str,
        req: &'a BuildRequest,
        on_log: &'a mut dyn FnMut(&str),
    ) -> LocalBoxFuture<'a, Result<(), EngineError>> {
        async move { self.build_now(tag, req, on_log) }.boxed_local()
    }

    fn labels<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, EngineError>> {
        async move { Ok(self.local(image, "inspecting")?.labels) }.boxed()
    }

    fn read_file<'a>(
        &'a self,
        image: &'a str,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, EngineError>> {
        async move {
            let doing = format!("reading {path}");
            self.local(image, &doing)?
                .files
                .remove(path)
                .ok_or_else(|| EngineError::Inspect {
                    image: image.into(),
                    message: format!("{doing}: no such file in the image"),
                })
        }
        .boxed()
    }

    fn remove_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            self.state()
                .images
                .remove(image)
                .map(|_| ())
                .ok_or_else(|| no_such_image(image, "removing"))
        }
        .boxed()
    }

    fn tag<'a>(
        &'a self,
        source: &'a str,
        target: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        async move {
            let local = self.local(source, &format!("tagging as {target}"))?;
            self.state().images.insert(target.to_string(), local);
            Ok(())
        }
        .boxed()
    }

    /// The login is not checked: a registry in memory refuses by being told to
    /// ([`MemoryRegistry::deny`]).
    fn pull<'a>(
        &'a self,
        image: &'a str,
        arch: &'a str,
        _login: Option<&'a Login>,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        self.pull_now(image, arch).boxed()
    }

    fn push<'a>(
        &'a self,
        image: &'a str,
        _login: Option<&'a Login>,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        async move { self.push_now(image) }.boxed()
    }
}
