//! The registry contract (`oci::registry::Distribution` under `RegistryClient`): one suite of
//! checks — tags, multi-arch indexes, labels, reads by digest, "missing" versus "unreachable"
//! and "denied", documents attached as OCI referrers — run against the registry in memory
//! (with and without the referrers API) in plain `cargo test`, and against real registries
//! (Debian's docker-registry, which has no referrers API) as ignored tests. Below the suite, what only real
//! registries do: Basic and Bearer auth with named variables, retries, answers too large.

use std::collections::BTreeMap;

use model::attest::{Document, DocumentKind};
use oci::registry::{
    Clients, ImageRef, Login, MemoryRegistry, RegistryClient, RegistryError, referrers_tag,
};
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

/// A registry to run the suite on: a client of it, its host, and how test images get there.
struct Registry {
    client: RegistryClient,
    host: String,
    /// The registry in memory, when it is the one.
    fake: Option<MemoryRegistry>,
    /// Whether it answers the referrers API (else clients keep the referrers tag schema).
    referrers_api: bool,
}

impl Registry {
    fn image(&self, repo: &str, tag: &str) -> ImageRef {
        image(&self.host, repo, tag)
    }

    /// A small image without layers for `arch` with `labels` at `repo:tag`, pushed by other
    /// means than the client under test.
    fn push(&self, repo: &str, tag: &str, arch: &str, pairs: &[(&str, &str)]) {
        match &self.fake {
            Some(fake) => {
                fake.put_image(&self.image(repo, tag), arch, &labels(pairs));
            }
            None => push_test_image(&self.host, repo, tag, arch, pairs, None),
        }
    }
}

/// A client of a registry that cannot be reached, and that registry's host.
struct Down {
    client: RegistryClient,
    host: String,
}

/// A client of a registry that refuses it, and an image there.
struct Refused {
    client: RegistryClient,
    image: ImageRef,
}

/// The checks every registry passes.
mod suite {
    use super::*;

    pub async fn labels_of_one_architecture_and_no_fallback_to_another(reg: &Registry) {
        let repo = unique_name("single");
        reg.push(&repo, "v1", "amd64", &[("org.example.checksum", "abc")]);
        let r = reg
            .client
            .resolve(&reg.image(&repo, "v1"), "amd64")
            .await
            .unwrap();
        assert_eq!(r.labels, labels(&[("org.example.checksum", "abc")]));
        assert_eq!(r.index_digest, None);
        assert_eq!(r.architecture, "amd64");
        assert!(r.layers.is_empty());
        let err = reg
            .client
            .resolve(&reg.image(&repo, "v1"), "arm64")
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::ArchitectureMissing { .. }),
            "{err}"
        );
        assert!(err.means_build());
    }

    pub async fn a_multi_arch_index_is_pushed_and_each_architecture_resolved(reg: &Registry) {
        let repo = unique_name("multi");
        reg.push(&repo, "latest-amd64", "amd64", &[("arch", "x86")]);
        reg.push(&repo, "latest-arm64", "arm64", &[("arch", "arm")]);
        let client = &reg.client;
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64"] {
            let m = client
                .manifest(&reg.image(&repo, &format!("latest-{arch}")))
                .await
                .unwrap();
            entries.push(m.index_entry(arch));
        }
        let digest = client
            .push_index(&reg.image(&repo, "latest"), &entries)
            .await
            .unwrap();
        for (arch, label) in [("amd64", "x86"), ("arm64", "arm")] {
            let r = client
                .resolve(&reg.image(&repo, "latest"), arch)
                .await
                .unwrap();
            assert_eq!(r.labels["arch"], label);
            assert_eq!(r.index_digest.as_deref(), Some(digest.as_str()));
            assert_eq!(r.architecture, arch);
        }
        let index = client.manifest(&reg.image(&repo, "latest")).await.unwrap();
        assert_eq!(index.media_type, oci::registry::OCI_INDEX);
        assert_eq!(index.digest, digest);
        // An index without the architecture means: build that architecture (skopeo would fall
        // back to another one).
        client
            .push_index(&reg.image(&repo, "amd-only"), &entries[..1])
            .await
            .unwrap();
        let err = client
            .resolve(&reg.image(&repo, "amd-only"), "arm64")
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::ArchitectureMissing { .. }),
            "{err}"
        );
    }

    pub async fn missing_tags_repositories_and_blobs_mean_build(reg: &Registry) {
        let repo = unique_name("missing");
        let client = &reg.client;
        let err = client
            .resolve(&reg.image(&repo, "nope"), "amd64")
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::NotFound { .. }) && err.means_build(),
            "{err}"
        );
        assert!(err.to_string().contains(&repo), "{err}");
        assert!(
            !client
                .repository_exists(&reg.image(&repo, "nope"))
                .await
                .unwrap()
        );
        reg.push(&repo, "v1", "amd64", &[]);
        assert!(
            client
                .repository_exists(&reg.image(&repo, "v1"))
                .await
                .unwrap()
        );
        let err = client
            .resolve(&reg.image(&repo, "v2"), "amd64")
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::NotFound { .. }) && err.means_build(),
            "{err}"
        );
        let absent = format!("sha256:{}", "0".repeat(64));
        let err = client
            .blob(&reg.image(&repo, "v1"), &absent)
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
        let err = client
            .manifest(&reg.image(&repo, "v1").with_reference(&absent))
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    }

    pub async fn manifests_and_blobs_are_read_by_digest(reg: &Registry) {
        let repo = unique_name("digests");
        reg.push(&repo, "v1", "arm64", &[("k", "v")]);
        let client = &reg.client;
        let by_tag = client.manifest(&reg.image(&repo, "v1")).await.unwrap();
        let by_digest = client
            .manifest(&reg.image(&repo, "v1").with_reference(&by_tag.digest))
            .await
            .unwrap();
        assert_eq!(by_digest.bytes, by_tag.bytes);
        assert_eq!(by_digest.digest, by_tag.digest);
        let doc: serde_json::Value = serde_json::from_slice(&by_tag.bytes).unwrap();
        let digest = doc["config"]["digest"].as_str().unwrap();
        let size = doc["config"]["size"].as_u64().unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&client.blob(&reg.image(&repo, "v1"), digest).await.unwrap())
                .unwrap();
        assert_eq!(config["architecture"], "arm64");

        // A blob longer than its descriptor says is refused, whatever its digest would be.
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("blob");
        let err = client
            .blob_to_file(&reg.image(&repo, "v1"), digest, size - 1, &dest, &|_| ())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        let received = std::sync::atomic::AtomicU64::new(0);
        let count = |n| {
            received.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        assert_eq!(
            client
                .blob_to_file(&reg.image(&repo, "v1"), digest, size, &dest, &count)
                .await
                .unwrap(),
            size
        );
        assert_eq!(received.into_inner(), size);
        assert_eq!(std::fs::read(&dest).unwrap().len() as u64, size);
    }

    /// A manifest naming a manifest or blob its repository lacks is refused, and not written.
    pub async fn a_manifest_naming_what_the_repository_lacks_is_refused(reg: &Registry) {
        let repo = unique_name("dangling");
        reg.push(&repo, "v1", "amd64", &[]);
        let client = &reg.client;
        let mut entry = client
            .manifest(&reg.image(&repo, "v1"))
            .await
            .unwrap()
            .index_entry("amd64");
        entry.digest = format!("sha256:{}", "1".repeat(64));
        let err = client
            .push_index(&reg.image(&repo, "multi"), &[entry])
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Protocol { .. }) && !err.means_build(),
            "{err}"
        );
        assert!(err.to_string().contains(&repo), "{err}");
        let err = client
            .manifest(&reg.image(&repo, "multi"))
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    }

    /// A registry that is down must stop a plan, never make it rebuild everything.
    pub async fn an_unreachable_registry_does_not_mean_build(down: &Down) {
        let err = down
            .client
            .resolve(&image(&down.host, "x", "v1"), "amd64")
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Unreachable { .. }) && !err.means_build(),
            "{err}"
        );
        assert!(err.to_string().contains(&down.host), "{err}");
        let err = down
            .client
            .repository_exists(&image(&down.host, "x", "v1"))
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    }

    /// Documents attached to an image are listed as its referrers (through the referrers API,
    /// or the referrers tag schema where there is none) and read back byte for byte; attaching
    /// the same again adds nothing; other images have none.
    pub async fn documents_are_attached_as_referrers_and_read_back(reg: &Registry) {
        let repo = unique_name("attest");
        reg.push(&repo, "v1", "amd64", &[("k", "v")]);
        reg.push(&repo, "other", "arm64", &[]);
        check_attach_and_read(&reg.client, &reg.image(&repo, "v1"), reg.referrers_api).await;
        let other = reg
            .client
            .manifest(&reg.image(&repo, "other"))
            .await
            .unwrap();
        let image = reg.image(&repo, "other");
        assert!(
            reg.client
                .referrers(&image, &other.digest)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            reg.client
                .documents(&image, &other.digest)
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// A registry that refuses is "denied", never "missing".
    pub async fn a_refusing_registry_is_denied_not_missing(refused: &Refused) {
        let err = refused
            .client
            .resolve(&refused.image, "amd64")
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Denied { .. }) && !err.means_build(),
            "{err}"
        );
    }
}

/// One test per check of the suite for a registry: `$open` gives a registry, `$down` one that
/// cannot be reached, `$refusing` one that refuses; `[$attrs]` go on each test.
macro_rules! contract {
    ($backend:ident, $open:path, $down:path, $refusing:path, $attrs:tt) => {
        mod $backend {
            use super::*;
            contract!(@test labels_of_one_architecture_and_no_fallback_to_another, $open, $attrs);
            contract!(@test a_multi_arch_index_is_pushed_and_each_architecture_resolved, $open, $attrs);
            contract!(@test missing_tags_repositories_and_blobs_mean_build, $open, $attrs);
            contract!(@test manifests_and_blobs_are_read_by_digest, $open, $attrs);
            contract!(@test a_manifest_naming_what_the_repository_lacks_is_refused, $open, $attrs);
            contract!(@test documents_are_attached_as_referrers_and_read_back, $open, $attrs);
            contract!(@test an_unreachable_registry_does_not_mean_build, $down, $attrs);
            contract!(@test a_refusing_registry_is_denied_not_missing, $refusing, $attrs);
        }
    };
    (@test $check:ident, $setup:path, [$(#[$attr:meta])*]) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $check() {
            suite::$check(&$setup()).await;
        }
    };
}

const FAKE_HOST: &str = "registry.test:5000";

fn memory() -> Registry {
    let fake = MemoryRegistry::new();
    Registry {
        client: RegistryClient::memory(&fake),
        host: FAKE_HOST.into(),
        fake: Some(fake),
        referrers_api: true,
    }
}

fn memory_without_referrers_api() -> Registry {
    let fake = MemoryRegistry::without_referrers_api();
    Registry {
        client: RegistryClient::memory(&fake),
        host: FAKE_HOST.into(),
        fake: Some(fake),
        referrers_api: false,
    }
}

fn memory_down() -> Down {
    let fake = MemoryRegistry::new();
    fake.set_unreachable(FAKE_HOST);
    Down {
        client: RegistryClient::memory(&fake),
        host: FAKE_HOST.into(),
    }
}

fn memory_refusing() -> Refused {
    let fake = MemoryRegistry::new();
    let image = image(FAKE_HOST, "private", "v1");
    fake.put_image(&image, "amd64", &BTreeMap::new());
    fake.deny(FAKE_HOST);
    Refused {
        client: RegistryClient::memory(&fake),
        image,
    }
}

contract!(memory, memory, memory_down, memory_refusing, []);
contract!(
    memory_tag_schema,
    memory_without_referrers_api,
    memory_down,
    memory_refusing,
    []
);

fn real() -> Registry {
    let host = registry();
    Registry {
        client: RegistryClient::new(&host, None).unwrap(),
        host,
        fake: None,
        // Debian's docker-registry (distribution 2.8) has none: the tag schema is exercised.
        referrers_api: false,
    }
}

/// Nothing listens on port 9 (discard) on loopback.
fn real_down() -> Down {
    Down {
        client: RegistryClient::new("127.0.0.1:9", None).unwrap(),
        host: "127.0.0.1:9".into(),
    }
}

/// An image of the registry that wants a login, read without one.
fn real_refusing() -> Refused {
    let reg = auth_registry();
    let (repo, _) = private_image(&reg, "refused", "amd64", "v");
    Refused {
        client: RegistryClient::new(&reg, None).unwrap(),
        image: image(&reg, &repo, "v1"),
    }
}

contract!(
    real,
    real,
    real_down,
    real_refusing,
    [#[ignore = "NOT RUN: needs the test registries (./scripts/test.sh starts them)"]]
);

#[tokio::test]
async fn clients_of_a_memory_registry_share_it_and_are_made_once() {
    let fake = MemoryRegistry::new();
    let clients = Clients::memory(&fake);
    let a = clients.get("project", FAKE_HOST, &None).unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &a,
        &clients.get("project", FAKE_HOST, &None).unwrap()
    ));
    let hub = clients.get("hub", "registry-1.docker.io", &None).unwrap();
    let pushed = image("registry-1.docker.io", "org/app", "v1");
    fake.put_image(&pushed, "amd64", &labels(&[("k", "v")]));
    assert_eq!(
        hub.resolve(&pushed, "amd64").await.unwrap().labels["k"],
        "v"
    );
    let err = a
        .resolve(&image(FAKE_HOST, "org/app", "v1"), "amd64")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    // What a client writes, the fake records; what it was given is no write.
    let m = hub.manifest(&pushed).await.unwrap();
    hub.push_index(&pushed.with_reference("multi"), &[m.index_entry("amd64")])
        .await
        .unwrap();
    assert_eq!(fake.written(), ["registry-1.docker.io/org/app:multi"]);
    assert_eq!(fake.tags(&pushed), ["multi", "v1"]);
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
#[ignore = "NOT RUN: needs the test registries (./scripts/test.sh starts them)"]
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
#[ignore = "NOT RUN: needs the test registries (./scripts/test.sh starts them)"]
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
#[ignore = "NOT RUN: needs the test registries (./scripts/test.sh starts them)"]
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
#[ignore = "NOT RUN: needs the test registries (./scripts/test.sh starts them)"]
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
}

/// Two small JSON documents, one of each kind.
fn documents() -> Vec<Document> {
    vec![
        Document {
            kind: DocumentKind::Sbom,
            bytes: br#"{"spdxVersion":"SPDX-2.3","name":"test"}"#.to_vec(),
        },
        Document {
            kind: DocumentKind::Provenance,
            bytes: br#"{"_type":"https://in-toto.io/Statement/v1"}"#.to_vec(),
        },
    ]
}

/// Attach [`documents`] to `image` through `client` and read them back; on a registry without
/// the referrers API, the referrers tag holds the index of them.
async fn check_attach_and_read(client: &RegistryClient, image: &ImageRef, referrers_api: bool) {
    let subject = client.manifest(image).await.unwrap();
    let mut attached = Vec::new();
    for doc in documents() {
        let d = client
            .attach(image, &subject.descriptor(), &doc)
            .await
            .unwrap();
        assert_eq!(d.artifact_type.as_deref(), Some(doc.kind.artifact_type()));
        attached.push(d);
    }
    // The artifact manifest as the image spec wants one: its type, an empty config, the
    // document as its one layer, the image as its subject.
    let m = client
        .manifest(&image.with_reference(&attached[0].digest))
        .await
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    assert_eq!(m["artifactType"], "application/spdx+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    assert_eq!(m["subject"]["digest"], subject.digest.as_str());
    // Attaching the same document again lists it once.
    client
        .attach(image, &subject.descriptor(), &documents()[0])
        .await
        .unwrap();
    let mut listed = client.referrers(image, &subject.digest).await.unwrap();
    listed.sort_by(|a, b| a.artifact_type.cmp(&b.artifact_type));
    let mut want = attached.clone();
    want.sort_by(|a, b| a.artifact_type.cmp(&b.artifact_type));
    assert_eq!(listed, want);
    let read = client.documents(image, &subject.digest).await.unwrap();
    assert_eq!(
        read.iter().map(|a| a.document.clone()).collect::<Vec<_>>(),
        documents()
    );
    let tag = client
        .manifest(&image.with_reference(&referrers_tag(&subject.digest)))
        .await;
    if referrers_api {
        assert!(
            matches!(tag, Err(RegistryError::NotFound { .. })),
            "{tag:?}"
        );
    } else {
        let index = tag.unwrap();
        assert_eq!(index.media_type, oci::registry::OCI_INDEX);
        let index: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.title"],
            "sbom.spdx.json"
        );
    }
}

#[tokio::test]
async fn a_referrers_tag_holding_something_else_is_not_overwritten() {
    let fake = MemoryRegistry::without_referrers_api();
    let client = RegistryClient::memory(&fake);
    let image = image(FAKE_HOST, "org/app", "v1");
    let subject = fake.put_image(&image, "amd64", &labels(&[]));
    fake.put_image(
        &image.with_reference(&referrers_tag(&subject.digest)),
        "amd64",
        &labels(&[]),
    );
    let err = client
        .attach(&image, &subject.descriptor(), &documents()[0])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not the image index"), "{err}");
    // Read, it means no referrers.
    assert!(
        client
            .referrers(&image, &subject.digest)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
#[ignore = "NOT RUN: needs the test registries (./scripts/test.sh starts them)"]
async fn documents_are_attached_with_basic_and_token_logins() {
    for reg in [auth_registry(), spacktainerizah_tests::token_registry()] {
        let (repo, _) = private_image(&reg, "attest", "amd64", "v");
        let login = Login::from_env(REGISTRY_USER_VAR, REGISTRY_PASSWORD_VAR).unwrap();
        let client = RegistryClient::new(&reg, Some(login)).unwrap();
        check_attach_and_read(&client, &image(&reg, &repo, "v1"), false).await;
    }
}
