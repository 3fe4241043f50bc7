//! What several cross-tool tests share: every pipeline the generators write, with work
//! everywhere, for the example configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use model::ci::Pipeline;
use model::config::Config;
use spacktainerizah_tests::repo_root;

/// The example configuration.
pub fn config() -> Config {
    Config::read(&repo_root().join("examples/spacktainerizah.yaml")).unwrap()
}

/// The chain, stage 1's pipeline and stage 3's, with work everywhere.
pub fn generated() -> Vec<(String, Pipeline)> {
    let cfg = config();
    let chain = spack_cacher::chain::pipeline(&spack_cacher::chain::ChainOptions {
        config: cfg.clone(),
        package_repos: vec!["packages".into()],
        config_path: "spacktainerizah.yaml".into(),
        spack_architectures: cfg.architectures.keys().cloned().collect(),
    })
    .unwrap();
    let ctx = spacktainerizer::Context {
        config: cfg.clone(),
        repo: ".".into(),
        branch: "my-branch".into(),
        date: "2026.11.30".into(),
        tools: spacktainerizer::images::ToolsDirs {
            native: Some("target/tools".into()),
            ..Default::default()
        },
    };
    let stage1: Vec<spacktainerizer::plan::Decision> = ["builder", "runtime"]
        .iter()
        .flat_map(|image| {
            cfg.architectures
                .keys()
                .map(move |arch| spacktainerizer::plan::Decision {
                    image: image.to_string(),
                    arch: arch.clone(),
                    reference: String::new(),
                    build: true,
                    reason: String::new(),
                    labels: BTreeMap::new(),
                })
        })
        .collect();
    let (base_images, _) =
        spacktainerizer::pipeline::pipeline(&ctx, &stage1, &cfg.release_tools_image());
    let opts = spackah::pipeline::PipelineOptions {
        plan: spackah::plan::PlanOptions {
            project: spackah::image::Project {
                config: cfg.clone(),
                repo: ".".into(),
                branch: cfg.default_branch.clone(),
                lockfiles: "envs".into(),
            },
            containers: Vec::new(),
            concretize: false,
            spack: None,
        },
        environments: "envs".into(),
        base_tag: "latest".into(),
        // As `spackah pipeline` defaults it: this branch's tools image.
        tools_image: cfg.base_image("tools", "latest"),
        pinned: spackah::Pinned {
            builder: Some("registry.example.org/hpc/spacktainers/builder@sha256:1".into()),
            runtime: Some("registry.example.org/hpc/spacktainers/runtime@sha256:2".into()),
        },
    };
    let decision = |container: &str, kind| spackah::plan::Decision {
        container: container.into(),
        arch: "amd64".into(),
        kind,
        definition: PathBuf::from(format!("container_definitions/amd64/{container}.def")),
        target: format!("registry.example.org/hpc/spacktainers/{container}:1.0"),
        build: true,
        reason: String::new(),
        record: BTreeMap::from([("org.example.definition-checksum".into(), "abc".into())]),
        sif: Some(spackah::plan::SifPlan {
            store: "s3://sboinfrastructureassets/containers".into(),
            key: format!("{container}__1.0.sif"),
            build: true,
            reason: String::new(),
            changed: Vec::new(),
        }),
        hub: Some(spackah::plan::HubPlan {
            target: String::new(),
            push: true,
            reason: String::new(),
        }),
        index: (kind == spackah::plan::ContainerKind::Spack).then(|| spackah::plan::IndexPlan {
            target: format!("registry.example.org/hpc/spacktainers/{container}:1.0"),
            write: true,
            reason: String::new(),
        }),
    };
    let containers = spackah::pipeline::pipeline(
        &opts,
        &[
            decision("pythons", spackah::plan::ContainerKind::Spack),
            decision("storage", spackah::plan::ContainerKind::Def),
        ],
    );
    vec![
        (".gitlab-ci.yml".into(), chain),
        ("base-images.yml".into(), base_images),
        ("containers.yml".into(), containers),
    ]
}

/// Every pipeline GitLab runs for the chain: what the generators write and, for stage 2, what
/// `process` makes of Spack's own.
#[allow(dead_code)] // Not every test binary that shares this module reads it.
pub fn everything() -> Vec<(String, Pipeline)> {
    let mut all = generated();
    all.extend(build_cache(&config()));
    all
}

/// Stage 2's pipelines for amd64, from what Spack's `ci generate` really wrote (the fixtures),
/// with the configuration's settings of Spack's jobs.
#[allow(dead_code)] // Not every test binary that shares this module reads it.
pub fn build_cache(cfg: &Config) -> Vec<(String, Pipeline)> {
    let amd64 = cfg.arch("amd64").unwrap();
    let inputs: Vec<PathBuf> = ["current.yml", "envA.yml", "envB.yml"]
        .iter()
        .map(|f| {
            spacktainerizah_tests::fixtures()
                .join("spack/ci-generate")
                .join(f)
        })
        .collect();
    let opts = spack_cacher::process::ProcessOptions {
        arch: "amd64".into(),
        inputs,
        output_dir: "unused".into(),
        artifacts_path: "jobs_scratch_dir.amd64/pipelines".into(),
        artifacts_job: "generate build cache amd64".into(),
        variables: amd64.job_variables(),
        builds: cfg.jobs.spack_builds.clone(),
        tools: cfg.jobs.tools.clone(),
        runner_tag: amd64.runner_tag.clone(),
        pull_policy: cfg.pull_policy.clone(),
        max_jobs_per_pipeline: 500,
        max_file_bytes: model::ci::MAX_FILE_BYTES,
    };
    let files = spack_cacher::process::input_files(&opts.inputs).unwrap();
    let read = files
        .iter()
        .map(|f| (f.clone(), Pipeline::read(f).unwrap()))
        .collect();
    let (children, trigger) =
        spack_cacher::process::split(spack_cacher::process::merge(read).unwrap(), &opts);
    let mut out = vec![("amd64.yml".to_string(), trigger)];
    out.extend(children);
    out
}
