//! `spackitor clean`: validate every input, plan, rewrite the index (conditionally, re-planning
//! when someone else rewrote it), then delete in order: dependents before their dependencies,
//! manifests before their blobs, in batches of 1000 with several requests in flight.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use host::git::Remote;
use std::time::{Instant, SystemTime};
use stores::S3Options;

use anyhow::{Context, bail};
use model::spack::buildcache::{Layout, v3};
use serde::Serialize;
use stores::{
    Condition, DELETE_BATCH, DELETE_CONCURRENCY, DeleteFailure, RequestCounts, Store, StoreError,
};
use terminal::cli::exit;
use terminal::printer::{Printer, human_bytes, table};

use crate::deletion_plan::{self, LayoutPlan, Reason, Rules};
use crate::journal;
use crate::keep::{self, KeepSource};
use crate::manifests;
use crate::model::{CacheModel, LayoutModel, Unowned};
use crate::repos::PackageSet;

/// Index rewrites tried before giving up when other writers keep changing the index.
const REWRITE_ATTEMPTS: usize = 3;

#[derive(Debug, Clone)]
pub struct CleanOptions {
    pub max_age_days: f64,
    pub keep: Vec<KeepSource>,
    /// How keep lists in stores are reached (the cache's own S3 settings).
    pub keep_s3: S3Options,
    /// The git remote whose branches are alive, and its default branch: recorded keep lists
    /// of other branches are dropped. Without it every record is kept.
    pub branches: Option<(Remote, String)>,
    pub spack_repos: Vec<PathBuf>,
    pub orphans: bool,
    pub dry_run: bool,
    pub no_reindex: bool,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Serialize)]
pub struct Report {
    pub cache: String,
    pub dry_run: bool,
    pub layouts: Vec<LayoutPlan>,
    pub totals: Totals,
    /// Index objects written (v2: the hash file emptied, the index, its hash; v3: index blob and
    /// manifest), repairs included.
    pub index_writes: usize,
    /// Indexes written back by another writer during the deletes, repaired.
    pub index_repairs: Vec<IndexRepair>,
    /// Whether the plan was recorded in the cache before the index was rewritten.
    pub plan_recorded: bool,
    /// Requests and time spent recording the plan, checking the indexes after the deletes and
    /// removing the plan (part of `requests` and `duration_seconds`).
    pub convergence: Convergence,
    /// v3 manifests read this run, and known from the previous run's memo.
    pub manifests_read: usize,
    pub manifests_remembered: usize,
    pub failures: Vec<Failure>,
    pub requests: RequestCounts,
    pub duration_seconds: f64,
    /// Keep lockfiles read.
    pub keep_lists: usize,
    /// What each records prefix held: nothing yet, or how many lists per branch.
    pub keep_records: Vec<keep::RecordsRead>,
    /// Recorded keep lists of branches the remote no longer has: left out, and removed.
    pub dropped_keep_lists: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub specs: usize,
    pub objects: usize,
    pub bytes: u64,
    pub orphans: usize,
    pub orphan_bytes: u64,
    /// Objects of an interrupted run's specs, finished by this one.
    pub leftovers: usize,
    pub leftover_bytes: u64,
    pub kept: usize,
    /// Specs and bytes by reason label.
    pub by_reason: BTreeMap<String, (usize, u64)>,
}

#[derive(Debug, Serialize)]
pub struct Failure {
    pub key: String,
    pub code: String,
    pub message: String,
}

impl From<DeleteFailure> for Failure {
    fn from(f: DeleteFailure) -> Self {
        Failure {
            key: f.key,
            code: f.code,
            message: f.message,
        }
    }
}

pub async fn run(store: &Store, opts: &CleanOptions, printer: &Printer) -> anyhow::Result<u8> {
    let started = Instant::now();
    // Every input is checked before anything is deleted.
    let alive = match &opts.branches {
        Some((remote, default_branch)) => Some(
            remote
                .alive(default_branch)
                .context("reading which branches are alive")?,
        ),
        None => None,
    };
    let keep = keep::load(&opts.keep, &opts.keep_s3, alive.as_ref()).await?;
    for r in keep.records.iter().filter(|r| !r.recorded) {
        printer.log(format!(
            "nothing recorded yet under {}: it protects no spec (a new deployment, or every branch it recorded for is gone)",
            r.url
        ));
    }
    let lockfiles = &keep.lockfiles;
    let packages = if opts.spack_repos.is_empty() {
        None
    } else {
        let set = PackageSet::load(&opts.spack_repos)?;
        printer.debug(format!(
            "{} packages in {} repositories",
            set.len(),
            set.sources.len()
        ));
        Some(set)
    };
    if !(opts.max_age_days.is_finite()
        && (0.0..=terminal::cli::MAX_DAYS).contains(&opts.max_age_days))
    {
        bail!(
            "--max-age {} is out of range: give 0 to {} days",
            opts.max_age_days,
            terminal::cli::MAX_DAYS
        );
    }
    let rules = Rules {
        max_age: terminal::cli::days(opts.max_age_days),
        keep: keep::hashes(lockfiles),
        packages,
        orphans: opts.orphans,
        now: SystemTime::now(),
    };

    let report = match execute(
        store,
        printer,
        started,
        opts.dry_run,
        opts.no_reindex,
        |m| Ok(deletion_plan::plan(m, &rules)),
    )
    .await
    {
        Err(e) if not_filled_yet(&e) => return nothing_to_clean(store, printer),
        other => other?,
    };
    // The records of deleted branches go once the run has done its work.
    let mut report = report;
    report.keep_lists = lockfiles.len();
    report.keep_records = keep.records.clone();
    for (records, keys) in &keep.dropped {
        report
            .dropped_keep_lists
            .extend(keys.iter().map(|k| records.location(k)));
        if !opts.dry_run && report.failures.is_empty() {
            records
                .delete_all(keys.clone())
                .await
                .context("removing the keep lists of deleted branches")?;
        }
    }
    print(store, &report, printer)
}

/// Whether `e` says the store holds no build cache at all: no index, and nothing under
/// `build_cache/` or `v3/` (objects without an index are another error). A missing bucket or an
/// unreadable listing is not this.
fn not_filled_yet(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<stores::cache::CacheError>(),
            Some(stores::cache::CacheError::NoCache { .. })
        )
    })
}

/// A cache no pipeline has filled yet — the branch cache of a new deployment, before any
/// feature branch built — is the normal life cycle, not a failure: there is nothing to clean.
fn nothing_to_clean(store: &Store, printer: &Printer) -> anyhow::Result<u8> {
    let message = format!(
        "{}: no build cache there yet (no index, nothing under build_cache/ or v3/): nothing to clean",
        store.url()
    );
    if printer.is_json() {
        printer.json(&serde_json::json!({ "cache": store.url(), "empty": true }))?;
        printer.log(message);
    } else {
        printer.data(&format!("{message}\n"))?;
    }
    Ok(exit::SUCCESS)
}

/// Load the cache, plan with `plan_fn` (adding what an interrupted run left), record the plan
/// and rewrite the indexes (re-reading the cache and planning again when another writer changed
/// an index meanwhile), delete in order, repair an index written back meanwhile, then remove the
/// recorded plan. Shared by `clean` and `purge`. Nothing is written or deleted with `dry_run`.
pub async fn execute(
    store: &Store,
    printer: &Printer,
    started: Instant,
    dry_run: bool,
    no_reindex: bool,
    plan_fn: impl Fn(&CacheModel) -> anyhow::Result<Vec<LayoutPlan>>,
) -> anyhow::Result<Report> {
    let planned = plan_and_commit(store, printer, started, dry_run, no_reindex, &plan_fn).await?;
    let Planned {
        model,
        plans,
        mut index_writes,
        recorded,
        plan_recorded,
        mut convergence,
    } = planned;
    if no_reindex && !dry_run && plans.iter().any(|p| !p.specs.is_empty()) {
        printer.log("--no-reindex: the index still lists the deleted specs until `spackitor reindex` or `spack buildcache update-index` runs");
    }
    if plans.iter().any(|p| !p.leftovers.is_empty()) {
        printer.log("finishing the deletions of an interrupted run");
    }

    let mut failures = Vec::new();
    let mut index_repairs = Vec::new();
    if !dry_run {
        failures = delete(store, printer, &model, &plans).await?;
        remember_manifests(store, &model, &plans).await?;
        if !no_reindex {
            index_repairs = convergence
                .measure(store, repair_indexes(store, &model, &plans, printer))
                .await?;
            index_writes += index_repairs.iter().map(|r| r.writes).sum::<usize>();
        }
        // A run whose deletes failed keeps its plan: the next one finishes it.
        if failures.is_empty() && (recorded.is_some() || plan_recorded) {
            convergence.measure(store, journal::remove(store)).await?;
        }
    }

    Ok(Report {
        cache: store.url(),
        dry_run,
        totals: totals(&plans),
        layouts: plans,
        index_writes,
        index_repairs,
        plan_recorded,
        convergence,
        manifests_read: model.layouts.iter().map(|l| l.manifests.read).sum(),
        manifests_remembered: model.layouts.iter().map(|l| l.manifests.remembered).sum(),
        failures,
        requests: store.requests(),
        duration_seconds: started.elapsed().as_secs_f64(),
        keep_lists: 0,
        keep_records: Vec::new(),
        dropped_keep_lists: Vec::new(),
    })
}

/// The cache as planned, and what was written before the deletes.
struct Planned {
    model: CacheModel,
    plans: Vec<LayoutPlan>,
    index_writes: usize,
    /// The plan an interrupted run had recorded.
    recorded: Option<journal::Recorded>,
    /// Whether this run recorded its plan.
    plan_recorded: bool,
    convergence: Convergence,
}

/// What converging costs a run: recording its plan, reading the indexes again after the
/// deletes (and repairing them), removing the plan.
#[derive(Debug, Default, Serialize)]
pub struct Convergence {
    pub requests: u64,
    pub seconds: f64,
}

impl Convergence {
    async fn measure<T>(&mut self, store: &Store, step: impl std::future::Future<Output = T>) -> T {
        let (before, started) = (store.requests().total(), Instant::now());
        let out = step.await;
        self.seconds += started.elapsed().as_secs_f64();
        self.requests += store.requests().total() - before;
        out
    }
}

/// Load, plan and (unless dry or `no_reindex`) record the plan and rewrite the indexes, again
/// from the start when another writer changed an index meanwhile.
async fn plan_and_commit(
    store: &Store,
    printer: &Printer,
    started: Instant,
    dry_run: bool,
    no_reindex: bool,
    plan_fn: &impl Fn(&CacheModel) -> anyhow::Result<Vec<LayoutPlan>>,
) -> anyhow::Result<Planned> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let loaded = CacheModel::load_shown(store, manifests::Reads::All, printer).await;
        let model = match loaded {
            Ok(m) => m,
            Err(e) if is_conflict(&e) && attempt < REWRITE_ATTEMPTS => {
                printer.log(format!("{e:#}; reading the cache again"));
                continue;
            }
            Err(e) => return Err(e),
        };
        printer.debug(format!(
            "read the cache in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
        // A corrupt recorded plan stops the run here, before any change.
        let recorded = journal::read(store, &model).await?;
        let mut plans = plan_fn(&model)?;
        if let Some(r) = &recorded {
            for (lm, plan) in model.layouts.iter().zip(plans.iter_mut()) {
                plan.leftovers = journal::leftovers(&model, lm, plan, r);
            }
        }
        printer.debug(format!(
            "planned in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
        let mut planned = Planned {
            model,
            plans,
            index_writes: 0,
            recorded,
            plan_recorded: false,
            convergence: Convergence::default(),
        };
        if dry_run || no_reindex {
            return Ok(planned);
        }
        let hashes = journal::hashes_of(&planned.plans);
        let written = planned
            .convergence
            .measure(store, journal::write(store, hashes))
            .await
            .map_err(|e| e.context("nothing was changed"))?;
        planned.plan_recorded = written > 0;
        match rewrite_indexes(store, &planned.model, &planned.plans).await {
            Ok(writes) => {
                planned.index_writes = writes;
                return Ok(planned);
            }
            Err(e) if is_conflict(&e) && attempt < REWRITE_ATTEMPTS => {
                printer.log(format!(
                    "the index changed while planning ({e:#}); reading the cache again"
                ));
            }
            Err(e) => return Err(e.context("rewriting the index; nothing was deleted")),
        }
    }
}

/// Record the plan in the cache, then write each index without the specs it deletes: a run
/// killed after this finishes on the next one. Returns whether a plan was recorded and the
/// index objects written.
pub async fn commit(
    store: &Store,
    model: &CacheModel,
    plans: &[LayoutPlan],
) -> anyhow::Result<(bool, usize)> {
    let recorded = journal::write(store, journal::hashes_of(plans)).await? > 0;
    Ok((recorded, rewrite_indexes(store, model, plans).await?))
}

/// Delete the planned keys wave by wave; the per-key failures. A wave with failures stops the
/// later ones.
async fn delete(
    store: &Store,
    printer: &Printer,
    model: &CacheModel,
    plans: &[LayoutPlan],
) -> anyhow::Result<Vec<Failure>> {
    let mut failures = Vec::new();
    let waves = deletion_waves(model, plans);
    let total: usize = waves.iter().map(Vec::len).sum();
    let pb = printer.progress(Some(total as u64), "deleting");
    // A wave goes in slices of as many keys as the store has requests in flight, so only a
    // slice's keys are ever copied; the batches of 1000 stay whole.
    for wave in waves {
        for slice in wave.chunks(DELETE_BATCH * DELETE_CONCURRENCY) {
            let keys = slice.iter().map(|k| k.to_string()).collect();
            let report = store.delete_many(keys).await.context("deleting objects")?;
            failures.extend(report.failed.into_iter().map(Failure::from));
            pb.inc(slice.len() as u64);
        }
        // Later waves hold what the failed keys still need (their dependencies, blobs):
        // stop here. The index no longer lists any of it, so what is left is orphans only.
        if !failures.is_empty() {
            printer.log(format!(
                "{} object(s) could not be deleted: later deletions are skipped; what is left is unlisted and the next run removes it",
                failures.len()
            ));
            break;
        }
    }
    pb.finish_and_clear();
    Ok(failures)
}

/// An index another writer put back while this run deleted, rewritten without what it deleted.
#[derive(Debug, Serialize)]
pub struct IndexRepair {
    pub layout: String,
    /// Deleted specs the index named again.
    pub specs: usize,
    #[serde(skip)]
    pub writes: usize,
}

/// After the deletes, read each index this run rewrote again: another writer (`spack buildcache
/// update-index` from a listing made before the deletes) may have put back one that names what
/// was just deleted. Such an index is rewritten without those specs, guarded by its version tag.
pub async fn repair_indexes(
    store: &Store,
    model: &CacheModel,
    plans: &[LayoutPlan],
    printer: &Printer,
) -> anyhow::Result<Vec<IndexRepair>> {
    let mut repairs = Vec::new();
    for (lm, plan) in model.layouts.iter().zip(plans) {
        let gone = journal::gone_hashes(plan);
        for attempt in 1..=REWRITE_ATTEMPTS {
            if gone.is_empty() {
                break;
            }
            let index = match stores::cache::load_index(store, lm.layout).await {
                Ok(i) => i,
                Err(stores::cache::CacheError::MissingIndex { .. }) => break,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("reading the {} index again after the deletes", lm.layout)
                    });
                }
            };
            let named: HashSet<&str> = gone
                .iter()
                .map(|h| &**h)
                .filter(|h| index.db.entries.contains_key(*h))
                .collect();
            if named.is_empty() {
                break;
            }
            let guard = index.guard_etag.clone().map(Condition::IfMatch);
            let written = stores::cache::write_index(
                store,
                lm.layout,
                index.db.to_bytes_without(&named),
                &index.db.version,
                &guard.unwrap_or_default(),
            )
            .await;
            match written {
                Ok(writes) => {
                    printer.log(format!(
                        "the {} index was written back while deleting and named {} deleted spec(s): rewritten without them",
                        lm.layout,
                        named.len()
                    ));
                    repairs.push(IndexRepair {
                        layout: lm.layout.to_string(),
                        specs: named.len(),
                        writes,
                    });
                    break;
                }
                Err(StoreError::PreconditionFailed { .. }) if attempt < REWRITE_ATTEMPTS => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("repairing the {} index", lm.layout));
                }
            }
        }
    }
    Ok(repairs)
}

/// Print a report (text or JSON) and per-key failures; the exit code says whether every
/// delete succeeded.
pub fn print(store: &Store, report: &Report, printer: &Printer) -> anyhow::Result<u8> {
    if printer.is_json() {
        printer.json(report)?;
    } else {
        printer.data(&text(report, printer.verbose))?;
    }
    for f in &report.failures {
        printer.warn(format!(
            "error: could not delete {}: {} {}",
            store.location(&f.key),
            f.code,
            f.message
        ));
    }
    Ok(if report.failures.is_empty() {
        exit::SUCCESS
    } else {
        exit::ERROR
    })
}

/// Write the v3 manifest memo for the next run, without the manifests this run deleted.
async fn remember_manifests(
    store: &Store,
    model: &CacheModel,
    plans: &[LayoutPlan],
) -> anyhow::Result<()> {
    for (lm, plan) in model.layouts.iter().zip(plans) {
        if lm.layout != Layout::V3 {
            continue;
        }
        let deleted: HashSet<&str> = plan
            .specs
            .iter()
            .flat_map(|s| s.objects.iter().map(String::as_str))
            .chain(plan.orphans.iter().map(|o| o.key.as_str()))
            .chain(plan.leftovers.iter().map(|o| o.key.as_str()))
            .collect();
        let gone: HashSet<u32> = lm
            .manifests
            .by_manifest
            .keys()
            .copied()
            .filter(|&i| deleted.contains(model.key(i)))
            .collect();
        if lm.manifests.memo_stale || !gone.is_empty() {
            manifests::write_memo(store, &model.catalog, &lm.manifests, &gone).await?;
        }
    }
    Ok(())
}

/// Someone else changed the cache while this run read or wrote it: read it again.
fn is_conflict(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<StoreError>(),
            Some(StoreError::PreconditionFailed { .. })
        ) || c.downcast_ref::<manifests::Vanished>().is_some()
    })
}

/// Write each index without the deleted specs, guarded by the etag read. Returns the number of
/// objects written.
pub async fn rewrite_indexes(
    store: &Store,
    model: &CacheModel,
    plans: &[LayoutPlan],
) -> anyhow::Result<usize> {
    let mut writes = 0;
    for (lm, plan) in model.layouts.iter().zip(plans) {
        let removed = plan.deleted_hashes();
        if removed.is_empty() {
            continue;
        }
        writes += write_index(store, lm, lm.index.db.to_bytes_without(&removed)).await?;
    }
    Ok(writes)
}

/// Write `bytes` as the index of `lm`'s layout, conditional on the index not having changed
/// since it was read.
pub async fn write_index(store: &Store, lm: &LayoutModel, bytes: Vec<u8>) -> anyhow::Result<usize> {
    let guard = lm
        .index
        .guard_etag
        .clone()
        .map(Condition::IfMatch)
        .unwrap_or_default();
    stores::cache::write_index(store, lm.layout, bytes, &lm.index.db.version, &guard)
        .await
        .with_context(|| format!("writing the {} index of {}", lm.layout, store.url()))
}

/// The keys to delete, grouped in waves run one after the other. Keys are ordered by phase
/// (dependents' objects before their dependencies', v3 manifests before blobs) and cut into
/// batches of [`DELETE_BATCH`]; consecutive batches of one phase share a wave and run in
/// parallel, a batch spanning two phases runs alone. So a dependency is never deleted before
/// its dependent, and there are exactly ceil(keys / 1000) delete requests.
pub fn deletion_waves<'a>(model: &CacheModel, plans: &'a [LayoutPlan]) -> Vec<Vec<&'a str>> {
    let max_layer = plans
        .iter()
        .flat_map(|p| p.specs.iter().map(|s| s.layer))
        .max()
        .unwrap_or(0);
    let blobs_phase = max_layer + 1;
    let mut keyed: Vec<(usize, &'a str)> = Vec::new();
    for (lm, plan) in model.layouts.iter().zip(plans) {
        for s in &plan.specs {
            for k in &s.objects {
                let phase = if lm.layout == Layout::V3 && k.starts_with(v3::BLOBS_PREFIX) {
                    blobs_phase
                } else {
                    s.layer
                };
                keyed.push((phase, k));
            }
        }
        for o in plan.orphans.iter().chain(&plan.leftovers) {
            let phase = if o.kind == Unowned::Blob {
                blobs_phase + 1
            } else {
                blobs_phase
            };
            keyed.push((phase, &o.key));
        }
    }
    // A key is deleted once, even when two rules name it.
    let mut seen = HashSet::new();
    keyed.retain(|(_, k)| seen.insert(*k));
    keyed.sort_by_key(|(phase, _)| *phase);

    let mut waves: Vec<Vec<&'a str>> = Vec::new();
    let mut wave_phase: Option<usize> = None;
    for chunk in keyed.chunks(DELETE_BATCH) {
        let (lo, hi) = (chunk[0].0, chunk[chunk.len() - 1].0);
        let single = (lo == hi).then_some(lo);
        let keys = chunk.iter().map(|(_, k)| *k);
        match (single, wave_phase, waves.last_mut()) {
            (Some(p), Some(w), Some(last)) if p == w => last.extend(keys),
            _ => waves.push(keys.collect()),
        }
        wave_phase = single;
    }
    waves
}

fn totals(plans: &[LayoutPlan]) -> Totals {
    let mut t = Totals::default();
    for p in plans {
        t.kept += p.kept;
        for s in &p.specs {
            t.specs += 1;
            t.objects += s.objects.len();
            t.bytes += s.bytes;
            let e = t.by_reason.entry(s.reason.label().to_string()).or_default();
            e.0 += 1;
            e.1 += s.bytes;
        }
        for o in &p.orphans {
            t.orphans += 1;
            t.orphan_bytes += o.bytes;
        }
        for o in &p.leftovers {
            t.leftovers += 1;
            t.leftover_bytes += o.bytes;
        }
    }
    t
}

fn text(r: &Report, each_spec: bool) -> String {
    let verb = if r.dry_run { "would delete" } else { "deleted" };
    let mut out = format!(
        "{}{}: {verb} {} spec(s), {} object(s), {}\n",
        r.cache,
        if r.dry_run { " (dry run)" } else { "" },
        r.totals.specs,
        r.totals.objects,
        human_bytes(r.totals.bytes)
    );
    let mut rows: Vec<Vec<String>> = r
        .totals
        .by_reason
        .iter()
        .map(|(reason, (n, b))| vec![format!("  {reason}"), n.to_string(), human_bytes(*b)])
        .collect();
    rows.push(vec![
        "  orphans".into(),
        r.totals.orphans.to_string(),
        human_bytes(r.totals.orphan_bytes),
    ]);
    out.push_str(&table(
        &["REASON", "COUNT", "BYTES"],
        &rows,
        &[false, true, true],
    ));
    for p in &r.layouts {
        out.push_str(&format!(
            "{}: kept {} spec(s) ({} needed by keep lockfiles, {} newer than the index)\n",
            p.layout, p.kept, p.kept_by_lockfile, p.kept_as_in_flight
        ));
        for s in p.specs.iter().filter(|_| each_spec) {
            let why = match &s.reason {
                Reason::DependentOf { of_hash, of_name } => {
                    format!("dependent of {of_name}/{}", &of_hash[..7])
                }
                other => other.label().to_string(),
            };
            out.push_str(&format!(
                "  {} {}@{} /{}: {why}\n",
                verb,
                s.name,
                s.version,
                &s.hash[..7]
            ));
        }
    }
    out.push_str(&notes(r, verb));
    let verb_dropped = if r.dry_run { "would drop" } else { "dropped" };
    for k in &r.dropped_keep_lists {
        out.push_str(&format!(
            "{verb_dropped} the keep list of a deleted branch: {k}\n"
        ));
    }
    out.push_str(&format!(
        "index writes: {}; v3 manifests read: {} (remembered from the last run: {}); \
         requests: {} list, {} get, {} put, {} delete; took {:.1}s\n",
        r.index_writes,
        r.manifests_read,
        r.manifests_remembered,
        r.requests.list,
        r.requests.get,
        r.requests.put,
        r.requests.delete,
        r.duration_seconds
    ));
    out
}

/// The report's lines on interrupted runs finished, indexes repaired and keep lists read.
fn notes(r: &Report, verb: &str) -> String {
    let mut out = String::new();
    if r.totals.leftovers > 0 {
        out.push_str(&format!(
            "finished an interrupted run: {verb} {} object(s) it had taken out of the index, {}\n",
            r.totals.leftovers,
            human_bytes(r.totals.leftover_bytes)
        ));
    }
    for rep in &r.index_repairs {
        out.push_str(&format!(
            "the {} index was written back by another writer while deleting and named {} deleted spec(s): rewritten without them\n",
            rep.layout, rep.specs
        ));
    }
    for rec in &r.keep_records {
        if rec.recorded {
            let per: Vec<String> = rec
                .by_branch
                .iter()
                .map(|(b, n)| format!("{b} {n}"))
                .collect();
            out.push_str(&format!(
                "keep lists read from {}: {}\n",
                rec.url,
                per.join(", ")
            ));
        } else {
            out.push_str(&format!("nothing recorded yet under {}\n", rec.url));
        }
    }
    out
}
