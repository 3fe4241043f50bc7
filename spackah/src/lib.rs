//! Stage 3: the library behind `spackah`, callable from tests.

pub mod build;
pub mod checksum;
pub mod cli;
pub mod dockerfile;
pub mod pipeline;
pub mod plan;
pub mod publish;

use anyhow::Context;
use common::cli::exit;
use common::printer::{Printer, table};

/// Run a parsed command; returns the process exit code.
pub fn run(printer: &Printer, cmd: cli::Run) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Runtime::new()?;
    match cmd {
        cli::Run::Plan(opts) => {
            let decisions = rt.block_on(plan::plan(&opts))?;
            if printer.is_json() {
                printer.json(&decisions)?;
            } else {
                let rows: Vec<Vec<String>> = decisions
                    .iter()
                    .map(|d| {
                        vec![
                            d.container.clone(),
                            d.arch.clone(),
                            (if d.build { "build" } else { "skip" }).into(),
                            d.target.clone(),
                            d.reason.clone(),
                        ]
                    })
                    .collect();
                printer.data(&table(
                    &["CONTAINER", "ARCH", "ACTION", "TARGET", "WHY"],
                    &rows,
                    &[],
                ))?;
            }
            // The plan is a check: work to do is exit 1.
            Ok(if decisions.iter().any(|d| d.build) {
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
            let (p, def_pending) = pipeline::pipeline(&opts, &decisions);
            p.check()?;
            std::fs::write(&file, p.to_yaml())
                .with_context(|| format!("writing {}", file.display()))?;
            for c in def_pending {
                printer.log(format!(
                    "warning: {c}: a `.def` container needs its SIF built, which this pipeline does not do yet"
                ));
            }
            Ok(exit::SUCCESS)
        }
        cli::Run::Build(opts) => {
            let image = rt.block_on(build::build(&opts))?;
            printer.data(&format!("{image}\n"))?;
            Ok(exit::SUCCESS)
        }
    }
}
