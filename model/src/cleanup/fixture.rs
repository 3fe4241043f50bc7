//! Caches built in memory for the planner's tests: specs with typed edges, ages, packages and
//! layouts, turned into the index, listing and manifest references a real cache gives.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::cache::{BlobRef, CacheView, LayoutView, Listing, Manifests, Object};
use crate::spack::buildcache::index::Database;
use crate::spack::buildcache::{Layout, v2, v3};
use crate::spack::spec::{DepTypes, Interner};

/// The fixed "now" of every test cache.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub fn days_ago(days: f64) -> SystemTime {
    now() - Duration::from_secs_f64(days * 86_400.0)
}

/// The DAG hash of spec `i` (ghosts, objects without an index entry, count on from there).
pub fn hash(i: usize) -> String {
    format!("h{i:031}")
}

/// The package name of spec `i`'s package number.
pub fn package(p: usize) -> String {
    format!("pkg{p}")
}

#[derive(Debug, Clone)]
pub struct SpecDef {
    /// Dependencies: (spec, edge types).
    pub deps: Vec<(usize, DepTypes)>,
    /// `in_buildcache`: false for records without objects (externals, build dependencies).
    pub cached: bool,
    /// Age of its objects.
    pub age_days: f64,
    /// Its tarball (v2) or tarball blob (v3) is not there.
    pub missing_tarball: bool,
    /// Package number ([`package`]).
    pub package: usize,
}

impl SpecDef {
    pub fn new(package: usize, age_days: f64, deps: &[(usize, DepTypes)]) -> SpecDef {
        SpecDef {
            deps: deps.to_vec(),
            cached: true,
            age_days,
            missing_tarball: false,
            package,
        }
    }
}

/// An object no index entry owns.
#[derive(Debug, Clone, PartialEq)]
pub enum OrphanDef {
    /// The objects of a spec the index does not list (v2: spec file and tarball; v3: spec
    /// manifest and its blobs), under hash `hash(ghost)`.
    Ghost { ghost: usize },
    /// A v3 blob no manifest references.
    Blob,
    /// A key of no known kind.
    Stray,
}

#[derive(Debug, Clone)]
pub struct CacheDef {
    pub layout: Layout,
    pub specs: Vec<SpecDef>,
    pub index_age_days: f64,
    /// v3: (a, b): spec a's manifest also references spec b's tarball blob.
    pub shared_blobs: Vec<(usize, usize)>,
    pub orphans: Vec<(OrphanDef, f64)>,
}

impl CacheDef {
    pub fn new(layout: Layout, specs: Vec<SpecDef>) -> CacheDef {
        CacheDef {
            layout,
            specs,
            index_age_days: 1.0 / 24.0,
            shared_blobs: Vec::new(),
            orphans: Vec::new(),
        }
    }
}

/// The index JSON of `def`'s specs.
pub fn index_json(def: &CacheDef) -> Vec<u8> {
    let installs: serde_json::Map<String, serde_json::Value> = def
        .specs
        .iter()
        .enumerate()
        .map(|(i, s)| (hash(i), record(def, i, s)))
        .collect();
    serde_json::to_vec(&json!({"database": {"version": "8", "installs": installs}})).unwrap()
}

fn record(def: &CacheDef, i: usize, s: &SpecDef) -> serde_json::Value {
    let deps: Vec<serde_json::Value> = s
        .deps
        .iter()
        .map(|(j, t)| {
            json!({
                "name": package(def.specs[*j].package),
                "hash": hash(*j),
                "parameters": {"deptypes": t.names(), "virtuals": []},
            })
        })
        .collect();
    json!({
        "spec": {
            "name": package(s.package),
            "version": "1.0",
            "arch": {"platform": "linux", "platform_os": "debian12", "target": "x86_64"},
            "dependencies": deps,
            "hash": hash(i),
        },
        "ref_count": 0,
        "in_buildcache": s.cached,
    })
}

fn object(key: String, age_days: f64) -> Object {
    let size = 100 + key.len() as u64;
    Object::new(key.into(), size, days_ago(age_days))
}

fn blob(hash: &str, what: &str) -> String {
    v3::blob_key("sha256", &format!("{hash}{what:0>32}"))
}

/// The objects of a spec (`h`, of package `p`), and for v3 the blob keys its manifest names.
fn spec_objects(
    def: &CacheDef,
    db: &Database,
    h: &str,
    p: &str,
    (age, missing_tarball): (f64, bool),
) -> (Vec<Object>, Vec<String>) {
    match def.layout {
        Layout::V2 => {
            let node = db.entries.get(h).map(|e| e.node.clone());
            let (spec, tarball) = match node {
                Some(n) => {
                    let c = db.compiler_of(&n);
                    (v2::spec_key(&n, &c, false), v2::tarball_key(&n, &c))
                }
                None => (
                    format!("build_cache/linux-debian12-x86_64-none-none-{p}-1.0-{h}.spec.json"),
                    format!(
                        "build_cache/linux-debian12-x86_64/none-none/{p}-1.0/linux-debian12-x86_64-none-none-{p}-1.0-{h}.spack"
                    ),
                ),
            };
            let mut objects = vec![object(spec, age)];
            if !missing_tarball {
                objects.push(object(tarball, age));
            }
            (objects, Vec::new())
        }
        Layout::V3 => {
            let names = vec![blob(h, "spec"), blob(h, "tarball")];
            let mut objects = vec![
                object(v3::spec_manifest_key(p, "1.0", h), age),
                object(names[0].clone(), age),
            ];
            if !missing_tarball {
                objects.push(object(names[1].clone(), age));
            }
            (objects, names)
        }
    }
}

/// The cache `def` describes, as the janitor would read it.
pub fn build(def: &CacheDef) -> CacheView {
    let db = Database::parse("test index", index_json(def)).unwrap();
    let mut objects = vec![match def.layout {
        Layout::V2 => object(v2::INDEX_KEY.into(), def.index_age_days),
        Layout::V3 => object(v3::INDEX_MANIFEST_KEY.into(), def.index_age_days),
    }];
    // (spec manifest key, blob keys it names)
    let mut manifests: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |h: &str, p: &str, how: (f64, bool), objects: &mut Vec<Object>| {
        let (own, mut blobs) = spec_objects(def, &db, h, p, how);
        if def.layout == Layout::V3 {
            blobs.extend(
                def.shared_blobs
                    .iter()
                    .filter(|(a, _)| hash(*a) == h)
                    .map(|(_, b)| blob(&hash(*b), "tarball")),
            );
            manifests.push((own[0].key.to_string(), blobs));
        }
        objects.extend(own);
    };
    for (i, s) in def.specs.iter().enumerate().filter(|(_, s)| s.cached) {
        let how = (s.age_days, s.missing_tarball);
        add(&hash(i), &package(s.package), how, &mut objects);
    }
    for (k, (o, age)) in def.orphans.iter().enumerate() {
        match o {
            OrphanDef::Ghost { ghost } => {
                add(&hash(*ghost), "ghost", (*age, false), &mut objects);
            }
            OrphanDef::Blob => objects.push(object(blob(&hash(900 + k), "loose"), *age)),
            OrphanDef::Stray => objects.push(object(
                match def.layout {
                    Layout::V2 => format!("build_cache/stray-{k}.txt"),
                    Layout::V3 => format!("v3/stray-{k}.txt"),
                },
                *age,
            )),
        }
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    objects.dedup_by(|a, b| a.key == b.key);
    let mut strings = Interner::default();
    let (listing, v2) = Listing::new(objects, |h| strings.get(h));
    let positions = listing.positions();
    let by_manifest = manifests
        .iter()
        .map(|(m, blobs)| {
            let refs = blobs
                .iter()
                .map(|b| BlobRef::new(b, 1, &positions))
                .collect();
            (positions[m.as_str()], refs)
        })
        .collect();
    drop(positions);
    let manifests = Manifests {
        by_manifest,
        unread: Default::default(),
    };
    let index_time = days_ago(def.index_age_days);
    let lm = LayoutView::new(def.layout, db, index_time, (&listing, &v2), manifests);
    CacheView {
        listing,
        layouts: vec![lm],
    }
}
