//! `singularitah sif build`: an image from the registry, or a `.def` bootstrapped from one, made
//! into a SIF without Singularity — layers streamed to disk and applied in order, the
//! definition's sections, a gzip squashfs, the SIF around it with the SBOM and provenance
//! attached to the image — or with `singularity`/`apptainer` when asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use model::sif::definition::{SECTIONS_NEEDING_SINGULARITY, SingularityDef};
use model::sif::format;
use oci::registry::{ImageRef, Login, RegistryClient, Resolved};
use oci::rootfs;
use terminal::printer::Printer;

use crate::skeleton::Skeleton;

/// What the SIF is made of.
#[derive(Debug, Clone)]
pub enum SifSource {
    /// A registry image, as it is.
    Image(String),
    /// A Singularity definition file bootstrapped from a registry image.
    Def(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SifBuildOptions {
    pub source: SifSource,
    /// `amd64`, `arm64`.
    pub arch: String,
    pub output: PathBuf,
    /// Added to the image's labels (the project's checksums).
    pub labels: BTreeMap<String, String>,
    /// Names of the variables holding the registry login.
    pub login_env: Option<(String, String)>,
    /// Registries (`host[:port]`) read over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// The container and branch it is published for, recorded in its labels (with the
    /// architecture) so that retiring and pruning it never depend on reading its file name.
    pub container: Option<String>,
    pub branch: Option<String>,
    /// Build with `singularity`/`apptainer` instead of natively.
    pub with_singularity: bool,
}

/// What a build starts from: the registry image, and the definition when it is a `.def`
/// container.
#[derive(Debug)]
pub struct Source {
    pub image: ImageRef,
    pub def: Option<SingularityDef>,
    /// The definition's text, as written into the SIF.
    pub def_text: Option<String>,
}

impl Source {
    /// The image the SIF is made of, and the definition when it is a `.def` container (refused
    /// natively when it runs commands).
    pub fn read(opts: &SifBuildOptions) -> anyhow::Result<Source> {
        let (image, def, def_text) = match &opts.source {
            SifSource::Image(i) => (i.clone(), None, None),
            SifSource::Def(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let def = SingularityDef::parse(path, &text)?;
                if !opts.with_singularity
                    && let Some((name, _)) = def
                        .sections
                        .iter()
                        .find(|(n, _)| SECTIONS_NEEDING_SINGULARITY.contains(&n.as_str()))
                {
                    bail!(
                        "{}: `%{name}` runs commands, which only Singularity can do: build it with --with-singularity",
                        path.display()
                    );
                }
                (def.from.clone(), Some(def), Some(text))
            }
        };
        Ok(Source {
            image: image.parse()?,
            def,
            def_text,
        })
    }

    /// The definition the SIF records: the `.def`'s text, or one bootstrapping `pinned`.
    fn deffile(&self, pinned: &ImageRef) -> String {
        match &self.def_text {
            Some(text) => text.clone(),
            None => format!("Bootstrap: docker\nFrom: {pinned}\n"),
        }
    }
}

/// Build the SIF of `source`, read through `client`; `login` is handed to Singularity when it
/// builds. Returns the source image digest.
pub async fn build(
    opts: &SifBuildOptions,
    source: &Source,
    client: &RegistryClient,
    login: Option<&Login>,
    printer: &Printer,
) -> anyhow::Result<String> {
    let image = &source.image;
    let resolved = client
        .resolve(image, &opts.arch)
        .await
        .with_context(|| format!("resolving {image} for {}", opts.arch))?;
    let labels = labels(opts, &resolved, source.def.as_ref());
    let pinned = image.with_reference(&resolved.manifest.digest);
    let deffile = source.deffile(&pinned);
    if opts.with_singularity {
        // From an index's tag Singularity would take this machine's image, and the labels
        // record the build architecture's digest: it is handed that image by digest.
        let text = match &source.def {
            Some(def) => def.with_from(&deffile, &pinned.to_string()),
            None => deffile.clone(),
        };
        with_singularity(opts, &with_labels(&text, &labels), login)?;
    } else {
        native(opts, source, client, &resolved, labels, deffile, printer).await?;
    }
    Ok(resolved.manifest.digest)
}

/// The SIF made here: the layers applied, the skeleton Apptainer adds, a squashfs, the SIF
/// around it, carrying the documents attached to a registry image (its OCI referrers of our
/// kinds).
async fn native(
    opts: &SifBuildOptions,
    source: &Source,
    client: &RegistryClient,
    resolved: &Resolved,
    mut labels: BTreeMap<String, String>,
    deffile: String,
    printer: &Printer,
) -> anyhow::Result<()> {
    // A `.def`'s SIF is another artifact than its source image (often someone else's): the
    // image's SBOM and provenance do not describe it.
    let documents = match source.def {
        Some(_) => Vec::new(),
        None => client
            .documents(&source.image, &resolved.manifest.digest)
            .await
            .with_context(|| {
                format!(
                    "the documents attached to {}",
                    source.image.with_reference(&resolved.manifest.digest)
                )
            })?
            .into_iter()
            .map(|a| a.document)
            .collect(),
    };
    let work = work_dir(&opts.output)?;
    let root = work.path().join("rootfs");
    let mut pseudo = extract(client, &source.image, resolved, &root, printer).await?;
    let created = std::time::SystemTime::now();
    labels.extend(schema_labels(&opts.arch, created, &deffile));
    if source
        .def
        .as_ref()
        .and_then(|d| d.section("help"))
        .is_some()
    {
        // Where `apptainer run-help` finds the definition's `%help`.
        labels.insert(
            "org.label-schema.usage".into(),
            "/.singularity.d/runscript.help".into(),
        );
    }
    let inspected = Skeleton {
        labels: &labels,
        deffile: &deffile,
        image: resolved,
        def: source.def.as_ref(),
    }
    .write(&root)?;
    for path in &inspected.written {
        pseudo.forget(path);
    }
    let squashfs = work.path().join("rootfs.squashfs");
    squash(&root, &pseudo, &squashfs, printer)
        .with_context(|| format!("the root filesystem of {}", source.image))?;
    std::fs::remove_dir_all(&root)?;
    let spec = format::SifSpec {
        arch: opts.arch.clone(),
        deffile,
        labels,
        environment: inspected.environment,
        runscript: Some(inspected.runscript),
        startscript: Some(inspected.startscript),
        helpfile: inspected.helpfile,
        oci_config: crate::skeleton::oci_config(&resolved.config),
        squashfs,
        created: Some(created.duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64),
        documents,
    };
    write_sif(&spec, work.path(), &opts.output)
}

/// A work folder beside `output`: a root filesystem can be larger than /tmp.
fn work_dir(output: &Path) -> anyhow::Result<tempfile::TempDir> {
    let out_dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(".sif-build-")
        .tempdir_in(&out_dir)
        .with_context(|| format!("a work folder in {}", out_dir.display()))
}

/// The SIF of `spec` written in `work` and renamed to `output`: a reader never sees half a SIF.
fn write_sif(spec: &format::SifSpec, work: &Path, output: &Path) -> anyhow::Result<()> {
    let partial = work.join("image.sif");
    let mut f = std::fs::File::create(&partial)?;
    format::write(spec, &mut f, output)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&partial, output).with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}

/// The SIF's labels: the image's, the definition's, the `--label`s, the identity it is
/// published under and the source digest.
fn labels(
    opts: &SifBuildOptions,
    resolved: &Resolved,
    def: Option<&SingularityDef>,
) -> BTreeMap<String, String> {
    let mut labels = resolved.labels.clone();
    if let Some(def) = def {
        labels.extend(def.labels());
    }
    labels.extend(opts.labels.clone());
    if let (Some(container), Some(branch)) = (&opts.container, &opts.branch) {
        labels.extend(
            stores::sif_published::SifIdentity {
                container: container.clone(),
                branch: branch.clone(),
                arch: opts.arch.clone(),
            }
            .labels(),
        );
    }
    labels.insert(
        model::labels::source_digest_label(),
        resolved.manifest.digest.clone(),
    );
    labels
}

/// The image's layers downloaded one at a time and applied in order into `root` (made here);
/// what the squashfs needs beside the files is returned.
async fn extract(
    client: &RegistryClient,
    image: &ImageRef,
    resolved: &Resolved,
    root: &Path,
    printer: &Printer,
) -> anyhow::Result<rootfs::PseudoFiles> {
    std::fs::create_dir(root)?;
    let blob = root.with_file_name("layer");
    let mut pseudo = rootfs::PseudoFiles::default();
    let total: u64 = resolved.layers.iter().map(|l| l.size).sum();
    let downloaded = printer.progress_bytes(total, &format!("downloading {image}"));
    let applied = printer.progress(Some(resolved.layers.len() as u64), "applying layers");
    for layer in &resolved.layers {
        client
            .blob_to_file(image, &layer.digest, layer.size, &blob, &|n| {
                downloaded.inc(n)
            })
            .await?;
        let file = std::fs::File::open(&blob)?;
        rootfs::apply_layer(root, &layer.digest, &layer.media_type, file, &mut pseudo)?;
        std::fs::remove_file(&blob)?;
        applied.inc(1);
    }
    downloaded.finish_and_clear();
    applied.finish_and_clear();
    Ok(pseudo)
}

/// `root` made into a gzip squashfs at `squashfs`, with the modes, owners and device nodes
/// `pseudo` holds.
fn squash(
    root: &Path,
    pseudo: &rootfs::PseudoFiles,
    squashfs: &Path,
    printer: &Printer,
) -> anyhow::Result<()> {
    let mut mksquashfs = Command::new("mksquashfs");
    mksquashfs
        .arg(root)
        .arg(squashfs)
        .args(pseudo.mksquashfs_args(root, &root.with_file_name("tree.pseudo"))?)
        // gzip: Singularity refuses zstd squashfs.
        .args(["-comp", "gzip", "-noappend", "-quiet", "-no-progress"])
        // Its default is a quarter of the machine's memory, on runners shared with other jobs.
        .args(["-mem", "128M"])
        .stdout(std::process::Stdio::null());
    let squashing = printer.progress(None, "mksquashfs");
    let status = mksquashfs
        .status()
        .map_err(|e| anyhow::anyhow!("running mksquashfs ({e}): install squashfs-tools"))?;
    squashing.finish_and_clear();
    if !status.success() {
        bail!("mksquashfs failed");
    }
    Ok(())
}

/// The `org.label-schema.*` labels Apptainer gives every image it builds: build date and
/// architecture, schema version, and the definition's header.
fn schema_labels(
    arch: &str,
    created: std::time::SystemTime,
    deffile: &str,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("org.label-schema.build-arch".to_string(), arch.to_string()),
        (
            "org.label-schema.build-date".to_string(),
            build_date(created),
        ),
        (
            "org.label-schema.schema-version".to_string(),
            "1.0".to_string(),
        ),
        (
            "org.label-schema.usage.spacktainerizah.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ]);
    // The header: `Key: value` lines before the first section.
    for line in deffile
        .lines()
        .take_while(|l| !l.trim_start().starts_with('%'))
    {
        if let Some((key, value)) = line.split_once(':')
            && !key.trim().is_empty()
            && !key.trim_start().starts_with('#')
        {
            labels.insert(
                format!(
                    "org.label-schema.usage.singularity.deffile.{}",
                    key.trim().to_lowercase()
                ),
                value.trim().to_string(),
            );
        }
    }
    labels
}

/// Apptainer's build date: `Monday_30_November_2026_12:23:30_UTC`.
fn build_date(t: std::time::SystemTime) -> String {
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // `2026-11-30T12:23:30Z`, taken apart.
    let stamp = terminal::printer::rfc3339(t);
    let (year, month, day) = (&stamp[..4], &stamp[5..7], &stamp[8..10]);
    let month: usize = month.parse().unwrap_or(1);
    format!(
        "{}_{}_{}_{year}_{}_UTC",
        DAYS[(secs / 86_400 % 7) as usize],
        day.trim_start_matches('0'),
        MONTHS[month.clamp(1, 12) - 1],
        &stamp[11..19]
    )
}

/// `text` (a definition) with `labels` added to its `%labels` section (made when missing):
/// Singularity records them as the image's labels, checksums included.
fn with_labels(text: &str, labels: &BTreeMap<String, String>) -> String {
    let lines: String = labels
        .iter()
        .map(|(k, v)| format!("    {k} {v}\n"))
        .collect();
    let mut out = String::with_capacity(text.len() + lines.len());
    let mut added = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if !added && line.trim_start().starts_with("%labels") {
            out.push_str(&lines);
            added = true;
        }
    }
    if !added {
        out.push_str("\n%labels\n");
        out.push_str(&lines);
    }
    out
}

/// `singularity build` (or `apptainer build`) of the definition `text`; the registry login
/// goes through the environment, never the arguments.
fn with_singularity(
    opts: &SifBuildOptions,
    text: &str,
    login: Option<&Login>,
) -> anyhow::Result<()> {
    let tool = ["apptainer", "singularity"]
        .into_iter()
        .find(|t| {
            Command::new(t)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .context("--with-singularity: neither `apptainer` nor `singularity` is installed")?;
    // Beside the definition when there is one: its `%files` paths are relative to it.
    let dir = match &opts.source {
        SifSource::Def(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
        SifSource::Image(_) => std::env::temp_dir(),
    };
    let def = tempfile::Builder::new()
        .prefix(".sif-build-")
        .suffix(".def")
        .tempfile_in(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &dir
        })?;
    std::fs::write(def.path(), text)?;
    let mut cmd = Command::new(tool);
    cmd.args(["build", "--force"])
        .arg(&opts.output)
        .arg(def.path());
    if let Some(l) = login {
        let prefix = tool.to_uppercase();
        cmd.env(format!("{prefix}_DOCKER_USERNAME"), &l.user);
        cmd.env(format!("{prefix}_DOCKER_PASSWORD"), l.secret.expose());
    }
    let status = cmd.status().with_context(|| format!("running {tool}"))?;
    if !status.success() {
        bail!("{tool} build of {} failed", opts.output.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_labels_are_apptainers() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_041_410);
        assert_eq!(build_date(t), "Monday_30_November_2026_12:23:30_UTC");
        assert_eq!(
            build_date(std::time::UNIX_EPOCH),
            "Thursday_1_January_1970_00:00:00_UTC"
        );
        let labels = schema_labels(
            "amd64",
            t,
            "Bootstrap: docker\nFrom: r/x:1\n%post\n  a: b\n",
        );
        assert_eq!(labels["org.label-schema.build-arch"], "amd64");
        assert_eq!(labels["org.label-schema.schema-version"], "1.0");
        assert_eq!(
            labels["org.label-schema.usage.singularity.deffile.bootstrap"],
            "docker"
        );
        assert_eq!(
            labels["org.label-schema.usage.singularity.deffile.from"],
            "r/x:1"
        );
        assert!(!labels.contains_key("org.label-schema.usage.singularity.deffile.a"));
    }

    #[test]
    fn labels_go_into_the_definition_for_singularity() {
        let labels = BTreeMap::from([("a.b".to_string(), "1".to_string())]);
        let t = with_labels(
            "Bootstrap: docker\nFrom: x\n%labels\n  K v\n%post\n  true\n",
            &labels,
        );
        assert_eq!(
            t,
            "Bootstrap: docker\nFrom: x\n%labels\n    a.b 1\n  K v\n%post\n  true\n"
        );
        let t = with_labels("Bootstrap: docker\nFrom: x\n", &labels);
        assert!(t.ends_with("\n%labels\n    a.b 1\n"), "{t}");
    }
}
