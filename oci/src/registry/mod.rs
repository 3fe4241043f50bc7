//! OCI distribution client: resolve a tag to a manifest or an index, pick one architecture's
//! manifest, read the config labels, push manifests and multi-arch indexes. Anonymous, Basic and
//! Bearer-token auth; "does not exist" is kept apart from "could not reach" and "denied".

pub mod auth;
pub mod insecure;
pub use model::reference;
pub mod saved_logins;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use auth::Login;
use auth::{Challenge, parse_challenge};
pub use reference::ImageRef;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Every manifest kind, so no registry falls back to the deprecated schema 1.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The tag or the repository does not exist: build it.
    #[error("{image} does not exist")]
    NotFound { image: String },
    /// The tag is an index without this architecture: build that architecture.
    #[error("{image} has no image for architecture {arch}")]
    ArchitectureMissing { image: String, arch: String },
    #[error("access to {image} was denied (HTTP {status})")]
    Denied { image: String, status: u16 },
    #[error("could not reach registry {registry}: {message}")]
    Unreachable { registry: String, message: String },
    #[error("{image}: {message}")]
    Protocol { image: String, message: String },
    #[error("registry credentials: {0}")]
    Credentials(String),
}

impl From<model::secret::MissingCredentials> for RegistryError {
    fn from(e: model::secret::MissingCredentials) -> Self {
        RegistryError::Credentials(e.to_string())
    }
}

impl RegistryError {
    /// True when the answer means "build it", false when it means "stop": a registry that is
    /// down or refuses must never look like an empty one.
    pub fn means_build(&self) -> bool {
        matches!(
            self,
            RegistryError::NotFound { .. } | RegistryError::ArchitectureMissing { .. }
        )
    }
}

/// A manifest or index as the registry returned it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Fetched {
    /// This manifest as the entry for linux/`arch` of a multi-arch index.
    pub fn index_entry(&self, arch: &str) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: Some(Platform {
                architecture: arch.to_string(),
                os: "linux".into(),
                variant: None,
            }),
        }
    }
}

/// OS and architecture of an image, as in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// One manifest of a multi-arch index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// What a tag resolves to for one architecture.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The architecture's image manifest.
    pub manifest: Descriptor,
    /// The index it was picked from, when the tag is multi-arch.
    pub index_digest: Option<String>,
    pub architecture: String,
    pub labels: BTreeMap<String, String>,
    /// The image's layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// The config's `Env`, `Entrypoint` and `Cmd`.
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// The config's `config` object as the registry holds it (Cmd, Entrypoint, Env,
    /// WorkingDir, Labels…): what Apptainer keeps in a SIF as `oci-config.json`.
    pub config: serde_json::Value,
}

#[derive(Deserialize)]
struct IndexDoc {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ManifestDoc {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    config: serde_json::Value,
}

#[derive(Deserialize, Default)]
struct ConfigSection {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
}

/// The largest manifest or index read (the distribution spec lets registries refuse more).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// The largest blob read into memory (image configs): anything bigger is not a config.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;
/// Attempts of a request that failed in a way worth retrying (429, 5xx, a dropped connection).
const ATTEMPTS: u32 = 4;
/// Waiting for a connection, and for the next bytes of an answer.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Whether an answer is worth asking again: throttled, or the server failed for now.
fn transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// How long to wait before attempt `attempt` (from 1): the server's `Retry-After` when it gives
/// one (capped), else 0.5 s doubling.
fn backoff(
    attempt: u32,
    retry_after: Option<&reqwest::header::HeaderValue>,
) -> std::time::Duration {
    let asked = retry_after
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| std::time::Duration::from_secs(s.min(30)));
    asked.unwrap_or_else(|| std::time::Duration::from_millis(500 << (attempt - 1).min(6)))
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Registry clients made once each and reused: one per registry and login (a registry can be
/// both the project's and the public hub, read with different logins), so a challenge is
/// answered once per run.
#[derive(Debug, Default)]
pub struct Clients {
    insecure: insecure::Insecure,
    clients: Mutex<BTreeMap<String, std::sync::Arc<RegistryClient>>>,
}

impl Clients {
    /// No client yet; those made speak plain HTTP to loopback and `insecure` registries.
    pub fn new(insecure: insecure::Insecure) -> Clients {
        Clients {
            insecure,
            clients: Mutex::default(),
        }
    }

    /// The client for `registry` with `login`; `purpose` tells apart logins of one registry
    /// (`project`, `hub`, `anonymous`).
    pub fn get(
        &self,
        purpose: &str,
        registry: &str,
        login: &Option<Login>,
    ) -> Result<std::sync::Arc<RegistryClient>, RegistryError> {
        let key = format!("{purpose}:{registry}");
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = std::sync::Arc::new(RegistryClient::connect(
            registry,
            login.clone(),
            &self.insecure,
        )?);
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// A client for one registry.
#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    registry: String,
    base: String,
    login: Option<Login>,
    /// The login `docker login`/`podman login` saved, looked up at the first challenge when
    /// none was given.
    saved: std::sync::OnceLock<Option<Login>>,
    /// Authorization header per scope, once a challenge was answered.
    auth: Mutex<HashMap<String, String>>,
}

impl RegistryClient {
    /// `registry` is `host[:port]`, spoken to over plain HTTP when loopback, over HTTPS
    /// otherwise. Without `login`, the one `docker login` or `podman login` saved is used
    /// when the registry asks for one.
    pub fn new(registry: &str, login: Option<Login>) -> Result<RegistryClient, RegistryError> {
        RegistryClient::connect(registry, login, &insecure::Insecure::default())
    }

    /// As [`RegistryClient::new`], with plain HTTP to the registries `insecure` names too.
    pub fn connect(
        registry: &str,
        login: Option<Login>,
        insecure: &insecure::Insecure,
    ) -> Result<RegistryClient, RegistryError> {
        let plain = insecure.contains(registry);
        let http = reqwest::Client::builder()
            .user_agent(concat!("spacktainerizah/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| RegistryError::Unreachable {
                registry: registry.into(),
                message: e.to_string(),
            })?;
        Ok(RegistryClient {
            http,
            registry: registry.to_string(),
            base: format!("{}://{registry}", if plain { "http" } else { "https" }),
            login,
            saved: std::sync::OnceLock::new(),
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// The login given, else the one saved for this registry (looked up once).
    fn login(&self) -> Result<Option<&Login>, RegistryError> {
        if let Some(l) = &self.login {
            return Ok(Some(l));
        }
        if self.saved.get().is_none() {
            let found = saved_logins::saved_login(&self.registry)
                .map_err(|e| RegistryError::Credentials(e.to_string()))?;
            let _ = self.saved.set(found);
        }
        Ok(self.saved.get().and_then(Option::as_ref))
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> RegistryError {
        RegistryError::Unreachable {
            registry: self.registry.clone(),
            message: e.to_string(),
        }
    }

    /// Send a request, answering one auth challenge (Basic, or a Bearer token for `scope`).
    /// Requests are idempotent (GET, HEAD, PUT of a manifest): a throttled or failed answer
    /// (429, 5xx) and a dropped connection are retried with backoff.
    async fn send(
        &self,
        method: Method,
        path: &str,
        scope: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        image: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        debug_assert!(matches!(method, Method::GET | Method::HEAD | Method::PUT));
        let url = format!("{}{path}", self.base);
        let build = |auth: Option<&str>| {
            let mut req = self.http.request(method.clone(), &url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            req
        };
        let cached = self
            .auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .cloned();
        let resp = self.retried(|| build(cached.as_deref())).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .ok_or_else(|| RegistryError::Denied {
                image: image.into(),
                status: 401,
            })?;
        let header = match challenge {
            Challenge::Basic => {
                self.login()?
                    .map(Login::basic_header)
                    .ok_or_else(|| RegistryError::Denied {
                        image: image.into(),
                        status: 401,
                    })?
            }
            Challenge::Bearer { realm, service, .. } => format!(
                "Bearer {}",
                self.token(&realm, service.as_deref(), scope, image).await?
            ),
        };
        self.auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.to_string(), header.clone());
        self.retried(|| build(Some(&header))).await
    }

    /// Send the request `build` makes, again after a transient failure, up to [`ATTEMPTS`]
    /// times; the last answer or error is returned.
    async fn retried(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut attempt = 1;
        loop {
            match build().send().await {
                Ok(resp) if transient(resp.status()) && attempt < ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt, resp.headers().get("retry-after"))).await;
                }
                Ok(resp) => return Ok(resp),
                // Refused, reset or timed out: the connection, not the request, failed.
                Err(e)
                    if attempt < ATTEMPTS
                        && (e.is_connect() || e.is_timeout() || e.is_request()) =>
                {
                    tokio::time::sleep(backoff(attempt, None)).await;
                }
                Err(e) => return Err(self.unreachable(e)),
            }
            attempt += 1;
        }
    }

    /// A Bearer token from the registry's token server (anonymous without a login).
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        image: &str,
    ) -> Result<String, RegistryError> {
        let mut query: Vec<(&str, &str)> = vec![("scope", scope)];
        if let Some(s) = service {
            query.push(("service", s));
        }
        let login = self.login()?;
        let resp = self
            .retried(|| {
                let req = self.http.get(realm).query(&query);
                match login {
                    Some(l) => req.header("Authorization", l.basic_header()),
                    None => req,
                }
            })
            .await
            .map_err(|e| match e {
                RegistryError::Unreachable { registry, message } => RegistryError::Unreachable {
                    registry,
                    message: format!("token server {realm}: {message}"),
                },
                other => other,
            })?;
        if !resp.status().is_success() {
            return Err(RegistryError::Denied {
                image: image.into(),
                status: resp.status().as_u16(),
            });
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = resp.json().await.map_err(|e| RegistryError::Protocol {
            image: image.into(),
            message: format!("token response: {e}"),
        })?;
        t.token
            .or(t.access_token)
            .ok_or_else(|| RegistryError::Protocol {
                image: image.into(),
                message: "token response without a token".into(),
            })
    }

    fn check_status(&self, resp: &reqwest::Response, image: &str) -> Result<(), RegistryError> {
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound {
                image: image.into(),
            }),
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(RegistryError::Denied {
                image: image.into(),
                status: s.as_u16(),
            }),
            s => Err(RegistryError::Protocol {
                image: image.into(),
                message: format!("HTTP {s}"),
            }),
        }
    }

    /// The manifest or index behind a tag or digest.
    pub async fn manifest(&self, image: &ImageRef) -> Result<Fetched, RegistryError> {
        let name = image.to_string();
        let scope = format!("repository:{}:pull", image.repository);
        let path = format!("/v2/{}/manifests/{}", image.repository, image.reference);
        let resp = self
            .send(
                Method::GET,
                &path,
                &scope,
                &[("Accept", MANIFEST_ACCEPT)],
                None,
                &name,
            )
            .await?;
        self.check_status(&resp, &name)?;
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = self.read_capped(resp, MAX_MANIFEST_BYTES, &name).await?;
        let digest = sha256_digest(&bytes);
        if image.is_digest() && image.reference != digest {
            return Err(RegistryError::Protocol {
                image: name,
                message: format!("content has digest {digest}"),
            });
        }
        Ok(Fetched {
            media_type,
            digest: header_digest.unwrap_or(digest),
            bytes,
        })
    }

    /// Whether the repository of `image` exists (its tag list answers).
    pub async fn repository_exists(&self, image: &ImageRef) -> Result<bool, RegistryError> {
        let name = format!("{}/{}", self.registry, image.repository);
        let scope = format!("repository:{}:pull", image.repository);
        let resp = self
            .send(
                Method::GET,
                &format!("/v2/{}/tags/list", image.repository),
                &scope,
                &[],
                None,
                &name,
            )
            .await?;
        match self.check_status(&resp, &name) {
            Ok(()) => Ok(true),
            Err(RegistryError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The GET of a blob, its status checked; with the name errors use.
    async fn get_blob(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<(reqwest::Response, String), RegistryError> {
        let name = image.with_reference(digest).to_string();
        let scope = format!("repository:{}:pull", image.repository);
        let resp = self
            .send(
                Method::GET,
                &format!("/v2/{}/blobs/{digest}", image.repository),
                &scope,
                &[],
                None,
                &name,
            )
            .await?;
        self.check_status(&resp, &name)?;
        Ok((resp, name))
    }

    /// The body of `resp`, refused (naming `what`) as soon as it grows past `max` bytes: nothing
    /// unbounded is held in memory before its digest can be checked.
    async fn read_capped(
        &self,
        mut resp: reqwest::Response,
        max: u64,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_big = |n: u64| RegistryError::Protocol {
            image: what.into(),
            message: format!("the answer has {n} bytes or more, over the {max} allowed"),
        };
        if let Some(n) = resp.content_length().filter(|&n| n > max) {
            return Err(too_big(n));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(e))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max {
                return Err(too_big(bytes.len() as u64));
            }
        }
        Ok(bytes)
    }

    /// A blob (an image config), checked against its digest; at most [`MAX_CONFIG_BYTES`].
    pub async fn blob(&self, image: &ImageRef, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let (resp, name) = self.get_blob(image, digest).await?;
        let bytes = self.read_capped(resp, MAX_CONFIG_BYTES, &name).await?;
        if digest.starts_with("sha256:") && sha256_digest(&bytes) != digest {
            return Err(RegistryError::Protocol {
                image: name,
                message: "blob content does not match its digest".into(),
            });
        }
        Ok(bytes)
    }

    /// A blob streamed into `dest` (never held in memory), checked against its digest and
    /// refused as soon as it is longer than `size` (the length its descriptor gives).
    pub async fn blob_to_file(
        &self,
        image: &ImageRef,
        digest: &str,
        size: u64,
        dest: &std::path::Path,
        progress: &dyn model::progress::Progress,
    ) -> Result<u64, RegistryError> {
        use std::io::Write;
        let (mut resp, name) = self.get_blob(image, digest).await?;
        let protocol = |message: String| RegistryError::Protocol {
            image: name.clone(),
            message,
        };
        let mut file = std::fs::File::create(dest)
            .map_err(|e| protocol(format!("writing {}: {e}", dest.display())))?;
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(e))? {
            hasher.update(&chunk);
            len += chunk.len() as u64;
            if len > size {
                return Err(protocol(format!(
                    "the blob is longer than the {size} bytes its descriptor gives"
                )));
            }
            file.write_all(&chunk)
                .map_err(|e| protocol(format!("writing {}: {e}", dest.display())))?;
            progress(chunk.len() as u64);
        }
        if digest.starts_with("sha256:")
            && format!("sha256:{}", hex::encode(hasher.finalize())) != digest
        {
            return Err(protocol("blob content does not match its digest".into()));
        }
        Ok(len)
    }

    /// What `image` is for `arch` (`amd64`, `arm64`): from an index, the entry for linux/arch —
    /// never another architecture's — and its config labels.
    pub async fn resolve(&self, image: &ImageRef, arch: &str) -> Result<Resolved, RegistryError> {
        let name = image.to_string();
        let top = self.manifest(image).await?;
        let protocol = |m: String| RegistryError::Protocol {
            image: name.clone(),
            message: m,
        };
        let (manifest, index_digest, bytes) =
            if top.media_type == OCI_INDEX || top.media_type == DOCKER_LIST {
                let index: IndexDoc = serde_json::from_slice(&top.bytes)
                    .map_err(|e| protocol(format!("index: {e}")))?;
                let entry = index
                    .manifests
                    .into_iter()
                    .find(|d| {
                        d.platform
                            .as_ref()
                            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                    })
                    .ok_or_else(|| RegistryError::ArchitectureMissing {
                        image: name.clone(),
                        arch: arch.into(),
                    })?;
                let m = self.manifest(&image.with_reference(&entry.digest)).await?;
                (entry, Some(top.digest), m.bytes)
            } else {
                let d = Descriptor {
                    media_type: top.media_type.clone(),
                    digest: top.digest.clone(),
                    size: top.bytes.len() as u64,
                    platform: None,
                };
                (d, None, top.bytes)
            };
        let doc: ManifestDoc =
            serde_json::from_slice(&bytes).map_err(|e| protocol(format!("manifest: {e}")))?;
        let config: ConfigDoc =
            serde_json::from_slice(&self.blob(image, &doc.config.digest).await?)
                .map_err(|e| protocol(format!("config: {e}")))?;
        // A single-arch tag of another architecture is no image for this one.
        if index_digest.is_none() && !config.architecture.is_empty() && config.architecture != arch
        {
            return Err(RegistryError::ArchitectureMissing {
                image: name,
                arch: arch.into(),
            });
        }
        let section: ConfigSection = match &config.config {
            serde_json::Value::Null => ConfigSection::default(),
            value => {
                ConfigSection::deserialize(value).map_err(|e| protocol(format!("config: {e}")))?
            }
        };
        Ok(Resolved {
            manifest,
            index_digest,
            architecture: config.architecture,
            labels: section.labels.unwrap_or_default(),
            layers: doc.layers,
            env: section.env.unwrap_or_default(),
            entrypoint: section.entrypoint.unwrap_or_default(),
            cmd: section.cmd.unwrap_or_default(),
            config: config.config,
        })
    }

    /// Put a manifest (or index) at a tag; returns its digest.
    pub async fn put_manifest(
        &self,
        image: &ImageRef,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, RegistryError> {
        let name = image.to_string();
        let scope = format!("repository:{}:pull,push", image.repository);
        let digest = sha256_digest(&bytes);
        let path = format!("/v2/{}/manifests/{}", image.repository, image.reference);
        let resp = self
            .send(
                Method::PUT,
                &path,
                &scope,
                &[("Content-Type", media_type)],
                Some(bytes),
                &name,
            )
            .await?;
        self.check_status(&resp, &name)?;
        Ok(digest)
    }

    /// Write the multi-arch OCI index `image` listing `manifests` (already in the repository).
    pub async fn push_index(
        &self,
        image: &ImageRef,
        manifests: &[Descriptor],
    ) -> Result<String, RegistryError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Index<'a> {
            schema_version: u32,
            media_type: &'a str,
            manifests: &'a [Descriptor],
        }
        let bytes = serde_json::to_vec(&Index {
            schema_version: 2,
            media_type: OCI_INDEX,
            manifests,
        })
        .map_err(|e| RegistryError::Protocol {
            image: image.to_string(),
            message: e.to_string(),
        })?;
        self.put_manifest(image, OCI_INDEX, bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback_and_to_registries_named_insecure() {
        let base = |r: &str| RegistryClient::new(r, None).unwrap().base;
        assert_eq!(base("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(base("registry.example.org"), "https://registry.example.org");
        assert_eq!(base("lab.example.org:5001"), "https://lab.example.org:5001");
        let insecure = insecure::Insecure::named(["lab.example.org:5001"]);
        let client = RegistryClient::connect("lab.example.org:5001", None, &insecure).unwrap();
        assert_eq!(client.base, "http://lab.example.org:5001");
    }
}
