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
/// `spackitor clean`: maximum age in days.
pub const SPACKITOR_MAX_AGE: &str = "SPACKITOR_MAX_AGE";
/// `spackitor clean`: keep lockfiles, folders or store URLs, `,`-separated (URLs hold `:`).
pub const SPACKITOR_KEEP: &str = "SPACKITOR_KEEP";
/// `spackitor clean`: Spack repositories or checkouts, `:`-separated.
pub const SPACKITOR_SPACK_REPO: &str = "SPACKITOR_SPACK_REPO";
/// `spackitor clean`: also delete orphans (`true`/`false`).
pub const SPACKITOR_ORPHANS: &str = "SPACKITOR_ORPHANS";
/// Plan only, change nothing (`true`/`false`).
pub const DRY_RUN: &str = "SPACKTAINERIZAH_DRY_RUN";
/// Registries (`host[:port]`, comma-separated) spoken to over plain HTTP.
pub const INSECURE_REGISTRIES: &str = "SPACKTAINERIZAH_INSECURE_REGISTRIES";
/// `spackitor clean`: leave the index as it is (`true`/`false`).
pub const SPACKITOR_NO_REINDEX: &str = "SPACKITOR_NO_REINDEX";
/// `spackitor clean`: the git remote whose branches are alive (recorded keep lists of other
/// branches are dropped).
pub const SPACKITOR_BRANCHES_FROM: &str = "SPACKITOR_BRANCHES_FROM";
/// The project's default branch (GitLab's predefined variable).
pub const CI_DEFAULT_BRANCH: &str = "CI_DEFAULT_BRANCH";
/// GitLab's predefined variables the tools read.
pub const CI_COMMIT_REF_SLUG: &str = "CI_COMMIT_REF_SLUG";
pub const CI_PROJECT_URL: &str = "CI_PROJECT_URL";
pub const CI_JOB_NAME: &str = "CI_JOB_NAME";
/// Where the runner checked the project out, in every job.
pub const CI_PROJECT_DIR: &str = "CI_PROJECT_DIR";
/// The base images' tag stage 1 exports for later stages (a dotenv report).
pub const BUILDER_TAG: &str = "BUILDER_TAG";
/// The base images a pipeline uses, pinned by digest once stage 1 built them (a dotenv
/// report): a later push moving the tags cannot change them under the pipeline.
pub const BUILDER_IMAGE: &str = "BUILDER_IMAGE";
pub const RUNTIME_IMAGE: &str = "RUNTIME_IMAGE";
pub const TOOLS_IMAGE: &str = "TOOLS_IMAGE";
/// The `spack` executable to run.
pub const SPACK: &str = "SPACK";
/// The Docker daemon, as Docker's own clients read it.
pub const DOCKER_HOST: &str = "DOCKER_HOST";
pub const DOCKER_TLS_VERIFY: &str = "DOCKER_TLS_VERIFY";
pub const DOCKER_CERT_PATH: &str = "DOCKER_CERT_PATH";
/// The public half of the build-cache deployment key (a file path), which the builder trusts.
pub const SPACK_DEPLOYMENT_KEY_PUBLIC: &str = "SPACK_DEPLOYMENT_KEY_PUBLIC";
/// The secret key that signs the default branch's build cache (a protected variable: a File
/// variable's path or the base64 of the armored key, as Spack's own CI jobs read it).
pub const SPACK_SIGNING_KEY: &str = "SPACK_SIGNING_KEY";
/// `spacktainerizer`: the folder of the tools the tools image and the builder get.
pub const TOOLS_DIR: &str = "SPACKTAINERIZAH_TOOLS_DIR";
/// GitLab's predefined variables naming the pipeline and job a build runs in, recorded in its
/// provenance (<https://docs.gitlab.com/ci/variables/predefined_variables/>).
pub const CI_PIPELINE_URL: &str = "CI_PIPELINE_URL";
pub const CI_PIPELINE_ID: &str = "CI_PIPELINE_ID";
pub const CI_JOB_URL: &str = "CI_JOB_URL";
