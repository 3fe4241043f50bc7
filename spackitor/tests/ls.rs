//! `spackitor ls`, run as the built binary against directories and the real S3 server.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use spacktainerizah_tests::{
    SECRET_KEY_VAR, copy_dir, fixtures, new_bucket, open_store, repo_root, s3_cli_args, upload_dir,
};

fn spackitor(args: &[&str]) -> Output {
    spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
        .args(args)
        .output()
        .expect("run spackitor")
}

fn json_rows(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn example() -> String {
    repo_root()
        .join("examples/build-cache")
        .display()
        .to_string()
}

#[test]
fn lists_both_layouts_of_the_example_cache() {
    let out = spackitor(&["ls", "--cache", &example()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("COMPILER"));
    assert_eq!(lines.len(), 13, "{text}");
    // As Spack shows them: 0.x's own compiler, 1.x's compiler dependencies, none.
    assert!(
        text.contains(" gcc@10.2.1 ") && text.contains(" %c=gcc@10.2.1 "),
        "{text}"
    );
    assert!(!text.contains("none-none"), "{text}");
    assert_eq!(lines.iter().filter(|l| l.contains(" v3 ")).count(), 6);
}

#[test]
fn filters_by_glob_and_architecture() {
    let rows = json_rows(&spackitor(&[
        "ls",
        "--cache",
        &example(),
        "--output",
        "json",
        "lib*",
    ]));
    assert_eq!(rows.len(), 8);
    assert!(
        rows.iter()
            .all(|r| r["name"].as_str().unwrap().starts_with("lib"))
    );
    let rows = json_rows(&spackitor(&[
        "ls",
        "--cache",
        &example(),
        "--output",
        "json",
        "--arch",
        "test-debian6-core2",
    ]));
    assert_eq!(rows.len(), 4);
    let rows = json_rows(&spackitor(&[
        "ls",
        "--cache",
        &example(),
        "--output",
        "json",
        "--arch",
        "m1",
        "--version",
        "1.0",
    ]));
    assert_eq!(rows.len(), 2, "compiler-wrapper in both layouts");
}

#[test]
fn age_filters_use_the_objects_last_modified() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("spack/v2_layout/unsigned"), dir.path());
    let old = SystemTime::now() - Duration::from_secs(40 * 86400);
    for f in spacktainerizah_tests::walk(&dir.path().join("build_cache")) {
        if f.file_name()
            .unwrap()
            .to_string_lossy()
            .contains("-libelf-")
        {
            std::fs::File::options()
                .write(true)
                .open(&f)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    }
    let cache = dir.path().display().to_string();
    let rows = json_rows(&spackitor(&[
        "ls",
        "--cache",
        &cache,
        "--output",
        "json",
        "--older-than",
        "30",
    ]));
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["libelf", "libelf"]);
    assert!(
        rows.iter()
            .all(|r| r["age_seconds"].as_u64().unwrap() >= 40 * 86400)
    );
    let rows = json_rows(&spackitor(&[
        "ls",
        "--cache",
        &cache,
        "--output",
        "json",
        "--newer-than",
        "1",
    ]));
    assert_eq!(rows.len(), 4);
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn the_same_listing_over_s3() {
    let bucket = new_bucket("ls").await;
    upload_dir(
        &open_store(&format!("s3://{bucket}/mirror")).await,
        Path::new(&example()),
    )
    .await;
    let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
        .args([
            "ls",
            "--sizes",
            "--output",
            "json",
            "--cache",
            &format!("s3://{bucket}/mirror"),
        ])
        .args(s3_cli_args())
        .output()
        .unwrap();
    let over_s3 = json_rows(&out);
    let local = json_rows(&spackitor(&[
        "ls",
        "--cache",
        &example(),
        "--output",
        "json",
    ]));
    let ids = |rows: &[serde_json::Value]| -> Vec<(String, String, Vec<serde_json::Value>)> {
        rows.iter()
            .map(|r| {
                (
                    r["hash"].to_string(),
                    r["layout"].to_string(),
                    r["objects"].as_array().unwrap().clone(),
                )
            })
            .collect()
    };
    assert_eq!(ids(&over_s3), ids(&local));
}

#[test]
fn a_missing_index_is_named_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("spack/v2_layout/unsigned"), dir.path());
    std::fs::remove_file(dir.path().join("build_cache/index.json")).unwrap();
    let out = spackitor(&["ls", "--cache", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("build_cache/index.json") && err.contains("spackitor reindex"),
        "{err}"
    );
}

#[test]
fn a_folder_that_is_no_cache_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = spackitor(&["ls", "--cache", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no build cache"));
}

#[test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
fn a_missing_bucket_is_reported_without_credentials() {
    let secret = std::env::var(SECRET_KEY_VAR).expect("test key pair");
    let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
        .args(["ls", "--cache", "s3://bucket-that-does-not-exist"])
        .args(s3_cli_args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bucket-that-does-not-exist") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!err.contains(&secret));
}

#[test]
fn help_documents_variables_and_exit_codes() {
    let out = spackitor(&["ls", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "S3_ENDPOINT_URL",
        "SPACKTAINERIZAH_CACHE",
        "--access-key-env",
        "--older-than",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    let top = String::from_utf8(spackitor(&["--help"]).stdout).unwrap();
    assert!(top.contains("Exit codes: 0"), "{top}");
    assert!(spackitor(&["--version"]).status.success());
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "ls",
        "show",
        "dependents",
        "orphans",
        "verify",
        "purge",
        "reindex",
        "stats",
        "diff",
        "clean",
    ] {
        let out = spackitor(&[cmd, "--help"]);
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: spackitor"),
            "{cmd}"
        );
    }
}
