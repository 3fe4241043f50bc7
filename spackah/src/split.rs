//! A stage-3 pipeline too large for one GitLab configuration file, cut into child pipelines of
//! whole containers that a trigger pipeline runs.

use std::collections::BTreeMap;

use model::ci::{Job, Need, Pipeline, Trigger};
use model::config::Config;

use model::ci::CONTAINER_PARTS_DIR as PARTS_DIR;

/// The sync job, which follows every part.
const SYNC: &str = "sync sifs";

/// The files to write, `(path, pipeline)`, the first at `out`. A pipeline within `max_bytes`
/// (GitLab refuses a configuration past `max_yaml_size_bytes`) is written as it is; a larger
/// one becomes a trigger pipeline running parts of whole containers (a container's build and
/// SIF jobs need each other), then the sync. GitLab includes a child pipeline only from an
/// artifact of a job of the same pipeline, so the trigger pipeline's first job takes the parts
/// over from `generating_job` of the parent pipeline.
pub fn split(
    mut p: Pipeline,
    cfg: &Config,
    out: &str,
    max_bytes: usize,
    generating_job: &str,
) -> Vec<(String, Pipeline)> {
    if p.to_yaml().len() <= max_bytes {
        return vec![(out.to_string(), p)];
    }
    let sync = p.jobs.shift_remove(SYNC);
    let dir = match out.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/{PARTS_DIR}"),
        None => PARTS_DIR.to_string(),
    };
    let mut files = Vec::new();
    let mut top = Pipeline {
        stages: vec!["fetch".into(), "containers".into()],
        ..Pipeline::default()
    };
    let fetch = "fetch container pipelines".to_string();
    top.jobs.insert(
        fetch.clone(),
        model::ci::fetch_job(generating_job, &dir, cfg.tools_tags()).with_settings(&cfg.jobs.tools),
    );
    for (i, jobs) in parts(&p, max_bytes).into_iter().enumerate() {
        let file = format!("{dir}/part-{}.yml", i + 1);
        let mut part = Pipeline {
            variables: p.variables.clone(),
            ..Pipeline::default()
        };
        part.jobs.extend(jobs);
        part.stages = p
            .stages
            .iter()
            .filter(|s| part.jobs.values().any(|j| j.stage.as_ref() == Some(s)))
            .cloned()
            .collect();
        top.jobs.insert(
            format!("containers part {}", i + 1),
            Job {
                stage: Some("containers".into()),
                trigger: Some(Trigger::from_artifact(&file, &fetch)),
                needs: Some(vec![Need::job(&fetch)]),
                // The parts read the lockfiles of the parent's parent.
                variables: [(
                    "PARENT_PIPELINE_ID".to_string(),
                    "$PARENT_PIPELINE_ID".to_string(),
                )]
                .into_iter()
                .collect(),
                ..Job::default()
            },
        );
        files.push((file, part.into_child()));
    }
    if let Some(sync) = sync {
        top.stages.push("sync".into());
        top.jobs.insert(SYNC.into(), sync);
    }
    files.insert(0, (out.to_string(), top.into_child()));
    files
}

/// The jobs cut into parts of whole containers (`build C A`, `publish C A`, `sif C A` and
/// `index C` share `C`: the index needs the builds of every architecture), each part within
/// `max_bytes` with room for its own keys.
fn parts(p: &Pipeline, max_bytes: usize) -> Vec<Vec<(String, Job)>> {
    let mut units: BTreeMap<&str, Vec<(&String, &Job)>> = BTreeMap::new();
    for (name, job) in &p.jobs {
        let unit = name.split(' ').nth(1).unwrap_or(name);
        units.entry(unit).or_default().push((name, job));
    }
    let budget = max_bytes.saturating_sub(model::yaml::to_string(&p.variables).len() + 1024);
    let mut out: Vec<Vec<(String, Job)>> = vec![Vec::new()];
    let mut bytes = 0;
    for jobs in units.into_values() {
        let size: usize = jobs.iter().map(|(n, j)| model::ci::job_size(n, j)).sum();
        if bytes + size > budget && !out.last().is_some_and(|l| l.is_empty()) {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        let last = out.last_mut().expect("one part at least");
        last.extend(jobs.into_iter().map(|(n, j)| (n.clone(), j.clone())));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    fn config() -> Config {
        Config::read(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/spacktainerizah.yaml"),
        )
        .unwrap()
    }

    /// A stage-3 pipeline of `n` containers, each an amd64 build and SIF job, an arm64 build,
    /// the index of both builds, and the sync.
    fn containers(n: usize) -> Pipeline {
        let mut p = Pipeline {
            stages: vec!["build".into(), "index".into(), "sif".into(), "sync".into()],
            ..Pipeline::default()
        };
        p.variables
            .insert("BUILDER_IMAGE".into(), "reg/builder@sha256:b".into());
        for i in 0..n {
            let build = format!("build c{i} amd64");
            for arch in ["amd64", "arm64"] {
                p.jobs.insert(
                    format!("build c{i} {arch}"),
                    Job {
                        stage: Some("build".into()),
                        tags: vec![format!("runner-{arch}")],
                        script: vec![format!(
                            "spackah build --container c{i} --arch {arch} --push"
                        )],
                        ..Job::default()
                    },
                );
            }
            p.jobs.insert(
                format!("index c{i}"),
                Job {
                    stage: Some("index".into()),
                    tags: vec!["runner-amd64".into()],
                    needs: Some(vec![
                        Need::job(&build),
                        Need::job(format!("build c{i} arm64")),
                    ]),
                    script: vec![format!("spackah index --container c{i}")],
                    ..Job::default()
                },
            );
            p.jobs.insert(
                format!("sif c{i} amd64"),
                Job {
                    stage: Some("sif".into()),
                    tags: vec!["kubernetes".into()],
                    needs: Some(vec![Need::job(build)]),
                    script: vec![format!("singularitah sif build c{i}")],
                    ..Job::default()
                },
            );
        }
        p.jobs.insert(
            SYNC.into(),
            Job {
                stage: Some("sync".into()),
                tags: vec!["bb5_map".into()],
                script: vec!["singularitah sif sync".into()],
                ..Job::default()
            },
        );
        p.into_child()
    }

    #[test]
    fn a_pipeline_within_the_limit_is_one_file() {
        let files = split(containers(3), &config(), "containers.yml", 900_000, "g");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "containers.yml");
    }

    #[test]
    fn a_larger_one_runs_parts_of_whole_containers_then_the_sync() {
        let whole = containers(200);
        let max = 20_000;
        assert!(whole.to_yaml().len() > max);
        let files = split(
            whole.clone(),
            &config(),
            "containers.yml",
            max,
            "generate containers",
        );
        let (name, top) = &files[0];
        assert_eq!(name, "containers.yml");
        assert!(files.len() > 2, "{} files", files.len());
        let fetch = &top.jobs["fetch container pipelines"];
        assert_eq!(
            fetch.needs.as_ref().unwrap()[0],
            Need::other_pipeline("$PARENT_PIPELINE_ID", "generate containers")
        );
        assert_eq!(top.stages.last().map(String::as_str), Some("sync"));
        assert!(
            top.jobs[SYNC].needs.is_none(),
            "after every part, by its stage"
        );
        let mut seen = BTreeSet::new();
        for (file, part) in &files[1..] {
            assert!(file.starts_with("containers-parts/part-"), "{file}");
            assert!(
                part.to_yaml().len() <= max,
                "{file}: {}",
                part.to_yaml().len()
            );
            assert_eq!(part.variables["BUILDER_IMAGE"], "reg/builder@sha256:b");
            part.check().unwrap();
            for (job, j) in &part.jobs {
                assert!(!j.rules.is_empty(), "{file}: {job} runs in merge requests");
                assert!(seen.insert(job.clone()), "{job} in two parts");
            }
            let trigger = top
                .jobs
                .values()
                .find(|j| {
                    j.trigger
                        .as_ref()
                        .is_some_and(|t| t.include[0].artifact.as_deref() == Some(file))
                })
                .unwrap_or_else(|| panic!("no trigger runs {file}"));
            assert_eq!(
                trigger.variables["PARENT_PIPELINE_ID"],
                "$PARENT_PIPELINE_ID"
            );
        }
        let all: BTreeSet<String> = whole.jobs.keys().filter(|j| *j != SYNC).cloned().collect();
        assert_eq!(
            seen, all,
            "every job in exactly one part, with the SIF its build needs"
        );
        top.check().unwrap();
        spacktainerizah_tests::validate_gitlab_ci(&top.to_yaml()).unwrap();
        spacktainerizah_tests::validate_gitlab_ci(&files[1].1.to_yaml()).unwrap();
    }
}
