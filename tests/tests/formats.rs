//! Spack formats and container definitions read from the real fixtures.

use std::collections::BTreeSet;
use std::path::Path;

use model::config::Config;
use model::definitions::{self, Kind};
use model::spack::buildcache::v3::{self, Manifest};
use model::spack::buildcache::{Layout, SpecFile, index, v2};
use model::spack::environment::Environment;
use model::spack::graph::{Edges, SpecGraph};
use model::spack::lockfile::Lockfile;
use model::spack::spec::DepTypes;
use sha2::{Digest, Sha256};
use spacktainerizah_tests::{fixtures, open_store, repo_root};
use stores::Store;
use stores::cache::catalog::Catalog;
use stores::cache::{hash_file_matches, load_index};

async fn dir_store(path: &Path) -> Store {
    open_store(&path.display().to_string()).await
}

mod lockfiles {
    use super::*;

    #[test]
    fn v6_lockfile_roots_specs_and_main_package() {
        let path = fixtures().join("spack/lockfiles/spack__all-pythons__spack.lock");
        let lock = Lockfile::read(&path).unwrap();
        assert_eq!(lock.version, 6);
        assert_eq!(lock.specs.len(), 38);
        assert_eq!(
            lock.sha256,
            hex::encode(Sha256::digest(std::fs::read(&path).unwrap()))
        );
        // The first root of that name wins: the definition's first spec names the package.
        let main = lock
            .main_package("python@3.13 +optimizations %gcc")
            .unwrap();
        assert_eq!((&*main.name, &*main.version), ("python", "3.13.5"));
        let err = lock
            .main_package("neurodamus-neocortex")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("neurodamus-neocortex") && err.contains("all-pythons"),
            "{err}"
        );
        // v5 spec nodes carry typed edges with virtuals.
        let gcc_edges = main
            .dependencies
            .iter()
            .filter(|e| e.params.virtuals.iter().any(|v| &**v == "c"))
            .count();
        assert_eq!(gcc_edges, 1);
    }

    #[test]
    fn v4_lockfile_old_edges_and_link_run_closure() {
        let lock =
            Lockfile::read(&fixtures().join("spack/lockfiles/spack__spack__legacy_env__v4.lock"))
                .unwrap();
        assert_eq!(lock.version, 4);
        assert_eq!(lock.roots.len(), 2);
        let edges = Edges::new(&lock.specs);
        let graph = SpecGraph::new(&lock.specs, &edges);
        let root = &lock.roots[0].hash;
        let names: BTreeSet<String> = graph
            .dependencies_closure([root.as_str()], DepTypes::LINK_RUN)
            .iter()
            .map(|h| lock.specs[h].name.to_string())
            .collect();
        let expected: BTreeSet<String> = [
            "dttop", "dtlink1", "dtlink3", "dtlink4", "dtrun1", "dtlink5", "dtrun3",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            names, expected,
            "build-only edges (dtbuild*) and what only they reach stay out"
        );
        let all = graph.dependencies_closure([root.as_str()], DepTypes::ALL);
        assert_eq!(all.len(), 12);
        // Dependents through link/run of dtlink4 reach dttop via dtlink3 and dtlink1.
        let dtlink4 = lock.specs.values().find(|n| &*n.name == "dtlink4").unwrap();
        let up: BTreeSet<String> = graph
            .dependents_closure([&*dtlink4.hash], DepTypes::LINK_RUN)
            .iter()
            .map(|h| lock.specs[h].name.to_string())
            .collect();
        assert_eq!(
            up,
            ["dtlink4", "dtlink3", "dtlink1", "dttop"]
                .map(String::from)
                .into()
        );
    }

    #[test]
    fn malformed_lockfiles_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes =
            std::fs::read(fixtures().join("spack/lockfiles/spack__all-pythons__spack.lock"))
                .unwrap();
        let truncated = dir.path().join("spack.lock");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let err = Lockfile::read(&truncated).unwrap_err().to_string();
        assert!(err.contains(&truncated.display().to_string()), "{err}");
        let err = Lockfile::read(&dir.path().join("absent.lock"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.lock"), "{err}");
    }
}

mod layout_v2 {
    use super::*;

    async fn check(variant: &str, signed: bool) {
        let root = fixtures().join("spack/v2_layout").join(variant);
        let store = dir_store(&root).await;
        let idx = load_index(&store, Layout::V2).await.unwrap();
        assert_eq!(
            hash_file_matches(&store, &idx).await.unwrap(),
            Some(true),
            "Spack's own index.json.hash matches"
        );
        assert_eq!(idx.db.version, "8");
        let cached: Vec<_> = idx.db.cached().collect();
        assert_eq!(cached.len(), 6, "the external gcc has no objects");
        for entry in cached {
            let node = &entry.node;
            let compiler = idx.db.compiler_of(node);
            // The key names computed from the index are the ones Spack wrote.
            let spec_key = v2::spec_key(node, &compiler, signed);
            let tarball_key = v2::tarball_key(node, &compiler);
            assert!(root.join(&spec_key).is_file(), "{spec_key}");
            assert!(root.join(&tarball_key).is_file(), "{tarball_key}");
            assert_eq!(
                v2::classify(&spec_key),
                Some(v2::Object::SpecFile {
                    hash: node.hash.to_string(),
                    signed
                })
            );
            let spec =
                SpecFile::parse(&spec_key, &std::fs::read(root.join(&spec_key)).unwrap()).unwrap();
            assert_eq!(spec.root().hash, node.hash);
            assert_eq!(spec.root().name, node.name);
            assert!(spec.tarball_sha256.is_some());
        }
    }

    #[tokio::test]
    async fn unsigned_fixture() {
        check("unsigned", false).await;
    }

    #[tokio::test]
    async fn signed_fixture() {
        check("signed", true).await;
    }

    #[tokio::test]
    async fn index_rewrite_keeps_spacks_hash_rule() {
        let root = fixtures().join("spack/v2_layout/unsigned");
        let idx = load_index(&dir_store(&root).await, Layout::V2)
            .await
            .unwrap();
        let removed: std::collections::HashSet<String> =
            ["rqh2vuf6fqwkmipzgi2wjx352mq7y7ez".to_string()].into();
        let rewritten = idx.db.to_bytes_without(&removed);
        let hash_file = index::hash_file_content(&rewritten);
        assert!(index::hash_file_matches(&hash_file, &rewritten));
        let again = model::spack::buildcache::Database::parse("rewritten", rewritten).unwrap();
        assert_eq!(again.entries.len(), idx.db.entries.len() - 1);
        assert_eq!(
            idx.db
                .to_bytes_without(&std::collections::HashSet::<String>::new()),
            std::fs::read(root.join(v2::INDEX_KEY)).unwrap()
        );
    }
}

mod layout_v3 {
    use super::*;

    async fn check(variant: &str) {
        let root = fixtures().join("spack/v3_layout").join(variant);
        let store = dir_store(&root).await;
        let idx = load_index(&store, Layout::V3).await.unwrap();
        let cached: Vec<_> = idx.db.cached().collect();
        assert_eq!(cached.len(), 6);
        let mut referenced = BTreeSet::new();
        referenced.insert(idx.manifest.as_ref().unwrap().data[0].key());
        for entry in cached {
            let n = &entry.node;
            let key = v3::spec_manifest_key(&n.name, &n.version, &n.hash);
            let bytes = std::fs::read(root.join(&key)).unwrap_or_else(|e| panic!("{key}: {e}"));
            let manifest = Manifest::parse(&key, &bytes).unwrap();
            let spec_rec = manifest.find(v3::SPEC_MEDIA_PREFIX).unwrap();
            let tar_rec = manifest.find(v3::TARBALL_MEDIA_PREFIX).unwrap();
            for rec in [spec_rec, tar_rec] {
                let blob = std::fs::read(root.join(rec.key())).unwrap();
                assert_eq!(blob.len() as u64, rec.content_length, "{}", rec.key());
                assert_eq!(
                    hex::encode(Sha256::digest(&blob)),
                    rec.checksum,
                    "blob address is its checksum"
                );
                referenced.insert(rec.key());
            }
            let spec = SpecFile::parse(
                &spec_rec.key(),
                &std::fs::read(root.join(spec_rec.key())).unwrap(),
            )
            .unwrap();
            assert_eq!(spec.root().hash, n.hash);
        }
        // Every blob of the fixture is referenced by a spec or the index (keys: by their manifests).
        let blobs: BTreeSet<String> = spacktainerizah_tests::walk(&root.join("blobs"))
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        assert!(referenced.is_subset(&blobs));
    }

    #[tokio::test]
    async fn unsigned_fixture() {
        check("unsigned").await;
    }

    #[tokio::test]
    async fn signed_fixture_with_clearsigned_manifests() {
        let root = fixtures().join("spack/v3_layout/signed");
        let any_manifest = spacktainerizah_tests::walk(&root.join("v3/manifests/spec")).remove(0);
        assert!(model::spack::clearsign::is_clearsigned(
            &std::fs::read(&any_manifest).unwrap()
        ));
        check("signed").await;
    }

    #[tokio::test]
    async fn example_mirror_has_both_layouts() {
        let store = dir_store(&repo_root().join("examples/build-cache")).await;
        let cat = Catalog::load(&store, |_| {}).await.unwrap();
        assert_eq!(cat.layouts(), vec![Layout::V2, Layout::V3]);
        for idx in &cat.indexes {
            for e in idx.db.cached() {
                let expected = if idx.layout == Layout::V2 { 2 } else { 1 };
                assert_eq!(
                    cat.objects_of(idx.layout, &e.node.hash).len(),
                    expected,
                    "{} {}",
                    idx.layout,
                    e.node.name
                );
            }
        }
    }

    #[tokio::test]
    async fn missing_and_corrupt_indexes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        spacktainerizah_tests::copy_dir(&fixtures().join("spack/v3_layout/unsigned"), dir.path());
        std::fs::remove_file(dir.path().join(v3::INDEX_MANIFEST_KEY)).unwrap();
        let store = dir_store(dir.path()).await;
        let err = load_index(&store, Layout::V3)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("index.manifest.json") && err.contains("reindex"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        spacktainerizah_tests::copy_dir(&fixtures().join("spack/v2_layout/unsigned"), dir.path());
        std::fs::write(dir.path().join(v2::INDEX_KEY), b"{\"database\": [").unwrap();
        let err = load_index(&dir_store(dir.path()).await, Layout::V2)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("build_cache/index.json"), "{err}");
    }
}

mod container_definitions {
    use super::*;

    fn era(name: &str) -> std::path::PathBuf {
        fixtures().join("container_definitions").join(name)
    }

    #[test]
    fn gitlab_era_single_files_and_def() {
        let defs = definitions::discover(&era("gitlab-era")).unwrap();
        assert_eq!(defs.architectures, vec!["amd64"], "`_arm64` is disabled");
        let names: Vec<&str> = defs.containers.iter().map(|c| c.name.as_str()).collect();
        assert!(
            names.contains(&"neurodamus-hippocampus") && names.contains(&"nexus-storage"),
            "{names:?}"
        );
        assert_eq!(names.len(), 10);
        let nexus = defs
            .containers
            .iter()
            .find(|c| c.name == "nexus-storage")
            .unwrap();
        assert!(
            matches!(&nexus.kind, Kind::Singularity { from } if from == "bluebrain/nexus-storage:latest")
        );
        let hippo = defs
            .containers
            .iter()
            .find(|c| c.name == "neurodamus-hippocampus")
            .unwrap();
        assert_eq!(
            hippo.specs(),
            vec!["neurodamus-models+coreneuron+caliper model=hippocampus"]
        );
    }

    #[test]
    fn github_era_folders_with_epilogues() {
        let defs = definitions::discover(&era("github-era")).unwrap();
        let neocortex = defs
            .containers
            .iter()
            .find(|c| c.name == "neurodamus-neocortex")
            .unwrap();
        match &neocortex.kind {
            Kind::Spack {
                epilogue, files, ..
            } => {
                assert!(
                    epilogue
                        .as_ref()
                        .unwrap()
                        .ends_with("neurodamus-neocortex/Dockerfile.epilogue")
                );
                assert!(files.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let brayns = defs.containers.iter().find(|c| c.name == "brayns").unwrap();
        assert!(matches!(&brayns.kind, Kind::Spack { epilogue: None, .. }));
    }

    #[test]
    fn every_real_definition_merges_with_its_template() {
        let config = Config::read(&repo_root().join("examples/spacktainerizah.yaml")).unwrap();
        for era_name in ["gitlab-era", "github-era"] {
            let template = Environment::read(&era(era_name).join("spack.yaml")).unwrap();
            for def in definitions::discover(&era(era_name)).unwrap().containers {
                let Kind::Spack { environment, .. } = &def.kind else {
                    continue;
                };
                let mut env = Environment::merged(&template, environment)
                    .unwrap_or_else(|e| panic!("{}: {e}", def.path.display()));
                let arch = config.arch(&def.arch).unwrap();
                env.substitute_base_arch(&arch.base_requirement);
                let text = env.to_yaml();
                assert!(!text.contains("%BASE_ARCH%"), "{}", def.path.display());
                assert!(text.contains(&arch.base_requirement));
                assert_eq!(env.specs(), def.specs(), "the definition's specs, in order");
                // The template's CI section survives the merge.
                assert!(text.contains("pipeline-gen"));
            }
        }
    }

    /// Files of a repository, the file the error must name, and what it must say.
    type BadCase = (
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    );

    fn repo_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        dir
    }

    #[test]
    fn bad_definitions_name_the_file_and_the_problem() {
        let cases: &[BadCase] = &[
            (
                &[(
                    "container_definitions/amd64/empty.yaml",
                    "spack:\n  specs: []\n",
                )],
                "empty.yaml:2:3",
                "no spec",
            ),
            (
                &[(
                    "container_definitions/amd64/extra.yaml",
                    "spack:\n  specs: [a]\nsurprise: 1\n",
                )],
                "extra.yaml:3:1",
                "surprise",
            ),
            (
                &[(
                    "container_definitions/amd64/esc/spack.yaml",
                    "spack:\n  specs: [a]\nspacktainer:\n  files:\n    - ../../etc/passwd:/etc/passwd\n",
                )],
                "esc/spack.yaml:5:7",
                "leave the repository",
            ),
            (
                &[(
                    "container_definitions/amd64/two/spack.yaml",
                    "spack:\n  specs: [a]\nspacktainer:\n  files:\n    - a:b:c\n",
                )],
                "two/spack.yaml",
                "exactly one",
            ),
            (
                &[(
                    "container_definitions/amd64/Bad_Name.yaml",
                    "spack:\n  specs: [a]\n",
                )],
                "Bad_Name.yaml",
                "repository name",
            ),
            (
                &[(
                    "container_definitions/amd64/broken.yaml",
                    "spack:\n  specs: [a\n",
                )],
                "broken.yaml:3:1",
                "",
            ),
            (
                &[(
                    "container_definitions/amd64/x.def",
                    "Bootstrap: library\nFrom: x\n",
                )],
                "x.def",
                "Bootstrap",
            ),
            (
                &[
                    (
                        "container_definitions/amd64/dup.yaml",
                        "spack:\n  specs: [a]\n",
                    ),
                    (
                        "container_definitions/amd64/dup/spack.yaml",
                        "spack:\n  specs: [b]\n",
                    ),
                ],
                "dup",
                "also defined",
            ),
        ];
        for (files, file, why) in cases {
            let repo = repo_with(files);
            let err = definitions::discover(repo.path()).unwrap_err().to_string();
            assert!(
                err.contains(file) && err.contains(why),
                "expected `{file}` and `{why}` in: {err}"
            );
        }
    }

    #[test]
    fn file_copies_inside_the_repository_are_accepted() {
        let repo = repo_with(&[
            ("spacktainer/files/my-container/script.sh", "#!/bin/sh\n"),
            (
                "container_definitions/amd64/my-container/spack.yaml",
                "spack:\n  specs: [my-package]\nspacktainer:\n  files:\n    - spacktainer/files/my-container/script.sh:/opt/script.sh\n",
            ),
            (
                "container_definitions/amd64/my-container/Dockerfile.epilogue",
                "RUN true\n",
            ),
        ]);
        let defs = definitions::discover(repo.path()).unwrap();
        let Kind::Spack {
            files, epilogue, ..
        } = &defs.containers[0].kind
        else {
            panic!()
        };
        assert_eq!(files[0].target, "/opt/script.sh");
        assert!(epilogue.is_some());
    }
}

/// `verify --deep` streams objects in chunks: blobs of several chunks, one cut short of a
/// chunk boundary, are confirmed, and one changed byte in the middle is found.
#[test]
fn deep_verification_streams_blobs_larger_than_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let generated = std::process::Command::new(env!("CARGO_BIN_EXE_gen_cache"))
        .arg(dir.path())
        .args(["3", "v3"])
        .env("GEN_CACHE_TARBALL_KIB", "2600")
        .output()
        .unwrap();
    assert!(generated.status.success());
    let cache = dir.path().join("cache");
    let verify = || {
        spacktainerizah_tests::tool(
            spacktainerizah_tests::tools_dir()
                .join("spackitor")
                .to_str()
                .unwrap(),
        )
        .args(["verify", "--deep", "--output", "json", "--cache"])
        .arg(&cache)
        .output()
        .unwrap()
    };
    let out = verify();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let big = spacktainerizah_tests::walk(&cache.join("blobs"))
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 2 << 20)
        .expect("a blob of several chunks");
    let mut bytes = std::fs::read(&big).unwrap();
    bytes[1_500_000] ^= 1;
    std::fs::write(&big, bytes).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = big.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        found.to_string().contains(&name) && found.to_string().contains("expected"),
        "{found}"
    );
}
