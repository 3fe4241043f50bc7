//! Stage 3: the library behind `spackah`, callable from tests.

pub mod build;
pub mod checksum;
pub mod cli;
pub mod dockerfile;
pub mod hub;
pub mod pipeline;
pub mod plan;
pub mod publish;

use anyhow::Context;
use common::cli::exit;
use common::printer::{Printer, table};

/// One line of the plan table: what needs doing (`build`, `sif`, `hub`, or `skip`) and why.
fn plan_row(d: &plan::Decision) -> Vec<String> {
    let mut actions = Vec::new();
    let mut why = vec![d.reason.clone()];
    if d.build {
        actions.push(if d.kind == "spack" { "build" } else { "sif" });
    }
    if let Some(s) = d.sif.as_ref().filter(|_| d.kind == "spack") {
        if s.build {
            actions.push("sif");
        }
        why.push(s.reason.clone());
    }
    if let Some(h) = &d.hub {
        if h.push {
            actions.push("hub");
        }
        why.push(h.reason.clone());
    }
    vec![
        d.container.clone(),
        d.arch.clone(),
        if actions.is_empty() {
            "skip".into()
        } else {
            actions.join("+")
        },
        d.target.clone(),
        why.join("; "),
    ]
}

/// Run a parsed command; returns the process exit code.
pub fn run(printer: &Printer, cmd: cli::Run) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new()?;
    match cmd {
        cli::Run::Plan(opts) => {
            let decisions = rt.block_on(plan::plan(&opts))?;
            if printer.is_json() {
                printer.json(&decisions)?;
            } else {
                let rows: Vec<Vec<String>> = decisions.iter().map(plan_row).collect();
                printer.data(&table(
                    &["CONTAINER", "ARCH", "ACTION", "TARGET", "WHY"],
                    &rows,
                    &[],
                ))?;
            }
            // The plan is a check: work to do is exit 1.
            Ok(if decisions.iter().any(plan::Decision::needs_work) {
                exit::FOUND
            } else {
                exit::SUCCESS
            })
        }
        cli::Run::Publish(opts) => {
            let what = rt.block_on(publish::publish(&opts))?;
            printer.data(&format!("{what}\n"))?;
            Ok(exit::SUCCESS)
        }
        cli::Run::Pipeline(opts, file) => {
            let decisions = rt.block_on(plan::plan(&opts.plan))?;
            let p = pipeline::pipeline(&opts, &decisions);
            p.check()?;
            std::fs::write(&file, p.to_yaml())
                .with_context(|| format!("writing {}", file.display()))?;
            Ok(exit::SUCCESS)
        }
        cli::Run::Build(opts) => {
            let image = rt.block_on(build::build(&opts))?;
            printer.data(&format!("{image}\n"))?;
            Ok(exit::SUCCESS)
        }
    }
}
