//! The library behind `singularitah`: its image (stage 1) and SIF work.

pub mod cli;
pub mod sif_build;

use common::cli::exit;
use common::printer::Printer;

/// Run a parsed command; returns the process exit code.
pub fn run(printer: &Printer, run: cli::Run) -> anyhow::Result<u8> {
    match run {
        cli::Run::Image(run) => spacktainerizer::run(printer, *run),
        cli::Run::SifBuild(opts) => {
            let rt = tokio::runtime::Runtime::new()?;
            let digest = rt.block_on(sif_build::build(&opts))?;
            printer.log(format!(
                "{} from {} {digest}",
                opts.output.display(),
                opts.image
            ));
            printer.data(&format!("{}\n", opts.output.display()))?;
            Ok(exit::SUCCESS)
        }
    }
}
