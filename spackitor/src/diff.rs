//! `spackitor diff`: specs present in one cache and not the other (to promote a development
//! cache to production, or to check a migration). Reads only the indexes.

use std::collections::BTreeMap;

use serde::Serialize;
use stores::Store;
use stores::cache::{detect_layouts, load_index};
use terminal::cli::exit;
use terminal::printer::{Printer, table};

#[derive(Debug, Serialize, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub name: String,
    pub version: String,
    pub hash: String,
    pub layouts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Diff {
    pub a: String,
    pub b: String,
    pub only_in_a: Vec<Entry>,
    pub only_in_b: Vec<Entry>,
    pub in_both: usize,
}

/// Cached specs by hash, over every layout of the store.
async fn specs(store: &Store) -> anyhow::Result<BTreeMap<String, Entry>> {
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    for layout in detect_layouts(store).await? {
        let idx = load_index(store, layout).await?;
        for e in idx.db.cached() {
            let n = &e.node;
            out.entry(n.hash.to_string())
                .or_insert_with(|| Entry {
                    name: n.name.to_string(),
                    version: n.version.to_string(),
                    hash: n.hash.to_string(),
                    layouts: Vec::new(),
                })
                .layouts
                .push(layout.to_string());
        }
    }
    Ok(out)
}

pub async fn run(a: &Store, b: &Store, printer: &Printer) -> anyhow::Result<u8> {
    let (sa, sb) = (specs(a).await?, specs(b).await?);
    let only = |x: &BTreeMap<String, Entry>, y: &BTreeMap<String, Entry>| -> Vec<Entry> {
        let mut v: Vec<Entry> = x
            .iter()
            .filter(|(h, _)| !y.contains_key(*h))
            .map(|(_, e)| e.clone())
            .collect();
        v.sort();
        v
    };
    let diff = Diff {
        a: a.url(),
        b: b.url(),
        only_in_a: only(&sa, &sb),
        only_in_b: only(&sb, &sa),
        in_both: sa.keys().filter(|h| sb.contains_key(*h)).count(),
    };
    if printer.is_json() {
        printer.json(&diff)?;
    } else {
        let mut out = String::new();
        for (title, list) in [(&diff.a, &diff.only_in_a), (&diff.b, &diff.only_in_b)] {
            out.push_str(&format!("only in {title}: {}\n", list.len()));
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|e| {
                    vec![
                        format!("  {}", e.name),
                        e.version.clone(),
                        e.hash[..7].to_string(),
                        e.layouts.join(","),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                out.push_str(&table(
                    &["  NAME", "VERSION", "HASH", "LAYOUTS"],
                    &rows,
                    &[],
                ));
            }
        }
        out.push_str(&format!("in both: {}\n", diff.in_both));
        printer.data(&out)?;
    }
    Ok(if diff.only_in_a.is_empty() && diff.only_in_b.is_empty() {
        exit::SUCCESS
    } else {
        exit::FOUND
    })
}
