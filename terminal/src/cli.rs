//! Command-line pieces shared by all five tools: the cache and S3 flags, the output format,
//! verbosity, and the exit codes.

use clap::Args;

use model::env_names;
use model::store_url::{S3Options, StoreUrl};

// The tools name the output options where they name the flags that set them.
pub use crate::output::{OutputFormat, OutputOptions};

/// Exit codes shared by every tool (`EXIT_CODES_HELP` says the same to users).
pub mod exit {
    /// Success: nothing to report.
    pub const SUCCESS: u8 = 0;
    /// A check found work to do or a problem in the data.
    pub const FOUND: u8 = 1;
    /// Usage or infrastructure error: bad arguments (nothing is changed), or a failure met
    /// while working (unreachable service, unreadable input, failed build, upload or delete),
    /// which may leave the work partly done.
    pub const ERROR: u8 = 2;
}

/// End a tool's run: the exit code of `result`, or its error printed by `printer` (JSON with
/// `--output json`) and exit code 2.
pub fn finish<E>(printer: &crate::printer::Printer, result: Result<u8, E>) -> std::process::ExitCode
where
    E: AsRef<dyn std::error::Error + 'static>,
{
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            printer.error(e.as_ref());
            std::process::ExitCode::from(exit::ERROR)
        }
    }
}

/// Appended to every tool's `--help`. Exit 2 is not "nothing changed": a tool that fails half
/// way (a push, a delete) has done the first half, and a script must rerun rather than assume.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 success; 1 a check found work to do or a problem in the data; \
2 usage or infrastructure error: bad arguments change nothing, but a failure met while working \
(an unreachable service, unreadable input, a failed build, upload or delete) may leave the work \
partly done; stderr says what failed: fix the cause and run the same command again.";

/// A yes/no value as people write it in variables: `1`, `yes`, `true`, `on` (and `0`, `no`,
/// `false`, `off`), any case; anything else is a usage error naming the variable.
pub fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// How to reach S3-compatible storage. Credentials come from the standard AWS chain, or from
/// the two variables named here (the flags take names, never values).
#[derive(Debug, Clone, Default, Args)]
pub struct S3Args {
    /// S3-compatible endpoint URL (path-style addressing is used). Without it,
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` as the AWS CLI reads them, else AWS.
    #[arg(long, env = env_names::S3_ENDPOINT_URL, value_name = "URL", global = true)]
    pub s3_endpoint_url: Option<String>,
    /// S3 region; most S3-compatible servers accept any. Without it, `AWS_REGION` or the
    /// profile's (`AWS_PROFILE`, `~/.aws/config`), else us-east-1.
    #[arg(long, env = env_names::S3_REGION, value_name = "REGION", global = true)]
    pub s3_region: Option<String>,
    /// Name of the environment variable holding the access key id (Spack's
    /// `--s3-access-key-id-variable`). Without both names: the AWS chain (`AWS_ACCESS_KEY_ID`,
    /// `AWS_PROFILE` and `~/.aws/credentials`, web identity, instance roles).
    #[arg(
        long,
        env = env_names::ACCESS_KEY_ENV,
        value_name = "VAR",
        global = true,
        alias = "s3-access-key-id-variable"
    )]
    pub access_key_env: Option<String>,
    /// Name of the environment variable holding the secret access key (Spack's
    /// `--s3-access-key-secret-variable`).
    #[arg(
        long,
        env = env_names::SECRET_KEY_ENV,
        value_name = "VAR",
        global = true,
        alias = "s3-access-key-secret-variable"
    )]
    pub secret_key_env: Option<String>,
}

impl S3Args {
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint_url: self.s3_endpoint_url.clone(),
            region: self.s3_region.clone(),
            access_key_env: self.access_key_env.clone(),
            secret_key_env: self.secret_key_env.clone(),
        }
    }
}

/// The build cache to work on.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Build cache: `s3://bucket[/prefix]`, `file:///dir` or a directory.
    #[arg(long, env = env_names::CACHE, value_name = "URL", value_parser = parse_store_url)]
    pub cache: StoreUrl,
    #[command(flatten)]
    pub s3: S3Args,
}

/// The longest age any option accepts: a century, far beyond any cache's life, and small
/// enough that every age converts to a time without overflow.
pub const MAX_DAYS: f64 = 36_500.0;

/// A number of days (fractions allowed) from 0 to [`MAX_DAYS`]; anything else, `1e300`, `inf`
/// or `NaN` included, is a usage error that says what is accepted.
pub fn parse_days(s: &str) -> Result<f64, String> {
    let d: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of days"))?;
    if !(d.is_finite() && (0.0..=MAX_DAYS).contains(&d)) {
        return Err(format!(
            "`{s}` days is out of range: give 0 to {MAX_DAYS} days"
        ));
    }
    Ok(d)
}

/// `days` as a duration; callers give values checked by [`parse_days`] (out-of-range values
/// are clamped rather than panicking).
pub fn days(days: f64) -> std::time::Duration {
    let d = if days.is_finite() {
        days.clamp(0.0, MAX_DAYS)
    } else {
        MAX_DAYS
    };
    std::time::Duration::from_secs_f64(d * 86_400.0)
}

/// A store and how to reach it, as the libraries take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    pub url: StoreUrl,
    pub s3: S3Options,
}

impl CacheArgs {
    pub fn options(&self) -> CacheOptions {
        CacheOptions {
            url: self.cache.clone(),
            s3: self.s3.options(),
        }
    }
}

pub fn parse_store_url(s: &str) -> Result<StoreUrl, String> {
    s.parse()
        .map_err(|e: model::store_url::InvalidStoreUrl| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_checked() {
        assert_eq!(parse_days("30"), Ok(30.0));
        assert_eq!(parse_days("0.5"), Ok(0.5));
        for bad in ["1e300", "-1", "inf", "NaN", "36501", "x"] {
            let e = parse_days(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(days(1.0).as_secs(), 86_400);
        assert_eq!(days(1e300), days(MAX_DAYS));
    }
}

impl OutputArgs {
    pub fn options(&self) -> OutputOptions {
        OutputOptions {
            format: self.output,
            verbose: self.verbose,
            quiet: self.quiet,
        }
    }
}

/// Output format and verbosity. Data goes to stdout; logs and progress to stderr.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format of the data written to stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, env = env_names::OUTPUT, global = true)]
    pub output: OutputFormat,
    /// More log lines on stderr.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// No progress and no log lines on stderr, only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}
