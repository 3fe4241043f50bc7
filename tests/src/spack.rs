//! Real Spack for tests: the release archives in the workplace's shared tools, extracted once
//! into the cache folder and configured to run offline (clingo from the test virtualenv, no
//! bootstrapping, the system gcc as compiler). Each test gets its own user config, caches and
//! gpg home.

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
            // Spack's keys otherwise live in the shared extracted tree (`opt/spack/gpg`).
            .env("SPACK_GNUPGHOME", home.join("gnupg"))
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
        self.examples_build().join("mirror")
    }

    /// The folder of [`Spack::examples_mirror`]: `mirror`, and `opt`, the install tree it was
    /// pushed from, kept so that [`Spack::signed_examples_mirror`] pushes the same installs
    /// again instead of installing them once more.
    fn examples_build(&self) -> PathBuf {
        let dir = cache_dir().join("mirrors").join(format!(
            "{}-{}",
            self.version,
            tree_hash(&examples_repo())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let lock = std::fs::File::create(dir.join(".lock")).unwrap();
        lock.lock().unwrap();
        let mirror = dir.join("mirror");
        let opt = dir.join("opt");
        // A folder made before the install tree was kept has no `opt`: made again.
        if !dir.join(".ready").exists() || !opt.is_dir() {
            let _ = std::fs::remove_file(dir.join(".ready"));
            let _ = std::fs::remove_dir_all(&mirror);
            let _ = std::fs::remove_dir_all(&opt);
            let work = tempfile::tempdir().unwrap();
            let scope = self.scope(&work.path().join("scope"), &opt);
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
        dir
    }
}

/// Spack runs gpg only with bootstrapping enabled, even when `gpg` is on the PATH and nothing
/// is bootstrapped (`util/gpg.py: init` enters `ensure_bootstrap_configuration`, whose
/// `bootstrap/config.py: store_path` raises "bootstrapping is currently disabled"): the
/// arguments that enable it for one command, which then finds the host's gpg.
pub const GPG_ENABLED: [&str; 2] = ["-c", "bootstrap:enable:true"];

/// The key the signed example mirrors are signed with: made once per machine by the host's
/// GnuPG (a test key, no passphrase, kept beside the mirrors).
pub fn signing_key() -> crate::gpg::Key {
    let dir = cache_dir().join("mirrors/signing-key");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.join(".lock")).unwrap();
    lock.lock().unwrap();
    let fingerprint = dir.join("fingerprint");
    if !dir.join(".ready").exists() {
        let key = crate::gpg::Keyring::new().create("spack-mirror", &dir);
        std::fs::write(&fingerprint, &key.fingerprint).unwrap();
        std::fs::write(dir.join("signing-subkey"), &key.signing_subkey).unwrap();
        std::fs::write(dir.join(".ready"), "").unwrap();
    }
    crate::gpg::Key {
        fingerprint: std::fs::read_to_string(fingerprint).unwrap(),
        signing_subkey: std::fs::read_to_string(dir.join("signing-subkey")).unwrap(),
        public: dir.join("spack-mirror.pub.asc"),
        secret: dir.join("spack-mirror.secret.asc"),
    }
}

impl Spack {
    /// Trust `key` in the gpg home of `home` (`spack gpg trust`): with its secret key, Spack
    /// signs with it; with its public key, Spack accepts what it signed.
    pub fn trust(&self, home: &Path, key_file: &Path) {
        let gnupg = home.join("gnupg");
        std::fs::create_dir_all(&gnupg).unwrap();
        std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        self.run(
            home,
            &[
                GPG_ENABLED[0],
                GPG_ENABLED[1],
                "gpg",
                "trust",
                key_file.to_str().unwrap(),
            ],
        );
    }

    /// Stop the gpg-agent Spack's gpg started for `home`.
    pub fn stop_gpg(&self, home: &Path) {
        crate::gpg::stop_agent(&home.join("gnupg"));
    }

    /// The example mirror of [`Spack::examples_mirror`], pushed again signed with
    /// [`signing_key`] (`buildcache push --key` from the install tree the unsigned one was
    /// pushed from; without the build-only dependencies, as a cache made from binary installs
    /// has them not): built once per machine, example repository and key. Returns the read-only
    /// original and the key.
    pub fn signed_examples_mirror(&self) -> (PathBuf, crate::gpg::Key) {
        let key = signing_key();
        let build = self.examples_build();
        let dir = cache_dir().join("mirrors").join(format!(
            "{}-{}-signed-{}",
            self.version,
            tree_hash(&examples_repo()),
            &key.fingerprint[..16]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let lock = std::fs::File::create(dir.join(".lock")).unwrap();
        lock.lock().unwrap();
        let mirror = dir.join("mirror");
        if !dir.join(".ready").exists() {
            let _ = std::fs::remove_dir_all(&mirror);
            let work = tempfile::tempdir().unwrap();
            // Only read: the unsigned mirror's lock is not held, and nothing else writes there.
            let scope = self.scope(&work.path().join("scope"), &build.join("opt"));
            let scope = scope.to_str().unwrap();
            let home = work.path().join("home");
            self.trust(&home, &key.secret);
            let to = format!("file://{}", mirror.display());
            let pushed = std::panic::catch_unwind(|| {
                self.run(
                    &home,
                    &[
                        GPG_ENABLED[0],
                        GPG_ENABLED[1],
                        "-C",
                        scope,
                        "buildcache",
                        "push",
                        "--key",
                        &key.fingerprint,
                        // What a cache made from binary installs holds: those leave out
                        // the build-only dependencies (1.x: compiler-wrapper).
                        "--without-build-dependencies",
                        "--update-index",
                        &to,
                        "greeter",
                    ],
                );
            });
            self.stop_gpg(&home);
            if let Err(e) = pushed {
                std::panic::resume_unwind(e);
            }
            std::fs::write(dir.join(".ready"), "").unwrap();
        }
        (mirror, key)
    }
}
