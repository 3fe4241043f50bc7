//! Logins saved by `docker login`, `podman login` and `skopeo login`: `REGISTRY_AUTH_FILE`,
//! Docker's `config.json` (`DOCKER_CONFIG`, `auths`, `credsStore`, `credHelpers`) and the
//! containers `auth.json`, read the way those tools read them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::auth::Login;
use model::reference::{DOCKER_HUB, registry_host};
use model::secret::Secret;

/// The key Docker files Docker Hub's login under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, thiserror::Error)]
pub enum SavedLoginError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("credential helper `docker-credential-{helper}` for {registry}: {message}")]
    Helper {
        helper: String,
        registry: String,
        message: String,
    },
}

/// One auth file: `config.json` and `auth.json` share this shape.
#[derive(Debug, Default, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// The files to read, in the order skopeo and podman read them: an explicit
/// `REGISTRY_AUTH_FILE`, Docker's `config.json`, then the containers `auth.json` locations.
fn auth_files() -> Vec<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let home = env("HOME").map(PathBuf::from);
    let mut files = Vec::new();
    if let Some(f) = env("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    match (env("DOCKER_CONFIG"), &home) {
        (Some(dir), _) => files.push(PathBuf::from(dir).join("config.json")),
        (None, Some(h)) => files.push(h.join(".docker/config.json")),
        (None, None) => {}
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(dir).join("containers/auth.json"));
    }
    match (env("XDG_CONFIG_HOME"), &home) {
        (Some(dir), _) => files.push(PathBuf::from(dir).join("containers/auth.json")),
        (None, Some(h)) => files.push(h.join(".config/containers/auth.json")),
        (None, None) => {}
    }
    files
}

/// The names a registry is saved under: Docker Hub's historical key for Docker Hub.
fn keys(registry: &str) -> Vec<&str> {
    if registry == DOCKER_HUB {
        vec![DOCKER_HUB_KEY, "docker.io", "index.docker.io", DOCKER_HUB]
    } else {
        vec![registry]
    }
}

/// `https://host:port/v1/` → `host:port`: `auths` keys are URLs in older files.
fn host_of(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    registry_host(key)
}

/// The saved login for `registry` (`host[:port]`, Docker Hub as [`DOCKER_HUB`]), from the first
/// file that has one; `None` when no file does. A file that exists but cannot be read is an
/// error naming it, never an anonymous pull.
pub fn saved_login(registry: &str) -> Result<Option<Login>, SavedLoginError> {
    for path in auth_files() {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(SavedLoginError::File {
                    path,
                    message: e.to_string(),
                });
            }
        };
        if let Some(login) = login_in(&path, &text, registry)? {
            return Ok(Some(login));
        }
    }
    Ok(None)
}

/// The logins a build pulls its base images from `registries` with: the one `configured` for
/// a registry (the configuration's named variables) first, else the one `docker login` or
/// `podman login` saved. A registry with neither is left out: its images are pulled
/// anonymously.
pub fn pull_logins(
    registries: &[String],
    configured: &[(String, Login)],
) -> Result<Vec<(String, Login)>, SavedLoginError> {
    let mut logins = Vec::new();
    for registry in registries {
        let login = match configured.iter().find(|(r, _)| r == registry) {
            Some((_, login)) => Some(login.clone()),
            None => saved_login(registry)?,
        };
        if let Some(login) = login {
            logins.push((registry.clone(), login));
        }
    }
    Ok(logins)
}

/// The login for `registry` in one auth file's `text`.
fn login_in(path: &Path, text: &str, registry: &str) -> Result<Option<Login>, SavedLoginError> {
    let file: AuthFile = serde_json::from_str(text).map_err(|e| SavedLoginError::File {
        path: path.to_path_buf(),
        message: format!("not a Docker/containers auth file: {e}"),
    })?;
    let wanted = keys(registry);
    // A helper named for this registry wins, then the stored entry, then the default store.
    if let Some(helper) = wanted.iter().find_map(|k| file.cred_helpers.get(*k)) {
        return from_helper(helper, wanted[0]);
    }
    let entry = file
        .auths
        .iter()
        .find(|(k, _)| wanted.iter().any(|w| *k == w || host_of(k) == host_of(w)));
    if let Some((key, entry)) = entry
        && let Some(login) = from_entry(path, key, entry)?
    {
        return Ok(Some(login));
    }
    match &file.creds_store {
        Some(store) => from_helper(store, wanted[0]),
        None => Ok(None),
    }
}

fn from_entry(path: &Path, key: &str, entry: &AuthEntry) -> Result<Option<Login>, SavedLoginError> {
    let bad = |message: &str| SavedLoginError::File {
        path: path.to_path_buf(),
        message: format!("auths.\"{key}\": {message}"),
    };
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Login {
            user: user.clone(),
            secret: Secret::new(password.clone()),
        }));
    }
    if let Some(token) = &entry.identity_token {
        // An OAuth refresh token: Docker sends it as the password of the `<token>` user.
        return Ok(Some(Login {
            user: "<token>".into(),
            secret: Secret::new(token.clone()),
        }));
    }
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("`auth` is not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad("`auth` is not UTF-8"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| bad("`auth` is not `user:password` in base64"))?;
    Ok(Some(Login {
        user: user.to_string(),
        secret: Secret::new(password.to_string()),
    }))
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// `docker-credential-HELPER get`, the server on its standard input, as Docker runs it.
fn from_helper(helper: &str, server: &str) -> Result<Option<Login>, SavedLoginError> {
    let err = |message: String| SavedLoginError::Helper {
        helper: helper.to_string(),
        registry: server.to_string(),
        message,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run it: {e}")))?;
    // A helper that fails fast may exit before reading its input: the broken pipe is not the
    // error to report, its exit status and stderr below are.
    let written = child
        .stdin
        .take()
        .expect("piped")
        .write_all(server.as_bytes());
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(err(e.to_string()));
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        // What the helpers answer for a registry they hold nothing for.
        if stdout.contains("credentials not found") || stderr.contains("credentials not found") {
            return Ok(None);
        }
        // Only stderr is shown: stdout is where a helper writes credentials.
        return Err(err(format!("{}: {}", out.status, stderr.trim())));
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&out.stdout).map_err(|e| err(format!("unreadable answer: {e}")))?;
    Ok(Some(Login {
        user: answer.username,
        secret: Secret::new(answer.secret),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(text: &str, registry: &str) -> Option<(String, String)> {
        login_in(Path::new("config.json"), text, registry)
            .unwrap()
            .map(|l| (l.user, l.secret.expose().to_string()))
    }

    #[test]
    fn auths_entries_as_docker_and_podman_write_them() {
        // `docker login` writes base64 `user:password`; keys with a scheme are older files'.
        let text = r#"{"auths": {
            "registry.example.org": {"auth": "dTpwOnc="},
            "https://old.example.org/v1/": {"auth": "b2xkOnB3"},
            "https://index.docker.io/v1/": {"auth": "aHViOmh1YnB3"},
            "plain.example.org:5000": {"username": "p", "password": "q"},
            "token.example.org": {"identitytoken": "t0k"}
        }}"#;
        let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        assert_eq!(login(text, "registry.example.org"), pair("u", "p:w"));
        assert_eq!(login(text, "old.example.org"), pair("old", "pw"));
        assert_eq!(login(text, DOCKER_HUB), pair("hub", "hubpw"));
        assert_eq!(login(text, "plain.example.org:5000"), pair("p", "q"));
        assert_eq!(login(text, "token.example.org"), pair("<token>", "t0k"));
        assert_eq!(login(text, "other.example.org"), None);
    }

    #[test]
    fn broken_files_are_named_and_never_mean_anonymous() {
        let e = login_in(Path::new("/h/.docker/config.json"), "{not json", "r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/h/.docker/config.json"), "{e}");
        let e = login_in(
            Path::new("auth.json"),
            r#"{"auths": {"r": {"auth": "%%%"}}}"#,
            "r",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("auth.json") && e.contains("base64"), "{e}");
        // The secret never shows in an error or a debug print.
        let l = login_in(
            Path::new("a"),
            r#"{"auths": {"r": {"auth": "dTpzM2NyM3Q="}}}"#,
            "r",
        )
        .unwrap()
        .unwrap();
        assert!(!format!("{l:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_missing_helper_is_named() {
        let text = r#"{"credHelpers": {"r.example.org": "no-such-helper-here"}}"#;
        let e = login_in(Path::new("c"), text, "r.example.org")
            .unwrap_err()
            .to_string();
        assert!(e.contains("docker-credential-no-such-helper-here"), "{e}");
    }
}
