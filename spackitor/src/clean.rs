//! `spackitor clean`: validate every input, plan (`model::cleanup`), rewrite the index
//! (conditionally, re-planning when someone else rewrote it), then delete in order: dependents
//! before their dependencies, manifests before their blobs, in batches of 1000 with several
//! requests in flight.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::{Context, bail};
use host::git::Remote;
use model::cleanup::{self, CacheView, LayoutPlan, LayoutView, Reason, Rules};
use model::spack::buildcache::Layout;
use serde::Serialize;
use stores::{
    Condition, DELETE_BATCH, DELETE_CONCURRENCY, DeleteFailure, RequestCounts, S3Options, Store,
    StoreError,
};
use terminal::cli::exit;
use terminal::printer::{Printer, human_bytes, table};

use crate::journal;
use crate::keep::{self, KeepSource};
use crate::loaded::{LoadedCache, WriteBack};
use crate::manifests;
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
    /// Objects the store refused to delete. When there are any the run exits 2 and its plan
    /// stays recorded in the cache: the next run deletes what is left.
    pub failures: Vec<Failure>,
    /// Objects not tried because an earlier wave had failures (they may still be needed by
    /// what failed to go: a dependency of a spec whose objects remain).
    pub skipped: usize,
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

/// Clean `store`, with the keep lists of `keep` (opened by the run).
pub async fn run(
    store: &Store,
    keep: &[keep::Opened],
    opts: &CleanOptions,
    printer: &Printer,
) -> anyhow::Result<u8> {
    let started = Instant::now();
    // Every input is checked before anything is deleted.
    let keep = load_keep(keep, opts, printer).await?;
    let rules = rules(opts, &keep, printer)?;
    let report = execute(
        store,
        printer,
        started,
        opts.dry_run,
        opts.no_reindex,
        |view| Ok(cleanup::plan(view, &rules)),
    )
    .await;
    let mut report = match report {
        Err(e) if not_filled_yet(&e) => return nothing_to_clean(store, printer),
        other => other?,
    };
    report.keep_lists = keep.lockfiles.len();
    report.keep_records = keep.records.clone();
    // The records of deleted branches go once the run has done its work.
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

/// The keep lists, without the records of branches the remote no longer has (when
/// `opts.branches` names the remote).
async fn load_keep(
    keep: &[keep::Opened],
    opts: &CleanOptions,
    printer: &Printer,
) -> anyhow::Result<keep::Loaded> {
    let alive = match &opts.branches {
        Some((remote, default_branch)) => Some(
            remote
                .alive(default_branch)
                .context("reading which branches are alive")?,
        ),
        None => None,
    };
    let keep = keep::load(keep, alive.as_ref()).await?;
    for r in keep.records.iter().filter(|r| !r.recorded) {
        printer.log(format!(
            "nothing recorded yet under {}: it protects no spec (a new deployment, or every branch it recorded for is gone)",
            r.url
        ));
    }
    Ok(keep)
}

/// The planner's rules from the options, the keep lists and the package repositories.
fn rules(opts: &CleanOptions, keep: &keep::Loaded, printer: &Printer) -> anyhow::Result<Rules> {
    let packages = if opts.spack_repos.is_empty() {
        None
    } else {
        let set = PackageSet::load(&opts.spack_repos)?;
        printer.debug(format!(
            "{} packages in {} repositories",
            set.packages.len(),
            set.sources.len()
        ));
        Some(set.packages)
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
    Ok(Rules {
        max_age: terminal::cli::days(opts.max_age_days),
        keep: keep::hashes(&keep.lockfiles),
        packages,
        orphans: opts.orphans,
        now: SystemTime::now(),
    })
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
    plan_fn: impl Fn(&CacheView) -> anyhow::Result<Vec<LayoutPlan>>,
) -> anyhow::Result<Report> {
    let planned = plan_and_commit(store, printer, started, dry_run, no_reindex, &plan_fn).await?;
    let Planned {
        loaded,
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

    let mut deleted = Deleted::default();
    let mut index_repairs = Vec::new();
    if !dry_run {
        deleted = delete(store, printer, &plans).await?;
        remember_manifests(store, &loaded, &plans).await?;
        if !no_reindex {
            index_repairs = convergence
                .measure(store, repair_indexes(store, &loaded.view, &plans, printer))
                .await?;
            index_writes += index_repairs.iter().map(|r| r.writes).sum::<usize>();
        }
        // A run whose deletes failed keeps its plan: the next one finishes it.
        if deleted.failures.is_empty() && (recorded.is_some() || plan_recorded) {
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
        manifests_read: loaded.write_backs.iter().map(|w| w.memo.read).sum(),
        manifests_remembered: loaded.write_backs.iter().map(|w| w.memo.remembered).sum(),
        failures: deleted.failures,
        skipped: deleted.skipped,
        requests: store.requests(),
        duration_seconds: started.elapsed().as_secs_f64(),
        keep_lists: 0,
        keep_records: Vec::new(),
        dropped_keep_lists: Vec::new(),
    })
}

/// The cache as planned, and what was written before the deletes.
struct Planned {
    loaded: LoadedCache,
    plans: Vec<LayoutPlan>,
    index_writes: usize,
    /// The plan an interrupted run had recorded.
    recorded: Option<cleanup::Recorded>,
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
    plan_fn: &impl Fn(&CacheView) -> anyhow::Result<Vec<LayoutPlan>>,
) -> anyhow::Result<Planned> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let loaded = LoadedCache::load_shown(store, manifests::Reads::All, printer).await;
        let loaded = match loaded {
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
        let view = &loaded.view;
        let recorded = journal::read(store, &view.listing).await?;
        let mut plans = plan_fn(view)?;
        if let Some(r) = &recorded {
            for (lm, plan) in view.layouts.iter().zip(plans.iter_mut()) {
                plan.leftovers = cleanup::leftovers(view, lm, plan, r);
            }
        }
        printer.debug(format!(
            "planned in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
        let mut planned = Planned {
            loaded,
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
        match rewrite_indexes(store, &planned.loaded, &planned.plans).await {
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
    loaded: &LoadedCache,
    plans: &[LayoutPlan],
) -> anyhow::Result<(bool, usize)> {
    let recorded = journal::write(store, journal::hashes_of(plans)).await? > 0;
    Ok((recorded, rewrite_indexes(store, loaded, plans).await?))
}

/// What the deletes did not do.
#[derive(Debug, Default)]
struct Deleted {
    failures: Vec<Failure>,
    /// Keys of the waves after a failed one, not tried.
    skipped: usize,
}

/// Delete the planned keys wave by wave ([`cleanup::deletion_waves`]). A wave with failures
/// stops the later ones.
async fn delete(store: &Store, printer: &Printer, plans: &[LayoutPlan]) -> anyhow::Result<Deleted> {
    let mut failures = Vec::new();
    let waves = cleanup::deletion_waves(plans, DELETE_BATCH);
    let total: usize = waves.iter().map(Vec::len).sum();
    let pb = printer.progress(Some(total as u64), "deleting");
    // A wave goes in slices of as many keys as the store has requests in flight, so only a
    // slice's keys are ever copied; the batches of 1000 stay whole.
    let mut done = 0;
    for wave in waves {
        done += wave.len();
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
    let skipped = if failures.is_empty() { 0 } else { total - done };
    Ok(Deleted { failures, skipped })
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
    view: &CacheView,
    plans: &[LayoutPlan],
    printer: &Printer,
) -> anyhow::Result<Vec<IndexRepair>> {
    let mut repairs = Vec::new();
    for (lm, plan) in view.layouts.iter().zip(plans) {
        let gone = plan.gone_hashes();
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

/// Print a report (text or JSON) and per-key failures. The exit code: 0 when every delete
/// succeeded, 2 ([`exit::ERROR`]) when some failed — the cache is then partly cleaned, and the
/// next run finishes it.
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
    loaded: &LoadedCache,
    plans: &[LayoutPlan],
) -> anyhow::Result<()> {
    for ((lm, back), plan) in loaded.layouts().zip(plans) {
        if lm.layout != Layout::V3 {
            continue;
        }
        let deleted: HashSet<&str> = plan
            .specs
            .iter()
            .flat_map(|s| s.objects.iter().map(|k| &**k))
            .chain(plan.orphans.iter().map(|o| &*o.key))
            .chain(plan.leftovers.iter().map(|o| &*o.key))
            .collect();
        let gone: HashSet<u32> = lm
            .manifests
            .by_manifest
            .keys()
            .copied()
            .filter(|&i| deleted.contains(loaded.view.key(i)))
            .collect();
        if back.memo.stale || !gone.is_empty() {
            manifests::write_memo(store, loaded.tagged(), &lm.manifests, &gone).await?;
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

/// Write each index without the deleted specs ([`LayoutPlan::index_after`]), guarded by the
/// etag read. Returns the number of objects written.
pub async fn rewrite_indexes(
    store: &Store,
    loaded: &LoadedCache,
    plans: &[LayoutPlan],
) -> anyhow::Result<usize> {
    let mut writes = 0;
    for ((lm, back), plan) in loaded.layouts().zip(plans) {
        if let Some(bytes) = plan.index_after(lm) {
            writes += write_index(store, lm, back, bytes).await?;
        }
    }
    Ok(writes)
}

/// Write `bytes` as the index of `lm`'s layout, conditional on the index not having changed
/// since it was read.
pub async fn write_index(
    store: &Store,
    lm: &LayoutView,
    back: &WriteBack,
    bytes: Vec<u8>,
) -> anyhow::Result<usize> {
    let condition = back
        .index_etag
        .clone()
        .map(Condition::IfMatch)
        .unwrap_or_default();
    stores::cache::write_index(store, lm.layout, bytes, &lm.db.version, &condition)
        .await
        .with_context(|| format!("writing the {} index of {}", lm.layout, store.url()))
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
    let verb = match (r.dry_run, r.failures.is_empty()) {
        (true, _) => "would delete",
        (false, true) => "deleted",
        (false, false) => "tried to delete",
    };
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
                Reason::DependentOf(d) => {
                    format!("dependent of {}/{}", d.of_name, &d.of_hash[..7])
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

/// The report's lines on failed deletes, interrupted runs finished, indexes repaired and keep
/// lists read.
fn notes(r: &Report, verb: &str) -> String {
    let mut out = String::new();
    if !r.failures.is_empty() {
        let next = if r.plan_recorded {
            format!("the plan stays recorded in {}: ", journal::KEY)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "INCOMPLETE: {} object(s) could not be deleted and {} were not tried; the cache is partly cleaned, {next}the next run finishes it\n",
            r.failures.len(),
            r.skipped
        ));
    }
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
