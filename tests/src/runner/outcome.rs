//! What happens after a job ends as GitLab decides it: why it failed, whether it is retried,
//! whether a later job runs or is skipped (`when`, `allow_failure`), and the pipeline's status.

use std::time::Duration;

use model::ci::Retry;

/// GitLab's failure reasons for what can go wrong here
/// (https://docs.gitlab.com/ci/yaml/#retrywhen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// "The script failed", and "the runner failed to pull the Docker image".
    ScriptFailure,
    /// "The script exceeded the maximum execution time set for the job".
    JobExecutionTimeout,
    /// "A runner system failure (for example, job setup failed)", and a pull policy the
    /// runner does not allow ("Job failed (system failure)").
    RunnerSystemFailure,
    /// A trigger job whose downstream pipeline could not be created ("downstream pipeline
    /// can not be created"). Trigger jobs are never retried: `retry` is not among the
    /// keywords a trigger job can use (https://docs.gitlab.com/ci/yaml/#trigger).
    DownstreamPipelineCreationFailed,
    /// A trigger job with `strategy: depend` whose downstream pipeline failed.
    UnknownFailure,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ScriptFailure => "script_failure",
            FailureReason::JobExecutionTimeout => "job_execution_timeout",
            FailureReason::RunnerSystemFailure => "runner_system_failure",
            FailureReason::DownstreamPipelineCreationFailed => {
                "downstream_pipeline_creation_failed"
            }
            FailureReason::UnknownFailure => "unknown_failure",
        }
    }
}

/// Why `docker run` failed: a timeout; exit 125 is Docker's own error (the container did not
/// start): a failed image pull is a `script_failure` as GitLab documents it, anything else a
/// runner system failure; any other status is the script's.
pub fn classify(exit_code: Option<i32>, timed_out: Option<Duration>, log: &str) -> FailureReason {
    if timed_out.is_some() {
        return FailureReason::JobExecutionTimeout;
    }
    if exit_code == Some(125) {
        let pull = [
            "Unable to find image",
            "pull access denied",
            "manifest unknown",
        ];
        if pull.iter().any(|p| log.contains(p)) {
            return FailureReason::ScriptFailure;
        }
        return FailureReason::RunnerSystemFailure;
    }
    FailureReason::ScriptFailure
}

/// Whether a job that failed for `reason` after `attempts` runs is run again: "When a job
/// fails, the job is processed up to two more times, until it succeeds or reaches the maximum
/// number of retries"; "By default, all failure types cause the job to be retried"
/// (`retry:when` default `always`, https://docs.gitlab.com/ci/yaml/#retry).
pub fn retries(retry: Option<&Retry>, attempts: u32, reason: FailureReason) -> bool {
    let (max, when): (u8, &[String]) = match retry {
        None => return false,
        Some(Retry::Max(m)) => (*m, &[]),
        Some(Retry::Detailed { max, when }) => (*max, when),
    };
    attempts <= u32::from(max)
        && (when.is_empty() || when.iter().any(|w| w == "always" || w == reason.as_str()))
}

/// How a job of the pipeline ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Success,
    Failed { allow_failure: bool },
    Skipped,
}

/// The status of a group of ended jobs as GitLab composes it (`Gitlab::Ci::Status::Composite`):
/// failed when one failed without `allow_failure` ("Jobs with `allow_failure: true` ... are
/// considered successful, even if they failed"); skipped when all were skipped (or there
/// were none); success otherwise.
pub fn composite(statuses: &[Status]) -> Status {
    if statuses.iter().any(|s| {
        matches!(
            s,
            Status::Failed {
                allow_failure: false
            }
        )
    }) {
        return Status::Failed {
            allow_failure: false,
        };
    }
    if statuses.iter().all(|s| *s == Status::Skipped) {
        return Status::Skipped;
    }
    Status::Success
}

/// Whether a job added with `when` runs, given the jobs it waits for (`needs`, or every job
/// of the earlier stages) (https://docs.gitlab.com/ci/yaml/#when): `on_success` "only when no
/// jobs in earlier stages fail", `on_failure` "only when at least one job in an earlier
/// stage fails", `always` "regardless of the status of jobs in earlier stages". With `needs`
/// the jobs needed must have succeeded: a skipped need skips the job too, whereas skipped
/// jobs of earlier stages count as successful (`Ci::ProcessBuildService`: DAG jobs accept
/// `success`, stage jobs `success` or `skipped`).
pub fn runs(when: &str, waits_for: &[Status], by_needs: bool) -> bool {
    let before = composite(waits_for);
    let failed = matches!(before, Status::Failed { .. });
    match when {
        "always" => true,
        "on_failure" => failed,
        _ if by_needs && !waits_for.is_empty() => before == Status::Success,
        _ => !failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED: Status = Status::Failed {
        allow_failure: false,
    };
    const ALLOWED: Status = Status::Failed {
        allow_failure: true,
    };

    #[test]
    fn failure_reasons() {
        assert_eq!(classify(Some(1), None, ""), FailureReason::ScriptFailure);
        assert_eq!(
            classify(None, Some(Duration::from_secs(3)), ""),
            FailureReason::JobExecutionTimeout
        );
        assert_eq!(
            classify(
                Some(125),
                None,
                "docker: Error response from daemon: invalid mount config"
            ),
            FailureReason::RunnerSystemFailure
        );
        assert_eq!(
            classify(
                Some(125),
                None,
                "Unable to find image 'x:1' locally\nmanifest unknown"
            ),
            FailureReason::ScriptFailure
        );
    }

    /// https://docs.gitlab.com/ci/yaml/#retry: `retry: N` retries any failure up to N times;
    /// `retry: {max, when}` only the listed failure types.
    #[test]
    fn retry_decisions() {
        use FailureReason::*;
        assert!(!retries(None, 1, ScriptFailure));
        let two = Retry::Max(2);
        assert!(retries(Some(&two), 1, ScriptFailure));
        assert!(retries(Some(&two), 2, JobExecutionTimeout));
        assert!(
            !retries(Some(&two), 3, ScriptFailure),
            "three attempts at most"
        );
        let system = Retry::Detailed {
            max: 2,
            when: vec!["runner_system_failure".into()],
        };
        assert!(retries(Some(&system), 1, RunnerSystemFailure));
        assert!(!retries(Some(&system), 1, ScriptFailure));
        // Spack's generated jobs list stuck_or_timeout_failure, which a job timeout is not.
        let spack = Retry::Detailed {
            max: 2,
            when: vec!["stuck_or_timeout_failure".into()],
        };
        assert!(!retries(Some(&spack), 1, JobExecutionTimeout));
        let always = Retry::Detailed {
            max: 1,
            when: vec!["always".into()],
        };
        assert!(retries(Some(&always), 1, RunnerSystemFailure));
        assert!(!retries(Some(&always), 2, RunnerSystemFailure));
    }

    /// https://docs.gitlab.com/ci/yaml/#when and #allow_failure.
    #[test]
    fn later_jobs_after_a_failure() {
        // on_success after a failure is skipped; always runs; on_failure only then.
        assert!(!runs("on_success", &[Status::Success, FAILED], false));
        assert!(runs("always", &[FAILED], false));
        assert!(runs("always", &[FAILED], true));
        assert!(runs("on_failure", &[FAILED], false));
        assert!(!runs("on_failure", &[Status::Success], false));
        // A failure allowed to fail counts as a success.
        assert!(runs("on_success", &[ALLOWED], false));
        assert!(runs("on_success", &[ALLOWED], true));
        assert!(!runs("on_failure", &[ALLOWED], false));
        // A skipped need skips the job; a skipped job of an earlier stage does not.
        assert!(!runs("on_success", &[Status::Skipped], true));
        assert!(runs("on_success", &[Status::Skipped], false));
        // Nothing to wait for: runs (first stage, `needs: []`).
        assert!(runs("on_success", &[], true));
        assert!(!runs("on_failure", &[], false));
    }

    #[test]
    fn pipeline_status() {
        assert_eq!(composite(&[Status::Success, ALLOWED]), Status::Success);
        assert_eq!(
            composite(&[Status::Success, FAILED, Status::Skipped]),
            FAILED
        );
        assert_eq!(composite(&[Status::Skipped]), Status::Skipped);
    }
}
