//! `singularitah sif publish|sync|prune-branches` against the real S3 server and directories:
//! checksum metadata, skip when the same, week-old retirement, checksum-driven sync with atomic
//! renames, and pruning of branches the git remote no longer has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use spacktainerizah_tests::{git, new_bucket, open_store, registry, s3_cli_args, unique_name};
use stores::sif_published;

/// Run `singularitah`; commands that reach S3 get the test server's flags (only those: the
/// others run without the server).
fn singularitah(args: &[&str]) -> Output {
    let mut cmd = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_singularitah"));
    cmd.args(args);
    if args.iter().any(|a| a.starts_with("s3://")) {
        cmd.args(s3_cli_args());
    }
    cmd.output().unwrap()
}

fn ok(out: Output) -> String {
    spacktainerizah_tests::succeeded(&out);
    String::from_utf8(out.stdout).unwrap()
}

/// A real SIF (a squashfs made by mksquashfs inside) recording `lockfile` as its checksum and,
/// as `sif build --container --branch` records it, what it is: the test names its files
/// `<container>__<version>[__<branch>][-arm64].sif` (the default branch is `main`).
fn make_sif(path: &Path, lockfile: &str) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let base = name.strip_suffix(".sif").unwrap_or(name);
    let (base, arch) = match base.strip_suffix("-arm64") {
        Some(b) => (b, "arm64"),
        None => (base, "amd64"),
    };
    let parts: Vec<&str> = base.splitn(3, "__").collect();
    let identity = sif_published::SifIdentity {
        container: parts[0].to_string(),
        branch: parts.get(2).copied().unwrap_or("main").to_string(),
        arch: arch.to_string(),
    };
    make_sif_as(path, lockfile, Some(&identity));
}

/// A real SIF recording `lockfile`, and `identity` when given.
fn make_sif_as(path: &Path, lockfile: &str, identity: Option<&sif_published::SifIdentity>) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("opt")).unwrap();
    std::fs::write(root.join("opt/lock"), lockfile).unwrap();
    let squashfs = work.path().join("fs");
    let st = Command::new("mksquashfs")
        .arg(&root)
        .arg(&squashfs)
        .args(["-comp", "gzip", "-quiet", "-no-progress"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let spec = model::sif::format::SifSpec {
        arch: "amd64".into(),
        deffile: "Bootstrap: docker\nFrom: example/tool:1\n".into(),
        labels: BTreeMap::from([
            (
                "org.example.lockfile-sha256".to_string(),
                lockfile.to_string(),
            ),
            (
                "org.example.definition-checksum".to_string(),
                "def1".to_string(),
            ),
        ])
        .into_iter()
        .chain(identity.map(|i| i.labels()).unwrap_or_default())
        .collect(),
        squashfs,
        created: Some(1),
        ..Default::default()
    };
    let mut f = std::fs::File::create(path).unwrap();
    model::sif::format::write(&spec, &mut f, path).unwrap();
}

/// `singularitah sif publish FILE --to TO`, which must succeed; its output.
fn publish(file: &Path, to: &str) -> String {
    ok(singularitah(&[
        "sif",
        "publish",
        file.to_str().unwrap(),
        "--to",
        to,
    ]))
}

/// Upload a SIF as `sif publish` leaves it: with its checksums and identity as metadata.
async fn put_published(store: &stores::Store, key: &str, path: &Path) {
    let labels = model::sif::format::read_labels(path).unwrap();
    store
        .put_file(
            key,
            path,
            &sif_published::object_metadata(&labels),
            stores::DEFAULT_PART_SIZE,
            &|_| (),
        )
        .await
        .unwrap();
}

async fn keys(url: &str) -> BTreeSet<String> {
    open_store(url)
        .await
        .list("")
        .map_ok(|o| o.key)
        .try_collect()
        .await
        .unwrap()
}

fn backdate(path: &Path, days: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server and squashfs-tools (./scripts/test.sh sets them up)"]
async fn publish_records_checksums_skips_the_same_and_retires_old_sifs_over_s3() {
    let bucket = new_bucket("sifs").await;
    let url = format!("s3://{bucket}/containers");
    let work = tempfile::tempdir().unwrap();
    let store = open_store(&url).await;
    // Older SIFs of the same container, of another branch and of another container.
    for k in [
        "tool__0.8.sif",
        "tool__0.9.sif",
        "tool__0.9__feature.sif",
        "toolbox__1.0.sif",
    ] {
        let p = work.path().join(k);
        make_sif(&p, k);
        put_published(&store, k, &p).await;
    }
    let sif = work.path().join("tool.sif");
    make_sif(&sif, "lock-a");
    let to = format!("{url}/tool__1.0.sif");
    let sif_arg = sif.to_str().unwrap();

    // A week's grace: nothing is old enough yet.
    let out = ok(singularitah(&["sif", "publish", sif_arg, "--to", &to]));
    assert!(out.starts_with("uploaded s3://"), "{out}");
    let (info, meta) = store.head("tool__1.0.sif").await.unwrap();
    assert_eq!(meta[sif_published::META_LOCKFILE_SHA256], "lock-a");
    assert_eq!(meta[sif_published::META_CONTAINER_CHECKSUM], "def1");
    assert_eq!(keys(&url).await.len(), 5);

    // The same checksums: not uploaded again.
    let out = ok(singularitah(&[
        "sif", "publish", sif_arg, "--to", &to, "--output", "json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["uploaded"], false, "{out}");
    assert_eq!(store.head("tool__1.0.sif").await.unwrap().0.etag, info.etag);

    // Other checksums, in parts; with no grace the same lineage's older SIFs go, nothing else.
    make_sif(&sif, "lock-b");
    let big = std::fs::OpenOptions::new().append(true).open(&sif).unwrap();
    // Padding after the last object: a SIF reader ignores it; it makes the file multipart.
    big.set_len(11 * 1024 * 1024).unwrap();
    let dry = ok(singularitah(&[
        "sif",
        "publish",
        sif_arg,
        "--to",
        &to,
        "--keep-days",
        "0",
        "--dry-run",
    ]));
    assert!(dry.contains("would remove tool__0.8.sif"), "{dry}");
    assert_eq!(keys(&url).await.len(), 5, "a dry run changes nothing");
    let out = ok(singularitah(&[
        "sif",
        "publish",
        sif_arg,
        "--to",
        &to,
        "--keep-days",
        "0",
        "--part-size-mib",
        "5",
    ]));
    assert!(out.contains("removed tool__0.9.sif"), "{out}");
    assert_eq!(
        keys(&url).await,
        BTreeSet::from(
            [
                "tool__0.9__feature.sif",
                "tool__1.0.sif",
                "toolbox__1.0.sif"
            ]
            .map(String::from)
        )
    );
    let (info, meta) = store.head("tool__1.0.sif").await.unwrap();
    assert_eq!(meta[sif_published::META_LOCKFILE_SHA256], "lock-b");
    assert!(info.etag.unwrap().ends_with("-3\""), "uploaded in 3 parts");
    assert_eq!(info.size, 11 * 1024 * 1024);

    // Not a SIF: refused by name before anything is sent.
    let junk = work.path().join("junk.sif");
    std::fs::write(&junk, b"nope").unwrap();
    let out = singularitah(&["sif", "publish", junk.to_str().unwrap(), "--to", &to]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.sif: not a SIF file"));
}

#[test]
#[ignore = "NOT RUN: needs squashfs-tools (./scripts/test.sh installs it)"]
fn publish_to_a_directory_keeps_the_newest_and_what_is_younger_than_a_week() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for (k, days) in [
        ("tool__0.7.sif", 30),
        ("tool__0.8.sif", 8),
        ("tool__0.9.sif", 3),
    ] {
        let p = dir.path().join(k);
        make_sif(&p, k);
        backdate(&p, days);
    }
    let sif = work.path().join("tool__1.0.sif");
    make_sif(&sif, "lock-a");
    let to = format!("{}/", dir.path().display());
    let out = publish(&sif, &to);
    assert!(out.contains("removed tool__0.7.sif"), "{out}");
    assert!(out.contains("removed tool__0.8.sif"), "{out}");
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sif"))
        .collect();
    left.sort();
    assert_eq!(left, ["tool__0.9.sif", "tool__1.0.sif"]);

    // The newest stays even when older than a week, when it is not the one published.
    let d2 = tempfile::tempdir().unwrap();
    let old = work.path().join("a__0.sif");
    make_sif(&old, "zero");
    let to = format!("{}/a__0.sif", d2.path().display());
    publish(&old, &to);
    backdate(&d2.path().join("a__0.sif"), 40);
    for (k, days) in [("a__1.sif", 20), ("a__2.sif", 10)] {
        let p = d2.path().join(k);
        make_sif(&p, k);
        backdate(&p, days);
    }
    let out = publish(&old, &to);
    assert!(out.starts_with("up to date:"), "{out}");
    assert!(d2.path().join("a__2.sif").exists(), "the newest stays");
    assert!(!d2.path().join("a__1.sif").exists());
    assert!(
        d2.path().join("a__0.sif").exists(),
        "the one published stays"
    );
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server and squashfs-tools (./scripts/test.sh sets them up)"]
async fn sync_copies_only_what_changed_atomically() {
    let bucket = new_bucket("sync").await;
    let url = format!("s3://{bucket}/containers");
    let work = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let publish = |name: &str, lock: &str| {
        let p = work.path().join(name);
        make_sif(&p, lock);
        ok(singularitah(&[
            "sif",
            "publish",
            p.to_str().unwrap(),
            "--to",
            &format!("{url}/{name}"),
        ]))
    };
    publish("a__1.sif", "a1");
    publish("b__1.sif", "b1");
    let to = shared.path().to_str().unwrap();
    let sync = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "sif", "sync", "--from", &url, "--to", to, "--output", "json",
        ];
        args.extend(extra);
        serde_json::from_str(&ok(singularitah(&args))).unwrap()
    };
    let r = sync(&[]);
    assert_eq!(r["copied"], serde_json::json!(["a__1.sif", "b__1.sif"]));
    let labels = model::sif::format::read_labels(&shared.path().join("a__1.sif")).unwrap();
    assert_eq!(labels["org.example.lockfile-sha256"], "a1");

    let r = sync(&[]);
    assert_eq!(r["copied"], serde_json::json!([]), "{r}");
    assert_eq!(r["up_to_date"].as_array().unwrap().len(), 2);

    // A republished SIF and a broken local copy are fetched again; nothing else.
    publish("a__1.sif", "a2");
    std::fs::write(shared.path().join("b__1.sif"), b"truncated").unwrap();
    let r = sync(&[]);
    assert_eq!(
        r["copied"],
        serde_json::json!(["a__1.sif", "b__1.sif"]),
        "{r}"
    );
    let labels = model::sif::format::read_labels(&shared.path().join("a__1.sif")).unwrap();
    assert_eq!(labels["org.example.lockfile-sha256"], "a2");

    // Removed from the bucket: kept locally unless asked; unrelated files never touched.
    open_store(&url)
        .await
        .delete_many(vec!["b__1.sif".into()])
        .await
        .unwrap();
    std::fs::write(shared.path().join("notes.txt"), b"mine").unwrap();
    assert_eq!(sync(&[])["removed"], serde_json::json!([]));
    assert!(shared.path().join("b__1.sif").exists());
    let r = sync(&["--delete-removed"]);
    assert_eq!(r["removed"], serde_json::json!(["b__1.sif"]), "{r}");
    let mut left: Vec<String> = std::fs::read_dir(shared.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        // The record of what this sync put there, in the store's own folder.
        .filter(|n| n != stores::RESERVED_DIR)
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["a__1.sif", "notes.txt"],
        "no temporary file left behind"
    );

    let out = singularitah(&["sif", "sync", "--from", &url, "--to", "/nonexistent/dir"]);
    assert_eq!(out.status.code(), Some(2));

    // A directory is a source too (a bucket mounted, or a second shared filesystem).
    let mirror = tempfile::tempdir().unwrap();
    let args = [
        "sif",
        "sync",
        "--from",
        to,
        "--to",
        mirror.path().to_str().unwrap(),
        "--output",
        "json",
    ];
    let r: serde_json::Value = serde_json::from_str(&ok(singularitah(&args))).unwrap();
    assert_eq!(r["copied"], serde_json::json!(["a__1.sif"]), "{r}");
    let r: serde_json::Value = serde_json::from_str(&ok(singularitah(&args))).unwrap();
    assert_eq!(
        r["copied"],
        serde_json::json!([]),
        "no metadata there: same size is the same"
    );
}

/// A git remote with `main`, `feature/alive`, `fix-amd64` and the tag `v1.0`.
fn remote() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q"]);
    git(&src, &["commit", "-q", "--allow-empty", "-m", "x"]);
    git(&src, &["branch", "feature/alive"]);
    git(&src, &["branch", "fix-amd64"]);
    git(&src, &["tag", "-a", "v1.0", "-m", "v1.0"]);
    let bare = d.path().join("remote.git");
    git(
        d.path(),
        &[
            "clone",
            "-q",
            "--bare",
            src.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    (d, bare)
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server and squashfs-tools (./scripts/test.sh sets them up)"]
async fn prune_branches_removes_only_sifs_of_deleted_branches() {
    let (_g, bare) = remote();
    let bucket = new_bucket("prune").await;
    let url = format!("s3://{bucket}/containers");
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&url).await;
    // What each SIF records (container, branch slug, architecture); the names alone are
    // ambiguous: is `fix-amd64` a branch, or `fix` built for amd64?
    let id = |branch: &str, arch: &str| sif_published::SifIdentity {
        container: "tool".into(),
        branch: branch.into(),
        arch: arch.into(),
    };
    let names = [
        ("tool__1.0.sif", id("main", "amd64")),
        ("tool__1.0__feature-alive.sif", id("feature-alive", "amd64")),
        ("tool__1.0__v1-0-amd64.sif", id("v1-0", "amd64")),
        ("tool__1.0__fix-amd64.sif", id("fix-amd64", "amd64")),
        ("tool__1.0__gone-branch.sif", id("gone-branch", "amd64")),
        (
            "tool__1.0__gone-branch-arm64.sif",
            id("gone-branch", "arm64"),
        ),
        ("tool__1.0__fix-arm64.sif", id("fix", "arm64")),
    ];
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    for (n, identity) in &names {
        let src = dir.path().join(n);
        make_sif_as(&src, "x", Some(identity));
        put_published(&store, n, &src).await;
        // Synced copies carry no metadata: their labels say what they are.
        std::fs::copy(&src, shared.join(n)).unwrap();
    }
    // Published before SIFs recorded what they are: never deleted on a guess from its name.
    let legacy = dir.path().join("legacy.sif");
    make_sif_as(&legacy, "x", None);
    put_published(&store, "tool__0.1__gone-branch.sif", &legacy).await;
    let repo = format!("file://{}", bare.display());
    let shared_arg = shared.to_str().unwrap();
    let args = [
        "sif",
        "prune-branches",
        "--repo",
        &repo,
        "--in",
        &url,
        "--in",
        shared_arg,
    ];
    let dry = ok(singularitah(&[&args[..], &["--dry-run"]].concat()));
    assert!(dry.contains("6 to remove, 9 kept"), "{dry}");
    assert!(
        dry.contains("tool__0.1__gone-branch.sif: it records no branch"),
        "{dry}"
    );
    assert_eq!(keys(&url).await.len(), 8, "a dry run changes nothing");
    let out = ok(singularitah(&args));
    assert!(out.contains("6 removed"), "{out}");
    let alive: BTreeSet<String> = names[..4].iter().map(|(s, _)| s.to_string()).collect();
    let mut in_bucket = alive.clone();
    in_bucket.insert("tool__0.1__gone-branch.sif".into());
    assert_eq!(keys(&url).await, in_bucket);
    let local: BTreeSet<String> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(local, alive);

    // A remote that cannot be read, or has no branch, deletes nothing.
    let empty = dir.path().join("empty.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", empty.to_str().unwrap()],
    );
    for bad in [
        format!("file://{}", empty.display()),
        "file:///nonexistent/x.git".into(),
    ] {
        let out = singularitah(&["sif", "prune-branches", "--repo", &bad, "--in", &url]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert_eq!(keys(&url).await, in_bucket);
    }
}

#[test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo, umoci, siftool and squashfs-tools (./scripts/test.sh sets them up)"]
fn a_def_container_becomes_a_sif_with_its_sections_and_publishes_its_source_digest() {
    let repository = unique_name("nexus");
    spacktainerizah_tests::push_test_image(
        &registry(),
        &repository,
        "latest",
        "amd64",
        &[("org.opencontainers.image.title", "nexus")],
        None,
    );
    let d = tempfile::tempdir().unwrap();
    let def = d.path().join("nexus-storage.def");
    std::fs::write(
        &def,
        format!(
            "Bootstrap: docker\nFrom: {}/{repository}:latest\n\n%labels\n  Maintainer hpc\n%environment\n  export STORAGE=/data\n%startscript\n   /opt/docker/bin/storage $@\n",
            registry()
        ),
    )
    .unwrap();
    let sif = d.path().join("nexus-storage__latest.sif");
    ok(singularitah(&[
        "sif",
        "build",
        "--def",
        def.to_str().unwrap(),
        "--arch",
        "amd64",
        "--label",
        "org.example.definition-checksum=abc",
        "-o",
        sif.to_str().unwrap(),
    ]));
    let labels = model::sif::format::read_labels(&sif).unwrap();
    assert_eq!(labels["Maintainer"], "hpc");
    assert_eq!(labels["org.opencontainers.image.title"], "nexus");
    let digest = labels["org.spacktainerizah.source-digest"].clone();
    assert!(digest.starts_with("sha256:"));

    let dest = d.path().join("bucket");
    std::fs::create_dir(&dest).unwrap();
    ok(singularitah(&[
        "sif",
        "publish",
        sif.to_str().unwrap(),
        "--to",
        &format!("{}/", dest.display()),
    ]));
    // The directory store's own record of the object's metadata, read as any client reads it.
    let store = stores::Store::new(stores::FileStore::new(dest.clone()));
    let meta: BTreeMap<String, String> = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.head("nexus-storage__latest.sif"))
        .unwrap()
        .1;
    assert_eq!(meta[sif_published::META_SOURCE_DIGEST], digest);
    assert_eq!(meta[sif_published::META_CONTAINER_CHECKSUM], "abc");

    // The squashfs holds the definition's sections where Singularity looks for them.
    let part = d.path().join("part");
    let dump = Command::new(spacktainerizah_tests::siftool())
        .args(["dump", "4"])
        .arg(&sif)
        .output()
        .unwrap();
    std::fs::write(&part, dump.stdout).unwrap();
    let back = d.path().join("back");
    let st = Command::new("unsquashfs")
        .args(["-no-progress", "-d"])
        .arg(&back)
        .arg(&part)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let start = std::fs::read_to_string(back.join(".singularity.d/startscript")).unwrap();
    assert!(start.contains("/opt/docker/bin/storage $@"), "{start}");
    let env = std::fs::read_to_string(back.join(".singularity.d/env/90-environment.sh")).unwrap();
    assert!(env.contains("export STORAGE=/data"), "{env}");
    let deffile = std::fs::read_to_string(back.join(".singularity.d/Singularity")).unwrap();
    assert!(deffile.contains("%startscript"), "{deffile}");

    // `%post` needs Singularity: refused by name, nothing written.
    std::fs::write(
        &def,
        "Bootstrap: docker\nFrom: x/y:1\n%post\n  apt-get install -y z\n",
    )
    .unwrap();
    let other = d.path().join("other.sif");
    let out = singularitah(&[
        "sif",
        "build",
        "--def",
        def.to_str().unwrap(),
        "-o",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nexus-storage.def: `%post`") && err.contains("--with-singularity"),
        "{err}"
    );
    assert!(!other.exists());
}

#[test]
#[ignore = "NOT RUN: needs the OCI registry with a password login, skopeo and umoci (./scripts/test.sh sets them up)"]
fn with_singularity_runs_apptainer_on_a_pinned_labelled_definition_with_the_login_in_its_environment()
 {
    use spacktainerizah_tests::{REGISTRY_PASSWORD_VAR, REGISTRY_USER_VAR, auth_registry};
    let user = std::env::var(REGISTRY_USER_VAR).unwrap();
    let password = std::env::var(REGISTRY_PASSWORD_VAR).unwrap();
    let repository = unique_name("private");
    spacktainerizah_tests::push_test_image(
        &auth_registry(),
        &repository,
        "1.0",
        "amd64",
        &[],
        Some(&format!("{user}:{password}")),
    );
    let image = format!("{}/{repository}:1.0", auth_registry());
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x__1.0.sif");
    let args = |tool_dir: &str| {
        let mut cmd = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_singularitah"));
        cmd.args([
            "sif",
            "build",
            &image,
            "--with-singularity",
            "--arch",
            "amd64",
        ])
        .args(["--label", "org.example.lockfile-sha256=abc", "-o"])
        .arg(&out)
        .args([
            "--user-env",
            REGISTRY_USER_VAR,
            "--password-env",
            REGISTRY_PASSWORD_VAR,
        ])
        .env("PATH", format!("{tool_dir}:/usr/bin:/bin"));
        cmd.output().unwrap()
    };
    // Not installed: said plainly.
    let missing = args("/nonexistent");
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("neither `apptainer` nor `singularity` is installed")
    );

    // An `apptainer` that records what it was given (the real one is not installable here).
    let tools = d.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    let record = d.path().join("record");
    std::fs::write(
        tools.join("apptainer"),
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && exit 0\necho \"$@\" > {r}.args\ncat \"$4\" > {r}.def\nenv > {r}.env\n",
            r = record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        tools.join("apptainer"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    ok(args(tools.to_str().unwrap()));
    let read = |ext: &str| std::fs::read_to_string(record.with_extension(ext)).unwrap();
    let argv = read("args");
    assert!(
        argv.starts_with(&format!("build --force {}", out.display())),
        "{argv}"
    );
    assert!(!argv.contains(&password), "the password is not an argument");
    let def = read("def");
    assert!(
        def.contains(&format!("From: {}/{repository}@sha256:", auth_registry())),
        "{def}"
    );
    assert!(
        def.contains("%labels\n    org.example.lockfile-sha256 abc\n"),
        "{def}"
    );
    assert!(
        def.contains("org.spacktainerizah.source-digest sha256:"),
        "{def}"
    );
    let env = read("env");
    assert!(
        env.contains(&format!("APPTAINER_DOCKER_PASSWORD={password}")),
        "login by environment"
    );
}

#[tokio::test]
#[ignore = "NOT RUN: needs the S3 server and squashfs-tools (./scripts/test.sh sets them up)"]
async fn sync_removes_only_what_it_put_there_never_on_an_empty_listing_and_shares_readably() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let to = shared.path().to_str().unwrap().to_string();
    // Two buckets synced into the same directory.
    let (a, b) = (new_bucket("sync-a").await, new_bucket("sync-b").await);
    for (bucket, name) in [(&a, "one__1.sif"), (&b, "two__1.sif")] {
        let p = work.path().join(name);
        make_sif(&p, name);
        put_published(&open_store(&format!("s3://{bucket}")).await, name, &p).await;
    }
    let sync = |bucket: &str, extra: &[&str]| {
        let from = format!("s3://{bucket}");
        let mut args = vec![
            "sif", "sync", "--from", &from, "--to", &to, "--output", "json",
        ];
        args.extend(extra);
        singularitah(&args)
    };
    for bucket in [&a, &b] {
        ok(sync(bucket, &["--delete-removed"]));
    }
    for name in ["one__1.sif", "two__1.sif"] {
        let mode = std::fs::metadata(shared.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{name}: every cluster user reads it");
    }
    // Each sync leaves the other bucket's SIFs alone.
    for bucket in [&a, &b] {
        let r: serde_json::Value =
            serde_json::from_str(&ok(sync(bucket, &["--delete-removed"]))).unwrap();
        assert_eq!(r["removed"], serde_json::json!([]), "{r}");
    }
    assert!(shared.path().join("one__1.sif").exists() && shared.path().join("two__1.sif").exists());

    // A source that lists no SIF (emptied, or an unmounted directory) removes nothing.
    open_store(&format!("s3://{a}"))
        .await
        .delete_many(vec!["one__1.sif".into()])
        .await
        .unwrap();
    let out = sync(&a, &["--delete-removed"]);
    assert_eq!(out.status.code(), Some(2));
    // With `--output json` the error is a JSON object (on stderr).
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("lists no SIF"),
        "{err}"
    );
    assert!(shared.path().join("one__1.sif").exists());
    let unmounted = tempfile::tempdir().unwrap();
    let out = singularitah(&[
        "sif",
        "sync",
        "--from",
        unmounted.path().to_str().unwrap(),
        "--to",
        &to,
        "--delete-removed",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(shared.path().join("one__1.sif").exists() && shared.path().join("two__1.sif").exists());

    // Once the bucket holds other SIFs again, what it removed goes; the other bucket's stays.
    let p = work.path().join("three__1.sif");
    make_sif(&p, "three");
    put_published(&open_store(&format!("s3://{a}")).await, "three__1.sif", &p).await;
    let r: serde_json::Value = serde_json::from_str(&ok(sync(&a, &["--delete-removed"]))).unwrap();
    assert_eq!(r["removed"], serde_json::json!(["one__1.sif"]), "{r}");
    assert!(!shared.path().join("one__1.sif").exists());
    assert!(shared.path().join("two__1.sif").exists());
}

#[test]
#[ignore = "NOT RUN: needs squashfs-tools (./scripts/test.sh installs it)"]
fn publish_retires_only_its_own_lineage_whatever_the_names_look_like() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // `a`'s old SIF, and one whose name starts like `a`'s but which records another container
    // (published before such names were refused), and one recording another architecture.
    let other = sif_published::SifIdentity {
        container: "a__b".into(),
        branch: "main".into(),
        arch: "amd64".into(),
    };
    let arm = sif_published::SifIdentity {
        container: "a".into(),
        branch: "main".into(),
        arch: "arm64".into(),
    };
    for (name, identity) in [
        ("a__0.9.sif", None),
        ("a__b__0.9.sif", Some(&other)),
        ("a__0.8.sif", Some(&arm)),
    ] {
        let p = dir.path().join(name);
        match identity {
            None => make_sif(&p, name),
            Some(id) => make_sif_as(&p, name, Some(id)),
        }
        ok(singularitah(&[
            "sif",
            "publish",
            p.to_str().unwrap(),
            "--to",
            &format!("{}/", dir.path().display()),
        ]));
        backdate(&dir.path().join(name), 30);
    }
    let sif = work.path().join("a__1.0.sif");
    make_sif(&sif, "new");
    let out = publish(&sif, &format!("{}/", dir.path().display()));
    assert!(out.contains("removed a__0.9.sif"), "{out}");
    assert!(
        !out.contains("a__b__0.9.sif") && !out.contains("a__0.8.sif"),
        "{out}"
    );
    assert!(dir.path().join("a__b__0.9.sif").exists());
    assert!(dir.path().join("a__0.8.sif").exists());
}
