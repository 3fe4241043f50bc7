//! Every command line a generator writes parses with the target tool's own parser, and the
//! typed commands the generators build come back from the tools' parsers as they were built.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use model::commands::{Arg, S3Access, SifBuild, SifSource, SpackitorClean, TOOLS};
use spacktainerizah_tests::{repo_root, shell_words};
use stores::StoreUrl;

mod support;
use support::{config, generated};

/// What the CI variables a generated line names are, in a job.
fn ci_env(name: &str) -> String {
    match name {
        "CI_COMMIT_REF_SLUG" => "my-branch".into(),
        "CI_JOB_NAME" => "generate build cache amd64".into(),
        "CI_PROJECT_URL" => "https://gitlab.example.org/hpc/definitions".into(),
        "CI_DEFAULT_BRANCH" => "main".into(),
        "SPACK_ROOT" => "/opt/spack".into(),
        "BUILDER_TAG" => "2026.11.30-my-branch".into(),
        // The shell runner's own, extended with the tools' folder.
        "PATH" => "/usr/bin:/bin".into(),
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
    let spackitor::Command::Clean(cache, opts) = run else {
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
        let singularitah::Command::SifBuild(opts) = run else {
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

/// Names a text refers to: `$NAME`, `${NAME}`, and the variable names given to `--*-env`.
fn referenced_variables(text: &str) -> std::collections::BTreeSet<String> {
    let name_at = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices('$') {
        let rest = &text[i + 1..];
        let name = name_at(rest.strip_prefix('{').unwrap_or(rest));
        if !name.is_empty() {
            names.insert(name);
        }
    }
    for (i, m) in text.match_indices("-env ") {
        let rest = text[i + m.len()..].trim_start_matches(['\'', '"']);
        let name = name_at(rest);
        if !name.is_empty() {
            names.insert(name);
        }
    }
    names
}

/// The README's variables table is what `spack-cacher variables` writes for the example
/// configuration, and it names every variable any generated pipeline reads.
#[test]
fn the_readme_lists_every_ci_variable_the_chain_reads() {
    let table = spack_cacher::variables::markdown(&spack_cacher::variables::variables(&config()));
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let (begin, end) = ("<!-- variables:begin -->\n", "<!-- variables:end -->");
    let start = readme
        .find(begin)
        .expect("README has the variables table markers")
        + begin.len();
    let stop = readme[start..].find(end).unwrap() + start;
    spacktainerizah_tests::snapshots::assert_generated(
        "README.md's variables table (between the variables markers)",
        &readme[start..stop],
        &table,
        "`spack-cacher variables --config examples/spacktainerizah.yaml`, put its output there,",
    );

    let listed: std::collections::BTreeSet<String> = spack_cacher::variables::variables(&config())
        .into_iter()
        .map(|v| v.name)
        .collect();
    // The environments `prepare` writes run Spack's jobs: their before_script counts too.
    let out = tempfile::tempdir().unwrap();
    let prepared = spack_cacher::prepare::run(&spack_cacher::prepare::PrepareOptions {
        repo: repo_root().join("examples"),
        config: config(),
        output: out.path().to_path_buf(),
        branch: "main".into(),
        base_tag: "latest".into(),
        builder_image: None,
        project_dir: Some(repo_root()),
    })
    .unwrap();
    let mut texts: Vec<(String, String)> = generated()
        .into_iter()
        .map(|(file, p)| (file, p.to_yaml()))
        .collect();
    for p in prepared {
        texts.push((
            p.path.display().to_string(),
            std::fs::read_to_string(&p.path).unwrap(),
        ));
    }
    for (file, text) in texts {
        for name in referenced_variables(&text) {
            // Set by the builder image itself, and by the runner's machine.
            if name == "SPACK_ROOT" || name == "PATH" {
                continue;
            }
            assert!(
                listed.contains(&name),
                "{file} reads ${name}, which the variables table does not list"
            );
        }
    }
}
