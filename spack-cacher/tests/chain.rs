//! The `.gitlab-ci.yml` chain: GitLab's schema, the documented stage order as a DAG, what runs
//! on a schedule, secrets only by reference, and the committed file kept in sync.

use std::collections::{BTreeMap, BTreeSet};

use model::ci::{Job, Need, Pipeline};
use model::config::Config;
use spack_cacher::chain::{self, ChainOptions, STAGES};
use spacktainerizah_tests::{repo_root, validate_gitlab_ci};

fn chain() -> Pipeline {
    let config = Config::read(&repo_root().join("examples/spacktainerizah.yaml")).unwrap();
    chain_of(config, Vec::new())
}

/// The chain of `config`, whose template names `package_repos`, for every architecture.
fn chain_of(config: Config, package_repos: Vec<String>) -> Pipeline {
    chain::pipeline(&ChainOptions {
        spack_architectures: config.architectures.keys().cloned().collect(),
        config,
        package_repos,
        config_path: "spacktainerizah.yaml".into(),
    })
    .unwrap()
}

fn needs(job: &Job) -> Vec<&str> {
    job.needs.iter().flatten().map(Need::job_name).collect()
}

/// Every job that `name` waits for, directly or not.
fn upstream<'a>(p: &'a Pipeline, name: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = needs(&p.jobs[name]);
    while let Some(n) = todo.pop() {
        if seen.insert(n) {
            todo.extend(needs(&p.jobs[n]));
        }
    }
    seen
}

#[test]
fn the_chain_is_valid_and_runs_the_stages_in_order() {
    let p = chain();
    validate_gitlab_ci(&p.to_yaml()).unwrap();
    let stage_index: BTreeMap<&str, usize> =
        STAGES.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    for (name, job) in &p.jobs {
        let mine = stage_index[job.stage.as_deref().unwrap()];
        for n in needs(job) {
            let theirs = stage_index[p.jobs[n].stage.as_deref().unwrap()];
            assert!(theirs <= mine, "{name} needs {n} of a later stage");
        }
        assert!(
            !upstream(&p, name).contains(name.as_str()),
            "{name} waits for itself"
        );
    }
    for arch in ["amd64", "arm64"] {
        assert!(
            upstream(&p, &format!("build cache {arch}")).contains("base images"),
            "{arch}: builder image first"
        );
        assert!(upstream(&p, "containers").contains(format!("build cache {arch}").as_str()));
        let clean = upstream(&p, &format!("clean build cache {arch}"));
        assert!(clean.contains(format!("build cache {arch}").as_str()));
        assert!(
            !clean.contains("containers"),
            "cleanup starts as soon as the cache is filled"
        );
        // The keep lists are the lockfiles the generating job concretized.
        assert!(
            p.jobs[&format!("clean build cache {arch}")].script[0]
                .contains(&format!("--keep envs/{arch}"))
        );
    }
}

#[test]
fn a_schedule_runs_only_the_janitors() {
    let p = chain();
    for (name, job) in &p.jobs {
        let on_schedule = job
            .rules
            .iter()
            .find(|r| r.if_.as_deref().is_some_and(|c| c.contains("schedule")))
            .and_then(|r| r.when.as_deref());
        if name.starts_with("scheduled ") {
            assert_eq!(on_schedule, Some("always"), "{name}");
            assert_eq!(job.rules.len(), 1, "{name} runs on schedules only");
        } else {
            assert_eq!(on_schedule, Some("never"), "{name}");
        }
    }
}

#[test]
fn a_schedule_prunes_sifs_of_deleted_branches_in_the_bucket_and_the_shared_directory() {
    let p = chain();
    let bucket = &p.jobs["scheduled prune branch SIFs"];
    assert!(
        bucket.script[0].starts_with("singularitah sif prune-branches --repo \"$CI_PROJECT_URL\"")
            && bucket.script[0].contains("--in 's3://sboinfrastructureassets/containers'")
            && bucket.script[0].contains("--git-token-env CI_JOB_TOKEN"),
        "{:?}",
        bucket.script
    );
    let shared = &p.jobs["scheduled prune branch SIFs shared"];
    assert_eq!(shared.tags, ["bb5_map"], "on the runner that mounts it");
    // A shell runner ignores `image:`: the job has none, and finds the tools where the
    // configuration says they are installed.
    assert_eq!(shared.image, None);
    assert_eq!(
        shared.script[0],
        "export PATH='/opt/spacktainerizah/bin':\"$PATH\""
    );
    assert!(shared.script[1].contains("--in '/gpfs/bbp.cscs.ch/ssd/containers'"));
}

#[test]
fn secrets_appear_only_as_variable_references() {
    let text = chain().to_yaml();
    for line in text
        .lines()
        .filter(|l| l.contains("SECRET") || l.contains("ACCESS_KEY"))
    {
        assert!(
            line.contains('$')
                || line.contains("--access-key-env")
                || line.contains("--secret-key-env"),
            "{line}"
        );
    }
    assert!(
        !text.contains("cat ") && !text.contains("s3cmd"),
        "no job prints configuration"
    );
}

#[test]
fn the_committed_example_gitlab_ci_is_what_chain_writes() {
    let examples = repo_root().join("examples");
    let out = spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spack-cacher"))
        .args(["chain", "--out", "-"])
        .current_dir(&examples)
        .output()
        .unwrap();
    let generated = spacktainerizah_tests::succeeded(&out);
    let committed = std::fs::read_to_string(examples.join(".gitlab-ci.yml")).unwrap();
    spacktainerizah_tests::snapshots::assert_generated(
        "examples/.gitlab-ci.yml",
        &committed,
        &generated,
        "`spack-cacher chain` in examples/",
    );
    validate_gitlab_ci(&committed).unwrap();
}

#[test]
fn every_cleaning_keeps_what_every_living_branch_recorded() {
    let cfg = Config::read(&repo_root().join("examples/spacktainerizah.yaml")).unwrap();
    let p = chain_of(cfg.clone(), vec!["packages".into()]);
    for (arch, ac) in &cfg.architectures {
        // The generating job records the lockfiles it concretized, before any build.
        let generate = &p.jobs[&format!("generate build cache {arch}")].script;
        let record = generate
            .iter()
            .position(|l| l.starts_with("spack-cacher record "))
            .expect("stage 2 records its keep lists");
        let process = generate
            .iter()
            .position(|l| l.starts_with("spack-cacher process "))
            .unwrap();
        assert!(record < process, "recorded before the build jobs exist");

        let mut caches = vec![ac.build_cache.url.clone()];
        caches.extend(ac.build_cache.branch_url.clone());
        let cleaners: Vec<(&String, &Job)> = p
            .jobs
            .iter()
            .filter(|(_, j)| j.script.iter().any(|l| l.starts_with("spackitor clean")))
            .filter(|(n, _)| n.ends_with(&format!(" {arch}")))
            .collect();
        assert!(
            cleaners.len() >= 2,
            "{arch}: after a build and on a schedule"
        );
        for (name, job) in &cleaners {
            let cmd = &job.script[0];
            for c in &caches {
                assert!(
                    cmd.contains(&format!("--keep '{c}/_spacktainerizah/keep'")),
                    "{name} keeps what was recorded in {c}: {cmd}"
                );
            }
            assert!(
                cmd.contains("--branches-from \"$CI_PROJECT_URL\""),
                "{name}: {cmd}"
            );
            assert!(
                cmd.contains("--spack-repo \"$SPACK_ROOT\""),
                "{name}: {cmd}"
            );
            assert!(cmd.contains("--spack-repo 'packages'"), "{name}: {cmd}");
        }
        // Each cache is cleaned on the schedule, with its own age.
        for (cache, on_default) in [(ac.build_cache.url.as_str(), true)]
            .into_iter()
            .chain(ac.build_cache.branch_url.as_deref().map(|b| (b, false)))
        {
            let age = ac.build_cache.max_age_for(on_default).unwrap();
            assert!(
                cleaners.iter().any(|(n, j)| n.starts_with("scheduled")
                    && j.script[0].contains(&format!("--cache '{cache}' "))
                    && j.script[0].contains(&format!("--max-age {age} "))),
                "{cache} is cleaned on a schedule with {age} days"
            );
        }
        // A manual run on a feature branch never cleans the production cache.
        let prod = cleaners
            .iter()
            .filter(|(_, j)| {
                j.script[0].contains(&format!("--cache '{}' ", ac.build_cache.url))
                    && j.rules.iter().any(|r| r.when.as_deref() != Some("never"))
                    && !j.rules.iter().any(|r| r.when.as_deref() == Some("always"))
            })
            .collect::<Vec<_>>();
        for (name, job) in prod {
            let starts: Vec<&str> = job
                .rules
                .iter()
                .filter(|r| r.when.as_deref() == Some("on_success"))
                .filter_map(|r| r.if_.as_deref())
                .collect();
            if ac.build_cache.branch_url.is_some() {
                assert_eq!(
                    starts,
                    ["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"],
                    "{name}: only the default branch cleans the production cache"
                );
            }
        }
    }
}

#[test]
fn every_job_after_stage_1_runs_the_images_its_pipeline_built_by_digest() {
    // Two pushes race on the branch's tags: a job that named `builder:$BUILDER_TAG` could run
    // the other push's builder. After stage 1, jobs take the digests `pin base images` exports.
    let p = chain();
    let pin = &p.jobs["pin base images"];
    assert!(pin.script[0].starts_with("spacktainerizer pin --tag \"$BUILDER_TAG\""));
    assert_eq!(
        pin.artifacts.as_ref().unwrap().extra["reports"]["dotenv"].as_str(),
        Some("pinned.env")
    );
    for (name, job) in &p.jobs {
        let Some(model::ci::Image::Detailed { name: image, .. }) = &job.image else {
            continue;
        };
        if image.contains("$BUILDER_TAG") {
            panic!("`{name}` runs {image}, a tag another pipeline may move");
        }
        if image.starts_with('$') {
            assert!(
                matches!(image.as_str(), "$BUILDER_IMAGE" | "$TOOLS_IMAGE"),
                "{name}: {image}"
            );
            let needs = job.needs.as_ref().unwrap();
            assert!(
                needs.iter().any(|n| n.job_name() == "pin base images"),
                "`{name}` runs {image} without the job that sets it"
            );
        }
    }
}

#[test]
fn a_directory_caches_records_are_named_as_a_store_not_a_path() {
    // `--keep PATH` is lockfiles that must exist; `--keep file:///…` is a records prefix, where
    // nothing recorded yet (a branch cache before any branch built) is no error.
    let text = std::fs::read_to_string(repo_root().join("examples/spacktainerizah.yaml"))
        .unwrap()
        .replace(
            "url: s3://spack-build-cache-dev",
            "url: file:///srv/cache-dev",
        )
        .replace(
            "branch_url: s3://spack-build-cache-dev",
            "branch_url: file:///srv/cache-dev",
        );
    let cfg = Config::parse(std::path::Path::new("spacktainerizah.yaml"), &text).unwrap();
    let p = chain_of(cfg.clone(), vec!["packages".into()]);
    let cmd = &p.jobs["clean branch build cache amd64"].script[0];
    assert!(
        cmd.contains("--keep 'file:///srv/cache-dev/_spacktainerizah/keep'"),
        "{cmd}"
    );
}
