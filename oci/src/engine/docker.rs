//! The Docker Engine (bollard): a context folder plus generated files, build arguments and
//! labels, the build log streamed line by line; builds that need secrets go through BuildKit's
//! gRPC session with secret mounts that leave nothing in the image. Both pull their base images
//! with the registry logins given. Then tag and push with credentials from named variables.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::grpc::build::{
    ImageBuildFrontendOptions, ImageBuildLoadInput, ImageBuildPlatform, SecretSource,
};
use bollard::grpc::driver::Build;
use bollard::grpc::driver::moby::Moby;
use futures::FutureExt;
use futures::StreamExt;
use futures::future::{BoxFuture, LocalBoxFuture};

use crate::engine::address::EngineAddress;
use crate::engine::container_engine::{
    BuildRequest, ContainerEngine, EngineError, host_architecture,
};
use crate::registry::Login;
use model::reference::DOCKER_HUB;

/// A registry login as the daemon takes it with a pull or push (in the request, never stored).
fn docker_credentials(login: &Login) -> DockerCredentials {
    DockerCredentials {
        username: Some(login.user.clone()),
        password: Some(login.secret.expose().to_string()),
        ..DockerCredentials::default()
    }
}

/// Whether a local image whose architecture is `local` (none known: an old daemon) serves a
/// job for `wanted`: a multi-platform tag the daemon pulled for another architecture does not.
fn local_image_serves(local: Option<&str>, wanted: &str) -> bool {
    local.is_none_or(|a| a == wanted)
}

/// The key the classic builder looks a registry's login up by: Docker Hub's is its historical
/// index URL, every other registry's its `host[:port]`.
fn classic_auth_key(registry: &str) -> String {
    if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".into()
    } else {
        registry.into()
    }
}

/// Push attempts before a transient failure is final.
const PUSH_ATTEMPTS: u32 = 3;

/// Seconds a request to the daemon may take (builds stream for hours; each read is bounded).
const TIMEOUT_SECS: u64 = 600;

/// A Docker daemon.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    host: String,
}

impl DockerEngine {
    /// Connect to the daemon at `address` and agree on an API version it speaks.
    pub async fn connect_to(address: &EngineAddress) -> Result<DockerEngine, EngineError> {
        let host = address.to_string();
        let unreachable = |e: bollard::errors::Error| EngineError::Unreachable {
            host: host.clone(),
            message: e.to_string(),
        };
        let version = bollard::API_DEFAULT_VERSION;
        let docker = match address {
            EngineAddress::Unix(path) => {
                Docker::connect_with_unix(&path.to_string_lossy(), TIMEOUT_SECS, version)
            }
            EngineAddress::Tcp(addr) => Docker::connect_with_http(addr, TIMEOUT_SECS, version),
            EngineAddress::Tls { addr, cert_path } => {
                for file in ["ca.pem", "cert.pem", "key.pem"] {
                    let path = cert_path.join(file);
                    if !path.is_file() {
                        return Err(EngineError::Address {
                            host: host.clone(),
                            message: format!(
                                "{} is missing (DOCKER_CERT_PATH holds ca.pem, cert.pem and key.pem)",
                                path.display()
                            ),
                        });
                    }
                }
                Docker::connect_with_ssl(
                    addr,
                    &cert_path.join("key.pem"),
                    &cert_path.join("cert.pem"),
                    &cert_path.join("ca.pem"),
                    TIMEOUT_SECS,
                    version,
                )
            }
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        Ok(DockerEngine { docker, host })
    }

    /// Build `tag` from `req`, handing each log line to `on_log`. A build with secrets (or for
    /// another architecture) goes through BuildKit, which gives no log stream: its failures
    /// still carry the failing step and its output.
    async fn build(
        &self,
        tag: &str,
        req: &BuildRequest,
        on_log: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError> {
        let context = context_tarball(&req.context, &req.extra_files)?;
        let native = req
            .architecture
            .as_deref()
            .is_none_or(|a| a == host_architecture());
        if req.secrets.is_empty() && native && !req.buildkit {
            if let Some(arch) = &req.architecture {
                self.pull_bases(req, arch, on_log).await?;
            }
            return self.build_streamed(tag, req, context, on_log).await;
        }
        on_log(&format!(
            "building {tag} with BuildKit (mounts, secrets or another architecture: no log stream)"
        ));
        let mut opts = ImageBuildFrontendOptions::builder().nocache(req.no_cache);
        if let Some(t) = &req.target {
            opts = opts.target(t);
        }
        for (k, v) in &req.build_args {
            opts = opts.buildarg(k, v);
        }
        for (k, v) in &req.labels {
            opts = opts.label(k, v);
        }
        for (id, path) in &req.secrets {
            opts = opts.set_secret(id, &SecretSource::File(path.clone()));
        }
        if let Some(arch) = &req.architecture {
            opts = opts.platforms(&ImageBuildPlatform {
                architecture: arch.clone(),
                os: "linux".into(),
                variant: None,
            });
        }
        // The session's auth service answers the daemon's questions for these registries.
        let credentials: HashMap<&str, DockerCredentials> = req
            .registry_logins
            .iter()
            .map(|(registry, login)| (registry.as_str(), docker_credentials(login)))
            .collect();
        Moby::new(&self.docker)
            .docker_build(
                tag,
                opts.build(),
                ImageBuildLoadInput::Upload(context.into()),
                Some(credentials),
                None,
            )
            .await
            // The gRPC status carries the failing step and its output.
            .map_err(|e| EngineError::Build {
                tag: tag.to_string(),
                message: e.to_string(),
            })
    }

    /// The `FROM` images of a classic build pulled for `arch` when the daemon has them for
    /// another one: the classic builder (Docker 20.10) takes a local image by its name whatever
    /// the build's platform, and fails later on the mismatch. One that cannot be pulled (only
    /// local) is left to the daemon, unless the daemon's is for another architecture. The build
    /// itself is given no `platform`: Docker 20.10's classic builder then fails `FROM scratch`
    /// ("unknown parent image ID"), and without it an image takes its architecture from its
    /// base, which this pull makes the right one.
    async fn pull_bases(
        &self,
        req: &BuildRequest,
        arch: &str,
        on_log: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError> {
        let dockerfile = match req.extra_files.get("Dockerfile") {
            Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            None => std::fs::read_to_string(req.context.join("Dockerfile")).unwrap_or_default(),
        };
        for (image, reference) in super::base_images(&dockerfile, &req.build_args) {
            let login = req
                .registry_logins
                .iter()
                .find(|(registry, _)| *registry == reference.registry)
                .map(|(_, login)| login);
            let Err(e) = self.pull(&image, arch, login).await else {
                continue;
            };
            // A base the daemon has for another architecture would give this one's tag another
            // architecture's programs: stop here rather than push that.
            let local = self.docker.inspect_image(&image).await.ok();
            if let Some(other) = local
                .and_then(|l| l.architecture)
                .filter(|a| !local_image_serves(Some(a), arch))
            {
                return Err(EngineError::Pull {
                    image,
                    message: format!(
                        "the daemon has it for {other} only and it could not be pulled for {arch}: {e}"
                    ),
                });
            }
            on_log(&format!(
                "{image} not pulled for linux/{arch} ({e}): the daemon's own is used"
            ));
        }
        Ok(())
    }

    /// The daemon's builder, whose progress comes as a stream of log lines.
    async fn build_streamed(
        &self,
        tag: &str,
        req: &BuildRequest,
        context: Vec<u8>,
        on_log: &mut dyn FnMut(&str),
    ) -> Result<(), EngineError> {
        let options = bollard::query_parameters::BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.to_string()),
            nocache: req.no_cache,
            rm: true,
            forcerm: true,
            buildargs: Some(req.build_args.clone().into_iter().collect()),
            target: req.target.clone().unwrap_or_default(),
            labels: Some(req.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        // Sent in the `X-Registry-Config` header: the daemon pulls the `FROM` images with them.
        let credentials: HashMap<String, DockerCredentials> = req
            .registry_logins
            .iter()
            .map(|(registry, login)| {
                let key = classic_auth_key(registry);
                let credentials = DockerCredentials {
                    serveraddress: Some(key.clone()),
                    ..docker_credentials(login)
                };
                (key, credentials)
            })
            .collect();
        let mut stream = self.docker.build_image(
            options,
            Some(credentials),
            Some(bollard::body_full(context.into())),
        );
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let fail =
            |message: String, tail: &std::collections::VecDeque<String>| EngineError::Build {
                tag: tag.to_string(),
                message: format!(
                    "{message}\nlast lines of the build log:\n{}",
                    tail.iter().cloned().collect::<Vec<_>>().join("\n")
                ),
            };
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| fail(e.to_string(), &tail))?;
            for line in info
                .stream
                .iter()
                .flat_map(|s| s.lines())
                .filter(|l| !l.trim().is_empty())
            {
                on_log(line);
                if tail.len() == 20 {
                    tail.pop_front();
                }
                tail.push_back(line.to_string());
            }
            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                return Err(fail(message, &tail));
            }
        }
        Ok(())
    }

    /// The labels of a local image.
    async fn labels(&self, image: &str) -> Result<BTreeMap<String, String>, EngineError> {
        let inspect = self
            .docker
            .inspect_image(image)
            .await
            .map_err(|e| EngineError::Inspect {
                image: image.into(),
                message: e.to_string(),
            })?;
        Ok(inspect
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default()
            .into_iter()
            .collect())
    }

    /// The content of the file `path` in the local image `image` (read from a container that is
    /// created, never started, and removed).
    async fn read_file(&self, image: &str, path: &str) -> Result<Vec<u8>, EngineError> {
        let fail = |message: String| EngineError::Inspect {
            image: image.into(),
            message: format!("reading {path}: {message}"),
        };
        let config = bollard::models::ContainerCreateBody {
            image: Some(image.to_string()),
            cmd: Some(vec!["/nonexistent".into()]),
            ..Default::default()
        };
        let container = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                config,
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut tarball = Vec::new();
        let mut stream = self
            .docker
            .download_from_container(&container.id, Some(options));
        let mut failed = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => tarball.extend_from_slice(&bytes),
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        let removed = self
            .docker
            .remove_container(
                &container.id,
                None::<bollard::query_parameters::RemoveContainerOptions>,
            )
            .await;
        if let Some(e) = failed {
            return Err(fail(e));
        }
        removed.map_err(|e| fail(e.to_string()))?;
        let mut archive = tar::Archive::new(&tarball[..]);
        let mut entries = archive.entries().map_err(|e| fail(e.to_string()))?;
        let mut entry = entries
            .next()
            .ok_or_else(|| fail("empty archive".into()))?
            .map_err(|e| fail(e.to_string()))?;
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).map_err(|e| fail(e.to_string()))?;
        Ok(content)
    }

    /// Remove the local image `image` (its tag; layers other images share stay).
    async fn remove_image(&self, image: &str) -> Result<(), EngineError> {
        self.docker
            .remove_image(
                image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| EngineError::Inspect {
                image: image.into(),
                message: format!("removing: {e}"),
            })
    }

    /// Give the local image `source` the name `target` (`registry/repository:tag`).
    async fn tag(&self, source: &str, target: &str) -> Result<(), EngineError> {
        let (repo, tag) = target
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .unwrap_or((target, "latest"));
        let options = bollard::query_parameters::TagImageOptionsBuilder::new()
            .repo(repo)
            .tag(tag)
            .build();
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| EngineError::Inspect {
                image: source.into(),
                message: format!("tagging as {target}: {e}"),
            })
    }

    /// Pull `image` for `arch` unless the daemon has it already (a job other than the one that
    /// built it).
    async fn pull(
        &self,
        image: &str,
        arch: &str,
        login: Option<&Login>,
    ) -> Result<(), EngineError> {
        if let Ok(local) = self.docker.inspect_image(image).await
            && local_image_serves(local.architecture.as_deref(), arch)
        {
            return Ok(());
        }
        let credentials = login.map(docker_credentials);
        let options = bollard::query_parameters::CreateImageOptionsBuilder::new()
            .from_image(image)
            .platform(&format!("linux/{arch}"))
            .build();
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        while let Some(item) = stream.next().await {
            let failed = match item {
                Ok(info) => info.error_detail.and_then(|d| d.message),
                Err(e) => Some(e.to_string()),
            };
            if let Some(message) = failed {
                return Err(EngineError::Pull {
                    image: image.into(),
                    message,
                });
            }
        }
        Ok(())
    }

    /// Push `image` (`registry/repository:tag`), retrying transient failures.
    async fn push(&self, image: &str, login: Option<&Login>) -> Result<(), EngineError> {
        let (name, tag) = image
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .unwrap_or((image, "latest"));
        let credentials = login.map(docker_credentials);
        let mut last = String::new();
        for attempt in 1..=PUSH_ATTEMPTS {
            let options = bollard::query_parameters::PushImageOptionsBuilder::new()
                .tag(tag)
                .build();
            let mut stream = self
                .docker
                .push_image(name, Some(options), credentials.clone());
            let mut failed = None;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        if let Some(e) = info.error_detail.and_then(|d| d.message) {
                            failed = Some(e);
                        }
                    }
                    Err(e) => failed = Some(e.to_string()),
                }
            }
            match failed {
                None => return Ok(()),
                Some(e) => last = e,
            }
            tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt))).await;
        }
        Err(EngineError::Push {
            image: image.into(),
            message: last,
        })
    }
}

impl ContainerEngine for DockerEngine {
    fn host(&self) -> &str {
        &self.host
    }

    fn docker(&self) -> Option<&Docker> {
        Some(&self.docker)
    }

    fn build<'a>(
        &'a self,
        tag: &'a str,
        req: &'a BuildRequest,
        on_log: &'a mut dyn FnMut(&str),
    ) -> LocalBoxFuture<'a, Result<(), EngineError>> {
        DockerEngine::build(self, tag, req, on_log).boxed_local()
    }

    fn labels<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, EngineError>> {
        DockerEngine::labels(self, image).boxed()
    }

    fn read_file<'a>(
        &'a self,
        image: &'a str,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, EngineError>> {
        DockerEngine::read_file(self, image, path).boxed()
    }

    fn remove_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        DockerEngine::remove_image(self, image).boxed()
    }

    fn tag<'a>(
        &'a self,
        source: &'a str,
        target: &'a str,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        DockerEngine::tag(self, source, target).boxed()
    }

    fn pull<'a>(
        &'a self,
        image: &'a str,
        arch: &'a str,
        login: Option<&'a Login>,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        DockerEngine::pull(self, image, arch, login).boxed()
    }

    fn push<'a>(
        &'a self,
        image: &'a str,
        login: Option<&'a Login>,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        DockerEngine::push(self, image, login).boxed()
    }
}

/// The build context as a tar (uncompressed: it goes to a daemon on this machine or next to
/// it, and compressing hundreds of megabytes of tools costs more than sending them).
pub fn context_tarball(
    dir: &Path,
    extra: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<u8>, EngineError> {
    let io = |source| EngineError::Context {
        path: dir.to_path_buf(),
        source,
    };
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir).map_err(io)?;
    for (path, content) in extra {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, &content[..])
            .map_err(io)?;
    }
    tar.into_inner().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_image_of_another_architecture_is_pulled_again() {
        assert!(local_image_serves(Some("arm64"), "arm64"));
        assert!(!local_image_serves(Some("arm64"), "amd64"));
        assert!(!local_image_serves(Some("amd64"), "arm64"));
        assert!(local_image_serves(None, "amd64"));
    }
}
