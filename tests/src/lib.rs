//! Test support shared by the integration tests of every crate: fixture paths, the real
//! services `scripts/test.sh` starts (S3, registry, Docker daemon), unique bucket names and
//! validation against GitLab's CI schema.
//!
//! A test that needs a service or tool is `#[ignore = "NOT RUN: needs …"]`: plain `cargo test`
//! lists it as ignored with that reason, `cargo test -- --include-ignored` runs it, and there a
//! missing service fails it (the helpers below panic with `NOT RUN: …`), never skips it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use stores::{S3Options, Store, StoreUrl};

pub mod gpg;
pub mod proxy;
pub mod runner;
pub mod snapshots;
pub mod spack;

/// `tests/fixtures` of this repository.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where a service the test script started answers; panics when the variable is not set, as
/// this test cannot run (only ignored tests get here, under `--include-ignored`).
fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "NOT RUN: {name} is not set: this test needs a service ./scripts/test.sh starts \
             (S3 server, OCI registries, Docker daemon) or a tool it installs"
        )
    })
}

/// The S3 server started by the test script.
pub fn s3_endpoint() -> String {
    service_env("SPACKTAINERIZAH_TEST_S3_ENDPOINT")
}

/// Variables holding the test key pair (names, as the tools take them).
pub const ACCESS_KEY_VAR: &str = "SPACKTAINERIZAH_TEST_ACCESS_KEY";
pub const SECRET_KEY_VAR: &str = "SPACKTAINERIZAH_TEST_SECRET_KEY";

/// S3 options for the test server, with the key pair read from the named variables.
pub fn s3_options() -> S3Options {
    S3Options {
        endpoint_url: Some(s3_endpoint()),
        region: Some("us-east-1".into()),
        access_key_env: Some(ACCESS_KEY_VAR.into()),
        secret_key_env: Some(SECRET_KEY_VAR.into()),
    }
}

/// `host:port` of the test registry.
pub fn registry() -> String {
    service_env("SPACKTAINERIZAH_TEST_REGISTRY")
}

/// `unix://…` socket of the test Docker daemon.
pub fn docker_host() -> String {
    service_env("SPACKTAINERIZAH_TEST_DOCKER_HOST")
}

/// The real Debian base image the test command made (debootstrap, imported, pushed to the
/// test registry): the `os_image` of real base images.
pub fn os_image() -> String {
    service_env("SPACKTAINERIZAH_TEST_OS_IMAGE")
}

/// The Debian base as an index of its amd64 and arm64 images, when arm64 code runs here; else
/// why not (the test command could not register the emulator).
pub fn multiarch_os_image() -> Result<String, String> {
    if let Ok(why) = std::env::var("SPACKTAINERIZAH_TEST_ARM64_NOT_RUN") {
        return Err(why);
    }
    Ok(service_env("SPACKTAINERIZAH_TEST_OS_IMAGE_MULTIARCH"))
}

/// The Debian base of one architecture (`amd64`, `arm64`), a single-platform image; for arm64
/// only when arm64 code runs here, else why not.
pub fn os_image_for(arch: &str) -> Result<String, String> {
    match arch {
        "amd64" => Ok(os_image()),
        "arm64" => {
            multiarch_os_image()?;
            Ok(service_env("SPACKTAINERIZAH_TEST_OS_IMAGE_ARM64"))
        }
        _ => Err(format!("no Debian base for {arch}")),
    }
}

/// The five tools cross-compiled for arm64 (`aarch64-unknown-linux-gnu`), which the test command
/// builds when arm64 code runs here; else why there are none.
pub fn arm64_tools_dir() -> Result<PathBuf, String> {
    multiarch_os_image()?;
    if let Ok(why) = std::env::var("SPACKTAINERIZAH_TEST_TOOLS_ARM64_NOT_RUN") {
        return Err(why);
    }
    let dir = PathBuf::from(
        std::env::var("SPACKTAINERIZAH_TEST_TOOLS_ARM64").map_err(|_| {
            "SPACKTAINERIZAH_TEST_TOOLS_ARM64 is not set: ./scripts/test.sh cross-compiles the \
         arm64 tools"
                .to_string()
        })?,
    );
    match model::commands::TOOLS
        .iter()
        .find(|t| !dir.join(t).is_file())
    {
        Some(t) => Err(format!("{} is missing", dir.join(t).display())),
        None => Ok(dir),
    }
}

/// This machine's extra CA certificates (a TLS-inspecting proxy in front of PyPI, say), which
/// images built here must trust as the site's `ca_certificates`.
pub fn host_ca_certificates() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/local/share/ca-certificates")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "crt"))
        .collect();
    found.sort();
    found
}

/// `docker run --rm IMAGE sh -c SCRIPT` on the test daemon; returns the output, panicking with
/// it when the script fails.
pub fn docker_run(image: &str, script: &str) -> String {
    docker_run_on(None, image, script)
}

/// [`docker_run`] for `platform` (`linux/arm64`): the daemon pulls that platform's image of an
/// index and runs it, under emulation when it is not this machine's.
pub fn docker_run_on(platform: Option<&str>, image: &str, script: &str) -> String {
    let platform: Vec<String> = platform
        .map(|p| {
            vec![
                "--pull".into(),
                "always".into(),
                "--platform".into(),
                p.into(),
            ]
        })
        .unwrap_or_default();
    let out = std::process::Command::new("docker")
        .env("DOCKER_HOST", docker_host())
        .args(["run", "--rm"])
        .args(&platform)
        .args(["--entrypoint", "/bin/sh", image, "-c", script])
        .output()
        .expect("the docker client is installed by the test command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{image}: {script}: {text}");
    text
}

/// Run `git ARGS` in `dir` with a fixed identity and `main` as the first branch, whatever the
/// machine's git configuration; a failure stops the test with git's message.
pub fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@e"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bucket name no other test uses (tests run in parallel, in several processes).
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A raw S3 client on the test server, for setting up and inspecting buckets directly.
pub async fn raw_s3() -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new(
        service_env(ACCESS_KEY_VAR),
        service_env(SECRET_KEY_VAR),
        None,
        None,
        "tests",
    );
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(s3_endpoint())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Create a fresh bucket and return its name.
pub async fn new_bucket(prefix: &str) -> String {
    let name = unique_name(prefix);
    raw_s3()
        .await
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating bucket {name}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
    name
}

/// Open the store at `url` (S3 URLs on the test server).
pub async fn open_store(url: &str) -> Store {
    let url: StoreUrl = url.parse().expect("valid store URL");
    // Directory stores need no service: only ask for the S3 server when the URL is one.
    let opts = match url {
        StoreUrl::S3 { .. } => s3_options(),
        StoreUrl::Dir(_) => S3Options::default(),
    };
    Store::open(&url, &opts).await.expect("open store")
}

/// Upload every file under `dir` to `store`, keys relative to `dir`.
pub async fn upload_dir(store: &Store, dir: &Path) {
    for entry in walk(dir) {
        let key = entry
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let bytes = std::fs::read(&entry).unwrap();
        store
            .put(&key, bytes, &Default::default(), &Default::default())
            .await
            .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
    }
}

/// Every file below `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Copy a directory tree (fixtures are read-only in the workplace; copies are writable).
pub fn copy_dir(src: &Path, dst: &Path) {
    for file in walk(src) {
        let target = dst.join(file.strip_prefix(src).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, &target).unwrap();
        let mut perms = std::fs::metadata(&target).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&target, perms).unwrap();
    }
}

fn gitlab_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("schemas/gitlab-ci.json")).unwrap();
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        jsonschema::draft7::new(&schema).expect("GitLab's schema compiles")
    })
}

/// Validate a pipeline (YAML text) against GitLab's own CI schema; the errors name the place.
pub fn validate_gitlab_ci(yaml_text: &str) -> Result<(), Vec<String>> {
    let value: serde_norway::Value =
        serde_norway::from_str(yaml_text).map_err(|e| vec![e.to_string()])?;
    let json = serde_json::to_value(value).map_err(|e| vec![e.to_string()])?;
    let errors: Vec<String> = gitlab_validator()
        .iter_errors(&json)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The flags that point a tool at the test S3 server, with the key pair by variable name.
pub fn s3_cli_args() -> Vec<String> {
    [
        "--s3-endpoint-url",
        &s3_endpoint(),
        "--access-key-env",
        ACCESS_KEY_VAR,
        "--secret-key-env",
        SECRET_KEY_VAR,
    ]
    .map(String::from)
    .to_vec()
}

/// `host:port` of the test registry that wants a login, and that login's variable names.
pub fn auth_registry() -> String {
    service_env("SPACKTAINERIZAH_TEST_AUTH_REGISTRY")
}
pub const REGISTRY_USER_VAR: &str = "SPACKTAINERIZAH_TEST_REGISTRY_USER";
pub const REGISTRY_PASSWORD_VAR: &str = "SPACKTAINERIZAH_TEST_REGISTRY_PASSWORD";

fn run(cmd: &mut std::process::Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Make a small image for `arch` with `labels` locally (umoci, no pull) and push it to
/// `registry/repository:tag` with skopeo; `creds` is `user:password` for a registry that wants
/// a login.
pub fn push_test_image(
    registry: &str,
    repository: &str,
    tag: &str,
    arch: &str,
    labels: &[(&str, &str)],
    creds: Option<&str>,
) {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("oci");
    let image = format!("{}:img", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    let mut config = Command::new("umoci");
    config.args([
        "config",
        "--image",
        &image,
        "--os",
        "linux",
        "--architecture",
        arch,
    ]);
    for (k, v) in labels {
        config.args(["--config.label", &format!("{k}={v}")]);
    }
    run(&mut config);
    let mut copy = Command::new("skopeo");
    copy.args(["copy", "--quiet", "--dest-tls-verify=false"]);
    if let Some(c) = creds {
        copy.args(["--dest-creds", c]);
    }
    run(copy
        .arg(format!("oci:{image}"))
        .arg(format!("docker://{registry}/{repository}:{tag}")));
}

/// `host:port` of the test registry with token auth (same login as [`auth_registry`]).
pub fn token_registry() -> String {
    service_env("SPACKTAINERIZAH_TEST_TOKEN_REGISTRY")
}

/// The reference `siftool` the test script builds from Debian's sif sources.
pub fn siftool() -> PathBuf {
    PathBuf::from(service_env("SPACKTAINERIZAH_TEST_SIFTOOL"))
}

/// Split a shell command line into the words a POSIX shell passes on: single quotes, double
/// quotes (with `$NAME` and `${NAME}` looked up in `env`), backslash escapes. Enough for the
/// lines the generators write; anything else (globs, `;`, `|`) is refused.
pub fn shell_words(line: &str, env: &dyn Fn(&str) -> String) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let var = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> String {
        let mut name = String::new();
        if chars.peek() == Some(&'{') {
            chars.next();
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
                name.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
        }
        env(&name)
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated ' in {line}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('$') => cur.push_str(&var(&mut chars)),
                        Some('\\') => cur.push(chars.next().unwrap_or('\\')),
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated \" in {line}")),
                    }
                }
            }
            '$' => {
                in_word = true;
                cur.push_str(&var(&mut chars));
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next().unwrap_or('\\'));
            }
            ';' | '|' | '&' | '*' | '?' | '`' | '<' | '>' => {
                return Err(format!("`{c}` in {line}: not a plain command line"));
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// The folder holding the five tools of this build (`target/<profile>`, beside the test
/// executables' `deps/`): what images get as their tools.
pub fn tools_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf();
    for tool in model::commands::TOOLS {
        assert!(
            dir.join(tool).is_file(),
            "{} is missing: build the workspace first (`cargo test --workspace` does)",
            dir.join(tool).display()
        );
    }
    dir
}

/// One of the tools, to run as a user runs it: `tool(env!("CARGO_BIN_EXE_spackitor"))`.
pub fn tool(bin: &str) -> std::process::Command {
    std::process::Command::new(bin)
}

/// Run `bin` with `args`, its output captured.
pub fn run_tool<I, S>(bin: &str, args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    tool(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"))
}

/// The stdout of a run that must have succeeded; a failure panics with its stderr.
pub fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
