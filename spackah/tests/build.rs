//! Stage 3's plan and publication logic on the real Docker daemon and registry, fast, with
//! stand-in builder and runtime images (the stand-in `spack` checks that the build cache key
//! pair and the stage-2 mirror reached it and "installs" a file): plan, build and push, plan is
//! up to date, the key pair is nowhere in the image, a changed lockfile needs a rebuild. The
//! real builder, real Spack and a real cache build the example container in the end-to-end run.
//! And builder and runtime in a registry that wants a login: pulled with the project
//! registry's named variables.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use futures::StreamExt;
use oci::engine::{BuildRequest, Engine};
use oci::registry::Login;
use spacktainerizah_tests::{
    REGISTRY_PASSWORD_VAR, REGISTRY_USER_VAR, auth_registry, fixtures, registry, repo_root,
    unique_name,
};

const SPACK_STUB: &str = r#"#!/bin/sh
# Stand-in spack for the tests.
case "$*" in
  *" install "*)
    test -n "$AWS_ACCESS_KEY_ID" && test -n "$AWS_SECRET_ACCESS_KEY" || { echo "no build cache key pair" >&2; exit 1; }
    grep -q "url: s3://stage3-cache" /opt/spack-environment/spack.yaml || { echo "not the stage-2 cache" >&2; exit 1; }
    mkdir -p /opt/software/bin /opt/views/view && echo "installed from the cache" > /opt/software/bin/hello ;;
  *" gc "*) ;;
  "env activate --sh -d "*) echo 'export HELLO=world' ;;
  *) echo "unexpected spack $*" >&2; exit 1 ;;
esac
"#;

const STAND_IN_SPACK_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Build and push a stand-in base image (busybox with all its applets, plus `extra` files).
async fn base_image(engine: &Engine, image: &str, extra: &[(&str, &str)]) {
    base_image_with_login(engine, image, extra, None).await;
}

/// [`base_image`], pushed with `login`.
async fn base_image_with_login(
    engine: &Engine,
    image: &str,
    extra: &[(&str, &str)],
    login: Option<&Login>,
) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", ctx.path().join("busybox")).unwrap();
    // Its own first step: no build cache shared with another test's image, whose removal
    // (which prunes its untagged parents) would pull a layer from under this build.
    let mut dockerfile = format!(
        "FROM scratch\nLABEL org.example.test.image=\"{image}\"\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nRUN /bin/busybox --install -s /bin\nENV SPACK_ROOT=/opt/spack PATH=/usr/bin:/bin\n",
    );
    // The Spack commit stage 1 records on a builder, which the image's provenance names.
    dockerfile.push_str(&format!(
        "LABEL {}={STAND_IN_SPACK_COMMIT}\n",
        model::labels::namespaced("org.example.spacktainerizah", model::labels::SPACK_COMMIT)
    ));
    let mut files = BTreeMap::new();
    for (i, (target, content)) in extra.iter().enumerate() {
        files.insert(format!("f{i}"), content.as_bytes().to_vec());
        dockerfile.push_str(&format!("COPY f{i} {target}\nRUN chmod 755 {target}\n"));
    }
    files.insert("Dockerfile".to_string(), dockerfile.into_bytes());
    engine
        .build(
            image,
            &BuildRequest {
                context: ctx.path().to_path_buf(),
                extra_files: files,
                ..BuildRequest::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    engine.push(image, login).await.unwrap();
}

fn spackah(dir: &Path, args: &[&str], canary: &str) -> Output {
    spackah_command(dir, args, canary).output().unwrap()
}

/// `spackah ARGS` in `dir` with the build cache key pair (`canary` its secret half).
fn spackah_command(dir: &Path, args: &[&str], canary: &str) -> Command {
    let mut cmd = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackah"));
    cmd.args(args)
        .args(["--branch", "main", "--repo"])
        .arg(dir)
        .arg("--lockfiles")
        .arg(dir.join("locks"))
        .arg("--config")
        .arg(dir.join("spacktainerizah.yaml"))
        .env("BUILD_CACHE_ACCESS_KEY_ID", "AKIA-test")
        .env("BUILD_CACHE_SECRET_ACCESS_KEY", canary);
    cmd
}

/// Run a generated job's script as a runner would, in `dir`, with the tools on the PATH and the
/// CI variables the jobs read; returns its output.
fn run_job(dir: &Path, job: &model::ci::Job, canary: &str) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_spackah")).parent().unwrap();
    assert!(
        bin_dir.join("singularitah").exists(),
        "the SIF jobs run singularitah: build the workspace (`cargo test --workspace` does)"
    );
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-ec")
        .arg(job.script.join("\n"))
        .current_dir(dir)
        .env("PATH", path)
        .env("CI_COMMIT_REF_SLUG", "main")
        .env("SPACKTAINERIZAH_CONFIG", dir.join("spacktainerizah.yaml"))
        .env("BUILD_CACHE_ACCESS_KEY_ID", "AKIA-test")
        .env("BUILD_CACHE_SECRET_ACCESS_KEY", canary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        job.script,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon, the OCI registries (anonymous and with a password login), skopeo and umoci (./scripts/test.sh sets them up)"]
async fn plan_build_push_up_to_date_then_a_new_lockfile() {
    let engine = Engine::connect().await.unwrap();
    let ns = unique_name("stage3");
    let reg = registry();
    base_image(
        &engine,
        &format!("{reg}/{ns}/builder:base"),
        &[
            ("/usr/bin/spack", SPACK_STUB),
            ("/opt/spack/share/spack/setup-env.sh", "# stand-in\n"),
        ],
    )
    .await;
    base_image(&engine, &format!("{reg}/{ns}/runtime:base"), &[]).await;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("container_definitions/amd64/pythons")).unwrap();
    std::fs::write(d.join("container_definitions/amd64/pythons/spack.yaml"), "spack:\n  specs:\n    - python@3.13\nspacktainer:\n  files:\n    - spacktainer/files/hello.txt:/opt/hello.txt\n").unwrap();
    std::fs::write(
        d.join("container_definitions/amd64/pythons/Dockerfile.epilogue"),
        "RUN echo epilogue > /epilogue\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("spacktainer/files")).unwrap();
    std::fs::write(d.join("spacktainer/files/hello.txt"), "hello\n").unwrap();
    std::fs::create_dir_all(d.join("locks/amd64/pythons")).unwrap();
    std::fs::copy(
        fixtures().join("spack/lockfiles/spack__all-pythons__spack.lock"),
        d.join("locks/amd64/pythons/spack.lock"),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("envs/amd64/pythons")).unwrap();
    std::fs::write(
        d.join("envs/amd64/pythons/spack.yaml"),
        "spack:\n  specs: [python@3.13]\n  config:\n    install_tree:\n      root: /opt/software\n  mirrors:\n    buildcache-destination:\n      url: s3://stage3-cache\n",
    )
    .unwrap();
    // The "public hub" is the test registry that wants a login.
    let hub = format!(
        "{}/{}",
        spacktainerizah_tests::auth_registry(),
        unique_name("hub")
    );
    let config = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: registry.example.org/hpc/spacktainers",
            &format!("url: {reg}/{ns}"),
        )
        .replace("url: docker.io/bluebrain", &format!("url: {hub}"))
        .replace(
            "user_env: DOCKERHUB_USER",
            &format!("user_env: {}", spacktainerizah_tests::REGISTRY_USER_VAR),
        )
        .replace(
            "secret_env: DOCKERHUB_TOKEN",
            &format!(
                "secret_env: {}",
                spacktainerizah_tests::REGISTRY_PASSWORD_VAR
            ),
        )
        // SIFs go to a directory "bucket" and are synced to a "shared filesystem".
        .replace(
            "url: s3://sboinfrastructureassets/containers",
            &format!("url: file://{}/sifs", d.display()),
        )
        .replace(
            "dir: /gpfs/bbp.cscs.ch/ssd/containers",
            &format!("dir: {}/shared", d.display()),
        );
    std::fs::create_dir_all(d.join("shared")).unwrap();
    std::fs::write(d.join("spacktainerizah.yaml"), config).unwrap();
    let canary = unique_name("canary-secret");

    assert_eq!(spackah(d, &["plan"], &canary).status.code(), Some(1));
    // The stage-3 pipeline has one job for the container; run its script as the runner would.
    let envs = d.join("envs").display().to_string();
    let pipeline_file = d.join("containers.yml");
    let pipeline = |canary: &str| {
        let out = spackah(
            d,
            &[
                "pipeline",
                "--environments",
                &envs,
                "--base-tag",
                "base",
                "--file",
                &pipeline_file.display().to_string(),
            ],
            canary,
        );
        spacktainerizah_tests::succeeded(&out);
        let text = std::fs::read_to_string(&pipeline_file).unwrap();
        spacktainerizah_tests::validate_gitlab_ci(&text).unwrap();
        assert!(!text.contains(canary), "a secret in the pipeline");
        model::ci::Pipeline::parse(&pipeline_file, &text).unwrap()
    };
    let p = pipeline(&canary);
    let job_names: Vec<&String> = p.jobs.keys().collect();
    assert_eq!(
        job_names,
        [
            "build pythons amd64",
            "sif pythons amd64",
            "index pythons",
            "sync sifs"
        ]
    );
    let job = &p.jobs["build pythons amd64"];
    assert_eq!(
        job.needs.as_ref().unwrap()[0].job_name(),
        "generate build cache amd64"
    );
    let stdout = run_job(d, &p.jobs["build pythons amd64"], &canary);
    let image = stdout.lines().next().unwrap_or_default().to_string();
    // On the default branch the job also tried the hub, whose repository does not exist yet.
    assert!(stdout.contains("does not exist"), "{stdout}");
    assert!(image.ends_with("/pythons:3.13.5-amd64"), "{image}");
    // The index job (after the builds) writes the tag without the architecture, an index
    // listing the image just pushed.
    let multi = run_job(d, &p.jobs["index pythons"], &canary);
    assert_eq!(multi.trim(), image.trim_end_matches("-amd64"));
    let registries = oci::registry::Clients::new(Default::default());
    let client = registries.get("test", &reg, &None).unwrap();
    let listed = client
        .resolve(&multi.trim().parse().unwrap(), "amd64")
        .await
        .unwrap();
    assert!(listed.index_digest.is_some(), "a multi-arch index");
    let built = client
        .resolve(&image.parse().unwrap(), "amd64")
        .await
        .unwrap();
    assert_eq!(listed.manifest.digest, built.manifest.digest);
    // The SIF job makes the SIF from the pushed image and uploads it with its checksums; the
    // sync job brings the shared directory up to date.
    run_job(d, &p.jobs["sif pythons amd64"], &canary);
    let sif_name = "pythons__3.13.5-amd64.sif";
    assert!(!d.join(sif_name).exists(), "the job cleans up after itself");
    run_job(d, &p.jobs["sync sifs"], &canary);
    let labels = model::sif::format::read_labels(&d.join("shared").join(sif_name)).unwrap();
    // The build attached the image's SBOM and provenance; the SIF carries the same documents.
    let in_sif = model::sif::format::read_documents(&d.join("shared").join(sif_name)).unwrap();
    let found = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackah"))
        .args(["provenance", &image, "--output", "json"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&found.stdout);
    assert_eq!(
        found.status.code(),
        Some(0),
        "{listed}{}",
        String::from_utf8_lossy(&found.stderr)
    );
    assert_eq!(
        in_sif.iter().map(|doc| doc.kind).collect::<Vec<_>>(),
        model::attest::DocumentKind::ALL,
        "{listed}"
    );
    for doc in &in_sif {
        let digest = format!("sha256:{}", model::checksum::sha256_hex(&doc.bytes));
        assert!(listed.contains(&digest), "{digest} not in {listed}");
    }
    let provenance = String::from_utf8_lossy(&in_sif[1].bytes);
    assert!(provenance.contains(STAND_IN_SPACK_COMMIT), "{provenance}");
    let plan_json = spackah(d, &["plan", "--output", "json"], &canary);
    let decisions: serde_json::Value = serde_json::from_slice(&plan_json.stdout).unwrap();
    for (k, v) in decisions[0]["record"].as_object().unwrap() {
        assert_eq!(
            labels.get(k).map(String::as_str),
            v.as_str(),
            "{k} in the SIF"
        );
    }
    let out = spackah(d, &["plan"], &canary);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let p = pipeline(&canary);
    assert!(
        !p.jobs.keys().any(|k| k.contains(" pythons ")),
        "nothing to do: {:?}",
        p.jobs.keys()
    );

    // The key pair reached the install step and is nowhere in the image.
    let docker = engine.docker().expect("a Docker daemon");
    let mut saved = Vec::new();
    let mut stream = docker.export_image(&image);
    while let Some(chunk) = stream.next().await {
        saved.extend_from_slice(&chunk.unwrap());
    }
    for needle in [
        b"installed from the cache".as_slice(),
        b"epilogue",
        b"hello\n",
    ] {
        assert!(
            saved.windows(needle.len()).any(|w| w == needle),
            "{}",
            String::from_utf8_lossy(needle)
        );
    }
    assert!(
        !saved.windows(canary.len()).any(|w| w == canary.as_bytes()),
        "the secret key is in a layer"
    );
    let history = serde_json::to_string(&docker.image_history(&image).await.unwrap()).unwrap();
    assert!(!history.contains(&canary));

    // The public hub: only into a repository that exists, only when it lacks the image.
    let publish = |branch: &str| {
        let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackah"))
            .args([
                "publish",
                "--container",
                "pythons",
                "--arch",
                "amd64",
                "--branch",
                branch,
                "--repo",
            ])
            .arg(d)
            .arg("--lockfiles")
            .arg(d.join("locks"))
            .arg("--config")
            .arg(d.join("spacktainerizah.yaml"))
            .output()
            .unwrap();
        spacktainerizah_tests::succeeded(&out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(publish("my-branch").contains("not on the default branch"));
    assert!(publish("main").contains("does not exist"));
    let user = std::env::var(spacktainerizah_tests::REGISTRY_USER_VAR).unwrap();
    let password = std::env::var(spacktainerizah_tests::REGISTRY_PASSWORD_VAR).unwrap();
    let (hub_registry, hub_ns) = hub.split_once('/').unwrap();
    spacktainerizah_tests::push_test_image(
        hub_registry,
        &format!("{hub_ns}/pythons"),
        "seed",
        "amd64",
        &[],
        Some(&format!("{user}:{password}")),
    );
    // The repository exists now: the plan wants the image on the hub, and the pipeline has a
    // hub job only, which pulls the image it did not build.
    let out = spackah(d, &["plan"], &canary);
    assert_eq!(out.status.code(), Some(1));
    let p = pipeline(&canary);
    let job_names: Vec<&String> = p.jobs.keys().collect();
    assert_eq!(job_names, ["publish pythons amd64"]);
    docker
        .remove_image(
            &image,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .unwrap();
    let stdout = run_job(d, &p.jobs["publish pythons amd64"], &canary);
    assert!(stdout.starts_with("pushed "), "{stdout}");
    assert!(publish("main").contains("up to date"));
    assert_eq!(spackah(d, &["plan"], &canary).status.code(), Some(0));

    let lock = d.join("locks/amd64/pythons/spack.lock");
    let mut bytes = std::fs::read(&lock).unwrap();
    bytes.push(b'\n');
    std::fs::write(&lock, bytes).unwrap();
    let out = spackah(d, &["plan", "--output", "json"], &canary);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("lockfile changed"));

    // The image under that tag here is the one built before the change: it never reaches the
    // hub, whose copy stays as it was.
    let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackah"))
        .args(["publish", "--container", "pythons", "--arch", "amd64"])
        .args(["--branch", "main", "--repo"])
        .arg(d)
        .arg("--lockfiles")
        .arg(d.join("locks"))
        .arg("--config")
        .arg(d.join("spacktainerizah.yaml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("stale") && err.contains("lockfile-sha256"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "NOT RUN: needs the Docker daemon and the OCI registry with a password login (./scripts/test.sh starts them)"]
async fn the_builder_and_runtime_are_pulled_with_the_project_registrys_login() {
    // Both base images only the project registry's login may pull, not left on the daemon.
    let engine = Engine::connect().await.unwrap();
    let login = Login::from_env(REGISTRY_USER_VAR, REGISTRY_PASSWORD_VAR).unwrap();
    let project = format!("{}/{}", auth_registry(), unique_name("private-stage3"));
    let builder = format!("{project}/builder:base");
    let runtime = format!("{project}/runtime:base");
    base_image_with_login(
        &engine,
        &builder,
        &[
            ("/usr/bin/spack", SPACK_STUB),
            ("/opt/spack/share/spack/setup-env.sh", "# stand-in\n"),
        ],
        Some(&login),
    )
    .await;
    base_image_with_login(&engine, &runtime, &[], Some(&login)).await;
    for image in [&builder, &runtime] {
        engine.remove_image(image).await.unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("container_definitions/amd64")).unwrap();
    std::fs::write(
        d.join("container_definitions/amd64/pythons.yaml"),
        "spack:\n  specs:\n    - python@3.13\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("locks/amd64/pythons")).unwrap();
    std::fs::copy(
        fixtures().join("spack/lockfiles/spack__all-pythons__spack.lock"),
        d.join("locks/amd64/pythons/spack.lock"),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("envs/amd64/pythons")).unwrap();
    std::fs::write(
        d.join("envs/amd64/pythons/spack.yaml"),
        "spack:\n  specs: [python@3.13]\n  config:\n    install_tree:\n      root: /opt/software\n  mirrors:\n    buildcache-destination:\n      url: s3://stage3-cache\n",
    )
    .unwrap();
    let config = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: registry.example.org/hpc/spacktainers",
            &format!("url: {project}"),
        )
        .replace(
            "user_env: CI_REGISTRY_USER",
            &format!("user_env: {REGISTRY_USER_VAR}"),
        )
        .replace(
            "secret_env: CI_REGISTRY_PASSWORD",
            &format!("secret_env: {REGISTRY_PASSWORD_VAR}"),
        );
    std::fs::write(d.join("spacktainerizah.yaml"), config).unwrap();
    let canary = unique_name("canary-secret");
    let envs = d.join("envs").display().to_string();
    let args = [
        "build",
        "--environments",
        &envs,
        "--base-tag",
        "base",
        "--container",
        "pythons",
        "--arch",
        "amd64",
        "--push",
    ];
    // Nowhere else to find a login than the named variables.
    let no_saved_login = tempfile::tempdir().unwrap();
    let run = |named: bool| {
        let mut cmd = spackah_command(d, &args, &canary);
        cmd.env("DOCKER_CONFIG", no_saved_login.path())
            .env("HOME", no_saved_login.path())
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME");
        if !named {
            cmd.env_remove(REGISTRY_USER_VAR);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(login.secret.expose()),
            "the password in the output"
        );
        (out.status.code(), text)
    };
    let (code, text) = run(false);
    assert_eq!(code, Some(2), "refused without the login: {text}");
    let (code, text) = run(true);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with(&format!("{project}/pythons:")), "{text}");
}
