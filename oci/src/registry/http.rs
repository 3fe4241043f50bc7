//! The registry client over HTTP: the distribution API's requests to one registry, with
//! Anonymous, Basic and Bearer-token auth (a login given, else the one `docker login` or
//! `podman login` saved), retries of throttled and failed answers, and answers read within
//! their size limits and checked against their digests; blob uploads, and the referrers API.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::registry::auth::{Challenge, Login, parse_challenge};
use crate::registry::distribution::{
    Descriptor, Distribution, Fetched, IndexDoc, MANIFEST_ACCEPT, MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES, OCI_INDEX, Pushed, RegistryError, sha256_digest,
};
use crate::registry::insecure::Insecure;
use crate::registry::saved_logins;
use model::progress::Progress;
use model::reference::ImageRef;

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

/// A client for one registry over HTTP(S).
#[derive(Debug)]
pub struct HttpRegistry {
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

impl HttpRegistry {
    /// `registry` is `host[:port]`, spoken to over plain HTTP when loopback, over HTTPS
    /// otherwise. Without `login`, the one `docker login` or `podman login` saved is used
    /// when the registry asks for one.
    /// Plain HTTP goes to the registries `insecure` names too.
    pub fn connect(
        registry: &str,
        login: Option<Login>,
        insecure: &Insecure,
    ) -> Result<HttpRegistry, RegistryError> {
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
        Ok(HttpRegistry {
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

    /// Send a request to `path` on this registry (or to `path` as an absolute URL of it, as an
    /// upload's `Location` may be), answering one auth challenge (Basic, or a Bearer token for
    /// `scope`). Requests are idempotent (GET, HEAD, PUT of a manifest or a blob by digest) or
    /// harmless to repeat (the POST opening an upload session): a throttled or failed answer
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
        debug_assert!(matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::POST
        ));
        let url = match path.starts_with(&self.base) {
            true => path.to_string(),
            false => format!("{}{path}", self.base),
        };
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
    async fn manifest(&self, image: &ImageRef) -> Result<Fetched, RegistryError> {
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
    async fn repository_exists(&self, image: &ImageRef) -> Result<bool, RegistryError> {
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
    async fn blob(&self, image: &ImageRef, digest: &str) -> Result<Vec<u8>, RegistryError> {
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
    async fn blob_to_file(
        &self,
        image: &ImageRef,
        digest: &str,
        size: u64,
        dest: &std::path::Path,
        progress: &dyn Progress,
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

    /// Put a manifest (or index) at a tag; returns its digest and whether the registry
    /// processed its `subject`.
    async fn put_manifest(
        &self,
        image: &ImageRef,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Pushed, RegistryError> {
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
        // Distribution spec, "Pushing Manifests with Subject": only a registry with the
        // referrers API answers `OCI-Subject`.
        let subject_processed = resp.headers().contains_key("oci-subject");
        Ok(Pushed {
            digest,
            subject_processed,
        })
    }

    /// Put a blob unless the repository holds it: a monolithic upload, a POST opening the
    /// session then one PUT of the whole content with its digest (distribution spec, "Pushing
    /// a blob monolithically", the POST-then-PUT form every registry accepts).
    async fn put_blob(&self, image: &ImageRef, bytes: Vec<u8>) -> Result<String, RegistryError> {
        let digest = sha256_digest(&bytes);
        let name = image.with_reference(&digest).to_string();
        let scope = format!("repository:{}:pull,push", image.repository);
        let blob = format!("/v2/{}/blobs/{digest}", image.repository);
        let resp = self
            .send(Method::HEAD, &blob, &scope, &[], None, &name)
            .await?;
        if resp.status().is_success() {
            return Ok(digest);
        }
        if resp.status() != StatusCode::NOT_FOUND {
            self.check_status(&resp, &name)?;
        }
        let uploads = format!("/v2/{}/blobs/uploads/", image.repository);
        let resp = self
            .send(Method::POST, &uploads, &scope, &[], Some(Vec::new()), &name)
            .await?;
        self.check_status(&resp, &name)?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                image: name.clone(),
                message: "the upload answer has no Location".into(),
            })?;
        let target = self.upload_target(location, &digest, &name)?;
        let headers = [("Content-Type", "application/octet-stream")];
        let resp = self
            .send(Method::PUT, &target, &scope, &headers, Some(bytes), &name)
            .await?;
        self.check_status(&resp, &name)?;
        Ok(digest)
    }

    /// Where to PUT the content of an upload the registry opened at `location` (a path, or a
    /// URL of this registry: credentials never go to another host).
    fn upload_target(
        &self,
        location: &str,
        digest: &str,
        name: &str,
    ) -> Result<String, RegistryError> {
        if !location.starts_with('/') && !location.starts_with(&self.base) {
            return Err(RegistryError::Protocol {
                image: name.into(),
                message: format!("the upload goes to another host ({location})"),
            });
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        Ok(format!("{location}{sep}digest={digest}"))
    }

    /// The referrers API's answer for `digest`, every page of it; `None` when it answers 404
    /// (no referrers API: a registry that has one never does, distribution spec "Listing
    /// Referrers").
    async fn referrers(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let name = image.with_reference(digest).to_string();
        let scope = format!("repository:{}:pull", image.repository);
        let mut path = format!("/v2/{}/referrers/{digest}", image.repository);
        let mut all = Vec::new();
        // Pages follow `Link: <…>; rel="next"`; a registry looping on them is cut short.
        for _ in 0..100 {
            let accept = [("Accept", OCI_INDEX)];
            let resp = self
                .send(Method::GET, &path, &scope, &accept, None, &name)
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            self.check_status(&resp, &name)?;
            let next = next_page(resp.headers());
            let bytes = self.read_capped(resp, MAX_MANIFEST_BYTES, &name).await?;
            let index: IndexDoc =
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
                    image: name.clone(),
                    message: format!("referrers: {e}"),
                })?;
            all.extend(index.manifests);
            match next {
                Some(p) => path = p,
                None => break,
            }
        }
        Ok(Some(all))
    }
}

/// The next page a `Link` header names (RFC 5988, `rel="next"`).
fn next_page(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',')
        .find(|l| l.contains("rel=\"next\""))
        .and_then(|l| Some(l[l.find('<')? + 1..l.find('>')?].trim().to_string()))
}

/// The requests go to this client's registry, whatever registry an image names.
impl Distribution for HttpRegistry {
    fn manifest<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<Fetched, RegistryError>> {
        HttpRegistry::manifest(self, image).boxed()
    }

    fn repository_exists<'a>(
        &'a self,
        image: &'a ImageRef,
    ) -> BoxFuture<'a, Result<bool, RegistryError>> {
        HttpRegistry::repository_exists(self, image).boxed()
    }

    fn blob<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, RegistryError>> {
        HttpRegistry::blob(self, image, digest).boxed()
    }

    fn blob_to_file<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a str,
        size: u64,
        dest: &'a std::path::Path,
        progress: &'a dyn Progress,
    ) -> BoxFuture<'a, Result<u64, RegistryError>> {
        HttpRegistry::blob_to_file(self, image, digest, size, dest, progress).boxed()
    }

    fn put_manifest<'a>(
        &'a self,
        image: &'a ImageRef,
        media_type: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<Pushed, RegistryError>> {
        HttpRegistry::put_manifest(self, image, media_type, bytes).boxed()
    }

    fn put_blob<'a>(
        &'a self,
        image: &'a ImageRef,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<String, RegistryError>> {
        HttpRegistry::put_blob(self, image, bytes).boxed()
    }

    fn referrers<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<Descriptor>>, RegistryError>> {
        HttpRegistry::referrers(self, image, digest).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback_and_to_registries_named_insecure() {
        let base = |r: &str| {
            HttpRegistry::connect(r, None, &Insecure::default())
                .unwrap()
                .base
        };
        assert_eq!(base("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(base("registry.example.org"), "https://registry.example.org");
        assert_eq!(base("lab.example.org:5001"), "https://lab.example.org:5001");
        let insecure = Insecure::named(["lab.example.org:5001"]);
        let client = HttpRegistry::connect("lab.example.org:5001", None, &insecure).unwrap();
        assert_eq!(client.base, "http://lab.example.org:5001");
    }
}
