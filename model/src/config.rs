//! The project configuration file (`spacktainerizah.yaml`): per architecture the CI runner,
//! proxy use, build-cache and containers buckets, base requirement and extra CI variables;
//! the registry, label namespace and tagging rules. It names environment variables for
//! credentials and never holds a secret itself.

use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};

use crate::secret::{Login, MissingCredentials};
use crate::store_url::{S3Options, StoreUrl};
use crate::yaml::{self, Value, YamlError};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The branch whose builds are published as production (`main`).
    pub default_branch: String,
    pub registry: RegistryConfig,
    pub labels: LabelConfig,
    #[serde(default)]
    pub tags: TagConfig,
    /// Keyed by architecture (`amd64`, `arm64`), matching `container_definitions/<arch>/`.
    pub architectures: IndexMap<String, ArchConfig>,
    /// Inputs of the stage-1 images.
    #[serde(default)]
    pub base_images: BaseImagesConfig,
    /// The shared filesystem clusters read SIF files from, kept in step with the containers
    /// buckets after SIFs are published.
    #[serde(default)]
    pub sif_sync: Option<SifSyncConfig>,
    /// The released tools image (`<registry>/spacktainerizah/tools:<version>`) the chain starts
    /// from: it runs stage 1, which builds the branch's own tools image every other job uses.
    #[serde(default)]
    pub tools_image: Option<String>,
    /// Timeouts, runner tags, resources, retries per kind of job.
    #[serde(default)]
    pub jobs: JobsConfig,
    /// The `pull_policy` of every job's image (`always`, `if-not-present`, `never`), for
    /// runners that allow only some (`allowed_pull_policies`); the runner's default when not
    /// given. The chain's images are pinned by digest, so `if-not-present` is always safe.
    #[serde(default)]
    pub pull_policy: Option<Vec<String>>,
    /// Signing of the default branch's build cache; not given, every cache is unsigned.
    #[serde(default)]
    pub signing: Option<SigningConfig>,
}

/// A signed build cache: the default branch's pipelines sign everything they push with the
/// secret key of a protected variable, and every installation from that cache checks the
/// signatures against the trusted public key. Branch caches stay unsigned: merge-request
/// pipelines never see the secret key. Both are named by variable, never given here.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// The protected CI/CD variable holding the armored secret key, as a File variable (a
    /// path) or base64 text as Spack's own jobs take `SPACK_SIGNING_KEY`.
    #[serde(default = "default_signing_key_variable")]
    pub key_variable: String,
    /// The File variable holding the public key(s) builders trust.
    #[serde(default = "default_trust_variable")]
    pub trust_variable: String,
}

fn default_signing_key_variable() -> String {
    crate::env_names::SPACK_SIGNING_KEY.to_string()
}

fn default_trust_variable() -> String {
    crate::env_names::SPACK_DEPLOYMENT_KEY_PUBLIC.to_string()
}

impl Default for SigningConfig {
    fn default() -> Self {
        SigningConfig {
            key_variable: default_signing_key_variable(),
            trust_variable: default_trust_variable(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SifSyncConfig {
    /// The directory, as the runner that mounts it sees it.
    pub dir: String,
    /// The runner that mounts it.
    pub runner_tag: String,
    /// Also remove SIFs the buckets no longer have (publishing retires old ones).
    #[serde(default)]
    pub delete_removed: bool,
    /// The executor of that runner. A `shell` runner ignores a job's `image:`, so the tools
    /// must be installed on its machine: `tools_dir` says where.
    #[serde(default)]
    pub executor: Executor,
    /// With `executor: shell`: the folder on the runner's machine holding `singularitah`.
    #[serde(default)]
    pub tools_dir: Option<String>,
}

/// A GitLab runner's executor, as far as the chain cares: whether `image:` is honoured.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// `docker`, `kubernetes`, `docker-autoscaler`…: the job runs in its `image:`.
    #[default]
    #[serde(alias = "kubernetes")]
    Docker,
    /// The job runs on the runner's machine, `image:` ignored.
    Shell,
}

/// What the base images are built from; a change of any of these rebuilds them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BaseImagesConfig {
    /// The OS image the builder, runtime and tools images start from.
    #[serde(default = "default_os_image")]
    pub os_image: String,
    /// The Spack the builder holds: a fork and branch, or an archive.
    #[serde(default)]
    pub spack: SpackSource,
    /// Spack ≥ 1.0's package repository (spack-packages), when the Spack given has none of
    /// its own; the builder configures it as `builtin`.
    #[serde(default)]
    pub spack_packages: Option<SourceConfig>,
    /// Extra CA certificates (PEM files, relative to the repository) every base image trusts:
    /// a site's TLS-inspecting proxy or private registry.
    #[serde(default)]
    pub ca_certificates: Vec<String>,
    /// OS packages of the compilers the builder holds; derived from the architectures' base
    /// requirements (`%gcc@12…` → `gcc-12 g++-12 gfortran-12`) when not given.
    #[serde(default)]
    pub compiler_packages: Option<Vec<String>>,
    /// A folder of the repository with `builder/`, `runtime/` and `tools/` build files that
    /// replace the ones the tools carry.
    #[serde(default)]
    pub build_files: Option<String>,
}

/// Where a Spack (or spack-packages) comes from: a git repository at the head of a branch
/// (production), or an archive of the tree (offline sites, tests).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    /// A `.tar`, `.tar.gz` or `.tar.xz` of the tree (one top folder), relative to the
    /// repository; its sha256 stands for the commit.
    #[serde(default)]
    pub archive: Option<String>,
}

/// The Spack of the builder.
pub type SpackSource = SourceConfig;

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            repository: Some("https://github.com/spack/spack.git".into()),
            // The last release with its packages inside: a 1.x needs `spack_packages` too.
            branch: Some("releases/v0.23".into()),
            archive: None,
        }
    }
}

impl BaseImagesConfig {
    /// A Spack ≥ 1.0 keeps its packages in spack-packages: without `spack_packages` the
    /// builder would have no `builtin` repository and every janitor would stop. Only a 0.x
    /// release (branch `releases/v0.…`, tag `v0.…`, archive `spack-0.…`) brings its own.
    fn validate(&self) -> Result<(), String> {
        if self.spack_packages.is_some() {
            return Ok(());
        }
        let s = &self.spack;
        let release_0x = match (&s.branch, &s.archive) {
            (_, Some(a)) => Path::new(a)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("spack-0.")),
            (Some(b), None) => b.starts_with("releases/v0.") || b.starts_with("v0."),
            (None, None) => false,
        };
        if release_0x {
            return Ok(());
        }
        let what = s
            .archive
            .clone()
            .or_else(|| s.branch.clone())
            .unwrap_or_default();
        Err(format!(
            "`base_images.spack` is `{what}`, a Spack 1.x whose packages live in \
             spack-packages: set `base_images.spack_packages` (repository and branch, e.g. \
             https://github.com/spack/spack-packages.git at releases/v2025.07, or an archive), \
             or choose a 0.x release (`releases/v0.23`)"
        ))
    }
}

fn default_os_image() -> String {
    "ubuntu:22.04".into()
}

impl Default for BaseImagesConfig {
    fn default() -> Self {
        BaseImagesConfig {
            os_image: default_os_image(),
            spack: SpackSource::default(),
            spack_packages: None,
            ca_certificates: Vec::new(),
            compiler_packages: None,
            build_files: None,
        }
    }
}

impl Config {
    /// The OS packages of the compilers the architectures' base requirements name
    /// (`%gcc@12.3.0` → `gcc-12 g++-12 gfortran-12`), or the ones configured.
    pub fn compiler_packages(&self) -> Vec<String> {
        if let Some(p) = &self.base_images.compiler_packages {
            return p.clone();
        }
        let mut out: Vec<String> = Vec::new();
        for ac in self.architectures.values() {
            let majors = ac
                .base_requirement
                .split_whitespace()
                .filter_map(|w| w.strip_prefix("%gcc@"))
                .filter_map(|v| v.split('.').next())
                .map(|m| m.trim_start_matches('='))
                .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
            for major in majors {
                for tool in ["gcc", "g++", "gfortran"] {
                    let p = format!("{tool}-{major}");
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        if out.is_empty() {
            out = ["gcc", "g++", "gfortran"].map(String::from).to_vec();
        }
        out
    }
}

/// Settings of the jobs of one kind: how long they may run, what they ask of the runner
/// (Kubernetes requests and limits, for instance, as CI variables), which runners take them,
/// when GitLab retries them and whether a newer pipeline may cancel them. A setting left out
/// keeps its kind's default (`JobsConfig`), so `spack_builds: {variables: …}` keeps its hours.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// GitLab's `timeout:` (`90m`, `8h`).
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    pub variables: IndexMap<String, String>,
    /// Runner tags the jobs also ask for. Jobs of an architecture always carry its
    /// `runner_tag`; jobs of no architecture (planning, pipelines, indexes) carry these alone,
    /// or the first architecture's `runner_tag` when none are given.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// GitLab's `retry:`: how often, and on which failure reasons.
    #[serde(default)]
    pub retry: Option<RetrySettings>,
    /// GitLab's `interruptible:`: a newer pipeline of the branch may cancel the job (work the
    /// newer pipeline makes moot); never for jobs that publish or delete.
    #[serde(default)]
    pub interruptible: Option<bool>,
}

/// GitLab's `retry: {max, when}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// 0 to 2, GitLab's limit.
    pub max: u8,
    /// Failure reasons, as GitLab names them (`runner_system_failure`, …).
    #[serde(default)]
    pub when: Vec<String>,
}

/// The failure reasons GitLab's `retry:when` accepts
/// (https://docs.gitlab.com/ci/yaml/#retrywhen).
pub const RETRY_REASONS: &[&str] = &[
    "always",
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
];

/// Failures of the infrastructure, not of the work: a job that failed for one of these is
/// worth running again; one whose script failed is not (a failed build of hours fails again).
pub const INFRASTRUCTURE_FAILURES: &[&str] = &[
    "runner_system_failure",
    "stuck_or_timeout_failure",
    "scheduler_failure",
];

/// The kinds of jobs, for messages and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Tools,
    BaseImages,
    Generate,
    SpackBuilds,
    Containers,
    Sifs,
    Cleanup,
}

impl JobKind {
    pub const ALL: [JobKind; 7] = [
        JobKind::Tools,
        JobKind::BaseImages,
        JobKind::Generate,
        JobKind::SpackBuilds,
        JobKind::Containers,
        JobKind::Sifs,
        JobKind::Cleanup,
    ];

    /// The key under `jobs:`.
    pub fn key(self) -> &'static str {
        match self {
            JobKind::Tools => "tools",
            JobKind::BaseImages => "base_images",
            JobKind::Generate => "generate",
            JobKind::SpackBuilds => "spack_builds",
            JobKind::Containers => "containers",
            JobKind::Sifs => "sifs",
            JobKind::Cleanup => "cleanup",
        }
    }

    /// The settings a kind has when the configuration says nothing: Spack builds take hours;
    /// planning and Spack's builds are moot once a newer pipeline runs, publishing and
    /// cleaning are not cut off halfway; every kind is retried on infrastructure failures only.
    pub fn defaults(self) -> JobSettings {
        let (timeout, interruptible) = match self {
            JobKind::Tools => ("30m", true),
            JobKind::Generate => ("1h", true),
            JobKind::SpackBuilds => ("6h", true),
            JobKind::BaseImages | JobKind::Containers | JobKind::Sifs | JobKind::Cleanup => {
                ("2h", false)
            }
        };
        JobSettings {
            timeout: Some(timeout.into()),
            variables: IndexMap::new(),
            tags: None,
            retry: Some(RetrySettings {
                max: 2,
                when: INFRASTRUCTURE_FAILURES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            }),
            interruptible: Some(interruptible),
        }
    }
}

impl JobSettings {
    /// These settings, with what they leave out taken from `defaults`.
    fn or(self, defaults: JobSettings) -> JobSettings {
        JobSettings {
            timeout: self.timeout.or(defaults.timeout),
            variables: if self.variables.is_empty() {
                defaults.variables
            } else {
                self.variables
            },
            tags: self.tags.or(defaults.tags),
            retry: self.retry.or(defaults.retry),
            interruptible: self.interruptible.or(defaults.interruptible),
        }
    }
}

/// Job settings per kind of job, each setting defaulting on its own (`JobKind::defaults`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, from = "RawJobsConfig")]
pub struct JobsConfig {
    /// Jobs that only run the tools (planning, generating pipelines, indexes, fetching).
    pub tools: JobSettings,
    /// Base image builds.
    pub base_images: JobSettings,
    /// `spack concretize` and `spack ci generate`.
    pub generate: JobSettings,
    /// Spack's own build jobs, which fill the build cache, and its index update.
    pub spack_builds: JobSettings,
    /// Container image builds.
    pub containers: JobSettings,
    /// SIF builds and uploads, and the sync of the shared directory.
    pub sifs: JobSettings,
    /// The janitors.
    pub cleanup: JobSettings,
}

/// `jobs:` as written: every kind and every setting optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobsConfig {
    #[serde(default)]
    tools: JobSettings,
    #[serde(default)]
    base_images: JobSettings,
    #[serde(default)]
    generate: JobSettings,
    #[serde(default)]
    spack_builds: JobSettings,
    #[serde(default)]
    containers: JobSettings,
    #[serde(default)]
    sifs: JobSettings,
    #[serde(default)]
    cleanup: JobSettings,
}

impl From<RawJobsConfig> for JobsConfig {
    fn from(r: RawJobsConfig) -> JobsConfig {
        JobsConfig {
            tools: r.tools.or(JobKind::Tools.defaults()),
            base_images: r.base_images.or(JobKind::BaseImages.defaults()),
            generate: r.generate.or(JobKind::Generate.defaults()),
            spack_builds: r.spack_builds.or(JobKind::SpackBuilds.defaults()),
            containers: r.containers.or(JobKind::Containers.defaults()),
            sifs: r.sifs.or(JobKind::Sifs.defaults()),
            cleanup: r.cleanup.or(JobKind::Cleanup.defaults()),
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        RawJobsConfig::default().into()
    }
}

impl JobsConfig {
    pub fn get(&self, kind: JobKind) -> &JobSettings {
        match kind {
            JobKind::Tools => &self.tools,
            JobKind::BaseImages => &self.base_images,
            JobKind::Generate => &self.generate,
            JobKind::SpackBuilds => &self.spack_builds,
            JobKind::Containers => &self.containers,
            JobKind::Sifs => &self.sifs,
            JobKind::Cleanup => &self.cleanup,
        }
    }

    /// What GitLab would refuse, or what would turn one failed build into several: retries
    /// past GitLab's 2, reasons it does not know, and Spack builds retried on their script's
    /// failure.
    fn validate(&self) -> Result<(), String> {
        for kind in JobKind::ALL {
            let Some(retry) = &self.get(kind).retry else {
                continue;
            };
            let at = format!("`jobs.{}.retry`", kind.key());
            if retry.max > 2 {
                return Err(format!(
                    "{at}: `max: {}` is more than GitLab allows (0 to 2)",
                    retry.max
                ));
            }
            for reason in &retry.when {
                if !RETRY_REASONS.contains(&reason.as_str()) {
                    return Err(format!(
                        "{at}: `{reason}` is not a failure reason GitLab knows ({})",
                        RETRY_REASONS.join(", ")
                    ));
                }
                if kind == JobKind::SpackBuilds
                    && matches!(reason.as_str(), "script_failure" | "always")
                    && retry.max > 0
                {
                    return Err(format!(
                        "{at}: `{reason}` would run a failed Spack build again (hours, and it \
                         fails the same way); retry Spack builds on infrastructure failures \
                         only ({})",
                        INFRASTRUCTURE_FAILURES.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How the jobs of an architecture that build or push images reach a Docker engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineConfig {
    /// A Docker-in-Docker service of the job (`docker:27-dind`), reached over TCP with TLS.
    Dind(String),
    /// A daemon the runner exposes: its socket or address, as `DOCKER_HOST` takes it
    /// (`unix:///var/run/docker.sock`, `tcp://host:2376`).
    Host(String),
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig::Dind("docker:27-dind".into())
    }
}

impl<'de> Deserialize<'de> for EngineConfig {
    /// `{dind: IMAGE}` or `{host: ADDRESS}`, exactly one.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            dind: Option<String>,
            #[serde(default)]
            host: Option<String>,
        }
        match Raw::deserialize(d)? {
            Raw {
                dind: Some(i),
                host: None,
            } => Ok(EngineConfig::Dind(i)),
            Raw {
                dind: None,
                host: Some(h),
            } => Ok(EngineConfig::Host(h)),
            _ => Err(serde::de::Error::custom(
                "give exactly one of `dind: IMAGE` (a Docker-in-Docker service) and `host: ADDRESS` (the runner's daemon)",
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `host[:port][/namespace]`, e.g. `registry.example.org/spacktainers`.
    pub url: String,
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// Plain HTTP to a registry that is not on this machine (a lab registry without TLS).
    #[serde(default)]
    pub insecure: bool,
    /// An optional public hub (Docker Hub, GHCR) the default branch also publishes to.
    #[serde(default)]
    pub public: Option<PublicRegistryConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublicRegistryConfig {
    pub url: String,
    #[serde(default)]
    pub credentials: Option<Credentials>,
}

/// Names of the environment variables holding a key pair or user and password.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Variable holding the access key id or user name.
    pub user_env: String,
    /// Variable holding the secret key, password or token.
    pub secret_env: String,
}

impl Credentials {
    /// The registry login these variables hold; `None` (anonymous) when there are no
    /// credentials or the user variable is unset, as on a developer's machine.
    pub fn registry_login(
        credentials: Option<&Credentials>,
    ) -> Result<Option<Login>, MissingCredentials> {
        match credentials {
            Some(c) if std::env::var_os(&c.user_env).is_some() => {
                Login::from_env(&c.user_env, &c.secret_env).map(Some)
            }
            _ => Ok(None),
        }
    }
}

impl RegistryConfig {
    /// The project registry's login (anonymous when its variables are unset).
    pub fn login(&self) -> Result<Option<Login>, MissingCredentials> {
        Credentials::registry_login(self.credentials.as_ref())
    }
}

impl PublicRegistryConfig {
    /// The public hub's login (anonymous when its variables are unset).
    pub fn login(&self) -> Result<Option<Login>, MissingCredentials> {
        Credentials::registry_login(self.credentials.as_ref())
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelConfig {
    /// Prefix of the project's image labels, e.g. `org.example.spacktainerizah`.
    pub namespace: String,
}

/// How tags differ between the default branch and other branches.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TagConfig {
    /// Base-image tag on the default branch.
    #[serde(default = "default_branch_tag")]
    pub default_branch: String,
    /// Base-image tag elsewhere; `{date}` (YYYY.MM.DD) and `{branch}` (the ref slug) are
    /// replaced.
    #[serde(default = "other_branch_tag")]
    pub other_branches: String,
    /// Add `-<arch>` to per-architecture tags when several architectures are built.
    #[serde(default = "yes")]
    pub arch_suffix: bool,
}

fn default_branch_tag() -> String {
    "latest".into()
}
fn other_branch_tag() -> String {
    "{date}-{branch}".into()
}
fn yes() -> bool {
    true
}

impl Default for TagConfig {
    fn default() -> Self {
        TagConfig {
            default_branch: default_branch_tag(),
            other_branches: other_branch_tag(),
            arch_suffix: true,
        }
    }
}

/// Today's date as `YYYY.MM.DD` (UTC), the `{date}` of branch tags.
pub fn tag_date_today() -> String {
    crate::time::rfc3339(std::time::SystemTime::now())[..10].replace('-', ".")
}

impl TagConfig {
    /// The base-image tag for `branch_slug` on `date` (`YYYY.MM.DD`).
    pub fn base_tag(&self, on_default_branch: bool, branch_slug: &str, date: &str) -> String {
        if on_default_branch {
            self.default_branch.clone()
        } else {
            self.other_branches
                .replace("{date}", date)
                .replace("{branch}", branch_slug)
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArchConfig {
    /// GitLab runner tag of the jobs of this architecture.
    pub runner_tag: String,
    /// Whether jobs go through the site's HTTP proxy a runner sets: `false` empties the proxy
    /// variables in its jobs; not given, the runner's environment is left as it is.
    #[serde(default)]
    pub use_proxy: Option<bool>,
    /// Replaces `%BASE_ARCH%` in the template, e.g. `%gcc@12 os=ubuntu22.04 target=x86_64_v3`.
    pub base_requirement: String,
    pub build_cache: BucketConfig,
    #[serde(default)]
    pub containers_bucket: Option<BucketConfig>,
    /// Extra CI variables of this architecture's jobs.
    #[serde(default, deserialize_with = "scalar_map")]
    pub variables: IndexMap<String, String>,
    /// How its jobs that build or push images reach a Docker engine.
    #[serde(default)]
    pub engine: EngineConfig,
}

/// The proxy variables clients read (curl, Python, Go, Spack, git): emptied for architectures
/// whose jobs must not use the site's proxy.
pub const PROXY_VARIABLES: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "all_proxy",
];

impl ArchConfig {
    /// The CI variables of this architecture's jobs: its own, and with `use_proxy: false` the
    /// proxy variables a runner may set emptied. A job's YAML variables take precedence over
    /// a runner's `environment`
    /// (https://docs.gitlab.com/ci/variables/#cicd-variable-precedence), and clients take an
    /// empty proxy variable for none.
    pub fn job_variables(&self) -> IndexMap<String, String> {
        let mut vars = self.variables.clone();
        if self.use_proxy == Some(false) {
            for v in PROXY_VARIABLES {
                vars.entry(v.to_string()).or_default();
            }
        }
        vars
    }
}

/// A bucket (or directory) with its endpoint, credentials and cleaning age.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// `s3://bucket[/prefix]` or `file:///dir`, used on the default branch.
    pub url: String,
    /// Used on other branches; defaults to `url`.
    #[serde(default)]
    pub branch_url: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub credentials: Option<Credentials>,
    #[serde(default)]
    pub max_age_days: Option<MaxAge>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaxAge {
    pub default_branch: u32,
    pub other_branches: u32,
}

impl BucketConfig {
    pub fn url_for(&self, on_default_branch: bool) -> &str {
        match (&self.branch_url, on_default_branch) {
            (Some(b), false) => b,
            _ => &self.url,
        }
    }

    pub fn max_age_for(&self, on_default_branch: bool) -> Option<u32> {
        self.max_age_days.map(|m| {
            if on_default_branch {
                m.default_branch
            } else {
                m.other_branches
            }
        })
    }

    /// The CI variables that give Spack (boto3) this bucket's key pair: `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` as references to the variables named, never values.
    pub fn aws_variables(&self) -> IndexMap<String, String> {
        self.credentials
            .iter()
            .flat_map(|c| {
                [
                    ("AWS_ACCESS_KEY_ID".to_string(), format!("${}", c.user_env)),
                    (
                        "AWS_SECRET_ACCESS_KEY".to_string(),
                        format!("${}", c.secret_env),
                    ),
                ]
            })
            .collect()
    }

    /// S3 client options for this bucket (credentials by variable name).
    pub fn s3_options(&self) -> S3Options {
        S3Options {
            endpoint_url: self.endpoint_url.clone(),
            region: None,
            access_key_env: self.credentials.as_ref().map(|c| c.user_env.clone()),
            secret_key_env: self.credentials.as_ref().map(|c| c.secret_env.clone()),
        }
    }
}

fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, String>, D::Error> {
    let raw: IndexMap<String, Value> = IndexMap::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(serde::de::Error::custom(format!(
                        "variable `{k}` must be a string, number or boolean"
                    )));
                }
            };
            Ok((k, s))
        })
        .collect()
}

impl Config {
    pub fn read(path: &Path) -> Result<Config, YamlError> {
        let cfg: Config = yaml::read(path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, YamlError> {
        let cfg: Config = yaml::parse(path, text)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The registries named insecure here (the project registry with `insecure: true`),
    /// which every registry client of the run speaks to over plain HTTP.
    pub fn insecure_registries(&self) -> Vec<String> {
        if self.registry.insecure {
            vec![self.registry.url.clone()]
        } else {
            Vec::new()
        }
    }

    fn validate(&self, path: &Path) -> Result<(), YamlError> {
        let err = |m: String| YamlError::invalid(path, m);
        if self.architectures.is_empty() {
            return Err(err("`architectures` lists no architecture".into()));
        }
        self.jobs.validate().map_err(err)?;
        self.base_images.validate().map_err(err)?;
        for policy in self.pull_policy.iter().flatten() {
            if !matches!(policy.as_str(), "always" | "if-not-present" | "never") {
                return Err(err(format!(
                    "`pull_policy`: `{policy}` is not one of always, if-not-present, never"
                )));
            }
        }
        if let Some(sync) = &self.sif_sync
            && sync.executor == Executor::Shell
            && sync.tools_dir.is_none()
        {
            return Err(err(format!(
                "`sif_sync.executor: shell`: a shell runner ignores `image:`, so the sync and \
                 prune jobs on `{}` would not find `singularitah`; name the folder it is \
                 installed in on that machine (`sif_sync.tools_dir`), or use a runner with the \
                 docker or kubernetes executor that mounts {}",
                sync.runner_tag, sync.dir
            )));
        }
        if self.registry.url.contains("://") {
            return Err(err(format!(
                "`registry.url` is `host[:port][/namespace]`, without a scheme: `{}`",
                self.registry.url
            )));
        }
        self.validate_signing().map_err(err)?;
        for (name, arch) in &self.architectures {
            if arch.base_requirement.trim().is_empty() {
                return Err(err(format!(
                    "`architectures.{name}.base_requirement` is empty"
                )));
            }
            let buckets = std::iter::once(("build_cache", &arch.build_cache)).chain(
                arch.containers_bucket
                    .as_ref()
                    .map(|b| ("containers_bucket", b)),
            );
            for (what, b) in buckets {
                for url in std::iter::once(&b.url).chain(b.branch_url.as_ref()) {
                    url.parse::<StoreUrl>()
                        .map_err(|e| err(format!("`architectures.{name}.{what}`: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// A signed cache needs a branch cache of its own: merge-request pipelines cannot sign,
    /// and their unsigned packages in the signed cache would fail every verified install.
    fn validate_signing(&self) -> Result<(), String> {
        let Some(signing) = &self.signing else {
            return Ok(());
        };
        for (what, v) in [
            ("key_variable", &signing.key_variable),
            ("trust_variable", &signing.trust_variable),
        ] {
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`signing.{what}`: `{v}` is not a variable name (letters, digits, _)"
                ));
            }
        }
        for (name, arch) in &self.architectures {
            let b = &arch.build_cache;
            if b.url_for(false) == b.url_for(true) {
                return Err(format!(
                    "`signing`: `architectures.{name}.build_cache` needs a `branch_url` of its \
                     own: other branches' pipelines cannot sign, and their unsigned packages \
                     must not go into the signed cache {}",
                    b.url
                ));
            }
        }
        Ok(())
    }

    /// Whether the cache `on_default_branch` pipelines write to is signed.
    pub fn signs(&self, on_default_branch: bool) -> bool {
        self.signing.is_some() && on_default_branch
    }

    pub fn arch(&self, name: &str) -> Option<&ArchConfig> {
        self.architectures.get(name)
    }

    /// The runner tags of jobs that belong to no architecture: `jobs.tools.tags`, else the
    /// first architecture's runner (the tools image is built for every architecture).
    pub fn tools_tags(&self) -> Vec<String> {
        match &self.jobs.tools.tags {
            Some(t) => t.clone(),
            None => self
                .architectures
                .values()
                .next()
                .map(|a| vec![a.runner_tag.clone()])
                .unwrap_or_default(),
        }
    }

    /// The released tools image the chain starts from (stage 1's jobs run in it).
    pub fn release_tools_image(&self) -> String {
        self.tools_image.clone().unwrap_or_else(|| {
            format!(
                "{}/spacktainerizah/tools:{}",
                self.registry.url,
                env!("CARGO_PKG_VERSION")
            )
        })
    }

    /// A base image of this project (`builder`, `runtime`, `tools`) at `tag`.
    pub fn base_image(&self, name: &str, tag: &str) -> String {
        format!("{}/{name}:{tag}", self.registry.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/spacktainerizah.yaml");

    #[test]
    fn example_config_parses() {
        let cfg = Config::parse(Path::new("spacktainerizah.yaml"), EXAMPLE).unwrap();
        let amd64 = cfg.arch("amd64").unwrap();
        assert!(amd64.base_requirement.contains("x86_64"));
        assert_ne!(
            amd64.build_cache.url_for(true),
            amd64.build_cache.url_for(false)
        );
        assert!(
            amd64.build_cache.max_age_for(true).unwrap()
                > amd64.build_cache.max_age_for(false).unwrap()
        );
        assert_eq!(
            cfg.tags.base_tag(false, "my-branch", "2026.11.29"),
            "2026.11.29-my-branch"
        );
        assert_eq!(cfg.tags.base_tag(true, "main", "2026.11.29"), "latest");
    }

    #[test]
    fn signing_names_its_variables_and_needs_a_branch_cache_of_its_own() {
        let signed = |extra: &str| format!("{EXAMPLE}signing: {extra}\n");
        assert!(
            Config::parse(Path::new("c.yaml"), EXAMPLE)
                .unwrap()
                .signing
                .is_none()
        );
        // arm64 has no branch cache: its merge requests would write unsigned packages into
        // the signed cache.
        let err = parse_err(&signed("{}"));
        assert!(
            err.contains("architectures.arm64.build_cache") && err.contains("branch_url"),
            "{err}"
        );
        let text = signed("{}").replacen(
            "url: s3://spack-cache-arm64\n",
            "url: s3://spack-cache-arm64\n      branch_url: s3://spack-cache-arm64-dev\n",
            1,
        );
        let cfg = Config::parse(Path::new("c.yaml"), &text).unwrap();
        assert_eq!(cfg.signing, Some(SigningConfig::default()));
        assert_eq!(
            cfg.signing.as_ref().unwrap().key_variable,
            "SPACK_SIGNING_KEY"
        );
        assert!(cfg.signs(true) && !cfg.signs(false));
        let text = text.replace("signing: {}", "signing: {key_variable: \"$KEY\"}");
        assert!(parse_err(&text).contains("`$KEY` is not a variable name"));
    }

    #[test]
    fn unknown_key_is_located() {
        let text = EXAMPLE.replace("runner_tag:", "runer_tag:");
        let err = Config::parse(Path::new("c.yaml"), &text).unwrap_err();
        match &err {
            YamlError::Located { line, message, .. } => {
                assert!(message.contains("runer_tag"), "{err}");
                assert_eq!(
                    text.lines().nth(line - 1).map(|l| l.contains("runer_tag")),
                    Some(true),
                    "{err}"
                );
            }
            other => panic!("expected a located error: {other}"),
        }
    }

    #[test]
    fn bad_bucket_url_is_named() {
        let text = EXAMPLE.replacen("url: s3://spack-build-cache\n", "url: http://nope\n", 1);
        assert_ne!(text, EXAMPLE);
        let err = Config::parse(Path::new("c.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("build_cache") && err.contains("http://nope"),
            "{err}"
        );
    }

    fn parse_err(text: &str) -> String {
        Config::parse(Path::new("spacktainerizah.yaml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_kind_of_job_keeps_the_defaults_it_does_not_override() {
        let text = EXAMPLE
            .replace("    timeout: 8h\n", "    tags: [big-iron]\n")
            .replace(
                "jobs:\n",
                "jobs:\n  tools:\n    tags: [small]\n    timeout: 10m\n",
            );
        let cfg = Config::parse(Path::new("spacktainerizah.yaml"), &text).unwrap();
        let builds = &cfg.jobs.spack_builds;
        assert_eq!(builds.timeout.as_deref(), Some("6h"), "the kind's default");
        assert_eq!(builds.tags.as_deref(), Some(&["big-iron".to_string()][..]));
        assert_eq!(builds.variables["KUBERNETES_CPU_REQUEST"], "8");
        let retry = builds.retry.as_ref().unwrap();
        assert!(!retry.when.iter().any(|w| w == "script_failure"));
        assert_eq!(cfg.tools_tags(), ["small"]);
        assert_eq!(cfg.jobs.tools.timeout.as_deref(), Some("10m"));
        // Without `tools: {tags}`, jobs of no architecture go to the first one's runner.
        let cfg = Config::parse(Path::new("spacktainerizah.yaml"), EXAMPLE).unwrap();
        assert_eq!(cfg.tools_tags(), ["kubernetes"]);
        assert_eq!(cfg.jobs.spack_builds.timeout.as_deref(), Some("8h"));
    }

    #[test]
    fn a_spack_build_is_never_retried_on_its_scripts_failure() {
        let err = parse_err(&EXAMPLE.replace(
            "    timeout: 8h\n",
            "    timeout: 8h\n    retry: {max: 2, when: [script_failure]}\n",
        ));
        assert!(
            err.contains("jobs.spack_builds.retry") && err.contains("script_failure"),
            "{err}"
        );
        let err = parse_err(&EXAMPLE.replace(
            "    timeout: 8h\n",
            "    timeout: 8h\n    retry: {max: 5}\n",
        ));
        assert!(err.contains("0 to 2"), "{err}");
        let err = parse_err(&EXAMPLE.replace(
            "    timeout: 8h\n",
            "    timeout: 8h\n    retry: {max: 1, when: [runner_failure]}\n",
        ));
        assert!(err.contains("`runner_failure`"), "{err}");
    }

    #[test]
    fn a_shell_runner_for_the_sync_needs_the_tools_folder() {
        let err = parse_err(&EXAMPLE.replace("  tools_dir: /opt/spacktainerizah/bin\n", ""));
        assert!(
            err.contains("sif_sync.executor: shell") && err.contains("sif_sync.tools_dir"),
            "{err}"
        );
        let docker = EXAMPLE
            .replace("  executor: shell\n", "  executor: docker\n")
            .replace("  tools_dir: /opt/spacktainerizah/bin\n", "");
        Config::parse(Path::new("spacktainerizah.yaml"), &docker).unwrap();
    }

    #[test]
    fn a_spack_1_needs_its_package_repository() {
        let without = EXAMPLE.replace(
            "  spack_packages:\n    repository: https://github.com/spack/spack-packages.git\n    branch: releases/v2025.07\n",
            "",
        );
        assert_ne!(without, EXAMPLE);
        let err = parse_err(&without);
        assert!(err.contains("base_images.spack_packages"), "{err}");
        let old = without.replace("branch: releases/v1.0", "branch: releases/v0.23");
        Config::parse(Path::new("spacktainerizah.yaml"), &old).unwrap();
        let develop = without.replace("branch: releases/v1.0", "branch: develop");
        assert!(parse_err(&develop).contains("`develop`"));
    }

    #[test]
    fn jobs_of_an_architecture_off_the_proxy_empty_its_variables() {
        let cfg = Config::parse(Path::new("spacktainerizah.yaml"), EXAMPLE).unwrap();
        let arm = cfg.arch("arm64").unwrap().job_variables();
        assert_eq!(arm.get("https_proxy").map(String::as_str), Some(""));
        // `use_proxy: true` keeps the runner's proxy; not saying leaves the runner alone.
        let amd = cfg.arch("amd64").unwrap().job_variables();
        assert!(!amd.contains_key("https_proxy"));
        assert!(
            parse_err(&EXAMPLE.replace("jobs:\n", "pull_policy: [sometimes]\njobs:\n"))
                .contains("`sometimes`")
        );
    }
}
