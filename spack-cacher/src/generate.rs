//! `spack-cacher generate`: run the real `spack` on every prepared environment of an
//! architecture (`concretize -f`, then `ci generate`), several at once, each with its own log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, bail};
use common::printer::Printer;

use crate::prepare;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Where `prepare` wrote `<arch>/<container>/spack.yaml`.
    pub envs: PathBuf,
    pub arch: String,
    /// The `spack` executable; found on PATH when not given.
    pub spack: Option<PathBuf>,
    /// Environments processed at once.
    pub jobs: usize,
    /// Where the pipelines go: `<output>/<container>/pipeline.yml`, with Spack's artifacts
    /// root `<output>/<container>`.
    pub output: PathBuf,
}

/// The `spack` to run, or an error saying how to provide one.
pub fn find_spack(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!("spack executable {} does not exist", p.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("spack"))
        .find(|p| p.is_file())
        .context("`spack` was not found on PATH: run this in the builder image, source $SPACK_ROOT/share/spack/setup-env.sh, or pass --spack /path/to/spack/bin/spack")
}

/// The two Spack commands for one environment, as argument lists.
pub fn commands(env: &Path, artifacts_root: &Path, output_file: &Path) -> [Vec<String>; 2] {
    let e = env.display().to_string();
    [
        vec!["-e".into(), e.clone(), "concretize".into(), "-f".into()],
        vec![
            "-e".into(),
            e,
            "ci".into(),
            "generate".into(),
            "--check-index-only".into(),
            "--artifacts-root".into(),
            artifacts_root.display().to_string(),
            "--output-file".into(),
            output_file.display().to_string(),
        ],
    ]
}

pub fn run(opts: &GenerateOptions, printer: &Printer) -> anyhow::Result<Vec<PathBuf>> {
    let spack = find_spack(opts.spack.as_deref())?;
    let envs = prepare::environments(&opts.envs, &opts.arch)?;
    let pb = printer.progress(Some(envs.len() as u64), "spack ci generate");
    let queue = Mutex::new(envs.clone());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1).min(envs.len().max(1)) {
            s.spawn(|| {
                loop {
                    let Some(env) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                        break;
                    };
                    if let Err(e) = one(&spack, &env, opts) {
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{e:#}"));
                    }
                    pb.inc(1);
                }
            });
        }
    });
    pb.finish_and_clear();
    let failures = failures.into_inner().unwrap_or_default();
    if !failures.is_empty() {
        bail!(
            "{} of {} environments failed:\n{}",
            failures.len(),
            envs.len(),
            failures.join("\n")
        );
    }
    Ok(envs
        .iter()
        .map(|e| {
            opts.output
                .join(e.file_name().unwrap_or_default())
                .join("pipeline.yml")
        })
        .collect())
}

fn one(spack: &Path, env: &Path, opts: &GenerateOptions) -> anyhow::Result<()> {
    let container = env
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let root = opts.output.join(&container);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let log_path = env.join("generate.log");
    let mut log = Vec::new();
    for args in commands(env, &root, &root.join("pipeline.yml")) {
        let out = Command::new(spack)
            .args(&args)
            .output()
            .with_context(|| format!("running {}", spack.display()))?;
        log.extend_from_slice(format!("$ spack {}\n", args.join(" ")).as_bytes());
        log.extend_from_slice(&out.stdout);
        log.extend_from_slice(&out.stderr);
        std::fs::write(&log_path, &log)
            .with_context(|| format!("writing {}", log_path.display()))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&log);
            let tail: Vec<&str> = text
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            bail!(
                "{}/{container}: `spack {}` failed ({}); last lines of {}:\n{}",
                opts.arch,
                args[2..].join(" "),
                out.status,
                log_path.display(),
                tail.join("\n")
            );
        }
    }
    Ok(())
}
