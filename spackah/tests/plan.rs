//! `spackah plan` against the real registry and a directory containers bucket: tags from the
//! lockfile, up to date after a publish with the planned labels, rebuilt when the lockfile or
//! the definition changes, `.def` containers rebuilt when their source image changes; bad
//! definitions and lockfiles named.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use spacktainerizah_tests::{fixtures, push_test_image, registry, repo_root, unique_name};

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
    let config = std::fs::read_to_string(repo_root().join("spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: registry.example.org/hpc/spacktainers",
            &format!("url: {}/{namespace}", registry()),
        )
        .replace(
            "url: s3://sboinfrastructureassets/containers",
            &format!("url: file://{}/sifs", d.display()),
        );
    std::fs::write(d.join("spacktainerizah.yaml"), config).unwrap();
    Setup {
        dir,
        namespace,
        source_repo,
    }
}

fn plan(dir: &Path) -> (Option<i32>, Vec<Value>, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_spackah"))
        .args(["plan", "--output", "json", "--branch", "main", "--repo"])
        .arg(dir)
        .arg("--lockfiles")
        .arg(dir.join("locks"))
        .arg("--config")
        .arg(dir.join("spacktainerizah.yaml"))
        .output()
        .unwrap();
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
    let def = find(decisions, "storage");
    let store =
        spacktainerizah_tests::open_store(&format!("file://{}/sifs", s.dir.path().display())).await;
    let key = def["target"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let meta = def["record"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    store
        .put(&key, b"SIF".to_vec(), &meta, &Default::default())
        .await
        .unwrap();
}

#[tokio::test]
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
    assert_eq!(find(&d, "storage")["reason"], "SIF missing");

    publish(&s, &d).await;
    let (code, _, err) = plan(s.dir.path());
    assert_eq!(code, Some(0), "{err}");

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
}

#[test]
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
}

#[test]
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
