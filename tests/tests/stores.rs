//! The object-store contract (`stores::ObjectStore`): one suite of checks, run against the store
//! in memory and a directory in plain `cargo test`, and against the real S3 server as ignored
//! tests (`-- --include-ignored` after the test script started it). Below the suite, what only
//! one backend has: a directory's own files and S3's multipart uploads and credentials.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use spacktainerizah_tests::{new_bucket, open_store, s3_options};
use stores::{Condition, MemoryStore, Store, StoreError};

/// A store to run the suite on, and the folder it lives in (removed when dropped).
struct Backend {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

/// A store whose requests cannot be made as a whole, and a name its errors must give.
struct Broken {
    store: Store,
    named: String,
    _proxy: Option<FaultProxy>,
}

/// A store and a key of it whose deletion fails for that key alone.
struct Refusing {
    backend: Backend,
    key: String,
    _proxy: Option<FaultProxy>,
}

/// The checks every backend passes, each on a fresh, empty store.
mod suite {
    use super::*;

    async fn keys(store: &Store, prefix: &str) -> BTreeSet<String> {
        store
            .list(prefix)
            .map_ok(|o| o.key)
            .try_collect()
            .await
            .unwrap()
    }

    pub fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub async fn put_head_get_list_with_metadata(store: &Store) {
        let m = meta(&[("lockfile-sha256", "abc123"), ("container", "neuron")]);
        let none = BTreeMap::new();
        store
            .put("a/b/one.txt", b"hello".to_vec(), &m, &Condition::None)
            .await
            .unwrap();
        for key in ["a/two.txt", "c.txt", "a-z.txt"] {
            store
                .put(key, key.as_bytes()[..1].to_vec(), &none, &Condition::None)
                .await
                .unwrap();
        }

        let (info, got_meta) = store.head("a/b/one.txt").await.unwrap();
        assert_eq!(info.size, 5, "{}", store.url());
        assert_eq!(got_meta, m, "{}", store.url());
        let age = std::time::SystemTime::now()
            .duration_since(info.last_modified)
            .unwrap_or_default();
        assert!(
            age.as_secs() < 120,
            "last-modified is the write time on {}",
            store.url()
        );

        let obj = store.get("a/b/one.txt").await.unwrap();
        assert_eq!(obj.bytes, b"hello");
        assert_eq!(obj.metadata, m);

        // Listings come in the byte order of the keys on every backend.
        let ordered: Vec<String> = store
            .list("")
            .map_ok(|o| o.key)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            ordered,
            ["a-z.txt", "a/b/one.txt", "a/two.txt", "c.txt"],
            "{}",
            store.url()
        );
        assert_eq!(
            keys(store, "a/").await,
            ["a/b/one.txt", "a/two.txt"].map(String::from).into()
        );
        assert_eq!(
            keys(store, "a/b").await,
            ["a/b/one.txt"].map(String::from).into()
        );
        let listed: Vec<_> = store.list("c").try_collect().await.unwrap();
        assert_eq!(listed[0].size, 1);
        assert!(keys(store, "nothing/").await.is_empty());
    }

    pub async fn missing_objects_are_not_found_not_transport_errors(store: &Store) {
        let err = store.get("nope/missing.json").await.unwrap_err();
        assert!(err.is_not_found(), "{}: {err}", store.url());
        assert!(err.to_string().contains("nope/missing.json"), "{err}");
        assert!(
            store
                .head("nope/missing.json")
                .await
                .unwrap_err()
                .is_not_found()
        );
        let dir = tempfile::tempdir().unwrap();
        let err = store
            .get_to_file("nope/missing.json", &dir.path().join("x"), &|_| ())
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    pub async fn conditional_puts(store: &Store) {
        let none = BTreeMap::new();
        store
            .put("index.json", b"v1".to_vec(), &none, &Condition::IfNoneMatch)
            .await
            .unwrap();
        let err = store
            .put("index.json", b"v2".to_vec(), &none, &Condition::IfNoneMatch)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::PreconditionFailed { .. }),
            "{}: {err}",
            store.url()
        );
        assert!(err.to_string().contains("index.json"), "{err}");

        let etag = store
            .get("index.json")
            .await
            .unwrap()
            .info
            .etag
            .expect("get returns an etag");
        store
            .put(
                "index.json",
                b"v2".to_vec(),
                &none,
                &Condition::IfMatch(etag.clone()),
            )
            .await
            .unwrap();
        // The etag read before the rewrite is stale now: a second writer must fail.
        let err = store
            .put(
                "index.json",
                b"v3".to_vec(),
                &none,
                &Condition::IfMatch(etag.clone()),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::PreconditionFailed { .. }),
            "{}: {err}",
            store.url()
        );
        assert_eq!(store.get("index.json").await.unwrap().bytes, b"v2");
        // Replacing the version read needs it to be there.
        let err = store
            .put(
                "absent.json",
                b"x".to_vec(),
                &none,
                &Condition::IfMatch(etag),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::PreconditionFailed { .. }),
            "{}: {err}",
            store.url()
        );
        assert!(store.head("absent.json").await.unwrap_err().is_not_found());
    }

    pub async fn batched_delete_over_a_thousand_keys(store: &Store) {
        let none = BTreeMap::new();
        let all: Vec<String> = (0..1205)
            .map(|i| format!("blobs/sha256/{:02x}/{i:064x}", i % 256))
            .collect();
        futures::stream::iter(all.iter().cloned())
            .map(|k| {
                let store = store.clone();
                let none = none.clone();
                async move { store.put(&k, vec![1], &none, &Condition::None).await }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        let before = store.requests();
        assert_eq!(
            keys(store, "blobs/").await.len(),
            1205,
            "listing pages past 1000 on {}",
            store.url()
        );
        assert_eq!(store.requests().list - before.list, 2, "two pages listed");

        let mut doomed = all[..1100].to_vec();
        doomed.push("blobs/never/existed".into());
        let report = store.delete_many(doomed).await.unwrap();
        assert_eq!(report.requests, 2, "1101 keys go in two requests");
        assert_eq!(store.requests().delete - before.delete, 2);
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.deleted, 1101, "a missing key counts as deleted");
        let left = keys(store, "").await;
        assert_eq!(left, all[1100..].iter().cloned().collect());
    }

    /// An invalid key is refused by every request; in a batched delete it is a failure of its
    /// own and the other keys are deleted, on every backend alike.
    pub async fn invalid_keys_are_refused_and_fail_alone_in_deletes(store: &Store) {
        let none = BTreeMap::new();
        for bad in ["../escape", "/absolute", "a//b", ""] {
            let err = store
                .put(bad, b"x".to_vec(), &none, &Condition::None)
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidKey { .. }),
                "{}: {bad}: {err}",
                store.url()
            );
            let err = store.get(bad).await.unwrap_err();
            assert!(matches!(err, StoreError::InvalidKey { .. }), "{err}");
        }
        store
            .put("fine", b"x".to_vec(), &none, &Condition::None)
            .await
            .unwrap();
        let report = store
            .delete_many(vec!["../escape".into(), "fine".into(), "a/./b".into()])
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", store.url()));
        assert_eq!(report.deleted, 1, "{}", store.url());
        let failed: Vec<(&str, &str)> = report
            .failed
            .iter()
            .map(|f| (f.key.as_str(), f.code.as_str()))
            .collect();
        assert_eq!(
            failed,
            [("../escape", "InvalidKey"), ("a/./b", "InvalidKey")],
            "{}",
            store.url()
        );
        assert!(store.head("fine").await.unwrap_err().is_not_found());
    }

    pub async fn files_stream_up_and_down_with_metadata(store: &Store) {
        let src = tempfile::tempdir().unwrap();
        // 12 MiB and a bit: three parts of S3's smallest size, the last one short.
        let data: Vec<u8> = (0..12 * 1024 * 1024 + 333u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let path = src.path().join("big.sif");
        std::fs::write(&path, &data).unwrap();
        let m = meta(&[("lockfile-sha256", "abc123")]);
        // Progress counts every byte sent and received (the bar draws only on a terminal).
        let sent = std::sync::atomic::AtomicU64::new(0);
        let count_sent = |n| {
            sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        store
            .put_file("c/big.sif", &path, &m, stores::MIN_PART_SIZE, &count_sent)
            .await
            .unwrap();
        assert_eq!(sent.into_inner(), data.len() as u64, "{}", store.url());
        let (info, got_meta) = store.head("c/big.sif").await.unwrap();
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(got_meta, m, "{}", store.url());

        let back = src.path().join("back");
        let received = std::sync::atomic::AtomicU64::new(0);
        let count_received = |n| {
            received.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let (info, got_meta) = store
            .get_to_file("c/big.sif", &back, &count_received)
            .await
            .unwrap();
        assert_eq!(received.into_inner(), data.len() as u64, "{}", store.url());
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(got_meta, m);
        assert!(std::fs::read(&back).unwrap() == data, "{}", store.url());

        // A streamed read gives the same bytes, its size known up front.
        let (info, mut reader) = store.reader("c/big.sif").await.unwrap();
        assert_eq!(info.size, data.len() as u64);
        let mut read = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut read)
            .await
            .unwrap();
        assert!(read == data, "{}", store.url());

        let small = src.path().join("small");
        std::fs::write(&small, b"tiny").unwrap();
        store
            .put_file(
                "c/small",
                &small,
                &BTreeMap::new(),
                stores::MIN_PART_SIZE,
                &|_| (),
            )
            .await
            .unwrap();
        assert_eq!(store.get("c/small").await.unwrap().bytes, b"tiny");
        let err = store
            .put_file(
                "c/none",
                &src.path().join("no-such-file"),
                &BTreeMap::new(),
                stores::MIN_PART_SIZE,
                &|_| (),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no-such-file"), "{err}");
    }

    /// A store that cannot be reached (or is not there) fails each request as a whole, naming
    /// itself; a delete never reports as deleted a key it could not reach.
    pub async fn whole_request_failures_are_errors(broken: &Broken) {
        let store = &broken.store;
        let err = store.list("").try_collect::<Vec<_>>().await.unwrap_err();
        assert!(err.to_string().contains(&broken.named), "{err}");
        let err = store
            .delete_many(vec!["a".into(), "b".into()])
            .await
            .expect_err("a delete that reached no store is an error");
        assert!(err.to_string().contains(&broken.named), "{err}");
        let err = store.delete_all(vec!["a".into()]).await.unwrap_err();
        assert!(err.to_string().contains(&broken.named), "{err}");
    }

    /// A key the store refuses to delete is named in the report with the store's code; the
    /// other keys of the request are deleted.
    pub async fn per_key_delete_failures_are_reported_by_key(refusing: &Refusing) {
        let store = &refusing.backend.store;
        store
            .put("ok.txt", b"x".to_vec(), &BTreeMap::new(), &Condition::None)
            .await
            .unwrap();
        let report = store
            .delete_many(vec!["ok.txt".into(), refusing.key.clone()])
            .await
            .unwrap();
        assert_eq!(report.deleted, 1, "{}", store.url());
        assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
        assert_eq!(report.failed[0].key, refusing.key);
        assert!(!report.failed[0].code.is_empty());
        assert!(store.head("ok.txt").await.unwrap_err().is_not_found());
        let err = store
            .delete_all(vec![refusing.key.clone()])
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&refusing.key), "{err}");
    }
}

/// One test per check of the suite for a backend: `$open` makes a fresh store, `$broken` one
/// that cannot be reached, `$refusing` one refusing to delete a key; `[$attrs]` go on each test.
macro_rules! contract {
    ($backend:ident, $open:path, $broken:path, $refusing:path, $attrs:tt) => {
        mod $backend {
            use super::*;
            contract!(@each $open, $attrs, put_head_get_list_with_metadata,
                missing_objects_are_not_found_not_transport_errors, conditional_puts,
                batched_delete_over_a_thousand_keys,
                invalid_keys_are_refused_and_fail_alone_in_deletes,
                files_stream_up_and_down_with_metadata);
            contract!(@setup whole_request_failures_are_errors, $broken, $attrs);
            contract!(@setup per_key_delete_failures_are_reported_by_key, $refusing, $attrs);
        }
    };
    (@each $open:path, $attrs:tt, $($check:ident),*) => {
        $(
            contract!(@store $check, $open, $attrs);
        )*
    };
    (@store $check:ident, $open:path, [$(#[$attr:meta])*]) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $check() {
            let backend = $open().await;
            suite::$check(&backend.store).await;
        }
    };
    (@setup $check:ident, $setup:path, [$(#[$attr:meta])*]) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $check() {
            suite::$check(&$setup().await).await;
        }
    };
}

async fn memory() -> Backend {
    Backend {
        store: Store::memory(),
        _dir: None,
    }
}

async fn memory_unreachable() -> Broken {
    let fake = MemoryStore::new();
    fake.set_unreachable(true);
    Broken {
        store: Store::new(fake),
        named: "memory://".into(),
        _proxy: None,
    }
}

async fn memory_refusing() -> Refusing {
    let fake = MemoryStore::new();
    fake.refuse_deletes_of("locked/object");
    let store = Store::new(fake);
    store
        .put(
            "locked/object",
            b"x".to_vec(),
            &BTreeMap::new(),
            &Condition::None,
        )
        .await
        .unwrap();
    Refusing {
        backend: Backend { store, _dir: None },
        key: "locked/object".into(),
        _proxy: None,
    }
}

contract!(memory, memory, memory_unreachable, memory_refusing, []);

async fn directory() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    Backend {
        store: open_store(&format!("file://{}", dir.path().display())).await,
        _dir: Some(dir),
    }
}

/// A folder that does not exist is a bucket that does not exist.
async fn directory_missing() -> Broken {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("absent");
    Broken {
        store: open_store(&format!("file://{}", root.display())).await,
        named: root.display().to_string(),
        _proxy: None,
    }
}

/// `dir` is a folder, not an object: deleting it fails for that key alone.
async fn directory_refusing() -> Refusing {
    let backend = directory().await;
    backend
        .store
        .put(
            "dir/inner.txt",
            b"x".to_vec(),
            &BTreeMap::new(),
            &Condition::None,
        )
        .await
        .unwrap();
    Refusing {
        backend,
        key: "dir".into(),
        _proxy: None,
    }
}

contract!(
    directory,
    directory,
    directory_missing,
    directory_refusing,
    []
);

async fn s3() -> Backend {
    let bucket = new_bucket("stores").await;
    // A prefix checks that keys are relative to it both ways.
    Backend {
        store: open_store(&format!("s3://{bucket}/some/prefix")).await,
        _dir: None,
    }
}

async fn s3_missing_bucket() -> Broken {
    Broken {
        store: open_store("s3://no-such-bucket-spacktainerizah").await,
        named: "no-such-bucket-spacktainerizah".into(),
        _proxy: None,
    }
}

/// The real server deletes every key it is sent; a proxy rewrites its answer to say it refused
/// one, as S3 does for an object a policy protects.
async fn s3_refusing() -> Refusing {
    let bucket = new_bucket("stores-refusing").await;
    let upstream = spacktainerizah_tests::s3_endpoint()
        .trim_start_matches("http://")
        .to_string();
    let proxy = FaultProxy::start(&upstream, |r| {
        if r.method == "POST" && r.target.contains("delete") {
            Decision::Rewrite(Box::new(|body| {
                String::from_utf8(body)
                    .unwrap()
                    .replace(
                        "</DeleteResult>",
                        "<Error><Key>p/locked</Key><Code>AccessDenied</Code><Message>injected</Message></Error></DeleteResult>",
                    )
                    .into_bytes()
            }))
        } else {
            Decision::Forward
        }
    })
    .await;
    let mut opts = s3_options();
    opts.endpoint_url = Some(proxy.url());
    let store = Store::open(&format!("s3://{bucket}/p").parse().unwrap(), &opts)
        .await
        .unwrap();
    Refusing {
        backend: Backend { store, _dir: None },
        key: "locked".into(),
        _proxy: Some(proxy),
    }
}

contract!(
    s3,
    s3,
    s3_missing_bucket,
    s3_refusing,
    [#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]]
);

use spacktainerizah_tests::proxy::{Decision, FaultProxy};

#[tokio::test]
async fn a_memory_store_ages_its_objects_and_counts_its_requests() {
    let fake = MemoryStore::new();
    let store = Store::new(fake.clone());
    assert_eq!(store.url(), "memory://");
    assert!(!store.is_local(), "memory stands in for S3");
    assert_eq!(store.local_path("k"), None);
    store
        .put("k", b"v".to_vec(), &BTreeMap::new(), &Condition::None)
        .await
        .unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
    fake.set_last_modified("k", old).unwrap();
    assert_eq!(store.head("k").await.unwrap().0.last_modified, old);
    let listed: Vec<_> = store.list("").try_collect().await.unwrap();
    assert_eq!(listed[0].last_modified, old);
    assert!(
        fake.set_last_modified("other", old)
            .unwrap_err()
            .is_not_found()
    );
    // A clone of the handle is the same store.
    assert_eq!(store.clone().get("k").await.unwrap().bytes, b"v");
    let counts = store.requests();
    assert_eq!(
        (counts.put, counts.head, counts.list, counts.get),
        (1, 1, 1, 1)
    );
    fake.set_unreachable(true);
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn an_unreachable_endpoint_is_not_not_found() {
    let mut opts = s3_options();
    // Port 9 (discard) on loopback: nothing listens there.
    opts.endpoint_url = Some("http://127.0.0.1:9".into());
    let store = Store::open(&"s3://some-bucket".parse().unwrap(), &opts)
        .await
        .unwrap();
    let err = store.get("x").await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    let err = store.delete_many(vec!["x".into()]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn a_missing_bucket_is_named_as_such() {
    let store = open_store("s3://no-such-bucket-spacktainerizah").await;
    let err = store.list("").try_collect::<Vec<_>>().await.unwrap_err();
    assert!(
        matches!(err, StoreError::NoSuchBucket { ref bucket } if bucket == "no-such-bucket-spacktainerizah"),
        "{err}"
    );
    let err = store.delete_many(vec!["a".into()]).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchBucket { .. }), "{err}");
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn credentials_come_from_named_variables_and_never_show() {
    let mut opts = s3_options();
    opts.access_key_env = Some("SPACKTAINERIZAH_TEST_UNSET_VARIABLE".into());
    let err = Store::open(&"s3://bucket-x".parse().unwrap(), &opts)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("SPACKTAINERIZAH_TEST_UNSET_VARIABLE"),
        "{err}"
    );

    let secret = std::env::var(spacktainerizah_tests::SECRET_KEY_VAR).unwrap();
    let store = Store::open(&"s3://bucket-x".parse().unwrap(), &s3_options())
        .await
        .unwrap();
    assert!(
        !format!("{store:?}").contains(&secret),
        "the store's Debug output shows the secret key"
    );
    let err = store.get("missing").await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(&secret));
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn large_files_go_to_s3_in_parts() {
    let Backend { store, .. } = s3().await;
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("big");
    std::fs::write(&path, vec![7u8; 12 * 1024 * 1024 + 333]).unwrap();
    let before = store.requests().put;
    store
        .put_file(
            "c/big",
            &path,
            &BTreeMap::new(),
            stores::MIN_PART_SIZE,
            &|_| (),
        )
        .await
        .unwrap();
    // create + 3 parts + complete, and S3's multipart etag names the part count.
    assert_eq!(store.requests().put - before, 5);
    let (info, _) = store.head("c/big").await.unwrap();
    assert!(info.etag.unwrap().ends_with("-3\""), "multipart etag");
    // A small file goes up in one request.
    let small = src.path().join("small");
    std::fs::write(&small, b"tiny").unwrap();
    let before = store.requests().put;
    store
        .put_file(
            "c/small",
            &small,
            &BTreeMap::new(),
            stores::MIN_PART_SIZE,
            &|_| (),
        )
        .await
        .unwrap();
    assert_eq!(store.requests().put - before, 1);
}

#[tokio::test]
async fn directory_store_keeps_its_own_files_out_of_listings() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&format!("file://{}", dir.path().display())).await;
    assert!(store.is_local());
    assert_eq!(store.local_path("k"), Some(dir.path().join("k")));
    store
        .put(
            "k",
            b"v".to_vec(),
            &suite::meta(&[("a", "b")]),
            &Condition::IfNoneMatch,
        )
        .await
        .unwrap();
    assert!(
        dir.path().join(".spacktainerizah/meta/k.json").exists(),
        "metadata is stored beside the data"
    );
    let listed: Vec<String> = store
        .list("")
        .map_ok(|o| o.key)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, ["k"]);
    // The store's own folder is no key.
    let report = store
        .delete_many(vec![".spacktainerizah/lock".into(), "k".into()])
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(report.failed[0].code, "InvalidKey");
    assert!(
        !dir.path().join(".spacktainerizah/meta/k.json").exists(),
        "metadata goes with the object"
    );
}

#[tokio::test]
async fn directory_writes_never_take_another_writers_temporary_file() {
    // Process ids repeat across containers sharing a folder: a name made of a pid and a counter
    // is another host's file in flight. Writes must never open such a name.
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&format!("file://{}", dir.path().display())).await;
    let tmp = dir.path().join(".spacktainerizah/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let pid = std::process::id();
    let theirs: Vec<_> = (0..64).map(|i| tmp.join(format!("{pid}-{i}"))).collect();
    for f in &theirs {
        std::fs::write(f, b"another host's upload").unwrap();
    }
    for i in 0..8 {
        store
            .put(
                &format!("k{i}"),
                vec![b'x'; 10],
                &suite::meta(&[("a", "b")]),
                &Condition::None,
            )
            .await
            .unwrap();
    }
    let src = dir.path().join("source");
    std::fs::write(&src, b"a file").unwrap();
    store
        .put_file(
            "f",
            &src,
            &BTreeMap::new(),
            stores::DEFAULT_PART_SIZE,
            &|_| (),
        )
        .await
        .unwrap();
    for f in &theirs {
        assert_eq!(std::fs::read(f).unwrap(), b"another host's upload");
    }
}

#[tokio::test]
async fn directory_metadata_belongs_to_the_file_it_was_written_with() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&format!("file://{}", dir.path().display())).await;
    store
        .put(
            "a.sif",
            b"v1".to_vec(),
            &suite::meta(&[("lockfile-sha256", "one")]),
            &Condition::None,
        )
        .await
        .unwrap();
    assert_eq!(
        store.head("a.sif").await.unwrap().1["lockfile-sha256"],
        "one"
    );
    // Ageing a file (as rsync or a test does) keeps its metadata.
    let f = std::fs::File::options()
        .write(true)
        .open(dir.path().join("a.sif"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(86_400))
        .unwrap();
    assert_eq!(
        store.head("a.sif").await.unwrap().1["lockfile-sha256"],
        "one"
    );
    // Another version put in place whose metadata was never written (a writer that died
    // between the two): its metadata is unknown, never the previous version's.
    let other = dir.path().join("other");
    std::fs::write(&other, b"v2 with other content").unwrap();
    std::fs::rename(&other, dir.path().join("a.sif")).unwrap();
    assert!(store.head("a.sif").await.unwrap().1.is_empty());
    assert!(store.get("a.sif").await.unwrap().metadata.is_empty());
}

#[tokio::test]
async fn a_directory_head_reads_no_content() {
    // A named pipe blocks whoever reads it: head must only look at the file.
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&format!("file://{}", dir.path().display())).await;
    let fifo = dir.path().join("pipe.sif");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let head = tokio::time::timeout(std::time::Duration::from_secs(20), store.head("pipe.sif"))
        .await
        .expect("head returned without reading the content");
    let (info, _) = head.unwrap();
    assert_eq!(info.size, 0);
    assert_eq!(info.etag, None, "an etag would need the content");
}
