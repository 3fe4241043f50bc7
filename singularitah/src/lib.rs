//! The library behind `singularitah`: SIF files — built natively from registry images or `.def`
//! files, published to buckets with their checksums, synced to shared directories, pruned.

pub mod cli;
pub mod sif_build;
pub mod sif_prune;
pub mod sif_publish;
pub mod sif_sync;
pub mod skeleton;

use std::process::ExitCode;

use terminal::cli::{OutputOptions, exit};
use terminal::printer::Printer;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Runtime::new()?)
}

/// Run `command`, printing through a printer made from `output`; the process exit code.
pub fn main(output: &OutputOptions, command: cli::Run) -> ExitCode {
    let printer = Printer::new(output);
    terminal::cli::finish(&printer, run(&printer, command))
}

/// Run a command; returns the process exit code.
pub fn run(printer: &Printer, run: cli::Run) -> anyhow::Result<u8> {
    match run {
        cli::Run::SifBuild(opts) => {
            let digest = runtime()?.block_on(sif_build::build(&opts, printer))?;
            printer.log(format!("{} from {digest}", opts.output.display()));
            printer.data(&format!("{}\n", opts.output.display()))?;
            Ok(exit::SUCCESS)
        }
        cli::Run::SifPublish(opts) => {
            let r = runtime()?.block_on(sif_publish::publish(&opts, printer))?;
            let verb = match (r.uploaded, opts.dry_run) {
                (true, false) => "uploaded",
                (true, true) => "would upload",
                (false, _) => "up to date:",
            };
            let mut text = format!("{verb} {}\n", r.location);
            for k in &r.removed {
                let verb = if opts.dry_run {
                    "would remove"
                } else {
                    "removed"
                };
                text.push_str(&format!(
                    "{verb} {k} (older than {} days)\n",
                    opts.keep_days
                ));
            }
            printer.emit(&r, &text)?;
            Ok(exit::SUCCESS)
        }
        cli::Run::SifSync(opts) => {
            let r = runtime()?.block_on(sif_sync::sync(&opts, printer))?;
            let verb = if opts.dry_run { "would " } else { "" };
            let mut text = String::new();
            for k in &r.copied {
                text.push_str(&format!("{verb}copy {k}\n"));
            }
            for k in &r.removed {
                text.push_str(&format!("{verb}remove {k}\n"));
            }
            let (copied, removed) = match opts.dry_run {
                true => ("to copy", "to remove"),
                false => ("copied", "removed"),
            };
            text.push_str(&format!(
                "{} {copied}, {} up to date, {} {removed}\n",
                r.copied.len(),
                r.up_to_date.len(),
                r.removed.len()
            ));
            printer.emit(&r, &text)?;
            Ok(exit::SUCCESS)
        }
        cli::Run::SifPrune(opts) => {
            let r = runtime()?.block_on(sif_prune::prune(&opts))?;
            let verb = if opts.dry_run {
                "would remove"
            } else {
                "removed"
            };
            let mut text: String = r.removed.iter().map(|k| format!("{verb} {k}\n")).collect();
            for k in &r.unattributed {
                text.push_str(&format!("kept {k}: it records no branch\n"));
            }
            text.push_str(&format!(
                "{} {}, {} kept ({} branches and tags alive)\n",
                r.removed.len(),
                if opts.dry_run { "to remove" } else { "removed" },
                r.kept + r.unattributed.len(),
                r.alive
            ));
            printer.emit(&r, &text)?;
            Ok(exit::SUCCESS)
        }
    }
}
