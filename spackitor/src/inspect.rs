//! `show`, `dependents` and `orphans`: looking at single specs and at what no index entry owns.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use model::cleanup::{CacheView, LayoutView, Object, Unowned};
use model::spack::buildcache::v3::Manifest;
use model::spack::spec::{DepTypes, Shared};
use serde::Serialize;
use stores::Store;
use terminal::cli::exit;
use terminal::printer::{Printer, human_bytes, rfc3339, short_age, table};

use crate::loaded::LoadedCache;
use crate::manifests::Reads;

/// Specs a user named: a DAG hash or a prefix of 7 or more characters (`/` in front allowed,
/// as in Spack), or a package name with an optional `@version`.
pub fn resolve<'m>(
    view: &'m CacheView,
    target: &str,
) -> anyhow::Result<Vec<(&'m LayoutView, Shared)>> {
    let t = target.strip_prefix('/').unwrap_or(target);
    let looks_like_hash = t.len() >= 7
        && t.len() <= 32
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if looks_like_hash {
        let matches: Vec<(&LayoutView, Shared)> = view
            .layouts
            .iter()
            .flat_map(|lm| {
                lm.specs()
                    .map(|(h, _)| h)
                    .filter(|h| h.starts_with(t))
                    .map(move |h| (lm, h.clone()))
            })
            .collect();
        let distinct: HashSet<&Shared> = matches.iter().map(|(_, h)| h).collect();
        if distinct.len() > 1 {
            let mut candidates: Vec<String> = matches
                .iter()
                .map(|(lm, h)| {
                    let n = lm.node(h);
                    format!("  {}@{} /{} ({})", n.name, n.version, h, lm.layout)
                })
                .collect();
            candidates.sort();
            candidates.dedup();
            bail!(
                "hash prefix `{t}` is ambiguous; candidates:\n{}",
                candidates.join("\n")
            );
        }
        if !matches.is_empty() {
            return Ok(matches);
        }
    }
    let (name, version) = match target.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (target, None),
    };
    let matches: Vec<(&LayoutView, Shared)> = view
        .layouts
        .iter()
        .flat_map(|lm| {
            lm.specs()
                .map(|(h, _)| h)
                .filter(move |h| {
                    let n = lm.node(h);
                    *n.name == *name && version.is_none_or(|v| *n.version == *v)
                })
                .map(move |h| (lm, h.clone()))
        })
        .collect();
    if matches.is_empty() {
        bail!(
            "no spec `{target}` in the cache's index (give a name, name@version, or a hash of 7+ characters)"
        );
    }
    Ok(matches)
}

#[derive(Debug, Serialize)]
pub struct Related {
    pub name: Shared,
    pub version: Shared,
    pub hash: Shared,
    pub deptypes: Vec<&'static str>,
    /// Nesting depth in `--tree` output (1 for direct ones).
    pub depth: usize,
}

#[derive(Debug, Serialize)]
pub struct ObjectRow {
    pub key: String,
    pub size: u64,
    pub last_modified: String,
}

#[derive(Debug, Serialize)]
pub struct Shown {
    pub name: Shared,
    pub version: Shared,
    pub hash: Shared,
    pub layout: String,
    pub arch: String,
    pub compiler: String,
    pub objects: Vec<ObjectRow>,
    pub missing: Vec<String>,
    pub dependencies: Vec<Related>,
    pub dependents: Vec<Related>,
}

fn related(lm: &LayoutView, hash: &str, reverse: bool, tree: bool) -> Vec<Related> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    // Depth-first, so a tree prints in order; a spec seen before is not expanded again.
    let mut stack: Vec<(Shared, DepTypes, usize)> = lm
        .graph()
        .neighbours(hash, DepTypes::ALL, reverse)
        .into_iter()
        .rev()
        .map(|(h, t)| (lm.db.entries[h].node.hash.clone(), t, 1))
        .collect();
    while let Some((h, types, depth)) = stack.pop() {
        let n = &lm.db.entries[&*h].node;
        out.push(Related {
            name: n.name.clone(),
            version: n.version.clone(),
            hash: h.clone(),
            deptypes: types.names(),
            depth,
        });
        if tree && seen.insert(h.clone()) {
            for (c, t) in lm
                .graph()
                .neighbours(&h, DepTypes::ALL, reverse)
                .into_iter()
                .rev()
            {
                stack.push((lm.db.entries[c].node.hash.clone(), t, depth + 1));
            }
        }
    }
    out
}

pub async fn show(
    store: &Store,
    target: &str,
    tree: bool,
    printer: &Printer,
) -> anyhow::Result<u8> {
    let loaded = LoadedCache::load_shown(store, Reads::MemoOnly, printer).await?;
    let view = &loaded.view;
    let mut shown = Vec::new();
    for (lm, hash) in resolve(view, target)? {
        shown.push(shown_spec(store, view, lm, &hash, tree).await?);
    }
    if printer.is_json() {
        printer.json(&shown)?;
    } else {
        printer.data(&shown.iter().map(shown_text).collect::<String>())?;
    }
    Ok(exit::SUCCESS)
}

fn object_row(o: &Object) -> ObjectRow {
    ObjectRow {
        key: o.key.to_string(),
        size: o.size,
        last_modified: rfc3339(o.last_modified()),
    }
}

/// What `show` says of the spec `hash` of `lm`.
async fn shown_spec(
    store: &Store,
    view: &CacheView,
    lm: &LayoutView,
    hash: &Shared,
    tree: bool,
) -> anyhow::Result<Shown> {
    let rec = lm.spec(hash).expect("a cached spec");
    let node = lm.node(hash);
    let mut objects: Vec<ObjectRow> = rec
        .objects
        .iter()
        .map(|&i| object_row(view.listing.object(i)))
        .collect();
    let mut missing = rec.missing.to_vec();
    if !rec.blobs_known {
        // `show` reads what it displays: the spec's own manifest.
        let key = &objects[0].key;
        let m = Manifest::parse(&store.location(key), &store.get(key).await?.bytes)?;
        let positions = view.listing.positions();
        for r in &m.data {
            match positions.get(r.key().as_str()) {
                Some(&i) => objects.push(object_row(view.listing.object(i))),
                None => missing.push(r.key()),
            }
        }
    }
    Ok(Shown {
        name: node.name.clone(),
        version: node.version.clone(),
        hash: hash.clone(),
        layout: lm.layout.to_string(),
        arch: node.architecture(),
        compiler: lm.db.compiler_shown(node),
        objects,
        missing,
        dependencies: related(lm, hash, false, tree),
        dependents: related(lm, hash, true, tree),
    })
}

/// One spec as `show` prints it: objects, missing ones, dependencies and dependents.
fn shown_text(s: &Shown) -> String {
    let mut out = format!(
        "{}@{} /{}\n  layout {}, arch {}, compiler {}\n  objects:\n",
        s.name, s.version, s.hash, s.layout, s.arch, s.compiler
    );
    let rows: Vec<Vec<String>> = s
        .objects
        .iter()
        .map(|o| {
            vec![
                format!("    {}", o.key),
                human_bytes(o.size),
                o.last_modified.clone(),
            ]
        })
        .collect();
    for line in table(&["", "", ""], &rows, &[false, true, false])
        .lines()
        .skip(1)
    {
        out.push_str(line);
        out.push('\n');
    }
    for m in &s.missing {
        out.push_str(&format!("    {m}  MISSING\n"));
    }
    for (title, list) in [
        ("dependencies", &s.dependencies),
        ("dependents", &s.dependents),
    ] {
        out.push_str(&format!(
            "  {title}:{}\n",
            if list.is_empty() { " none" } else { "" }
        ));
        for r in list {
            out.push_str(&format!(
                "{}{}@{} /{} [{}]\n",
                "    ".repeat(r.depth),
                r.name,
                r.version,
                &r.hash[..7],
                r.deptypes.join(", ")
            ));
        }
    }
    out
}

pub async fn dependents(
    store: &Store,
    target: &str,
    all_edges: bool,
    printer: &Printer,
) -> anyhow::Result<u8> {
    let loaded = LoadedCache::load_shown(store, Reads::MemoOnly, printer).await?;
    let types = if all_edges {
        DepTypes::ALL
    } else {
        DepTypes::LINK_RUN
    };
    #[derive(Serialize)]
    struct Row {
        layout: String,
        name: Shared,
        version: Shared,
        hash: Shared,
        of: Shared,
    }
    let mut rows = Vec::new();
    for (lm, hash) in resolve(&loaded.view, target)? {
        for h in lm.graph().dependents_closure([&*hash], types) {
            if h == hash || !lm.is_cached(&h) {
                continue;
            }
            let n = lm.node(&h);
            rows.push(Row {
                layout: lm.layout.to_string(),
                name: n.name.clone(),
                version: n.version.clone(),
                hash: h.clone(),
                of: hash.clone(),
            });
        }
    }
    rows.sort_by(|a, b| (&a.layout, &a.name, &a.hash).cmp(&(&b.layout, &b.name, &b.hash)));
    if printer.is_json() {
        printer.json(&rows)?;
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.name.to_string(),
                    r.version.to_string(),
                    r.hash[..7].to_string(),
                    r.layout.clone(),
                ]
            })
            .collect();
        printer.data(&table(&["NAME", "VERSION", "HASH", "LAYOUT"], &cells, &[]))?;
        printer.log(format!(
            "{} spec(s) would break without {target} ({} edges)",
            rows.len(),
            if all_edges { "all" } else { "link and run" }
        ));
    }
    Ok(exit::SUCCESS)
}

#[derive(Debug, Serialize)]
pub struct OrphanRow {
    pub layout: String,
    pub key: String,
    #[serde(flatten)]
    pub kind: Unowned,
    pub size: u64,
    pub last_modified: String,
    pub age_seconds: u64,
    /// Newer than the index: possibly an upload still in progress.
    pub in_flight: bool,
}

pub fn orphan_rows(view: &CacheView, now: SystemTime) -> Vec<OrphanRow> {
    let mut rows = Vec::new();
    for lm in &view.layouts {
        for (_, o, kind) in lm.unowned(&view.listing) {
            rows.push(OrphanRow {
                layout: lm.layout.to_string(),
                key: o.key.to_string(),
                kind,
                size: o.size,
                last_modified: rfc3339(o.last_modified()),
                age_seconds: now
                    .duration_since(o.last_modified())
                    .unwrap_or_default()
                    .as_secs(),
                in_flight: o.last_modified() > lm.index_time,
            });
        }
    }
    rows
}

pub async fn orphans(store: &Store, printer: &Printer) -> anyhow::Result<u8> {
    // Which blobs are unreferenced is only known from every manifest.
    let loaded = LoadedCache::load_shown(store, Reads::All, printer).await?;
    let rows = orphan_rows(&loaded.view, SystemTime::now());
    if printer.is_json() {
        printer.json(&rows)?;
    } else {
        let kind = |k: &Unowned| match k {
            Unowned::SpecFile { .. } => "spec file",
            Unowned::Tarball { .. } => "tarball",
            Unowned::SpecManifest { .. } => "spec manifest",
            Unowned::Blob => "blob",
            Unowned::Stray => "stray",
        };
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.key.clone(),
                    kind(&r.kind).into(),
                    human_bytes(r.size),
                    short_age(Duration::from_secs(r.age_seconds)),
                    if r.in_flight {
                        "in flight".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        printer.data(&table(
            &["KEY", "KIND", "SIZE", "AGE", ""],
            &cells,
            &[false, false, true, true, false],
        ))?;
        printer.log(format!(
            "{} orphan(s), {}",
            rows.len(),
            human_bytes(rows.iter().map(|r| r.size).sum())
        ));
    }
    Ok(exit::SUCCESS)
}
