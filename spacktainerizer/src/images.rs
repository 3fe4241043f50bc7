//! The base images — builder, runtime, tools — their build files (carried by the tools
//! themselves, or a folder of the definitions repository that replaces them), the build
//! context each gets, and the inputs that decide a rebuild: a checksum of the build files, the
//! OS image, the Spack commit (looked up with `git ls-remote`, no clone, or the archive's
//! sha256), the compilers and the tools' own checksum.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use model::checksum::{TreeHash, files, relative_name};
use model::config::{Config, SourceConfig};

/// Label suffixes (after the configured namespace) the plan compares.
pub use model::labels::{
    BUILD_FILES_CHECKSUM as LABEL_CHECKSUM, OS_IMAGE as LABEL_OS_IMAGE,
    SPACK_COMMIT as LABEL_SPACK_COMMIT, TOOL_VERSIONS as LABEL_TOOL_VERSIONS,
};
/// The spack-packages commit (or archive checksum) of a Spack ≥ 1.0 builder.
pub const LABEL_SPACK_PACKAGES: &str = "spack-packages-commit";
/// The OS packages of the builder's compilers.
pub const LABEL_COMPILERS: &str = "compilers";

/// The base images, in build order.
pub const IMAGES: [&str; 3] = ["builder", "runtime", "tools"];
/// The tools a builder and a tools image hold.
pub use model::commands::TOOLS;

/// The build files these tools carry: image → (relative path, content).
fn builtin(image: &str) -> &'static [(&'static str, &'static str)] {
    match image {
        "builder" => &[("Dockerfile", include_str!("../images/builder/Dockerfile"))],
        "runtime" => &[("Dockerfile", include_str!("../images/runtime/Dockerfile"))],
        _ => &[("Dockerfile", include_str!("../images/tools/Dockerfile"))],
    }
}

/// One image to build, per architecture.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub name: &'static str,
    /// Its build files: relative path → content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Label suffix → value, the same for every architecture; any difference from the
    /// registry's labels means a rebuild.
    pub inputs: BTreeMap<&'static str, String>,
    /// For an image holding the tools (builder, tools): the checksum of each architecture's
    /// tools (architecture → sha256), those architectures only that have tools.
    pub tools: Option<BTreeMap<String, String>>,
}

impl ImageSpec {
    /// Its inputs for `arch`: the common ones, and the checksum of that architecture's tools
    /// when it holds them; `None` when it holds tools and there are none for `arch`.
    pub fn inputs_for(&self, arch: &str) -> Option<BTreeMap<&'static str, String>> {
        match &self.tools {
            Some(tools) => Some(self.inputs_with_tools(tools.get(arch)?)),
            None => Some(self.inputs.clone()),
        }
    }

    /// Its inputs with `checksum` as its tools' (an architecture whose tools are elsewhere).
    pub fn inputs_with_tools(&self, checksum: &str) -> BTreeMap<&'static str, String> {
        let mut inputs = self.inputs.clone();
        inputs.insert(LABEL_TOOL_VERSIONS, checksum.to_string());
        inputs
    }
}

/// Where the Spack of the builder comes from, resolved.
#[derive(Debug, Clone)]
pub enum SpackTree {
    /// A git repository at a commit.
    Git { repository: String, commit: String },
    /// An archive in the repository: its path, and its sha256.
    Archive { path: PathBuf, sha256: String },
}

impl SpackTree {
    /// What stands for its version in the labels: the commit, or `sha256:<archive checksum>`.
    pub fn id(&self) -> String {
        match self {
            SpackTree::Git { commit, .. } => commit.clone(),
            SpackTree::Archive { sha256, .. } => format!("sha256:{sha256}"),
        }
    }

    /// Resolve `source` (relative archives against `repo`): `git ls-remote` for a branch, the
    /// archive's sha256 otherwise.
    pub fn resolve(repo: &Path, source: &SourceConfig, what: &str) -> anyhow::Result<SpackTree> {
        match (&source.archive, &source.repository) {
            (Some(archive), _) => {
                let path = repo.join(archive);
                let mut h = TreeHash::new();
                h.file("archive", &path)
                    .with_context(|| format!("{what}: reading {}", path.display()))?;
                Ok(SpackTree::Archive {
                    path,
                    sha256: h.finish(),
                })
            }
            (None, Some(repository)) => {
                let branch = source.branch.as_deref().unwrap_or("develop");
                Ok(SpackTree::Git {
                    repository: repository.clone(),
                    commit: host::git::branch_head(repository, branch)?,
                })
            }
            (None, None) => bail!("{what}: give a `repository` (and `branch`) or an `archive`"),
        }
    }
}

/// The build files of `image`: the folder `build_files/<image>` of the repository when the
/// configuration names one, else the tools' own.
fn build_files(
    repo: &Path,
    cfg: &Config,
    image: &str,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let Some(dir) = &cfg.base_images.build_files else {
        return Ok(builtin(image)
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect());
    };
    let folder = repo.join(dir).join(image);
    let found = files(&folder).with_context(|| format!("reading {}", folder.display()))?;
    if found.is_empty() {
        bail!("{} has no build files", folder.display());
    }
    found
        .into_iter()
        .map(|f| {
            let content = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
            Ok((relative_name(&f, &folder), content))
        })
        .collect()
}

/// Where the builder's build context holds the public key it trusts.
pub const DEPLOYMENT_KEY: &str = "deployment_key.pub";

/// What the images are made from besides their build files: the Spack trees (resolved only
/// when the builder or runtime is wanted) and the tools' checksum.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub spack: Option<SpackTree>,
    pub spack_packages: Option<SpackTree>,
    /// sha256 over each architecture's tools (architecture → checksum), for the
    /// architectures that have tools: an arm64 image carries other executables than an amd64
    /// one, and each is rebuilt when its own change.
    pub tools: BTreeMap<String, String>,
    /// The public key(s) the builder trusts (empty: none). A build file of the builder, so a
    /// rotated key rebuilds it: a builder trusting the old key could install nothing signed
    /// with the new one, and would go on trusting a revoked one.
    pub deployment_key: Vec<u8>,
}

/// The images `wanted` (all when empty), with their inputs; `on_default` when they are the
/// default branch's (the builder's mirror is then the production cache).
pub fn images(
    repo: &Path,
    cfg: &Config,
    wanted: &[String],
    on_default: bool,
    inputs: impl FnOnce(bool) -> anyhow::Result<Inputs>,
) -> anyhow::Result<Vec<ImageSpec>> {
    let wanted: Vec<&str> = if wanted.is_empty() {
        IMAGES.to_vec()
    } else {
        wanted.iter().map(String::as_str).collect()
    };
    if let Some(bad) = wanted.iter().find(|w| !IMAGES.contains(w)) {
        bail!(
            "unknown image `{bad}` (expected one of {})",
            IMAGES.join(", ")
        );
    }
    let needs_spack = wanted.iter().any(|w| *w != "tools");
    let inputs = inputs(needs_spack)?;
    let base = &cfg.base_images;
    let certificates = ca_certificates(repo, cfg)?;
    let mut out = Vec::new();
    for name in IMAGES.into_iter().filter(|a| wanted.contains(a)) {
        let mut files = build_files(repo, cfg, name)?;
        if name == "builder" {
            // Its instance configuration is part of what it is: a new mirror or endpoint
            // rebuilds it.
            files.extend(spack_config(
                cfg,
                on_default,
                inputs.spack_packages.is_some(),
            ));
            files.insert(DEPLOYMENT_KEY.to_string(), inputs.deployment_key.clone());
        }
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_OS_IMAGE, base.os_image.clone());
        // The certificates go into the image: they count as build files.
        let mut all = files.clone();
        for (i, c) in certificates.iter().enumerate() {
            all.insert(format!("ca-certificates/{i}.crt"), c.clone());
        }
        labels.insert(LABEL_CHECKSUM, checksum_of(&all));
        match name {
            "builder" | "runtime" => {
                let spack = inputs.spack.as_ref().context("the Spack tree")?;
                labels.insert(LABEL_SPACK_COMMIT, spack.id());
            }
            _ => {}
        }
        if name == "builder" {
            if let Some(p) = &inputs.spack_packages {
                labels.insert(LABEL_SPACK_PACKAGES, p.id());
            }
            labels.insert(LABEL_COMPILERS, cfg.compiler_packages().join(" "));
        }
        out.push(ImageSpec {
            name,
            files,
            inputs: labels,
            tools: (name != "runtime").then(|| inputs.tools.clone()),
        });
    }
    Ok(out)
}

/// The builder's Spack instance configuration (`spack-config/`, its site scope): the build
/// cache it installs binaries from (no sources: the builds' uploads go to each environment's
/// `buildcache-destination`), and spack-packages as `builtin` for Spack ≥ 1.0. Valid for Spack
/// 0.23 and 1.x alike.
pub fn spack_config(
    cfg: &Config,
    on_default: bool,
    spack_packages: bool,
) -> BTreeMap<String, Vec<u8>> {
    let mut mirrors = String::from("mirrors:\n");
    for (arch, ac) in &cfg.architectures {
        let cache = &ac.build_cache;
        mirrors.push_str(&format!(
            "  build-cache-{arch}:\n    url: {}\n    binary: true\n    source: false\n    signed: {}\n",
            cache.url_for(on_default),
            // Installing from a signed mirror checks every package's signature against the
            // keys the builder trusts (the deployment key).
            cfg.signs(on_default)
        ));
        if let Some(e) = &cache.endpoint_url {
            mirrors.push_str(&format!("    endpoint_url: {e}\n"));
        }
    }
    let mut out = BTreeMap::from([(
        "spack-config/mirrors.yaml".to_string(),
        mirrors.into_bytes(),
    )]);
    if spack_packages {
        out.insert(
            "spack-config/repos.yaml".into(),
            b"repos::\n  builtin: /opt/spack-packages/repos/spack_repo/builtin\n".to_vec(),
        );
    }
    out
}

/// The CA certificate files the configuration names, read.
pub fn ca_certificates(repo: &Path, cfg: &Config) -> anyhow::Result<Vec<Vec<u8>>> {
    cfg.base_images
        .ca_certificates
        .iter()
        .map(|c| {
            let p = repo.join(c);
            std::fs::read(&p).with_context(|| format!("reading CA certificate {}", p.display()))
        })
        .collect()
}

/// sha256 over files given as relative path → content, in sorted order: every machine computes
/// the same.
pub fn checksum_of(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut h = TreeHash::new();
    for (name, content) in files {
        h.bytes(name, content);
    }
    h.finish()
}

/// The folder holding the tools that run now (`spacktainerizer` and its siblings).
pub fn tools_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this program")?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Where the tools of each architecture are, as `--tools-dir [ARCH=]DIR` gives them.
#[derive(Debug, Clone, Default)]
pub struct ToolsDirs {
    /// `ARCH=DIR`: the tools for ARCH.
    pub per_arch: BTreeMap<String, PathBuf>,
    /// A plain `DIR` (this program's folder when nothing is given): the tools for the
    /// architecture they are built for, read from their executables.
    pub native: Option<PathBuf>,
}

impl ToolsDirs {
    /// Read `--tools-dir` values: `ARCH=DIR` when the text before the first `=` is an
    /// architecture name (lowercase letters, digits, `_`), else a plain `DIR`, of which there is
    /// at most one.
    pub fn parse(values: &[String]) -> anyhow::Result<ToolsDirs> {
        let mut dirs = ToolsDirs::default();
        for v in values {
            match v.split_once('=') {
                Some((arch, dir))
                    if !arch.is_empty()
                        && arch
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
                {
                    if dirs.per_arch.insert(arch.into(), dir.into()).is_some() {
                        bail!("--tools-dir: {arch} is given twice");
                    }
                }
                _ => {
                    if dirs.native.replace(v.into()).is_some() {
                        bail!(
                            "--tools-dir: give one plain DIR at most (the tools for the \
                             architecture they are built for), the others as ARCH=DIR"
                        );
                    }
                }
            }
        }
        Ok(dirs)
    }

    /// The folder of `arch`'s tools: the one given for it, else the plain one when its tools
    /// are built for `arch`; `None` when there is none.
    pub fn dir_for(&self, arch: &str) -> anyhow::Result<Option<PathBuf>> {
        if let Some(d) = self.per_arch.get(arch) {
            // Never another architecture's executables in an image (stand-ins that are no
            // executables at all, as in tests, are taken as they are).
            for tool in TOOLS {
                let path = d.join(tool);
                if let Ok(Some(built_for)) = elf_arch(&path)
                    && built_for != arch
                {
                    bail!(
                        "--tools-dir {arch}={}: {} is built for {built_for}, not {arch}",
                        d.display(),
                        path.display()
                    );
                }
            }
            return Ok(Some(d.clone()));
        }
        let native = self.native_dir()?;
        let built_for = executable_arch(&native.join(TOOLS[0]))?;
        for tool in &TOOLS[1..] {
            let path = native.join(tool);
            let other = executable_arch(&path)?;
            if other != built_for {
                bail!(
                    "{} is built for {other}, but {} for {built_for}: the tools of one folder \
                     are of one architecture (give each its own --tools-dir ARCH=DIR)",
                    path.display(),
                    native.join(TOOLS[0]).display()
                );
            }
        }
        Ok((built_for == arch).then_some(native))
    }

    /// The checksum of the tools of each of `archs` that has tools; an `ARCH=DIR` naming no
    /// architecture of `archs` is an error (a typo would otherwise go unnoticed).
    pub fn checksums<'a>(
        &self,
        archs: impl IntoIterator<Item = &'a String>,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let archs: Vec<&String> = archs.into_iter().collect();
        if let Some(unknown) = self.per_arch.keys().find(|a| !archs.contains(a)) {
            bail!("--tools-dir {unknown}=…: architecture `{unknown}` is not in the configuration");
        }
        let mut out = BTreeMap::new();
        for arch in archs {
            if let Some(dir) = self.dir_for(arch)? {
                out.insert(arch.clone(), tools_checksum(&dir)?);
            }
        }
        Ok(out)
    }

    /// The plain folder: the one given, else this program's own.
    fn native_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.native {
            Some(d) => Ok(d.clone()),
            None => tools_dir(),
        }
    }

    /// Why `arch` has no tools, for an error or a plan's reason.
    pub fn missing(&self, arch: &str) -> String {
        let native = match &self.native {
            Some(d) => format!("the tools in {}", d.display()),
            None => "this program and its sibling tools".into(),
        };
        let built_for = self
            .native_dir()
            .and_then(|d| executable_arch(&d.join(TOOLS[0])))
            .unwrap_or_else(|_| "another architecture".into());
        format!("no {arch} tools: {native} are built for {built_for} (give --tools-dir {arch}=DIR)")
    }
}

/// The architecture (Docker's name) an ELF executable is built for, read from its header.
pub fn executable_arch(path: &Path) -> anyhow::Result<String> {
    elf_arch(path)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} is not an ELF executable: cannot tell which architecture it is for (give \
             --tools-dir ARCH=DIR)",
            path.display()
        )
    })
}

/// [`executable_arch`], `None` for a file that is no ELF file at all.
fn elf_arch(path: &Path) -> anyhow::Result<Option<String>> {
    use std::io::Read as _;
    let mut header = Vec::with_capacity(20);
    std::fs::File::open(path)
        .and_then(|f| f.take(20).read_to_end(&mut header))
        .with_context(|| format!("reading {}", path.display()))?;
    if !header.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    if header.len() < 20 {
        bail!(
            "{} is too short ({} bytes) to be an ELF executable",
            path.display(),
            header.len()
        );
    }
    // e_machine, in the file's byte order (EI_DATA: 1 little-endian, 2 big-endian); the
    // names are those of 64-bit Linux (EI_CLASS 2), the only ones images are built for.
    let machine = match header[5] {
        1 => u16::from_le_bytes([header[18], header[19]]),
        2 => u16::from_be_bytes([header[18], header[19]]),
        other => bail!(
            "{} has an invalid ELF byte order ({other}: neither 1 nor 2)",
            path.display()
        ),
    };
    Ok(Some(match (header[4], machine) {
        (2, 0x3e) => "amd64".into(),
        (2, 0xb7) => "arm64".into(),
        (2, 0x15) if header[5] == 1 => "ppc64le".into(),
        (2, 0x16) => "s390x".into(),
        (2, 0xf3) => "riscv64".into(),
        (class, other) => format!("ELF machine {other:#x} (class {class})"),
    }))
}

/// sha256 over the five tools in `dir`: what a tools image and a builder hold.
pub fn tools_checksum(dir: &Path) -> anyhow::Result<String> {
    let mut h = TreeHash::new();
    for tool in TOOLS {
        let p = dir.join(tool);
        h.file(tool, &p).with_context(|| {
            format!(
                "{} not found: the tools image and the builder take the tools from {}",
                p.display(),
                dir.display()
            )
        })?;
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_dirs_are_given_per_architecture_or_read_from_the_executables() {
        let dirs = ToolsDirs::parse(&[
            "arm64=/opt/arm".into(),
            "./dist=x".into(),
            "amd64=/opt/amd".into(),
        ])
        .unwrap();
        assert_eq!(dirs.per_arch["arm64"], Path::new("/opt/arm"));
        assert_eq!(dirs.per_arch["amd64"], Path::new("/opt/amd"));
        // A path with `=` in it is a plain DIR.
        assert_eq!(dirs.native.as_deref(), Some(Path::new("./dist=x")));
        let err = ToolsDirs::parse(&["a".into(), "b".into()]).unwrap_err();
        assert!(format!("{err}").contains("one plain DIR at most"), "{err}");
        let err = ToolsDirs::parse(&["arm64=a".into(), "arm64=b".into()]).unwrap_err();
        assert!(format!("{err}").contains("arm64 is given twice"), "{err}");

        // A plain DIR serves the architecture its executables are built for, and no other.
        let tmp = tempfile::tempdir().unwrap();
        let mut header = *b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\xb7\0";
        for tool in TOOLS {
            std::fs::write(tmp.path().join(tool), header).unwrap();
        }
        let plain = ToolsDirs {
            native: Some(tmp.path().to_path_buf()),
            ..ToolsDirs::default()
        };
        assert_eq!(plain.dir_for("arm64").unwrap().as_deref(), Some(tmp.path()));
        assert_eq!(plain.dir_for("amd64").unwrap(), None);
        let why = plain.missing("amd64");
        assert!(
            why.contains("are built for arm64 (give --tools-dir amd64=DIR)"),
            "{why}"
        );
        let archs = ["amd64".to_string(), "arm64".to_string()];
        let sums = plain.checksums(&archs).unwrap();
        assert_eq!(sums.keys().collect::<Vec<_>>(), ["arm64"]);
        // One tool of another architecture: the folder is refused, naming it.
        header[18] = 0x3e;
        std::fs::write(tmp.path().join(TOOLS[1]), header).unwrap();
        let err = plain.dir_for("arm64").unwrap_err();
        assert!(
            format!("{err}").contains(&format!("{} is built for amd64", TOOLS[1])),
            "{err}"
        );
        for tool in TOOLS {
            std::fs::write(tmp.path().join(tool), header).unwrap();
        }
        assert_eq!(plain.dir_for("amd64").unwrap().as_deref(), Some(tmp.path()));
        // ARCH=DIR with another architecture's executables is refused too.
        let wrong = ToolsDirs::parse(&[format!("arm64={}", tmp.path().display())]).unwrap();
        let err = wrong.dir_for("arm64").unwrap_err();
        assert!(
            format!("{err}").contains("is built for amd64, not arm64"),
            "{err}"
        );
        std::fs::write(tmp.path().join(TOOLS[0]), &header[..12]).unwrap();
        let err = plain.dir_for("amd64").unwrap_err();
        assert!(format!("{err}").contains("too short (12 bytes)"), "{err}");
        // An architecture the configuration does not have is a typo.
        let typo = ToolsDirs::parse(&["arm46=/opt/arm".into()]).unwrap();
        let err = typo.checksums(&archs).unwrap_err();
        assert!(
            format!("{err}").contains("`arm46` is not in the configuration"),
            "{err}"
        );
    }

    #[test]
    fn the_builder_verifies_the_default_branch_cache_when_it_is_signed() {
        let text = format!(
            "{}signing: {{}}\n",
            include_str!("../../examples/spacktainerizah.yaml").replace(
                "url: s3://spack-cache-arm64\n",
                "url: s3://spack-cache-arm64\n      branch_url: s3://spack-cache-arm64-dev\n",
            )
        );
        let cfg = Config::parse(Path::new("c.yaml"), &text).unwrap();
        let mirrors = |cfg: &Config, on_default| {
            String::from_utf8(
                spack_config(cfg, on_default, false)["spack-config/mirrors.yaml"].clone(),
            )
            .unwrap()
        };
        let main = mirrors(&cfg, true);
        assert!(
            main.contains("url: s3://spack-build-cache\n") && main.contains("signed: true"),
            "{main}"
        );
        let branch = mirrors(&cfg, false);
        assert!(
            branch.contains("-dev\n") && !branch.contains("signed: true"),
            "{branch}"
        );
        let unsigned = Config {
            signing: None,
            ..cfg
        };
        assert!(!mirrors(&unsigned, true).contains("signed: true"));
    }
}
