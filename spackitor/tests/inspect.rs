//! The inspection commands (`show`, `dependents`, `orphans`, `verify`, `purge`, `reindex`,
//! `stats`, `diff`) as built binaries, on Spack's fixtures over directories and the real S3
//! server, healthy and broken.

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use spacktainerizah_tests::{
    copy_dir, fixtures, new_bucket, open_store, s3_cli_args, upload_dir, walk,
};

const CORE2_LIBELF: &str = "rqh2vuf6fqwkmipzgi2wjx352mq7y7ez";
const CORE2_LIBDWARF: &str = "sk2gqqz4n5njmvktycnd25wq25jxiqkr";
const M1_LIBDWARF: &str = "u5uz3dcch5if4eve4sef67o2rf2lbfgh";

fn mirror(layouts: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for l in layouts {
        copy_dir(
            &fixtures().join(format!("spack/{l}_layout/unsigned")),
            dir.path(),
        );
    }
    dir
}

fn spackitor(args: &[&str]) -> Output {
    spacktainerizah_tests::run_tool(env!("CARGO_BIN_EXE_spackitor"), args)
}

fn on(dir: &Path, cmd: &str, args: &[&str]) -> Output {
    let cache = dir.display().to_string();
    let mut all = vec![cmd, "--output", "json", "--cache", &cache];
    all.extend(args);
    spackitor(&all)
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn any_file_with(root: &Path, hash: &str) -> bool {
    walk(root)
        .iter()
        .any(|p| p.to_string_lossy().contains(hash))
}

#[test]
fn show_by_prefix_and_name_with_the_tree() {
    let m = mirror(&["v2", "v3"]);
    let shown = json(&on(m.path(), "show", &["u5uz3dc", "--tree"]));
    let shown = shown.as_array().unwrap();
    assert_eq!(shown.len(), 2, "one per layout");
    let v3 = shown.iter().find(|s| s["layout"] == "v3").unwrap();
    assert_eq!(v3["hash"], M1_LIBDWARF);
    // The manifest and its two blobs, read for the display.
    assert_eq!(v3["objects"].as_array().unwrap().len(), 3);
    let deps = v3["dependencies"].as_array().unwrap();
    let libelf = deps.iter().find(|d| d["name"] == "libelf").unwrap();
    assert_eq!(libelf["deptypes"], serde_json::json!(["build", "link"]));
    assert_eq!(libelf["depth"], 1);
    assert!(
        deps.iter()
            .any(|d| d["name"] == "gcc-runtime" && d["depth"] == 2),
        "--tree goes below libelf"
    );
    let by_name = json(&on(m.path(), "show", &["libelf@0.8.13"]));
    assert_eq!(
        by_name.as_array().unwrap().len(),
        4,
        "two libelf builds in two layouts"
    );
    let libelf = by_name
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["hash"] == CORE2_LIBELF)
        .unwrap();
    assert_eq!(libelf["dependents"][0]["hash"], CORE2_LIBDWARF);
}

#[test]
fn an_ambiguous_prefix_lists_the_candidates() {
    let m = mirror(&["v2"]);
    // A second record whose hash shares libelf's first 7 characters.
    let idx_path = m.path().join("build_cache/index.json");
    let mut idx: Value = serde_json::from_slice(&std::fs::read(&idx_path).unwrap()).unwrap();
    let twin = format!("{}{}", &CORE2_LIBELF[..7], "aaaaaaaaaaaaaaaaaaaaaaaaa");
    let mut rec = idx["database"]["installs"][CORE2_LIBELF].clone();
    rec["spec"]["hash"] = Value::String(twin.clone());
    idx["database"]["installs"][&twin] = rec;
    std::fs::write(&idx_path, serde_json::to_vec(&idx).unwrap()).unwrap();
    let out = on(m.path(), "show", &[&CORE2_LIBELF[..7]]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("ambiguous") && err.contains(CORE2_LIBELF) && err.contains(&twin),
        "{err}"
    );
    // Eight characters tell them apart.
    assert_eq!(
        json(&on(m.path(), "show", &[&CORE2_LIBELF[..8]]))[0]["hash"],
        CORE2_LIBELF
    );
}

#[test]
fn dependents_follow_link_and_run_edges_unless_asked() {
    let m = mirror(&["v2"]);
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&json(&on(m.path(), "dependents", &["gcc-runtime"]))),
        ["libdwarf", "libelf"]
    );
    // compiler-wrapper is only a build dependency: nothing breaks without it at run time.
    assert!(names(&json(&on(m.path(), "dependents", &["compiler-wrapper"]))).is_empty());
    assert_eq!(
        names(&json(&on(
            m.path(),
            "dependents",
            &["compiler-wrapper", "--all-edges"]
        ))),
        ["libdwarf", "libelf"]
    );
}

#[test]
fn orphans_are_listed_with_their_kind_and_whether_in_flight() {
    let m = mirror(&["v2", "v3"]);
    let stray = m.path().join("build_cache/test-debian6-core2-gcc-10.2.1-zlib-1.3-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.spec.json");
    std::fs::write(&stray, "{}").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(86400);
    std::fs::File::options()
        .write(true)
        .open(&stray)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let blob = m.path().join("blobs/sha256/00/00ff");
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, "x").unwrap();
    let rows = json(&on(m.path(), "orphans", &[]));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let spec = rows.iter().find(|r| r["kind"] == "spec_file").unwrap();
    assert_eq!(spec["hash"], "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_eq!(spec["in_flight"], false);
    let b = rows.iter().find(|r| r["kind"] == "blob").unwrap();
    assert_eq!(b["in_flight"], true, "written after the index");
}

#[test]
fn verify_passes_healthy_caches_and_names_every_problem() {
    let m = mirror(&["v2", "v3"]);
    let out = on(m.path(), "verify", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // v3 blobs are addressed by their checksum: the deep check reads and confirms them.
    let v3 = mirror(&["v3"]);
    assert_eq!(on(v3.path(), "verify", &["--deep"]).status.code(), Some(0));
    // The v2 fixture's tarballs are placeholders: their recorded checksums cannot match.
    let deep = on(m.path(), "verify", &["--deep"]);
    assert_eq!(deep.status.code(), Some(1));
    assert_eq!(
        json(&deep)
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["problem"].as_str().unwrap().contains("sha256"))
            .count(),
        6
    );

    let tarball = walk(&m.path().join("build_cache"))
        .into_iter()
        .find(|p| {
            p.to_string_lossy()
                .ends_with(&format!("{CORE2_LIBELF}.spack"))
        })
        .unwrap();
    std::fs::remove_file(&tarball).unwrap();
    std::fs::write(m.path().join("build_cache/index.json.hash"), "0".repeat(64)).unwrap();
    let blob = walk(&m.path().join("blobs")).remove(0);
    std::fs::write(&blob, "truncated").unwrap();
    let out = on(m.path(), "verify", &[]);
    assert_eq!(out.status.code(), Some(1));
    let problems = json(&out);
    let text = serde_json::to_string(&problems).unwrap();
    assert!(
        text.contains(&format!("{CORE2_LIBELF}.spack")),
        "missing tarball: {text}"
    );
    assert!(text.contains("index.json.hash"), "wrong hash file: {text}");
    assert!(
        text.contains(&blob.file_name().unwrap().to_string_lossy().to_string())
            && text.contains("bytes, but"),
        "size: {text}"
    );

    std::fs::write(m.path().join("build_cache/index.json"), "{\"database\":").unwrap();
    let out = on(m.path(), "verify", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("build_cache/index.json"));
}

#[test]
fn purge_refuses_to_break_dependents_or_keep_lists() {
    let m = mirror(&["v2", "v3"]);
    let out = on(m.path(), "purge", &["libelf@0.8.13"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--with-dependents") && stderr(&out).contains(CORE2_LIBDWARF));
    assert!(any_file_with(m.path(), CORE2_LIBELF), "nothing was deleted");

    // A keep list protecting m1 libdwarf (and so its libelf) refuses the purge.
    let lock = m.path().join("../keep-spack.lock");
    let index: Value =
        serde_json::from_slice(&std::fs::read(m.path().join("build_cache/index.json")).unwrap())
            .unwrap();
    let mut specs = serde_json::Map::new();
    for (h, r) in index["database"]["installs"].as_object().unwrap() {
        if h != CORE2_LIBELF && h != CORE2_LIBDWARF {
            specs.insert(h.clone(), r["spec"].clone());
        }
    }
    std::fs::write(&lock, serde_json::to_vec(&serde_json::json!({"_meta": {"lockfile-version": 6}, "roots": [{"hash": M1_LIBDWARF, "spec": "libdwarf"}], "concrete_specs": specs})).unwrap()).unwrap();
    let out = on(
        m.path(),
        "purge",
        &[
            "libelf",
            "--with-dependents",
            "--keep",
            &lock.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("keep lockfile"), "{}", stderr(&out));

    let r = json(&on(
        m.path(),
        "purge",
        &[&CORE2_LIBELF[..7], "--with-dependents"],
    ));
    assert_eq!(
        r["totals"]["specs"], 4,
        "libelf and the libdwarf linking it, in both layouts"
    );
    assert!(!any_file_with(m.path(), CORE2_LIBELF) && !any_file_with(m.path(), CORE2_LIBDWARF));
    let ls = json(&on(m.path(), "ls", &[]));
    assert_eq!(
        ls.as_array().unwrap().len(),
        8,
        "the rewritten indexes no longer list them"
    );
}

#[test]
fn reindex_rebuilds_a_lost_index_from_what_is_there() {
    for layout in ["v2", "v3"] {
        let m = mirror(&[layout]);
        let before = json(&on(m.path(), "ls", &[]));
        let index = if layout == "v2" {
            "build_cache/index.json"
        } else {
            "v3/manifests/index/index.manifest.json"
        };
        std::fs::remove_file(m.path().join(index)).unwrap();
        let out = on(m.path(), "ls", &[]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("reindex"));

        let r = json(&on(m.path(), "reindex", &[]));
        assert_eq!(r[0]["specs"], 6, "{layout}");
        let after = json(&on(m.path(), "ls", &[]));
        let hashes = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|r| r["hash"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(hashes(&after), hashes(&before), "{layout}");
        assert_eq!(
            on(m.path(), "verify", &[]).status.code(),
            Some(0),
            "{layout}: a rebuilt index verifies"
        );
    }
    // A spec whose tarball is gone is indexed as not in the build cache.
    let m = mirror(&["v2"]);
    let tarball = walk(&m.path().join("build_cache"))
        .into_iter()
        .find(|p| {
            p.to_string_lossy()
                .ends_with(&format!("{CORE2_LIBDWARF}.spack"))
        })
        .unwrap();
    std::fs::remove_file(tarball).unwrap();
    assert_eq!(json(&on(m.path(), "reindex", &[]))[0]["specs"], 5);
}

#[test]
fn stats_adds_up_and_writes_a_self_contained_page() {
    let m = mirror(&["v2", "v3"]);
    let html = m.path().join("../report.html");
    let s = json(&on(
        m.path(),
        "stats",
        &["--html", &html.display().to_string(), "--top", "3"],
    ));
    assert_eq!(
        s["objects"].as_u64().unwrap() as usize,
        walk(m.path()).len()
    );
    let band_specs: u64 = s["age_bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["specs"].as_u64().unwrap())
        .sum();
    assert_eq!(band_specs, 12);
    assert_eq!(s["packages"].as_array().unwrap().len(), 3);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && page.contains("Largest packages") && page.contains("libdwarf")
    );
    assert!(
        !page.contains("<script") && !page.contains("src=") && !page.contains("href="),
        "no external asset"
    );
}

#[test]
fn diff_shows_what_one_cache_has_and_the_other_lacks() {
    let a = mirror(&["v2"]);
    let b = mirror(&["v2"]);
    let (pa, pb) = (
        a.path().display().to_string(),
        b.path().display().to_string(),
    );
    assert_eq!(spackitor(&["diff", &pa, &pb]).status.code(), Some(0));
    let out = on(b.path(), "purge", &[CORE2_LIBDWARF]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = spackitor(&["diff", "--output", "json", &pa, &pb]);
    assert_eq!(out.status.code(), Some(1));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["only_in_a"][0]["hash"], CORE2_LIBDWARF);
    assert_eq!(d["only_in_b"].as_array().unwrap().len(), 0);
    assert_eq!(d["in_both"], 5);
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn over_s3_show_verify_and_stats_read_no_more_than_they_show() {
    let bucket = new_bucket("inspect").await;
    let src = mirror(&["v2", "v3"]);
    upload_dir(&open_store(&format!("s3://{bucket}/c")).await, src.path()).await;
    let s3 = |cmd: &str, extra: &[&str]| {
        spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
            .args([
                cmd,
                "--output",
                "json",
                "--cache",
                &format!("s3://{bucket}/c"),
            ])
            .args(s3_cli_args())
            .args(extra)
            .output()
            .unwrap()
    };
    assert_eq!(
        json(&s3("show", &[M1_LIBDWARF]))[1]["objects"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        s3("verify", &["--deep"]).status.code(),
        Some(1),
        "the v2 placeholders"
    );
    assert_eq!(
        json(&s3("stats", &[]))["layouts"].as_array().unwrap().len(),
        2
    );
    // Over S3, `ls` reads no manifest unless asked (no request per object); a directory does.
    let rows = json(&s3("ls", &[]));
    let v3_sizes = |rows: &Value| -> Vec<Value> {
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["layout"] == "v3")
            .map(|r| r["size"].clone())
            .collect()
    };
    assert!(v3_sizes(&rows).iter().all(Value::is_null), "{rows}");
    assert!(
        v3_sizes(&json(&s3("ls", &["--sizes"])))
            .iter()
            .all(Value::is_u64)
    );
    assert!(
        v3_sizes(&json(&on(src.path(), "ls", &[])))
            .iter()
            .all(Value::is_u64)
    );
    let deps = json(&s3("dependents", &["gcc-runtime"]));
    assert_eq!(deps.as_array().unwrap().len(), 4);
    assert_eq!(json(&s3("orphans", &[])).as_array().unwrap().len(), 0);

    // purge, then compare with the untouched local copy, then rebuild the index from scratch.
    let purged = json(&s3("purge", &[CORE2_LIBDWARF]));
    assert_eq!(purged["totals"]["specs"], 2);
    let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
        .args([
            "diff",
            "--output",
            "json",
            &src.path().display().to_string(),
            &format!("s3://{bucket}/c"),
        ])
        .args(s3_cli_args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["only_in_a"][0]["hash"], CORE2_LIBDWARF);
    let store = open_store(&format!("s3://{bucket}/c")).await;
    store
        .delete_many(vec![
            "build_cache/index.json".into(),
            "v3/manifests/index/index.manifest.json".into(),
        ])
        .await
        .unwrap();
    let rebuilt = json(&s3("reindex", &[]));
    assert_eq!(rebuilt[0]["specs"], 5);
    assert_eq!(rebuilt[1]["specs"], 5);
    assert_eq!(json(&s3("ls", &[])).as_array().unwrap().len(), 10);
}
