//! `spackah publish`: copy a built container to the public hub (Docker Hub, GHCR), on the
//! default branch only, and only when the public repository exists and lacks the tag or holds
//! other checksums.

use anyhow::{Context, bail};
use oci::engine::Engine;
use oci::registry::Clients;

use crate::hub;
use crate::image::Project;

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub project: Project,
    pub container: String,
    pub arch: String,
}

/// What was done, for the log. `engine` is asked for only when something is pushed.
pub async fn publish<F, Fut>(
    opts: &PublishOptions,
    registries: &Clients,
    engine: F,
) -> anyhow::Result<String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Engine, oci::engine::EngineError>>,
{
    let p = &opts.project;
    let cfg = &p.config;
    if p.branch != cfg.default_branch {
        return Ok(format!(
            "not on the default branch ({}): nothing goes to the public hub",
            cfg.default_branch
        ));
    }
    let Some(public) = &cfg.registry.public else {
        return Ok("no public hub in the configuration".into());
    };
    let def = p.definition(&opts.container, &opts.arch)?;
    let planned = p.image(&def)?;
    let target = hub::target(public, &opts.container, &planned.tag)?;
    let login = public.login()?;
    let client = registries.get("hub", &target.registry, &login)?;
    match hub::state(&client, &target, &opts.arch, &planned.record)
        .await
        .with_context(|| format!("looking up {target}"))?
    {
        hub::State::NoRepository => {
            return Ok(format!(
                "{}/{} does not exist: create it on the hub to publish there",
                target.registry, target.repository
            ));
        }
        hub::State::UpToDate => return Ok(format!("{target} is up to date")),
        hub::State::OtherChecksums | hub::State::Missing => {}
    }
    let source = planned.image.to_string();
    let engine = engine().await?;
    let name = target.to_string();
    // A hub-only job runs where the image was not built.
    let project_login = cfg.registry.login()?;
    engine
        .pull(&source, &opts.arch, project_login.as_ref())
        .await?;
    // The tag may name an image built before the lockfile or definition changed: only the one
    // this plan describes may reach the hub.
    let have = engine.labels(&source).await?;
    if let Some((k, want)) = planned
        .record
        .iter()
        .find(|(k, v)| have.get(*k) != Some(*v))
    {
        bail!(
            "{source} holds other checksums than the plan ({k}: {} here, {want} planned): refusing to publish a stale image; build it again first",
            have.get(k).map(String::as_str).unwrap_or("none")
        );
    }
    engine.tag(&source, &name).await?;
    engine.push(&name, login.as_ref()).await?;
    Ok(format!("pushed {name}"))
}
