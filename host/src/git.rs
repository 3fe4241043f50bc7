//! What git says of a remote without cloning it (`git ls-remote`) — which branches still
//! exist, under their names and GitLab slugs, and the commit at a branch's head — and of a
//! checkout, its revision. What is built per branch (SIFs, keep lists) is dropped only for
//! names this says are gone, and a remote that lists no branch is an error, never "everything
//! is gone".

use std::collections::BTreeSet;
use std::process::Command;

use model::secret::Login;
use model::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git login: variable `{0}` is not set or empty")]
    Login(String),
    #[error("running git ({0}): install git")]
    Missing(std::io::Error),
    #[error("git ls-remote {repo} failed: {message}")]
    Failed { repo: String, message: String },
    #[error("git ls-remote {repo} listed no branch: refusing to treat every branch as deleted")]
    NoBranch { repo: String },
    #[error("branch `{branch}` does not exist in {repo}")]
    NoSuchBranch { repo: String, branch: String },
}

/// The commit at the head of `branch` in `repository`, from `git ls-remote` (no clone).
pub fn branch_head(repository: &str, branch: &str) -> Result<String, GitError> {
    let out = Command::new("git")
        .args(["ls-remote", "--heads", "--", repository])
        .arg(format!("refs/heads/{branch}"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(GitError::Missing)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            repo: repository.to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(commit) if commit.len() >= 40 => Ok(commit.to_string()),
        _ => Err(GitError::NoSuchBranch {
            repo: repository.to_string(),
            branch: branch.to_string(),
        }),
    }
}

/// The revision of the checkout at `repo`, when it is one (`git rev-parse HEAD`).
pub fn revision(repo: &std::path::Path) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A git remote and, for a private one, the HTTP user and the name of the variable holding its
/// token (given to git through its environment, never on its command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub url: String,
    pub login: Option<(String, String)>,
}

/// GitLab's `CI_COMMIT_REF_SLUG`: lowercase, anything but `[a-z0-9]` made `-`, at most 63
/// bytes, no `-` at either end.
pub fn ref_slug(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    s.trim_matches('-').to_string()
}

impl Remote {
    /// Branch and tag names, read with `git ls-remote --heads --tags`.
    pub fn refs(&self) -> Result<Vec<String>, GitError> {
        let repo = &self.url;
        let mut cmd = Command::new("git");
        cmd.args(["ls-remote", "--heads", "--tags", "--", repo])
            .env("GIT_TERMINAL_PROMPT", "0");
        if let Some((user, var)) = &self.login {
            let token = Secret::from_env(var).ok_or_else(|| GitError::Login(var.clone()))?;
            let basic = Login {
                user: user.clone(),
                secret: token,
            }
            .basic_header();
            // Configuration through the environment (git ≥ 2.31): nothing secret in `ps`.
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", format!("Authorization: {basic}"));
        }
        let out = cmd.output().map_err(GitError::Missing)?;
        if !out.status.success() {
            return Err(GitError::Failed {
                repo: repo.clone(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
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
            return Err(GitError::NoBranch { repo: repo.clone() });
        }
        Ok(names)
    }

    /// Every name a branch or tag of the remote goes by — as written and as a slug — and the
    /// default branch's.
    pub fn alive(&self, default_branch: &str) -> Result<Alive, GitError> {
        let refs = self.refs()?;
        let mut names: BTreeSet<String> = refs.iter().map(|r| ref_slug(r)).collect();
        names.extend(refs.iter().cloned());
        names.insert(default_branch.to_string());
        names.insert(ref_slug(default_branch));
        Ok(Alive {
            refs: refs.len(),
            names,
        })
    }
}

/// The branch and tag names of a remote that still exist.
#[derive(Debug, Clone, Default)]
pub struct Alive {
    /// Branches and tags the remote lists.
    pub refs: usize,
    names: BTreeSet<String>,
}

impl Alive {
    pub fn contains(&self, branch: &str) -> bool {
        self.names.contains(branch)
    }
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
