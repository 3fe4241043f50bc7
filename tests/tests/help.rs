//! `--help` of every command of every tool, snapshot-tested with insta (`snapshots/help__*.snap`
//! beside this file; `INSTA_UPDATE=always` rewrites them after a deliberate change: review the
//! diff), and every argument explained.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn tools() -> Vec<clap::Command> {
    vec![
        spacktainerizer::cli::Cli::command(),
        spack_cacher::cli::Cli::command(),
        spackah::cli::Cli::command(),
        singularitah::cli::Cli::command(),
        spackitor::cli::Cli::command(),
    ]
}

/// Every command with its path of names (`spackitor clean`), subcommands included.
fn commands(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    let mut path = path;
    path.push(cmd.get_name().to_string());
    // The values variables have where the tests run are not part of the help.
    let cmd = cmd.clone().mut_args(|a| a.hide_env_values(true));
    out.push((path.clone(), cmd.clone()));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        commands(sub, path.clone(), out);
    }
}

fn all() -> Vec<(Vec<String>, clap::Command)> {
    let mut out = Vec::new();
    for t in tools() {
        let mut t = t.term_width(100);
        t.build();
        commands(&t, Vec::new(), &mut out);
    }
    out
}

fn snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

#[test]
fn help_of_every_command_matches_its_snapshot() {
    let mut names = Vec::new();
    for (path, mut cmd) in all() {
        let help = cmd.render_long_help().to_string();
        let name = path.join("-");
        let command = format!("{} --help", path.join(" "));
        insta::with_settings!({ description => command, omit_expression => true }, {
            insta::assert_snapshot!(name.as_str(), help);
        });
        names.push(name);
    }
    spacktainerizah_tests::snapshots::assert_all_referenced(&snapshots(), "help", &names);
}

#[test]
fn every_argument_says_what_it_is_for() {
    let mut missing = Vec::new();
    for (path, cmd) in all() {
        for arg in cmd.get_arguments() {
            if matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{} {}", path.join(" "), arg.get_id()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} arguments without help:\n{}",
        missing.len(),
        missing.join("\n")
    );
}
