//! The GitLab CI pipeline model: jobs, triggers of child pipelines from artifacts, stages,
//! needs (also on a job of another pipeline), rules, variables, artifacts and includes,
//! emitted as YAML GitLab accepts and read back from what Spack generates.

use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};

use crate::yaml::{self, Value, YamlError};

/// Top-level keys GitLab reserves; no job may carry one of these names.
pub const RESERVED_KEYS: &[&str] = &[
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "spec",
];

/// The condition that holds in a child pipeline, whatever started its parent: GitLab sets
/// `CI_PIPELINE_SOURCE` to `parent_pipeline` there
/// (https://docs.gitlab.com/ci/jobs/job_rules/#ci_pipeline_source-predefined-variable).
pub const CHILD_SOURCE: &str = "$CI_PIPELINE_SOURCE == \"parent_pipeline\"";

/// How long the chain's artifacts are kept: GitLab's instance default may be "never expire";
/// child pipelines read theirs within the pipeline, the longest of which (Spack builds) runs
/// hours, and the janitor's keep lists live in the cache, not here.
pub const ARTIFACTS_EXPIRE_IN: &str = "1 week";

/// The largest pipeline file the generators write; what would be larger is split. GitLab
/// refuses a configuration file past the instance's `max_yaml_size_bytes`: 1 MB by default
/// until GitLab 17.x, 2 MB since
/// (https://docs.gitlab.com/administration/instance_limits/#maximum-size-and-depth-of-cicd-configuration-yaml-files,
/// now https://docs.gitlab.com/administration/cicd/limits/). The limit is measured on the
/// parsed configuration, not the file's bytes, hence the margin under the older 1 MB. The
/// total over all includes (`ci_max_total_yaml_size_bytes`, `max_yaml_size_bytes` times
/// `ci_max_includes` = 150 by default) is not reached: each child pipeline is one file.
pub const MAX_FILE_BYTES: usize = 900_000;

/// The bytes the job `name` takes in a pipeline file. What splitting a pipeline by size adds
/// up; exact, as [`job_entry`] is the job's text in the file.
pub fn job_size(name: &str, job: &Job) -> usize {
    job_entry(name, job).len()
}

/// The job `name` as it is written among a pipeline's top-level keys: a pipeline file is its
/// own keys' YAML followed by its jobs' entries (see [`Pipeline::to_yaml_with`]), so a job
/// serialized once serves both to size a file and to write it.
pub fn job_entry(name: &str, job: &Job) -> String {
    struct Entry<'a>(&'a str, &'a Job);
    impl Serialize for Entry<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(self.0, self.1)?;
            map.end()
        }
    }
    yaml::to_string(&Entry(name, job))
}

/// The first job of a pipeline that triggers child pipelines written by `parent_job` of its
/// parent (under `path`): GitLab includes a child pipeline only from an artifact of a job of
/// the same pipeline, so this one takes the files over, by the parent's id.
pub fn fetch_job(parent_job: &str, path: &str, tags: Vec<String>) -> Job {
    Job {
        stage: Some("fetch".into()),
        needs: Some(vec![Need::other_pipeline(
            "$PARENT_PIPELINE_ID",
            parent_job,
        )]),
        tags,
        script: vec![format!("ls -R {}", shell_quote(path))],
        artifacts: Some(Artifacts {
            paths: vec![path.to_string()],
            expire_in: Some(ARTIFACTS_EXPIRE_IN.into()),
            ..Artifacts::default()
        }),
        ..Job::default()
    }
}

/// The folder beside stage 3's pipeline file (`containers.yml`) holding its parts when it is
/// too large for one file.
pub const CONTAINER_PARTS_DIR: &str = "containers-parts";

/// A pipeline file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<Include>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Workflow>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "scalar_map"
    )]
    pub variables: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Jobs (and hidden `.templates`) by name, in order.
    #[serde(flatten)]
    pub jobs: IndexMap<String, Job>,
}

/// A pipeline that cannot be built as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CiError {
    #[error("job name `{0}` is a reserved GitLab keyword")]
    ReservedName(String),
    #[error("job `{0}` is defined twice")]
    Duplicate(String),
    #[error("job `{job}` needs `{need}`, which is not a job of this pipeline")]
    UnknownNeed { job: String, need: String },
    #[error("job `{job}` is in stage `{stage}`, which is not among the pipeline's stages")]
    UnknownStage { job: String, stage: String },
    #[error("a pipeline needs at least one job")]
    Empty,
}

impl Pipeline {
    /// Add a job; reserved names and duplicates are refused.
    pub fn add_job(&mut self, name: impl Into<String>, job: Job) -> Result<(), CiError> {
        let name = name.into();
        if RESERVED_KEYS.contains(&name.as_str()) {
            return Err(CiError::ReservedName(name));
        }
        if self.jobs.contains_key(&name) {
            return Err(CiError::Duplicate(name));
        }
        self.jobs.insert(name, job);
        Ok(())
    }

    /// A pipeline with one job that only says nothing needs doing: GitLab refuses a pipeline
    /// without jobs, so "nothing to do" must still be a valid pipeline. `tags` pick its
    /// runner: on instances whose runners are all tagged an untagged job stays pending.
    pub fn noop(message: &str, tags: Vec<String>) -> Pipeline {
        let mut p = Pipeline::default();
        p.jobs.insert(
            "nothing-to-do".into(),
            Job {
                tags,
                script: vec![format!("echo {}", shell_quote(message))],
                ..Job::default()
            },
        );
        p
    }

    /// The pipeline made fit to run as a child pipeline in every kind of parent, merge-request
    /// pipelines included. GitLab gives a job without `rules:`/`only:`/`except:` the default
    /// `only: [branches, tags]` (https://docs.gitlab.com/ci/yaml/#only--except), which a
    /// merge-request pipeline's ref is not, and a child pipeline of a merge-request pipeline
    /// is on that ref too, so such a child would have no job and its trigger would fail
    /// ("downstream pipeline can not be created";
    /// https://docs.gitlab.com/ci/pipelines/downstream_pipelines/#run-child-pipelines-with-merge-request-pipelines).
    /// So every job gets `rules:` (its job-level `when:` moves into them, as GitLab refuses
    /// the two together), and the pipeline a `workflow:` for its only source, a parent.
    pub fn into_child(mut self) -> Pipeline {
        self.workflow = Some(Workflow {
            name: None,
            rules: vec![Rule::when_if(CHILD_SOURCE, "always")],
        });
        for (name, job) in self.jobs.iter_mut() {
            if !name.starts_with('.') {
                job.make_child();
            }
        }
        self
    }

    /// The YAML of this pipeline with `entries` (from [`job_entry`]) as its jobs, after the
    /// jobs it holds: the same text as [`Pipeline::to_yaml`] of the pipeline with those jobs
    /// added, without serializing them again.
    pub fn to_yaml_with<'a>(&self, entries: impl IntoIterator<Item = &'a str>) -> String {
        let mut text = self.to_yaml();
        for e in entries {
            text.push_str(e);
        }
        text
    }

    /// Check what GitLab would reject beyond the schema: a job in an undeclared stage, a
    /// `needs` on a job that is not in this pipeline (needs on other pipelines excepted), and a
    /// pipeline without visible jobs.
    pub fn check(&self) -> Result<(), CiError> {
        let visible: Vec<(&String, &Job)> = self
            .jobs
            .iter()
            .filter(|(n, _)| !n.starts_with('.'))
            .collect();
        if visible.is_empty() {
            return Err(CiError::Empty);
        }
        for (name, job) in visible {
            if let Some(stage) = &job.stage
                && !self.stages.is_empty()
                && !self.stages.contains(stage)
                && !matches!(stage.as_str(), ".pre" | ".post")
            {
                return Err(CiError::UnknownStage {
                    job: name.clone(),
                    stage: stage.clone(),
                });
            }
            for need in job.needs.iter().flatten() {
                if let Need::Job(n)
                | Need::Detailed {
                    job: n,
                    pipeline: None,
                    ..
                } = need
                    && !self.jobs.contains_key(n)
                {
                    return Err(CiError::UnknownNeed {
                        job: name.clone(),
                        need: n.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn to_yaml(&self) -> String {
        yaml::to_string(self)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Pipeline, YamlError> {
        yaml::parse(path, text)
    }

    pub fn read(path: &Path) -> Result<Pipeline, YamlError> {
        yaml::read(path)
    }
}

/// Quote a string for a POSIX shell (single quotes).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A job, with the keys the tools set typed and any other key kept as it was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Job {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "scalar_map"
    )]
    pub variables: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<Need>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "script"
    )]
    pub before_script: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "script"
    )]
    pub script: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "script"
    )]
    pub after_script: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Artifacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruptible: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_failure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// Keys this model does not type, kept as read.
    #[serde(flatten)]
    pub extra: IndexMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Image {
    Name(String),
    Detailed {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entrypoint: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pull_policy: Option<Value>,
    },
}

/// A service container of a job (Docker-in-Docker, for instance), reached by its alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Arguments of the service's entrypoint (`dockerd` flags for Docker-in-Docker).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

/// A `needs` entry: a job of this pipeline, or (with `pipeline`) of another one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Need {
    Job(String),
    Detailed {
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipeline: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifacts: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        optional: Option<bool>,
    },
}

impl Need {
    pub fn job(name: impl Into<String>) -> Need {
        Need::Job(name.into())
    }

    /// A need on a job of this pipeline whose artifacts are (or are not) downloaded.
    pub fn with_artifacts(name: impl Into<String>, artifacts: bool) -> Need {
        Need::Detailed {
            job: name.into(),
            pipeline: None,
            artifacts: Some(artifacts),
            optional: None,
        }
    }

    /// A need on a job of another pipeline (typically `$PARENT_PIPELINE_ID`), for its artifacts.
    pub fn other_pipeline(pipeline: impl Into<String>, job: impl Into<String>) -> Need {
        Need::Detailed {
            job: job.into(),
            pipeline: Some(pipeline.into()),
            artifacts: Some(true),
            optional: None,
        }
    }

    pub fn job_name(&self) -> &str {
        match self {
            Need::Job(j) | Need::Detailed { job: j, .. } => j,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub if_: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "scalar_map"
    )]
    pub variables: IndexMap<String, String>,
}

impl Rule {
    pub fn when_if(condition: impl Into<String>, when: impl Into<String>) -> Rule {
        Rule {
            if_: Some(condition.into()),
            when: Some(when.into()),
            ..Rule::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Artifacts {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_in: Option<String>,
    #[serde(flatten)]
    pub extra: IndexMap<String, Value>,
}

/// A child pipeline trigger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub include: Vec<Include>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
}

impl Trigger {
    /// Run the child pipeline in `artifact`, produced by `job` of this pipeline, and mirror
    /// its status (`strategy: depend`).
    pub fn from_artifact(artifact: impl Into<String>, job: impl Into<String>) -> Trigger {
        Trigger {
            include: vec![Include {
                artifact: Some(artifact.into()),
                job: Some(job.into()),
                ..Include::default()
            }],
            strategy: Some("depend".into()),
            forward: Some(Forward {
                pipeline_variables: Some(true),
                yaml_variables: None,
            }),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Forward {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_variables: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yaml_variables: Option<bool>,
}

/// An include, top-level or in a trigger: a local file, or an artifact of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Include {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Retry {
    Max(u8),
    Detailed {
        max: u8,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        when: Vec<String>,
    },
}

fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, String>, D::Error> {
    let raw: Option<IndexMap<String, Value>> = Option::deserialize(d)?;
    raw.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            Value::Number(n) => Ok((k, n.to_string())),
            Value::Bool(b) => Ok((k, b.to_string())),
            Value::Null => Ok((k, String::new())),
            // `{value: …, description: …}` form of a variable.
            Value::Mapping(m) => match m.get("value") {
                Some(Value::String(s)) => Ok((k, s.clone())),
                _ => Err(serde::de::Error::custom(format!(
                    "variable `{k}` has no string `value`"
                ))),
            },
            _ => Err(serde::de::Error::custom(format!(
                "variable `{k}` must be a scalar"
            ))),
        })
        .collect()
}

/// A script is a string or a list of strings (nested lists are flattened, as GitLab does).
fn script<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    fn flatten(v: Value, out: &mut Vec<String>) -> Result<(), String> {
        match v {
            Value::String(s) => out.push(s),
            Value::Sequence(items) => {
                for i in items {
                    flatten(i, out)?;
                }
            }
            Value::Null => {}
            other => {
                return Err(format!(
                    "script lines must be strings, found {}",
                    yaml::to_string(&other).trim()
                ));
            }
        }
        Ok(())
    }
    let v = Value::deserialize(d)?;
    let mut out = Vec::new();
    flatten(v, &mut out).map_err(serde::de::Error::custom)?;
    Ok(out)
}

impl Job {
    /// The job's part of [`Pipeline::into_child`]: `rules:` it did not have, taking over its
    /// job-level `when:`.
    pub fn make_child(&mut self) {
        if self.rules.is_empty() {
            self.rules = vec![Rule {
                when: Some(self.when.take().unwrap_or_else(|| "on_success".into())),
                ..Rule::default()
            }];
        }
    }

    /// The job with `settings` applied: its timeout, retry policy (replacing any other, such
    /// as Spack's own) and interruptibility; its variables and runner tags added (the job's
    /// own variables win).
    pub fn with_settings(mut self, settings: &crate::config::JobSettings) -> Job {
        if let Some(t) = &settings.timeout {
            self.timeout = Some(t.clone());
        }
        for (k, v) in &settings.variables {
            self.variables.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for t in settings.tags.iter().flatten() {
            if !self.tags.contains(t) {
                self.tags.push(t.clone());
            }
        }
        if let Some(r) = &settings.retry {
            self.retry = Some(Retry::Detailed {
                max: r.max,
                when: r.when.clone(),
            });
        }
        if settings.interruptible.is_some() {
            self.interruptible = settings.interruptible;
        }
        self
    }

    /// The job as it runs on the runner that mounts the shared SIF directory: a shell runner
    /// ignores `image:`, so there the job has none and finds the tools in the folder the
    /// configuration names (`sif_sync.tools_dir`, required for a shell runner).
    pub fn on_sync_runner(mut self, sync: &crate::config::SifSyncConfig) -> Job {
        if let (crate::config::Executor::Shell, Some(dir)) = (sync.executor, &sync.tools_dir) {
            self.image = None;
            self.script
                .insert(0, format!("export PATH={}:\"$PATH\"", shell_quote(dir)));
        }
        self
    }

    /// The job's image pulled with `policy` (the runner's `allowed_pull_policies`), when given.
    pub fn with_pull_policy(mut self, policy: Option<&[String]>) -> Job {
        let Some(policy) = policy else {
            return self;
        };
        let value = match policy {
            [one] => Value::String(one.clone()),
            many => Value::Sequence(many.iter().map(|p| Value::String(p.clone())).collect()),
        };
        self.image = match self.image.take() {
            Some(Image::Name(name)) => Some(Image::Detailed {
                name,
                entrypoint: None,
                pull_policy: Some(value),
            }),
            Some(Image::Detailed {
                name, entrypoint, ..
            }) => Some(Image::Detailed {
                name,
                entrypoint,
                pull_policy: Some(value),
            }),
            None => None,
        };
        self
    }

    /// The job given a Docker engine as `engine` says: a Docker-in-Docker service reached over
    /// TCP with TLS (the certificates shared through `/certs`, as GitLab documents it), or the
    /// runner's daemon at the address given. Docker's own variables tell the tools where. A
    /// `registry` named insecure is one the service's daemon may push to over plain HTTP (a
    /// runner's own daemon is its administrator's to configure).
    pub fn with_engine(
        mut self,
        engine: &crate::config::EngineConfig,
        registry: &crate::config::RegistryConfig,
    ) -> Job {
        use crate::config::EngineConfig;
        let vars: Vec<(&str, String)> = match engine {
            EngineConfig::Dind(image) => {
                let command = if registry.insecure {
                    vec![format!(
                        "--insecure-registry={}",
                        crate::reference::registry_host(&registry.url)
                    )]
                } else {
                    Vec::new()
                };
                self.services.push(Service {
                    name: image.clone(),
                    alias: Some("docker".into()),
                    command,
                });
                vec![
                    ("DOCKER_HOST", "tcp://docker:2376".into()),
                    ("DOCKER_TLS_CERTDIR", "/certs".into()),
                    ("DOCKER_TLS_VERIFY", "1".into()),
                    ("DOCKER_CERT_PATH", "/certs/client".into()),
                ]
            }
            EngineConfig::Host(address) => vec![("DOCKER_HOST", address.clone())],
        };
        for (k, v) in vars {
            self.variables.insert(k.to_string(), v);
        }
        self
    }
}

/// The parent-pipeline job that generates an architecture's build cache pipeline; its artifacts
/// hold the concretized environments (`envs/<arch>`) stage 3 builds from.
pub fn build_cache_generate_job(arch: &str) -> String {
    format!("generate build cache {arch}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dind_service_may_push_to_a_registry_named_insecure() {
        let mut registry = crate::config::RegistryConfig {
            url: "lab.example.org:5000/spacktainers".into(),
            credentials: None,
            insecure: false,
            public: None,
        };
        let dind = crate::config::EngineConfig::Dind("docker:27-dind".into());
        let job = Job::default().with_engine(&dind, &registry);
        assert!(job.services[0].command.is_empty());
        registry.insecure = true;
        let job = Job::default().with_engine(&dind, &registry);
        assert_eq!(
            job.services[0].command,
            ["--insecure-registry=lab.example.org:5000"]
        );
        assert_eq!(job.variables["DOCKER_HOST"], "tcp://docker:2376");
    }

    #[test]
    fn reserved_and_duplicate_names_are_refused() {
        let mut p = Pipeline::default();
        assert_eq!(
            p.add_job("stages", Job::default()),
            Err(CiError::ReservedName("stages".into()))
        );
        p.add_job("a", Job::default()).unwrap();
        assert_eq!(
            p.add_job("a", Job::default()),
            Err(CiError::Duplicate("a".into()))
        );
    }

    #[test]
    fn check_finds_unknown_needs_and_stages() {
        let mut p = Pipeline {
            stages: vec!["build".into()],
            ..Pipeline::default()
        };
        p.add_job(
            "a",
            Job {
                stage: Some("build".into()),
                needs: Some(vec![Need::job("b")]),
                ..Job::default()
            },
        )
        .unwrap();
        assert_eq!(
            p.check(),
            Err(CiError::UnknownNeed {
                job: "a".into(),
                need: "b".into()
            })
        );
        p.jobs["a"].needs = Some(vec![Need::other_pipeline(
            "$PARENT_PIPELINE_ID",
            "generate",
        )]);
        assert_eq!(p.check(), Ok(()));
        p.jobs["a"].stage = Some("test".into());
        assert!(matches!(p.check(), Err(CiError::UnknownStage { .. })));
        assert_eq!(Pipeline::default().check(), Err(CiError::Empty));
    }

    #[test]
    fn round_trip_keeps_unknown_job_keys() {
        let text = "stages: [a]\nvariables:\n  X: '1'\njob one:\n  stage: a\n  script: echo hi\n  coverage: '/\\d+/'\n  variables:\n    N: 3\n";
        let p = Pipeline::parse(Path::new("p.yml"), text).unwrap();
        let job = &p.jobs["job one"];
        assert_eq!(job.script, vec!["echo hi"]);
        assert_eq!(job.variables["N"], "3");
        assert!(job.extra.contains_key("coverage"));
        let again = Pipeline::parse(Path::new("p.yml"), &p.to_yaml()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn a_pipeline_is_its_own_keys_then_its_job_entries() {
        let long = format!(
            "py-numpy@2.1.0 /{} %gcc@13.2.0 arch=linux-x86_64_v3",
            "a".repeat(120)
        );
        let mut full = Pipeline {
            stages: vec!["stage-0".into()],
            variables: [("A".to_string(), "1".to_string())].into(),
            ..Pipeline::default()
        }
        .into_child();
        let header = full.clone();
        for (name, script) in [
            ("plain", vec!["echo hi".to_string()]),
            (
                long.as_str(),
                vec!["a\n\nb\n  c".to_string(), "'q': x".into()],
            ),
            ("- odd: name", vec![String::new()]),
        ] {
            let mut job = Job {
                stage: Some("stage-0".into()),
                script,
                when: Some("always".into()),
                ..Job::default()
            };
            job.make_child();
            full.jobs.insert(name.to_string(), job);
        }
        let entries: Vec<String> = full.jobs.iter().map(|(n, j)| job_entry(n, j)).collect();
        let text = header.to_yaml_with(entries.iter().map(String::as_str));
        assert_eq!(text, full.to_yaml());
        assert_eq!(
            text.len(),
            header.to_yaml().len() + full.jobs.iter().map(|(n, j)| job_size(n, j)).sum::<usize>()
        );
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
