//! Creating a pipeline as GitLab does, before any job runs: the file read within the limits,
//! the variables, `workflow:rules`, the jobs added for the source and ref, their order and
//! what each waits for, and the runner that takes each.

use std::collections::{BTreeMap, BTreeSet};

use model::ci::{Job, Need, Pipeline};

use super::config::{self, Limits};
use super::rules::{self, PipelineRef};
use super::runners::{self, RunnerSpec};

/// What a pipeline is created for.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// `CI_PIPELINE_SOURCE`: `push`, `web`, `merge_request_event`, `schedule`, and
    /// `parent_pipeline` for a child pipeline.
    pub source: &'a str,
    pub git_ref: &'a PipelineRef,
    pub default_branch: &'a str,
    pub project_url: &'a str,
    pub limits: &'a Limits,
    pub runners: &'a [RunnerSpec],
    /// Project and inherited (trigger) variables: they win over the file's.
    pub outer: &'a BTreeMap<String, String>,
}

/// A job added to the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub name: String,
    /// `on_success`, `on_failure` or `always`.
    pub when: String,
    /// The runner that takes it; none for a trigger job, which GitLab itself runs.
    pub runner: Option<RunnerSpec>,
    /// The jobs of this pipeline it waits for: its `needs`, or every job of earlier stages.
    pub waits_for: Vec<String>,
    pub by_needs: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub pipeline: Pipeline,
    /// Predefined, file and outer variables of the pipeline.
    pub vars: BTreeMap<String, String>,
    /// In the order they run.
    pub jobs: Vec<Planned>,
}

#[derive(Debug, Clone)]
pub enum Created {
    Plan(Box<Plan>),
    /// GitLab creates no pipeline; why, in GitLab's words.
    Nothing(String),
}

/// Why GitLab would not run the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// It refuses the configuration (GitLab shows the error and creates no pipeline).
    Config(String),
    /// A job no runner takes: GitLab would leave it pending forever. Refused here before any
    /// job runs, so that a run does not end hours later on it.
    Pending(String),
}

/// GitLab's message for a pipeline whose `workflow:rules` match nothing
/// (`Ci::Pipeline.workflow_rules_failure_message`).
pub const FILTERED: &str = "Pipeline filtered out by workflow rules.";
/// GitLab's message when the rules leave no job
/// (https://docs.gitlab.com/ci/pipelines/downstream_pipelines_troubleshooting/).
pub const EMPTY: &str = "the resulting pipeline would have been empty. Review the rules configuration for the relevant jobs.";

/// The pipeline of `text` with id `id` for `ctx`.
pub fn create(text: &str, id: u32, ctx: &Context) -> Result<Created, Refused> {
    let p = config::read(text, ctx.limits).map_err(Refused::Config)?;
    let vars = variables(&p, id, ctx);
    let config = |e: String| Refused::Config(e);
    if let Some(w) = &p.workflow
        && !rules::workflow_creates(&w.rules, &vars).map_err(config)?
    {
        return Ok(Created::Nothing(FILTERED.into()));
    }
    let mut added: Vec<(String, String)> = Vec::new();
    for (name, job) in p.jobs.iter().filter(|(n, _)| !n.starts_with('.')) {
        let Some(when) = rules::job_when(job, &vars, ctx.git_ref).map_err(config)? else {
            continue;
        };
        if !matches!(when.as_str(), "on_success" | "on_failure" | "always") {
            return Err(config(format!(
                "job `{name}`: `when: {when}` is not run here"
            )));
        }
        config::check_needs(name, job, ctx.limits).map_err(config)?;
        added.push((name.clone(), when));
    }
    if added.is_empty() {
        return Ok(Created::Nothing(EMPTY.into()));
    }
    let names: Vec<String> = added.iter().map(|(n, _)| n.clone()).collect();
    let waits = waits_for(&p, &names).map_err(config)?;
    let order = order(&names, &waits).map_err(config)?;
    let mut jobs = Vec::new();
    for name in order {
        let job = &p.jobs[&name];
        let runner = match job.trigger {
            Some(_) => None,
            None => Some(runner_for(&name, job, &vars, ctx.runners)?),
        };
        let when = added
            .iter()
            .find(|(n, _)| *n == name)
            .expect("added")
            .1
            .clone();
        jobs.push(Planned {
            waits_for: waits[&name].iter().cloned().collect(),
            by_needs: job.needs.is_some(),
            name,
            when,
            runner,
        });
    }
    Ok(Created::Plan(Box::new(Plan {
        pipeline: p,
        vars,
        jobs,
    })))
}

/// Predefined and file variables, then the outer ones. The file's may name outer ones
/// (`$BUILD_CACHE_ACCESS_KEY_ID`), which still win where both set the same name.
fn variables(p: &Pipeline, id: u32, ctx: &Context) -> BTreeMap<String, String> {
    let mut vars = rules::predefined(
        id,
        ctx.source,
        ctx.git_ref,
        ctx.default_branch,
        ctx.project_url,
    );
    for (k, v) in &p.variables {
        let mut scope = vars.clone();
        scope.extend(ctx.outer.clone());
        let value = rules::expand(v, &scope);
        vars.insert(k.clone(), value);
    }
    vars.extend(ctx.outer.clone());
    vars
}

/// The runner for a job; its tags may use variables ("CI/CD variables are supported",
/// https://docs.gitlab.com/ci/yaml/#tags).
fn runner_for(
    name: &str,
    job: &Job,
    vars: &BTreeMap<String, String>,
    runners: &[RunnerSpec],
) -> Result<RunnerSpec, Refused> {
    let mut scope = vars.clone();
    for (k, v) in &job.variables {
        let value = rules::expand(v, &scope);
        scope.insert(k.clone(), value);
    }
    let tags: Vec<String> = job.tags.iter().map(|t| rules::expand(t, &scope)).collect();
    runners::choose(runners, name, &tags)
        .cloned()
        .map_err(Refused::Pending)
}

/// What each added job waits for: its `needs` on this pipeline's jobs (a need on a job not
/// added is an error unless `optional`: "'job1' job needs 'job2' job, but it was not added to
/// the pipeline", https://docs.gitlab.com/ci/yaml/#needsoptional), or, without `needs:`,
/// every added job of the stages before its own.
fn waits_for(p: &Pipeline, added: &[String]) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let stage_of = |j: &Job| -> usize {
        let s = j.stage.as_deref().unwrap_or("test");
        p.stages.iter().position(|x| x == s).unwrap_or(0)
    };
    let mut deps = BTreeMap::new();
    for name in added {
        let job = &p.jobs[name];
        let mut d = BTreeSet::new();
        match &job.needs {
            Some(needs) => {
                for n in needs {
                    let optional = match n {
                        Need::Detailed {
                            pipeline: Some(_), ..
                        } => continue,
                        Need::Detailed { optional, .. } => optional.unwrap_or(false),
                        Need::Job(_) => false,
                    };
                    let target = n.job_name();
                    if added.iter().any(|s| s == target) {
                        d.insert(target.to_string());
                    } else if !optional {
                        return Err(format!(
                            "'{name}' job needs '{target}' job, but '{target}' was not added to the pipeline"
                        ));
                    }
                }
            }
            None => {
                for other in added {
                    if stage_of(&p.jobs[other]) < stage_of(job) {
                        d.insert(other.clone());
                    }
                }
            }
        }
        deps.insert(name.clone(), d);
    }
    Ok(deps)
}

/// The order jobs run in, one at a time: each after what it waits for.
fn order(
    added: &[String],
    waits: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<String>, String> {
    let mut done: Vec<String> = Vec::new();
    while done.len() < added.len() {
        let next = added
            .iter()
            .find(|n| !done.contains(n) && waits[*n].iter().all(|d| done.contains(d)));
        match next {
            Some(n) => done.push(n.clone()),
            None => return Err("the jobs' needs form a cycle".into()),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(
        text: &str,
        source: &str,
        git_ref: &PipelineRef,
        runners: &[RunnerSpec],
    ) -> Result<Created, Refused> {
        let ctx = Context {
            source,
            git_ref,
            default_branch: "main",
            project_url: "url",
            limits: &Limits::default(),
            runners,
            outer: &BTreeMap::new(),
        };
        create(text, 1000, &ctx)
    }

    fn main() -> PipelineRef {
        PipelineRef::Branch("main".into())
    }

    fn mr() -> PipelineRef {
        PipelineRef::MergeRequest {
            iid: 3,
            source_branch: "feature".into(),
            target_branch: "main".into(),
        }
    }

    fn names(c: Created) -> Vec<String> {
        match c {
            Created::Plan(p) => p.jobs.into_iter().map(|j| j.name).collect(),
            Created::Nothing(why) => panic!("no pipeline: {why}"),
        }
    }

    const MIXED: &str = "\
stages: [a, b]
with-rules:
  stage: a
  script: [echo]
  rules: [{if: $CI_PIPELINE_SOURCE == \"merge_request_event\"}, {if: $CI_COMMIT_BRANCH}]
without-rules:
  stage: b
  script: [echo]
";

    /// A job without rules has `only: [branches, tags]`: in a merge request pipeline only the
    /// job whose rules match is added; in a push pipeline both are.
    #[test]
    fn merge_request_pipelines_leave_out_jobs_without_rules() {
        let r = [RunnerSpec::untagged_docker()];
        assert_eq!(
            names(plan(MIXED, "merge_request_event", &mr(), &r).unwrap()),
            ["with-rules"]
        );
        assert_eq!(
            names(plan(MIXED, "push", &main(), &r).unwrap()),
            ["with-rules", "without-rules"]
        );
        // A child of a merge request pipeline: source parent_pipeline, still no branch.
        let child = "child-job:\n  script: [echo]\n";
        let Created::Nothing(why) = plan(child, "parent_pipeline", &mr(), &r).unwrap() else {
            panic!("a job without rules is not added to a merge request's child pipeline");
        };
        assert_eq!(why, EMPTY);
        assert_eq!(
            names(plan(child, "parent_pipeline", &main(), &r).unwrap()),
            ["child-job"]
        );
        let filtered = "workflow: {rules: [{if: $CI_COMMIT_BRANCH}]}\nj:\n  script: [echo]\n";
        let Created::Nothing(why) = plan(filtered, "merge_request_event", &mr(), &r).unwrap()
        else {
            panic!("filtered out");
        };
        assert_eq!(why, FILTERED);
    }

    /// A need on a job that is not added fails the pipeline's creation, unless optional.
    #[test]
    fn a_need_on_a_job_left_out_is_refused() {
        let r = [RunnerSpec::untagged_docker()];
        let text = format!(
            "{MIXED}late:\n  script: [echo]\n  rules: [{{when: always}}]\n  needs: [without-rules]\n"
        );
        let Err(Refused::Config(e)) = plan(&text, "merge_request_event", &mr(), &r) else {
            panic!("refused");
        };
        assert!(e.contains("'late' job needs 'without-rules' job"), "{e}");
        let optional = text.replace(
            "needs: [without-rules]",
            "needs: [{job: without-rules, optional: true}]",
        );
        assert_eq!(
            names(plan(&optional, "merge_request_event", &mr(), &r).unwrap()),
            ["with-rules", "late"]
        );
    }

    /// Each job gets the runner with its tags; a job no runner takes is refused by name and
    /// tags; trigger jobs need no runner.
    #[test]
    fn jobs_are_given_runners_by_tags() {
        let runners = [
            RunnerSpec::parse("local:docker:run-untagged").unwrap(),
            RunnerSpec::parse("bb5_map:shell").unwrap(),
        ];
        let text = "\
a:
  script: [echo]
b:
  script: [echo]
  tags: [$SITE]
  variables: {SITE: bb5_map}
c:
  trigger: {include: [{artifact: x.yml, job: a}]}
";
        let Created::Plan(p) = plan(text, "push", &main(), &runners).unwrap() else {
            panic!("created");
        };
        assert_eq!(p.jobs[0].runner.as_ref(), Some(&runners[0]));
        assert_eq!(p.jobs[1].runner.as_ref(), Some(&runners[1]));
        assert_eq!(p.jobs[2].runner, None);
        let gpu = "g:\n  script: [echo]\n  tags: [local, gpu]\n";
        let Err(Refused::Pending(e)) = plan(gpu, "push", &main(), &runners) else {
            panic!("pending");
        };
        assert!(e.contains("`g`") && e.contains("local, gpu"), "{e}");
    }

    /// The needs limit is checked when the pipeline is created.
    #[test]
    fn too_many_needs_are_refused() {
        let mut text = String::new();
        for i in 0..51 {
            text.push_str(&format!("j{i}:\n  script: [echo]\n"));
        }
        let needs: Vec<String> = (0..51).map(|i| format!("j{i}")).collect();
        text.push_str(&format!(
            "index:\n  script: [echo]\n  when: always\n  needs: [{}]\n",
            needs.join(", ")
        ));
        let r = [RunnerSpec::untagged_docker()];
        let Err(Refused::Config(e)) = plan(&text, "push", &main(), &r) else {
            panic!("refused");
        };
        assert!(
            e.starts_with("index: one job can only need 50 others"),
            "{e}"
        );
    }

    /// Stage order, and `when` kept for the run/skip decision.
    #[test]
    fn order_and_waits() {
        let text = "\
stages: [build, index]
index:
  stage: index
  script: [echo]
  when: always
b1:
  stage: build
  script: [echo]
b2:
  stage: build
  script: [echo]
  needs: [b1]
";
        let r = [RunnerSpec::untagged_docker()];
        let Created::Plan(p) = plan(text, "push", &main(), &r).unwrap() else {
            panic!("created");
        };
        let order: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(order, ["b1", "b2", "index"]);
        assert_eq!(p.jobs[2].when, "always");
        assert_eq!(p.jobs[2].waits_for, ["b1", "b2"]);
        assert!(p.jobs[1].by_needs);
    }
}
