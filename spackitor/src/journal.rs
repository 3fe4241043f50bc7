//! The plan of a `clean` recorded in the cache before its index is rewritten, so that a rerun
//! after a crash deletes exactly what the crashed run took out of the index, whatever its age.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use anyhow::{Context, bail};
use model::spack::buildcache::{Layout, v3};
use model::spack::spec::Shared;
use serde::{Deserialize, Serialize};
use stores::{Condition, Store};

use crate::deletion_plan::{LayoutPlan, PlannedOrphan};
use crate::manifests::BlobRef;
use crate::model::{CacheModel, LayoutModel, Unowned};

/// Where the plan is recorded, beside the keep lists (Spack ignores `_spacktainerizah/`).
pub const KEY: &str = "_spacktainerizah/clean-plan.json";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    version: u32,
    /// Layout (`v2`, `v3`) → what the run deletes there.
    layouts: BTreeMap<String, LayoutRecord>,
}

/// What a run deletes in one layout.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LayoutRecord {
    /// The hashes it takes out of the index.
    pub hashes: Vec<String>,
    /// v3: their blobs no other manifest references. Recorded because once a spec manifest is
    /// deleted nothing else says which blobs were its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<String>,
}

/// A plan found in the cache: a run that took these hashes out of the index and may not have
/// deleted their objects.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When it was written (the store's clock): objects newer than this are uploads that
    /// started afterwards, and stay.
    pub time: SystemTime,
    pub hashes: HashMap<Layout, HashSet<String>>,
    /// v3 blob keys.
    pub blobs: HashMap<Layout, HashSet<String>>,
}

/// The recorded plan of `model`'s cache, if its listing shows one. A plan that cannot be parsed
/// is an error: skipping it would leave its objects for a month.
pub async fn read(store: &Store, model: &CacheModel) -> anyhow::Result<Option<Recorded>> {
    if !model.catalog.objects.iter().any(|o| o.key == KEY) {
        return Ok(None);
    }
    let location = store.location(KEY);
    let obj = match store.get(KEY).await {
        Ok(o) => o,
        // Another janitor finished it since the listing.
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {location}")),
    };
    let (hashes, blobs) = parse(&obj.bytes).with_context(|| {
        format!(
            "{location}: the plan an interrupted clean recorded is corrupt; nothing was changed \
             (remove it to go on: what it names is then left to --orphans)"
        )
    })?;
    Ok(Some(Recorded {
        time: obj.info.last_modified,
        hashes,
        blobs,
    }))
}

type ByLayout = HashMap<Layout, HashSet<String>>;

fn parse(bytes: &[u8]) -> anyhow::Result<(ByLayout, ByLayout)> {
    let body: Body = serde_json::from_slice(bytes)?;
    if body.version != VERSION {
        bail!("version {} (this janitor reads {VERSION})", body.version);
    }
    let (mut hashes_out, mut blobs_out) = (HashMap::new(), HashMap::new());
    for (name, LayoutRecord { hashes, blobs }) in body.layouts {
        let layout = match name.as_str() {
            "v2" => Layout::V2,
            "v3" => Layout::V3,
            other => bail!("unknown layout `{other}`"),
        };
        if let Some(bad) = hashes
            .iter()
            .find(|h| h.len() != 32 || !h.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            bail!("`{bad}` is no spec hash");
        }
        if let Some(bad) = blobs.iter().find(|k| {
            layout != Layout::V3
                || !matches!(v3::classify(k), Some(v3::Object::Blob { .. }))
                || k.split('/').any(|c| c.is_empty() || c == "." || c == "..")
        }) {
            bail!("`{bad}` is no {layout} blob key");
        }
        hashes_out.insert(layout, hashes.into_iter().collect());
        blobs_out.insert(layout, blobs.into_iter().collect());
    }
    Ok((hashes_out, blobs_out))
}

/// What a run records: what each plan takes out of the index (with its v3 blobs) and what it
/// finishes of an earlier run. Empty when there is nothing to record.
pub fn hashes_of(plans: &[LayoutPlan]) -> BTreeMap<String, LayoutRecord> {
    plans
        .iter()
        .map(|p| {
            let mut hashes: Vec<String> = p
                .deleted_hashes()
                .iter()
                .map(|h| h.to_string())
                .chain(p.leftover_hashes())
                .collect();
            hashes.sort();
            hashes.dedup();
            let mut blobs: Vec<String> = p
                .specs
                .iter()
                .flat_map(|s| &s.objects)
                .chain(
                    p.leftovers
                        .iter()
                        .filter(|o| o.kind == Unowned::Blob)
                        .map(|o| &o.key),
                )
                .filter(|k| p.layout == Layout::V3 && k.starts_with(v3::BLOBS_PREFIX))
                .cloned()
                .collect();
            blobs.sort();
            blobs.dedup();
            (p.layout.to_string(), LayoutRecord { hashes, blobs })
        })
        .filter(|(_, r)| !r.hashes.is_empty() || !r.blobs.is_empty())
        .collect()
}

/// Record `hashes` (from [`hashes_of`]); returns the writes made (0 or 1).
pub async fn write(store: &Store, hashes: BTreeMap<String, LayoutRecord>) -> anyhow::Result<usize> {
    if hashes.is_empty() {
        return Ok(0);
    }
    let body = Body {
        version: VERSION,
        layouts: hashes,
    };
    let bytes = serde_json::to_vec(&body).context("encoding the plan")?;
    store
        .put(KEY, bytes, &Default::default(), &Condition::None)
        .await
        .with_context(|| format!("recording the plan in {}", store.location(KEY)))?;
    Ok(1)
}

/// Remove the recorded plan: the run it describes is complete.
pub async fn remove(store: &Store) -> anyhow::Result<()> {
    store
        .delete_all(vec![KEY.to_string()])
        .await
        .with_context(|| format!("removing the finished plan {}", store.location(KEY)))?;
    Ok(())
}

/// What an interrupted run left of the specs it recorded for `lm`'s layout: the objects of the
/// recorded hashes that the index no longer lists, and (v3) their blobs that no manifest that
/// stays references. A hash with any object newer than the record is an upload that started
/// since, and stays whole; so does a hash the index lists again. Keys `plan` already deletes
/// are left out.
pub fn leftovers(
    model: &CacheModel,
    lm: &LayoutModel,
    plan: &LayoutPlan,
    recorded: &Recorded,
) -> Vec<PlannedOrphan> {
    let none = HashSet::new();
    let hashes = recorded.hashes.get(&lm.layout).unwrap_or(&none);
    let blobs = recorded.blobs.get(&lm.layout).unwrap_or(&none);
    if hashes.is_empty() && blobs.is_empty() {
        return Vec::new();
    }
    let unowned = lm.unowned(&model.catalog);
    let mut by_hash: HashMap<&str, Vec<(u32, PlannedOrphan)>> = HashMap::new();
    let mut fresh: HashSet<&str> = HashSet::new();
    for (i, o, kind) in &unowned {
        let Some(h) = kind.hash().filter(|h| hashes.contains(*h)) else {
            continue;
        };
        if lm.index.db.entries.contains_key(h) {
            continue;
        }
        if o.last_modified >= recorded.time {
            fresh.insert(h);
        }
        by_hash
            .entry(h)
            .or_default()
            .push((*i, orphan(lm, o, kind.clone())));
    }
    by_hash.retain(|h, _| !fresh.contains(h));
    let planned: HashSet<&str> = planned_keys(plan);
    let mut out: Vec<PlannedOrphan> = Vec::new();
    let mut left_manifests: HashSet<u32> = HashSet::new();
    for (i, o) in by_hash.into_values().flatten() {
        if matches!(o.kind, Unowned::SpecManifest { .. }) {
            left_manifests.insert(i);
        }
        if !planned.contains(o.key.as_str()) {
            out.push(o);
        }
    }
    let mut gone = gone_manifests(model, plan);
    gone.extend(&left_manifests);
    // The blobs of manifests still there, and those recorded (their manifest may be gone).
    let mut candidates: HashSet<u32> = left_manifests
        .iter()
        .filter_map(|m| lm.manifests.by_manifest.get(m))
        .flatten()
        .filter_map(BlobRef::listed)
        .collect();
    if !blobs.is_empty() {
        candidates.extend(
            (0..model.catalog.objects.len() as u32).filter(|&i| blobs.contains(model.key(i))),
        );
    }
    out.extend(unreferenced_blobs(
        model,
        lm,
        (&gone, &candidates),
        &planned,
        recorded.time,
    ));
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    out
}

fn orphan(lm: &LayoutModel, o: &stores::ObjectInfo, kind: Unowned) -> PlannedOrphan {
    PlannedOrphan {
        layout: lm.layout.to_string(),
        key: o.key.clone(),
        bytes: o.size,
        kind,
    }
}

fn planned_keys(plan: &LayoutPlan) -> HashSet<&str> {
    plan.specs
        .iter()
        .flat_map(|s| s.objects.iter().map(String::as_str))
        .chain(plan.orphans.iter().map(|o| o.key.as_str()))
        .collect()
}

/// The catalog positions of the v3 spec manifests `plan` deletes.
fn gone_manifests(model: &CacheModel, plan: &LayoutPlan) -> HashSet<u32> {
    let hashes = plan
        .specs
        .iter()
        .map(|s| &*s.hash)
        .chain(plan.orphans.iter().filter_map(|o| match &o.kind {
            Unowned::SpecManifest { hash } => Some(hash.as_str()),
            _ => None,
        }));
    hashes
        .filter_map(|h| model.catalog.v3_manifests.get(h).copied())
        .collect()
}

/// v3: the `candidates` blobs that no manifest but the `gone` ones references, older than
/// `time`.
fn unreferenced_blobs(
    model: &CacheModel,
    lm: &LayoutModel,
    (gone, candidates): (&HashSet<u32>, &HashSet<u32>),
    planned: &HashSet<&str>,
    time: SystemTime,
) -> Vec<PlannedOrphan> {
    let still_referenced: HashSet<u32> = lm
        .manifests
        .by_manifest
        .iter()
        .filter(|(m, _)| !gone.contains(m))
        .flat_map(|(_, blobs)| blobs.iter().filter_map(BlobRef::listed))
        .collect();
    candidates
        .iter()
        .filter(|i| !still_referenced.contains(i))
        .map(|&i| &model.catalog.objects[i as usize])
        .filter(|o| o.last_modified < time && !planned.contains(o.key.as_str()))
        .map(|o| orphan(lm, o, Unowned::Blob))
        .collect()
}

/// The hashes of `plan`'s specs and leftovers, as the index names them.
pub fn gone_hashes(plan: &LayoutPlan) -> HashSet<Shared> {
    let mut out = plan.deleted_hashes();
    out.extend(plan.leftover_hashes().map(Shared::from));
    out
}
