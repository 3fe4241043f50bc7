//! Real Spack for tests: the release archives in the workplace's shared tools, extracted once
//! into the cache folder and configured to run offline (clingo from the test virtualenv, no
//! bootstrapping, the system gcc as compiler). Each test gets its own user config and caches.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the workplace's shared tools are (`SPACKTAINERIZAH_SHARED_TOOLS`, set by the test
/// script when `../shared/tools` exists beside the checkout).
pub fn shared_tools() -> Option<PathBuf> {
    std::env::var_os("SPACKTAINERIZAH_SHARED_TOOLS")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
}

/// Stop `test`, which needs what the machine does not have: a failure, not a pass. Such tests
/// are `#[ignore]`d, so this only happens under `--include-ignored` without the test script.
pub fn not_run(test: &str, why: &str) -> ! {
    panic!("NOT RUN: {test}: {why}")
}

/// The Spack versions the shared tools hold: 0.23.1 writes build-cache layout v2, 1.0.2 v3.
pub const V0_23: &str = "0.23.1";
pub const V1_0: &str = "1.0.2";

/// A Spack release extracted and configured, ready to run.
#[derive(Debug, Clone)]
pub struct Spack {
    pub version: String,
    /// The extracted tree (`SPACK_ROOT`).
    pub root: PathBuf,
    /// spack-packages' builtin repository (1.x only).
    pub builtin: Option<PathBuf>,
}

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache"));
    base.join("spacktainerizah/spack")
}

/// The Python with clingo and boto3 that Spack runs under.
pub fn python() -> PathBuf {
    PathBuf::from(std::env::var("SPACKTAINERIZAH_TEST_PYTHON").expect(
        "NOT RUN: SPACKTAINERIZAH_TEST_PYTHON is not set: Spack runs under the Python with \
         clingo and boto3 that ./scripts/test.sh installs",
    ))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Spack {
    /// Spack `version` from the shared tools, extracted and configured once per machine (under
    /// a lock, so parallel tests share it); `None` when the shared tools are not there.
    pub fn get(version: &str) -> Option<Spack> {
        let tools = shared_tools()?.join("spack");
        let archive = tools.join(format!("spack-{version}.tar.xz"));
        if !archive.is_file() {
            return None;
        }
        let dir = cache_dir().join(version);
        std::fs::create_dir_all(&dir).unwrap();
        let lock = std::fs::File::create(dir.join(".lock")).unwrap();
        lock.lock().unwrap();
        let root = dir.join(format!("spack-{version}"));
        let packages = (!version.starts_with("0."))
            .then(|| dir.join("spack-packages-2025.07/repos/spack_repo/builtin"));
        let spack = Spack {
            version: version.to_string(),
            root: root.clone(),
            builtin: packages.clone(),
        };
        if !dir.join(".ready").exists() {
            let _ = std::fs::remove_dir_all(&root);
            run(Command::new("tar")
                .arg("-C")
                .arg(&dir)
                .arg("-xJf")
                .arg(&archive));
            if packages.is_some() {
                run(Command::new("tar")
                    .arg("-C")
                    .arg(&dir)
                    .arg("-xJf")
                    .arg(tools.join("spack-packages-2025.07.tar.xz")));
            }
            spack.configure();
            std::fs::write(dir.join(".ready"), "").unwrap();
        }
        Some(spack)
    }

    /// The instance scope (`etc/spack`): no bootstrapping, the builtin repository (1.x) and the
    /// system gcc, found with a short PATH (a long one makes `compiler find` take a minute).
    fn configure(&self) {
        let etc = self.root.join("etc/spack");
        std::fs::write(etc.join("bootstrap.yaml"), "bootstrap:\n  enable: false\n").unwrap();
        if let Some(b) = &self.builtin {
            std::fs::write(
                etc.join("repos.yaml"),
                format!("repos::\n  builtin: {}\n", b.display()),
            )
            .unwrap();
        }
        let home = tempfile::tempdir().unwrap();
        run(self
            .command(home.path())
            .args(["compiler", "find", "--scope", "site"]));
    }

    /// `spack` with this test's own user config and caches under `home`, offline.
    pub fn command(&self, home: &Path) -> Command {
        let mut cmd = Command::new(self.root.join("bin/spack"));
        cmd.env("SPACK_PYTHON", python())
            .env("SPACK_DISABLE_LOCAL_CONFIG", "1")
            .env("SPACK_USER_CONFIG_PATH", home.join("user"))
            .env("SPACK_USER_CACHE_PATH", home.join("cache"))
            .env("PATH", "/usr/bin:/bin")
            .env_remove("SPACK_ROOT");
        // Spack's S3 client (boto3) reads the endpoint from here, the keys from AWS_*.
        if let Ok(endpoint) = std::env::var("SPACKTAINERIZAH_TEST_S3_ENDPOINT") {
            cmd.env("S3_ENDPOINT_URL", endpoint);
        }
        cmd
    }

    /// Run `spack ARGS` and return its stdout; a failure panics with its output.
    pub fn run(&self, home: &Path, args: &[&str]) -> String {
        let out = self
            .command(home)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("spack {args:?}: {e}"));
        assert!(
            out.status.success(),
            "spack {} {args:?}: {}{}",
            self.version,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The build-cache layout this version writes.
    pub fn layout(&self) -> &'static str {
        if self.version.starts_with("0.") {
            "v2"
        } else {
            "v3"
        }
    }
}

/// The example package repository (`examples/packages`): greetlib, greeter, greeter-banner.
pub fn examples_repo() -> PathBuf {
    crate::repo_root().join("examples/packages")
}

/// sha256 over every file of `dir` (relative path and content), for cache keys.
fn tree_hash(dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in crate::walk(dir) {
        h.update(f.strip_prefix(dir).unwrap().to_string_lossy().as_bytes());
        h.update(std::fs::read(&f).unwrap());
    }
    hex::encode(h.finalize())[..16].to_string()
}

impl Spack {
    /// A configuration scope (for `spack -C DIR`) that installs under `install_root` and knows
    /// the example packages.
    pub fn scope(&self, dir: &Path, install_root: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("config.yaml"),
            format!(
                "config:\n  install_tree:\n    root: {}\n  build_jobs: 2\n",
                install_root.display()
            ),
        )
        .unwrap();
        let repo = examples_repo();
        let repos = if self.version.starts_with("0.") {
            format!("repos:\n- {}\n", repo.display())
        } else {
            format!("repos:\n  examples: {}\n", repo.display())
        };
        std::fs::write(dir.join("repos.yaml"), repos).unwrap();
        dir.to_path_buf()
    }

    /// A real build cache of `greeter` and its dependencies, made by this Spack (install, then
    /// `buildcache push --unsigned --update-index`): built once per machine and example
    /// repository, then only copied. Returns the read-only original; copy it before changing.
    pub fn examples_mirror(&self) -> PathBuf {
        let dir = cache_dir().join("mirrors").join(format!(
            "{}-{}",
            self.version,
            tree_hash(&examples_repo())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let lock = std::fs::File::create(dir.join(".lock")).unwrap();
        lock.lock().unwrap();
        let mirror = dir.join("mirror");
        if !dir.join(".ready").exists() {
            let _ = std::fs::remove_dir_all(&mirror);
            let work = tempfile::tempdir().unwrap();
            let scope = self.scope(&work.path().join("scope"), &work.path().join("opt"));
            let scope = scope.to_str().unwrap();
            let home = work.path().join("home");
            self.run(
                &home,
                &["-C", scope, "install", "-j2", "greeter", "target=x86_64"],
            );
            let url = format!("file://{}", mirror.display());
            self.run(
                &home,
                &[
                    "-C",
                    scope,
                    "buildcache",
                    "push",
                    "--unsigned",
                    "--update-index",
                    &url,
                    "greeter",
                ],
            );
            std::fs::write(dir.join(".ready"), "").unwrap();
        }
        mirror
    }
}
