//! Running the real `spack` executable: finding it, and running one command with its output
//! kept in a log whose last lines a failure quotes.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum SpackError {
    #[error(
        "`spack` was not found on PATH: run this in the builder image, source $SPACK_ROOT/share/spack/setup-env.sh, or pass --spack /path/to/spack/bin/spack"
    )]
    NotOnPath,
    #[error("spack executable {0} does not exist")]
    Missing(PathBuf),
    #[error("running {spack}: {source}")]
    Spawn {
        spack: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`spack {command}` failed ({status}); last lines of {log}:\n{tail}")]
    Failed {
        command: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
}

/// The `spack` to run: `given`, or the first on PATH.
pub fn find(given: Option<&Path>) -> Result<PathBuf, SpackError> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(SpackError::Missing(p.to_path_buf()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("spack"))
        .find(|p| p.is_file())
        .ok_or(SpackError::NotOnPath)
}

/// Run `spack ARGS`, appending the command line and its output to `log` and writing it to
/// `log_path` (so a failure can be read in full); a failure quotes the last 15 lines.
pub fn run(
    spack: &Path,
    args: &[String],
    log: &mut Vec<u8>,
    log_path: &Path,
) -> Result<(), SpackError> {
    let out = Command::new(spack)
        .args(args)
        .output()
        .map_err(|source| SpackError::Spawn {
            spack: spack.to_path_buf(),
            source,
        })?;
    log.extend_from_slice(format!("$ spack {}\n", args.join(" ")).as_bytes());
    log.extend_from_slice(&out.stdout);
    log.extend_from_slice(&out.stderr);
    std::fs::write(log_path, &*log).map_err(|source| SpackError::Log {
        path: log_path.to_path_buf(),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    // What names the command: the arguments after `-e ENV`.
    let shown = match args.first().map(String::as_str) {
        Some("-e") => args.get(2..).unwrap_or_default(),
        _ => args,
    };
    Err(SpackError::Failed {
        command: shown.join(" "),
        status: out.status.to_string(),
        log: log_path.to_path_buf(),
        tail: lines[lines.len().saturating_sub(15)..].join("\n"),
    })
}
