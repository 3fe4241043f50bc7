//! The environment variables the tools read, named once so `--help` and the docs agree.

/// S3-compatible endpoint URL, used when `--s3-endpoint-url` is not given.
pub const S3_ENDPOINT_URL: &str = "S3_ENDPOINT_URL";
/// Build cache URL (`s3://bucket[/prefix]`, `file:///dir` or a directory).
pub const CACHE: &str = "SPACKTAINERIZAH_CACHE";
/// Name of the variable holding the S3 access key id for the cache.
pub const ACCESS_KEY_ENV: &str = "SPACKTAINERIZAH_ACCESS_KEY_ENV";
/// Name of the variable holding the S3 secret access key for the cache.
pub const SECRET_KEY_ENV: &str = "SPACKTAINERIZAH_SECRET_KEY_ENV";
/// Output format: `text` or `json`.
pub const OUTPUT: &str = "SPACKTAINERIZAH_OUTPUT";
/// Path of the configuration file.
pub const CONFIG: &str = "SPACKTAINERIZAH_CONFIG";
/// S3 region; most S3-compatible servers ignore it but the SDK needs one.
pub const S3_REGION: &str = "S3_REGION";
