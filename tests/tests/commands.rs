//! Every command line a generator writes parses with the target tool's own parser, and the
//! typed commands the generators build come back from the tools' parsers as they were built.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use common::ci::Pipeline;
use common::commands::{Arg, S3Access, SifBuild, SifSource, SpackitorClean};
use common::config::Config;
use common::store::StoreUrl;
use spacktainerizah_tests::{repo_root, shell_words};

/// What the CI variables a generated line names are, in a job.
fn ci_env(name: &str) -> String {
    match name {
        "CI_COMMIT_REF_SLUG" => "my-branch".into(),
        "CI_JOB_NAME" => "generate build cache amd64".into(),
        "CI_PROJECT_URL" => "https://gitlab.example.org/hpc/definitions".into(),
        "CI_DEFAULT_BRANCH" => "main".into(),
        "SPACK_ROOT" => "/opt/spack".into(),
        "BUILDER_TAG" => "2026.11.30-my-branch".into(),
        other => panic!("a generated line reads ${other}, which no job defines"),
    }
}

/// Parse `words` with the parser of the tool they call; the tool's name, or the parse error.
fn parse(words: &[String]) -> Result<&'static str, String> {
    let err = |e: clap::Error| e.to_string();
    match words[0].as_str() {
        "spacktainerizer" => spacktainerizer::cli::Cli::try_parse_from(words)
            .map(|_| "spacktainerizer")
            .map_err(err),
        "spack-cacher" => spack_cacher::cli::Cli::try_parse_from(words)
            .map(|_| "spack-cacher")
            .map_err(err),
        "spackah" => spackah::cli::Cli::try_parse_from(words)
            .map(|_| "spackah")
            .map_err(err),
        "singularitah" => singularitah::cli::Cli::try_parse_from(words)
            .map(|_| "singularitah")
            .map_err(err),
        "spackitor" => spackitor::cli::Cli::try_parse_from(words)
            .map(|_| "spackitor")
            .map_err(err),
        other => Err(format!("`{other}` is not one of the tools")),
    }
}

const TOOLS: &[&str] = &[
    "spacktainerizer",
    "spack-cacher",
    "spackah",
    "singularitah",
    "spackitor",
];

fn config() -> Config {
    Config::read(&repo_root().join("examples/spacktainerizah.yaml")).unwrap()
}

/// The chain, stage 1's pipeline and stage 3's, with work everywhere.
fn generated() -> Vec<(String, Pipeline)> {
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
        tools_dir: "target/tools".into(),
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
    let (base_images, _) = spacktainerizer::pipeline::pipeline(&ctx, &stage1, "tools:1");
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
        tools_image: "tools:1".into(),
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

#[test]
fn every_command_line_a_generator_writes_parses_with_its_tool() {
    let mut parsed: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, p) in generated() {
        for (name, job) in &p.jobs {
            for line in job.before_script.iter().chain(&job.script) {
                let words =
                    shell_words(line, &ci_env).unwrap_or_else(|e| panic!("{file}: {name}: {e}"));
                if !TOOLS.contains(&words[0].as_str()) {
                    continue;
                }
                let tool = parse(&words).unwrap_or_else(|e| {
                    panic!("{file}: job `{name}`: `{line}` does not parse:\n{e}")
                });
                *parsed.entry(tool).or_default() += 1;
            }
        }
    }
    for tool in TOOLS {
        assert!(
            parsed.get(tool).copied().unwrap_or(0) > 0,
            "no generated line calls {tool}: {parsed:?}"
        );
    }
}

#[test]
fn a_generated_clean_comes_back_from_spackitors_parser_as_built() {
    let clean = SpackitorClean {
        cache: "s3://cache/prefix".into(),
        max_age_days: Some(45),
        s3: S3Access {
            endpoint_url: Some("https://s3.example.org".into()),
            access_key_env: Some("KEY_ID".into()),
            secret_key_env: Some("KEY".into()),
        },
        keep: vec![
            Arg::quoted("s3://cache/prefix/_spacktainerizah/keep"),
            Arg::word("envs/amd64"),
        ],
        spack_repos: vec![Arg::var("SPACK_ROOT"), Arg::quoted("packages")],
    };
    let words = shell_words(&clean.line().render(), &ci_env).unwrap();
    let (_, run) = spackitor::cli::Cli::try_parse_from(&words)
        .unwrap()
        .into_options();
    let spackitor::Run::Clean(cache, opts) = run else {
        panic!("not a clean: {words:?}")
    };
    assert_eq!(cache.url, "s3://cache/prefix".parse::<StoreUrl>().unwrap());
    assert_eq!(
        cache.s3.endpoint_url.as_deref(),
        Some("https://s3.example.org")
    );
    assert_eq!(cache.s3.access_key_env.as_deref(), Some("KEY_ID"));
    assert_eq!(cache.s3.secret_key_env.as_deref(), Some("KEY"));
    assert_eq!(opts.max_age_days, 45.0);
    assert!(opts.orphans);
    assert_eq!(
        opts.keep,
        [
            spackitor::keep::KeepSource::Store(
                "s3://cache/prefix/_spacktainerizah/keep".parse().unwrap()
            ),
            spackitor::keep::KeepSource::Path("envs/amd64".into()),
        ]
    );
    assert_eq!(
        opts.spack_repos,
        [PathBuf::from("/opt/spack"), PathBuf::from("packages")]
    );
    let (remote, default_branch) = opts.branches.unwrap();
    assert_eq!(remote.url, ci_env("CI_PROJECT_URL"));
    assert_eq!(remote.login.unwrap().1, "CI_JOB_TOKEN");
    assert_eq!(default_branch, "main");
}

#[test]
fn a_generated_sif_build_comes_back_from_singularitahs_parser_as_built() {
    for source in [
        SifSource::Image {
            image: "registry.example.org/x/pythons:1.0".into(),
            login: Some(("USER".into(), "PASS".into())),
        },
        SifSource::Def {
            path: "container_definitions/amd64/storage.def".into(),
            labels: vec![("org.example.definition-checksum".into(), "a=b".into())],
        },
    ] {
        let build = SifBuild {
            source: source.clone(),
            arch: "arm64".into(),
            out: "pythons__1.0.sif".into(),
            container: "pythons".into(),
            branch: "my-branch".into(),
        };
        let words = shell_words(&build.line().render(), &ci_env).unwrap();
        let (_, run) = singularitah::cli::Cli::try_parse_from(&words)
            .unwrap()
            .into_options();
        let singularitah::cli::Run::SifBuild(opts) = run else {
            panic!("not a sif build: {words:?}")
        };
        assert_eq!(opts.arch, "arm64");
        assert_eq!(opts.output, PathBuf::from("pythons__1.0.sif"));
        assert_eq!(opts.container.as_deref(), Some("pythons"));
        assert_eq!(opts.branch.as_deref(), Some("my-branch"));
        match source {
            SifSource::Image { image, login } => {
                assert!(
                    matches!(&opts.source, singularitah::sif_build::SifSource::Image(i) if *i == image)
                );
                assert_eq!(opts.login_env, login);
            }
            SifSource::Def { path, labels } => {
                assert!(
                    matches!(&opts.source, singularitah::sif_build::SifSource::Def(p) if p.as_path() == std::path::Path::new(&path))
                );
                assert_eq!(opts.labels, labels.into_iter().collect());
            }
        }
    }
}
