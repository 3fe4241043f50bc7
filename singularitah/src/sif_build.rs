//! `singularitah sif build`: an image from the registry, or a `.def` bootstrapped from one, made
//! into a SIF without Singularity — layers streamed to disk and applied in order, the
//! definition's sections, a gzip squashfs, the SIF around it — or with `singularity`/`apptainer`
//! when asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use common::registry::{ImageRef, Login, RegistryClient};
use common::rootfs;
use common::sif::definition::{SECTIONS_NEEDING_SINGULARITY, SingularityDef};
use common::sif::format;

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
    /// The container and branch it is published for, recorded in its labels (with the
    /// architecture) so that retiring and pruning it never depend on reading its file name.
    pub container: Option<String>,
    pub branch: Option<String>,
    /// Build with `singularity`/`apptainer` instead of natively.
    pub with_singularity: bool,
}

/// Build the SIF; returns the source image digest.
pub async fn build(opts: &SifBuildOptions) -> anyhow::Result<String> {
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
    let image: ImageRef = image.parse()?;
    // As every tool reads a registry login: used when the user variable is set.
    let login = match &opts.login_env {
        Some((user_env, secret_env)) => {
            common::config::Credentials::registry_login(Some(&common::config::Credentials {
                user_env: user_env.clone(),
                secret_env: secret_env.clone(),
            }))
            .map_err(anyhow::Error::msg)?
        }
        None => None,
    };
    let client = RegistryClient::new(&image.registry, login.clone())?;
    let resolved = client
        .resolve(&image, &opts.arch)
        .await
        .with_context(|| format!("resolving {image} for {}", opts.arch))?;
    let mut labels = resolved.labels.clone();
    if let Some(def) = &def {
        labels.extend(def.labels());
    }
    labels.extend(opts.labels.clone());
    if let (Some(container), Some(branch)) = (&opts.container, &opts.branch) {
        labels.extend(
            common::sif::published::SifIdentity {
                container: container.clone(),
                branch: branch.clone(),
                arch: opts.arch.clone(),
            }
            .labels(),
        );
    }
    labels.insert(
        common::labels::source_digest_label(),
        resolved.manifest.digest.clone(),
    );
    let pinned = image.with_reference(&resolved.manifest.digest);
    if opts.with_singularity {
        let text = match &def_text {
            Some(text) => with_labels(text, &labels),
            None => with_labels(&format!("Bootstrap: docker\nFrom: {pinned}\n"), &labels),
        };
        with_singularity(opts, &text, login.as_ref())?;
        return Ok(resolved.manifest.digest);
    }
    let digest = resolved.manifest.digest.clone();

    // Work beside the output: a root filesystem can be larger than /tmp.
    let out_dir = match opts.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let work = tempfile::Builder::new()
        .prefix(".sif-build-")
        .tempdir_in(&out_dir)
        .with_context(|| format!("a work folder in {}", out_dir.display()))?;
    let root = work.path().join("rootfs");
    std::fs::create_dir(&root)?;
    for layer in &resolved.layers {
        let blob = work.path().join("layer");
        client
            .blob_to_file(&image, &layer.digest, layer.size, &blob)
            .await?;
        let file = std::fs::File::open(&blob)?;
        rootfs::apply_layer(&root, &layer.digest, &layer.media_type, file)?;
        std::fs::remove_file(&blob)?;
    }

    let deffile = def_text.unwrap_or_else(|| format!("Bootstrap: docker\nFrom: {pinned}\n"));
    skeleton(&root, &labels, &deffile, &resolved, def.as_ref())?;

    let squashfs = work.path().join("rootfs.squashfs");
    let status = Command::new("mksquashfs")
        .arg(&root)
        .arg(&squashfs)
        // gzip: Singularity refuses zstd squashfs.
        .args(["-comp", "gzip", "-noappend", "-quiet", "-no-progress"])
        // Its default is a quarter of the machine's memory, on runners shared with other jobs.
        .args(["-mem", "128M"])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| anyhow::anyhow!("running mksquashfs ({e}): install squashfs-tools"))?;
    if !status.success() {
        bail!("mksquashfs failed on the root filesystem of {image}");
    }
    std::fs::remove_dir_all(&root)?;

    let spec = format::SifSpec {
        arch: opts.arch.clone(),
        deffile,
        labels,
        squashfs,
        created: Some(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64,
        ),
    };
    // Written aside and renamed: a reader never sees half a SIF.
    let partial = work.path().join("image.sif");
    let mut f = std::fs::File::create(&partial)?;
    format::write(&spec, &mut f, &opts.output)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&partial, &opts.output)
        .with_context(|| format!("writing {}", opts.output.display()))?;
    Ok(digest)
}

/// What `singularity build` puts in a root filesystem for `run`/`exec` and `inspect` inside
/// the container: labels, environment, runscript and the definition.
fn skeleton(
    root: &Path,
    labels: &BTreeMap<String, String>,
    deffile: &str,
    image: &common::registry::Resolved,
    def: Option<&SingularityDef>,
) -> anyhow::Result<()> {
    let (env, entrypoint, cmd) = (&image.env, &image.entrypoint, &image.cmd);
    use std::os::unix::fs::PermissionsExt;
    let d = root.join(".singularity.d");
    // Ours to write: an image's own `.singularity.d` that is a symlink could point anywhere,
    // the build machine included.
    if d.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
        std::fs::remove_file(&d)?;
    }
    for sub in ["env", "libs", "actions"] {
        std::fs::create_dir_all(d.join(sub))?;
    }
    for dir in [
        "dev", "proc", "sys", "tmp", "root", "home", "etc", "var/tmp",
    ] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::write(d.join("labels.json"), serde_json::to_vec_pretty(labels)?)?;
    std::fs::write(d.join("Singularity"), deffile)?;
    let mut environment = String::from("#!/bin/sh\n");
    for kv in env {
        if let Some((k, v)) = kv.split_once('=') {
            environment.push_str(&format!("export {k}={}\n", common::ci::shell_quote(v)));
        }
    }
    std::fs::write(d.join("env/10-docker2singularity.sh"), environment)?;
    let section = |name: &str| def.and_then(|d| d.section(name));
    // `%environment` is sourced after the image's variables, so it can override them.
    let environment = format!("#!/bin/sh\n{}", section("environment").unwrap_or_default());
    std::fs::write(d.join("env/90-environment.sh"), environment)?;
    if let Some(help) = section("help") {
        std::fs::write(d.join("runscript.help"), help)?;
    }
    if let Some(start) = section("startscript") {
        std::fs::write(d.join("startscript"), format!("#!/bin/sh\n{start}"))?;
        std::fs::set_permissions(
            d.join("startscript"),
            std::fs::Permissions::from_mode(0o755),
        )?;
    }
    let args: Vec<String> = entrypoint
        .iter()
        .chain(cmd)
        .map(|a| common::ci::shell_quote(a))
        .collect();
    let runscript = if let Some(body) = section("runscript") {
        format!("#!/bin/sh\n{body}")
    } else if args.is_empty() {
        "#!/bin/sh\nexec \"$@\"\n".to_string()
    } else if entrypoint.is_empty() {
        format!(
            "#!/bin/sh\nif [ $# -gt 0 ]; then exec \"$@\"; fi\nexec {}\n",
            args.join(" ")
        )
    } else {
        let ep: Vec<String> = entrypoint
            .iter()
            .map(|a| common::ci::shell_quote(a))
            .collect();
        format!(
            "#!/bin/sh\nif [ $# -gt 0 ]; then exec {} \"$@\"; fi\nexec {}\n",
            ep.join(" "),
            args.join(" ")
        )
    };
    std::fs::write(d.join("runscript"), runscript)?;
    std::fs::set_permissions(d.join("runscript"), std::fs::Permissions::from_mode(0o755))?;
    for (name, script) in ACTIONS {
        let path = d.join("actions").join(name);
        std::fs::write(&path, format!("{ACTION_PRELUDE}{script}"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    // The top-level links `singularity build` makes, which older runtimes and users rely on.
    for (link, target) in [
        ("singularity", ".singularity.d/runscript"),
        ("environment", ".singularity.d/env/90-environment.sh"),
    ] {
        let path = root.join(link);
        if path.symlink_metadata().is_ok() {
            if path.is_dir() && !path.is_symlink() {
                continue;
            }
            std::fs::remove_file(&path)?;
        }
        std::os::unix::fs::symlink(target, &path)?;
    }
    Ok(())
}

/// What every action script starts with: the environment scripts, in order, as Singularity
/// sources them before a command.
const ACTION_PRELUDE: &str = "#!/bin/sh\nfor script in /.singularity.d/env/*.sh; do\n    if [ -f \"$script\" ]; then\n        . \"$script\"\n    fi\ndone\n";

/// `.singularity.d/actions/*`: what `singularity exec|run|shell|instance start|test` run in the
/// container, for runtimes that use the image's own scripts.
const ACTIONS: &[(&str, &str)] = &[
    ("exec", "exec \"$@\"\n"),
    ("run", "exec /.singularity.d/runscript \"$@\"\n"),
    (
        "shell",
        "if [ -n \"${SINGULARITY_SHELL:-}\" ]; then exec \"$SINGULARITY_SHELL\" \"$@\"; fi\nexec /bin/sh \"$@\"\n",
    ),
    (
        "start",
        "if [ -x /.singularity.d/startscript ]; then exec /.singularity.d/startscript \"$@\"; fi\n",
    ),
    (
        "test",
        "if [ -x /.singularity.d/test ]; then exec /.singularity.d/test \"$@\"; fi\necho \"No test script in this container\"\n",
    ),
];

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
