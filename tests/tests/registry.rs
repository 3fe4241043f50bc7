//! The registry client against a real registry (Debian's docker-registry): tags, multi-arch
//! indexes, labels, "missing" versus "unreachable", and Basic auth with named variables.

use std::collections::BTreeMap;

use oci::registry::{ImageRef, Login, RegistryClient, RegistryError};
use spacktainerizah_tests::{
    REGISTRY_PASSWORD_VAR, REGISTRY_USER_VAR, auth_registry, push_test_image, registry, unique_name,
};

fn image(reg: &str, repo: &str, tag: &str) -> ImageRef {
    format!("{reg}/{repo}:{tag}").parse().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
async fn labels_of_one_architecture_and_no_fallback_to_another() {
    let reg = registry();
    let repo = unique_name("single");
    push_test_image(
        &reg,
        &repo,
        "v1",
        "amd64",
        &[("org.example.checksum", "abc")],
        None,
    );
    let client = RegistryClient::new(&reg, None).unwrap();
    let r = client
        .resolve(&image(&reg, &repo, "v1"), "amd64")
        .await
        .unwrap();
    assert_eq!(r.labels, labels(&[("org.example.checksum", "abc")]));
    assert_eq!(r.index_digest, None);
    let err = client
        .resolve(&image(&reg, &repo, "v1"), "arm64")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::ArchitectureMissing { .. }),
        "{err}"
    );
    assert!(err.means_build());
}

#[tokio::test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
async fn a_multi_arch_index_is_pushed_and_each_architecture_resolved() {
    let reg = registry();
    let repo = unique_name("multi");
    push_test_image(
        &reg,
        &repo,
        "latest-amd64",
        "amd64",
        &[("arch", "x86")],
        None,
    );
    push_test_image(
        &reg,
        &repo,
        "latest-arm64",
        "arm64",
        &[("arch", "arm")],
        None,
    );
    let client = RegistryClient::new(&reg, None).unwrap();
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let m = client
            .manifest(&image(&reg, &repo, &format!("latest-{arch}")))
            .await
            .unwrap();
        entries.push(m.index_entry(arch));
    }
    let digest = client
        .push_index(&image(&reg, &repo, "latest"), &entries)
        .await
        .unwrap();
    for (arch, label) in [("amd64", "x86"), ("arm64", "arm")] {
        let r = client
            .resolve(&image(&reg, &repo, "latest"), arch)
            .await
            .unwrap();
        assert_eq!(r.labels["arch"], label);
        assert_eq!(r.index_digest.as_deref(), Some(digest.as_str()));
        assert_eq!(r.architecture, arch);
    }
    // An index without the architecture means: build that architecture (skopeo would fall back).
    client
        .push_index(&image(&reg, &repo, "amd-only"), &entries[..1])
        .await
        .unwrap();
    let err = client
        .resolve(&image(&reg, &repo, "amd-only"), "arm64")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::ArchitectureMissing { .. }),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
async fn missing_tags_and_repositories_mean_build_an_unreachable_registry_does_not() {
    let reg = registry();
    let repo = unique_name("missing");
    let client = RegistryClient::new(&reg, None).unwrap();
    let err = client
        .resolve(&image(&reg, &repo, "nope"), "amd64")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { .. }) && err.means_build(),
        "{err}"
    );
    push_test_image(&reg, &repo, "v1", "amd64", &[], None);
    let err = client
        .resolve(&image(&reg, &repo, "v2"), "amd64")
        .await
        .unwrap_err();
    assert!(err.means_build(), "{err}");

    // Nothing listens on port 9: the registry is down, which must stop a plan, not rebuild all.
    let down = RegistryClient::new("127.0.0.1:9", None).unwrap();
    let err = down
        .resolve(&image("127.0.0.1:9", "x", "v1"), "amd64")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Unreachable { .. }) && !err.means_build(),
        "{err}"
    );
}

/// An image only the test login may read: returns its repository and the login's password.
fn private_image(reg: &str, prefix: &str, arch: &str, label: &str) -> (String, String) {
    let repo = unique_name(prefix);
    let user = std::env::var(REGISTRY_USER_VAR).unwrap();
    let password = std::env::var(REGISTRY_PASSWORD_VAR).unwrap();
    push_test_image(
        reg,
        &repo,
        "v1",
        arch,
        &[("k", label)],
        Some(&format!("{user}:{password}")),
    );
    (repo, password)
}

#[tokio::test]
#[ignore = "NOT RUN: needs the OCI registry with a password login, skopeo and umoci (./scripts/test.sh sets them up)"]
async fn basic_auth_with_credentials_from_named_variables() {
    let reg = auth_registry();
    let (repo, password) = private_image(&reg, "private", "amd64", "v");

    let anonymous = RegistryClient::new(&reg, None).unwrap();
    let err = anonymous
        .resolve(&image(&reg, &repo, "v1"), "amd64")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Denied { .. }) && !err.means_build(),
        "{err}"
    );

    let login = Login::from_env(REGISTRY_USER_VAR, REGISTRY_PASSWORD_VAR).unwrap();
    let client = RegistryClient::new(&reg, Some(login)).unwrap();
    assert_eq!(
        client
            .resolve(&image(&reg, &repo, "v1"), "amd64")
            .await
            .unwrap()
            .labels["k"],
        "v"
    );
    assert!(
        !format!("{client:?}").contains(&password),
        "the password never shows"
    );

    let err =
        Login::from_env(REGISTRY_USER_VAR, "SPACKTAINERIZAH_TEST_NO_SUCH_VARIABLE").unwrap_err();
    assert!(
        err.to_string()
            .contains("SPACKTAINERIZAH_TEST_NO_SUCH_VARIABLE")
    );
}

#[tokio::test]
#[ignore = "NOT RUN: needs the OCI registry with token auth, skopeo and umoci (./scripts/test.sh sets them up)"]
async fn bearer_tokens_from_the_registrys_token_server() {
    let reg = spacktainerizah_tests::token_registry();
    let (repo, _) = private_image(&reg, "tokens", "arm64", "token");

    // Anonymous tokens grant nothing here: denied, not "missing".
    let anonymous = RegistryClient::new(&reg, None).unwrap();
    let err = anonymous
        .resolve(&image(&reg, &repo, "v1"), "arm64")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Denied { .. }), "{err}");

    let login = Login::from_env(REGISTRY_USER_VAR, REGISTRY_PASSWORD_VAR).unwrap();
    let client = RegistryClient::new(&reg, Some(login)).unwrap();
    assert_eq!(
        client
            .resolve(&image(&reg, &repo, "v1"), "arm64")
            .await
            .unwrap()
            .labels["k"],
        "token"
    );
    // A push scope needs a token of its own: the index write goes through the same flow.
    let m = client.manifest(&image(&reg, &repo, "v1")).await.unwrap();
    let entry = m.index_entry("arm64");
    client
        .push_index(&image(&reg, &repo, "multi"), &[entry])
        .await
        .unwrap();
    assert!(
        client
            .resolve(&image(&reg, &repo, "multi"), "arm64")
            .await
            .unwrap()
            .index_digest
            .is_some()
    );
}

use spacktainerizah_tests::proxy::{Decision, FaultProxy};

/// How a request is made to fail.
type Fault = fn() -> Decision;

/// A proxy in front of the test registry failing the first `n` requests with `fault`.
async fn failing_first(n: usize, fault: Fault) -> FaultProxy {
    FaultProxy::start(&registry(), move |r| {
        if r.index < n {
            fault()
        } else {
            Decision::Forward
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
async fn throttled_failing_and_dropped_answers_are_retried() {
    let reg = registry();
    let repo = unique_name("flaky");
    push_test_image(&reg, &repo, "v1", "amd64", &[("k", "v")], None);
    let faults: [(&str, Fault); 3] = [
        ("503", || Decision::Reply {
            status: 503,
            body: "busy".into(),
        }),
        ("429", || Decision::Reply {
            status: 429,
            body: "slow down".into(),
        }),
        ("dropped", || Decision::Drop),
    ];
    for (what, fault) in faults {
        let proxy = failing_first(2, fault).await;
        let client = RegistryClient::new(&proxy.host(), None).unwrap();
        let r = client
            .resolve(&image(&proxy.host(), &repo, "v1"), "amd64")
            .await
            .unwrap_or_else(|e| panic!("{what} then 200: {e}"));
        assert_eq!(r.labels, labels(&[("k", "v")]), "{what}");
        assert!(proxy.requests().len() >= 4, "{what}: retried");
    }
    // A registry that keeps failing is an error, never "missing, build it".
    let proxy = failing_first(usize::MAX, || Decision::Reply {
        status: 503,
        body: "down".into(),
    })
    .await;
    let client = RegistryClient::new(&proxy.host(), None).unwrap();
    let err = client
        .resolve(&image(&proxy.host(), &repo, "v1"), "amd64")
        .await
        .unwrap_err();
    assert!(!err.means_build(), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "NOT RUN: needs the OCI registry, skopeo and umoci (./scripts/test.sh sets them up)"]
async fn oversized_answers_are_refused_before_their_digest_is_checked() {
    let reg = registry();
    let repo = unique_name("huge");
    push_test_image(&reg, &repo, "v1", "amd64", &[("k", "v")], None);
    // A config blob answer far larger than any config: refused while reading.
    let proxy = FaultProxy::start(&reg, |r| {
        if r.target.contains("/blobs/") {
            Decision::Rewrite(Box::new(|mut body| {
                body.resize(oci::registry::MAX_CONFIG_BYTES as usize + 1, b' ');
                body
            }))
        } else {
            Decision::Forward
        }
    })
    .await;
    let client = RegistryClient::new(&proxy.host(), None).unwrap();
    let err = client
        .resolve(&image(&proxy.host(), &repo, "v1"), "amd64")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("allowed"), "{err}");

    // A layer longer than its descriptor says: refused, whatever its digest would be.
    let client = RegistryClient::new(&reg, None).unwrap();
    let r = client
        .resolve(&image(&reg, &repo, "v1"), "amd64")
        .await
        .unwrap();
    let config = client.manifest(&image(&reg, &repo, "v1")).await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&config.bytes).unwrap();
    let digest = doc["config"]["digest"].as_str().unwrap();
    let size = doc["config"]["size"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let err = client
        .blob_to_file(&image(&reg, &repo, "v1"), digest, size - 1, &dest, &|_| ())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("longer than"), "{err}");
    assert_eq!(
        client
            .blob_to_file(&image(&reg, &repo, "v1"), digest, size, &dest, &|_| ())
            .await
            .unwrap(),
        size
    );
    assert!(r.layers.is_empty(), "umoci's empty image has no layer");
}
