//! `spackah pipeline`: the stage-3 child pipeline, with jobs only for what `plan` says needs
//! work: image builds (with the public hub on the default branch), hub pushes of images built
//! before, SIF builds and uploads, and one sync of the shared SIF directory after them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use model::ci::{Image, Job, Need, Pipeline, build_cache_generate_job, shell_quote};
use model::commands::{S3Access, SifBuild, SifPublish, SifSource, SifSync, SpackahContainer};
use model::config::{BucketConfig, Config};

use crate::bases::Pinned;
use crate::image::Project;
use crate::plan::{ContainerKind, Decision, PlanOptions, SifPlan};

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
    /// The base images pinned by digest: given to the build jobs as `BUILDER_IMAGE` and
    /// `RUNTIME_IMAGE`, which `spackah build` reads.
    pub pinned: Pinned,
}

impl PipelineOptions {
    /// The options for `project`, with every container planned; the jobs run in `tools_image`,
    /// by default the branch's tools image, `<registry>/tools:<base tag>`.
    pub fn new(
        project: Project,
        environments: PathBuf,
        base_tag: String,
        tools_image: Option<String>,
        pinned: Pinned,
    ) -> PipelineOptions {
        let tools_image =
            tools_image.unwrap_or_else(|| project.config.base_image("tools", &base_tag));
        PipelineOptions {
            plan: PlanOptions {
                project,
                containers: Vec::new(),
                concretize: false,
                spack: None,
            },
            environments,
            base_tag,
            tools_image,
            pinned,
        }
    }
}

fn containers_bucket<'a>(cfg: &'a Config, arch: &str) -> Option<&'a BucketConfig> {
    cfg.arch(arch).and_then(|a| a.containers_bucket.as_ref())
}

pub fn pipeline(opts: &PipelineOptions, decisions: &[Decision]) -> Pipeline {
    let cfg = &opts.plan.project.config;
    if !decisions.iter().any(Decision::needs_work) {
        return Pipeline::noop(
            "All containers, SIFs and hub images are up to date.",
            cfg.tools_tags(),
        )
        .into_child();
    }
    let jobs = Jobs::new(opts);
    let mut p = Pipeline::default();
    // Buckets the SIF jobs upload to, with their access, for the sync.
    let mut synced: BTreeMap<String, &BucketConfig> = BTreeMap::new();
    for d in decisions {
        if let Some((name, job)) = jobs.image_job(d) {
            p.jobs.insert(name, job);
        }
        let (Some(sif), Some(bucket)) = (&d.sif, containers_bucket(cfg, &d.arch)) else {
            continue;
        };
        if !sif.build {
            continue;
        }
        let build_job = build_job_name(d);
        let after = p.jobs.contains_key(&build_job).then_some(build_job);
        let (name, job) = jobs.sif_job(d, sif, bucket, after);
        p.jobs.insert(name, job);
        synced.insert(sif.store.clone(), bucket);
    }
    for (name, job) in jobs.index_jobs(decisions, &p) {
        p.jobs.insert(name, job);
    }
    if let Some(sync) = cfg.sif_sync.as_ref().filter(|_| !synced.is_empty()) {
        p.jobs.insert(
            "sync sifs".into(),
            sync_job(cfg, sync, jobs.image.clone(), &synced),
        );
    }
    // The index after the sync by stage (it runs after the builds by its `needs:`): the sync
    // waits for every earlier stage, and a tag to write is no reason to hold SIFs back.
    p.stages = ["build", "sif", "sync", "index"]
        .into_iter()
        .filter(|s| p.jobs.values().any(|j| j.stage.as_deref() == Some(s)))
        .map(String::from)
        .collect();
    let pinned = [
        (model::env_names::BUILDER_IMAGE, &opts.pinned.builder),
        (model::env_names::RUNTIME_IMAGE, &opts.pinned.runtime),
    ];
    for (name, image) in pinned {
        if let Some(image) = image {
            p.variables.insert(name.to_string(), image.clone());
        }
    }
    p.into_child()
}

/// The lockfiles of `arch`: artifacts of the parent's parent's generate job, which stage 2's
/// jobs concretized.
fn lockfiles_of(arch: &str) -> Need {
    Need::other_pipeline("$PARENT_PIPELINE_ID", build_cache_generate_job(arch))
}

fn build_job_name(d: &Decision) -> String {
    format!("build {} {}", d.container, d.arch)
}

/// The jobs of the pipeline: in the tools image, each on its architecture's runner with the
/// settings of its kind.
struct Jobs<'a> {
    opts: &'a PipelineOptions,
    cfg: &'a Config,
    image: Option<Image>,
}

impl<'a> Jobs<'a> {
    fn new(opts: &'a PipelineOptions) -> Jobs<'a> {
        Jobs {
            opts,
            cfg: &opts.plan.project.config,
            image: Some(Image::Detailed {
                name: opts.tools_image.clone(),
                entrypoint: Some(vec![String::new()]),
                pull_policy: None,
            }),
        }
    }

    fn job(&self, arch: &str, stage: &str, needs: Vec<Need>, script: Vec<String>) -> Job {
        let cfg = self.cfg;
        let ac = cfg.arch(arch);
        let job = Job {
            stage: Some(stage.into()),
            image: self.image.clone(),
            tags: ac.map(|a| a.runner_tag.clone()).into_iter().collect(),
            variables: ac.map(|a| a.job_variables()).unwrap_or_default(),
            needs: Some(needs),
            script,
            ..Job::default()
        };
        // Image builds and hub pushes need an engine; SIFs are written without one.
        let job = match (stage, ac) {
            ("build", Some(ac)) => job
                .with_engine(&ac.engine, &cfg.registry)
                .with_settings(&cfg.jobs.containers),
            _ => job.with_settings(&cfg.jobs.sifs),
        };
        job.with_pull_policy(cfg.pull_policy.as_deref())
    }

    /// The image build of `d` (with its hub push on the default branch), or the hub push of
    /// an image built before; none when neither needs doing. Both read the lockfiles the
    /// parent's parent generated.
    fn image_job(&self, d: &Decision) -> Option<(String, Job)> {
        let container = self.spackah(&d.container, &d.arch);
        let lockfile_artifacts = vec![lockfiles_of(&d.arch)];
        let publish = container.publish().render();
        if d.kind == ContainerKind::Spack && d.build {
            let envs = self.opts.environments.display().to_string();
            let mut script = vec![container.build(&envs, &self.opts.base_tag).render()];
            // In the same job: the image is in this runner's engine, no pull needed. `publish`
            // checks the hub's repository and tag again when it runs.
            if d.hub.is_some() {
                script.push(publish);
            }
            let job = self.job(&d.arch, "build", lockfile_artifacts, script);
            Some((build_job_name(d), job))
        } else if d.hub.as_ref().is_some_and(|h| h.push) {
            let job = self.job(&d.arch, "build", lockfile_artifacts, vec![publish]);
            Some((format!("publish {} {}", d.container, d.arch), job))
        } else {
            None
        }
    }

    /// The `spackah` commands of `container` for `arch`, on this pipeline's branch and lockfiles.
    fn spackah(&self, container: &str, arch: &str) -> SpackahContainer {
        let project = &self.opts.plan.project;
        SpackahContainer {
            lockfiles: project.lockfiles.display().to_string(),
            branch: project.branch.clone(),
            container: container.to_string(),
            arch: arch.to_string(),
        }
    }

    /// For each container whose multi-arch tag needs writing, one job writing it after the
    /// image builds of `p` it lists. It only talks to the registry: a job of no architecture,
    /// on the tools' runners with their settings. It reads every architecture's lockfile, which
    /// names the tags.
    fn index_jobs(&self, decisions: &[Decision], p: &Pipeline) -> Vec<(String, Job)> {
        let mut by_container: BTreeMap<&str, Vec<&Decision>> = BTreeMap::new();
        for d in decisions.iter().filter(|d| d.index.is_some()) {
            by_container.entry(&d.container).or_default().push(d);
        }
        by_container
            .into_iter()
            .filter(|(_, ds)| ds.iter().any(|d| d.index.as_ref().is_some_and(|i| i.write)))
            .map(|(container, ds)| {
                let mut needs: Vec<Need> = ds.iter().map(|d| lockfiles_of(&d.arch)).collect();
                needs.extend(
                    ds.iter()
                        .map(|d| build_job_name(d))
                        .filter(|b| p.jobs.contains_key(b))
                        .map(|b| Need::with_artifacts(b, false)),
                );
                let line = self.spackah(container, &ds[0].arch).index();
                let job = Job {
                    stage: Some("index".into()),
                    image: self.image.clone(),
                    tags: self.cfg.tools_tags(),
                    needs: Some(needs),
                    script: vec![line.render()],
                    ..Job::default()
                }
                .with_settings(&self.cfg.jobs.tools)
                .with_pull_policy(self.cfg.pull_policy.as_deref());
                (format!("index {container}"), job)
            })
            .collect()
    }

    /// The SIF of `d`, built (after the image's build job `after`, when there is one),
    /// uploaded to `bucket` and removed from the runner.
    fn sif_job(
        &self,
        d: &Decision,
        sif: &SifPlan,
        bucket: &BucketConfig,
        after: Option<String>,
    ) -> (String, Job) {
        // What the SIF is, recorded in it: retiring and pruning go by this, not its name.
        let build = SifBuild {
            source: sif_source(self.cfg, d),
            arch: d.arch.clone(),
            out: sif.key.clone(),
            container: d.container.clone(),
            branch: self.opts.plan.project.branch.clone(),
        };
        let upload = SifPublish {
            file: sif.key.clone(),
            to: format!("{}/{}", sif.store.trim_end_matches('/'), sif.key),
            s3: S3Access::of(bucket),
        };
        let script = vec![
            build.line().render(),
            upload.line().render(),
            format!("rm -f {}", shell_quote(&sif.key)),
        ];
        let needs = after.into_iter().map(Need::job).collect();
        (
            format!("sif {} {}", d.container, d.arch),
            self.job(&d.arch, "sif", needs, script),
        )
    }
}

/// What the SIF of `d` is built from: the image (read with the project registry's login), or
/// the `.def` file with the labels it records.
fn sif_source(cfg: &Config, d: &Decision) -> SifSource {
    if d.kind == ContainerKind::Spack {
        SifSource::Image {
            image: d.target.clone(),
            login: cfg
                .registry
                .credentials
                .as_ref()
                .map(|c| (c.user_env.clone(), c.secret_env.clone())),
        }
    } else {
        SifSource::Def {
            path: d.definition.display().to_string(),
            // The source digest is recorded by the build itself, as resolved when it runs.
            labels: d
                .record
                .iter()
                .filter(|(k, _)| **k != model::labels::source_digest_label())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// The sync of the shared directory from the buckets of `synced` (URL → bucket), after every
/// SIF job: by stage order, not `needs:`, since
/// GitLab lets a job need at most 50 jobs (https://docs.gitlab.com/ci/yaml/#needs) and a
/// repository may have more SIFs than that; `dependencies: []`, since it reads the buckets, not
/// the SIF jobs' artifacts. On a shell runner, which ignores `image:`, the tools come from the
/// folder the configuration names.
fn sync_job(
    cfg: &Config,
    sync: &model::config::SifSyncConfig,
    image: Option<Image>,
    synced: &BTreeMap<String, &BucketConfig>,
) -> Job {
    let script = synced
        .iter()
        .map(|(url, bucket)| {
            SifSync {
                from: url.clone(),
                to: sync.dir.clone(),
                delete_removed: sync.delete_removed,
                s3: S3Access::of(bucket),
            }
            .line()
            .render()
        })
        .collect();
    Job {
        stage: Some("sync".into()),
        image,
        tags: vec![sync.runner_tag.clone()],
        dependencies: Some(Vec::new()),
        script,
        // Two syncs writing the same directory at once would race on the same files.
        resource_group: Some("sif-sync".into()),
        ..Job::default()
    }
    .with_settings(&cfg.jobs.sifs)
    .with_pull_policy(cfg.pull_policy.as_deref())
    .on_sync_runner(sync)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use model::config::Config;

    use super::*;
    use crate::plan::{HubPlan, IndexPlan, SifPlan};

    fn options(branch: &str) -> PipelineOptions {
        let config = Config::read(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/spacktainerizah.yaml"),
        )
        .unwrap();
        PipelineOptions {
            plan: PlanOptions {
                project: crate::image::Project {
                    repo: ".".into(),
                    branch: branch.into(),
                    lockfiles: "envs".into(),
                    config,
                },
                containers: Vec::new(),
                concretize: false,
                spack: None,
            },
            environments: "envs".into(),
            base_tag: "2026.11.29".into(),
            tools_image: "tools:latest".into(),
            pinned: Pinned::default(),
        }
    }

    /// A decision: the image needs a build when `build`, the SIF when `sif`, the hub when `hub`
    /// is `Some(true)` (`None`: off the default branch).
    fn decision(
        container: &str,
        arch: &str,
        kind: ContainerKind,
        build: bool,
        sif: bool,
        hub: Option<bool>,
    ) -> Decision {
        Decision {
            container: container.into(),
            arch: arch.into(),
            kind,
            definition: format!("container_definitions/{arch}/{container}.def").into(),
            target: format!("registry.example.org/hpc/spacktainers/{container}:1.0"),
            build,
            reason: String::new(),
            record: BTreeMap::from([
                (
                    "org.example.spacktainerizah.definition-checksum".to_string(),
                    "abc".to_string(),
                ),
                (model::labels::source_digest_label(), "sha256:1".to_string()),
            ]),
            sif: Some(SifPlan {
                store: "s3://sboinfrastructureassets/containers".into(),
                key: format!("{container}__1.0.sif"),
                build: sif,
                reason: String::new(),
                changed: Vec::new(),
            }),
            hub: hub.map(|push| HubPlan {
                target: format!("docker.io/bluebrain/{container}:1.0"),
                push,
                reason: String::new(),
            }),
            index: None,
        }
    }

    /// `d` listed in its multi-arch tag, which needs writing when `write`.
    fn indexed(mut d: Decision, write: bool) -> Decision {
        d.index = Some(IndexPlan {
            target: format!("registry.example.org/hpc/spacktainers/{}:1.0", d.container),
            write,
            reason: String::new(),
        });
        d
    }

    #[test]
    fn a_multi_arch_tag_is_written_after_the_image_builds_it_lists() {
        let decisions = [
            indexed(
                decision("pythons", "amd64", ContainerKind::Spack, false, false, None),
                true,
            ),
            indexed(
                decision("pythons", "arm64", ContainerKind::Spack, true, false, None),
                true,
            ),
            indexed(
                decision("neuron", "amd64", ContainerKind::Spack, false, false, None),
                false,
            ),
            indexed(
                decision("neuron", "arm64", ContainerKind::Spack, false, true, None),
                false,
            ),
        ];
        let opts = options("my-branch");
        let p = pipeline(&opts, &decisions);
        assert!(
            !p.jobs.contains_key("index neuron"),
            "its tag lists both images as they are"
        );
        let index = &p.jobs["index pythons"];
        assert_eq!(index.stage.as_deref(), Some("index"));
        assert_eq!(p.stages, ["build", "sif", "sync", "index"]);
        let cfg = &opts.plan.project.config;
        assert_eq!(index.tags, cfg.tools_tags(), "a job of no architecture");
        assert_eq!(
            index.needs,
            Some(vec![
                Need::other_pipeline("$PARENT_PIPELINE_ID", build_cache_generate_job("amd64")),
                Need::other_pipeline("$PARENT_PIPELINE_ID", build_cache_generate_job("arm64")),
                Need::with_artifacts("build pythons arm64", false),
            ]),
            "every architecture's lockfile, after the build"
        );
        assert_eq!(
            index.script,
            ["spackah index --lockfiles 'envs' --branch 'my-branch' --container 'pythons'"]
        );
        assert!(
            index.services.is_empty(),
            "no engine: it only talks to the registry"
        );
        p.check().unwrap();
        spacktainerizah_tests::validate_gitlab_ci(&p.to_yaml()).unwrap();
    }

    #[test]
    fn jobs_only_for_what_needs_work_on_their_runner() {
        let decisions = [
            decision("pythons", "amd64", ContainerKind::Spack, true, true, None),
            decision("pythons", "arm64", ContainerKind::Spack, false, false, None),
            decision("neuron", "arm64", ContainerKind::Spack, false, true, None),
            decision("storage", "amd64", ContainerKind::Def, true, true, None),
        ];
        let opts = options("my-branch");
        let p = pipeline(&opts, &decisions);
        let names: Vec<&str> = p.jobs.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "build pythons amd64",
                "sif pythons amd64",
                "sif neuron arm64",
                "sif storage amd64",
                "sync sifs"
            ]
        );
        assert_eq!(p.stages, ["build", "sif", "sync"]);
        let arm = opts.plan.project.config.arch("arm64").unwrap();
        assert_eq!(p.jobs["sif neuron arm64"].tags, [arm.runner_tag.as_str()]);
        assert_eq!(
            p.jobs["sif neuron arm64"].needs,
            Some(vec![]),
            "its image exists: starts at once"
        );
        assert_eq!(
            p.jobs["sif pythons amd64"].needs,
            Some(vec![Need::job("build pythons amd64")])
        );
        let build = &p.jobs["build pythons amd64"];
        assert_eq!(build.script.len(), 1, "off the default branch: no hub");
        assert!(build.script[0].contains(&format!("--base-tag {}", shell_quote("2026.11.29"))));

        let sif = &p.jobs["sif pythons amd64"].script;
        assert!(sif[0].starts_with("singularitah sif build 'registry.example.org/hpc/spacktainers/pythons:1.0' --arch 'amd64' -o 'pythons__1.0.sif' --user-env 'CI_REGISTRY_USER' --password-env 'CI_REGISTRY_PASSWORD'"), "{sif:?}");
        assert!(
            sif[1].contains("--to 's3://sboinfrastructureassets/containers/pythons__1.0.sif'"),
            "{sif:?}"
        );
        assert!(sif[1].contains("--access-key-env 'CONTAINERS_ACCESS_KEY_ID' --secret-key-env 'CONTAINERS_SECRET_ACCESS_KEY'"), "{sif:?}");
        let def = &p.jobs["sif storage amd64"].script[0];
        assert!(
            def.contains("--def 'container_definitions/amd64/storage.def'"),
            "{def}"
        );
        assert!(
            def.contains("--label 'org.example.spacktainerizah.definition-checksum=abc'"),
            "{def}"
        );
        assert!(
            !def.contains("source-digest"),
            "the build records the digest it resolves: {def}"
        );

        let sync = &p.jobs["sync sifs"];
        assert_eq!(sync.tags, ["bb5_map"]);
        // After every SIF job by its stage: GitLab lets a job need at most 50 others.
        assert_eq!(sync.needs, None);
        assert_eq!(sync.dependencies, Some(vec![]));
        assert_eq!(p.stages.last().map(String::as_str), Some("sync"));
        // The example's runner is a shell runner: no image, the tools from their folder.
        assert_eq!(sync.image, None);
        assert_eq!(sync.script.len(), 2, "one bucket for both architectures");
        assert!(
            sync.script[1].contains("--to '/gpfs/bbp.cscs.ch/ssd/containers' --delete-removed")
        );
        p.check().unwrap();
        let text = p.to_yaml();
        spacktainerizah_tests::validate_gitlab_ci(&text).unwrap();
        assert!(!text.contains("test-secret"), "variables by name only");
    }

    #[test]
    fn build_jobs_get_the_base_images_their_pipeline_pinned() {
        let mut opts = options("my-branch");
        opts.pinned = Pinned {
            builder: Some("reg/builder@sha256:b".into()),
            runtime: Some("reg/runtime@sha256:r".into()),
        };
        let d = decision("pythons", "amd64", ContainerKind::Spack, true, false, None);
        let p = pipeline(&opts, &[d]);
        // `spackah build` reads these (`--builder-image`, `--runtime-image`) by their names.
        assert_eq!(p.variables["BUILDER_IMAGE"], "reg/builder@sha256:b");
        assert_eq!(p.variables["RUNTIME_IMAGE"], "reg/runtime@sha256:r");
    }

    #[test]
    fn the_default_branch_publishes_to_the_hub_and_nothing_to_do_is_a_noop() {
        let opts = options(&options("x").plan.project.config.default_branch.clone());
        let p = pipeline(
            &opts,
            &[
                decision(
                    "pythons",
                    "amd64",
                    ContainerKind::Spack,
                    true,
                    false,
                    Some(true),
                ),
                decision(
                    "neuron",
                    "amd64",
                    ContainerKind::Spack,
                    false,
                    false,
                    Some(true),
                ),
                decision(
                    "brayns",
                    "amd64",
                    ContainerKind::Spack,
                    false,
                    false,
                    Some(false),
                ),
            ],
        );
        let script = &p.jobs["build pythons amd64"].script;
        assert!(script[1].starts_with("spackah publish "), "{script:?}");
        assert_eq!(
            p.jobs.keys().map(String::as_str).collect::<Vec<_>>(),
            ["build pythons amd64", "publish neuron amd64"],
            "an image built before but missing on the hub gets a hub job; no SIF work, no sync"
        );
        assert!(p.jobs["publish neuron amd64"].script[0].starts_with("spackah publish "));
        p.check().unwrap();
        spacktainerizah_tests::validate_gitlab_ci(&p.to_yaml()).unwrap();
        let p = pipeline(
            &opts,
            &[decision(
                "pythons",
                "amd64",
                ContainerKind::Spack,
                false,
                false,
                Some(false),
            )],
        );
        assert!(
            !p.jobs
                .keys()
                .any(|k| k.starts_with("build ") || k.starts_with("sif "))
        );
    }
}
