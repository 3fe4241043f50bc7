//! The runners a project has: their tags, whether they take untagged jobs, their executor
//! (Docker, or a shell on a machine that ignores `image:`) and the pull policies they allow;
//! which one takes a job.

use std::collections::BTreeSet;
use std::fmt;

/// How a runner runs a job's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executor {
    /// In the job's `image:` (or the default image).
    Docker,
    /// On the runner's own machine, whatever the job's `image:` says: "executes builds
    /// locally on the machine where GitLab Runner is installed"
    /// (https://docs.gitlab.com/runner/executors/shell/). The machine is modelled by a fixed
    /// image; `None` is the default image.
    Shell { host_image: Option<String> },
}

/// One registered runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerSpec {
    pub tags: BTreeSet<String>,
    pub run_untagged: bool,
    pub executor: Executor,
    /// `allowed_pull_policies` of the Docker executor; when not set "the list matches the
    /// values specified in the `pull_policy`" of the runner, `always` by default
    /// (https://docs.gitlab.com/runner/executors/docker/#allow-docker-pull-policies).
    pub allowed_pull_policies: Vec<String>,
    /// The platform of the runner's machine (`linux/arm64`), when it is not this one's: its
    /// Docker daemon pulls and runs a multi-platform image's variant for its own platform, so
    /// a runner on an arm64 host (an AWS Graviton) runs arm64 containers without any
    /// `image:docker:platform` in the job (that keyword, https://docs.gitlab.com/ci/yaml/#imagedocker,
    /// is for running another platform than the host's; GitLab Runner's own configuration
    /// has no platform setting: https://gitlab.com/gitlab-org/gitlab-runner/-/issues/28653).
    /// Modelled here on one daemon with `docker run --platform`, emulated.
    pub platform: Option<String>,
}

pub const PULL_POLICIES: &[&str] = &["always", "if-not-present", "never"];

impl RunnerSpec {
    /// A runner with no tags that runs untagged jobs: what a runner registered without tags
    /// is, and what this runner was before it knew runners.
    pub fn untagged_docker() -> RunnerSpec {
        RunnerSpec {
            tags: BTreeSet::new(),
            run_untagged: true,
            executor: Executor::Docker,
            allowed_pull_policies: vec!["always".into()],
            platform: None,
        }
    }

    /// `TAGS[:EXECUTOR[:OPTIONS[:HOST_IMAGE]]]`: comma-separated tags (`-` or empty for
    /// none); `docker` (default) or `shell`; comma-separated options `run-untagged`,
    /// `pull=POLICY` (repeatable: the allowed pull policies) and `platform=OS/ARCH` (the
    /// machine's platform, `linux/arm64`); for a shell runner, the image standing for its
    /// machine (the rest of the text, colons included).
    ///
    /// "Run untagged jobs" defaults to false for a runner registered with tags and true for
    /// one without (`gitlab-runner register --run-untagged`,
    /// https://gitlab.com/gitlab-org/gitlab-runner/-/merge_requests/438; "When you register a
    /// runner, its default behavior is to only pick tagged jobs",
    /// https://docs.gitlab.com/ci/runners/configure_runners/#use-tags-to-control-which-jobs-a-runner-can-run).
    pub fn parse(text: &str) -> Result<RunnerSpec, String> {
        let mut parts = text.splitn(4, ':');
        let tags: BTreeSet<String> = parts
            .next()
            .unwrap_or_default()
            .split(',')
            .filter(|t| !t.is_empty() && *t != "-")
            .map(str::to_string)
            .collect();
        let executor = parts.next().unwrap_or("docker");
        let options = parts.next().unwrap_or_default();
        let host_image = parts.next().filter(|i| !i.is_empty()).map(str::to_string);
        let executor = match executor {
            "" | "docker" if host_image.is_none() => Executor::Docker,
            "docker" => {
                return Err(format!(
                    "runner `{text}`: a host image is for shell runners"
                ));
            }
            "shell" => Executor::Shell { host_image },
            other => {
                return Err(format!(
                    "runner `{text}`: no executor `{other}` (docker, shell)"
                ));
            }
        };
        let mut spec = RunnerSpec {
            run_untagged: tags.is_empty(),
            tags,
            executor,
            allowed_pull_policies: Vec::new(),
            platform: None,
        };
        for option in options.split(',').filter(|o| !o.is_empty()) {
            match option.split_once('=') {
                None if option == "run-untagged" => spec.run_untagged = true,
                Some(("pull", p)) if PULL_POLICIES.contains(&p) => {
                    spec.allowed_pull_policies.push(p.to_string())
                }
                Some(("platform", p)) if valid_platform(p) && spec.platform.is_none() => {
                    spec.platform = Some(p.to_string())
                }
                _ => {
                    return Err(format!(
                        "runner `{text}`: no option `{option}` (run-untagged, pull=always|if-not-present|never, platform=OS/ARCH once)"
                    ));
                }
            }
        }
        if spec.allowed_pull_policies.is_empty() {
            spec.allowed_pull_policies.push("always".into());
        }
        if !spec.run_untagged && spec.tags.is_empty() {
            // GitLab requires tags or "Run untagged jobs" to create a runner
            // (https://gitlab.com/gitlab-org/gitlab/-/issues/395646).
            return Err(format!(
                "runner `{text}` has no tags and runs no untagged job"
            ));
        }
        Ok(spec)
    }

    /// "To pick up and run a job, a runner must be assigned every tag listed in the job"
    /// (https://docs.gitlab.com/ci/yaml/#tags); an untagged job only goes to a runner that
    /// runs untagged jobs.
    pub fn takes(&self, job_tags: &[String]) -> bool {
        if job_tags.is_empty() {
            return self.run_untagged;
        }
        job_tags.iter().all(|t| self.tags.contains(t))
    }
}

impl fmt::Display for RunnerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
        let executor = match &self.executor {
            Executor::Docker => "docker",
            Executor::Shell { .. } => "shell",
        };
        write!(
            f,
            "{}:{executor}",
            if tags.is_empty() {
                "-".to_string()
            } else {
                tags.join(",")
            }
        )?;
        let mut options = Vec::new();
        if self.run_untagged && !self.tags.is_empty() {
            options.push("run-untagged".to_string());
        }
        if let Some(p) = &self.platform {
            options.push(format!("platform={p}"));
        }
        if !options.is_empty() {
            write!(f, ":{}", options.join(","))?;
        }
        Ok(())
    }
}

/// `OS/ARCH[/VARIANT]`, as `docker run --platform` takes it: `linux/arm64`, `linux/arm/v7`.
fn valid_platform(p: &str) -> bool {
    let parts: Vec<&str> = p.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// The first runner that takes a job with `tags`, or the error GitLab leaves unsaid: such a
/// job stays pending forever ("stuck", no runner with its tags).
pub fn choose<'a>(
    runners: &'a [RunnerSpec],
    job: &str,
    tags: &[String],
) -> Result<&'a RunnerSpec, String> {
    runners.iter().find(|r| r.takes(tags)).ok_or_else(|| {
        if tags.is_empty() {
            format!("job `{job}` has no tags and no runner runs untagged jobs: it would stay pending")
        } else {
            format!(
                "job `{job}` needs a runner with tags [{}]; none has them all: it would stay pending",
                tags.join(", ")
            )
        }
    })
}

/// The pull policy a Docker runner pulls a job's image with: the job's own (`image:
/// pull_policy`, one or a list) among the runner's allowed ones, else the job fails as the
/// runner fails it: "the configured PullPolicies ([always]) are not allowed by
/// AllowedPullPolicies ([never])", a system failure (https://docs.gitlab.com/ci/yaml/#imagepull_policy).
/// A job without a pull policy gets the runner's own, here the first allowed one.
pub fn pull_policy(
    runner: &RunnerSpec,
    image: &str,
    job_policies: &[String],
) -> Result<String, String> {
    if job_policies.is_empty() {
        return Ok(runner.allowed_pull_policies[0].clone());
    }
    job_policies
        .iter()
        .find(|p| runner.allowed_pull_policies.contains(p))
        .cloned()
        .ok_or_else(|| {
            format!(
                "failed to pull image '{image}': pull_policy ([{}]) defined in GitLab pipeline config is not one of the allowed_pull_policies ([{}])",
                job_policies.join(" "),
                runner.allowed_pull_policies.join(" ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runner_specs_parse() {
        let local = RunnerSpec::parse("local:docker:run-untagged").unwrap();
        assert_eq!(local.tags, ["local".to_string()].into());
        assert!(local.run_untagged);
        assert_eq!(local.executor, Executor::Docker);
        let shell = RunnerSpec::parse("bb5_map:shell").unwrap();
        assert!(
            !shell.run_untagged,
            "a runner with tags takes no untagged job by default"
        );
        assert_eq!(shell.executor, Executor::Shell { host_image: None });
        let host = RunnerSpec::parse("a,b:shell::localhost:5000/host:1").unwrap();
        assert_eq!(
            host.executor,
            Executor::Shell {
                host_image: Some("localhost:5000/host:1".into())
            }
        );
        assert_eq!(host.tags.len(), 2);
        let untagged = RunnerSpec::parse("-").unwrap();
        assert!(
            untagged.run_untagged,
            "a runner without tags runs untagged jobs"
        );
        let pull = RunnerSpec::parse("x:docker:pull=never,pull=if-not-present").unwrap();
        assert_eq!(pull.allowed_pull_policies, ["never", "if-not-present"]);
        assert!(RunnerSpec::parse("x:kubernetes").is_err());
        assert!(RunnerSpec::parse("x:docker:fast").is_err());
        assert!(RunnerSpec::parse("x:docker::img").is_err());
        assert_eq!(local.to_string(), "local:docker:run-untagged");
        assert_eq!(local.platform, None);
    }

    /// A runner on an arm64 machine: its jobs' containers are arm64 ones.
    #[test]
    fn a_runner_names_its_machine_platform() {
        let arm = RunnerSpec::parse("local-arm64:docker:platform=linux/arm64").unwrap();
        assert_eq!(arm.platform.as_deref(), Some("linux/arm64"));
        assert!(!arm.run_untagged);
        assert_eq!(arm.to_string(), "local-arm64:docker:platform=linux/arm64");
        let both = RunnerSpec::parse("a:docker:run-untagged,platform=linux/arm/v7").unwrap();
        assert_eq!(
            both.to_string(),
            "a:docker:run-untagged,platform=linux/arm/v7"
        );
        for bad in [
            "a:docker:platform=arm64",
            "a:docker:platform=linux/",
            "a:docker:platform=linux/arm64/v8/x",
            "a:docker:platform=linux/arm64,platform=linux/amd64",
        ] {
            let err = RunnerSpec::parse(bad).unwrap_err();
            assert!(err.contains("platform=OS/ARCH"), "{bad}: {err}");
        }
    }

    /// https://docs.gitlab.com/ci/yaml/#tags: a runner "must be assigned every tag listed in
    /// the job"; untagged jobs only on runners that run untagged jobs; otherwise pending.
    #[test]
    fn a_job_goes_to_a_runner_with_all_its_tags() {
        let runners = vec![
            RunnerSpec::parse("bb5_map:shell").unwrap(),
            RunnerSpec::parse("local,big:docker").unwrap(),
        ];
        assert_eq!(
            choose(&runners, "j", &tags(&["bb5_map"])).unwrap(),
            &runners[0]
        );
        assert_eq!(
            choose(&runners, "j", &tags(&["local"])).unwrap(),
            &runners[1]
        );
        assert_eq!(
            choose(&runners, "j", &tags(&["big", "local"])).unwrap(),
            &runners[1]
        );
        let err = choose(&runners, "build", &tags(&["local", "gpu"])).unwrap_err();
        assert!(
            err.contains("`build`") && err.contains("local, gpu"),
            "{err}"
        );
        let err = choose(&runners, "lint", &[]).unwrap_err();
        assert!(err.contains("untagged"), "{err}");
        let mut with_untagged = runners.clone();
        with_untagged.push(RunnerSpec::parse("other:docker:run-untagged").unwrap());
        assert_eq!(
            choose(&with_untagged, "lint", &[]).unwrap(),
            &with_untagged[2]
        );
    }

    /// https://docs.gitlab.com/ci/yaml/#imagepull_policy: a policy the runner does not allow
    /// fails the job; by default only the runner's own (`always`) is allowed.
    #[test]
    fn pull_policies_the_runner_does_not_allow_fail_the_job() {
        let default = RunnerSpec::untagged_docker();
        assert_eq!(pull_policy(&default, "i", &[]).unwrap(), "always");
        assert_eq!(
            pull_policy(&default, "i", &tags(&["always"])).unwrap(),
            "always"
        );
        let err = pull_policy(&default, "img", &tags(&["if-not-present"])).unwrap_err();
        assert_eq!(
            err,
            "failed to pull image 'img': pull_policy ([if-not-present]) defined in GitLab pipeline config is not one of the allowed_pull_policies ([always])"
        );
        let lax = RunnerSpec::parse("-:docker:pull=never,pull=if-not-present").unwrap();
        assert_eq!(
            pull_policy(&lax, "i", &tags(&["always", "if-not-present"])).unwrap(),
            "if-not-present"
        );
    }
}
