//! `spacktainerizer pipeline`: the stage-1 child pipeline with jobs for exactly the images and
//! architectures that need building, each architecture's on its runner, the index job after
//! them; a pipeline with one no-op job when nothing needs building.

use std::collections::BTreeMap;

use model::ci::{Image, Job, Need, Pipeline};
use model::commands::SpacktainerizerImage;

use crate::Context;
use crate::plan::Decision;

/// The pipeline, and the dotenv (`BUILDER_TAG=…`) later stages read the builder tag from.
pub fn pipeline(ctx: &Context, decisions: &[Decision], tools_image: &str) -> (Pipeline, String) {
    let cfg = &ctx.config;
    let tag = ctx.tag();
    let dotenv = format!("BUILDER_TAG={tag}\n");
    let builds: Vec<&Decision> = decisions.iter().filter(|d| d.build).collect();
    if builds.is_empty() {
        let noop = Pipeline::noop("All base images are up to date.", cfg.tools_tags());
        return (noop.into_child(), dotenv);
    }
    let image = Some(Image::Detailed {
        name: tools_image.into(),
        entrypoint: Some(vec![String::new()]),
        pull_policy: None,
    });
    let mut p = Pipeline {
        stages: vec!["build".into(), "index".into()],
        ..Pipeline::default()
    };
    let mut per_image: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for d in &builds {
        let name = format!("build {} {}", d.image, d.arch);
        let runner = cfg
            .arch(&d.arch)
            .map(|a| a.runner_tag.clone())
            .into_iter()
            .collect();
        p.jobs.insert(
            name.clone(),
            Job {
                stage: Some("build".into()),
                image: image.clone(),
                tags: runner,
                variables: cfg
                    .arch(&d.arch)
                    .map(|a| a.job_variables())
                    .unwrap_or_default(),
                script: vec![
                    SpacktainerizerImage {
                        image: d.image.clone(),
                        arch: Some(d.arch.clone()),
                        branch: ctx.branch.clone(),
                        date: ctx.date.clone(),
                    }
                    .line()
                    .render(),
                ],
                ..Job::default()
            }
            .with_engine(
                &cfg.arch(&d.arch)
                    .map(|a| a.engine.clone())
                    .unwrap_or_default(),
                &cfg.registry,
            )
            .with_settings(&cfg.jobs.base_images)
            .with_pull_policy(cfg.pull_policy.as_deref()),
        );
        per_image.entry(&d.image).or_default().push(name);
    }
    for (name, needs) in per_image {
        p.jobs.insert(
            format!("index {name}"),
            Job {
                stage: Some("index".into()),
                image: image.clone(),
                tags: cfg.tools_tags(),
                needs: Some(needs.into_iter().map(Need::job).collect()),
                script: vec![
                    SpacktainerizerImage {
                        image: name.to_string(),
                        arch: None,
                        branch: ctx.branch.clone(),
                        date: ctx.date.clone(),
                    }
                    .line()
                    .render(),
                ],
                ..Job::default()
            }
            .with_settings(&cfg.jobs.tools)
            .with_pull_policy(cfg.pull_policy.as_deref()),
        );
    }
    (p.into_child(), dotenv)
}
