//! Which jobs GitLab adds to a pipeline: the ref it runs for and its predefined variables,
//! `workflow:rules` and `rules:if`, and the default `only: [branches, tags]` of a job without
//! rules.

use std::collections::BTreeMap;

use model::ci::{Job, Rule};

/// The ref a pipeline runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineRef {
    Branch(String),
    /// A merge request pipeline runs on the merge request's own ref
    /// (`refs/merge-requests/IID/head`), which is not a branch.
    MergeRequest {
        iid: u32,
        source_branch: String,
        target_branch: String,
    },
}

impl PipelineRef {
    /// `CI_COMMIT_REF_NAME`: the branch, and for a merge request its source branch
    /// (https://gitlab.com/gitlab-org/gitlab-foss/-/merge_requests/27663: "With merge request
    /// pipelines, it returns a source branch ref instead of a merge request ref").
    pub fn name(&self) -> &str {
        match self {
            PipelineRef::Branch(b) => b,
            PipelineRef::MergeRequest { source_branch, .. } => source_branch,
        }
    }
}

/// The variables GitLab defines for a pipeline of `source` on `git_ref`
/// (https://docs.gitlab.com/ci/variables/predefined_variables/).
pub fn predefined(
    pipeline: u32,
    source: &str,
    git_ref: &PipelineRef,
    default_branch: &str,
    project_url: &str,
) -> BTreeMap<String, String> {
    let name = git_ref.name();
    let slug: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut v: BTreeMap<String, String> = [
        ("CI", "true"),
        ("GITLAB_CI", "true"),
        ("CI_PIPELINE_SOURCE", source),
        ("CI_COMMIT_REF_NAME", name),
        ("CI_COMMIT_REF_SLUG", &slug),
        ("CI_DEFAULT_BRANCH", default_branch),
        ("CI_PROJECT_DIR", "/builds/project"),
        ("CI_PROJECT_URL", project_url),
        // A remote this runner's jobs read without a token; the variable still exists.
        ("CI_JOB_TOKEN", "test-runner-job-token"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    v.insert("CI_PIPELINE_ID".into(), pipeline.to_string());
    match git_ref {
        // CI_COMMIT_BRANCH: "Available in branch pipelines, including pipelines for the
        // default branch. Not available in merge request pipelines or tag pipelines."
        PipelineRef::Branch(b) => {
            v.insert("CI_COMMIT_BRANCH".into(), b.clone());
        }
        // "Predefined variables for merge request pipelines"; a child pipeline of a merge
        // request pipeline is a merge request pipeline too and has them
        // (https://gitlab.com/gitlab-org/gitlab/-/merge_requests/23884, and the docs'
        // advice to test `$CI_MERGE_REQUEST_ID` in child pipelines,
        // https://gitlab.com/gitlab-org/gitlab/-/issues/386787).
        PipelineRef::MergeRequest {
            iid,
            source_branch,
            target_branch,
        } => {
            for (k, val) in [
                ("CI_MERGE_REQUEST_ID", iid.to_string()),
                ("CI_MERGE_REQUEST_IID", iid.to_string()),
                ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", source_branch.clone()),
                ("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", target_branch.clone()),
                (
                    "CI_MERGE_REQUEST_REF_PATH",
                    format!("refs/merge-requests/{iid}/head"),
                ),
                ("CI_MERGE_REQUEST_EVENT_TYPE", "detached".into()),
            ] {
                v.insert(k.into(), val);
            }
        }
    }
    v
}

/// `$NAME` and `${NAME}` replaced from `vars` (unknown names become empty, as in GitLab).
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => ("", after),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// A `rules: if:` expression: `A == B`, `A != B`, a bare `$VAR`, joined by `&&` and `||`;
/// operands are `$VAR`, `"string"` or `null`.
pub fn evaluate(expr: &str, vars: &BTreeMap<String, String>) -> Result<bool, String> {
    let operand = |s: &str| -> Result<Option<String>, String> {
        let s = s.trim();
        if let Some(name) = s.strip_prefix('$') {
            return Ok(vars.get(name).cloned().filter(|v| !v.is_empty()));
        }
        if let Some(lit) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            return Ok(Some(lit.to_string()));
        }
        if s == "null" {
            return Ok(None);
        }
        Err(format!("`{s}` is not an operand this runner knows"))
    };
    let mut any = false;
    for alternative in expr.split("||") {
        let mut all = true;
        for term in alternative.split("&&") {
            if term.contains("=~") || term.contains('(') {
                return Err(format!("`{term}`: this runner does not evaluate it"));
            }
            let value = if let Some((a, b)) = term.split_once("==") {
                operand(a)? == operand(b)?
            } else if let Some((a, b)) = term.split_once("!=") {
                operand(a)? != operand(b)?
            } else {
                operand(term)?.is_some()
            };
            all &= value;
        }
        any |= all;
    }
    Ok(any)
}

/// The first matching rule's `when`, `fallback` when it has none; `None` when no rule
/// matches ("If no rules match, the job is not added to the pipeline",
/// https://docs.gitlab.com/ci/yaml/#rules).
fn first_match(
    rules: &[Rule],
    vars: &BTreeMap<String, String>,
    fallback: &str,
) -> Result<Option<String>, String> {
    for r in rules {
        let matched = match &r.if_ {
            Some(e) => evaluate(e, vars)?,
            None => true,
        };
        if matched {
            return Ok(Some(r.when.clone().unwrap_or_else(|| fallback.into())));
        }
    }
    Ok(None)
}

/// Whether `workflow:rules` create the pipeline: no rules, or a first match that is not
/// `when: never` (a matching rule without `when` is `always`).
pub fn workflow_creates(rules: &[Rule], vars: &BTreeMap<String, String>) -> Result<bool, String> {
    if rules.is_empty() {
        return Ok(true);
    }
    Ok(first_match(rules, vars, "always")?.is_some_and(|w| w != "never"))
}

/// The `when` a job is added to the pipeline with, or `None` when it is not added.
///
/// A matching rule without `when` takes the job's own `when`, itself `on_success` by default
/// ("If a rule matches and has no `when` defined, the rule uses the `when` defined for the
/// job", https://docs.gitlab.com/ci/yaml/#rulesif). A job with no `rules` (and this runner
/// refuses `only`/`except`) gets GitLab's default `only: [branches, tags]`
/// (https://docs.gitlab.com/ci/yaml/deprecated_keywords/#only--except; `DEFAULT_ONLY = {
/// refs: %w[branches tags] }`, https://gitlab.com/gitlab-org/gitlab/-/issues/31685): a merge
/// request pipeline's ref is neither, so such a job is not added there ("No stages / jobs for
/// this pipeline" for a file without `only: [merge_requests]`).
pub fn job_when(
    job: &Job,
    vars: &BTreeMap<String, String>,
    git_ref: &PipelineRef,
) -> Result<Option<String>, String> {
    let own = job.when.as_deref().unwrap_or("on_success");
    let when = if job.rules.is_empty() {
        match git_ref {
            PipelineRef::Branch(_) => Some(own.to_string()),
            PipelineRef::MergeRequest { .. } => None,
        }
    } else {
        first_match(&job.rules, vars, own)?
    };
    Ok(when.filter(|w| w != "never"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn mr() -> PipelineRef {
        PipelineRef::MergeRequest {
            iid: 7,
            source_branch: "feature".into(),
            target_branch: "main".into(),
        }
    }

    #[test]
    fn rules_are_evaluated_as_gitlab_does() {
        let v = vars(&[
            ("CI_PIPELINE_SOURCE", "web"),
            ("CI_COMMIT_BRANCH", "feature"),
            ("CI_DEFAULT_BRANCH", "main"),
        ]);
        assert!(evaluate("$CI_PIPELINE_SOURCE == \"web\"", &v).unwrap());
        assert!(!evaluate("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", &v).unwrap());
        assert!(
            evaluate(
                "$CI_PIPELINE_SOURCE == \"web\" && $CI_COMMIT_BRANCH != $CI_DEFAULT_BRANCH",
                &v
            )
            .unwrap()
        );
        assert!(evaluate("$NOPE == null || $CI_COMMIT_BRANCH", &v).unwrap());
        assert!(evaluate("$CI_COMMIT_TAG =~ /^v/", &v).is_err());
        assert!(evaluate("$A == unquoted", &v).is_err());
    }

    #[test]
    fn variables_expand_as_gitlab_does() {
        let v = vars(&[("BUILDER_TAG", "latest")]);
        assert_eq!(expand("reg/builder:$BUILDER_TAG", &v), "reg/builder:latest");
        assert_eq!(expand("${BUILDER_TAG}-x $NOPE.", &v), "latest-x .");
    }

    /// Predefined variables: CI_COMMIT_BRANCH is "not available in merge request pipelines";
    /// CI_COMMIT_REF_NAME is the source branch; the merge request variables are set.
    #[test]
    fn a_merge_request_pipeline_is_not_on_a_branch() {
        let v = predefined(1, "merge_request_event", &mr(), "main", "url");
        assert!(!v.contains_key("CI_COMMIT_BRANCH"));
        assert_eq!(v["CI_COMMIT_REF_NAME"], "feature");
        assert_eq!(v["CI_MERGE_REQUEST_IID"], "7");
        assert_eq!(v["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"], "feature");
        assert_eq!(v["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"], "main");
        // The child of a merge request pipeline: source parent_pipeline, still on the MR.
        let child = predefined(2, "parent_pipeline", &mr(), "main", "url");
        assert_eq!(child["CI_PIPELINE_SOURCE"], "parent_pipeline");
        assert!(child.contains_key("CI_MERGE_REQUEST_IID"));
        assert!(!child.contains_key("CI_COMMIT_BRANCH"));
        let branch = predefined(3, "push", &PipelineRef::Branch("main".into()), "main", "u");
        assert_eq!(branch["CI_COMMIT_BRANCH"], "main");
        assert!(!branch.contains_key("CI_MERGE_REQUEST_IID"));
    }

    /// The default `only: [branches, tags]` of a job without rules: added to a branch
    /// pipeline (and its children), not to a merge request pipeline (nor its children).
    #[test]
    fn a_job_without_rules_is_not_added_to_a_merge_request_pipeline() {
        let job = Job {
            script: vec!["true".into()],
            ..Job::default()
        };
        let v = vars(&[]);
        assert_eq!(
            job_when(&job, &v, &PipelineRef::Branch("main".into())).unwrap(),
            Some("on_success".into())
        );
        assert_eq!(job_when(&job, &v, &mr()).unwrap(), None);
        let with_rule = Job {
            rules: vec![Rule::when_if("$CI_MERGE_REQUEST_IID", "on_success")],
            ..job.clone()
        };
        let v = predefined(1, "merge_request_event", &mr(), "main", "u");
        assert_eq!(
            job_when(&with_rule, &v, &mr()).unwrap(),
            Some("on_success".into())
        );
    }

    /// "If a rule matches and has no `when` defined, the rule uses the `when` defined for the
    /// job"; `when: never` and no matching rule leave the job out.
    #[test]
    fn a_rule_without_when_takes_the_jobs_when() {
        let v = vars(&[("X", "1")]);
        let b = PipelineRef::Branch("main".into());
        let job = Job {
            when: Some("always".into()),
            rules: vec![Rule {
                if_: Some("$X".into()),
                ..Rule::default()
            }],
            ..Job::default()
        };
        assert_eq!(job_when(&job, &v, &b).unwrap(), Some("always".into()));
        assert_eq!(job_when(&job, &vars(&[]), &b).unwrap(), None);
        let never = Job {
            rules: vec![Rule::when_if("$X", "never")],
            ..Job::default()
        };
        assert_eq!(job_when(&never, &v, &b).unwrap(), None);
        assert!(workflow_creates(&[], &v).unwrap());
        assert!(!workflow_creates(&[Rule::when_if("$X", "never")], &v).unwrap());
        assert!(!workflow_creates(&[Rule::when_if("$Y", "always")], &v).unwrap());
    }
}
