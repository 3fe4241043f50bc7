//! What the `spackitor` tests share: Spack's fixture mirror in both layouts with ages set, runs
//! of the tool, and readers of what it reported and left behind.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use spacktainerizah_tests::{copy_dir, fixtures, open_store, s3_cli_args, walk};

pub const CORE2_LIBELF: &str = "rqh2vuf6fqwkmipzgi2wjx352mq7y7ez";
pub const CORE2_LIBDWARF: &str = "sk2gqqz4n5njmvktycnd25wq25jxiqkr";
pub const M1_LIBELF: &str = "jr3yipyxyjulcdvckwwwjrrumis7glpa";
pub const M1_LIBDWARF: &str = "u5uz3dcch5if4eve4sef67o2rf2lbfgh";
pub const COMPILER_WRAPPER: &str = "qeehcxyvluwnihsc2qxstmpomtxo3lrc";
pub const GCC_RUNTIME: &str = "izgzpzeljwairalfjm3k6fntbb64nt6n";

/// A mirror holding both layouts (`signed` or `unsigned` fixtures). Every object is 40 days
/// old but the indexes, written an hour ago, as after a real pipeline.
pub fn mirror(variant: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &fixtures().join("spack/v2_layout").join(variant),
        dir.path(),
    );
    copy_dir(
        &fixtures().join("spack/v3_layout").join(variant),
        dir.path(),
    );
    for f in walk(dir.path()) {
        set_age(&f, 40.0);
    }
    for index in [
        "build_cache/index.json",
        "build_cache/index.json.hash",
        "v3/manifests/index/index.manifest.json",
    ] {
        set_age(&dir.path().join(index), 1.0 / 24.0);
    }
    dir
}

pub fn set_age(path: &Path, days: f64) {
    let t = SystemTime::now() - Duration::from_secs_f64(days * 86400.0);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// Make the objects of spec `hash` (both layouts, v3 blobs included) `days` old.
pub fn age_spec(root: &Path, hash: &str, days: f64) {
    for f in walk(root) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains(hash) {
            set_age(&f, days);
            if name.ends_with(".spec.manifest.json") {
                let m =
                    model::spack::buildcache::v3::Manifest::parse("m", &std::fs::read(&f).unwrap())
                        .unwrap();
                for r in m.data {
                    set_age(&root.join(r.key()), days);
                }
            }
        }
    }
}

pub fn clean(root: &Path, args: &[&str]) -> Output {
    spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
        .args([
            "clean",
            "--output",
            "json",
            "--cache",
            &root.display().to_string(),
        ])
        .args(args)
        .output()
        .unwrap()
}

pub fn report(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (layout, hash) → reason of every deleted spec.
pub fn deleted(report: &Value) -> BTreeMap<(String, String), String> {
    report["layouts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["specs"].as_array().unwrap().iter())
        .map(|s| {
            (
                (
                    s["layout"].as_str().unwrap().into(),
                    s["hash"].as_str().unwrap().into(),
                ),
                s["reason"].as_str().unwrap().into(),
            )
        })
        .collect()
}

pub fn both(hash: &str, reason: &str) -> [((String, String), String); 2] {
    [("v2", hash), ("v3", hash)].map(|(l, h)| ((l.to_string(), h.to_string()), reason.to_string()))
}

/// Every file (but the store's own folder) with its content and mtime.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    walk(root)
        .into_iter()
        .filter(|p| {
            !p.strip_prefix(root)
                .unwrap()
                .starts_with(".spacktainerizah")
        })
        .map(|p| {
            let md = std::fs::metadata(&p).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            (p, (bytes, md.modified().unwrap()))
        })
        .collect()
}

/// The hashes `spackitor ls` shows per layout: what the rewritten indexes list.
pub fn listed(root: &Path) -> BTreeMap<String, Vec<String>> {
    let out = spacktainerizah_tests::run_tool(
        env!("CARGO_BIN_EXE_spackitor"),
        [
            "ls",
            "--output",
            "json",
            "--cache",
            &root.display().to_string(),
        ],
    );
    spacktainerizah_tests::succeeded(&out);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        m.entry(r["layout"].as_str().unwrap().into())
            .or_default()
            .push(r["hash"].as_str().unwrap().into());
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

pub fn any_file_with(root: &Path, hash: &str) -> bool {
    walk(root)
        .iter()
        .any(|p| p.to_string_lossy().contains(hash))
}

/// A keep lockfile holding the whole DAG of `root_hash`, built from the fixture's own index.
pub fn keep_lockfile(dir: &Path, root_hash: &str) -> PathBuf {
    let index: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("spack/v2_layout/unsigned/build_cache/index.json")).unwrap(),
    )
    .unwrap();
    let installs = index["database"]["installs"].as_object().unwrap();
    let mut specs = serde_json::Map::new();
    let mut todo = vec![root_hash.to_string()];
    while let Some(h) = todo.pop() {
        let node = installs[&h]["spec"].clone();
        for d in node["dependencies"].as_array().into_iter().flatten() {
            todo.push(d["hash"].as_str().unwrap().to_string());
        }
        specs.insert(h, node);
    }
    let lock = serde_json::json!({
        "_meta": {"file-type": "spack-lockfile", "lockfile-version": 6, "specfile-version": 5},
        "roots": [{"hash": root_hash, "spec": "libdwarf"}],
        "concrete_specs": specs,
    });
    let path = dir.join("env/spack.lock");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_vec(&lock).unwrap()).unwrap();
    path
}

pub fn fresh_except(root: &Path, old: &[&str]) {
    for h in [
        CORE2_LIBELF,
        CORE2_LIBDWARF,
        M1_LIBELF,
        M1_LIBDWARF,
        COMPILER_WRAPPER,
        GCC_RUNTIME,
    ] {
        age_spec(root, h, if old.contains(&h) { 40.0 } else { 1.0 });
    }
}

pub fn rules_30_days() -> model::cleanup::Rules {
    model::cleanup::Rules {
        max_age: Duration::from_secs(30 * 86400),
        keep: Default::default(),
        packages: None,
        orphans: false,
        now: SystemTime::now(),
    }
}

pub async fn upload_mirror(bucket: &str) -> stores::Store {
    let store = open_store(&format!("s3://{bucket}/cache")).await;
    let src = mirror("unsigned");
    spacktainerizah_tests::upload_dir(&store, src.path()).await;
    // S3 dates are whole seconds: write the indexes again a moment later, as a pipeline does.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for index in [
        "build_cache/index.json",
        "build_cache/index.json.hash",
        "v3/manifests/index/index.manifest.json",
    ] {
        let bytes = std::fs::read(src.path().join(index)).unwrap();
        store
            .put(index, bytes, &Default::default(), &Default::default())
            .await
            .unwrap();
    }
    store
}

pub fn clean_s3(bucket: &str, args: &[&str]) -> Output {
    spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
        .args([
            "clean",
            "--output",
            "json",
            "--cache",
            &format!("s3://{bucket}/cache"),
        ])
        .args(s3_cli_args())
        .args(args)
        .output()
        .unwrap()
}

pub async fn s3_state(store: &stores::Store) -> Vec<(String, Option<String>)> {
    use futures::TryStreamExt;
    store
        .list("")
        .map_ok(|o| (o.key, o.etag))
        .try_collect()
        .await
        .unwrap()
}
