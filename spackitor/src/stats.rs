//! `spackitor stats`: what the cache holds — objects and bytes, the largest packages, specs by
//! age band, orphans — as text, JSON, or a self-contained HTML report with charts.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use model::cleanup::{CacheView, Unowned};
use serde::Serialize;
use stores::Store;
use terminal::cli::exit;
use terminal::printer::{Printer, human_bytes, rfc3339, table};

use crate::loaded::LoadedCache;
use crate::manifests::Reads;

#[derive(Debug, Serialize)]
pub struct Stats {
    pub cache: String,
    pub generated: String,
    pub objects: usize,
    pub bytes: u64,
    pub layouts: Vec<LayoutStats>,
    /// The largest packages (all versions and layouts), largest first.
    pub packages: Vec<Group>,
    /// Specs by the age of their newest object.
    pub age_bands: Vec<Group>,
    pub orphans: usize,
    pub orphan_bytes: u64,
    /// v3 blobs referenced by manifests not read yet are not counted as orphans or sizes.
    pub complete: bool,
}

#[derive(Debug, Serialize)]
pub struct LayoutStats {
    pub layout: String,
    pub specs: usize,
}

#[derive(Debug, Serialize, Clone)]
pub struct Group {
    pub label: String,
    pub specs: usize,
    pub bytes: u64,
}

/// Age bands: under 7 days, 7 to 30, 30 to 90, older.
const BANDS: [(&str, u64); 4] = [
    ("under 7 days", 7),
    ("7 to 30 days", 30),
    ("30 to 90 days", 90),
    ("over 90 days", u64::MAX),
];

/// The statistics of the cache `view` read at `url`.
pub fn compute(url: &str, view: &CacheView, top: usize, now: SystemTime) -> Stats {
    let mut packages: HashMap<&str, Group> = HashMap::new();
    let mut bands: Vec<Group> = BANDS
        .iter()
        .map(|(l, _)| Group {
            label: l.to_string(),
            specs: 0,
            bytes: 0,
        })
        .collect();
    let mut complete = true;
    for lm in &view.layouts {
        complete &= lm.manifests.unread.is_empty();
        for (hash, rec) in lm.specs() {
            let name = &*lm.node(hash).name;
            let g = packages.entry(name).or_insert_with(|| Group {
                label: name.to_string(),
                specs: 0,
                bytes: 0,
            });
            g.specs += 1;
            g.bytes += rec.bytes(&view.listing);
            let days = rec
                .newest(&view.listing)
                .map(|t| now.duration_since(t).unwrap_or_default())
                .unwrap_or(Duration::MAX)
                .as_secs()
                / 86400;
            let band = BANDS
                .iter()
                .position(|(_, limit)| days < *limit)
                .unwrap_or(BANDS.len() - 1);
            bands[band].specs += 1;
            bands[band].bytes += rec.bytes(&view.listing);
        }
    }
    let mut packages: Vec<Group> = packages.into_values().collect();
    packages.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.label.cmp(&b.label)));
    packages.truncate(top);
    let orphans: Vec<(u64, Unowned)> = view
        .layouts
        .iter()
        .flat_map(|lm| {
            lm.unowned(&view.listing)
                .into_iter()
                .map(|(_, o, k)| (o.size, k))
        })
        // Blobs of unread manifests would look unreferenced: leave them out rather than guess.
        .filter(|(_, k)| complete || *k != Unowned::Blob)
        .collect();
    Stats {
        cache: url.to_string(),
        generated: rfc3339(now),
        objects: view.listing.objects.len(),
        bytes: view.listing.objects.iter().map(|o| o.size).sum(),
        layouts: view
            .layouts
            .iter()
            .map(|l| LayoutStats {
                layout: l.layout.to_string(),
                specs: l.cached(),
            })
            .collect(),
        packages,
        age_bands: bands,
        orphans: orphans.len(),
        orphan_bytes: orphans.iter().map(|(s, _)| s).sum(),
        complete,
    }
}

pub async fn run(
    store: &Store,
    top: usize,
    sizes: bool,
    html: Option<&std::path::Path>,
    printer: &Printer,
) -> anyhow::Result<u8> {
    let reads = if sizes { Reads::All } else { Reads::MemoOnly };
    let loaded = LoadedCache::load_shown(store, reads, printer).await?;
    let stats = compute(&loaded.url, &loaded.view, top, SystemTime::now());
    if let Some(path) = html {
        std::fs::write(path, render_html(&stats))
            .with_context(|| format!("writing {}", path.display()))?;
        printer.log(format!("wrote {}", path.display()));
    }
    if printer.is_json() {
        printer.json(&stats)?;
        return Ok(exit::SUCCESS);
    }
    let mut out = format!(
        "{}: {} objects, {}\n",
        stats.cache,
        stats.objects,
        human_bytes(stats.bytes)
    );
    for l in &stats.layouts {
        out.push_str(&format!("  {}: {} specs\n", l.layout, l.specs));
    }
    out.push_str(&format!(
        "  orphans: {} ({})\n\n",
        stats.orphans,
        human_bytes(stats.orphan_bytes)
    ));
    let rows = |groups: &[Group]| -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| vec![g.label.clone(), g.specs.to_string(), human_bytes(g.bytes)])
            .collect()
    };
    out.push_str(&table(
        &["AGE", "SPECS", "BYTES"],
        &rows(&stats.age_bands),
        &[false, true, true],
    ));
    out.push('\n');
    out.push_str(&table(
        &["PACKAGE", "SPECS", "BYTES"],
        &rows(&stats.packages),
        &[false, true, true],
    ));
    printer.data(&out)?;
    if !stats.complete {
        printer.log("some v3 manifests were never read: their blobs are missing from sizes and orphans (`--sizes` reads them, one request each)");
    }
    Ok(exit::SUCCESS)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart as inline SVG.
fn bars(groups: &[Group], title: &str) -> String {
    let max = groups.iter().map(|g| g.bytes).max().unwrap_or(0).max(1) as f64;
    let (row, label_w, bar_w) = (26, 170, 420);
    let height = row * groups.len() + 10;
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg role=\"img\" aria-label=\"{}\" width=\"{}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(title),
        escape(title),
        label_w + bar_w + 190
    );
    for (i, g) in groups.iter().enumerate() {
        let y = i * row + 5;
        let w = ((g.bytes as f64 / max) * bar_w as f64)
            .round()
            .max(if g.bytes > 0 { 1.0 } else { 0.0 });
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{w}\" height=\"18\" rx=\"3\"><title>{} specs, {}</title></rect><text x=\"{}\" y=\"{}\">{} · {} specs</text>",
            label_w - 8,
            y + 14,
            escape(&g.label),
            g.specs,
            human_bytes(g.bytes),
            label_w as f64 + w + 6.0,
            y + 14,
            human_bytes(g.bytes),
            g.specs
        ));
    }
    svg.push_str("</svg></figure>");
    svg
}

/// A self-contained page: inline CSS and SVG, no script, no external asset.
pub fn render_html(s: &Stats) -> String {
    let layouts: Vec<String> = s
        .layouts
        .iter()
        .map(|l| format!("{} specs ({})", l.specs, l.layout))
        .collect();
    let note = if s.complete {
        String::new()
    } else {
        "<p class=\"note\">Some v3 manifests were not read: their blobs are not counted.</p>".into()
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Build cache report: {cache}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1d2430; max-width: 60rem; }}
h1 {{ font-size: 1.4rem; }} .summary {{ display: flex; gap: 1rem; flex-wrap: wrap; }}
.card {{ background: #f2f5f9; border-radius: 8px; padding: .8rem 1.2rem; }}
.card b {{ display: block; font-size: 1.3rem; }} figure {{ margin: 1.5rem 0; }}
figcaption {{ font-weight: 600; margin-bottom: .5rem; }} svg text {{ font-size: 13px; fill: #1d2430; }}
rect {{ fill: #3b7dd8; }} .note {{ color: #8a5a00; }}
</style></head><body>
<h1>Build cache report</h1><p><code>{cache}</code> · generated {generated}</p>
<div class="summary"><div class="card"><b>{objects}</b>objects</div><div class="card"><b>{bytes}</b>in total</div>
<div class="card"><b>{specs}</b>{layouts}</div><div class="card"><b>{orphans}</b>orphans, {orphan_bytes}</div></div>
{note}{ages}{packages}
</body></html>
"#,
        cache = escape(&s.cache),
        generated = escape(&s.generated),
        objects = s.objects,
        bytes = human_bytes(s.bytes),
        specs = s.layouts.iter().map(|l| l.specs).sum::<usize>(),
        layouts = escape(&layouts.join(", ")),
        orphans = s.orphans,
        orphan_bytes = human_bytes(s.orphan_bytes),
        ages = bars(&s.age_bands, "Size by age of the newest object"),
        packages = bars(&s.packages, "Largest packages"),
    )
}
