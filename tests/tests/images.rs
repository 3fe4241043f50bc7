//! The real base images — builder, runtime, tools — built by `spacktainerizer build` from the
//! tools' own Dockerfiles on a real Debian base (made offline by the test command) with real
//! Spack from the shared tools; checked from inside for what their jobs need; every image a
//! generated job names is one the chain builds or the configuration names, and every command a
//! job runs exists in the real image it runs in. Then indexed, and planned as up to date.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use model::ci::Image;
use spacktainerizah_tests::spack::{V0_23, not_run, shared_tools};
use spacktainerizah_tests::{
    arm64_tools_dir, docker_host, docker_run, docker_run_on, host_ca_certificates,
    multiarch_os_image, os_image, registry, succeeded, tools_dir, unique_name,
};

mod support;

const AMD64: &str = "  amd64:
    runner_tag: local
    base_requirement: \"%gcc@12 target=x86_64\"
    build_cache:
      url: file:///var/cache/spack-build-cache
";

const ARM64: &str = "  arm64:
    runner_tag: local-arm64
    base_requirement: \"%gcc@12 target=aarch64\"
    build_cache:
      url: file:///var/cache/spack-build-cache-arm64
";

fn write_config(dir: &Path, namespace: &str, spack_archive: &Path) -> std::path::PathBuf {
    write_config_for(dir, namespace, spack_archive, &os_image(), &[AMD64])
}

/// A configuration whose `os_image` is `os` and whose architectures are `architectures` (their
/// YAML entries).
fn write_config_for(
    dir: &Path,
    namespace: &str,
    spack_archive: &Path,
    os: &str,
    architectures: &[&str],
) -> std::path::PathBuf {
    let certificates: Vec<String> = host_ca_certificates()
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    let text = format!(
        "default_branch: main
registry:
  url: {registry}/{namespace}
labels:
  namespace: org.example.test
tags:
  default_branch: latest
  other_branches: \"{{date}}-{{branch}}\"
  arch_suffix: true
tools_image: {registry}/{namespace}/tools:latest
base_images:
  os_image: {os}
  spack:
    archive: {archive}
  ca_certificates: [{certificates}]
architectures:
{architectures}",
        registry = registry(),
        architectures = architectures.concat(),
        archive = spack_archive.display(),
        certificates = certificates.join(", "),
    );
    let path = dir.join("spacktainerizah.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The Spack 0.23 release archive of the shared tools the base images are built with; without
/// them `test` does not run.
fn spack_archive(test: &str) -> std::path::PathBuf {
    let Some(tools) = shared_tools() else {
        not_run(test, "no ../shared/tools with Spack");
    };
    tools.join(format!("spack/spack-{V0_23}.tar.xz"))
}

fn spacktainerizer(dir: &Path, config: &Path, args: &[&str]) -> Output {
    spacktainerizah_tests::tool(tools_dir().join("spacktainerizer").to_str().unwrap())
        .args(args)
        .args(["--branch", "main", "--repo"])
        .arg(dir)
        .arg("--config")
        .arg(config)
        .arg("--tools-dir")
        .arg(tools_dir())
        .output()
        .unwrap()
}

#[test]
#[ignore = "NOT RUN: needs the Docker daemon, arm64 emulation and the test OS images in the OCI registry (./scripts/test.sh sets them up)"]
fn the_runtime_image_is_built_for_arm64_and_served_with_amd64_by_one_index() {
    let os = multiarch_os_image().unwrap_or_else(|why| {
        not_run(
            "the_runtime_image_is_built_for_arm64_and_served_with_amd64_by_one_index",
            &why,
        )
    });
    let archive =
        spack_archive("the_runtime_image_is_built_for_arm64_and_served_with_amd64_by_one_index");
    let dir = tempfile::tempdir().unwrap();
    let namespace = unique_name("arm");
    let config = write_config_for(dir.path(), &namespace, &archive, &os, &[AMD64, ARM64]);

    for arch in ["amd64", "arm64"] {
        let out = spacktainerizer(
            dir.path(),
            &config,
            &["build", "--image", "runtime", "--arch", arch, "--push"],
        );
        let target = succeeded(&out).trim().to_string();
        assert_eq!(
            target,
            format!("{}/{namespace}/runtime:latest-{arch}", registry())
        );
    }
    succeeded(&spacktainerizer(
        dir.path(),
        &config,
        &["index", "--image", "runtime"],
    ));

    // One reference, each platform its own image: the arm64 one runs aarch64 code (emulated)
    // and has the arm64 runtime libraries Spack-built software links against.
    let index = format!("{}/{namespace}/runtime:latest", registry());
    let check = "uname -m; for l in libstdc++.so.6 libgomp.so.1 libgfortran.so.5; do \
                 ls /usr/lib/$(uname -m)-linux-gnu/$l || exit 1; done";
    let arm = docker_run_on(Some("linux/arm64"), &index, check);
    assert!(arm.starts_with("aarch64\n"), "{arm}");
    assert!(
        arm.contains("/usr/lib/aarch64-linux-gnu/libgfortran.so.5"),
        "{arm}"
    );
    let amd = docker_run_on(Some("linux/amd64"), &index, check);
    assert!(amd.starts_with("x86_64\n"), "{amd}");

    // Both architectures indexed: nothing left to build for the runtime.
    let out = spacktainerizer(dir.path(), &config, &["plan", "--output", "json"]);
    let decisions: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let runtime: Vec<_> = decisions
        .iter()
        .filter(|d| d["image"] == "runtime")
        .map(|d| (d["arch"].as_str().unwrap(), d["build"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        runtime,
        [("amd64", false), ("arm64", false)],
        "{decisions:?}"
    );
}

/// Whether the arm64 builder is built too (`SPACKTAINERIZAH_TEST_ARM64_BUILDER=1`): its compilers
/// and clingo installed under emulation take longer than the test command can afford.
fn arm64_builder_wanted() -> bool {
    std::env::var("SPACKTAINERIZAH_TEST_ARM64_BUILDER").is_ok_and(|v| v == "1")
}

#[test]
#[ignore = "NOT RUN: needs the Docker daemon, arm64 emulation, the arm64 tools and the test OS images in the OCI registry (./scripts/test.sh sets them up)"]
fn the_tools_images_are_built_for_arm64_with_arm64_tools_and_pulled_through_one_index() {
    const TEST: &str =
        "the_tools_images_are_built_for_arm64_with_arm64_tools_and_pulled_through_one_index";
    let os = multiarch_os_image().unwrap_or_else(|why| not_run(TEST, &why));
    let arm64_tools = arm64_tools_dir().unwrap_or_else(|why| not_run(TEST, &why));
    let archive = spack_archive(TEST);
    let dir = tempfile::tempdir().unwrap();
    let namespace = unique_name("arm-tools");
    let config = write_config_for(dir.path(), &namespace, &archive, &os, &[AMD64, ARM64]);
    // This build's tools for amd64 (read from their executables), the cross-compiled ones for
    // arm64.
    let run = |args: &[&str]| {
        spacktainerizah_tests::tool(tools_dir().join("spacktainerizer").to_str().unwrap())
            .args(args)
            .args(["--branch", "main", "--repo"])
            .arg(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("--tools-dir")
            .arg(tools_dir())
            .arg(format!("--tools-dir=arm64={}", arm64_tools.display()))
            .output()
            .unwrap()
    };
    let mut images = vec!["tools"];
    if arm64_builder_wanted() {
        images.push("builder");
    } else {
        eprintln!(
            "{TEST}: the arm64 builder is not built (SPACKTAINERIZAH_TEST_ARM64_BUILDER=1 builds it)"
        );
    }
    for image in &images {
        for arch in ["amd64", "arm64"] {
            let started = std::time::Instant::now();
            let out = run(&["build", "--image", image, "--arch", arch, "--push"]);
            let target = succeeded(&out).trim().to_string();
            assert_eq!(
                target,
                format!("{}/{namespace}/{image}:latest-{arch}", registry())
            );
            eprintln!("{TEST}: {image} {arch} built in {:?}", started.elapsed());
        }
        succeeded(&run(&["index", "--image", image]));
    }

    // Pulled through the index as an arm64 machine pulls it: the arm64 image, whose own
    // commands run (emulated) as aarch64 programs.
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .env("DOCKER_HOST", docker_host())
            .args(args)
            .output()
            .expect("the docker client is installed by the test command");
        succeeded(&out).trim().to_string()
    };
    let versions = "uname -m; for t in spacktainerizer spack-cacher spackah singularitah \
                    spackitor; do $t --version || exit 1; done";
    for image in &images {
        let index = format!("{}/{namespace}/{image}:latest", registry());
        docker(&["pull", "--platform", "linux/arm64", &index]);
        let pulled = docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}",
            &index,
        ]);
        assert_eq!(pulled, "linux/arm64", "{index}");
        let script = if *image == "builder" {
            format!("{versions}; spack --version; $SPACK_PYTHON -c 'import clingo'")
        } else {
            versions.to_string()
        };
        let arm = docker_run_on(Some("linux/arm64"), &index, &script);
        assert!(arm.starts_with("aarch64\n"), "{arm}");
        for tool in model::commands::TOOLS {
            assert!(arm.contains(&format!("{tool} ")), "{tool}: {arm}");
        }
        if *image == "builder" {
            assert!(arm.contains(V0_23), "{arm}");
        }
        let amd = docker_run_on(Some("linux/amd64"), &index, versions);
        assert!(amd.starts_with("x86_64\n"), "{amd}");
    }

    // Each architecture records its own tools, and both are up to date.
    let out = run(&["plan", "--output", "json"]);
    let decisions: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let tools: BTreeMap<&str, (&str, bool)> = decisions
        .iter()
        .filter(|d| d["image"] == "tools")
        .map(|d| {
            (
                d["arch"].as_str().unwrap(),
                (
                    d["labels"][&model::labels::namespaced(
                        "org.example.test",
                        model::labels::TOOL_VERSIONS,
                    )]
                        .as_str()
                        .unwrap_or_else(|| panic!("{d}")),
                    d["build"].as_bool().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(tools.len(), 2, "{decisions:?}");
    assert!(tools.values().all(|(_, build)| !build), "{decisions:?}");
    assert_ne!(tools["amd64"].0, tools["arm64"].0);
}

/// The commands a script line runs: the first word of each `;`, `&&`, `||` or `then` part,
/// shell keywords and builtins left out.
fn commands(line: &str) -> Vec<String> {
    const SHELL: &[&str] = &[
        ".", "if", "then", "else", "fi", "[", "test", "cd", "export", "set", "echo", "true",
    ];
    line.replace("&&", ";")
        .replace("||", ";")
        .split(';')
        .flat_map(|part| {
            part.split_whitespace()
                .find(|w| !matches!(*w, "if" | "then" | "else" | "!"))
                .map(str::to_string)
        })
        .filter(|c| !SHELL.contains(&c.as_str()) && !c.starts_with('$'))
        .collect()
}

/// The base image a job runs in: `builder`, `runtime` or `tools`; panics on any image the
/// chain does not build and the configuration does not name.
fn kind_of(image: &str, cfg: &model::config::Config) -> &'static str {
    if image == cfg.release_tools_image() {
        return "tools";
    }
    for kind in ["builder", "runtime", "tools"] {
        // By tag, by digest, or as pinned by stage 1 (`$BUILDER_IMAGE`).
        let pinned = format!("${}_IMAGE", kind.to_uppercase());
        if image.starts_with(&format!("{}/{kind}:", cfg.registry.url))
            || image.starts_with(&format!("{}/{kind}@", cfg.registry.url))
            || image == pinned
        {
            return kind;
        }
    }
    panic!(
        "a generated job runs in {image}, which the chain does not build and the configuration does not name"
    )
}

/// What each base image's jobs run, from every generated pipeline and the Spack jobs' own
/// before_script (`spack-cacher prepare`).
fn commands_by_image() -> BTreeMap<&'static str, BTreeSet<String>> {
    let cfg = support::config();
    let engines: BTreeSet<String> = cfg
        .architectures
        .values()
        .filter_map(|a| match &a.engine {
            model::config::EngineConfig::Dind(image) => Some(image.clone()),
            _ => None,
        })
        .collect();
    let mut by_image: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for (file, p) in support::generated() {
        for (name, job) in &p.jobs {
            for service in &job.services {
                assert!(
                    engines.contains(&service.name),
                    "{file}: {name}: service {} is not an engine of the configuration",
                    service.name
                );
            }
            // A shell runner's jobs run on its machine, with the tools from `tools_dir`.
            let on_shell_runner = cfg.sif_sync.as_ref().is_some_and(|s| {
                s.executor == model::config::Executor::Shell && job.tags == [s.runner_tag.clone()]
            });
            let Some(image) = &job.image else {
                assert!(
                    job.trigger.is_some() || on_shell_runner,
                    "{file}: {name} has no image"
                );
                continue;
            };
            let image = match image {
                Image::Name(n) => n,
                Image::Detailed { name, .. } => name,
            };
            let kind = kind_of(image, &cfg);
            for line in job.before_script.iter().chain(&job.script) {
                by_image.entry(kind).or_default().extend(commands(line));
            }
        }
    }
    let out = tempfile::tempdir().unwrap();
    let prepared = spack_cacher::prepare::run(&spack_cacher::prepare::PrepareOptions {
        repo: spacktainerizah_tests::repo_root().join("examples"),
        config: cfg.clone(),
        output: out.path().to_path_buf(),
        branch: "main".into(),
        base_tag: "latest".into(),
        builder_image: None,
        project_dir: None,
    })
    .unwrap();
    let env = model::spack::environment::Environment::read(&prepared[0].path).unwrap();
    let jobs = env.doc["spack"]["ci"]["pipeline-gen"]
        .as_sequence()
        .unwrap();
    for job in jobs.iter().flat_map(|j| j.as_mapping().unwrap().values()) {
        let image = job["image"]["name"].as_str().unwrap();
        let kind = kind_of(image, &cfg);
        for line in job["before_script"].as_sequence().into_iter().flatten() {
            by_image
                .entry(kind)
                .or_default()
                .extend(commands(line.as_str().unwrap()));
        }
    }
    // Spack's generated jobs run `spack ci rebuild` in the builder.
    by_image
        .entry("builder")
        .or_default()
        .insert("spack".into());
    by_image
}

#[test]
#[ignore = "NOT RUN: needs the shared Spack tools, the Docker daemon and the test OS image in the OCI registry (./scripts/test.sh sets them up)"]
fn the_real_base_images_do_their_jobs() {
    let archive = spack_archive("the_real_base_images_do_their_jobs");
    let dir = tempfile::tempdir().unwrap();
    let namespace = unique_name("base");
    let config = write_config(dir.path(), &namespace, &archive);

    let mut built = BTreeMap::new();
    for image in ["builder", "runtime", "tools"] {
        let out = spacktainerizer(
            dir.path(),
            &config,
            &["build", "--image", image, "--arch", "amd64", "--push"],
        );
        let target = succeeded(&out).trim().to_string();
        // One architecture: no per-architecture suffix.
        assert_eq!(target, format!("{}/{namespace}/{image}:latest", registry()));
        built.insert(image, target);
    }

    // The builder: Spack on PATH at the archive's version, the compiler the base requirement
    // names found in Spack's site scope, clingo to concretize with, the mirror, the tools.
    let out = docker_run(
        &built["builder"],
        "spack --version && spack compilers && gcc-12 --version && \
         $SPACK_PYTHON -c 'import clingo, boto3' && spack config get mirrors && \
         spack-cacher --help && spackitor --version && command -v patchelf",
    );
    assert!(out.contains(V0_23), "{out}");
    assert!(out.contains("gcc@12"), "{out}");
    assert!(out.contains("file:///var/cache/spack-build-cache"), "{out}");
    assert!(out.contains("Usage: spack-cacher"), "{out}");
    // Concretizing needs clingo and the compiler together.
    let out = docker_run(&built["builder"], "spack spec zlib-ng 2>&1 | head -n 3");
    assert!(out.contains("zlib-ng") && out.contains("%gcc@12"), "{out}");

    // The runtime: the OS runtimes Spack-built software links against, and no compiler.
    let out = docker_run(
        &built["runtime"],
        "for l in libstdc++.so.6 libgomp.so.1 libgfortran.so.5; do \
             ls /usr/lib/*-linux-gnu/$l || exit 1; done; \
         if command -v gcc; then echo has-a-compiler; fi",
    );
    assert!(!out.contains("has-a-compiler"), "{out}");

    // The tools image: every tool answers.
    let out = docker_run(
        &built["tools"],
        "for t in spacktainerizer spack-cacher spackah singularitah spackitor; do \
             $t --help >/dev/null || exit 1; done; git --version && mksquashfs -version",
    );
    assert!(out.contains("git version"), "{out}");

    // Every command a generated job runs is in the image the job runs in.
    for (kind, commands) in commands_by_image() {
        let list: Vec<&str> = commands.iter().map(String::as_str).collect();
        let script = format!(
            "for c in {}; do command -v \"$c\" >/dev/null || {{ echo \"missing: $c\"; exit 1; }}; done",
            list.join(" ")
        );
        docker_run(&built[kind], &script);
    }

    // Indexed under the multi-arch tag, every image is then up to date.
    for image in ["builder", "runtime", "tools"] {
        succeeded(&spacktainerizer(
            dir.path(),
            &config,
            &["index", "--image", image],
        ));
    }
    let out = spacktainerizer(dir.path(), &config, &["plan"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_script_line_names_the_commands_it_runs() {
    assert_eq!(
        commands(
            "if [ -n \"${K:-}\" ]; then spack gpg trust \"$K\"; fi && spack-cacher prepare --out envs"
        ),
        ["spack", "spack-cacher"]
    );
    assert_eq!(
        commands(". $SPACK_ROOT/share/spack/setup-env.sh"),
        Vec::<String>::new()
    );
}
