//! The shell scripts of `scripts/` and `.ci/`: shellcheck finds nothing in them.

use std::path::{Path, PathBuf};
use std::process::Command;

use spacktainerizah_tests::repo_root;

/// The shell scripts in `dir`: `*.sh`, and files whose first line runs a shell.
fn shell_scripts(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let first_line = std::fs::read_to_string(&path)
            .map(|text| text.lines().next().unwrap_or_default().to_string())
            .unwrap_or_default();
        let shebang_shell = first_line.starts_with("#!")
            && ["/sh", "bash"].iter().any(|s| first_line.contains(s));
        if path.extension().is_some_and(|e| e == "sh") || shebang_shell {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
#[ignore = "NOT RUN: needs shellcheck (./scripts/test.sh installs it)"]
fn shellcheck_finds_nothing_in_the_scripts() {
    let root = repo_root();
    let mut scripts = shell_scripts(&root.join("scripts"));
    scripts.extend(shell_scripts(&root.join(".ci")));
    for sourced in ["scripts/services.sh", "scripts/test.sh", ".ci/run"] {
        assert!(scripts.contains(&root.join(sourced)), "{sourced} not found among {scripts:?}");
    }
    // From the root, where the scripts' `# shellcheck source=scripts/…` directives point.
    let out = Command::new("shellcheck")
        .args(["--external-sources", "--format=gcc"])
        .args(scripts.iter().map(|p| p.strip_prefix(&root).unwrap()))
        .current_dir(&root)
        .output()
        .expect("running shellcheck (./scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "shellcheck found:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
