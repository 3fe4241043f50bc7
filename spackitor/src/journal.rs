//! The plan of a `clean` recorded in the cache before its index is rewritten, so that a rerun
//! after a crash, or after deletes that failed, deletes exactly what the earlier run took out of
//! the index, whatever its age (what is left of it: `model::cleanup::leftovers`).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, bail};
use model::cleanup::{LayoutPlan, Listing, Recorded, Unowned};
use model::spack::buildcache::{Layout, v3};
use serde::{Deserialize, Serialize};
use stores::{Condition, Store};

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

/// The recorded plan of the cache `listing` lists, if it shows one. A plan that cannot be
/// parsed is an error: skipping it would leave its objects for a month.
pub async fn read(store: &Store, listing: &Listing) -> anyhow::Result<Option<Recorded>> {
    if !listing.objects.iter().any(|o| &*o.key == KEY) {
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
                .map(|k| k.to_string())
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
