//! Every dependency a manifest declares is used by the crate that declares it, and every
//! workspace dependency by some member: what is declared but unused costs build time and
//! review, and this catches the next one.

use std::collections::BTreeSet;
use std::path::Path;

use spacktainerizah_tests::repo_root;

/// The dependency names of `section` in a manifest's text (`name = …`, `name.workspace = …`).
fn declared(manifest: &str, section: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

/// Every `.rs` file's text under `dirs` of `krate`.
fn sources(krate: &Path, dirs: &[&str]) -> String {
    let mut text = String::new();
    for dir in dirs {
        let dir = krate.join(dir);
        if !dir.exists() {
            continue;
        }
        for file in spacktainerizah_tests::walk(&dir) {
            if file.extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(&file).unwrap());
                text.push('\n');
            }
        }
    }
    text
}

/// Whether `text` uses the crate `name` (as a path, a macro, or an import).
fn uses(text: &str, name: &str) -> bool {
    let ident = name.replace('-', "_");
    [
        format!("{ident}::"),
        format!("use {ident}"),
        format!("{ident}!"),
        format!("extern crate {ident}"),
    ]
    .iter()
    .any(|p| {
        text.match_indices(p.as_str()).any(|(i, _)| {
            // Not the tail of a longer name (`serde_json::` is not `json::`).
            i == 0 || !text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

#[test]
fn no_dependency_is_declared_and_unused() {
    let root = repo_root();
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut unused = Vec::new();
    let mut used_by_members = BTreeSet::new();
    for member in members() {
        let dir = root.join(&member);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        for (section, dirs) in [
            ("dependencies", &["src", "tests", "benches"][..]),
            ("dev-dependencies", &["src", "tests", "benches"][..]),
            ("build-dependencies", &["build.rs"][..]),
        ] {
            let text = sources(&dir, dirs);
            for name in declared(&manifest, section) {
                used_by_members.insert(name.clone());
                if !uses(&text, &name) {
                    unused.push(format!("{member}: [{section}] {name}"));
                }
            }
        }
    }
    for name in declared(&workspace, "workspace.dependencies") {
        if !used_by_members.contains(&name) {
            unused.push(format!("Cargo.toml: [workspace.dependencies] {name}"));
        }
    }
    assert!(
        unused.is_empty(),
        "declared but unused:\n{}",
        unused.join("\n")
    );
}

/// The workspace members, from the root manifest's `members` list.
fn members() -> Vec<String> {
    let workspace = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let start = workspace.find("members = [").expect("a members list");
    let end = start + workspace[start..].find(']').unwrap();
    workspace[start..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_check_sees_a_use() {
    assert!(uses("use serde_json::Value;", "serde_json"));
    assert!(uses(
        "let x = spacktainerizah_tests::registry();",
        "spacktainerizah-tests"
    ));
    assert!(uses("tokio::spawn(x)", "tokio"));
    assert!(!uses("serde_json::to_string(&x)", "json"));
    assert!(!uses("let bytes = 3;", "bytes"));
}

/// The crates (names) `package` links in its normal build, as `cargo tree` resolves them.
fn linked(package: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(repo_root())
        .args([
            "tree",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--package",
            package,
        ])
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Crates that open connections, run an async runtime or draw a terminal: the adapters'. A name
/// ending in `-` stands for every crate it begins (`aws-` is the whole SDK: smithy, types, …).
const SERVICE_CRATES: &[&str] = &[
    "tokio",
    "futures",
    "aws-",
    "bollard",
    "reqwest",
    "hyper",
    "clap",
    "indicatif",
];

/// The crates of `linked` that `SERVICE_CRATES` names.
fn service_crates(linked: &BTreeSet<String>) -> Vec<&String> {
    linked
        .iter()
        .filter(|c| {
            SERVICE_CRATES.iter().any(|s| match s.strip_suffix('-') {
                Some(prefix) => c.starts_with(&format!("{prefix}-")),
                None => c == s || c.starts_with(&format!("{s}-")),
            })
        })
        .collect()
}

#[test]
fn the_model_links_no_service_client_runtime_or_terminal() {
    let model = linked("spacktainerizah-model");
    assert!(model.contains("serde"), "cargo tree listed {model:?}");
    let found = service_crates(&model);
    assert!(found.is_empty(), "the model links {found:?}");
    // The check sees what it looks for, under every name it stands for.
    let adapters = linked("spacktainerizah-stores");
    let seen = service_crates(&adapters);
    for c in [
        "tokio",
        "futures",
        "aws-sdk-s3",
        "aws-smithy-runtime",
        "hyper",
    ] {
        assert!(seen.iter().any(|s| *s == c), "{c} not seen in {seen:?}");
    }
}

#[test]
fn tools_link_only_the_services_they_use() {
    // Writing pipelines and running Spack needs no registry or Docker client.
    let cacher = linked("spack-cacher");
    for docker in ["bollard", "reqwest"] {
        assert!(!cacher.contains(docker), "spack-cacher links {docker}");
    }
    // The janitor and the SIF writer read registries and stores, they build no image.
    for tool in ["spackitor", "singularitah"] {
        assert!(!linked(tool).contains("bollard"), "{tool} links bollard");
    }
}
