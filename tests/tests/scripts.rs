//! The shell scripts of `scripts/` and `.ci/`: shellcheck finds nothing in them; the test
//! command's closing line counts each test once and fails a run where a test did not run; a work
//! folder made for a run (the end-to-end run's) goes when the run succeeds; a server whose port
//! another process took before the server could bind it is started on another port; the
//! end-to-end run's search for its signing key finds it inside a compressed tar or a zip inside a
//! tar.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use spacktainerizah_tests::repo_root;

/// The shell scripts in `dir`: `*.sh`, and files whose first line runs a shell.
fn shell_scripts(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let first_line = std::fs::read_to_string(&path)
            .map(|text| text.lines().next().unwrap_or_default().to_string())
            .unwrap_or_default();
        let shebang_shell =
            first_line.starts_with("#!") && ["/sh", "bash"].iter().any(|s| first_line.contains(s));
        if path.extension().is_some_and(|e| e == "sh") || shebang_shell {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
#[ignore = "NOT RUN: needs shellcheck (./scripts/test.sh installs it)"]
fn shellcheck_finds_nothing_in_the_scripts() {
    let root = repo_root();
    let mut scripts = shell_scripts(&root.join("scripts"));
    scripts.extend(shell_scripts(&root.join(".ci")));
    for sourced in ["scripts/services.sh", "scripts/test.sh", ".ci/run"] {
        assert!(
            scripts.contains(&root.join(sourced)),
            "{sourced} not found among {scripts:?}"
        );
    }
    // From the root, where the scripts' `# shellcheck source=scripts/…` directives point.
    let out = Command::new("shellcheck")
        .args(["--external-sources", "--format=gcc"])
        .args(scripts.iter().map(|p| p.strip_prefix(&root).unwrap()))
        .current_dir(&root)
        .output()
        .expect("running shellcheck (./scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "shellcheck found:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `scripts/test-summary.sh` over a cargo log and end-to-end logs: its closing line, and
/// whether it passed.
fn summary(cargo_log: &str, e2e_logs: &[&str]) -> (String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![dir.path().join("cargo-test.log")];
    std::fs::write(&args[0], cargo_log).unwrap();
    for (i, log) in e2e_logs.iter().enumerate() {
        let path = dir.path().join(format!("e2e-{i}.log"));
        std::fs::write(&path, log).unwrap();
        args.push(path);
    }
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/test-summary.sh"))
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one closing line: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (stdout.trim_end().to_string(), out.status.success())
}

/// A test binary's output as `cargo test` prints it: the tests' lines, anything they printed to
/// stderr, and the result line.
fn binary(name: &str, lines: &[&str], result: &str) -> String {
    format!(
        "     Running tests/{name}.rs (target/debug/deps/{name}-0123456789abcdef)\n\n\
         running {} tests\n{}\n\ntest result: {result}; 0 measured; 0 filtered out; finished in 0.01s\n\n",
        lines.iter().filter(|l| l.starts_with("test ")).count(),
        lines.join("\n"),
    )
}

fn all_passed() -> String {
    binary(
        "formats",
        &[
            "test a_lockfile_parses ... ok",
            "test an_index_parses ... ok",
        ],
        "ok. 2 passed; 0 failed; 0 ignored",
    )
}

#[test]
fn a_run_where_every_test_ran_and_passed_passes() {
    let e2e = "==> e2e: Spack 1.0.2 (cache layout v3), storage file, in /tmp/stz-e2e.x\n\
               ==> e2e passed; figures in /tmp/stz-e2e.x/figures.txt\n";
    assert_eq!(
        summary(&all_passed(), &[e2e, e2e]),
        (
            "tests: 2 passed, 0 failed, 0 not run; end-to-end runs passed: 2".into(),
            true
        )
    );
}

#[test]
fn a_test_that_printed_not_run_counts_once_as_not_run_and_fails_the_run() {
    // cargo counts it as passed; it printed one line per Spack version it missed.
    let log = all_passed()
        + &binary(
            "safety",
            &[
                "NOT RUN: reindex_works: no real Spack 0.23.1 in the shared tools",
                "NOT RUN: reindex_works: no real Spack 1.0.2 in the shared tools",
                "test reindex_works ... ok",
                "test a_clean_keeps_what_is_recorded ... ok",
            ],
            "ok. 2 passed; 0 failed; 0 ignored",
        );
    assert_eq!(
        summary(&log, &[]),
        (
            "tests: 3 passed, 0 failed, 1 not run; end-to-end runs passed: 0".into(),
            false
        )
    );
}

#[test]
fn tests_cargo_lists_as_ignored_did_not_run_and_fail_the_run() {
    let log = all_passed()
        + &binary(
            "stores",
            &[
                "test s3_contract ... ignored, NOT RUN: needs the S3 server (./scripts/test.sh starts it)",
                "test file_contract ... ok",
                "test registry_contract ... ignored, NOT RUN: needs the registry (./scripts/test.sh starts it)",
            ],
            "ok. 1 passed; 0 failed; 2 ignored",
        );
    assert_eq!(
        summary(&log, &[]),
        (
            "tests: 3 passed, 0 failed, 2 not run; end-to-end runs passed: 0".into(),
            false
        )
    );
}

#[test]
fn a_test_stopped_by_a_missing_service_counts_once_as_not_run_not_as_failed() {
    // Run with --include-ignored where the S3 server is missing: two tests panic with the
    // support code's reason (the same for both), and one fails for a reason of its own.
    let log = all_passed()
        + &binary(
            "stores",
            &[
                "test s3_contract_list ... FAILED",
                "test s3_contract_put ... FAILED",
                "test memory_contract_put ... FAILED",
                "",
                "failures:",
                "",
                "---- s3_contract_list stdout ----",
                "",
                "thread 's3_contract_list' (11) panicked at tests/src/lib.rs:36:9:",
                "NOT RUN: SPACKTAINERIZAH_TEST_S3_ENDPOINT is not set: this test needs a service",
                "",
                "---- s3_contract_put stdout ----",
                "",
                "thread 's3_contract_put' (12) panicked at tests/src/lib.rs:36:9:",
                "NOT RUN: SPACKTAINERIZAH_TEST_S3_ENDPOINT is not set: this test needs a service",
                "",
                "---- memory_contract_put stdout ----",
                "",
                "thread 'memory_contract_put' (13) panicked at tests/tests/stores.rs:80:5:",
                "assertion `left == right` failed",
                "",
                "",
                "failures:",
                "    memory_contract_put",
                "    s3_contract_list",
                "    s3_contract_put",
            ],
            "FAILED. 0 passed; 3 failed; 0 ignored",
        );
    assert_eq!(
        summary(&log, &[]),
        (
            "tests: 2 passed, 1 failed, 2 not run; end-to-end runs passed: 0".into(),
            false
        )
    );
}

#[test]
fn a_failed_test_fails_the_run() {
    let log = all_passed()
        + &binary(
            "images",
            &[
                "test the_image_runs ... FAILED",
                "test the_tag_is_kept ... ok",
            ],
            "FAILED. 1 passed; 1 failed; 0 ignored",
        );
    assert_eq!(
        summary(&log, &[]),
        (
            "tests: 3 passed, 1 failed, 0 not run; end-to-end runs passed: 0".into(),
            false
        )
    );
}

#[test]
fn what_an_end_to_end_run_skipped_did_not_run_and_fails_the_run() {
    // One run passed without Apptainer; the other found no Spack archive and stopped at once.
    let passed_without_apptainer = "==> e2e: Spack 0.23.1 (cache layout v2), storage s3, in /w\n\
                                    NOT RUN: e2e: the SIF in Apptainer (none installed)\n\
                                    ==> e2e passed; figures in /w/figures.txt\n";
    let no_spack = "NOT RUN: e2e with Spack 1.0.2: spack-1.0.2.tar.xz is missing\n";
    assert_eq!(
        summary(&all_passed(), &[passed_without_apptainer, no_spack]),
        (
            "tests: 2 passed, 0 failed, 2 not run; end-to-end runs passed: 1".into(),
            false
        )
    );
}

/// `script` run by bash from the repository root after sourcing `sourced` (which starts
/// nothing by itself), with `env`: its exit status, stdout and stderr.
fn after_sourcing(
    sourced: &str,
    script: &str,
    env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n. {sourced}\n{script}"))
        .envs(env.iter().copied())
        .current_dir(repo_root())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn after_services_sh(script: &str) -> (Option<i32>, String, String) {
    after_sourcing("scripts/services.sh", script, &[])
}

/// The work folder a script made and printed, gone when the test ends.
struct MadeFolder(PathBuf);

impl Drop for MadeFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn made_folder(stdout: &str, stderr: &str) -> MadeFolder {
    let path = PathBuf::from(stdout.trim());
    assert!(
        path.starts_with("/tmp"),
        "not a folder under /tmp: {stdout:?}; stderr: {stderr}"
    );
    MadeFolder(path)
}

const MAKE_WORK: &str = "work_folder test\necho \"$WORK\"\necho result >\"$WORK/result\"\n";

#[test]
fn a_work_folder_the_script_made_is_removed_when_it_succeeds() {
    let (status, stdout, stderr) = after_services_sh(MAKE_WORK);
    let work = made_folder(&stdout, &stderr);
    assert_eq!(status, Some(0), "{stderr}");
    assert!(!work.0.exists(), "{} is left behind", work.0.display());
}

#[test]
fn a_work_folder_the_script_made_is_kept_and_named_when_it_fails_or_is_stopped() {
    for (end, want) in [("false", 1), ("kill -TERM $$; sleep 5", 143)] {
        let (status, stdout, stderr) = after_services_sh(&format!("{MAKE_WORK}{end}\n"));
        let work = made_folder(&stdout, &stderr);
        assert_eq!(status, Some(want), "{end}: {stderr}");
        assert!(
            work.0.join("result").is_file(),
            "{end}: {} is gone",
            work.0.display()
        );
        assert!(
            stderr.contains(&work.0.display().to_string()),
            "{end}: the kept folder is not named: {stderr}"
        );
    }
}

#[test]
fn a_work_folder_given_is_never_removed() {
    let given = tempfile::tempdir().unwrap();
    let dir = given.path().join("work");
    let script = format!(
        "work_folder test '{}'\necho result >\"$WORK/result\"\n",
        dir.display()
    );
    let (status, _, stderr) = after_services_sh(&script);
    assert_eq!(status, Some(0), "{stderr}");
    assert!(dir.join("result").is_file(), "{stderr}");
}

/// A server for `serve` to start: Python's HTTP server in a folder holding `marker`, and a
/// `free_port` that first hands out `$TAKEN`, as when another process binds the port picked for
/// the server before the server does.
const HTTP_SERVER: &str = r#"
trap stop_servers EXIT
free_port() {
    if [ ! -e "$DIR/picked" ]; then : >"$DIR/picked"; echo "$TAKEN"; return; fi
    [ -n "${ALWAYS_TAKEN:-}" ] && { echo "$TAKEN"; return; }
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
run_http() { cd "$DIR" && exec python3 -m http.server --bind 127.0.0.1 "$1"; }
answers() { : <>"/dev/tcp/127.0.0.1/$1"; }
serve http "$DIR/http.log" answers run_http
echo "$SERVED_PORT"
exec 3<>"/dev/tcp/127.0.0.1/$SERVED_PORT"
printf 'GET /marker HTTP/1.0\r\n\r\n' >&3
timeout 10 cat <&3
"#;

/// A port another process holds, answering every request as a server would.
fn taken_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0; 1024];
            if stream.read(&mut request).is_ok_and(|n| n > 0) {
                let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nanother process\n");
            }
        }
    });
    port.to_string()
}

#[test]
#[ignore = "NOT RUN: needs python3 and ss (iproute2, which ./scripts/test.sh installs)"]
fn a_server_whose_port_was_taken_meanwhile_starts_on_another_port() {
    let taken_port = taken_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("marker"), "the server serve started\n").unwrap();
    let env = [
        ("TAKEN", taken_port.as_str()),
        ("DIR", dir.path().to_str().unwrap()),
    ];
    let (status, stdout, stderr) = after_sourcing("scripts/serve.sh", HTTP_SERVER, &env);
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    let port = stdout.lines().next().unwrap();
    assert!(
        dir.path().join("picked").exists(),
        "the taken port was never handed out"
    );
    assert_ne!(
        port, taken_port,
        "serve settled on the port another process holds"
    );
    assert!(
        stdout.contains("the server serve started"),
        "what answers on {port} is not the server: {stdout}\n{stderr}"
    );
    let addr = format!("127.0.0.1:{port}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the server on {addr} still runs after the script ended"
    );
}

#[test]
#[ignore = "NOT RUN: needs python3 and ss (iproute2, which ./scripts/test.sh installs)"]
fn a_server_that_never_gets_its_port_fails_with_its_log() {
    let taken_port = taken_port();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TAKEN", taken_port.as_str()),
        ("DIR", dir.path().to_str().unwrap()),
        ("ALWAYS_TAKEN", "yes"),
    ];
    let (status, stdout, stderr) = after_sourcing("scripts/serve.sh", HTTP_SERVER, &env);
    assert_ne!(status, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("http did not start"), "{stderr}");
    // Python's own words from the last try's log.
    assert!(stderr.contains("Address already in use"), "{stderr}");
}

/// The test virtualenv's Python, which the end-to-end run runs its helper scripts with.
fn test_python() -> PathBuf {
    PathBuf::from(std::env::var("SPACKTAINERIZAH_TEST_PYTHON").expect(
        "NOT RUN: SPACKTAINERIZAH_TEST_PYTHON is not set: ./scripts/test.sh makes the test \
         virtualenv",
    ))
}

/// `tar ARGS` in `dir`.
fn tar(dir: &Path, args: &[&str]) {
    let status = Command::new("tar")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "tar {args:?} failed");
}

/// A tar holding a `.tar.gz` (as a v2 `.spack` tarball does) whose file is `content`.
fn tar_in_tar(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let inner = dir.join(name);
    std::fs::create_dir_all(inner.join("prefix/.spack")).unwrap();
    std::fs::write(inner.join("prefix/.spack/spack-build-env.txt"), content).unwrap();
    tar(&inner, &["-czf", "inner.tar.gz", "prefix"]);
    tar(&inner, &["-cf", "../outer.tar", "inner.tar.gz"]);
    let outer = dir.join(format!("{name}.tar"));
    std::fs::rename(dir.join("outer.tar"), &outer).unwrap();
    std::fs::remove_dir_all(&inner).unwrap();
    outer
}

#[test]
#[ignore = "NOT RUN: needs the test virtualenv (./scripts/test.sh)"]
fn the_canary_search_finds_a_key_inside_a_compressed_tar_or_a_zip_inside_a_tar_and_nothing_elsewhere()
 {
    let dir = tempfile::tempdir().unwrap();
    let armored = "lQOYBGdKx3sBCADK2q3mSecretArmoredLineOfTheCanaryKey0123456789abc";
    let binary = [0x9d_u8, 0x00, 0xff, 0x13, 0x37, 0x42, 0x00, 0x01];
    let canaries = dir.path().join("canaries");
    std::fs::write(
        &canaries,
        format!("{armored}\nhex:{}\n", hex::encode(binary)),
    )
    .unwrap();
    let leaks = dir.path().join("leaks");
    let clean = dir.path().join("clean");
    std::fs::create_dir_all(&leaks).unwrap();
    std::fs::create_dir_all(&clean).unwrap();
    let mut with_text = b"SPACK_SIGNING_KEY=".to_vec();
    with_text.extend_from_slice(armored.as_bytes());
    let text = tar_in_tar(&leaks, "text", &with_text);
    let mut with_bytes = vec![0_u8; 4096];
    with_bytes.extend_from_slice(&binary);
    let bytes = tar_in_tar(&leaks, "bytes", &with_bytes);
    // A wheel in an image's layer: a zip inside a tar, larger than a tar block.
    std::fs::write(
        leaks.join("key.txt"),
        format!(
            "{}{armored}",
            (0..2048_u64)
                .map(|i| format!("{:x} ", i.wrapping_mul(2_654_435_761) % 65_521))
                .collect::<String>()
        ),
    )
    .unwrap();
    let status = Command::new(test_python())
        .args(["-m", "zipfile", "-c", "wheel.whl", "key.txt"])
        .current_dir(&leaks)
        .status()
        .unwrap();
    assert!(status.success());
    tar(&leaks, &["-cf", "layer.tar", "wheel.whl"]);
    std::fs::remove_file(leaks.join("key.txt")).unwrap();
    std::fs::remove_file(leaks.join("wheel.whl")).unwrap();
    // The same layout, and the canaries' halves: nothing to find.
    let mut halves = armored.as_bytes()[..20].to_vec();
    halves.extend_from_slice(&binary[..4]);
    tar_in_tar(&clean, "halves", &halves);

    let search = |path: &Path| {
        let out = Command::new(test_python())
            .arg(repo_root().join("scripts/e2e-canary.py"))
            .arg(&canaries)
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (status, stdout, stderr) = search(&leaks);
    assert_eq!(status, Some(1), "{stdout}\n{stderr}");
    for outer in [&text, &bytes] {
        let hit = format!(
            "{}!inner.tar.gz!prefix/.spack/spack-build-env.txt:",
            outer.display()
        );
        assert!(stdout.contains(&hit), "no {hit} in:\n{stdout}\n{stderr}");
    }
    let hit = format!("{}!wheel.whl!key.txt:", leaks.join("layer.tar").display());
    assert!(stdout.contains(&hit), "no {hit} in:\n{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let (status, stdout, stderr) = search(&clean);
    assert_eq!(status, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
}

/// `.ci/tools-image-config.sh ARGUMENTS`.
fn tools_image_config(arguments: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(repo_root().join(".ci/tools-image-config.sh"))
        .args(arguments)
        .output()
        .unwrap()
}

/// The release configuration `.ci/tools-image-config.sh` writes for `arguments` (after the
/// registry and version), read as the tools read it.
fn release_config(arguments: &[&str]) -> model::config::Config {
    let mut all = vec!["registry.example.org/spacktainerizah", "1.2.3"];
    all.extend(arguments);
    let text = spacktainerizah_tests::succeeded(&tools_image_config(&all));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("release.yaml");
    std::fs::write(&path, text).unwrap();
    model::config::Config::read(&path).unwrap()
}

#[test]
fn the_release_tools_image_is_for_both_architectures_each_under_its_own_tag() {
    let both = release_config(&[]);
    let archs: Vec<&str> = both.architectures.keys().map(String::as_str).collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    assert!(
        both.tags.arch_suffix,
        "one tag for both would keep the last one built"
    );
    assert_eq!(both.default_branch, "release");

    let one = release_config(&["debian:bookworm", "amd64"]);
    assert_eq!(one.architectures.keys().collect::<Vec<_>>(), ["amd64"]);
    assert!(!one.tags.arch_suffix);

    let out = tools_image_config(&[
        "registry.example.org/x",
        "1.2.3",
        "debian:bookworm",
        "riscv64",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown architecture riscv64"));
    assert!(out.stdout.is_empty(), "nothing written");
    let out = tools_image_config(&["r/x", "1.2.3", "debian:bookworm", "amd64", "amd64"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("amd64 given twice"));
    assert!(out.stdout.is_empty(), "nothing written");
}

#[test]
fn the_projects_own_ci_publishes_both_architectures_under_one_index() {
    let text = std::fs::read_to_string(repo_root().join(".gitlab-ci.yml")).unwrap();
    spacktainerizah_tests::validate_gitlab_ci(&text).unwrap();
    let ci: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let needs = |job: &str| -> Vec<String> {
        ci[job]["needs"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{job} has no needs"))
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    };
    for arch in ["amd64", "arm64"] {
        let job = format!("publish tools image {arch}");
        assert_eq!(ci[job.as_str()]["variables"]["ARCH"].as_str(), Some(arch));
        assert!(
            needs("publish tools index").contains(&job),
            "the index after {job}"
        );
    }
    assert_eq!(
        ci["publish tools image arm64"]["tags"][0].as_str(),
        Some("arm64"),
        "on an arm64 runner: the image's RUN steps run there"
    );
}
