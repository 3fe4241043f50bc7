//! `spack-cacher generate`: run the real `spack` on every prepared environment of an
//! architecture (`concretize -f`, then `ci generate`), several at once, each with its own log.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use host::spack;
use terminal::printer::Printer;

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
    let spack = spack::find(opts.spack.as_deref())?;
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
        spack::run(spack, &args, &mut log, &log_path)
            .with_context(|| format!("{}/{container}", opts.arch))?;
    }
    Ok(())
}
