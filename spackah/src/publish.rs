//! `spackah publish`: copy a built container to the public hub (Docker Hub, GHCR), on the
//! default branch only, and only when the public repository exists and lacks the tag or holds
//! other checksums.

use anyhow::Context;
use common::config::Credentials;
use common::engine::Engine;
use common::registry::{ImageRef, RegistryClient};

use crate::plan::{self, PlanOptions};

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub plan: PlanOptions,
    pub container: String,
    pub arch: String,
}

/// What was done, for the log.
pub async fn publish(opts: &PublishOptions) -> anyhow::Result<String> {
    let p = &opts.plan;
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
    let decision = plan::plan(&PlanOptions {
        containers: vec![opts.container.clone()],
        ..p.clone()
    })
    .await?
    .into_iter()
    .find(|d| d.arch == opts.arch && d.kind == "spack")
    .with_context(|| format!("no Spack container `{}` for {}", opts.container, opts.arch))?;
    let tag = decision
        .target
        .rsplit_once(':')
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    let target: ImageRef = format!("{}/{}:{tag}", public.url, opts.container).parse()?;
    let login = Credentials::registry_login(public.credentials.as_ref())
        .map_err(anyhow::Error::msg)
        .context("public hub login")?;
    let client = RegistryClient::new(&target.registry, login.clone())?;
    if !client.repository_exists(&target).await? {
        return Ok(format!(
            "{}/{} does not exist: create it on the hub to publish there",
            target.registry, target.repository
        ));
    }
    match client.resolve(&target, &opts.arch).await {
        Ok(found)
            if decision
                .record
                .iter()
                .all(|(k, v)| found.labels.get(k) == Some(v)) =>
        {
            return Ok(format!("{target} is up to date"));
        }
        Ok(_) => {}
        Err(e) if e.means_build() => {}
        Err(e) => return Err(anyhow::Error::new(e).context(format!("looking up {target}"))),
    }
    let engine = Engine::connect().await?;
    let name = target.to_string();
    // A hub-only job runs where the image was not built.
    let project_login = plan::login(cfg)?;
    engine
        .pull(&decision.target, &opts.arch, project_login.as_ref())
        .await?;
    engine.tag(&decision.target, &name).await?;
    engine.push(&name, login.as_ref()).await?;
    Ok(format!("pushed {name}"))
}
