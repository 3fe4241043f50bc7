//! Docker Engine builds (bollard): a context folder plus generated files, build arguments and
//! labels, the build log streamed line by line; builds that need secrets go through BuildKit's
//! gRPC session with secret mounts that leave nothing in the image. Both pull their base images
//! with the registry logins given. Then tag and push with credentials from named variables.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::grpc::build::{
    ImageBuildFrontendOptions, ImageBuildLoadInput, ImageBuildPlatform, SecretSource,
};
use bollard::grpc::driver::Build;
use bollard::grpc::driver::moby::Moby;
use futures::StreamExt;

use crate::registry::{ImageRef, Login};
use model::reference::DOCKER_HUB;

/// A registry login as the daemon takes it with a pull or push (in the request, never stored).
fn docker_credentials(login: &Login) -> DockerCredentials {
    DockerCredentials {
        username: Some(login.user.clone()),
        password: Some(login.secret.expose().to_string()),
        ..DockerCredentials::default()
    }
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

/// A Docker daemon.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
}

/// Where the daemon is and how to speak to it, read as Docker's own clients read it:
/// `DOCKER_HOST` (`unix://` or `tcp://`, the local socket when unset), `DOCKER_TLS_VERIFY`
/// (non-empty: TLS with the client certificate) and `DOCKER_CERT_PATH` (`ca.pem`, `cert.pem`,
/// `key.pem`; `~/.docker` when unset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineAddress {
    Unix(PathBuf),
    /// Plain HTTP over TCP (`host:port`).
    Tcp(String),
    /// TLS over TCP, the daemon's certificate checked against `ca.pem` and ours presented.
    Tls {
        addr: String,
        cert_path: PathBuf,
    },
}

impl EngineAddress {
    pub fn from_env() -> Result<EngineAddress, EngineError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        EngineAddress::parse(
            var(model::env_names::DOCKER_HOST).as_deref(),
            var(model::env_names::DOCKER_TLS_VERIFY).is_some(),
            var(model::env_names::DOCKER_CERT_PATH)
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| Path::new(&h).join(".docker"))),
        )
    }

    /// `host` as `DOCKER_HOST` gives it; `tls_verify` when `DOCKER_TLS_VERIFY` is set.
    pub fn parse(
        host: Option<&str>,
        tls_verify: bool,
        cert_path: Option<PathBuf>,
    ) -> Result<EngineAddress, EngineError> {
        let host = host.unwrap_or("unix:///var/run/docker.sock");
        let bad = |message: &str| EngineError::Address {
            host: host.to_string(),
            message: message.to_string(),
        };
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(EngineAddress::Unix(PathBuf::from(path)));
        }
        let Some(addr) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("https://"))
            .or_else(|| host.strip_prefix("http://"))
        else {
            return Err(bad(
                "only unix:// and tcp:// daemons are supported (ssh:// and named pipes are not)",
            ));
        };
        let addr = addr.trim_end_matches('/');
        if addr.is_empty() || addr.contains('/') {
            return Err(bad("expected tcp://HOST:PORT"));
        }
        // Without a port Docker's clients take 2376 with TLS and 2375 without.
        let with_port = |default: u16| {
            if addr
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                addr.to_string()
            } else {
                format!("{addr}:{default}")
            }
        };
        if tls_verify || host.starts_with("https://") {
            let cert_path = cert_path.ok_or_else(|| {
                bad("DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor a home folder is")
            })?;
            Ok(EngineAddress::Tls {
                addr: with_port(2376),
                cert_path,
            })
        } else {
            Ok(EngineAddress::Tcp(with_port(2375)))
        }
    }
}

impl std::fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineAddress::Unix(p) => write!(f, "unix://{}", p.display()),
            EngineAddress::Tcp(a) => write!(f, "tcp://{a}"),
            EngineAddress::Tls { addr, .. } => write!(f, "tcp://{addr} (TLS)"),
        }
    }
}

/// Seconds a request to the daemon may take (builds stream for hours; each read is bounded).
const TIMEOUT_SECS: u64 = 600;

impl Engine {
    /// Connect where Docker's own clients would ([`EngineAddress::from_env`]) and agree on an
    /// API version the daemon speaks.
    pub async fn connect() -> Result<Engine, EngineError> {
        Engine::connect_to(&EngineAddress::from_env()?).await
    }

    pub async fn connect_to(address: &EngineAddress) -> Result<Engine, EngineError> {
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
        if req.secrets.is_empty() && native && !req.buildkit {
            return self.build_streamed(tag, req, context, &mut on_log).await;
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

    /// The content of the file `path` in the local image `image` (read from a container that is
    /// created, never started, and removed).
    pub async fn read_file(&self, image: &str, path: &str) -> Result<Vec<u8>, EngineError> {
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
    pub async fn remove_image(&self, image: &str) -> Result<(), EngineError> {
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

/// The registries (`host[:port]`, Docker Hub as [`DOCKER_HUB`]) the `FROM` lines of
/// `dockerfile` pull from, with `build_args` and the `ARG` defaults before the first `FROM`
/// put in; `scratch`, earlier stages and references that are still not plain names (an
/// argument without a value) are left out. Sorted, each once.
pub fn base_registries(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut in_stage = false;
    let mut stages: Vec<String> = Vec::new();
    let mut registries = std::collections::BTreeSet::new();
    for line in instructions(dockerfile) {
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        if keyword.eq_ignore_ascii_case("ARG") && !in_stage {
            // Only arguments declared before the first stage reach `FROM` lines.
            for decl in words {
                let (name, default) = decl.split_once('=').unwrap_or((decl, ""));
                let value = build_args
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| default.trim_matches(|c| c == '"' || c == '\'').to_string());
                args.insert(name.to_string(), value);
            }
        } else if keyword.eq_ignore_ascii_case("FROM") {
            let mut rest = words.skip_while(|w| w.starts_with("--"));
            let Some(image) = rest.next().map(|w| substitute(w, &args)) else {
                continue;
            };
            let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
            if !is_stage
                && !image.eq_ignore_ascii_case("scratch")
                && !image.contains('$')
                && let Ok(r) = image.parse::<ImageRef>()
            {
                registries.insert(r.registry);
            }
            if let (Some(kw), Some(name)) = (rest.next(), rest.next())
                && kw.eq_ignore_ascii_case("AS")
            {
                stages.push(name.to_string());
            }
            in_stage = true;
        }
    }
    registries.into_iter().collect()
}

/// The instructions of a Dockerfile: comments dropped, continued lines joined.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out.push(current);
    out
}

/// `$NAME` and `${NAME}` replaced by their values in `args`; unknown names are kept.
fn substitute(word: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => (inner, ""),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        match args.get(name).filter(|_| !name.is_empty()) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[i..rest.len() - tail.len()]),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
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

    fn parse(host: Option<&str>, tls: bool) -> Result<EngineAddress, EngineError> {
        EngineAddress::parse(host, tls, Some(PathBuf::from("/certs/client")))
    }

    #[test]
    fn docker_host_is_read_as_docker_reads_it() {
        assert_eq!(
            parse(None, false).unwrap(),
            EngineAddress::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            parse(Some("unix:///tmp/d.sock"), false).unwrap(),
            EngineAddress::Unix("/tmp/d.sock".into())
        );
        assert_eq!(
            parse(Some("tcp://docker:2375"), false).unwrap(),
            EngineAddress::Tcp("docker:2375".into())
        );
        // The Docker-in-Docker service of a GitLab job.
        assert_eq!(
            parse(Some("tcp://docker:2376"), true).unwrap(),
            EngineAddress::Tls {
                addr: "docker:2376".into(),
                cert_path: "/certs/client".into()
            }
        );
        // Docker's default ports when none is given.
        assert_eq!(
            parse(Some("tcp://docker"), true).unwrap(),
            EngineAddress::Tls {
                addr: "docker:2376".into(),
                cert_path: "/certs/client".into()
            }
        );
        assert_eq!(
            parse(Some("tcp://10.0.0.1/"), false).unwrap(),
            EngineAddress::Tcp("10.0.0.1:2375".into())
        );
    }

    #[test]
    fn base_registries_are_read_from_the_from_lines() {
        let dockerfile = "# FROM commented.example.org/no:1
ARG OS_IMAGE=ubuntu:22.04
ARG BUILDER
FROM --platform=linux/amd64 ${BUILDER} AS builder
ARG OS_IMAGE=ignored.example.org/x:1
RUN echo \\
  FROM continued.example.org/no:1
FROM builder AS diagnose
FROM $OS_IMAGE
FROM scratch
FROM 127.0.0.1:5001/private/runtime:v1
FROM ${UNSET}/x:1
";
        let args = BTreeMap::from([(
            "BUILDER".to_string(),
            "registry.example.org/hpc/builder:latest".to_string(),
        )]);
        assert_eq!(
            base_registries(dockerfile, &args),
            ["127.0.0.1:5001", DOCKER_HUB, "registry.example.org"]
        );
        // A build argument overrides the default.
        let args = BTreeMap::from([("OS_IMAGE".to_string(), "quay.io/os:1".to_string())]);
        assert_eq!(
            base_registries("ARG OS_IMAGE=ubuntu:22.04\nFROM ${OS_IMAGE}\n", &args),
            ["quay.io"]
        );
    }

    #[test]
    fn an_address_it_cannot_use_is_named_in_the_error() {
        for host in [
            "ssh://me@host",
            "npipe:////./pipe/docker_engine",
            "tcp://",
            "tcp://a/b",
        ] {
            let err = parse(Some(host), false).unwrap_err().to_string();
            assert!(err.contains(host), "{err}");
        }
        let err = EngineAddress::parse(Some("tcp://docker:2376"), true, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("DOCKER_CERT_PATH"), "{err}");
    }
}
