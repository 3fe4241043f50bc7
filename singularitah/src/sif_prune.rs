//! `singularitah sif prune-branches`: remove SIFs built for branches that no longer exist
//! (from buckets and directories), never those of the default branch or of tags, and never one
//! that does not record its branch. Every input — the remote's branches and tags, every listing
//! and record — is read before the first delete.

use anyhow::Context;
use host::git::Remote;
use serde::Serialize;
use stores::sif_published;
use stores::{S3Options, Store, StoreUrl};

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The git remote whose branches and tags are alive.
    pub repo: String,
    pub default_branch: String,
    /// HTTP user and the variable holding its token, for a private remote; sent to git through
    /// its environment, never on its command line.
    pub git_login: Option<(String, String)>,
    /// Buckets or directories (`s3://…`, a path) holding SIFs.
    pub stores: Vec<StoreUrl>,
    pub s3: S3Options,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Branch and tag names the remote has.
    pub alive: usize,
    /// Removed SIFs, by location.
    pub removed: Vec<String>,
    pub kept: usize,
    /// SIFs that record no branch (published before SIFs recorded one): kept, by location.
    pub unattributed: Vec<String>,
}

impl PruneReport {
    /// What was removed and what kept without a record, a line each, then the counts.
    pub fn text(&self, dry_run: bool) -> String {
        let verb = if dry_run { "would remove" } else { "removed" };
        let mut text: String = self
            .removed
            .iter()
            .map(|k| format!("{verb} {k}\n"))
            .collect();
        for k in &self.unattributed {
            text.push_str(&format!("kept {k}: it records no branch\n"));
        }
        text.push_str(&format!(
            "{} {}, {} kept ({} branches and tags alive)\n",
            self.removed.len(),
            if dry_run { "to remove" } else { "removed" },
            self.kept + self.unattributed.len(),
            self.alive
        ));
        text
    }
}

/// Remove from `stores` (those of `opts.stores`) the SIFs of branches the remote no longer has.
pub async fn prune(stores: &[Store], opts: &PruneOptions) -> anyhow::Result<PruneReport> {
    let remote = Remote {
        url: opts.repo.clone(),
        login: opts.git_login.clone(),
    };
    let alive = remote.alive(&opts.default_branch)?;

    let mut plans = Vec::new();
    let mut report = PruneReport {
        alive: alive.refs,
        ..PruneReport::default()
    };
    for store in stores {
        let sifs = sif_published::list(store, "")
            .await
            .with_context(|| format!("listing {}", store.url()))?;
        let mut gone = Vec::new();
        for (o, _) in sifs {
            // The branch it records decides; a SIF that records none is never deleted.
            match sif_published::identity(store, &o.key)
                .await
                .with_context(|| format!("reading what {} is", store.location(&o.key)))?
            {
                Some(id) if !alive.contains(&id.branch) => gone.push(o.key),
                Some(_) => report.kept += 1,
                None => report.unattributed.push(store.location(&o.key)),
            }
        }
        plans.push((store, gone));
    }
    for (store, gone) in plans {
        report
            .removed
            .extend(gone.iter().map(|k| store.location(k)));
        if gone.is_empty() || opts.dry_run {
            continue;
        }
        store
            .delete_all(gone)
            .await
            .context("removing SIFs of deleted branches")?;
    }
    Ok(report)
}
