//! Secrets: a string that never shows its value in `Debug` or `Display`, and a login (user and
//! secret) read from the environment variables the configuration names.

use std::fmt;

/// A secret value (key, password, token). Formatting it prints `***`, so a secret that slips
/// into a log line or an error message shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must hand it to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Read the secret from the environment variable `name`.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name).ok().filter(|v| !v.is_empty()).map(Self)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_hides_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}

/// A credentials variable that is not set.
#[derive(Debug, Clone, thiserror::Error)]
#[error("environment variable `{0}` is not set")]
pub struct MissingCredentials(pub String);

/// A user and password (or token) read from the environment variables named in the
/// configuration.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub secret: Secret,
}

impl Login {
    pub fn from_env(user_env: &str, secret_env: &str) -> Result<Login, MissingCredentials> {
        let user = std::env::var(user_env)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| MissingCredentials(user_env.to_string()))?;
        let secret = Secret::from_env(secret_env)
            .ok_or_else(|| MissingCredentials(secret_env.to_string()))?;
        Ok(Login { user, secret })
    }

    pub fn basic_header(&self) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                self.user,
                self.secret.expose()
            ))
        )
    }
}
