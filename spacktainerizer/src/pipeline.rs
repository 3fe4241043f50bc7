//! `spacktainerizer pipeline`: the stage-1 child pipeline with jobs for exactly the images and
//! architectures that need building, each architecture's on its runner, the index job after
//! them; a pipeline with one no-op job when nothing needs building.

use std::collections::BTreeMap;

use model::ci::{Image, Job, Need, Pipeline};
use model::commands::SpacktainerizerImage;

use crate::context::Context;
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
        p.jobs
            .insert(name.clone(), build_job(ctx, d, image.clone()));
        per_image.entry(&d.image).or_default().push(name);
    }
    for (name, needs) in per_image {
        p.jobs.insert(
            format!("index {name}"),
            index_job(ctx, name, needs, image.clone()),
        );
    }
    (p.into_child(), dotenv)
}

/// The build of one image for one architecture, on that architecture's runner with an engine.
fn build_job(ctx: &Context, d: &Decision, image: Option<Image>) -> Job {
    let cfg = &ctx.config;
    let arch = cfg.arch(&d.arch);
    Job {
        stage: Some("build".into()),
        image,
        tags: arch.map(|a| a.runner_tag.clone()).into_iter().collect(),
        variables: arch.map(|a| a.job_variables()).unwrap_or_default(),
        script: vec![command(ctx, &d.image, Some(&d.arch))],
        ..Job::default()
    }
    .with_engine(
        &arch.map(|a| a.engine.clone()).unwrap_or_default(),
        &cfg.registry,
    )
    .with_settings(&cfg.jobs.base_images)
    .with_pull_policy(cfg.pull_policy.as_deref())
}

/// The index of `image`, after its builds (`needs`), on the tools runners.
fn index_job(ctx: &Context, image_name: &str, needs: Vec<String>, image: Option<Image>) -> Job {
    let cfg = &ctx.config;
    Job {
        stage: Some("index".into()),
        image,
        tags: cfg.tools_tags(),
        needs: Some(needs.into_iter().map(Need::job).collect()),
        script: vec![command(ctx, image_name, None)],
        ..Job::default()
    }
    .with_settings(&cfg.jobs.tools)
    .with_pull_policy(cfg.pull_policy.as_deref())
}

/// `spacktainerizer build` of `image` for `arch`, or its `index` without one.
fn command(ctx: &Context, image: &str, arch: Option<&str>) -> String {
    SpacktainerizerImage {
        image: image.to_string(),
        arch: arch.map(String::from),
        branch: ctx.branch.clone(),
        date: ctx.date.clone(),
    }
    .line()
    .render()
}
