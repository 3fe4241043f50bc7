//! `spackah pipeline`: the stage-3 child pipeline, with a build job (build, push, public hub)
//! only for the containers and architectures that `plan` says need work.

use std::path::PathBuf;

use common::ci::{Image, Job, Need, Pipeline, build_cache_generate_job, shell_quote};

use crate::plan::{Decision, PlanOptions};

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub plan: PlanOptions,
    /// Where `spack-cacher prepare` wrote the environments, as the jobs see it: the parent's
    /// build-cache generate jobs leave it as an artifact.
    pub environments: PathBuf,
    /// The base images' tag (stage 1's `BUILDER_TAG`), fixed into the jobs.
    pub base_tag: String,
    /// The image with the Spacktainerizah tools the jobs run in.
    pub tools_image: String,
}

/// The child pipeline; `.def` containers needing work are returned by name, as their SIF
/// builds are not part of it.
pub fn pipeline(opts: &PipelineOptions, decisions: &[Decision]) -> (Pipeline, Vec<String>) {
    let cfg = &opts.plan.config;
    let def_pending: Vec<String> = decisions
        .iter()
        .filter(|d| d.build && d.kind != "spack")
        .map(|d| format!("{} ({})", d.container, d.arch))
        .collect();
    let builds: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.build && d.kind == "spack")
        .collect();
    if builds.is_empty() {
        return (
            Pipeline::noop("All containers are up to date."),
            def_pending,
        );
    }
    let envs = shell_quote(&opts.environments.display().to_string());
    let lockfiles = shell_quote(&opts.plan.lockfiles.display().to_string());
    let branch = shell_quote(&opts.plan.branch);
    // Only the default branch publishes; `publish` itself checks the hub's repository and tag
    // when the job runs, as they may change between generation and build.
    let publish = opts.plan.branch == cfg.default_branch && cfg.registry.public.is_some();
    let image = Some(Image::Detailed {
        name: opts.tools_image.clone(),
        entrypoint: Some(vec![String::new()]),
        pull_policy: None,
    });
    let mut p = Pipeline {
        stages: vec!["build".into()],
        ..Pipeline::default()
    };
    for d in builds {
        let which = format!(
            "--container {} --arch {}",
            shell_quote(&d.container),
            shell_quote(&d.arch)
        );
        let mut script = vec![format!(
            "spackah build --environments {envs} --lockfiles {lockfiles} --branch {branch} --base-tag {} {which} --push",
            shell_quote(&opts.base_tag)
        )];
        // In the same job: the image is in this runner's engine, no pull needed.
        if publish {
            script.push(format!(
                "spackah publish --lockfiles {lockfiles} --branch {branch} {which}"
            ));
        }
        p.jobs.insert(
            format!("build {} {}", d.container, d.arch),
            Job {
                stage: Some("build".into()),
                image: image.clone(),
                tags: cfg
                    .arch(&d.arch)
                    .map(|a| a.runner_tag.clone())
                    .into_iter()
                    .collect(),
                needs: Some(vec![Need::other_pipeline(
                    "$PARENT_PIPELINE_ID",
                    build_cache_generate_job(&d.arch),
                )]),
                script,
                ..Job::default()
            },
        );
    }
    (p, def_pending)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use common::config::Config;

    use super::*;

    fn options(branch: &str) -> PipelineOptions {
        let config =
            Config::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../spacktainerizah.yaml"))
                .unwrap();
        PipelineOptions {
            plan: PlanOptions {
                repo: ".".into(),
                branch: branch.into(),
                lockfiles: "envs".into(),
                containers: Vec::new(),
                config,
            },
            environments: "envs".into(),
            base_tag: "2026.11.29".into(),
            tools_image: "tools:latest".into(),
        }
    }

    fn decision(container: &str, arch: &str, kind: &'static str, build: bool) -> Decision {
        Decision {
            container: container.into(),
            arch: arch.into(),
            kind,
            target: String::new(),
            build,
            reason: String::new(),
            record: BTreeMap::new(),
        }
    }

    #[test]
    fn jobs_only_for_spack_containers_needing_work_on_their_runner() {
        let decisions = [
            decision("pythons", "amd64", "spack", true),
            decision("pythons", "arm64", "spack", false),
            decision("neuron", "arm64", "spack", true),
            decision("spykfunc", "amd64", "singularity", true),
        ];
        let opts = options("my-branch");
        let (p, pending) = pipeline(&opts, &decisions);
        assert_eq!(pending, ["spykfunc (amd64)"]);
        let names: Vec<&str> = p.jobs.keys().map(String::as_str).collect();
        assert_eq!(names, ["build pythons amd64", "build neuron arm64"]);
        let job = &p.jobs["build neuron arm64"];
        assert_eq!(
            job.tags,
            [opts.plan.config.arch("arm64").unwrap().runner_tag.clone()]
        );
        assert_eq!(job.script.len(), 1, "off the default branch: no hub");
        assert!(job.script[0].contains(&format!("--base-tag {}", shell_quote("2026.11.29"))));
        p.check().unwrap();
    }

    #[test]
    fn the_default_branch_also_publishes_and_nothing_to_do_is_a_noop() {
        let opts = options(&options("x").plan.config.default_branch.clone());
        let (p, _) = pipeline(&opts, &[decision("pythons", "amd64", "spack", true)]);
        let script = &p.jobs["build pythons amd64"].script;
        assert!(script[1].starts_with("spackah publish "), "{script:?}");
        let (p, _) = pipeline(&opts, &[decision("pythons", "amd64", "spack", false)]);
        assert!(!p.jobs.keys().any(|k| k.starts_with("build ")));
    }
}
