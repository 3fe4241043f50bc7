//! A registry login saved by `docker login`, `podman login` or a credential helper is used as
//! Docker and skopeo use it, against the real registry that asks for one; a broken file is
//! named, and the password shows nowhere.

use std::path::Path;
use std::process::{Command, Output};

use spacktainerizah_tests::{
    REGISTRY_PASSWORD_VAR, REGISTRY_USER_VAR, auth_registry, push_test_image, unique_name,
};

/// `sif build` of `image` with nothing in the environment but `env` (and PATH).
fn build(image: &str, home: &Path, env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_singularitah"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home)
        .args(["sif", "build", image, "--out"])
        .arg(home.join("out.sif"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
#[ignore = "NOT RUN: needs the OCI registry with a password login, skopeo, umoci and squashfs-tools (./scripts/test.sh sets them up)"]
fn logins_saved_by_docker_podman_and_credential_helpers() {
    let reg = auth_registry();
    let user = std::env::var(REGISTRY_USER_VAR).unwrap();
    let password = std::env::var(REGISTRY_PASSWORD_VAR).unwrap();
    let repo = unique_name("saved-login");
    push_test_image(
        &reg,
        &repo,
        "1",
        "amd64",
        &[],
        Some(&format!("{user}:{password}")),
    );
    let image = format!("{reg}/{repo}:1");
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let said = |out: &Output| {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(&password), "the password shows: {text}");
        text
    };

    // Nothing saved: the registry says no.
    let out = build(&image, d, &[]);
    assert!(
        !out.status.success() && said(&out).contains("denied"),
        "{}",
        said(&out)
    );

    // `docker login`: base64 `user:password` under the registry's name in config.json.
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let docker = d.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{reg}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let out = build(
        &image,
        d,
        &[("DOCKER_CONFIG", docker.display().to_string())],
    );
    assert!(out.status.success(), "{}", said(&out));

    // `podman login --authfile`: REGISTRY_AUTH_FILE.
    let authfile = d.join("auth.json");
    std::fs::write(
        &authfile,
        format!(r#"{{"auths": {{"http://{reg}/v2/": {{"username": "{user}", "password": "{password}"}}}}}}"#),
    )
    .unwrap();
    let out = build(
        &image,
        d,
        &[("REGISTRY_AUTH_FILE", authfile.display().to_string())],
    );
    assert!(out.status.success(), "{}", said(&out));

    // A credential helper named for the registry, asked as Docker asks it.
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-team");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = '{reg}' ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"%s\"}}' \"$server\" \"$TEAM_SECRET\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers": {{"{reg}": "team"}}}}"#),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = build(
        &image,
        d,
        &[
            ("DOCKER_CONFIG", docker.display().to_string()),
            ("PATH", path),
            ("TEAM_SECRET", password.clone()),
        ],
    );
    assert!(out.status.success(), "{}", said(&out));

    // A helper that fails after writing its answer: named, with what it said on stderr, and
    // its stdout (where credentials go) never shown.
    let failing = bin.join("docker-credential-broken");
    std::fs::write(
        &failing,
        "#!/bin/sh
printf '{\"Username\":\"u\",\"Secret\":\"%s\"}' \"$TEAM_SECRET\"\necho 'keychain locked' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &failing,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers": {{"{reg}": "broken"}}}}"#),
    )
    .unwrap();
    let out = build(
        &image,
        d,
        &[
            ("DOCKER_CONFIG", docker.display().to_string()),
            (
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            ),
            ("TEAM_SECRET", password.clone()),
        ],
    );
    let text = said(&out);
    assert!(
        !out.status.success()
            && text.contains("docker-credential-broken")
            && text.contains("keychain locked"),
        "{text}"
    );

    // A broken file is named, not taken for "no login".
    std::fs::write(docker.join("config.json"), "{\"auths\": ").unwrap();
    let out = build(
        &image,
        d,
        &[("DOCKER_CONFIG", docker.display().to_string())],
    );
    let text = said(&out);
    assert!(
        !out.status.success() && text.contains("docker/config.json"),
        "{text}"
    );
}
