//! Running one job's script in a container on the Docker daemon, with its variables in a
//! private env file, its timeout, and its artifacts and dotenv report collected afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use model::ci::Artifacts;

use super::{RunnerError, expand, io};

/// How to start the container.
pub struct Container<'a> {
    pub docker_host: &'a str,
    /// The job's folder: `job.env` (while the job runs), `job.sh`, `job.log`, `artifacts/`.
    pub work: &'a Path,
    /// The project copy, mounted at `/builds/project`.
    pub dir: &'a Path,
    pub image: &'a str,
    /// `--pull` of `docker run`: `always`, `missing` or `never`.
    pub pull: &'a str,
    /// `--platform` of `docker run`: the runner's machine's, when it is not the daemon's.
    pub platform: Option<&'a str>,
    pub volumes: &'a [(PathBuf, PathBuf)],
    pub timeout: Duration,
}

/// How `docker run` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub timed_out: Option<Duration>,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0) && self.timed_out.is_none()
    }

    pub fn describe(&self) -> String {
        match (self.timed_out, self.code) {
            (Some(t), _) => format!("timed out after {t:?}"),
            (None, c) => format!("exit status {}", c.unwrap_or(-1)),
        }
    }
}

fn write_env(work: &Path, vars: &BTreeMap<String, String>) -> Result<PathBuf, RunnerError> {
    // The variables, secrets among them, go in a file only this user reads.
    let env_file = work.join("job.env");
    let mut env = String::new();
    for (k, v) in vars {
        if v.contains('\n') {
            return Err(io("variables", format!("{k} holds a newline")));
        }
        env.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(&env_file, env).map_err(|e| io("env file", e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("env file", e))?;
    Ok(env_file)
}

/// A container name no other runner on the daemon uses at the same time (tests run several
/// runners at once, each numbering its jobs from 1): the job folder's, made unique by a hash
/// of its path.
fn container_name(work: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    work.hash(&mut h);
    let job = work.file_name().unwrap_or_default().to_string_lossy();
    format!("ci-runner-{job}-{:016x}", h.finish())
}

/// This runner stands for several machines on one daemon: a multi-platform image pinned by
/// its index digest (`repo@sha256:…`) that a job of another platform pulled is held under that
/// digest for the other platform, and Docker 20.10 refuses to pull it for this one ("Cannot
/// overwrite digest"). A machine of this platform would never have had it: the reference is
/// dropped (the image stays for the containers running it) so that the pull takes this
/// platform's image.
fn make_way_for_platform(c: &Container) {
    if !c.image.contains("@sha256:") || c.pull == "never" {
        return;
    }
    let wanted = c
        .platform
        .map(str::to_string)
        .unwrap_or_else(|| format!("linux/{}", host_arch()));
    let Ok(out) = Command::new("docker")
        .env("DOCKER_HOST", c.docker_host)
        .args([
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}}",
            c.image,
        ])
        .output()
    else {
        return;
    };
    let local = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !same_platform(&local, &wanted) {
        let _ = Command::new("docker")
            .env("DOCKER_HOST", c.docker_host)
            .args(["image", "rm", "--force", c.image])
            .output();
    }
}

/// This machine's architecture as Docker names it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether an image of `local` (`os/arch`) serves `wanted` (`os/arch[/variant]`).
fn same_platform(local: &str, wanted: &str) -> bool {
    let os_arch = |p: &str| p.split('/').take(2).collect::<Vec<_>>().join("/");
    os_arch(local) == os_arch(wanted)
}

/// Run `script` (before_script and script lines) in `c`.
pub fn docker_run(
    c: &Container,
    script_lines: &[String],
    vars: &BTreeMap<String, String>,
) -> Result<Exit, RunnerError> {
    let env_file = write_env(c.work, vars)?;
    let mut script = String::from("set -e\ncd /builds/project\n");
    for line in script_lines {
        script.push_str(line);
        script.push('\n');
    }
    std::fs::write(c.work.join("job.sh"), script).map_err(|e| io("job script", e))?;
    let container = container_name(c.work);
    make_way_for_platform(c);
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", c.docker_host)
        .args(["run", "--rm", "--name", &container, "--network", "host"])
        .args(["--pull", c.pull]);
    if let Some(p) = c.platform {
        cmd.args(["--platform", p]);
    }
    cmd.arg("--env-file")
        .arg(&env_file)
        .arg("-v")
        .arg(format!("{}:/builds/project", c.dir.display()))
        .arg("-v")
        .arg(format!(
            "{}:/builds/job.sh:ro",
            c.work.join("job.sh").display()
        ));
    for (host, inside) in c.volumes {
        cmd.arg("-v")
            .arg(format!("{}:{}", host.display(), inside.display()));
    }
    cmd.args(["--entrypoint", "/bin/sh", c.image, "/builds/job.sh"]);
    let log = c.work.join("job.log");
    let out = std::fs::File::create(&log).map_err(|e| io("job log", e))?;
    let err = out.try_clone().map_err(|e| io("job log", e))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| io("docker", e))?;
    let exit = wait(child, c, &container);
    // Like GitLab's runners, leave no variable (secrets among them) behind once the job ended.
    let _ = std::fs::remove_file(&env_file);
    exit
}

/// Wait for the job's `docker run`, killing its container after the job's timeout.
///
/// The wait blocks on the process itself (in a thread, so the timeout can still kill it)
/// rather than polling it: a job's duration is then the job's own, not rounded up to the next
/// poll. GitLab's Jobs API reports it as `finished_at - started_at` in fractional seconds
/// (`duration`, https://docs.gitlab.com/ee/api/jobs.html).
fn wait(
    mut child: std::process::Child,
    c: &Container,
    container: &str,
) -> Result<Exit, RunnerError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    let timed_out = match rx.recv_timeout(c.timeout) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => None,
        Err(RecvTimeoutError::Timeout) => {
            let _ = Command::new("docker")
                .env("DOCKER_HOST", c.docker_host)
                .args(["kill", container])
                .status();
            Some(c.timeout)
        }
    };
    let status = waiter
        .join()
        .map_err(|_| io("docker", "the thread waiting for `docker run` panicked"))?
        .map_err(|e| io("docker", e))?;
    Ok(Exit {
        code: if timed_out.is_some() {
            None
        } else {
            status.code()
        },
        timed_out,
    })
}

/// The last lines of a job's log, for error messages.
pub fn log_tail(work: &Path) -> String {
    let text = std::fs::read_to_string(work.join("job.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub fn copy_tree(from: &Path, to: &Path) -> Result<(), RunnerError> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .map_err(|e| io("cp", e))?;
    if !status.success() {
        return Err(io(
            "copying",
            format!("{} to {}", from.display(), to.display()),
        ));
    }
    Ok(())
}

/// A job's artifacts: where they were copied, and its dotenv report's variables (`Err` with
/// a message when the report is missing or malformed).
pub struct Collected {
    pub store: PathBuf,
    pub dotenv: Result<BTreeMap<String, String>, String>,
}

/// The job's `artifacts:paths` copied out of `dir` into `work/artifacts`, and its dotenv
/// report read.
pub fn collect(
    a: &Artifacts,
    work: &Path,
    dir: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<Collected, RunnerError> {
    let store = work.join("artifacts");
    std::fs::create_dir_all(&store).map_err(|e| io("artifacts", e))?;
    for path in &a.paths {
        let path = expand(path, vars);
        let from = dir.join(&path);
        if !from.exists() {
            continue;
        }
        let to = store.join(&path);
        std::fs::create_dir_all(to.parent().expect("a relative path"))
            .map_err(|e| io("artifacts", e))?;
        let ok = Command::new("cp")
            .arg("-a")
            .arg(&from)
            .arg(&to)
            .status()
            .map_err(|e| io("cp", e))?
            .success();
        if !ok {
            return Err(io("artifacts", format!("copying {path}")));
        }
    }
    let mut dotenv = BTreeMap::new();
    if let Some(file) = a.extra.get("reports").and_then(|r| r.get("dotenv")) {
        let file = file.as_str().unwrap_or_default();
        let text = match std::fs::read_to_string(dir.join(file)) {
            Ok(t) => t,
            Err(e) => {
                let dotenv = Err(format!("dotenv report {file}: {e}"));
                return Ok(Collected { store, dotenv });
            }
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Some((k, v)) = line.split_once('=') else {
                let dotenv = Err(format!("dotenv report {file}: `{line}`"));
                return Ok(Collected { store, dotenv });
            };
            dotenv.insert(k.to_string(), v.to_string());
        }
    }
    Ok(Collected {
        store,
        dotenv: Ok(dotenv),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_compare_by_os_and_architecture() {
        assert!(same_platform("linux/arm64", "linux/arm64"));
        assert!(same_platform("linux/arm64", "linux/arm64/v8"));
        assert!(!same_platform("linux/amd64", "linux/arm64"));
        assert!(!same_platform("linux/arm64", "linux/amd64"));
    }
}
