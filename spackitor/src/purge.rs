//! `spackitor purge`: delete chosen specs (and, if asked, everything that depends on them),
//! never a spec a keep lockfile needs; the index is rewritten as `clean` does.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use anyhow::bail;
use model::spack::spec::{DepTypes, Shared};
use stores::Store;

use crate::clean;
use crate::deletion_plan::{self, LayoutPlan, Reason};
use crate::inspect::resolve;
use crate::keep::{self, KeepSource};
use crate::model::CacheModel;
use stores::S3Options;
use terminal::printer::Printer;

#[derive(Debug, Clone)]
pub struct PurgeOptions {
    /// A hash (7+ characters), `name` or `name@version`.
    pub target: String,
    pub with_dependents: bool,
    pub keep: Vec<KeepSource>,
    /// How keep lists in stores are reached (the cache's own S3 settings).
    pub keep_s3: S3Options,
    pub dry_run: bool,
}

pub async fn run(store: &Store, opts: &PurgeOptions, printer: &Printer) -> anyhow::Result<u8> {
    let started = Instant::now();
    let keep_hashes = keep::hashes(&keep::load(&opts.keep, &opts.keep_s3, None).await?.lockfiles);
    let report = clean::execute(store, printer, started, opts.dry_run, false, |model| {
        plan(model, opts, &keep_hashes)
    })
    .await?;
    clean::print(store, &report, printer)
}

fn plan(
    model: &CacheModel,
    opts: &PurgeOptions,
    keep: &std::collections::HashSet<String>,
) -> anyhow::Result<Vec<LayoutPlan>> {
    let chosen = resolve(model, &opts.target)?;
    let mut plans = Vec::new();
    for lm in &model.layouts {
        let mut reasons: HashMap<Shared, Reason> = HashMap::new();
        for (_, h) in chosen.iter().filter(|(l, _)| l.layout == lm.layout) {
            reasons.insert(h.clone(), Reason::Purged);
        }
        if opts.with_dependents {
            let queue: VecDeque<Shared> = reasons.keys().cloned().collect();
            deletion_plan::cascade(lm, &mut reasons, queue);
        } else {
            let broken: Vec<String> = reasons
                .keys()
                .flat_map(|h| lm.graph.dependents_closure([&**h], DepTypes::LINK_RUN))
                .filter(|d| !reasons.contains_key(d) && lm.specs.contains_key(d))
                .map(|d| {
                    format!(
                        "  {}@{} /{} ({})",
                        lm.node(&d).name,
                        lm.node(&d).version,
                        d,
                        lm.layout
                    )
                })
                .collect();
            if !broken.is_empty() {
                bail!(
                    "{} spec(s) depend on `{}` and would break; nothing was deleted (add --with-dependents to delete them too):\n{}",
                    broken.len(),
                    opts.target,
                    broken.join("\n")
                );
            }
        }
        let kept = deletion_plan::keep_closure(lm, keep);
        let refused: Vec<String> = reasons
            .keys()
            .filter(|h| kept.contains(*h))
            .map(|h| {
                format!(
                    "  {}@{} /{} ({})",
                    lm.node(h).name,
                    lm.node(h).version,
                    h,
                    lm.layout
                )
            })
            .collect();
        if !refused.is_empty() {
            bail!(
                "refusing to delete specs a keep lockfile needs; nothing was deleted:\n{}",
                refused.join("\n")
            );
        }
        plans.push(deletion_plan::materialize(
            model,
            lm,
            reasons,
            None,
            keep,
            kept.len(),
            0,
        ));
    }
    Ok(plans)
}
