//! `spack-cacher record`: put each prepared environment's concretized `spack.lock` of one
//! architecture into the build cache the branch fills, as the keep lists the janitor protects
//! (`stores::keep_lists`), each with the inputs it was concretized from, which the next pipeline
//! reuses it by. Run with the upload, before any build job: a janitor running while the pipeline
//! builds already keeps what it will need.

use std::path::PathBuf;

use anyhow::{Context, bail};
use model::config::Config;
use model::spack::inputs::{self, Inputs};
use stores::keep_lists::{self, KeepList};
use stores::{S3Options, Store, StoreUrl};

#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub config: Config,
    /// Where `prepare` wrote the environments (and `generate` concretized them).
    pub envs: PathBuf,
    pub arch: String,
    /// The branch slug the pipeline runs for.
    pub branch: String,
}

/// The records prefix of the cache `url`: `<url>/_spacktainerizah/keep`.
pub fn records_url(url: &str) -> anyhow::Result<StoreUrl> {
    format!("{}/{}", url.trim_end_matches('/'), keep_lists::PREFIX)
        .parse()
        .with_context(|| format!("the keep lists of {url}"))
}

/// What `record` did: where each lockfile went, and the lists of retired containers removed.
#[derive(Debug, Default)]
pub struct Recorded {
    pub written: Vec<String>,
    pub removed: Vec<String>,
}

/// The store of the keep lists in the cache the branch fills, and how to reach it.
pub fn keep_lists_store(opts: &RecordOptions) -> anyhow::Result<(StoreUrl, S3Options)> {
    let cfg = &opts.config;
    let ac = cfg
        .arch(&opts.arch)
        .with_context(|| format!("architecture `{}` is not in the configuration", opts.arch))?;
    let bucket = &ac.build_cache;
    let url = records_url(bucket.url_for(opts.branch == cfg.default_branch))?;
    Ok((url, bucket.s3_options()))
}

/// Record every lockfile of the architecture in `store` (the keep lists' store,
/// [`keep_lists_store`]), then remove the lists of this branch and architecture whose
/// container is no longer defined.
pub async fn run(store: &Store, opts: &RecordOptions) -> anyhow::Result<Recorded> {
    let locks = lockfiles(opts)?;
    let written = locks
        .iter()
        .map(|l| store.location(&keep_lists::key(&opts.branch, &opts.arch, &l.container)))
        .collect();
    let removed = keep_lists::record_arch(store, &opts.branch, &opts.arch, locks)
        .await
        .with_context(|| {
            format!(
                "recording the keep lists of {} in {}",
                opts.arch,
                store.url()
            )
        })?;
    Ok(Recorded {
        written,
        removed: removed.iter().map(|k| store.location(k)).collect(),
    })
}

/// Every concretized lockfile of the architecture, by container, each checked, with the record
/// of its inputs when `prepare` wrote them: all are read before the first is written.
fn lockfiles(opts: &RecordOptions) -> anyhow::Result<Vec<KeepList>> {
    let mut locks = Vec::new();
    for env in crate::prepare::environments(&opts.envs, &opts.arch)? {
        let path = env.join("spack.lock");
        let name = env
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes =
            std::fs::read(&path).with_context(|| format!("{}: not concretized", path.display()))?;
        model::spack::lockfile::Lockfile::parse(&path.display().to_string(), &bytes)?;
        let inputs_path = env.join(inputs::FILE);
        let inputs = match std::fs::read(&inputs_path) {
            Ok(text) => Some(
                Inputs::parse(&inputs_path.display().to_string(), &text)?
                    .record(&bytes)
                    .to_json(),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", inputs_path.display())),
        };
        locks.push(KeepList {
            container: name,
            lockfile: bytes,
            inputs,
        });
    }
    if locks.is_empty() {
        bail!(
            "no environment of {} under {}",
            opts.arch,
            opts.envs.display()
        );
    }
    Ok(locks)
}
