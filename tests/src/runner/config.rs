//! Reading a pipeline file as GitLab does when it creates the pipeline: its size and depth
//! limits, the keys this runner implements (any other is refused by name), the values GitLab
//! validates (`retry`), and the `needs` limit.

use model::ci::{Job, Need, Pipeline, Retry};
use model::yaml::Value;

/// GitLab's instance limits that refuse a pipeline when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `max_yaml_size_bytes`: "The default maximum size of a single CI/CD configuration YAML
    /// file is 2 megabytes" (GitLab 17.3 and later,
    /// https://docs.gitlab.com/administration/instance_limits/#maximum-size-and-depth-of-cicd-configuration-yaml-files).
    pub max_yaml_size_bytes: usize,
    /// `max_yaml_depth`: "the default depth is 100" (same page).
    pub max_yaml_depth: usize,
    /// "The maximum number of jobs that a single job can have in the `needs` array": 50 by
    /// default (https://docs.gitlab.com/ci/yaml/#needs, `ci_needs_size_limit`).
    pub max_needs: usize,
    /// `max_artifacts_content_include_size`: the artifact a dynamic child pipeline is read
    /// from, 5 MB by default
    /// (https://docs.gitlab.com/administration/instance_limits/#maximum-size-of-the-ci-artifacts-archive).
    pub max_include_artifact_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_yaml_size_bytes: 2 * 1024 * 1024,
            max_yaml_depth: 100,
            max_needs: 50,
            max_include_artifact_bytes: 5 * 1024 * 1024,
        }
    }
}

const TOP_KEYS: &[&str] = &["workflow", "stages", "variables"];
const JOB_KEYS: &[&str] = &[
    "stage",
    "image",
    "tags",
    "variables",
    "rules",
    "needs",
    "dependencies",
    "before_script",
    "script",
    "after_script",
    "artifacts",
    "trigger",
    "timeout",
    "retry",
    "when",
    "allow_failure",
    // Only cancels a running pipeline when a newer one starts on the same ref
    // (https://docs.gitlab.com/ci/yaml/#interruptible): one pipeline at a time here.
    "interruptible",
    // Jobs run one at a time here, so a resource group is always free
    // (https://docs.gitlab.com/ci/yaml/#resource_group).
    "resource_group",
];
const IMAGE_KEYS: &[&str] = &["name", "entrypoint", "pull_policy"];
const RULE_KEYS: &[&str] = &["if", "when"];
const NEED_KEYS: &[&str] = &["job", "pipeline", "artifacts", "optional"];
// `expire_in` is accepted: artifacts outlive any pipeline this runner runs.
const ARTIFACT_KEYS: &[&str] = &["paths", "when", "expire_in", "reports"];
const REPORT_KEYS: &[&str] = &["dotenv"];
const TRIGGER_KEYS: &[&str] = &["include", "strategy", "forward"];
const INCLUDE_KEYS: &[&str] = &["artifact", "job"];
const FORWARD_KEYS: &[&str] = &["pipeline_variables", "yaml_variables"];
const RETRY_KEYS: &[&str] = &["max", "when"];
/// The failure types `retry:when` accepts (https://docs.gitlab.com/ci/yaml/#retrywhen): GitLab's
/// list, which the configuration checks against too.
pub const RETRY_WHEN: &[&str] = model::config::RETRY_REASONS;

/// Every key of `value` (a mapping) must be in `known`.
fn keys(value: &Value, known: &[&str], at: &str) -> Result<(), String> {
    let Some(m) = value.as_mapping() else {
        return Ok(());
    };
    for k in m.keys() {
        let k = k.as_str().unwrap_or("?");
        if !known.contains(&k) {
            return Err(format!("{at}: this runner does not know `{k}`"));
        }
    }
    Ok(())
}

fn check_workflow(v: &Value) -> Result<(), String> {
    keys(v, &["rules"], "workflow")?;
    for r in v["rules"].as_sequence().into_iter().flatten() {
        keys(r, RULE_KEYS, "workflow rule")?;
    }
    Ok(())
}

fn check_job(name: &str, v: &Value) -> Result<(), String> {
    let at = format!("job `{name}`");
    keys(v, JOB_KEYS, &at)?;
    keys(&v["image"], IMAGE_KEYS, &format!("{at}: image"))?;
    for r in v["rules"].as_sequence().into_iter().flatten() {
        keys(r, RULE_KEYS, &format!("{at}: rule"))?;
    }
    for n in v["needs"].as_sequence().into_iter().flatten() {
        keys(n, NEED_KEYS, &format!("{at}: need"))?;
    }
    let artifacts = &v["artifacts"];
    keys(artifacts, ARTIFACT_KEYS, &format!("{at}: artifacts"))?;
    keys(
        &artifacts["reports"],
        REPORT_KEYS,
        &format!("{at}: reports"),
    )?;
    let trigger = &v["trigger"];
    keys(trigger, TRIGGER_KEYS, &format!("{at}: trigger"))?;
    keys(&trigger["forward"], FORWARD_KEYS, &format!("{at}: forward"))?;
    for i in trigger["include"].as_sequence().into_iter().flatten() {
        keys(i, INCLUDE_KEYS, &format!("{at}: include"))?;
    }
    keys(&v["retry"], RETRY_KEYS, &format!("{at}: retry"))?;
    if v["allow_failure"].is_mapping() {
        return Err(format!(
            "{at}: this runner does not know `allow_failure: exit_codes`"
        ));
    }
    Ok(())
}

/// The strict reading: every key of every level is one the runner implements.
pub fn check_keys(doc: &Value) -> Result<(), String> {
    let top = doc.as_mapping().ok_or("not a mapping")?;
    for (k, v) in top {
        let name = k.as_str().unwrap_or("?");
        if TOP_KEYS.contains(&name) {
            if name == "workflow" {
                check_workflow(v)?;
            }
            continue;
        }
        if matches!(name, "include" | "default" | "image" | "services" | "cache") {
            return Err(format!("this runner does not know top-level `{name}`"));
        }
        check_job(name, v)?;
    }
    Ok(())
}

/// How deep `v` nests mappings and sequences (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Mapping(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Sequence(s) => 1 + s.iter().map(depth).max().unwrap_or(0),
        Value::Tagged(t) => depth(&t.value),
        _ => 0,
    }
}

/// The size limit on the file itself, checked before it is parsed; GitLab's error is "The
/// parsed YAML is too big".
fn check_file_size(text: &str, limits: &Limits) -> Result<(), String> {
    let limit = limits.max_yaml_size_bytes;
    if text.len() > limit {
        return Err(format!(
            "The parsed YAML is too big: the file has {} bytes, more than max_yaml_size_bytes ({limit})",
            text.len()
        ));
    }
    Ok(())
}

/// The size and depth limits on the loaded data. GitLab measures the data, not the file: "The
/// `max_yaml_size_bytes` value is not directly tied to the size of the YAML file, but rather
/// the memory allocated for the relevant objects" (instance limits page), so an alias counts
/// once per use: here, the bytes of the data written out with every alias expanded.
fn check_loaded_size(doc: &Value, limits: &Limits) -> Result<(), String> {
    let limit = limits.max_yaml_size_bytes;
    let expanded = model::yaml::to_string(doc).len();
    if expanded > limit {
        return Err(format!(
            "The parsed YAML is too big: {expanded} bytes with its aliases expanded, more than max_yaml_size_bytes ({limit})"
        ));
    }
    let d = depth(doc);
    if d > limits.max_yaml_depth {
        return Err(format!(
            "The parsed YAML is too big: nested {d} deep, more than max_yaml_depth ({})",
            limits.max_yaml_depth
        ));
    }
    Ok(())
}

/// `retry: {when: script_failure}` is GitLab's short form of a one-element list, and a
/// `retry` without `max` retries 0 times (https://gitlab.com/gitlab-org/gitlab/-/issues/535395):
/// both written out in the form the pipeline model reads.
fn normalize_retry(doc: &mut Value) {
    let Some(top) = doc.as_mapping_mut() else {
        return;
    };
    for (_, job) in top.iter_mut() {
        let Some(retry) = job.get_mut("retry").and_then(Value::as_mapping_mut) else {
            continue;
        };
        if let Some(w @ Value::String(_)) = retry.get_mut("when") {
            *w = Value::Sequence(vec![w.clone()]);
        }
        if !retry.contains_key("max") {
            retry.insert("max".into(), Value::Number(0.into()));
        }
    }
}

/// `retry` values GitLab accepts: `max` "can be `0`, `1`, or `2`", `when` among the failure
/// types (https://docs.gitlab.com/ci/yaml/#retry).
fn check_retry(name: &str, retry: &Retry) -> Result<(), String> {
    let (max, when): (u8, &[String]) = match retry {
        Retry::Max(m) => (*m, &[]),
        Retry::Detailed { max, when } => (*max, when),
    };
    if max > 2 {
        return Err(format!(
            "job `{name}`: retry max is {max}; GitLab accepts 0, 1 or 2"
        ));
    }
    for w in when {
        if !RETRY_WHEN.contains(&w.as_str()) {
            return Err(format!(
                "job `{name}`: retry when `{w}` is not a failure type"
            ));
        }
    }
    Ok(())
}

/// The pipeline in `text`, read and checked as GitLab does when it creates a pipeline.
pub fn read(text: &str, limits: &Limits) -> Result<Pipeline, String> {
    check_file_size(text, limits)?;
    let mut doc: Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    check_loaded_size(&doc, limits)?;
    check_keys(&doc)?;
    normalize_retry(&mut doc);
    let p: Pipeline = serde_norway::from_value(doc).map_err(|e| e.to_string())?;
    for (name, job) in &p.jobs {
        if let Some(r) = &job.retry {
            check_retry(name, r)?;
        }
    }
    Ok(p)
}

/// The `needs` limit, checked for each job added to the pipeline, with GitLab's message
/// (`Gitlab::Ci::Pipeline::Seed::Build#needs_errors`). Needs on another pipeline's jobs are
/// not part of that list.
pub fn check_needs(name: &str, job: &Job, limits: &Limits) -> Result<(), String> {
    let count = job
        .needs
        .iter()
        .flatten()
        .filter(|n| {
            !matches!(
                n,
                Need::Detailed {
                    pipeline: Some(_),
                    ..
                }
            )
        })
        .count();
    if count > limits.max_needs {
        return Err(format!(
            "{name}: one job can only need {} others, but you have listed {count}. See needs keyword documentation for more details",
            limits.max_needs
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_yaml(extra: &str) -> String {
        format!("job:\n  script: [echo]\n{extra}")
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = read(&job_yaml("  cache: {paths: [x]}\n"), &Limits::default()).unwrap_err();
        assert!(err.contains("`cache`"), "{err}");
        let err = read(
            &job_yaml("  rules:\n  - if: $X\n    changes: [a]\n"),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(err.contains("`changes`"), "{err}");
        let err = read(&job_yaml("  services: [docker:dind]\n"), &Limits::default());
        assert!(err.unwrap_err().contains("`services`"));
        let err = read(&job_yaml("  only: [main]\n"), &Limits::default());
        assert!(err.unwrap_err().contains("`only`"));
    }

    /// `allow_failure`, `interruptible`, `resource_group` and `artifacts: expire_in` are
    /// GitLab keys this runner accepts.
    #[test]
    fn accepted_keys() {
        let p = read(
            &job_yaml(
                "  allow_failure: true\n  interruptible: true\n  resource_group: r\n  artifacts: {paths: [a], expire_in: 1 week}\n",
            ),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(p.jobs["job"].allow_failure, Some(true));
    }

    /// https://docs.gitlab.com/ci/yaml/#retry: `max` 0, 1 or 2; `when` a failure type or a
    /// list of them.
    #[test]
    fn retry_is_validated_as_gitlab_does() {
        let l = Limits::default();
        let p = read(&job_yaml("  retry: {max: 2, when: script_failure}\n"), &l).unwrap();
        assert_eq!(
            p.jobs["job"].retry,
            Some(Retry::Detailed {
                max: 2,
                when: vec!["script_failure".into()]
            })
        );
        let p = read(&job_yaml("  retry: {when: [always]}\n"), &l).unwrap();
        assert!(matches!(
            p.jobs["job"].retry,
            Some(Retry::Detailed { max: 0, .. })
        ));
        assert!(
            read(&job_yaml("  retry: 3\n"), &l)
                .unwrap_err()
                .contains("0, 1 or 2")
        );
        let err = read(&job_yaml("  retry: {max: 1, when: [oops]}\n"), &l).unwrap_err();
        assert!(err.contains("`oops`"), "{err}");
        let err = read(&job_yaml("  retry: {max: 1, exit_codes: 137}\n"), &l).unwrap_err();
        assert!(err.contains("`exit_codes`"), "{err}");
    }

    /// max_yaml_size_bytes counts the loaded data: a small file whose aliases expand beyond
    /// the limit is refused, as is a file over it and one nested deeper than max_yaml_depth.
    #[test]
    fn size_and_depth_limits() {
        let limits = Limits {
            max_yaml_size_bytes: 2000,
            ..Limits::default()
        };
        let big = job_yaml(&format!("  variables: {{A: \"{}\"}}\n", "x".repeat(3000)));
        assert!(read(&big, &limits).unwrap_err().contains("too big"));
        let mut aliased = format!(
            ".t: &t {{A: \"{}\"}}\njob:\n  script: [echo]\n",
            "y".repeat(300)
        );
        for i in 0..10 {
            aliased.push_str(&format!("j{i}:\n  script: [echo]\n  variables: *t\n"));
        }
        assert!(aliased.len() < 2000);
        let err = read(&aliased, &limits).unwrap_err();
        assert!(err.contains("aliases expanded"), "{err}");
        let deep = format!(
            "job:\n  script: [echo]\n  variables: {{A: {}1{}}}\n",
            "[".repeat(120),
            "]".repeat(120)
        );
        let err = read(&deep, &Limits::default()).unwrap_err();
        assert!(err.contains("max_yaml_depth"), "{err}");
        assert!(read(&job_yaml(""), &Limits::default()).is_ok());
    }

    /// https://docs.gitlab.com/ci/yaml/#needs: at most 50 by default, GitLab's message.
    #[test]
    fn needs_limit() {
        let needs = |n: usize| Job {
            needs: Some((0..n).map(|i| Need::job(format!("j{i}"))).collect()),
            ..Job::default()
        };
        let l = Limits::default();
        assert!(check_needs("rebuild-index", &needs(50), &l).is_ok());
        assert_eq!(
            check_needs("rebuild-index", &needs(51), &l).unwrap_err(),
            "rebuild-index: one job can only need 50 others, but you have listed 51. See needs keyword documentation for more details"
        );
        let l = Limits {
            max_needs: 100,
            ..l
        };
        assert!(check_needs("x", &needs(51), &l).is_ok());
    }
}
