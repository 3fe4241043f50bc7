//! The build context of a Spack container and the environment it is installed from, made
//! ready for the build: an install tree of its own (outside Spack's checkout) and its software
//! on `PATH` through a view, its package repositories copied into the context, the build cache
//! stage 2 filled as its only mirror (a directory cache copied into the context and
//! bind-mounted, never a layer), and where the definition's copied files sit in it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use model::definitions::FileCopy;
use model::spack::environment::Environment;
use model::yaml::{Mapping, Value};

/// The view every container's software is linked into (Spack's own `containerize` layout).
pub const VIEWS: &str = "/opt/views";
pub const VIEW: &str = "/opt/views/view";
/// Where the package repositories go in the builder stage.
pub const REPOS: &str = "/opt/spacktainerizah/repos";
/// Where a directory build cache is mounted in the builder stage.
pub const CACHE_MOUNT: &str = "/opt/spacktainerizah/build-cache";
/// The install tree of an environment that names none (Spack's own default is inside its
/// checkout, which the runtime stage must not copy).
pub const DEFAULT_INSTALL_TREE: &str = "/opt/software";
/// The mirror stage 2 uploads to (`spack-cacher prepare` writes it).
const UPLOAD_MIRROR: &str = "buildcache-destination";

/// What the Dockerfile needs to know of the context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// `repos/` holds package repositories to copy in.
    pub repos: bool,
    /// `build-cache/` holds a directory build cache to mount.
    pub local_cache: bool,
    /// The build cache's key pair comes as BuildKit secrets.
    pub secrets: bool,
}

/// Rewrite `env` (read from `env_path`) for the build and write what it needs under `dir`;
/// returns the environment to put in the context and the layout.
pub fn prepare(
    env_path: &Path,
    env: &Environment,
    dir: &Path,
    secrets: bool,
) -> anyhow::Result<(Environment, Layout)> {
    let mut env = env.clone();
    if install_tree(&env).is_none() {
        set_install_tree(&mut env, DEFAULT_INSTALL_TREE);
    }
    let base = env_path.parent().unwrap_or(Path::new("."));
    let mut layout = Layout {
        secrets,
        ..Layout::default()
    };
    let spack = env.spack_mut();
    spack.insert(s("view"), s(VIEW));
    if let Some(repos) = spack.get_mut(s("repos")) {
        let lookup = |name: &str| std::env::var(name).ok();
        layout.repos = copy_repos(repos, base, &dir.join("repos"), &lookup)
            .with_context(|| format!("the package repositories of {}", env_path.display()))?;
    }
    let mirror = install_mirror(spack, env_path, &dir.join("build-cache"))?;
    layout.local_cache = mirror.local;
    // `mirrors::` replaces every other mirror (the builder's own among them): the container
    // installs exactly what stage 2 built for it.
    spack.remove(s("mirrors"));
    spack.insert(
        s("mirrors:"),
        Value::Mapping(Mapping::from_iter([(s("build-cache"), mirror.config)])),
    );
    Ok((env, layout))
}

/// The install tree root the environment sets (`config.install_tree.root`).
pub fn install_tree(env: &Environment) -> Option<&str> {
    env.doc
        .get("spack")
        .and_then(|s| s.get("config"))
        .and_then(|c| c.get("install_tree"))
        .and_then(|t| t.get("root").or(Some(t)))
        .and_then(Value::as_str)
}

/// Where the `i`th file or folder a definition copies sits in the context, under its own name:
/// `files/<i>/<name>`.
pub fn copied_file(i: usize, copy: &FileCopy) -> String {
    let name = copy
        .source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("files/{i}/{name}")
}

/// `config: install_tree: root:` of `env`, keeping the rest of its `config`.
fn set_install_tree(env: &mut Environment, root: &str) {
    let config = env
        .spack_mut()
        .entry(s("config"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if !config.is_mapping() {
        *config = Value::Mapping(Mapping::new());
    }
    if let Some(c) = config.as_mapping_mut() {
        c.insert(
            s("install_tree"),
            Value::Mapping(Mapping::from_iter([(s("root"), s(root))])),
        );
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// Copy each package repository into `to/<i>` and point the entry there; entries in Spack's
/// own tree (`$spack/…`) stay. Returns whether anything was copied.
fn copy_repos(
    repos: &mut Value,
    base: &Path,
    to: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<bool> {
    let mut copied = 0;
    let mut rewrite = |v: &mut Value| -> anyhow::Result<()> {
        let Some(path) = v.as_str() else {
            return Ok(());
        };
        if path.starts_with("$spack") {
            return Ok(());
        }
        let source = base.join(expand(path, lookup)?);
        if !source.is_dir() {
            bail!(
                "package repository `{path}`: {} is not a folder",
                source.display()
            );
        }
        let target = to.join(copied.to_string());
        copy_tree(&source, &target)?;
        *v = s(&format!("{REPOS}/{copied}"));
        copied += 1;
        Ok(())
    };
    match repos {
        Value::Sequence(items) => items.iter_mut().try_for_each(&mut rewrite)?,
        Value::Mapping(m) => m.values_mut().try_for_each(&mut rewrite)?,
        _ => bail!("`spack: repos:` is neither a list nor a mapping"),
    }
    Ok(copied > 0)
}

/// `$VAR` and `${VAR}` from `lookup` (the process environment), as Spack expands them in the
/// job that wrote them.
fn expand(path: &str, lookup: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<PathBuf> {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(inner) => {
                let end = inner
                    .find('}')
                    .with_context(|| format!("`{path}`: unclosed ${{"))?;
                (&inner[..end], &inner[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        let value =
            lookup(name).with_context(|| format!("`{path}` names ${name}, which is not set"))?;
        out.push_str(&value);
        rest = tail;
    }
    out.push_str(rest);
    Ok(PathBuf::from(out))
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target)
                .with_context(|| format!("creating {}", target.display()))?;
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

struct InstallMirror {
    config: Value,
    local: bool,
}

/// The build cache the environment's upload mirror names, read-only and signed as it is,
/// without the key pair's variable names (the build exports the pair as `AWS_*` from its
/// secrets); a directory cache is copied to `local_copy` and named by its mount point.
fn install_mirror(
    spack: &Mapping,
    env_path: &Path,
    local_copy: &Path,
) -> anyhow::Result<InstallMirror> {
    let upload = spack
        .get(s("mirrors"))
        .and_then(|m| m.get(UPLOAD_MIRROR))
        .with_context(|| {
            format!(
                "{} has no `{UPLOAD_MIRROR}` mirror: it is not an environment `spack-cacher prepare` wrote",
                env_path.display()
            )
        })?;
    let url = upload
        .as_str()
        .or_else(|| upload.get("url").and_then(Value::as_str))
        .with_context(|| {
            format!(
                "{}: mirror `{UPLOAD_MIRROR}` has no url",
                env_path.display()
            )
        })?;
    let mut config = Mapping::new();
    let local = match url.strip_prefix("file://") {
        Some(path) => {
            let path = Path::new(path);
            if !path.is_dir() {
                bail!(
                    "the build cache {url} ({}) is not a folder here",
                    env_path.display()
                );
            }
            copy_tree(path, local_copy)?;
            config.insert(s("url"), s(&format!("file://{CACHE_MOUNT}")));
            true
        }
        None => {
            config.insert(s("url"), s(url));
            if let Some(e) = upload.get("endpoint_url") {
                config.insert(s("endpoint_url"), e.clone());
            }
            false
        }
    };
    config.insert(s("binary"), Value::Bool(true));
    config.insert(s("source"), Value::Bool(false));
    // Signed where stage 2 signs (`spack-cacher prepare` says so on the upload mirror): the
    // installation then checks every package's signature against the keys the builder
    // trusts, and a tampered package or spec file fails the build.
    let signed = upload
        .get("signed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    config.insert(s("signed"), Value::Bool(signed));
    Ok(InstallMirror {
        config: Value::Mapping(config),
        local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(dir: &Path, text: &str) -> (PathBuf, Environment) {
        let path = dir.join("env/spack.yaml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        let e = Environment::read(&path).unwrap();
        (path, e)
    }

    #[test]
    fn a_directory_cache_and_the_repositories_go_into_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(cache.join("build_cache")).unwrap();
        std::fs::write(cache.join("build_cache/index.json"), "{}").unwrap();
        let repo = dir.path().join("packages");
        std::fs::create_dir_all(repo.join("packages/hello")).unwrap();
        std::fs::write(repo.join("repo.yaml"), "repo:\n  namespace: x\n").unwrap();
        let (path, e) = env(
            dir.path(),
            &format!(
                "spack:\n  specs: [hello]\n  view: false\n  repos:\n  - {}\n  - $spack/var/spack/repos/builtin\n  mirrors:\n    buildcache-destination:\n      url: file://{}\n      access_pair:\n        id_variable: K\n        secret_variable: S\n",
                repo.display(),
                cache.display()
            ),
        );
        let context = dir.path().join("context");
        let (out, layout) = prepare(&path, &e, &context, false).unwrap();
        assert_eq!(
            layout,
            Layout {
                repos: true,
                local_cache: true,
                secrets: false
            }
        );
        let text = out.to_yaml();
        assert!(text.contains("view: /opt/views/view"), "{text}");
        // Spack's default tree is inside its checkout: the container gets one of its own.
        assert!(text.contains("root: /opt/software"), "{text}");
        assert!(text.contains("- /opt/spacktainerizah/repos/0"), "{text}");
        assert!(text.contains("$spack/var/spack/repos/builtin"), "{text}");
        assert!(
            text.contains("url: file:///opt/spacktainerizah/build-cache"),
            "{text}"
        );
        assert!(!text.contains("id_variable"), "{text}");
        assert!(context.join("repos/0/repo.yaml").is_file());
        assert!(context.join("build-cache/build_cache/index.json").is_file());
    }

    #[test]
    fn variables_are_expanded_as_spack_expands_them() {
        let lookup = |name: &str| (name == "CI_PROJECT_DIR").then(|| "/builds/p".to_string());
        for (path, want) in [
            ("$CI_PROJECT_DIR/packages", "/builds/p/packages"),
            ("${CI_PROJECT_DIR}/packages", "/builds/p/packages"),
            ("${CI_PROJECT_DIR}", "/builds/p"),
            ("relative/repo", "relative/repo"),
        ] {
            assert_eq!(
                expand(path, &lookup).unwrap(),
                PathBuf::from(want),
                "{path}"
            );
        }
        let err = format!("{:#}", expand("$STZ_UNSET/packages", &lookup).unwrap_err());
        assert!(err.contains("$STZ_UNSET"), "{err}");
        assert!(expand("${CI_PROJECT_DIR", &lookup).is_err());
    }

    #[test]
    fn an_s3_cache_keeps_its_endpoint_and_a_relative_repository_is_found_beside_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("env/packages")).unwrap();
        let (path, e) = env(
            dir.path(),
            "spack:\n  repos:\n    examples: packages\n  mirrors:\n    buildcache-destination:\n      url: s3://bucket\n      endpoint_url: http://s3.example\n",
        );
        let (out, layout) = prepare(&path, &e, &dir.path().join("ctx"), true).unwrap();
        assert!(layout.repos && !layout.local_cache && layout.secrets);
        let text = out.to_yaml();
        assert!(
            text.contains("examples: /opt/spacktainerizah/repos/0"),
            "{text}"
        );
        assert!(text.contains("endpoint_url: http://s3.example"), "{text}");
        assert!(text.contains("signed: false"), "{text}");
    }

    #[test]
    fn a_signed_cache_is_installed_from_with_signature_checks() {
        let dir = tempfile::tempdir().unwrap();
        let (path, e) = env(
            dir.path(),
            "spack:\n  mirrors:\n    buildcache-destination:\n      url: s3://bucket\n      signed: true\n",
        );
        let (out, _) = prepare(&path, &e, &dir.path().join("ctx"), true).unwrap();
        let mirror = &out.doc["spack"]["mirrors:"]["build-cache"];
        assert_eq!(mirror["signed"].as_bool(), Some(true), "{mirror:?}");
    }

    #[test]
    fn an_environment_prepare_did_not_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, e) = env(dir.path(), "spack:\n  specs: [zlib]\n");
        let err = format!("{:#}", prepare(&path, &e, dir.path(), false).unwrap_err());
        assert!(err.contains("buildcache-destination"), "{err}");
    }
}
