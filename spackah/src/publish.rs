//! `spackah publish`: copy a built container to the public hub (Docker Hub, GHCR), on the
//! default branch only, and only when the public repository exists and lacks the tag or holds
//! other checksums.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use oci::engine::Engine;
use oci::registry::{Clients, ImageRef, Login};

use crate::hub;
use crate::image::Project;

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub project: Project,
    pub container: String,
    pub arch: String,
}

/// What publishing comes to, as the registries tell: nothing (and why), or a push.
#[derive(Debug)]
pub enum Publish {
    Nothing(String),
    Push(Box<HubPush>),
}

/// A built container to copy to the hub.
#[derive(Debug)]
pub struct HubPush {
    /// The image in the project registry.
    source: String,
    arch: String,
    /// Its labels as the plan describes it.
    record: BTreeMap<String, String>,
    /// The project registry's login.
    project_login: Option<Login>,
    target: ImageRef,
    hub_login: Option<Login>,
}

/// Whether the container of `opts` goes to the hub, asking the hub through `registries`.
pub async fn decide(opts: &PublishOptions, registries: &Clients) -> anyhow::Result<Publish> {
    let p = &opts.project;
    let cfg = &p.config;
    if p.branch != cfg.default_branch {
        return Ok(Publish::Nothing(format!(
            "not on the default branch ({}): nothing goes to the public hub",
            cfg.default_branch
        )));
    }
    let Some(public) = &cfg.registry.public else {
        return Ok(Publish::Nothing(
            "no public hub in the configuration".into(),
        ));
    };
    let def = p.definition(&opts.container, &opts.arch)?;
    let planned = p.image(&def)?;
    let target = hub::target(public, &opts.container, &planned.tag)?;
    let hub_login = public.login()?;
    let client = registries.get("hub", &target.registry, &hub_login)?;
    match hub::state(&client, &target, &opts.arch, &planned.record)
        .await
        .with_context(|| format!("looking up {target}"))?
    {
        hub::State::NoRepository => {
            return Ok(Publish::Nothing(format!(
                "{}/{} does not exist: create it on the hub to publish there",
                target.registry, target.repository
            )));
        }
        hub::State::UpToDate => return Ok(Publish::Nothing(format!("{target} is up to date"))),
        hub::State::OtherChecksums | hub::State::Missing => {}
    }
    Ok(Publish::Push(Box::new(HubPush {
        source: planned.image.to_string(),
        arch: opts.arch.clone(),
        record: planned.record,
        project_login: cfg.registry.login()?,
        target,
        hub_login,
    })))
}

/// Pull the image from the project registry on `engine`, check it is the one the plan
/// describes, tag it for the hub and push it; what was done, for the log.
pub async fn push(push: &HubPush, engine: &Engine) -> anyhow::Result<String> {
    let source = &push.source;
    let name = push.target.to_string();
    // A hub-only job runs where the image was not built.
    engine
        .pull(source, &push.arch, push.project_login.as_ref())
        .await?;
    // The tag may name an image built before the lockfile or definition changed: only the one
    // this plan describes may reach the hub.
    let have = engine.labels(source).await?;
    if let Some((k, want)) = push.record.iter().find(|(k, v)| have.get(*k) != Some(*v)) {
        bail!(
            "{source} holds other checksums than the plan ({k}: {} here, {want} planned): refusing to publish a stale image; build it again first",
            have.get(k).map(String::as_str).unwrap_or("none")
        );
    }
    engine.tag(source, &name).await?;
    engine.push(&name, push.hub_login.as_ref()).await?;
    Ok(format!("pushed {name}"))
}
