//! `spackitor clean` against real directories and the real S3 server, on Spack's own
//! fixtures in both layouts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use spacktainerizah_tests::{fixtures, new_bucket, open_store, walk};

mod support;
use support::*;

#[test]
fn expired_specs_take_their_link_dependents_along() {
    for variant in ["unsigned", "signed"] {
        let m = mirror(variant);
        fresh_except(m.path(), &[CORE2_LIBELF]);
        let r = report(&clean(m.path(), &["--max-age", "30"]));
        let mut expected: BTreeMap<_, _> = both(CORE2_LIBELF, "expired").into_iter().collect();
        expected.extend(both(CORE2_LIBDWARF, "dependent_of"));
        assert_eq!(deleted(&r), expected, "{variant}");
        assert!(!any_file_with(m.path(), CORE2_LIBELF) && !any_file_with(m.path(), CORE2_LIBDWARF));
        let left = listed(m.path());
        assert_eq!(left["v2"].len(), 4);
        assert_eq!(left["v2"], left["v3"]);
        assert!(!left["v2"].contains(&CORE2_LIBDWARF.to_string()));
        // Spack's hash-file rule holds for the rewritten v2 index.
        let idx = std::fs::read(m.path().join("build_cache/index.json")).unwrap();
        let hash = std::fs::read(m.path().join("build_cache/index.json.hash")).unwrap();
        assert!(model::spack::buildcache::index::hash_file_matches(
            &hash, &idx
        ));
        // Dependents go first: libdwarf is listed (and deleted) before the libelf it links.
        let order: Vec<&str> = r["layouts"][0]["specs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["libdwarf", "libelf"]);
    }
}

#[test]
fn build_only_edges_never_cascade() {
    let m = mirror("unsigned");
    fresh_except(m.path(), &[COMPILER_WRAPPER]);
    let r = report(&clean(m.path(), &["--max-age", "30"]));
    assert_eq!(
        deleted(&r),
        both(COMPILER_WRAPPER, "expired").into_iter().collect()
    );
    assert!(any_file_with(m.path(), M1_LIBELF) && any_file_with(m.path(), M1_LIBDWARF));
}

#[test]
fn keep_lockfiles_protect_their_specs_whatever_their_age_or_package() {
    let m = mirror("unsigned");
    let work = tempfile::tempdir().unwrap();
    keep_lockfile(work.path(), M1_LIBDWARF);
    // A repository without libelf: the kept libelf stays, the other one goes.
    let repo = work.path().join("spack/var/spack/repos/builtin");
    for p in ["libdwarf", "compiler-wrapper", "gcc_runtime"] {
        std::fs::create_dir_all(repo.join("packages").join(p)).unwrap();
        std::fs::write(repo.join("packages").join(p).join("package.py"), "").unwrap();
    }
    std::fs::write(repo.join("repo.yaml"), "repo:\n  namespace: builtin\n").unwrap();
    let keep_dir = work.path().join("env").display().to_string();
    let spack = work.path().join("spack").display().to_string();
    let r = report(&clean(
        m.path(),
        &[
            "--max-age",
            "30",
            "--keep",
            &keep_dir,
            "--spack-repo",
            &spack,
        ],
    ));
    let mut expected: BTreeMap<_, _> = both(CORE2_LIBELF, "package_removed").into_iter().collect();
    // libdwarf is old itself: its own rule names it before the cascade could.
    expected.extend(both(CORE2_LIBDWARF, "expired"));
    assert_eq!(deleted(&r), expected);
    for h in [M1_LIBDWARF, M1_LIBELF, COMPILER_WRAPPER, GCC_RUNTIME] {
        assert!(any_file_with(m.path(), h), "{h} is in the keep lockfile");
    }
    assert_eq!(r["layouts"][0]["kept_by_lockfile"], 4);
}

#[test]
fn removed_packages_go_with_their_dependents() {
    let m = mirror("unsigned");
    fresh_except(m.path(), &[]);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repos/spack_repo/builtin");
    for p in ["libdwarf", "compiler_wrapper", "gcc_runtime"] {
        std::fs::create_dir_all(repo.join("packages").join(p)).unwrap();
        std::fs::write(repo.join("packages").join(p).join("package.py"), "").unwrap();
    }
    std::fs::write(repo.join("repo.yaml"), "repo:\n  namespace: builtin\n").unwrap();
    let r = report(&clean(
        m.path(),
        &["--spack-repo", &work.path().display().to_string()],
    ));
    let mut expected: BTreeMap<_, _> = BTreeMap::new();
    for (h, why) in [
        (CORE2_LIBELF, "package_removed"),
        (M1_LIBELF, "package_removed"),
        (CORE2_LIBDWARF, "dependent_of"),
        (M1_LIBDWARF, "dependent_of"),
    ] {
        expected.extend(both(h, why));
    }
    assert_eq!(deleted(&r), expected);
}

#[test]
fn orphans_go_only_when_old_and_older_than_the_index() {
    let m = mirror("unsigned");
    fresh_except(m.path(), &[]);
    let bc = m.path().join("build_cache");
    let old_stem = "test-debian6-core2-gcc-10.2.1-zlib-1.3-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let new_stem = "test-debian6-core2-gcc-10.2.1-zlib-1.3-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    std::fs::write(bc.join(format!("{old_stem}.spec.json")), "{}").unwrap();
    std::fs::create_dir_all(bc.join("test-debian6-core2/gcc-10.2.1/zlib-1.3")).unwrap();
    std::fs::write(
        bc.join(format!(
            "test-debian6-core2/gcc-10.2.1/zlib-1.3/{old_stem}.spack"
        )),
        "x",
    )
    .unwrap();
    std::fs::write(bc.join(format!("{new_stem}.spec.json")), "{}").unwrap();
    let old_blob = m.path().join("blobs/sha256/00/00aa");
    let new_blob = m.path().join("blobs/sha256/00/00bb");
    std::fs::create_dir_all(old_blob.parent().unwrap()).unwrap();
    std::fs::write(&old_blob, "old").unwrap();
    std::fs::write(&new_blob, "in flight").unwrap();
    for f in [
        bc.join(format!("{old_stem}.spec.json")),
        bc.join(format!(
            "test-debian6-core2/gcc-10.2.1/zlib-1.3/{old_stem}.spack"
        )),
        old_blob.clone(),
    ] {
        set_age(&f, 40.0);
    }
    // Without --orphans nothing but index entries' objects is ever touched.
    let r = report(&clean(m.path(), &["--max-age", "30"]));
    assert_eq!(r["totals"]["orphans"], 0);
    assert!(old_blob.exists());

    let r = report(&clean(m.path(), &["--max-age", "30", "--orphans"]));
    let keys: Vec<&str> = r["layouts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["orphans"].as_array().unwrap())
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(!old_blob.exists() && !bc.join(format!("{old_stem}.spec.json")).exists());
    assert!(
        new_blob.exists(),
        "newer than the index: may be an upload in flight"
    );
    assert!(bc.join(format!("{new_stem}.spec.json")).exists());
    assert!(deleted(&r).is_empty());
}

#[test]
fn dry_run_leaves_the_cache_byte_for_byte_unchanged() {
    let m = mirror("signed");
    let before = snapshot(m.path());
    let r = report(&clean(
        m.path(),
        &["--max-age", "30", "--orphans", "--dry-run"],
    ));
    assert_eq!(r["dry_run"], true);
    assert_eq!(deleted(&r).len(), 12, "everything is 40 days old");
    assert_eq!(snapshot(m.path()), before);
    // The variable, as people write yes in CI settings; a typo is refused, never read as no.
    for yes in ["1", "yes", "TRUE", "on"] {
        let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
            .args([
                "clean",
                "--output",
                "json",
                "--max-age",
                "30",
                "--orphans",
                "--cache",
            ])
            .arg(m.path())
            .env(model::env_names::DRY_RUN, yes)
            .output()
            .unwrap();
        assert_eq!(report(&out)["dry_run"], true, "{yes}");
        assert_eq!(snapshot(m.path()), before, "{yes}");
    }
    let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
        .args(["clean", "--max-age", "30", "--orphans", "--cache"])
        .arg(m.path())
        .env(model::env_names::DRY_RUN, "yse")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("yse"));
    assert_eq!(snapshot(m.path()), before);
}

/// Extra arguments, damage done to the cache, and what the error must name.
type BadInput = (Vec<String>, Box<dyn Fn(&Path)>, String);

#[test]
fn bad_inputs_delete_nothing() {
    let work = tempfile::tempdir().unwrap();
    let broken_lock = work.path().join("broken/spack.lock");
    std::fs::create_dir_all(broken_lock.parent().unwrap()).unwrap();
    std::fs::write(
        &broken_lock,
        "{\"_meta\": {\"lockfile-version\": 6}, \"concrete_specs\": ",
    )
    .unwrap();
    let empty_repo = work.path().join("empty");
    std::fs::create_dir_all(&empty_repo).unwrap();
    let no_cache = work.path().join("no-cache");
    let cases: Vec<BadInput> = vec![
        (
            vec![],
            Box::new(|root: &Path| {
                std::fs::create_dir_all(root.join("_spacktainerizah")).unwrap();
                std::fs::write(
                    root.join(spackitor::journal::KEY),
                    "{\"version\":1,\"layouts\":{\"v2\":[\"not-a-hash\"]}}",
                )
                .unwrap();
            }),
            "clean-plan.json".into(),
        ),
        (
            vec!["--keep".into(), empty_repo.display().to_string()],
            Box::new(|_| {}),
            "no spack.lock under".into(),
        ),
        (
            vec![
                "--keep".into(),
                format!(
                    "file://{}/{}",
                    no_cache.display(),
                    stores::keep_lists::PREFIX
                ),
            ],
            Box::new(|_| {}),
            "could not read the keep lists".into(),
        ),
        (
            vec!["--keep".into(), broken_lock.display().to_string()],
            Box::new(|_| {}),
            "broken/spack.lock".into(),
        ),
        (
            vec!["--keep".into(), "/nonexistent/spack.lock".into()],
            Box::new(|_| {}),
            "/nonexistent/spack.lock".into(),
        ),
        (
            vec!["--spack-repo".into(), empty_repo.display().to_string()],
            Box::new(|_| {}),
            "no Spack package repository".into(),
        ),
        (
            vec![],
            Box::new(|root: &Path| {
                std::fs::write(
                    root.join("build_cache/index.json"),
                    "{\"database\":{\"version\":\"8\",\"installs\":{\"x\":",
                )
                .unwrap()
            }),
            "build_cache/index.json".into(),
        ),
        (
            vec![],
            Box::new(|root: &Path| {
                let m = walk(&root.join("v3/manifests/spec")).remove(0);
                std::fs::write(
                    m,
                    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{\"version\":3",
                )
                .unwrap();
            }),
            ".spec.manifest.json".into(),
        ),
    ];
    for (args, damage, named) in cases {
        let m = mirror("unsigned");
        damage(m.path());
        let before = snapshot(m.path());
        let mut all = vec!["--max-age".to_string(), "0".into(), "--orphans".into()];
        all.extend(args);
        let out = clean(
            m.path(),
            &all.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(out.status.code(), Some(2), "{all:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&named), "expected `{named}` in: {err}");
        assert_eq!(snapshot(m.path()), before, "{all:?} changed the cache");
    }
}

/// The relative paths of a cache's files, the store's own folder left out.
fn files(root: &Path) -> Vec<String> {
    snapshot(root)
        .into_keys()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

/// A mirror whose libelf expired, cleaned as far as a run gets before its deletes: the plan
/// recorded and the indexes rewritten. The mirror, its store, what the run read and planned.
async fn interrupted_after_the_index_rewrite() -> (
    tempfile::TempDir,
    stores::Store,
    spackitor::loaded::LoadedCache,
    Vec<model::cleanup::LayoutPlan>,
) {
    let m = mirror("unsigned");
    fresh_except(m.path(), &[CORE2_LIBELF]);
    let store = open_store(&m.path().display().to_string()).await;
    let loaded =
        spackitor::loaded::LoadedCache::load(&store, spackitor::manifests::Reads::All, |_| {})
            .await
            .unwrap();
    let plans = model::cleanup::plan(&loaded.view, &rules_30_days());
    spackitor::clean::commit(&store, &loaded, &plans)
        .await
        .unwrap();
    (m, store, loaded, plans)
}

/// A run killed after its index rewrite (before any delete, or after a few) is finished by the
/// next one, exactly: libdwarf, taken out of the index as a dependent of the expired libelf, is
/// a day old and no orphan rule would take it for a month.
#[tokio::test]
async fn an_interrupted_run_is_finished_exactly_by_the_next_one() {
    let reference = mirror("unsigned");
    fresh_except(reference.path(), &[CORE2_LIBELF]);
    report(&clean(reference.path(), &["--max-age", "30"]));
    let expected = files(reference.path());
    assert!(!any_file_with(reference.path(), CORE2_LIBDWARF));

    for deletes_done in [0, 3] {
        let (m, store, _, plans) = interrupted_after_the_index_rewrite().await;
        let waves = model::cleanup::deletion_waves(&plans, stores::DELETE_BATCH);
        let first: Vec<String> = waves[0].iter().map(|k| k.to_string()).collect();
        store
            .delete_all(first[..deletes_done].to_vec())
            .await
            .unwrap();
        assert_eq!(
            listed(m.path())["v2"].len(),
            4,
            "the indexes were rewritten"
        );

        let r = report(&clean(m.path(), &["--max-age", "30"]));
        assert!(deleted(&r).is_empty(), "{r:#}");
        assert!(r["totals"]["leftovers"].as_u64().unwrap() > 0, "{r:#}");
        assert_eq!(files(m.path()), expected, "after {deletes_done} delete(s)");
    }
}

/// A directory cache whose indexes another writer put back (as `spack buildcache update-index`
/// writes them from a listing made before the deletes) while the janitor deleted: the check
/// after the deletes rewrites them without what was deleted.
#[tokio::test]
async fn indexes_written_back_during_the_deletes_are_repaired_in_a_directory() {
    let (m, store, loaded, plans) = interrupted_after_the_index_rewrite().await;
    for lm in &loaded.view.layouts {
        stores::cache::write_index(
            &store,
            lm.layout,
            lm.db.bytes(),
            &lm.db.version,
            &Default::default(),
        )
        .await
        .unwrap();
    }
    for wave in model::cleanup::deletion_waves(&plans, stores::DELETE_BATCH) {
        store
            .delete_all(wave.iter().map(|k| k.to_string()).collect())
            .await
            .unwrap();
    }
    let printer = terminal::printer::Printer::new(&Default::default());
    let repairs = spackitor::clean::repair_indexes(&store, &loaded.view, &plans, &printer)
        .await
        .unwrap();
    assert_eq!(
        repairs.iter().map(|r| r.specs).collect::<Vec<_>>(),
        [2, 2],
        "{repairs:?}"
    );
    let listed = listed(m.path());
    for layout in ["v2", "v3"] {
        assert_eq!(listed[layout].len(), 4, "{layout}: {listed:?}");
        assert!(
            !listed[layout]
                .iter()
                .any(|h| h == CORE2_LIBELF || h == CORE2_LIBDWARF)
        );
    }
}

/// What an interrupted run recorded is not deleted when it was uploaded again since (a pipeline
/// pushing it while the janitor was down).
#[tokio::test]
async fn an_interrupted_runs_specs_uploaded_again_since_stay() {
    let (m, _, _, _) = interrupted_after_the_index_rewrite().await;
    std::thread::sleep(std::time::Duration::from_millis(20));
    for f in walk(m.path()) {
        if f.to_string_lossy().contains(CORE2_LIBDWARF) {
            std::fs::write(&f, std::fs::read(&f).unwrap()).unwrap();
        }
    }
    let r = report(&clean(m.path(), &["--max-age", "30"]));
    assert!(any_file_with(m.path(), CORE2_LIBDWARF), "{r:#}");
    assert!(!any_file_with(m.path(), CORE2_LIBELF), "{r:#}");
    assert!(!m.path().join(spackitor::journal::KEY).exists());
}

/// `--keep file://<cache>/_spacktainerizah/keep` before anything was recorded: a new
/// deployment cleans, and says why nothing is kept.
#[test]
fn a_records_folder_where_nothing_was_recorded_yet_keeps_nothing_and_says_so() {
    let m = mirror("unsigned");
    fresh_except(m.path(), &[CORE2_LIBELF]);
    let url = format!(
        "file://{}/{}",
        m.path().display(),
        stores::keep_lists::PREFIX
    );
    let out = clean(m.path(), &["--max-age", "30", "--keep", &url]);
    let r = report(&out);
    assert_eq!(r["keep_records"][0]["recorded"], false, "{r:#}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing recorded yet"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!any_file_with(m.path(), CORE2_LIBELF));
}

#[test]
fn a_cache_nothing_was_built_into_yet_is_nothing_to_clean_but_objects_without_an_index_stop() {
    // A new deployment's branch cache, before any branch built: its janitor passes.
    let empty = tempfile::tempdir().unwrap();
    let records = format!(
        "file://{}/{}",
        empty.path().display(),
        stores::keep_lists::PREFIX
    );
    let out = clean(empty.path(), &["--max-age", "30", "--keep", &records]);
    let r = report(&out);
    assert_eq!(r["empty"], true, "{r:#}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no build cache there yet"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Spec files without the index that names them are not an empty cache: nothing is
    // deleted and the run fails.
    let m = mirror("unsigned");
    std::fs::remove_file(m.path().join("build_cache/index.json")).unwrap();
    let before = files(m.path());
    let out = clean(m.path(), &["--max-age", "0"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files(m.path()), before);
}

#[tokio::test]
async fn a_stale_index_is_never_written_over_a_newer_one() {
    let m = mirror("unsigned");
    let store = open_store(&m.path().display().to_string()).await;
    let loaded =
        spackitor::loaded::LoadedCache::load(&store, spackitor::manifests::Reads::All, |_| {})
            .await
            .unwrap();
    let rules = rules_30_days();
    let plans = model::cleanup::plan(&loaded.view, &rules);
    // Someone else rewrites the index meanwhile (a pipeline's `update-index`).
    let idx = m.path().join("build_cache/index.json");
    let mut bytes = std::fs::read(&idx).unwrap();
    bytes.push(b' ');
    std::fs::write(&idx, &bytes).unwrap();
    let err = spackitor::clean::rewrite_indexes(&store, &loaded, &plans)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("precondition failed"),
        "{err:#}"
    );
    assert_eq!(
        std::fs::read(&idx).unwrap(),
        bytes,
        "the other writer's index stays"
    );
}

#[test]
#[ignore = "NOT RUN: needs root (chattr +i makes a file undeletable; ./scripts/test.sh runs as root)"]
fn per_key_delete_failures_are_named_and_fail_the_run() {
    let m = mirror("unsigned");
    fresh_except(m.path(), &[CORE2_LIBELF]);
    let stuck = walk(m.path())
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "spack")
                && p.to_string_lossy().contains(CORE2_LIBELF)
        })
        .unwrap();
    // An immutable file cannot be removed, even by root.
    assert!(
        Command::new("chattr")
            .arg("+i")
            .arg(&stuck)
            .status()
            .unwrap()
            .success(),
        "chattr +i"
    );
    let out = clean(m.path(), &["--max-age", "30"]);
    Command::new("chattr")
        .arg("-i")
        .arg(&stuck)
        .status()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&stuck.file_name().unwrap().to_string_lossy().to_string()),
        "{err}"
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["failures"].as_array().unwrap().len(), 1);
    assert!(
        !any_file_with(&m.path().join("v3"), CORE2_LIBDWARF),
        "the rest was deleted"
    );
}

/// A file made immutable (`chattr +i`: not even root removes it) until dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(path: &Path) -> Immutable {
        let set = Command::new("chattr").arg("+i").arg(path).status().unwrap();
        assert!(set.success(), "chattr +i {}", path.display());
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// What a script around `clean` relies on: exit 2 after deletes that partly failed means the
/// cache was partly changed (dependents gone, their index entries too), the run says so and
/// keeps its plan, `--help` documents exactly that, and running it again finishes the job.
#[test]
#[ignore = "NOT RUN: needs root (chattr +i makes a file undeletable; ./scripts/test.sh runs as root)"]
fn a_partly_failed_clean_exits_2_as_documented_and_the_next_run_finishes_it() {
    let top = String::from_utf8(
        spacktainerizah_tests::run_tool(env!("CARGO_BIN_EXE_spackitor"), ["--help"]).stdout,
    )
    .unwrap();
    let flat = top.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        !flat.contains("nothing is changed)") && flat.contains("partly cleaned"),
        "--help must say what exit 2 after failed deletes means:\n{top}"
    );

    let m = mirror("unsigned");
    fresh_except(m.path(), &[CORE2_LIBELF]);
    // libelf's tarball: its dependent libdwarf goes in an earlier wave, and does go.
    let stuck = walk(m.path())
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "spack")
                && p.to_string_lossy().contains(CORE2_LIBELF)
        })
        .unwrap();
    let lock = Immutable::new(&stuck);
    let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
        .args(["clean", "--max-age", "30", "--cache"])
        .arg(m.path())
        .output()
        .unwrap();
    drop(lock);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    let name = stuck.file_name().unwrap().to_string_lossy().to_string();
    assert!(stderr.contains(&name), "{stderr}");
    assert!(
        stdout.contains("tried to delete")
            && stdout.contains("INCOMPLETE: 1 object(s) could not be deleted"),
        "{stdout}"
    );
    assert!(stdout.contains("the cache is partly cleaned"), "{stdout}");
    // Partly changed: libdwarf is gone from the cache and both indexes, the plan is kept.
    assert!(!any_file_with(m.path(), CORE2_LIBDWARF));
    assert!(stuck.exists());
    for layout in ["v2", "v3"] {
        assert_eq!(listed(m.path())[layout].len(), 4, "{layout}");
    }
    assert!(m.path().join(spackitor::journal::KEY).exists());

    let r = report(&clean(m.path(), &["--max-age", "30"]));
    assert!(r["failures"].as_array().unwrap().is_empty(), "{r:#}");
    assert!(r["totals"]["leftovers"].as_u64().unwrap() > 0, "{r:#}");
    assert!(!any_file_with(m.path(), CORE2_LIBELF));
    assert!(!m.path().join(spackitor::journal::KEY).exists());
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn over_s3_with_a_keep_list_and_few_requests() {
    let bucket = new_bucket("clean").await;
    let store = upload_mirror(&bucket).await;
    let work = tempfile::tempdir().unwrap();
    let lock = keep_lockfile(work.path(), M1_LIBDWARF);
    let lock = lock.display().to_string();

    let before = s3_state(&store).await;
    let r = report(&clean_s3(
        &bucket,
        &["--max-age", "0", "--keep", &lock, "--dry-run"],
    ));
    assert_eq!(deleted(&r).len(), 4);
    assert_eq!(s3_state(&store).await, before, "a dry run changes nothing");

    let r = report(&clean_s3(&bucket, &["--max-age", "0", "--keep", &lock]));
    let mut expected: BTreeMap<_, _> = both(CORE2_LIBELF, "expired").into_iter().collect();
    expected.extend(both(CORE2_LIBDWARF, "expired"));
    assert_eq!(deleted(&r), expected);
    let keys: Vec<String> = s3_state(&store).await.into_iter().map(|(k, _)| k).collect();
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(CORE2_LIBELF) || k.contains(CORE2_LIBDWARF))
    );
    assert!(keys.iter().any(|k| k.contains(M1_LIBELF)));
    // One listing page, one batched delete and the removal of the recorded plan, and the index
    // writes: no request per object.
    let req = &r["requests"];
    assert_eq!(req["list"], 1);
    assert_eq!(req["delete"], 1 + 1);
    // The plan, the index writes, and the v3 manifest memo for the next run.
    assert_eq!(r["plan_recorded"], true);
    assert_eq!(
        req["put"].as_u64().unwrap(),
        1 + r["index_writes"].as_u64().unwrap() + 1
    );
    assert_eq!(req["head"], 0);
    // v3 reads each manifest once; v2 needs only its index. After the deletes, each index is
    // read again (v2: the index; v3: its manifest and blob) to catch one written back.
    let manifests = before
        .iter()
        .filter(|(k, _)| k.ends_with(".manifest.json"))
        .count() as u64;
    assert_eq!(req["get"].as_u64().unwrap(), 1 + 1 + manifests + 3);
    // What converging costs: the plan written and removed, the indexes read again.
    assert_eq!(r["convergence"]["requests"], 1 + 3 + 1);
}

#[test]
fn v3_manifests_are_read_once_and_remembered() {
    let m = mirror("signed");
    fresh_except(m.path(), &[]);
    let first = report(&clean(m.path(), &["--max-age", "30"]));
    let manifests = walk(&m.path().join("v3/manifests")).len() as u64;
    assert_eq!(
        first["manifests_read"].as_u64(),
        Some(manifests - 1),
        "all but the index manifest"
    );
    assert!(m.path().join(".spackitor/manifests.json.gz").is_file());

    let second = report(&clean(m.path(), &["--max-age", "30"]));
    assert_eq!(second["manifests_read"], 0);
    assert_eq!(second["manifests_remembered"].as_u64(), Some(manifests - 1));

    // A manifest pushed again is read again; the memo never stands in for a changed manifest.
    age_spec(m.path(), CORE2_LIBELF, 40.0);
    let third = report(&clean(m.path(), &["--max-age", "30"]));
    assert_eq!(third["manifests_read"], 1);
    // Now old, libelf goes, with the libdwarf that links it; their blobs go too.
    assert_eq!(deleted(&third).len(), 4);
    assert!(!any_file_with(m.path(), CORE2_LIBELF));
    let fourth = report(&clean(m.path(), &["--max-age", "30", "--orphans"]));
    assert_eq!(fourth["manifests_read"], 0);
    // No blob of the deleted specs was left behind: the one orphan is the index blob the
    // third run replaced.
    let orphans: Vec<&str> = fourth["layouts"][1]["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    let old_index = model::spack::buildcache::v3::Manifest::parse(
        "m",
        &std::fs::read(
            fixtures().join("spack/v3_layout/signed/v3/manifests/index/index.manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(orphans, [old_index.data[0].key()]);
}

#[test]
fn a_blob_two_manifests_share_goes_with_the_last_of_them() {
    let m = mirror("unsigned");
    fresh_except(m.path(), &[CORE2_LIBELF]);
    // libdwarf (m1) is pushed again pointing at core2 libelf's tarball blob: one blob, two users.
    let manifest_of = |hash: &str| {
        walk(&m.path().join("v3/manifests/spec"))
            .into_iter()
            .find(|p| p.to_string_lossy().contains(hash))
            .unwrap()
    };
    let elf = model::spack::buildcache::v3::Manifest::parse(
        "m",
        &std::fs::read(manifest_of(CORE2_LIBELF)).unwrap(),
    )
    .unwrap();
    let shared = elf
        .data
        .iter()
        .find(|r| r.media_type.starts_with("application/vnd.spack.install"))
        .unwrap()
        .clone();
    let dwarf_path = manifest_of(M1_LIBDWARF);
    let mut dwarf =
        model::spack::buildcache::v3::Manifest::parse("m", &std::fs::read(&dwarf_path).unwrap())
            .unwrap();
    let own_tarball = dwarf.data[0].key();
    dwarf.data[0] = shared.clone();
    std::fs::write(&dwarf_path, dwarf.to_bytes()).unwrap();
    set_age(&dwarf_path, 1.0);
    std::fs::remove_file(m.path().join(&own_tarball)).unwrap();

    let r = report(&clean(m.path(), &["--max-age", "30"]));
    let v3: Vec<&Value> = r["layouts"][1]["specs"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(v3.iter().any(|s| s["hash"] == CORE2_LIBELF));
    assert!(
        m.path().join(shared.key()).exists(),
        "m1 libdwarf still uses the blob"
    );
    let elf_objects: Vec<&str> = v3.iter().find(|s| s["hash"] == CORE2_LIBELF).unwrap()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(!elf_objects.contains(&shared.key().as_str()));

    age_spec(m.path(), M1_LIBDWARF, 40.0);
    set_age(&m.path().join(shared.key()), 40.0);
    report(&clean(m.path(), &["--max-age", "30"]));
    assert!(
        !m.path().join(shared.key()).exists(),
        "its last user is gone"
    );
}

/// As a Ceph or MinIO user configures it: a relaxed bucket name, the endpoint from
/// `AWS_ENDPOINT_URL` as the AWS CLI reads it, the key variables under Spack's flag names.
#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server (./scripts/test.sh starts it)"]
async fn s3_as_the_aws_cli_and_spack_name_it() {
    let bucket = format!("Relaxed_{}", spacktainerizah_tests::unique_name("ceph"));
    spacktainerizah_tests::raw_s3()
        .await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    upload_mirror(&bucket).await;
    let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spackitor"))
        .args(["ls", "--output", "json", "--cache"])
        .arg(format!("s3://{bucket}/cache"))
        .args(["--s3-access-key-id-variable", "TEAM_KEY"])
        .args(["--s3-access-key-secret-variable", "TEAM_SECRET"])
        .env_remove("S3_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_ENDPOINT_URL", spacktainerizah_tests::s3_endpoint())
        .env(
            "TEAM_KEY",
            std::env::var(spacktainerizah_tests::ACCESS_KEY_VAR).unwrap(),
        )
        .env(
            "TEAM_SECRET",
            std::env::var(spacktainerizah_tests::SECRET_KEY_VAR).unwrap(),
        )
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert!(listed.to_string().contains("libdwarf"), "{listed}");
}
