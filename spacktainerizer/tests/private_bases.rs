//! `spacktainerizer build` on an OS image in a registry that wants a login: pulled with the
//! project registry's login (its named variables) or with the login `docker login` saved,
//! refused without either; the password shows in no output. The build files are a stand-in
//! (`tests/tests/images.rs` builds the real ones).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use oci::engine::{BuildRequest, Engine};
use oci::registry::Login;
use spacktainerizah_tests::{
    REGISTRY_PASSWORD_VAR, REGISTRY_USER_VAR, auth_registry, registry, repo_root, token_registry,
    unique_name,
};

fn test_login() -> Login {
    Login::from_env(REGISTRY_USER_VAR, REGISTRY_PASSWORD_VAR).unwrap()
}

/// An OS image only the test login may pull from `reg`, not left on the daemon.
async fn private_os_image(reg: &str) -> String {
    let engine = Engine::connect().await.unwrap();
    let image = format!("{reg}/{}:base", unique_name("private-os"));
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    let req = BuildRequest {
        context: ctx.path().to_path_buf(),
        extra_files: BTreeMap::from([(
            "Dockerfile".to_string(),
            b"FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\n".to_vec(),
        )]),
        ..BuildRequest::default()
    };
    engine.build(&image, &req, |_| {}).await.unwrap();
    engine.push(&image, Some(&test_login())).await.unwrap();
    engine.remove_image(&image).await.unwrap();
    image
}

/// A repository whose runtime image is built `FROM` `os_image`, the images going to
/// `registry_url`, with stand-in tools.
fn write_repo(dir: &Path, registry_url: &str, os_image: &str) {
    let files = dir.join("base-images/runtime");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(
        files.join("Dockerfile"),
        "ARG OS_IMAGE\nFROM ${OS_IMAGE}\nRUN echo runtime > /runtime\n",
    )
    .unwrap();
    std::fs::write(dir.join("spack.tar"), "a stand-in").unwrap();
    std::fs::write(dir.join("spack-packages.tar"), "a stand-in").unwrap();
    std::fs::create_dir_all(dir.join("tools")).unwrap();
    for tool in model::commands::TOOLS {
        std::fs::write(dir.join("tools").join(tool), tool).unwrap();
    }
    let config = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: registry.example.org/hpc/spacktainers",
            &format!("url: {registry_url}"),
        )
        .replace(
            "user_env: CI_REGISTRY_USER",
            &format!("user_env: {REGISTRY_USER_VAR}"),
        )
        .replace(
            "secret_env: CI_REGISTRY_PASSWORD",
            &format!("secret_env: {REGISTRY_PASSWORD_VAR}"),
        )
        .replace("os_image: ubuntu:22.04", &format!("os_image: {os_image}"))
        // Not fetched: the runtime image only records which Spack it goes with.
        .replace(
            "repository: https://github.com/spack/spack.git\n    branch: releases/v1.0",
            "archive: spack.tar",
        )
        .replace(
            "repository: https://github.com/spack/spack-packages.git\n    branch: releases/v2025.07",
            "archive: spack-packages.tar",
        )
        .replace(
            "base_images:\n",
            "base_images:\n  build_files: base-images\n",
        );
    std::fs::write(dir.join("spacktainerizah.yaml"), config).unwrap();
}

/// `spacktainerizer build --image runtime` with `docker_config` as the only place a saved
/// login could come from; with the test login's variables when `named`.
fn build(repo: &Path, docker_config: &Path, named: bool, push: bool) -> Output {
    let mut cmd = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spacktainerizer"));
    cmd.args(["build", "--image", "runtime", "--arch", "amd64"])
        .args(["--branch", "main", "--repo"])
        .arg(repo)
        .arg("--config")
        .arg(repo.join("spacktainerizah.yaml"))
        .arg(format!(
            "--tools-dir=amd64={}",
            repo.join("tools").display()
        ))
        .env("DOCKER_CONFIG", docker_config)
        .env("HOME", docker_config)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME");
    if push {
        cmd.arg("--push");
    }
    if !named {
        cmd.env_remove(REGISTRY_USER_VAR)
            .env_remove(REGISTRY_PASSWORD_VAR);
    }
    cmd.output().unwrap()
}

/// The run's whole output, checked to hold no password.
fn output_without_password(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let password = std::env::var(REGISTRY_PASSWORD_VAR).unwrap();
    assert!(!text.contains(&password), "the password in the output");
    text
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the OCI registry with a password login (./scripts/test.sh starts them)"]
async fn the_os_image_is_pulled_with_the_project_registrys_named_variables() {
    let reg = auth_registry();
    let os_image = private_os_image(&reg).await;
    let repo = tempfile::tempdir().unwrap();
    write_repo(
        repo.path(),
        &format!("{reg}/{}", unique_name("named")),
        &os_image,
    );
    let no_saved_login = tempfile::tempdir().unwrap();

    let out = build(repo.path(), no_saved_login.path(), false, false);
    let text = output_without_password(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "refused without a login: {text}"
    );

    let out = build(repo.path(), no_saved_login.path(), true, true);
    let text = output_without_password(&out);
    assert!(out.status.success(), "{text}");
    let target = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(target.starts_with(&format!("{reg}/")), "{target}");
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the OCI registries (anonymous and with token auth) (./scripts/test.sh starts them)"]
async fn the_os_image_is_pulled_with_the_login_docker_saved() {
    let reg = token_registry();
    let os_image = private_os_image(&reg).await;
    let repo = tempfile::tempdir().unwrap();
    // The project registry is another one, which needs no login.
    write_repo(
        repo.path(),
        &format!("{}/{}", registry(), unique_name("saved")),
        &os_image,
    );
    let no_saved_login = tempfile::tempdir().unwrap();
    let out = build(repo.path(), no_saved_login.path(), false, false);
    let text = output_without_password(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "refused without a login: {text}"
    );

    // What `docker login` writes: base64 of `user:password` under the registry's host.
    let saved = tempfile::tempdir().unwrap();
    let header = test_login().basic_header();
    let auth = header.strip_prefix("Basic ").unwrap();
    std::fs::write(
        saved.path().join("config.json"),
        serde_json::json!({"auths": {reg.as_str(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let out = build(repo.path(), saved.path(), false, false);
    let text = output_without_password(&out);
    assert!(out.status.success(), "{text}");
}
