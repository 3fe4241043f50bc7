//! Where the Docker daemon is: `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` read
//! as Docker's own clients read them.

use std::path::{Path, PathBuf};

use crate::engine::container_engine::EngineError;

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
