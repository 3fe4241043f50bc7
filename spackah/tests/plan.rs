//! `spackah plan` against the real registry and a directory containers bucket: tags from the
//! lockfile, up to date after a publish with the planned labels, rebuilt when the lockfile or
//! the definition changes, `.def` containers rebuilt when their source image changes; bad
//! definitions and lockfiles named.

use std::path::Path;
use std::process::{Command, Output};

use std::collections::BTreeMap;

use serde_json::Value;
use spacktainerizah_tests::{fixtures, push_test_image, registry, repo_root, unique_name};
use stores::sif_published;

struct Setup {
    dir: tempfile::TempDir,
    namespace: String,
    source_repo: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("container_definitions/amd64")).unwrap();
    std::fs::write(
        d.join("container_definitions/amd64/pythons.yaml"),
        "spack:\n  specs:\n    - python@3.13 +optimizations\n",
    )
    .unwrap();
    let source_repo = unique_name("nexus-storage");
    push_test_image(
        &registry(),
        &source_repo,
        "latest",
        "amd64",
        &[("rev", "1")],
        None,
    );
    std::fs::write(
        d.join("container_definitions/amd64/storage.def"),
        format!(
            "Bootstrap: docker\nFrom: {}/{source_repo}:latest\n\n%startscript\n  /opt/storage $@\n",
            registry()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("locks/amd64/pythons")).unwrap();
    std::fs::copy(
        fixtures().join("spack/lockfiles/spack__all-pythons__spack.lock"),
        d.join("locks/amd64/pythons/spack.lock"),
    )
    .unwrap();
    let namespace = unique_name("ns");
    let config = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: registry.example.org/hpc/spacktainers",
            &format!("url: {}/{namespace}", registry()),
        )
        .replace(
            "url: s3://sboinfrastructureassets/containers",
            &format!("url: file://{}/sifs", d.display()),
        )
        // The "hub" is a namespace of the test registry where no repository exists.
        .replace(
            "url: docker.io/bluebrain",
            &format!("url: {}/{}", registry(), unique_name("hub")),
        );
    std::fs::write(d.join("spacktainerizah.yaml"), config).unwrap();
    Setup {
        dir,
        namespace,
        source_repo,
    }
}

fn plan(dir: &Path) -> (Option<i32>, Vec<Value>, String) {
    plan_with(dir, &[], None)
}

/// `spackah ARGS` on the repository `dir`: its definitions, lockfiles and configuration.
fn spackah(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackah"));
    cmd.args(args)
        .arg("--repo")
        .arg(dir)
        .arg("--lockfiles")
        .arg(dir.join("locks"))
        .arg("--config")
        .arg(dir.join("spacktainerizah.yaml"));
    cmd
}

/// `spackah plan` with `extra` arguments, and `path` as PATH when given.
fn plan_with(dir: &Path, extra: &[&str], path: Option<&str>) -> (Option<i32>, Vec<Value>, String) {
    let mut args = vec!["plan", "--output", "json", "--branch", "main"];
    args.extend(extra);
    let mut cmd = spackah(dir, &args);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let out: Output = cmd.output().unwrap();
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn find<'a>(d: &'a [Value], container: &str) -> &'a Value {
    d.iter().find(|x| x["container"] == container).unwrap()
}

/// Publish what the plan asks for: the image with its labels, the SIF with its metadata.
async fn publish(s: &Setup, decisions: &[Value]) {
    let py = find(decisions, "pythons");
    let labels: Vec<(String, String)> = py["record"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().into()))
        .collect();
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let tag = py["target"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    push_test_image(
        &registry(),
        &format!("{}/pythons", s.namespace),
        &tag,
        "amd64",
        &pairs,
        None,
    );
    // Its multi-arch tag, as the index job writes it after the builds.
    let out = spackah(
        s.dir.path(),
        &["index", "--container", "pythons", "--branch", "main"],
    )
    .output()
    .unwrap();
    spacktainerizah_tests::succeeded(&out);
    // The SIFs, with the checksums of what their builds record as object metadata.
    let store =
        spacktainerizah_tests::open_store(&format!("file://{}/sifs", s.dir.path().display())).await;
    for d in decisions {
        let sif = &d["sif"];
        let record: BTreeMap<String, String> = serde_json::from_value(d["record"].clone()).unwrap();
        store
            .put(
                sif["key"].as_str().unwrap(),
                b"SIF".to_vec(),
                &sif_published::checksums(&record),
                &Default::default(),
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
async fn tags_from_the_lockfile_and_rebuilds_on_change() {
    let s = setup();
    let (code, d, err) = plan(s.dir.path());
    assert_eq!(code, Some(1), "{err}");
    let py = find(&d, "pythons");
    assert!(
        py["target"]
            .as_str()
            .unwrap()
            .ends_with("/pythons:3.13.5-amd64"),
        "{py}"
    );
    assert!(py["reason"].as_str().unwrap().contains("does not exist"));
    assert_eq!(py["sif"]["key"], "pythons__3.13.5-amd64.sif");
    assert_eq!(py["sif"]["reason"], "SIF missing");
    assert_eq!(py["hub"]["push"], false, "{py}");
    assert_eq!(py["hub"]["reason"], "hub repository does not exist");
    assert_eq!(find(&d, "storage")["reason"], "SIF missing");

    assert_eq!(py["index"]["write"], true, "{py}");
    assert!(
        py["index"]["target"]
            .as_str()
            .unwrap()
            .ends_with("/pythons:3.13.5")
    );

    publish(&s, &d).await;
    let (code, d, err) = plan(s.dir.path());
    assert_eq!(code, Some(0), "{err} {d:?}");
    assert_eq!(
        find(&d, "pythons")["index"]["reason"],
        "multi-arch tag up to date"
    );

    // The image is there but its SIF records another lockfile: only the SIF is remade.
    let store =
        spacktainerizah_tests::open_store(&format!("file://{}/sifs", s.dir.path().display())).await;
    let key = "pythons__3.13.5-amd64.sif";
    let mut meta = store.head(key).await.unwrap().1;
    meta.insert(sif_published::META_LOCKFILE_SHA256.into(), "other".into());
    store
        .put(key, b"SIF".to_vec(), &meta, &Default::default())
        .await
        .unwrap();
    let (code, d, _) = plan(s.dir.path());
    assert_eq!(code, Some(1));
    let py = find(&d, "pythons");
    assert_eq!(
        (py["build"].as_bool(), py["sif"]["build"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(py["sif"]["reason"], "SIF has another lockfile-sha256");
    publish(&s, &d).await;

    let lock = s.dir.path().join("locks/amd64/pythons/spack.lock");
    let original = std::fs::read(&lock).unwrap();
    let mut changed = original.clone();
    changed.push(b'\n');
    std::fs::write(&lock, &changed).unwrap();
    assert_eq!(
        find(&plan(s.dir.path()).1, "pythons")["reason"],
        "lockfile changed"
    );
    std::fs::write(&lock, &original).unwrap();

    let def = s
        .dir
        .path()
        .join("container_definitions/amd64/pythons.yaml");
    std::fs::write(
        &def,
        "spack:\n  specs:\n    - python@3.13 +optimizations\n    - py-numpy\n",
    )
    .unwrap();
    assert_eq!(
        find(&plan(s.dir.path()).1, "pythons")["reason"],
        "definition changed"
    );

    // The `.def` container's source image is pushed again with other content.
    push_test_image(
        &registry(),
        &s.source_repo,
        "latest",
        "amd64",
        &[("rev", "2")],
        None,
    );
    let (_, d, _) = plan(s.dir.path());
    assert!(
        find(&d, "storage")["reason"]
            .as_str()
            .unwrap()
            .starts_with("source image changed"),
        "{d:?}"
    );
    // Published again from the new image; then its definition changes.
    publish(&s, &d).await;
    assert_eq!(find(&plan(s.dir.path()).1, "storage")["build"], false);
    let def = s.dir.path().join("container_definitions/amd64/storage.def");
    let mut text = std::fs::read_to_string(&def).unwrap();
    text.push_str("%help\n  The storage service.\n");
    std::fs::write(&def, text).unwrap();
    assert_eq!(
        find(&plan(s.dir.path()).1, "storage")["reason"],
        "definition changed"
    );
}

#[test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
fn bad_lockfiles_and_definitions_are_named() {
    let s = setup();
    let def = s
        .dir
        .path()
        .join("container_definitions/amd64/pythons.yaml");
    std::fs::write(&def, "spack:\n  specs:\n    - neurodamus-neocortex\n").unwrap();
    let (code, _, err) = plan(s.dir.path());
    assert_eq!(code, Some(2));
    assert!(
        err.contains("pythons.yaml")
            && err.contains("neurodamus-neocortex")
            && err.contains("spack.lock"),
        "{err}"
    );

    std::fs::remove_file(s.dir.path().join("locks/amd64/pythons/spack.lock")).unwrap();
    let (code, _, err) = plan(s.dir.path());
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no spack.lock") && err.contains("locks/amd64/pythons"),
        "{err}"
    );

    std::fs::write(&def, "spack:\n  specs: []\n").unwrap();
    let (code, _, err) = plan(s.dir.path());
    assert_eq!(code, Some(2));
    assert!(
        err.contains("pythons.yaml") && err.contains("no spec"),
        "{err}"
    );

    // A `files` entry leaving the repository, and a key the format does not have.
    let folder = s.dir.path().join("container_definitions/amd64/pythons");
    std::fs::remove_file(&def).unwrap();
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("spack.yaml"),
        "spack:\n  specs: [python@3.13]\nspacktainer:\n  files:\n    - ../../etc/passwd:/opt/passwd\n",
    )
    .unwrap();
    let (code, _, err) = plan(s.dir.path());
    assert_eq!(code, Some(2));
    assert!(
        err.contains("pythons/spack.yaml") && err.contains("leave the repository"),
        "{err}"
    );
    std::fs::write(
        folder.join("spack.yaml"),
        "spack:\n  specs: [python@3.13]\nspacktainer:\n  filez: []\n",
    )
    .unwrap();
    let (code, _, err) = plan(s.dir.path());
    assert_eq!(code, Some(2));
    assert!(
        err.contains("pythons/spack.yaml") && err.contains("filez"),
        "{err}"
    );

    // A build of a bad definition stops before anything reaches the registry.
    let environments = s.dir.path().join("locks").display().to_string();
    let out = spackah(
        s.dir.path(),
        &[
            "build",
            "--branch",
            "main",
            "--base-tag",
            "x",
            "--container",
            "pythons",
            "--arch",
            "amd64",
            "--push",
            "--environments",
            &environments,
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("filez"));
    let image: oci::registry::ImageRef = format!("{}/{}/pythons:x", registry(), s.namespace)
        .parse()
        .unwrap();
    let client = oci::registry::RegistryClient::new(&image.registry, None).unwrap();
    let exists = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.repository_exists(&image))
        .unwrap();
    assert!(!exists, "nothing was pushed");
}

#[test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
fn a_registry_that_is_down_stops_the_plan() {
    let s = setup();
    let cfg = s.dir.path().join("spacktainerizah.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&registry(), "127.0.0.1:9");
    std::fs::write(&cfg, text).unwrap();
    std::fs::remove_file(s.dir.path().join("container_definitions/amd64/storage.def")).unwrap();
    let (code, d, err) = plan(s.dir.path());
    assert_eq!(code, Some(2), "{d:?}");
    assert!(err.contains("could not reach registry"), "{err}");
}

#[test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
fn plan_concretizes_with_the_real_spack_when_asked() {
    let s = setup();
    let d = s.dir.path();
    let env = d.join("locks/amd64/pythons");
    std::fs::remove_file(env.join("spack.lock")).unwrap();
    let only = ["--concretize", "--container", "pythons"];

    let (code, _, err) = plan_with(d, &only, None);
    assert_eq!(code, Some(2));
    assert!(err.contains("no prepared environment at"), "{err}");
    std::fs::write(env.join("spack.yaml"), "spack:\n  specs: [python@3.13]\n").unwrap();

    let (code, _, err) = plan_with(d, &only, Some("/nonexistent"));
    assert_eq!(code, Some(2));
    assert!(err.contains("`spack` was not found on PATH"), "{err}");

    // A `spack` standing in for the real one, which writes the lockfile Spack wrote for this
    // environment (a fixture) when asked to concretize it.
    let fixture = fixtures().join("spack/lockfiles/spack__all-pythons__spack.lock");
    let spack = d.join("spack");
    std::fs::write(
        &spack,
        format!(
            "#!/bin/sh\necho concretizing \"$@\"\n[ \"$1\" = -e ] && [ \"$3 $4\" = 'concretize -f' ] && cp {} \"$2/spack.lock\"\n",
            fixture.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&spack, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let spack_arg = spack.display().to_string();
    let (code, decisions, err) =
        plan_with(d, &[&only[..], &["--spack", &spack_arg]].concat(), None);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        decisions[0]["target"]
            .as_str()
            .unwrap()
            .ends_with("/pythons:3.13.5-amd64")
    );
    let log = std::fs::read_to_string(env.join("concretize.log")).unwrap();
    assert!(
        log.starts_with(&format!("$ spack -e {} concretize -f", env.display())),
        "{log}"
    );

    // Spack failing: the container, the command and the log are named.
    std::fs::write(
        &spack,
        "#!/bin/sh\necho '==> Error: no version satisfies python@3.13' >&2\nexit 1\n",
    )
    .unwrap();
    let (code, _, err) = plan_with(d, &[&only[..], &["--spack", &spack_arg]].concat(), None);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("amd64/pythons")
            && err.contains("`spack concretize -f` failed")
            && err.contains("concretize.log")
            && err.contains("no version satisfies"),
        "{err}"
    );
}
