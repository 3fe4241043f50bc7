//! The generated Dockerfiles of the example definitions, snapshot-tested with insta
//! (`snapshots/dockerfile__*.snap`; `INSTA_UPDATE=always` rewrites them after a deliberate
//! change: review the diff); the build cache's key pair reaches no layer, argument or variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use model::config::Config;
use model::definitions::{self, Kind};
use model::spack::environment::Environment;
use spackah::context::Layout;
use spackah::dockerfile;
use spacktainerizah_tests::repo_root;

fn snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// What in `dockerfile` would leave the key pair where an image or its history keeps it, for
/// the key pair's `variables` (Spack's `AWS_*` and the configuration's names): an `ARG` or
/// `ENV` naming one, a `$NAME` of one (expanded from the build's environment into the
/// instruction), or one set to anything but the file of a secret mounted for that `RUN`.
fn key_pair_leaks(dockerfile: &str, variables: &[&str]) -> Vec<String> {
    let mut leaks = Vec::new();
    let joined = dockerfile.replace("\\\n", " ");
    for line in joined.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let keyword = line.split_whitespace().next().unwrap_or("").to_uppercase();
        let mounted = |id: &str| {
            line.split_whitespace()
                .filter_map(|word| word.strip_prefix("--mount="))
                .any(|mount| {
                    let fields: Vec<&str> = mount.split(',').collect();
                    fields.contains(&"type=secret") && fields.contains(&format!("id={id}").as_str())
                })
        };
        for var in variables {
            let named = line
                .split(|c: char| c.is_whitespace() || c == '=')
                .skip(1)
                .any(|word| word == *var);
            if matches!(keyword.as_str(), "ARG" | "ENV") && named {
                leaks.push(format!("{keyword} of {var}: {line}"));
            }
            if line.contains(&format!("${var}")) || line.contains(&format!("${{{var}")) {
                leaks.push(format!("${var} expanded: {line}"));
            }
            for (at, set) in line.match_indices(&format!("{var}=")) {
                if line[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let value = &line[at + set.len()..];
                let secret = value
                    .strip_prefix("\"$(cat /run/secrets/")
                    .and_then(|v| v.split_once(")\""))
                    .map(|(id, _)| id);
                match secret {
                    Some(id) if mounted(id) => {}
                    _ => leaks.push(format!("{var} set to a value: {line}")),
                }
            }
        }
    }
    leaks
}

#[test]
fn the_leak_check_finds_each_way_a_key_could_reach_the_image() {
    let vars = ["AWS_SECRET_ACCESS_KEY", "BUILD_CACHE_SECRET_ACCESS_KEY"];
    for leaky in [
        "ARG BUILD_CACHE_SECRET_ACCESS_KEY\n",
        "ENV AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI\n",
        "RUN AWS_SECRET_ACCESS_KEY=$BUILD_CACHE_SECRET_ACCESS_KEY spack install\n",
        "RUN export AWS_SECRET_ACCESS_KEY=\"${BUILD_CACHE_SECRET_ACCESS_KEY}\" \\\n    && spack install\n",
        "RUN --mount=type=secret,id=k export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI && spack install\n",
        // Read from a secret file no mount of this RUN provides.
        "RUN export AWS_SECRET_ACCESS_KEY=\"$(cat /run/secrets/k)\" && spack install\n",
    ] {
        assert!(
            !key_pair_leaks(leaky, &vars).is_empty(),
            "not caught: {leaky}"
        );
    }
    // What the generator writes: the key read from the secret mounted for that RUN only.
    let clean = "RUN --mount=type=secret,id=k,required=true \\\n    export AWS_SECRET_ACCESS_KEY=\"$(cat /run/secrets/k)\" \\\n    && spack install\n";
    assert_eq!(key_pair_leaks(clean, &vars), Vec::<String>::new());
}

#[test]
fn dockerfiles_match_their_snapshots() {
    let repo = repo_root().join("examples");
    let config = Config::read(&repo_root().join("examples/spacktainerizah.yaml")).unwrap();
    let template = Environment::read(&repo.join("spack.yaml")).unwrap();
    let defs = definitions::discover(&repo).unwrap();
    let keys = config.architectures["amd64"]
        .build_cache
        .credentials
        .as_ref()
        .expect("the example build cache has a key pair");
    let variables = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        &keys.user_env,
        &keys.secret_env,
    ];
    let mut rendered = BTreeMap::new();
    for def in defs.containers.iter().filter(|d| d.arch == "amd64") {
        let Kind::Spack { environment, .. } = &def.kind else {
            continue;
        };
        let env = Environment::merged(&template, environment).unwrap();
        let text = dockerfile::render(
            def,
            &env,
            &format!("{}/builder:latest", config.registry.url),
            &format!("{}/runtime:latest", config.registry.url),
            // The example environments have package repositories and an S3 cache with a key pair.
            Layout {
                repos: true,
                local_cache: false,
                secrets: true,
            },
        )
        .unwrap();
        let description = format!("Dockerfile of {} ({})", def.name, def.arch);
        insta::with_settings!({ description => description, omit_expression => true }, {
            insta::assert_snapshot!(def.name.as_str(), text);
        });
        assert!(
            text.contains(&format!(
                "--mount=type=secret,id={},",
                dockerfile::SECRET_KEY
            )),
            "{}: the key pair comes in as BuildKit secrets",
            def.name
        );
        let leaks = key_pair_leaks(&text, &variables);
        assert!(leaks.is_empty(), "{}: {leaks:#?}", def.name);
        rendered.insert(def.name.clone(), text);
    }
    let names: Vec<String> = rendered.keys().cloned().collect();
    assert_eq!(names.len(), 4, "{names:?}");
    spacktainerizah_tests::snapshots::assert_all_referenced(&snapshots(), "dockerfile", &names);
    let neo = &rendered["neurodamus-neocortex"];
    assert!(neo.contains("COPY files/0/run-simulation.sh /opt/run-simulation.sh"));
    assert!(
        neo.trim_end().ends_with("rm -rf /var/lib/apt/lists/*"),
        "the epilogue comes last"
    );
    assert!(neo.contains("COPY --from=builder /opt/spack-software/with-a-long-padded-path/so-relocation-always-fits"), "the environment's install tree");
    // A failed install fails the build: nothing after it may swallow its exit status.
    let install = neo
        .lines()
        .skip_while(|l| !l.starts_with("RUN --mount"))
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !install.contains("; true") && !install.contains("|| true"),
        "{install}"
    );
}

#[test]
fn the_entrypoint_keeps_singularity_host_libraries() {
    assert!(dockerfile::ENTRYPOINT.contains("/.singularity.d/libs"));
    assert!(
        dockerfile::ENTRYPOINT.contains("${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}"),
        "appends, never replaces"
    );
}
