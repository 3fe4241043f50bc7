//! Builds on the real Docker daemon (started by the test command): labels and build arguments,
//! a BuildKit secret that ends up nowhere in the image, the failing step of a broken build, and
//! a push the registry client then reads back, and base images pulled from registries that
//! want a login (password and token) by both builders.

use std::collections::BTreeMap;

use futures::StreamExt;
use oci::engine::{BuildRequest, Engine, EngineAddress};
use oci::registry::{Login, RegistryClient};
use spacktainerizah_tests::{
    REGISTRY_PASSWORD_VAR, REGISTRY_USER_VAR, auth_registry, registry, token_registry, unique_name,
};

/// A context with a static busybox as `/bin/sh`, so `RUN` works without pulling anything.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", dir.path().join("busybox")).expect("busybox-static is installed");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

const DOCKERFILE: &str = "FROM scratch
COPY busybox /bin/busybox
COPY busybox /bin/sh
ARG VERSION
LABEL org.example.version=$VERSION
RUN --mount=type=secret,id=token test -s /run/secrets/token && /bin/busybox grep -q canary /run/secrets/token && echo built > /built
";

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon (./scripts/test.sh starts it)"]
async fn a_build_secret_is_used_and_left_nowhere() {
    let engine = Engine::connect().await.unwrap();
    let ctx = context(DOCKERFILE);
    let canary = format!("canary-{}", unique_name("secret"));
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("token");
    std::fs::write(&secret, &canary).unwrap();
    let tag = format!("{}:v1", unique_name("stz-secret"));
    let req = BuildRequest {
        context: ctx.path().to_path_buf(),
        build_args: BTreeMap::from([("VERSION".into(), "1.2.3".into())]),
        labels: BTreeMap::from([("org.example.checksum".into(), "abc".into())]),
        secrets: BTreeMap::from([("token".into(), secret)]),
        no_cache: true,
        ..BuildRequest::default()
    };
    // The RUN step fails unless the secret is mounted with the canary in it.
    engine.build(&tag, &req, |_| {}).await.unwrap();
    let labels = engine.labels(&tag).await.unwrap();
    assert_eq!(labels["org.example.checksum"], "abc");
    assert_eq!(
        labels["org.example.version"], "1.2.3",
        "build arguments reach the Dockerfile"
    );

    let docker = engine.docker();
    let history = serde_json::to_string(&docker.image_history(&tag).await.unwrap()).unwrap();
    assert!(!history.contains(&canary), "history");
    let inspect = serde_json::to_string(&docker.inspect_image(&tag).await.unwrap()).unwrap();
    assert!(!inspect.contains(&canary), "image config");
    // `docker save`: every layer and the config, uncompressed.
    let mut saved = Vec::new();
    let mut stream = docker.export_image(&tag);
    while let Some(chunk) = stream.next().await {
        saved.extend_from_slice(&chunk.unwrap());
    }
    assert!(
        saved.windows(b"/built".len()).any(|w| w == b"/built"),
        "the RUN step ran"
    );
    assert!(
        !saved.windows(canary.len()).any(|w| w == canary.as_bytes()),
        "no layer holds the secret"
    );
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon (./scripts/test.sh starts it)"]
async fn the_build_log_streams_and_a_failing_step_is_named() {
    let engine = Engine::connect().await.unwrap();
    let ctx =
        context("FROM scratch\nCOPY busybox /bin/sh\nRUN echo hello-from-the-build\nRUN exit 3\n");
    let mut lines = Vec::new();
    let err = engine
        .build(
            &format!("{}:v1", unique_name("stz-fail")),
            &BuildRequest {
                context: ctx.path().to_path_buf(),
                ..BuildRequest::default()
            },
            |l| lines.push(l.to_string()),
        )
        .await
        .unwrap_err();
    assert!(
        lines.iter().any(|l| l.contains("hello-from-the-build")),
        "{lines:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("exit 3") || message.contains("non-zero code: 3"),
        "{message}"
    );
    assert!(
        message.contains("last lines of the build log") && message.contains("hello-from-the-build"),
        "{message}"
    );

    // With a secret the build goes through BuildKit: no stream, but the step still named.
    let secret = tempfile::NamedTempFile::new().unwrap();
    let req = BuildRequest {
        context: ctx.path().to_path_buf(),
        secrets: BTreeMap::from([("s".into(), secret.path().to_path_buf())]),
        ..BuildRequest::default()
    };
    let err = engine
        .build(&format!("{}:v1", unique_name("stz-fail")), &req, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exit 3"), "{err}");
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the OCI registry (./scripts/test.sh starts them)"]
async fn a_pushed_image_is_read_back_from_the_registry() {
    let engine = Engine::connect().await.unwrap();
    // A generated file joins the context folder's files.
    let ctx =
        context("FROM scratch\nCOPY busybox /bin/busybox\nCOPY generated.txt /generated.txt\n");
    let reg = registry();
    let repo = unique_name("pushed");
    let image = format!("{reg}/{repo}:v1");
    let req = BuildRequest {
        context: ctx.path().to_path_buf(),
        extra_files: BTreeMap::from([("generated.txt".into(), b"made by the tool".to_vec())]),
        labels: BTreeMap::from([("k".into(), "pushed".into())]),
        ..BuildRequest::default()
    };
    engine.build(&image, &req, |_| {}).await.unwrap();
    engine.push(&image, None).await.unwrap();
    let client = RegistryClient::new(&reg, None).unwrap();
    let found = client
        .resolve(&image.parse().unwrap(), "amd64")
        .await
        .unwrap();
    assert_eq!(found.labels["k"], "pushed");
}

/// The daemon's TCP listener with TLS, as a GitLab job reaches a Docker-in-Docker service
/// (`DOCKER_HOST=tcp://…`, `DOCKER_TLS_VERIFY=1`, `DOCKER_CERT_PATH`).
fn tls_address(cert_path: &std::path::Path) -> EngineAddress {
    let host = std::env::var("SPACKTAINERIZAH_TEST_DOCKER_TLS_HOST")
        .expect("the test command starts dockerd with a TLS listener");
    EngineAddress::parse(Some(&host), true, Some(cert_path.to_path_buf())).unwrap()
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon's TLS listener (./scripts/test.sh starts it)"]
async fn a_daemon_behind_tcp_and_tls_builds_with_secrets() {
    let certs = std::env::var("SPACKTAINERIZAH_TEST_DOCKER_CERT_PATH").unwrap();
    let engine = Engine::connect_to(&tls_address(certs.as_ref()))
        .await
        .unwrap();
    assert!(engine.host().starts_with("tcp://127.0.0.1:"));
    // BuildKit's session (the secret) over the same TLS connection.
    let ctx = context(DOCKERFILE);
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "canary").unwrap();
    let tag = format!("{}:v1", unique_name("stz-tls"));
    let req = BuildRequest {
        context: ctx.path().to_path_buf(),
        build_args: BTreeMap::from([("VERSION".into(), "2".into())]),
        secrets: BTreeMap::from([("token".into(), secret.path().to_path_buf())]),
        ..BuildRequest::default()
    };
    engine.build(&tag, &req, |_| {}).await.unwrap();
    assert_eq!(
        engine.labels(&tag).await.unwrap()["org.example.version"],
        "2"
    );
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon's TLS listener (./scripts/test.sh starts it)"]
async fn a_tls_daemon_refuses_a_client_without_its_certificates() {
    // A CA the daemon's certificate is not signed by: the connection is refused, the host named.
    let wrong = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=someone-else"])
        .arg("-keyout")
        .arg(wrong.path().join("key.pem"))
        .arg("-out")
        .arg(wrong.path().join("cert.pem"))
        .output()
        .unwrap();
    assert!(made.status.success());
    std::fs::copy(wrong.path().join("cert.pem"), wrong.path().join("ca.pem")).unwrap();
    let address = tls_address(wrong.path());
    let err = Engine::connect_to(&address).await.unwrap_err().to_string();
    assert!(err.contains(&address.to_string()), "{err}");

    // Missing files are named before any connection.
    let empty = tempfile::tempdir().unwrap();
    let err = Engine::connect_to(&tls_address(empty.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ca.pem") && err.contains("DOCKER_CERT_PATH"),
        "{err}"
    );
}

fn test_login() -> Login {
    Login::from_env(REGISTRY_USER_VAR, REGISTRY_PASSWORD_VAR).unwrap()
}

/// A base image only the test login may pull from `reg`: built here, pushed with the login,
/// then its tag removed from the daemon so that a build has to pull it.
async fn private_base(engine: &Engine, reg: &str) -> String {
    let image = format!("{reg}/{}:base", unique_name("private-base"));
    let ctx = context("FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\n");
    let req = BuildRequest {
        context: ctx.path().to_path_buf(),
        ..BuildRequest::default()
    };
    engine.build(&image, &req, |_| {}).await.unwrap();
    engine.push(&image, Some(&test_login())).await.unwrap();
    engine.remove_image(&image).await.unwrap();
    image
}

/// Build `FROM` a private base of `reg` without a login (refused) and with the test login
/// (built, running the base's shell), through the classic builder or BuildKit's session; the
/// password shows in no error, log line, history or image config.
async fn builds_from_a_private_base(reg: &str, buildkit: bool) {
    let engine = Engine::connect().await.unwrap();
    let base = private_base(&engine, reg).await;
    let password = std::env::var(REGISTRY_PASSWORD_VAR).unwrap();
    let ctx = context(&format!("FROM {base}\nRUN echo derived > /derived\n"));
    let tag = format!("{}:v1", unique_name("stz-private-from"));
    let mut req = BuildRequest {
        context: ctx.path().to_path_buf(),
        buildkit,
        no_cache: true,
        ..BuildRequest::default()
    };
    let mut log = Vec::new();
    let err = engine
        .build(&tag, &req, |l| log.push(l.to_string()))
        .await
        .expect_err("an anonymous pull of a private base is refused");
    assert!(!err.to_string().contains(&password), "{err}");

    let host = base.split('/').next().unwrap().to_string();
    req.registry_logins = vec![(host, test_login())];
    engine
        .build(&tag, &req, |l| log.push(l.to_string()))
        .await
        .unwrap_or_else(|e| panic!("building from {base} with the login: {e}"));
    assert!(!log.iter().any(|l| l.contains(&password)), "{log:?}");
    let docker = engine.docker();
    let history = serde_json::to_string(&docker.image_history(&tag).await.unwrap()).unwrap();
    assert!(history.contains("/derived"), "the RUN step ran: {history}");
    assert!(!history.contains(&password), "history");
    let inspect = serde_json::to_string(&docker.inspect_image(&tag).await.unwrap()).unwrap();
    assert!(!inspect.contains(&password), "image config");
    // The next test's daemon state stays as it was: nothing of the private base left tagged.
    let _ = engine.remove_image(&base).await;
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the OCI registry with a password login (./scripts/test.sh starts them)"]
async fn the_classic_builder_pulls_a_private_base_with_a_password_login() {
    builds_from_a_private_base(&auth_registry(), false).await;
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the OCI registry with token auth (./scripts/test.sh starts them)"]
async fn the_classic_builder_pulls_a_private_base_from_a_token_registry() {
    builds_from_a_private_base(&token_registry(), false).await;
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the OCI registry with a password login (./scripts/test.sh starts them)"]
async fn buildkit_pulls_a_private_base_with_a_password_login() {
    builds_from_a_private_base(&auth_registry(), true).await;
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the OCI registry with token auth (./scripts/test.sh starts them)"]
async fn buildkit_pulls_a_private_base_from_a_token_registry() {
    builds_from_a_private_base(&token_registry(), true).await;
}
