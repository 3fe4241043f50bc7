//! The object-store contract, run against the real S3 server and real directories alike.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use spacktainerizah_tests::{new_bucket, open_store, s3_options};
use stores::{Condition, Store, StoreError};

async fn backends() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let file = open_store(&format!("file://{}", dir.path().display())).await;
    let bucket = new_bucket("stores").await;
    // A prefix checks that keys are relative to it both ways.
    let s3 = open_store(&format!("s3://{bucket}/some/prefix")).await;
    vec![(file, Some(dir)), (s3, None)]
}

async fn keys(store: &Store, prefix: &str) -> BTreeSet<String> {
    store
        .list(prefix)
        .map_ok(|o| o.key)
        .try_collect()
        .await
        .unwrap()
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn put_head_get_list_with_metadata() {
    for (store, _dir) in backends().await {
        let m = meta(&[("lockfile-sha256", "abc123"), ("container", "neuron")]);
        store
            .put("a/b/one.txt", b"hello".to_vec(), &m, &Condition::None)
            .await
            .unwrap();
        store
            .put(
                "a/two.txt",
                b"hi".to_vec(),
                &BTreeMap::new(),
                &Condition::None,
            )
            .await
            .unwrap();
        store
            .put("c.txt", b"c".to_vec(), &BTreeMap::new(), &Condition::None)
            .await
            .unwrap();

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

        store
            .put("a-z.txt", b"-".to_vec(), &BTreeMap::new(), &Condition::None)
            .await
            .unwrap();
        // Listings come in the byte order of the keys on both backends.
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
            keys(&store, "a/").await,
            ["a/b/one.txt", "a/two.txt"].map(String::from).into()
        );
        assert_eq!(
            keys(&store, "a/b").await,
            ["a/b/one.txt"].map(String::from).into()
        );
        let listed: Vec<_> = store.list("c").try_collect().await.unwrap();
        assert_eq!(listed[0].size, 1);
    }
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn missing_objects_are_not_found_not_transport_errors() {
    for (store, _dir) in backends().await {
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
    }
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn conditional_puts() {
    for (store, _dir) in backends().await {
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
                &Condition::IfMatch(etag),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::PreconditionFailed { .. }),
            "{}: {err}",
            store.url()
        );
        assert_eq!(store.get("index.json").await.unwrap().bytes, b"v2");
    }
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn batched_delete_over_a_thousand_keys() {
    for (store, _dir) in backends().await {
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
        assert_eq!(
            keys(&store, "blobs/").await.len(),
            1205,
            "listing pages past 1000 on {}",
            store.url()
        );

        let mut doomed = all[..1100].to_vec();
        doomed.push("blobs/never/existed".into());
        let report = store.delete_many(doomed).await.unwrap();
        assert_eq!(report.requests, 2, "1101 keys go in two requests");
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.deleted, 1101);
        let left = keys(&store, "").await;
        assert_eq!(left, all[1100..].iter().cloned().collect());
    }
}

use futures::StreamExt;

#[tokio::test]
async fn per_key_delete_failures_are_reported_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&format!("file://{}", dir.path().display())).await;
    let none = BTreeMap::new();
    store
        .put("ok.txt", b"x".to_vec(), &none, &Condition::None)
        .await
        .unwrap();
    store
        .put("dir/inner.txt", b"x".to_vec(), &none, &Condition::None)
        .await
        .unwrap();
    // `dir` is a folder, not an object: deleting it must fail for that key alone.
    let report = store
        .delete_many(vec!["ok.txt".into(), "dir".into()])
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);
    assert!(!dir.path().join("ok.txt").exists());
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].key, "dir");
    assert!(dir.path().join("dir/inner.txt").exists());
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn a_missing_bucket_is_named_and_deletes_report_failure() {
    let store = open_store("s3://no-such-bucket-spacktainerizah").await;
    let err = store.list("").try_collect::<Vec<_>>().await.unwrap_err();
    assert!(
        matches!(err, StoreError::NoSuchBucket { ref bucket } if bucket == "no-such-bucket-spacktainerizah"),
        "{err}"
    );
    let report = store
        .delete_many(vec!["a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(report.deleted, 0, "nothing may be reported deleted");
    assert_eq!(report.failed.len(), 2);
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server's test key pair (./scripts/test.sh sets it)"]
async fn an_unreachable_endpoint_is_not_not_found() {
    let mut opts = s3_options();
    // Port 9 (discard) on loopback: nothing listens there.
    opts.endpoint_url = Some("http://127.0.0.1:9".into());
    let store = Store::open(&"s3://some-bucket".parse().unwrap(), &opts)
        .await
        .unwrap();
    let err = store.get("x").await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
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
async fn directory_store_keeps_its_own_files_out_of_listings() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&format!("file://{}", dir.path().display())).await;
    store
        .put(
            "k",
            b"v".to_vec(),
            &meta(&[("a", "b")]),
            &Condition::IfNoneMatch,
        )
        .await
        .unwrap();
    assert!(
        dir.path().join(".spacktainerizah/meta/k.json").exists(),
        "metadata is stored beside the data"
    );
    assert_eq!(keys(&store, "").await, ["k".to_string()].into());
    let err = store
        .put(
            "../escape",
            b"x".to_vec(),
            &BTreeMap::new(),
            &Condition::None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { .. }));
    store.delete_many(vec!["k".into()]).await.unwrap();
    assert!(
        !dir.path().join(".spacktainerizah/meta/k.json").exists(),
        "metadata goes with the object"
    );
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn files_stream_up_in_parts_and_down_whole() {
    let src = tempfile::tempdir().unwrap();
    // 12 MiB and a bit, in 5 MiB parts: three parts, the last one short.
    let data: Vec<u8> = (0..12 * 1024 * 1024 + 333u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = src.path().join("big.sif");
    std::fs::write(&path, &data).unwrap();
    let m = meta(&[("lockfile-sha256", "abc123")]);
    for (store, _dir) in backends().await {
        let before = store.requests().put;
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
        if !store.is_local() {
            // create + 3 parts + complete, and S3's multipart etag names the part count.
            assert_eq!(store.requests().put - before, 5);
            assert!(info.etag.unwrap().ends_with("-3\""), "multipart etag");
        }
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
        // A small file goes up in one request.
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
        let missing = store
            .get_to_file("c/none", &back, &|_| ())
            .await
            .unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
    }
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
                &meta(&[("a", "b")]),
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
            &meta(&[("lockfile-sha256", "one")]),
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
