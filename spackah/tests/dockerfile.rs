//! The generated Dockerfiles of the example definitions, snapshot-tested with insta
//! (`snapshots/dockerfile__*.snap`; `INSTA_UPDATE=always` rewrites them after a deliberate
//! change: review the diff); no secret in them.

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

#[test]
fn dockerfiles_match_their_snapshots() {
    let repo = repo_root().join("examples");
    let config = Config::read(&repo_root().join("examples/spacktainerizah.yaml")).unwrap();
    let template = Environment::read(&repo.join("spack.yaml")).unwrap();
    let defs = definitions::discover(&repo).unwrap();
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
            !text.contains("AWS_SECRET_ACCESS_KEY=$") || text.contains("/run/secrets/"),
            "the key pair comes only from secret mounts"
        );
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
