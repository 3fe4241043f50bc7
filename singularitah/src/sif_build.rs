//! `singularitah sif build`: an image from the registry made into a SIF without Singularity —
//! layers streamed to disk and applied in order, a gzip squashfs, the SIF around it — or with
//! `singularity`/`apptainer` when asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use common::registry::{ImageRef, Login, RegistryClient};
use common::{rootfs, sif};

/// SIF label with the digest of the image the SIF was made from.
pub const LABEL_SOURCE_DIGEST: &str = "org.spacktainerizah.source-digest";

#[derive(Debug, Clone)]
pub struct SifBuildOptions {
    pub image: String,
    /// `amd64`, `arm64`.
    pub arch: String,
    pub output: PathBuf,
    /// Added to the image's labels (the project's checksums).
    pub labels: BTreeMap<String, String>,
    /// Names of the variables holding the registry login.
    pub login_env: Option<(String, String)>,
    /// Build with `singularity`/`apptainer` instead of natively.
    pub with_singularity: bool,
}

/// Build the SIF; returns the source image digest.
pub async fn build(opts: &SifBuildOptions) -> anyhow::Result<String> {
    let image: ImageRef = opts.image.parse()?;
    let login = match &opts.login_env {
        Some((user, secret)) => Some(Login::from_env(user, secret).map_err(anyhow::Error::msg)?),
        None => None,
    };
    if opts.with_singularity {
        return with_singularity(opts, login.as_ref());
    }
    let client = RegistryClient::new(&image.registry, login)?;
    let resolved = client
        .resolve(&image, &opts.arch)
        .await
        .with_context(|| format!("resolving {image} for {}", opts.arch))?;
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
        client.blob_to_file(&image, &layer.digest, &blob).await?;
        let file = std::fs::File::open(&blob)?;
        rootfs::apply_layer(&root, &layer.digest, &layer.media_type, file)?;
        std::fs::remove_file(&blob)?;
    }

    let mut labels = resolved.labels.clone();
    labels.extend(opts.labels.clone());
    labels.insert(LABEL_SOURCE_DIGEST.into(), digest.clone());
    let deffile = format!(
        "Bootstrap: docker\nFrom: {}\n",
        image.with_reference(&digest)
    );
    skeleton(
        &root,
        &labels,
        &deffile,
        &resolved.env,
        &resolved.entrypoint,
        &resolved.cmd,
    )?;

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

    let spec = sif::SifSpec {
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
    sif::write(&spec, &mut f, &opts.output)?;
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
    env: &[String],
    entrypoint: &[String],
    cmd: &[String],
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let d = root.join(".singularity.d");
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
    std::fs::write(d.join("env/90-environment.sh"), environment)?;
    let args: Vec<String> = entrypoint
        .iter()
        .chain(cmd)
        .map(|a| common::ci::shell_quote(a))
        .collect();
    let runscript = if args.is_empty() {
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
    Ok(())
}

/// `singularity build` (or `apptainer build`) from the registry; the login goes through the
/// environment, never the arguments.
fn with_singularity(opts: &SifBuildOptions, login: Option<&Login>) -> anyhow::Result<String> {
    let tool = ["apptainer", "singularity"]
        .into_iter()
        .find(|t| {
            Command::new(t)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .context("--with-singularity: neither `apptainer` nor `singularity` is installed")?;
    let mut cmd = Command::new(tool);
    cmd.args(["build", "--force"])
        .arg(&opts.output)
        .arg(format!("docker://{}", opts.image));
    if let Some(l) = login {
        let prefix = tool.to_uppercase();
        cmd.env(format!("{prefix}_DOCKER_USERNAME"), &l.user);
        cmd.env(format!("{prefix}_DOCKER_PASSWORD"), l.secret.expose());
    }
    let status = cmd.status().with_context(|| format!("running {tool}"))?;
    if !status.success() {
        bail!("{tool} build of {} failed", opts.image);
    }
    Ok(String::new())
}
