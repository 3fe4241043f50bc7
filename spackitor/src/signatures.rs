//! `spackitor verify --trust`: who signed each spec of the cache. The spec document Spack
//! checks (v2 `.spec.json.sig`, else `.spec.json`; v3 the spec manifest) is read and its clear
//! signature checked against the trusted keys by the pure `model::spack::signature`.

use std::path::PathBuf;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use model::cleanup::{CacheView, LayoutView};
use model::spack::buildcache::{Layout, v2, v3};
use model::spack::signature::{TrustedKeys, Verdict};
use serde::Serialize;
use stores::Store;
use terminal::printer::{Printer, table};

/// Spec documents read at once.
const READS_IN_FLIGHT: usize = 32;

/// The public keys in `files`, each an error naming the file when it holds no public key.
pub fn load_keys(files: &[PathBuf]) -> anyhow::Result<TrustedKeys> {
    let mut keys = TrustedKeys::default();
    for f in files {
        let data = std::fs::read(f).with_context(|| format!("reading key file {}", f.display()))?;
        keys.add(&f.display().to_string(), &data)?;
    }
    Ok(keys)
}

/// The signature of one spec.
#[derive(Debug, Serialize)]
pub struct SpecSignature {
    pub layout: String,
    /// `name@version /hash`.
    pub spec: String,
    pub hash: String,
    /// The object whose signature was checked.
    pub key: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The document Spack reads for a spec of `lm`: v2 the signed spec file when there is one (Spack
/// tries `.spec.json.sig` first, `URLBuildcacheEntryV2`), v3 the spec manifest; `None` when it
/// is missing (reported as such by `verify`).
pub(crate) fn spec_document<'v>(
    view: &'v CacheView,
    lm: &LayoutView,
    hash: &str,
) -> Option<&'v str> {
    let keys = lm
        .spec(hash)
        .expect("a cached spec")
        .objects
        .iter()
        .map(|&i| view.key(i));
    match lm.layout {
        Layout::V2 => {
            let mut best = None;
            for k in keys {
                match v2::classify(k) {
                    Some(v2::Object::SpecFile { signed: true, .. }) => return Some(k),
                    Some(v2::Object::SpecFile { signed: false, .. }) => best = Some(k),
                    _ => {}
                }
            }
            best
        }
        Layout::V3 => keys
            .into_iter()
            .find(|k| matches!(v3::classify(k), Some(v3::Object::SpecManifest { .. }))),
    }
}

/// The signature of every spec of every layout in `view`, in index order.
pub async fn check(
    store: &Store,
    view: &CacheView,
    keys: &TrustedKeys,
    printer: &Printer,
) -> anyhow::Result<Vec<SpecSignature>> {
    let mut todo = Vec::new();
    for lm in &view.layouts {
        for (hash, _) in lm.specs() {
            let Some(key) = spec_document(view, lm, hash) else {
                continue;
            };
            let n = lm.node(hash);
            todo.push(SpecSignature {
                layout: lm.layout.to_string(),
                spec: format!("{}@{} /{}", n.name, n.version, &hash[..7]),
                hash: hash.to_string(),
                key: key.to_string(),
                verdict: Verdict::Unsigned,
            });
        }
    }
    let pb = printer.progress(Some(todo.len() as u64), "checking signatures");
    let checked = futures::stream::iter(todo)
        .map(|mut s| {
            let pb = pb.clone();
            async move {
                let doc = store
                    .get(&s.key)
                    .await
                    .with_context(|| format!("reading {}", store.location(&s.key)))?;
                s.verdict = keys.check(&doc.bytes);
                pb.inc(1);
                Ok::<_, anyhow::Error>(s)
            }
        })
        .buffered(READS_IN_FLIGHT)
        .try_collect()
        .await;
    pb.finish_and_clear();
    checked
}

/// The signatures as a table, one row per spec.
pub fn print(found: &[SpecSignature], printer: &Printer) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|s| {
            vec![
                s.layout.clone(),
                s.spec.clone(),
                s.verdict.to_string(),
                s.key.clone(),
            ]
        })
        .collect();
    printer.data(&table(&["LAYOUT", "SPEC", "SIGNATURE", "KEY"], &rows, &[]))?;
    let untrusted = found.iter().filter(|s| !s.verdict.is_trusted()).count();
    if untrusted > 0 {
        printer.log(format!(
            "{untrusted} of {} spec(s) not signed by a trusted key",
            found.len()
        ));
    }
    Ok(())
}
