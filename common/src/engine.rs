//! Docker Engine builds (bollard): a context folder plus generated files, build arguments and
//! labels, the build log streamed line by line; builds that need secrets go through BuildKit's
//! gRPC session with secret mounts that leave nothing in the image. Then tag and push with
//! credentials from named variables.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::grpc::build::{
    ImageBuildFrontendOptions, ImageBuildLoadInput, ImageBuildPlatform, SecretSource,
};
use bollard::grpc::driver::Build;
use bollard::grpc::driver::moby::Moby;
use futures::StreamExt;

use crate::registry::Login;

/// A registry login as the daemon takes it with a pull or push (in the request, never stored).
fn docker_credentials(login: &Login) -> DockerCredentials {
    DockerCredentials {
        username: Some(login.user.clone()),
        password: Some(login.secret.expose().to_string()),
        ..DockerCredentials::default()
    }
}

/// Push attempts before a transient failure is final.
const PUSH_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
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
}

/// A Docker daemon.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

impl Engine {
    /// Connect to `DOCKER_HOST` (a `unix://` socket) or the default socket, and agree on an API
    /// version the daemon speaks.
    pub async fn connect() -> Result<Engine, EngineError> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let unreachable = |e: bollard::errors::Error| EngineError::Unreachable {
            host: host.clone(),
            message: e.to_string(),
        };
        let docker = match host.strip_prefix("unix://") {
            Some(path) => Docker::connect_with_unix(path, 600, bollard::API_DEFAULT_VERSION),
            None => Docker::connect_with_local_defaults(),
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        Ok(Engine { docker, host })
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Where the daemon is, for messages.
    pub fn host(&self) -> &str {
        &self.host
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
        let context = context_tarball(&req.context, &req.extra_files)?;
        let native = req
            .architecture
            .as_deref()
            .is_none_or(|a| a == host_architecture());
        if req.secrets.is_empty() && native {
            return self.build_streamed(tag, req, context, &mut on_log).await;
        }
        on_log(&format!(
            "building {tag} with BuildKit (secrets or another architecture: no log stream)"
        ));
        let mut opts = ImageBuildFrontendOptions::builder().nocache(req.no_cache);
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
        Moby::new(&self.docker)
            .docker_build(
                tag,
                opts.build(),
                ImageBuildLoadInput::Upload(context.into()),
                None,
                None,
            )
            .await
            // The gRPC status carries the failing step and its output.
            .map_err(|e| EngineError::Build {
                tag: tag.to_string(),
                message: e.to_string(),
            })
    }

    /// The daemon's builder, whose progress comes as a stream of log lines.
    async fn build_streamed(
        &self,
        tag: &str,
        req: &BuildRequest,
        context: Vec<u8>,
        on_log: &mut impl FnMut(&str),
    ) -> Result<(), EngineError> {
        let options = bollard::query_parameters::BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(tag.to_string()),
            nocache: req.no_cache,
            rm: true,
            forcerm: true,
            buildargs: Some(req.build_args.clone().into_iter().collect()),
            labels: Some(req.labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(context.into())));
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
    pub async fn labels(&self, image: &str) -> Result<BTreeMap<String, String>, EngineError> {
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

    /// Give the local image `source` the name `target` (`registry/repository:tag`).
    pub async fn tag(&self, source: &str, target: &str) -> Result<(), EngineError> {
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
    pub async fn pull(
        &self,
        image: &str,
        arch: &str,
        login: Option<&Login>,
    ) -> Result<(), EngineError> {
        if self.docker.inspect_image(image).await.is_ok() {
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
    pub async fn push(&self, image: &str, login: Option<&Login>) -> Result<(), EngineError> {
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

/// The daemon's architecture in Docker's words (`amd64`, `arm64`).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The build context as a gzipped tar: the folder's files, then the extra files.
pub fn context_tarball(
    dir: &Path,
    extra: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<u8>, EngineError> {
    let io = |source| EngineError::Context {
        path: dir.to_path_buf(),
        source,
    };
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
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
    let mut gz = tar.into_inner().map_err(io)?;
    gz.flush().map_err(io)?;
    gz.finish().map_err(io)
}
