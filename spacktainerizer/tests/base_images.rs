//! The real base images — builder, runtime, tools — built by `spacktainerizer build` from the
//! tools' own Dockerfiles on a real Debian base (made offline by the test command) with real
//! Spack from the shared tools, then checked from inside for what their jobs need, pushed,
//! indexed, and planned as up to date.

use std::path::{Path, PathBuf};
use std::process::Output;

use spacktainerizah_tests::spack::{V0_23, not_run, shared_tools};
use spacktainerizah_tests::{
    docker_run, host_ca_certificates, os_image, registry, succeeded, unique_name,
};

/// The folder holding the five tools (this test's own build of them).
fn tools_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_spacktainerizer"))
        .parent()
        .unwrap()
        .to_path_buf();
    for tool in ["spack-cacher", "spackah", "singularitah", "spackitor"] {
        assert!(
            dir.join(tool).is_file(),
            "{} is missing: build the workspace first (cargo build --workspace)",
            dir.join(tool).display()
        );
    }
    dir
}

fn config(dir: &Path, namespace: &str, spack_archive: &Path) -> PathBuf {
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
  amd64:
    runner_tag: local
    base_requirement: \"%gcc@12 target=x86_64\"
    build_cache:
      url: file:///var/cache/spack-build-cache
",
        registry = registry(),
        os = os_image(),
        archive = spack_archive.display(),
        certificates = certificates.join(", "),
    );
    let path = dir.join("spacktainerizah.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn spacktainerizer(dir: &Path, config: &Path, args: &[&str]) -> Output {
    spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_spacktainerizer"))
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
fn the_real_base_images_do_their_jobs() {
    let Some(tools) = shared_tools() else {
        return not_run(
            "the_real_base_images_do_their_jobs",
            "no ../shared/tools with Spack",
        );
    };
    let archive = tools.join(format!("spack/spack-{V0_23}.tar.xz"));
    let dir = tempfile::tempdir().unwrap();
    let namespace = unique_name("base");
    let config = config(dir.path(), &namespace, &archive);

    let mut built = Vec::new();
    for image in ["builder", "runtime", "tools"] {
        let out = spacktainerizer(
            dir.path(),
            &config,
            &["build", "--image", image, "--arch", "amd64", "--push"],
        );
        let target = succeeded(&out).trim().to_string();
        // One architecture: no per-architecture suffix.
        assert_eq!(target, format!("{}/{namespace}/{image}:latest", registry()));
        built.push(target);
    }
    let [builder, runtime, tools_image] = &built[..] else {
        unreachable!()
    };

    // The builder: Spack on PATH at the archive's version, the compiler the base requirement
    // names found in Spack's site scope, clingo to concretize with, the mirror, the tools.
    let out = docker_run(
        builder,
        "spack --version && spack compilers && gcc-12 --version && \
         $SPACK_PYTHON -c 'import clingo, boto3' && spack config get mirrors && \
         spack-cacher --help && spackitor --version && command -v patchelf",
    );
    assert!(out.contains(V0_23), "{out}");
    assert!(out.contains("gcc@12"), "{out}");
    assert!(out.contains("file:///var/cache/spack-build-cache"), "{out}");
    assert!(out.contains("Usage: spack-cacher"), "{out}");
    // Concretizing needs clingo and the compiler together.
    let out = docker_run(builder, "spack spec zlib-ng 2>&1 | head -n 3");
    assert!(out.contains("zlib-ng") && out.contains("%gcc@12"), "{out}");

    // The runtime: the OS runtimes Spack-built software links against, and no compiler.
    let out = docker_run(
        runtime,
        "for l in libstdc++.so.6 libgomp.so.1 libgfortran.so.5; do \
             ls /usr/lib/*-linux-gnu/$l || exit 1; done; \
         if command -v gcc; then echo has-a-compiler; fi",
    );
    assert!(!out.contains("has-a-compiler"), "{out}");

    // The tools image: every tool and what the tools' jobs call.
    let out = docker_run(
        tools_image,
        "for t in spacktainerizer spack-cacher spackah singularitah spackitor; do \
             $t --help >/dev/null || exit 1; done; git --version && mksquashfs -version",
    );
    assert!(out.contains("git version"), "{out}");

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
