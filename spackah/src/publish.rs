//! `spackah publish`: copy a built container to the public hub (Docker Hub, GHCR), on the
//! default branch only, and only when the public repository exists and lacks the tag or holds
//! other checksums; then attach its SBOM and provenance to the pushed manifest.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use model::attest::{Document, DocumentKind};
use oci::engine::Engine;
use oci::registry::{Clients, Descriptor, ImageRef, Login, RegistryClient};

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
    /// The project image's manifest for `arch`, which the documents describe.
    source_digest: String,
    documents: Vec<Document>,
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
    let (source_digest, documents) =
        project_documents(registries, cfg, &planned.image, &opts.arch).await?;
    Ok(Publish::Push(Box::new(HubPush {
        source: planned.image.to_string(),
        arch: opts.arch.clone(),
        record: planned.record,
        project_login: cfg.registry.login()?,
        target,
        hub_login,
        source_digest,
        documents,
    })))
}

/// The manifest digest of the image `image` of `arch` in the project registry and the SBOM
/// and provenance attached to it (by `spackah build --push`): the hub copy gets the same.
async fn project_documents(
    registries: &Clients,
    cfg: &model::config::Config,
    image: &ImageRef,
    arch: &str,
) -> anyhow::Result<(String, Vec<Document>)> {
    let client = registries.get("project", &image.registry, &cfg.registry.login()?)?;
    let manifest = client
        .resolve(image, arch)
        .await
        .with_context(|| format!("looking up {image} for {arch}"))?
        .manifest;
    let attached = client
        .documents(image, &manifest.digest)
        .await
        .with_context(|| format!("reading the documents attached to {image}"))?;
    Ok((
        manifest.digest,
        attached.into_iter().map(|a| a.document).collect(),
    ))
}

/// Pull the image from the project registry on `engine`, check it is the one the plan
/// describes, tag it for the hub, push it and attach its documents through `registries`; what
/// was done, for the log.
pub async fn push(push: &HubPush, engine: &Engine, registries: &Clients) -> anyhow::Result<String> {
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
    if push.documents.is_empty() {
        return Ok(format!("pushed {name}"));
    }
    let client = registries.get("hub", &push.target.registry, &push.hub_login)?;
    // The documents name the project image's manifest as their subject: a hub that stored the
    // push as another manifest (other media types) gets none rather than documents about
    // another digest.
    let hub = client
        .resolve(&push.target, &push.arch)
        .await
        .with_context(|| format!("reading back {name}"))?
        .manifest
        .digest;
    if hub != push.source_digest {
        return Ok(format!(
            "pushed {name}; its SBOM and provenance not attached: the hub holds the manifest {hub}, they describe {}",
            push.source_digest
        ));
    }
    let attached = attach_documents(&client, &push.target, &push.arch, &push.documents).await?;
    Ok(format!(
        "pushed {name} with {} attached document(s)",
        attached.len()
    ))
}

/// Attach `documents` to the manifest `image` holds for `arch` (the one just pushed), through
/// `client`; the referrers written. A kind already attached to that manifest (a retried job,
/// the same image pushed again) is not attached twice: every later SIF and hub copy would
/// carry both.
pub async fn attach_documents(
    client: &RegistryClient,
    image: &ImageRef,
    arch: &str,
    documents: &[Document],
) -> anyhow::Result<Vec<Descriptor>> {
    let subject = client
        .resolve(image, arch)
        .await
        .with_context(|| format!("reading back {image} to attach its documents"))?
        .manifest;
    let present: Vec<DocumentKind> = client
        .documents(image, &subject.digest)
        .await
        .with_context(|| format!("reading the documents attached to {image}"))?
        .into_iter()
        .map(|a| a.document.kind)
        .collect();
    let mut attached = Vec::with_capacity(documents.len());
    for doc in documents.iter().filter(|d| !present.contains(&d.kind)) {
        attached.push(client.attach(image, &subject, doc).await.with_context(|| {
            format!(
                "attaching {} to {}",
                doc.kind.file_name(),
                image.with_reference(&subject.digest)
            )
        })?);
    }
    Ok(attached)
}
