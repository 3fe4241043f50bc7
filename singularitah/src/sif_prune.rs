//! `singularitah sif prune-branches`: remove SIFs built for branches that no longer exist
//! (from buckets and directories), never those of the default branch or of tags. Every input —
//! the remote's branches and tags, every listing — is read before the first delete.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{Context, bail};
use common::secret::Secret;
use common::sif_object;
use common::store::{S3Options, Store, StoreUrl};
use serde::Serialize;

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
}

/// GitLab's `CI_COMMIT_REF_SLUG`: lowercase, anything but `[a-z0-9]` made `-`, at most 63
/// bytes, no `-` at either end. Tags carry the slug, so both forms of a name count as alive.
pub fn ref_slug(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    s.trim_matches('-').to_string()
}

/// Branch and tag names of `repo`, read with `git ls-remote --heads --tags`.
pub fn remote_refs(repo: &str, login: Option<&(String, String)>) -> anyhow::Result<Vec<String>> {
    let mut cmd = Command::new("git");
    cmd.args(["ls-remote", "--heads", "--tags", "--", repo])
        .env("GIT_TERMINAL_PROMPT", "0");
    if let Some((user, var)) = login {
        let token = Secret::from_env(var)
            .with_context(|| format!("git login: variable `{var}` is not set or empty"))?;
        let basic = common::registry::Login {
            user: user.clone(),
            secret: token,
        }
        .basic_header();
        // Configuration through the environment (git ≥ 2.31): nothing secret in `ps`.
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", format!("Authorization: {basic}"));
    }
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("running git ({e}): install git"))?;
    if !out.status.success() {
        bail!(
            "git ls-remote {repo} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|r| {
            r.strip_prefix("refs/heads/")
                .or_else(|| r.strip_prefix("refs/tags/"))
        })
        .map(|n| n.trim_end_matches("^{}").to_string())
        .collect();
    names.sort();
    names.dedup();
    if !text.lines().any(|l| l.contains("refs/heads/")) {
        // A remote with no branch at all is a wrong URL or an empty answer, never "all gone".
        bail!("git ls-remote {repo} listed no branch: refusing to treat every branch as deleted");
    }
    Ok(names)
}

pub async fn prune(opts: &PruneOptions) -> anyhow::Result<PruneReport> {
    let refs = remote_refs(&opts.repo, opts.git_login.as_ref())?;
    let mut alive: BTreeSet<String> = refs.iter().map(|r| ref_slug(r)).collect();
    alive.extend(refs.iter().cloned());
    alive.insert(opts.default_branch.clone());
    alive.insert(ref_slug(&opts.default_branch));

    let mut plans = Vec::new();
    let mut kept = 0;
    for url in &opts.stores {
        if let StoreUrl::Dir(p) = url
            && !p.is_dir()
        {
            bail!("{}: not a directory", p.display());
        }
        let store = Store::open(url, &opts.s3).await?;
        let sifs = sif_object::list(&store, "")
            .await
            .with_context(|| format!("listing {}", store.url()))?;
        let mut gone = Vec::new();
        for (o, name) in sifs {
            match &name.branch {
                Some(b) if !alive.contains(b) => gone.push(o.key),
                _ => kept += 1,
            }
        }
        plans.push((store, gone));
    }
    let mut report = PruneReport {
        alive: refs.len(),
        kept,
        ..PruneReport::default()
    };
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

#[cfg(test)]
mod tests {
    use super::ref_slug;

    #[test]
    fn slugs_as_gitlab_makes_them() {
        assert_eq!(ref_slug("feature/New_Thing"), "feature-new-thing");
        assert_eq!(ref_slug("-x-"), "x");
        assert_eq!(ref_slug(&"a".repeat(80)).len(), 63);
    }
}
