//! The base images' Dockerfiles checked for what breaks before a build: instructions, build
//! arguments declared before use, and no secret as a build argument.

use std::collections::BTreeSet;

use spacktainerizah_tests::repo_root;

const INSTRUCTIONS: &[&str] = &[
    "FROM",
    "ARG",
    "ENV",
    "RUN",
    "COPY",
    "ADD",
    "WORKDIR",
    "ENTRYPOINT",
    "CMD",
    "LABEL",
    "USER",
    "SHELL",
];

/// Logical lines: continuations joined, comments and blanks dropped.
fn lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => cur.push_str(part),
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

#[test]
fn dockerfiles_declare_what_they_use_and_take_no_secret_as_argument() {
    for folder in [
        "spacktainerizer/images/builder",
        "spacktainerizer/images/runtime",
        "spacktainerizer/images/tools",
    ] {
        let path = repo_root().join(folder).join("Dockerfile");
        let text = std::fs::read_to_string(&path).unwrap();
        // PATH comes with every base image.
        let mut declared: BTreeSet<String> = BTreeSet::from(["PATH".to_string()]);
        let mut saw_from = false;
        for line in lines(&text) {
            let (instr, rest) = line.split_once(' ').unwrap_or((&line, ""));
            assert!(
                INSTRUCTIONS.contains(&instr),
                "{}: unknown instruction `{instr}`",
                path.display()
            );
            saw_from |= instr == "FROM";
            // Variables used in FROM, COPY, RUN and ENV must be ARGs or ENVs (or the shell's).
            let mut rest_iter = rest;
            while let Some(i) = rest_iter.find("${") {
                let end = rest_iter[i..].find('}').unwrap();
                let name = rest_iter[i + 2..i + end]
                    .split(':')
                    .next()
                    .unwrap()
                    .to_string();
                assert!(
                    declared.contains(&name),
                    "{}: `{name}` is used before an ARG or ENV declares it",
                    path.display()
                );
                rest_iter = &rest_iter[i + end..];
            }
            match instr {
                "ARG" => {
                    let name = rest.split('=').next().unwrap().trim().to_string();
                    let upper = name.to_ascii_uppercase();
                    for word in ["SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY", "PRIVATE"] {
                        assert!(
                            !upper.contains(word),
                            "{}: `{name}` would put a secret in the image history",
                            path.display()
                        );
                    }
                    declared.insert(name);
                }
                "ENV" => {
                    for pair in rest.split_whitespace() {
                        declared.insert(pair.split('=').next().unwrap().to_string());
                    }
                }
                _ => {}
            }
        }
        assert!(saw_from, "{}: no FROM", path.display());
        // Credentials reach a build only as BuildKit secret mounts.
        for line in lines(&text).iter().filter(|l| l.contains("/run/secrets/")) {
            assert!(
                line.contains("--mount=type=secret"),
                "{}: {line}",
                path.display()
            );
        }
    }
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["plan", "--help"],
        vec!["build", "--help"],
        vec!["index", "--help"],
        vec!["pipeline", "--help"],
        vec!["--version"],
    ] {
        let out = spacktainerizah_tests::run_tool(env!("CARGO_BIN_EXE_spacktainerizer"), &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
