//! Stage 1: the library behind `spacktainerizer`, callable from tests.

pub mod build;
pub mod cli;
pub mod images;
pub mod pipeline;
pub mod plan;

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
                            d.image.clone(),
                            d.arch.clone(),
                            if d.build {
                                "build".into()
                            } else {
                                "skip".into()
                            },
                            d.reason.clone(),
                        ]
                    })
                    .collect();
                printer.data(&table(&["IMAGE", "ARCH", "ACTION", "WHY"], &rows, &[]))?;
            }
            // The plan is a check: work to do is exit 1.
            Ok(if decisions.iter().any(|d| d.build) {
                exit::FOUND
            } else {
                exit::SUCCESS
            })
        }
        cli::Run::Build(opts) => {
            let target = rt.block_on(build::build(&opts))?;
            printer.data(&format!("{target}\n"))?;
            Ok(exit::SUCCESS)
        }
        cli::Run::Index(opts, image) => {
            let tag = rt.block_on(build::index(&opts, &image))?;
            printer.data(&format!("{tag}\n"))?;
            Ok(exit::SUCCESS)
        }
        cli::Run::Pipeline {
            plan: opts,
            file,
            dotenv,
            tools_image,
        } => {
            let decisions = rt.block_on(plan::plan(&opts))?;
            let (p, env) = pipeline::pipeline(&opts, &decisions, &tools_image);
            p.check()?;
            std::fs::write(&file, p.to_yaml())
                .with_context(|| format!("writing {}", file.display()))?;
            if let Some(d) = dotenv {
                std::fs::write(&d, env).with_context(|| format!("writing {}", d.display()))?;
            }
            Ok(exit::SUCCESS)
        }
    }
}
