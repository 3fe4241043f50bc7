//! The engine contract (`oci::engine::ContainerEngine` under `Engine`): one suite of checks —
//! a build's labels reach the registry with a push, tags, pulls, and failures that name what
//! failed — run against the engine in memory in plain `cargo test`, and against the real
//! Docker daemon as ignored tests. Below the suite, what only the daemon does: BuildKit
//! secrets that end up nowhere in the image, the build log, TLS, and base images pulled from
//! registries that want a login (password and token) by both builders.

use std::collections::BTreeMap;

use futures::StreamExt;
use oci::engine::{BuildRequest, Engine, EngineAddress, EngineError, MemoryEngine};
use oci::registry::{Login, MemoryRegistry, RegistryClient};
use spacktainerizah_tests::{
    REGISTRY_PASSWORD_VAR, REGISTRY_USER_VAR, auth_registry, registry, token_registry, unique_name,
};

/// A context with a static busybox as `/bin/sh`, so `RUN` works without pulling anything (the
/// engine in memory runs nothing: it needs no busybox).
///
/// The tests run at once on one daemon and remove what they built. The classic builder gives
/// steps of the same content the same images (its cache, or the same ID made twice), so a
/// removal would delete another test's parent from under its build ("unknown parent image
/// ID"): a `FROM scratch` gets a label of its own before its first step.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let own = format!(
        "FROM scratch\nLABEL test.context={}",
        unique_name("context")
    );
    let dockerfile = dockerfile.replacen("FROM scratch", &own, 1);
    if std::fs::copy("/bin/busybox", dir.path().join("busybox")).is_err() {
        std::fs::write(
            dir.path().join("busybox"),
            "busybox-static is not installed",
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    dir
}

/// An engine to run the suite on, a client of the registry it pushes to, and that registry.
struct Setup {
    engine: Engine,
    client: RegistryClient,
    registry: String,
    /// The engine in memory, when it is the one.
    fake: Option<MemoryEngine>,
}

impl Setup {
    fn image(&self, prefix: &str, tag: &str) -> String {
        format!("{}/{}:{tag}", self.registry, unique_name(prefix))
    }

    /// A build of `tag` that fails at its last step, after logging `hello-from-the-build`.
    fn failing(&self, tag: &str) -> (tempfile::TempDir, BuildRequest) {
        let ctx = context(
            "FROM scratch\nCOPY busybox /bin/sh\nRUN echo hello-from-the-build\nRUN exit 3\n",
        );
        if let Some(fake) = &self.fake {
            fake.fail_build(tag, "hello-from-the-build\nexit code: 3");
        }
        let req = BuildRequest {
            context: ctx.path().to_path_buf(),
            ..BuildRequest::default()
        };
        (ctx, req)
    }
}

/// The checks every engine passes.
mod suite {
    use super::*;

    pub async fn a_build_carries_its_labels_to_the_registry(setup: &Setup) {
        let engine = &setup.engine;
        // A generated file joins the context folder's files.
        let ctx =
            context("FROM scratch\nCOPY busybox /bin/busybox\nCOPY generated.txt /generated.txt\n");
        let image = setup.image("pushed", "v1");
        let req = BuildRequest {
            context: ctx.path().to_path_buf(),
            extra_files: BTreeMap::from([("generated.txt".into(), b"made by the tool".to_vec())]),
            labels: BTreeMap::from([("k".into(), "pushed".into())]),
            ..BuildRequest::default()
        };
        engine.build(&image, &req, |_| {}).await.unwrap();
        assert_eq!(engine.labels(&image).await.unwrap()["k"], "pushed");
        engine.push(&image, None).await.unwrap();
        let arch = oci::engine::host_architecture();
        let found = setup
            .client
            .resolve(&image.parse().unwrap(), arch)
            .await
            .unwrap();
        assert_eq!(found.labels["k"], "pushed");
        assert_eq!(found.architecture, arch);

        // Another name for the same image, pushed too.
        let other = setup.image("tagged", "v2");
        engine.tag(&image, &other).await.unwrap();
        assert_eq!(engine.labels(&other).await.unwrap()["k"], "pushed");
        engine.push(&other, None).await.unwrap();
        let found = setup
            .client
            .resolve(&other.parse().unwrap(), arch)
            .await
            .unwrap();
        assert_eq!(found.labels["k"], "pushed");

        // Removed here, pulled back from the registry.
        engine.remove_image(&image).await.unwrap();
        let err = engine.labels(&image).await.unwrap_err();
        assert!(err.to_string().contains(&image), "{err}");
        engine.pull(&image, arch, None).await.unwrap();
        assert_eq!(engine.labels(&image).await.unwrap()["k"], "pushed");
        engine.remove_image(&image).await.unwrap();
        engine.remove_image(&other).await.unwrap();
    }

    pub async fn failures_name_what_failed(setup: &Setup) {
        let engine = &setup.engine;
        let never = setup.image("never-built", "v1");
        let err = engine.labels(&never).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Inspect { .. }) && err.to_string().contains(&never),
            "{err}"
        );
        let err = engine.push(&never, None).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Push { .. }) && err.to_string().contains(&never),
            "{err}"
        );
        let err = engine
            .tag(&never, &setup.image("x", "v1"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&never), "{err}");
        let arch = oci::engine::host_architecture();
        let err = engine.pull(&never, arch, None).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Pull { .. }) && err.to_string().contains(&never),
            "{err}"
        );
        let err = engine.remove_image(&never).await.unwrap_err();
        assert!(err.to_string().contains(&never), "{err}");

        let gone = tempfile::tempdir().unwrap().path().join("no-context");
        let req = BuildRequest {
            context: gone.clone(),
            ..BuildRequest::default()
        };
        let err = engine.build(&never, &req, |_| {}).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Context { .. })
                && err.to_string().contains(&gone.display().to_string()),
            "{err}"
        );

        let ctx = context("FROM scratch\nCOPY busybox /bin/busybox\n");
        let built = setup.image("built", "v1");
        let req = BuildRequest {
            context: ctx.path().to_path_buf(),
            ..BuildRequest::default()
        };
        engine.build(&built, &req, |_| {}).await.unwrap();
        let err = engine.read_file(&built, "/no/such/file").await.unwrap_err();
        assert!(err.to_string().contains("/no/such/file"), "{err}");
        engine.remove_image(&built).await.unwrap();
    }

    pub async fn a_failing_build_is_named_with_its_log(setup: &Setup) {
        let tag = setup.image("fails", "v1");
        let (_ctx, req) = setup.failing(&tag);
        let mut lines = Vec::new();
        let err = setup
            .engine
            .build(&tag, &req, |l| lines.push(l.to_string()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, EngineError::Build { .. }) && err.to_string().contains(&tag),
            "{err}"
        );
        assert!(err.to_string().contains("hello-from-the-build"), "{err}");
        assert!(
            lines.iter().any(|l| l.contains("hello-from-the-build")),
            "{lines:?}"
        );
        assert!(
            setup.engine.labels(&tag).await.is_err(),
            "nothing was built"
        );
    }
}

/// One test per check of the suite for an engine made by `$open`; `[$attrs]` go on each test.
macro_rules! contract {
    ($backend:ident, $open:path, $attrs:tt) => {
        mod $backend {
            use super::*;
            contract!(@test a_build_carries_its_labels_to_the_registry, $open, $attrs);
            contract!(@test failures_name_what_failed, $open, $attrs);
            contract!(@test a_failing_build_is_named_with_its_log, $open, $attrs);
        }
    };
    (@test $check:ident, $open:path, [$(#[$attr:meta])*]) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $check() {
            suite::$check(&$open().await).await;
        }
    };
}

async fn memory() -> Setup {
    let registry = MemoryRegistry::new();
    let fake = MemoryEngine::new(&registry);
    Setup {
        engine: Engine::memory(&fake),
        client: RegistryClient::memory(&registry),
        registry: "registry.test:5000".into(),
        fake: Some(fake),
    }
}

contract!(memory, memory, []);

async fn docker() -> Setup {
    let reg = registry();
    Setup {
        engine: Engine::connect().await.unwrap(),
        client: RegistryClient::new(&reg, None).unwrap(),
        registry: reg,
        fake: None,
    }
}

contract!(
    docker,
    docker,
    [#[ignore = "NOT RUN: needs the Docker daemon and the test registries (./scripts/test.sh starts them)"]]
);

#[tokio::test]
async fn the_engine_in_memory_records_builds_and_pushes_into_its_registry() {
    let registry = MemoryRegistry::new();
    let fake = MemoryEngine::new(&registry);
    let engine = Engine::memory(&fake);
    assert!(engine.docker().is_none());
    let ctx = tempfile::tempdir().unwrap();
    let req = BuildRequest {
        context: ctx.path().to_path_buf(),
        extra_files: BTreeMap::from([("Dockerfile".into(), b"FROM scratch\n".to_vec())]),
        labels: BTreeMap::from([("org.example.checksum".into(), "abc".into())]),
        architecture: Some("arm64".into()),
        ..BuildRequest::default()
    };
    let image = "registry.test/app:v1";
    engine.build(image, &req, |_| {}).await.unwrap();
    fake.set_file(image, "/log", b"spack said").unwrap();
    assert_eq!(
        engine.read_file(image, "/log").await.unwrap(),
        b"spack said"
    );
    engine.push(image, None).await.unwrap();
    let builds = fake.builds();
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0].0, image);
    assert_eq!(builds[0].1.labels, req.labels);
    assert_eq!(fake.pushed(), [image]);
    assert_eq!(registry.written(), [image]);
    let resolved = RegistryClient::memory(&registry)
        .resolve(&image.parse().unwrap(), "arm64")
        .await
        .unwrap();
    assert_eq!(resolved.labels, req.labels);
    // A registry that is down fails the push, naming the image.
    registry.set_unreachable("registry.test");
    let err = engine.push(image, None).await.unwrap_err();
    assert!(err.to_string().contains(image), "{err}");
    // A context without a Dockerfile is no build.
    let err = engine
        .build(
            "registry.test/app:v2",
            &BuildRequest {
                context: ctx.path().to_path_buf(),
                ..BuildRequest::default()
            },
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Dockerfile"), "{err}");
}

const DOCKERFILE: &str = "FROM scratch
COPY busybox /bin/busybox
COPY busybox /bin/sh
ARG VERSION
LABEL org.example.version=$VERSION
RUN --mount=type=secret,id=token test -s /run/secrets/token && /bin/busybox grep -q canary /run/secrets/token && echo built > /built
";

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the test registries (./scripts/test.sh starts them)"]
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

    let docker = engine.docker().expect("a Docker daemon");
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
#[ignore = "NOT RUN: needs the Docker daemon and the test registries (./scripts/test.sh starts them)"]
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

/// The daemon's TCP listener with TLS, as a GitLab job reaches a Docker-in-Docker service
/// (`DOCKER_HOST=tcp://…`, `DOCKER_TLS_VERIFY=1`, `DOCKER_CERT_PATH`).
fn tls_address(cert_path: &std::path::Path) -> EngineAddress {
    let host = std::env::var("SPACKTAINERIZAH_TEST_DOCKER_TLS_HOST")
        .expect("the test command starts dockerd with a TLS listener");
    EngineAddress::parse(Some(&host), true, Some(cert_path.to_path_buf())).unwrap()
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the test registries (./scripts/test.sh starts them)"]
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
#[ignore = "NOT RUN: needs the Docker daemon and the test registries (./scripts/test.sh starts them)"]
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
    let docker = engine.docker().expect("a Docker daemon");
    let history = serde_json::to_string(&docker.image_history(&tag).await.unwrap()).unwrap();
    assert!(history.contains("/derived"), "the RUN step ran: {history}");
    assert!(!history.contains(&password), "history");
    let inspect = serde_json::to_string(&docker.inspect_image(&tag).await.unwrap()).unwrap();
    assert!(!inspect.contains(&password), "image config");
    // The next test's daemon state stays as it was: nothing of the private base left tagged.
    let _ = engine.remove_image(&base).await;
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the test registries (./scripts/test.sh starts them)"]
async fn the_classic_builder_pulls_a_private_base_with_a_password_login() {
    builds_from_a_private_base(&auth_registry(), false).await;
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the test registries (./scripts/test.sh starts them)"]
async fn the_classic_builder_pulls_a_private_base_from_a_token_registry() {
    builds_from_a_private_base(&token_registry(), false).await;
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the test registries (./scripts/test.sh starts them)"]
async fn buildkit_pulls_a_private_base_with_a_password_login() {
    builds_from_a_private_base(&auth_registry(), true).await;
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the test registries (./scripts/test.sh starts them)"]
async fn buildkit_pulls_a_private_base_from_a_token_registry() {
    builds_from_a_private_base(&token_registry(), true).await;
}
