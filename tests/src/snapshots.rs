//! Snapshot mechanics beside insta: snapshot files no assertion makes any more, and the
//! user-facing generated files (the example pipeline, the README's table) that tests compare
//! with what the tools write but never rewrite.

use std::path::Path;

/// The snapshots of the test file `test` in `dir` (insta's `<test>__<name>.snap`) whose name is
/// not in `names`: left behind by a command or definition that no longer exists.
pub fn unreferenced(dir: &Path, test: &str, names: &[String]) -> Vec<String> {
    let prefix = format!("{test}__");
    let mut stale: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|file| {
            file.strip_prefix(&prefix)
                .and_then(|f| f.strip_suffix(".snap"))
                .is_some_and(|name| !names.iter().any(|n| n == name))
        })
        .collect();
    stale.sort();
    stale
}

/// Fail naming the snapshot files of `test` in `dir` that none of `names` makes.
pub fn assert_all_referenced(dir: &Path, test: &str, names: &[String]) {
    let stale = unreferenced(dir, test, names);
    assert!(
        stale.is_empty(),
        "snapshots in {} that no assertion makes any more (delete them): {}",
        dir.display(),
        stale.join(", ")
    );
}

/// Fail unless the committed text of the user-facing `file` is what the tool `generated` now,
/// naming the first line that differs and the `regenerate` command. Never writes the file: it
/// is the user's, changed by running that command and committing the result.
pub fn assert_generated(file: &str, committed: &str, generated: &str, regenerate: &str) {
    if committed == generated {
        return;
    }
    let (c, g): (Vec<&str>, Vec<&str>) = (committed.lines().collect(), generated.lines().collect());
    let line = (0..c.len().max(g.len()))
        .find(|&i| c.get(i) != g.get(i))
        .unwrap_or(c.len());
    let show = |l: Option<&&str>| l.map_or("(end of text)".to_string(), |l| format!("`{l}`"));
    panic!(
        "{file} is not what the tool writes now: run {regenerate} and commit the result\n\
         first difference, line {}:\n  committed: {}\n  generated: {}",
        line + 1,
        show(c.get(line)),
        show(g.get(line)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_of_that_test_without_an_assertion_are_unreferenced() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "help__a.snap",
            "help__gone.snap",
            "other__x.snap",
            "help__a.snap.new",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        assert_eq!(
            unreferenced(dir.path(), "help", &["a".to_string()]),
            ["help__gone.snap"]
        );
    }

    #[test]
    fn a_generated_file_that_differs_names_the_line_and_the_command() {
        assert_generated("f", "a\nb\n", "a\nb\n", "`x`");
        let err = std::panic::catch_unwind(|| assert_generated("f", "a\nb\n", "a\nc\n", "`x`"))
            .unwrap_err();
        let text = err.downcast_ref::<String>().unwrap();
        assert!(
            text.contains("run `x`") && text.contains("line 2") && text.contains("`c`"),
            "{text}"
        );
        // A line missing at the end counts too.
        assert!(
            std::panic::catch_unwind(|| assert_generated("f", "a\n", "a\nb\n", "`x`")).is_err()
        );
    }
}
