//! `spack-cacher generate`: the pipelines that fill an architecture's build cache, from the
//! prepared environments. An environment whose concretization inputs are those recorded with its
//! keep list reuses the recorded `spack.lock` (no `spack concretize`), and needs no `spack ci
//! generate` either when every spec of it is in the cache; the others run the real `spack`
//! (`concretize -f`, then `ci generate`), several at once, each with its own log.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use host::spack;
use model::config::Config;
use model::spack::inputs::{self, Inputs, Stale};
use model::spack::lockfile::Lockfile;
use stores::cache::{CacheError, detect_layouts, load_index};
use stores::{Store, keep_lists};
use terminal::printer::Printer;

use crate::prepare;
use crate::process::NOOP_JOB;

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
    /// Where earlier concretizations are recorded; `None` concretizes every environment.
    pub reuse: Option<Box<Reuse>>,
}

/// The recorded concretizations to reuse: those of `branch` in the cache it fills.
#[derive(Debug, Clone)]
pub struct Reuse {
    pub config: Config,
    pub branch: String,
}

/// What one environment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The recorded lockfile stands, and every spec of it is in the cache: no Spack at all.
    Reused { lockfile: Vec<u8>, specs: usize },
    /// The recorded lockfile stands, but `missing` of its `specs` are not in the cache:
    /// `spack ci generate` on it writes their build jobs.
    ReusedIncomplete {
        lockfile: Vec<u8>,
        specs: usize,
        missing: usize,
    },
    /// Concretize again, because of `reason`.
    Concretize { reason: String },
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Plan::Reused { specs, .. } => write!(
                f,
                "reused: its inputs are unchanged and all {specs} specs are in the cache"
            ),
            Plan::ReusedIncomplete { specs, missing, .. } => write!(
                f,
                "reused the concretization (inputs unchanged); {missing} of {specs} specs are not in the cache: spack ci generate"
            ),
            Plan::Concretize { reason } => write!(f, "concretized: {reason}"),
        }
    }
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
    let envs = prepare::environments(&opts.envs, &opts.arch)?;
    let plans = match &opts.reuse {
        Some(reuse) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(plan(opts, reuse, &envs, printer))?
        }
        None => envs
            .iter()
            .map(|_| Plan::Concretize {
                reason: "no branch given to reuse earlier concretizations of".into(),
            })
            .collect(),
    };
    let needs_spack = plans.iter().any(|p| !matches!(p, Plan::Reused { .. }));
    let spack = if needs_spack {
        Some(spack::find(opts.spack.as_deref())?)
    } else {
        None
    };
    let pb = printer.progress(Some(envs.len() as u64), "spack ci generate");
    let queue = Mutex::new(envs.iter().zip(&plans).collect::<Vec<_>>());
    let failures = Mutex::new(Vec::new());
    // Bounded by the CPUs the job has (a container's CPU quota included): Spack's concretizer
    // is CPU-bound, so more at once only adds memory.
    let workers = opts.jobs.max(1).min(envs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let Some((env, plan)) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop()
                    else {
                        break;
                    };
                    let name = container(env);
                    let result = one(spack.as_deref(), env, plan, opts);
                    // Each environment's output in one block, whatever ran beside it.
                    let (status, log) = match &result {
                        Ok(log) => (plan.to_string(), log.clone()),
                        Err(e) => (format!("{plan}; FAILED"), format!("{e:#}")),
                    };
                    let mut block = format!("── {}/{name}: {status}\n", opts.arch);
                    for line in log.lines() {
                        block.push_str("   ");
                        block.push_str(line);
                        block.push('\n');
                    }
                    pb.suspend(|| printer.log(block.trim_end()));
                    if let Err(e) = result {
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
    let reused = plans
        .iter()
        .filter(|p| !matches!(p, Plan::Concretize { .. }))
        .count();
    printer.log(format!(
        "{}: {reused} of {} environments reused, {} concretized",
        opts.arch,
        envs.len(),
        envs.len() - reused
    ));
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
        .map(|e| opts.output.join(container(e)).join("pipeline.yml"))
        .collect())
}

fn container(env: &Path) -> String {
    env.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// What each environment of `envs` needs, from the inputs `prepare` wrote beside it, those
/// recorded with its keep list, and the cache's index.
async fn plan(
    opts: &GenerateOptions,
    reuse: &Reuse,
    envs: &[PathBuf],
    printer: &Printer,
) -> anyhow::Result<Vec<Plan>> {
    let cfg = &reuse.config;
    let ac = cfg
        .arch(&opts.arch)
        .with_context(|| format!("architecture `{}` is not in the configuration", opts.arch))?;
    let cache_url = ac.build_cache.url_for(reuse.branch == cfg.default_branch);
    let s3 = ac.build_cache.s3_options();
    let records_url = crate::record::records_url(cache_url)?;
    let records = Store::open(&records_url, &s3)
        .await
        .with_context(|| format!("opening the keep lists {records_url}"))?;
    // First what was recorded for each environment (a lockfile to reuse, or why not), then,
    // only when something is reused, the cache's index: which of its specs are built.
    let mut found: Vec<Result<(Vec<u8>, Lockfile), String>> = Vec::new();
    for env in envs {
        let name = container(env);
        let path = env.join(inputs::FILE);
        let now = match std::fs::read(&path) {
            Ok(bytes) => Inputs::parse(&path.display().to_string(), &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // `prepare` says why there are no inputs.
                let why = std::fs::read_to_string(env.join(inputs::NOT_REUSABLE_FILE))
                    .unwrap_or_else(|_| {
                        format!("no {} (run `spack-cacher prepare`)", inputs::FILE)
                    });
                found.push(Err(format!("not reusable: {}", why.trim())));
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let recorded = keep_lists::recorded(&records, &reuse.branch, &opts.arch, &name)
            .await
            .with_context(|| format!("reading the keep list of {name} in {records_url}"))?;
        let Some(recorded) = recorded else {
            found.push(Err(Stale::NotRecorded.to_string()));
            continue;
        };
        if let Err(stale) = now.reusable(recorded.inputs.as_deref(), &recorded.lockfile) {
            found.push(Err(stale.to_string()));
            continue;
        }
        let what = records.location(&keep_lists::key(&reuse.branch, &opts.arch, &name));
        found.push(
            Lockfile::parse(&what, &recorded.lockfile)
                .map(|lock| (recorded.lockfile, lock))
                .map_err(|e| format!("the recorded lockfile is unreadable: {e}")),
        );
    }
    let cached = if found.iter().any(Result::is_ok) {
        let cache = Store::open(&cache_url.parse()?, &s3)
            .await
            .with_context(|| format!("opening the build cache {cache_url}"))?;
        cached_hashes(&cache, printer).await
    } else {
        HashSet::new()
    };
    Ok(found
        .into_iter()
        .map(|f| match f {
            Err(reason) => Plan::Concretize { reason },
            Ok((lockfile, lock)) => {
                // Externals are never built: Spack's pipelines leave them out.
                let built: Vec<&str> = lock
                    .specs
                    .iter()
                    .filter(|(_, n)| !n.traits.external)
                    .map(|(h, _)| &**h)
                    .collect();
                let specs = built.len();
                match built.iter().filter(|h| !cached.contains(**h)).count() {
                    0 => Plan::Reused { lockfile, specs },
                    missing => Plan::ReusedIncomplete {
                        lockfile,
                        specs,
                        missing,
                    },
                }
            }
        })
        .collect())
}

/// The DAG hashes the cache's indexes list as in it. With both layouts present a spec counts
/// only when each has it: the builder's Spack reads its own version's layout, which is not
/// known here. None for a cache that does not exist yet, or whose index cannot be read (said
/// as a warning): every spec then counts as missing, and `spack ci generate` decides, as it
/// would have without reuse.
async fn cached_hashes(cache: &Store, printer: &Printer) -> HashSet<String> {
    let layouts = match detect_layouts(cache).await {
        Ok(l) => l,
        Err(CacheError::NoCache { .. }) => return HashSet::new(),
        Err(e) => {
            printer.warn(format!(
                "warning: cannot read {} ({e}): Spack checks every reused environment's specs",
                cache.url()
            ));
            return HashSet::new();
        }
    };
    let mut found: Option<HashSet<String>> = None;
    for layout in layouts {
        let hashes: HashSet<String> = match load_index(cache, layout).await {
            Ok(index) => index.db.cached().map(|e| e.node.hash.to_string()).collect(),
            Err(CacheError::MissingIndex { .. }) => HashSet::new(),
            Err(e) => {
                printer.warn(format!(
                    "warning: {e}: Spack checks every reused environment's specs"
                ));
                HashSet::new()
            }
        };
        found = Some(match found {
            None => hashes,
            Some(earlier) => earlier.intersection(&hashes).cloned().collect(),
        });
    }
    found.unwrap_or_default()
}

/// Do what `plan` says for `env`; the Spack log, or what was done instead.
fn one(
    spack: Option<&Path>,
    env: &Path,
    plan: &Plan,
    opts: &GenerateOptions,
) -> anyhow::Result<String> {
    let name = container(env);
    let root = opts.output.join(&name);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let pipeline = root.join("pipeline.yml");
    let lock_path = env.join("spack.lock");
    let write_lock = |bytes: &[u8]| {
        std::fs::write(&lock_path, bytes)
            .with_context(|| format!("writing {}", lock_path.display()))
    };
    let [concretize, generate] = commands(env, &root, &pipeline);
    let to_run = match plan {
        Plan::Reused { lockfile, .. } => {
            write_lock(lockfile)?;
            let noop = noop_pipeline(&format!(
                "{}/{name}: unchanged, and every spec is in the build cache.",
                opts.arch
            ));
            std::fs::write(&pipeline, noop)
                .with_context(|| format!("writing {}", pipeline.display()))?;
            return Ok(String::new());
        }
        Plan::ReusedIncomplete { lockfile, .. } => {
            write_lock(lockfile)?;
            vec![generate]
        }
        Plan::Concretize { .. } => vec![concretize, generate],
    };
    let spack = spack.context("spack is needed")?;
    let log_path = env.join("generate.log");
    let mut log = Vec::new();
    for args in to_run {
        spack::run(spack, &args, &mut log, &log_path)
            .with_context(|| format!("{}/{name}", opts.arch))?;
    }
    Ok(String::from_utf8_lossy(&log).into_owned())
}

/// The pipeline Spack writes when nothing is to be rebuilt: its no-op job alone, which
/// `process` counts as such.
fn noop_pipeline(message: &str) -> String {
    // Only its job's name matters: `process` writes the no-op child pipeline itself.
    let mut p = model::ci::Pipeline::noop(message, Vec::new());
    if let Some(job) = p.jobs.shift_remove("nothing-to-do") {
        p.jobs.insert(NOOP_JOB.to_string(), job);
    }
    p.to_yaml()
}
