//! What Apptainer's conversion of an OCI image adds to its root filesystem — `/.singularity.d`
//! (environment scripts, runscript, startscript, actions, labels, definition), the top-level
//! links and the files it binds over — and the metadata `apptainer inspect` shows of it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use model::ci::shell_quote;
use model::sif::definition::SingularityDef;
use oci::registry::Resolved;

/// What the skeleton is made from.
pub struct Skeleton<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub deffile: &'a str,
    pub image: &'a Resolved,
    pub def: Option<&'a SingularityDef>,
}

/// What `inspect --environment`, `--runscript` and `--startscript` show, by path.
pub struct Inspected {
    pub environment: BTreeMap<String, String>,
    pub runscript: String,
    pub startscript: String,
    pub helpfile: Option<String>,
    /// What the skeleton wrote over the image's, relative to the root.
    pub written: Vec<std::path::PathBuf>,
}

const ENV_DIR: &str = ".singularity.d/env";
/// The image's `Env`, and the definition's `%environment`: the two `inspect` shows.
const DOCKER_ENV: &str = "10-docker2singularity.sh";
const DEF_ENV: &str = "90-environment.sh";

impl Skeleton<'_> {
    /// Write it into `root`, replacing what the image had at those paths.
    pub fn write(&self, root: &Path) -> anyhow::Result<Inspected> {
        let d = root.join(".singularity.d");
        fresh_singularity_dir(&d)?;
        bind_targets(root)?;
        let mut labels = serde_json::to_string_pretty(self.labels)?;
        labels.push('\n');
        write(&d.join("labels.json"), &labels, 0o644)?;
        write(&d.join("Singularity"), self.deffile, 0o644)?;
        let (docker_env, def_env) = self.environment_scripts(root)?;
        let (runscript, startscript, helpfile) = self.scripts(&d)?;
        for (name, script) in ACTIONS {
            write(
                &d.join("actions").join(name),
                &format!("{ACTION_PRELUDE}{script}"),
                0o755,
            )?;
        }
        let mut written: Vec<std::path::PathBuf> =
            [".singularity.d", "etc/hosts", "etc/resolv.conf"]
                .map(Into::into)
                .into();
        written.extend(top_level_links(root)?);
        let environment = [(DOCKER_ENV, docker_env), (DEF_ENV, def_env)]
            .into_iter()
            .map(|(name, text)| (format!("/{ENV_DIR}/{name}"), text))
            .collect();
        Ok(Inspected {
            environment,
            runscript,
            startscript,
            helpfile,
            written,
        })
    }

    /// The definition's section `name`, when there is a definition and it has one.
    fn section(&self, name: &str) -> Option<String> {
        self.def.and_then(|d| d.section(name))
    }

    /// The scripts of `.singularity.d/env`, sourced in name order; the image's `Env` and the
    /// definition's `%environment` (the two `inspect` shows) are returned.
    fn environment_scripts(&self, root: &Path) -> std::io::Result<(String, String)> {
        let docker_env = docker_environment(&self.image.env);
        // `%environment` is sourced after the image's variables, so it can override them.
        let def_env = format!(
            "#!/bin/sh\n# The definition's %environment.\n{}",
            self.section("environment").unwrap_or_default()
        );
        let scripts: [(&str, &str); 7] = [
            ("01-base.sh", ENV_BASE),
            (DOCKER_ENV, &docker_env),
            (DEF_ENV, &def_env),
            // Apptainer writes these for SCIF apps (`%app*` sections, which only Apptainer
            // builds): the first empty, the second selecting the app `--app` names.
            ("94-appsbase.sh", ""),
            ("95-apps.sh", ENV_APPS),
            // Apptainer applies `--env` and `APPTAINERENV_*` right after this one: without it
            // they are silently dropped.
            ("99-base.sh", ENV_LAST),
            ("99-runtimevars.sh", ENV_RUNTIME_PATH),
        ];
        for (name, text) in scripts {
            write(&root.join(ENV_DIR).join(name), text, 0o755)?;
        }
        Ok((docker_env, def_env))
    }

    /// The help, startscript and runscript in `d` (`.singularity.d`): the definition's
    /// sections, or the image's entrypoint and command; returned as written (runscript,
    /// startscript, help).
    fn scripts(&self, d: &Path) -> std::io::Result<(String, String, Option<String>)> {
        // Trailing blank lines dropped, as Apptainer does.
        let helpfile = self.section("help").map(|h| h.trim_end().to_string());
        if let Some(help) = &helpfile {
            write(&d.join("runscript.help"), help, 0o644)?;
        }
        let startscript = format!(
            "#!/bin/sh\n{}",
            self.section("startscript").unwrap_or_default()
        );
        write(&d.join("startscript"), &startscript, 0o755)?;
        let runscript = match self.section("runscript") {
            Some(body) => format!("#!/bin/sh\n{body}"),
            None => oci_runscript(&self.image.entrypoint, &self.image.cmd),
        };
        write(&d.join("runscript"), &runscript, 0o755)?;
        Ok((runscript, startscript, helpfile))
    }
}

/// `d` (`.singularity.d`) made anew, with its `env`, `libs` and `actions` folders.
fn fresh_singularity_dir(d: &Path) -> std::io::Result<()> {
    // Ours to write, whole: an image's own `.singularity.d` (or a symlink in it) could point
    // anywhere, the build machine included.
    match d.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(d)?,
        Ok(_) => std::fs::remove_file(d)?,
        Err(_) => {}
    }
    for sub in ["env", "libs", "actions"] {
        std::fs::create_dir_all(d.join(sub))?;
    }
    Ok(())
}

/// The folders and files Apptainer binds the host's over, present and empty.
fn bind_targets(root: &Path) -> std::io::Result<()> {
    // The image's own symlinks are never followed out of it (an `etc` pointing at `/etc` would
    // be the build machine's): what lies behind one is left as the image has it.
    for dir in [
        "dev", "proc", "sys", "tmp", "root", "home", "etc", "var/tmp",
    ] {
        if !through_symlink(root, dir) {
            std::fs::create_dir_all(root.join(dir))?;
        }
    }
    // The build machine's must not stay in the image (resolv.conf) and a missing one draws a
    // warning on every run (hosts).
    for file in ["etc/hosts", "etc/resolv.conf"] {
        if through_symlink(root, "etc") {
            continue;
        }
        let path = root.join(file);
        if path.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(&path)?;
        }
        write(&path, "", 0o644)?;
    }
    Ok(())
}

/// The top-level links `apptainer build` makes, which older runtimes and users rely on; those
/// made, relative to `root` (a real folder of the image at that name stays).
fn top_level_links(root: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut made = Vec::new();
    for (link, target) in [
        ("singularity", ".singularity.d/runscript"),
        ("environment", ".singularity.d/env/90-environment.sh"),
        (".exec", ".singularity.d/actions/exec"),
        (".run", ".singularity.d/actions/run"),
        (".shell", ".singularity.d/actions/shell"),
        (".test", ".singularity.d/actions/test"),
    ] {
        let path = root.join(link);
        if path.symlink_metadata().is_ok() {
            if path.is_dir() && !path.is_symlink() {
                continue;
            }
            std::fs::remove_file(&path)?;
        }
        std::os::unix::fs::symlink(target, &path)?;
        made.push(link.into());
    }
    Ok(made)
}

/// The image config's `config`, as Apptainer stores it (`oci-config.json`): empty fields left
/// out, as Go's `omitempty` does — Docker's container-only fields (`Hostname`, `Tty`…) with them.
pub fn oci_config(config: &serde_json::Value) -> Option<serde_json::Value> {
    let serde_json::Value::Object(fields) = config else {
        return None;
    };
    let empty = |v: &serde_json::Value| match v {
        serde_json::Value::Null | serde_json::Value::Bool(false) => true,
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        serde_json::Value::Number(_) | serde_json::Value::Bool(true) => false,
    };
    Some(serde_json::Value::Object(
        fields
            .iter()
            .filter(|(_, v)| !empty(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))
}

/// Whether `rel` (below `root`) is, or passes through, a symlink.
fn through_symlink(root: &Path, rel: &str) -> bool {
    let mut path = root.to_path_buf();
    rel.split('/').any(|part| {
        path.push(part);
        path.symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
    })
}

fn write(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// `value` inside double quotes, read back by the shell as it is.
fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `10-docker2singularity.sh`: the image's `Env`, each a default a value set by the user
/// (`--env`, `APPTAINERENV_*`, the host's environment) wins over — except `PATH`, which is the
/// image's (Apptainer's `--env PATH=` and `APPEND_PATH`/`PREPEND_PATH` change it later).
pub fn docker_environment(env: &[String]) -> String {
    let mut out = String::from("#!/bin/sh\n");
    for kv in env {
        let (name, value) = kv.split_once('=').unwrap_or((kv, ""));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if name == "PATH" {
            out.push_str(&format!("export PATH={}\n", double_quoted(value)));
        } else {
            out.push_str(&format!(
                "export {name}=\"${{{name}:-{}}}\"\n",
                double_quoted(value)
            ));
        }
    }
    out
}

/// The runscript of an OCI image, as Apptainer runs `ENTRYPOINT` and `CMD`: the arguments
/// replace `CMD`; by default the command line goes through the shell once more (so `$HOME` in
/// an argument expands, while `CMD` and `ENTRYPOINT` stay as they are), and with `SINGULARITY_NO_EVAL` (`APPTAINER_NO_EVAL`, `--no-eval`) it is run as
/// it is, the OCI way.
pub fn oci_runscript(entrypoint: &[String], cmd: &[String]) -> String {
    // For the shell's second reading: each word double-quoted, read back as it is (only the
    // arguments of `run` are expanded).
    let evaluated = |words: &[String]| -> String {
        let quoted: Vec<String> = words.iter().map(|w| double_quoted(w)).collect();
        shell_quote(&quoted.join(" "))
    };
    let literal = |words: &[String]| -> String {
        words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = format!(
        "#!/bin/sh\nOCI_ENTRYPOINT={}\nOCI_CMD={}\n",
        evaluated(entrypoint),
        evaluated(cmd)
    );
    s.push_str("\nif [ -n \"${SINGULARITY_NO_EVAL:-}\" ]; then\n");
    if !cmd.is_empty() {
        s.push_str(&format!(
            "    if [ $# -eq 0 ]; then set -- {}; fi\n",
            literal(cmd)
        ));
    }
    if !entrypoint.is_empty() {
        s.push_str(&format!("    set -- {} \"$@\"\n", literal(entrypoint)));
    }
    s.push_str(OCI_RUN_EVALUATED);
    s
}

/// The rest of [`oci_runscript`]: the no-eval branch ends, then the shell's reading.
const OCI_RUN_EVALUATED: &str = r#"    exec "$@"
fi

# Each argument double-quoted, then the whole line read by the shell once more.
ARGS=""
for arg in "$@"; do
    ARGS="$ARGS \"$arg\""
done
if [ $# -gt 0 ]; then
    eval "set -- $OCI_ENTRYPOINT $ARGS"
else
    eval "set -- $OCI_ENTRYPOINT $OCI_CMD"
fi
exec "$@"
"#;

const ENV_BASE: &str =
    "#!/bin/sh\n# Sourced first: an image converted from OCI sets nothing here.\n";

const ENV_APPS: &str = r#"#!/bin/sh
# `--app NAME`: the SCIF app's folders and environment.
if [ -n "${SINGULARITY_APPNAME:-}" ]; then
    export SINGULARITY_APPNAME
    app=/scif/apps/$SINGULARITY_APPNAME
    if [ ! -d "$app/" ]; then
        echo "Could not locate the container application: $SINGULARITY_APPNAME"
        exit 1
    fi
    SCIF_APPS=/scif/apps
    SCIF_APPROOT=$app
    export SCIF_APPROOT SCIF_APPS
    PATH="$app:/scif/apps/singularity:$PATH"
    if [ -d "$app/bin" ]; then
        PATH="$app/bin:$PATH"
    elif [ -d /scif/apps/singularity/bin ]; then
        PATH="/scif/apps/singularity/bin:$PATH"
    fi
    for lib in "$app/lib" /scif/apps/singularity/lib; do
        if [ -d "$lib" ]; then
            LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
            export LD_LIBRARY_PATH
            break
        fi
    done
    for env in 01-base.sh 90-environment.sh; do
        for dir in "$app" /scif/apps/singularity; do
            if [ -f "$dir/scif/env/$env" ]; then
                . "$dir/scif/env/$env"
                break
            fi
        done
    done
    export PATH
fi
"#;

const ENV_LAST: &str = r#"#!/bin/sh
# Libraries Apptainer binds in (`--nv`, `--rocm`) are found last, after the image's own.
if [ -z "${LD_LIBRARY_PATH:-}" ]; then
    LD_LIBRARY_PATH=/.singularity.d/libs
else
    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"
fi
if [ -z "${PS1:-}" ]; then
    PS1="Apptainer> "
fi
export LD_LIBRARY_PATH PS1
"#;

const ENV_RUNTIME_PATH: &str = r#"#!/bin/sh
# `APPTAINERENV_PREPEND_PATH`, `APPTAINERENV_APPEND_PATH` and `--env PATH=`, as Apptainer passes
# them.
if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then
    PATH="$SING_USER_DEFINED_PREPEND_PATH:$PATH"
fi
if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then
    PATH="$PATH:$SING_USER_DEFINED_APPEND_PATH"
fi
if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then
    PATH="$SING_USER_DEFINED_PATH"
fi
unset SING_USER_DEFINED_PREPEND_PATH SING_USER_DEFINED_APPEND_PATH SING_USER_DEFINED_PATH
export PATH
"#;

/// What every action script starts with: the environment scripts, in order.
const ACTION_PRELUDE: &str = "#!/bin/sh\nfor script in /.singularity.d/env/*.sh; do\n    if [ -f \"$script\" ]; then\n        . \"$script\"\n    fi\ndone\n\n";

/// `.singularity.d/actions/*`: what `exec`, `run`, `shell`, `instance start` and `test` run in
/// the container, for runtimes that use the image's own scripts.
const ACTIONS: &[(&str, &str)] = &[
    ("exec", "exec \"$@\"\n"),
    (
        "run",
        r#"if [ -n "${SINGULARITY_APPNAME:-}" ]; then
    for script in "/scif/apps/$SINGULARITY_APPNAME/scif/runscript" /scif/apps/singularity/scif/runscript; do
        if [ -x "$script" ]; then exec "$script" "$@"; fi
    done
    echo "No runscript for contained app: $SINGULARITY_APPNAME"
    exit 1
fi
if [ -x /.singularity.d/runscript ]; then
    exec /.singularity.d/runscript "$@"
fi
echo "No runscript found, executing /bin/sh"
exec /bin/sh "$@"
"#,
    ),
    (
        "shell",
        r#"if [ -n "${SINGULARITY_SHELL:-}" ] && [ -x "$SINGULARITY_SHELL" ]; then
    exec $SINGULARITY_SHELL "$@"
fi
if [ -x /bin/bash ]; then
    SHELL=/bin/bash
    PS1="Apptainer ${APPTAINER_NAME:-}:\\w> "
    export SHELL PS1
    exec /bin/bash --norc "$@"
fi
SHELL=/bin/sh
export SHELL
exec /bin/sh "$@"
"#,
    ),
    (
        "start",
        "kill -CONT 1\nif [ -x /.singularity.d/startscript ]; then exec /.singularity.d/startscript; fi\n",
    ),
    (
        "test",
        r#"if [ -n "${SINGULARITY_APPNAME:-}" ]; then
    for script in "/scif/apps/$SINGULARITY_APPNAME/scif/test" /scif/apps/singularity/scif/test; do
        if [ -x "$script" ]; then exec "$script" "$@"; fi
    done
    echo "No tests for contained app: $SINGULARITY_APPNAME"
    exit 1
fi
if [ -x /.singularity.d/test ]; then
    exec /.singularity.d/test "$@"
fi
echo "No test found in container, executing /bin/sh -c true"
exec /bin/sh -c true
"#,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What `sh` makes of a script and arguments: each resulting word on a line.
    fn run_sh(script: &str, env: &[(&str, &str)], args: &[&str]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(
            &path,
            script.replace("exec \"$@\"", "{ printf '%s\\n' \"$@\"; exit 0; }"),
        )
        .unwrap();
        let out = Command::new("/bin/sh")
            .arg(&path)
            .args(args)
            .env_clear()
            .env("HOME", "/home/u")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn image_variables_are_defaults_the_user_overrides_and_path_is_the_images() {
        let env = docker_environment(&[
            "PATH=/opt/bin:/usr/bin:/bin".into(),
            "GREETING=hello \"world\" $HOME `x` \\".into(),
            "EMPTY=".into(),
            "bad-name=x".into(),
        ]);
        let print = "\nprintf '%s|' \"$PATH\" \"$GREETING\" \"$EMPTY\"\n";
        let script = format!("{env}{print}");
        assert_eq!(
            run_sh(&script, &[("PATH", "/usr/bin:/bin")], &[]),
            "/opt/bin:/usr/bin:/bin|hello \"world\" $HOME `x` \\||"
        );
        assert_eq!(
            run_sh(&script, &[("PATH", "/host"), ("GREETING", "mine")], &[]),
            "/opt/bin:/usr/bin:/bin|mine||"
        );
        assert!(!env.contains("bad-name"));
    }

    #[test]
    fn the_runscript_runs_entrypoint_and_cmd_as_apptainer_does() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let both = oci_runscript(&v(&["/bin/tool", "--x y"]), &v(&["$HOME", "it's"]));
        // By default the line is read by the shell again: `$HOME` in an argument expands, in
        // CMD it does not.
        assert_eq!(run_sh(&both, &[], &[]), "/bin/tool\n--x y\n$HOME\nit's\n");
        assert_eq!(
            run_sh(&both, &[], &["a b", "$HOME"]),
            "/bin/tool\n--x y\na b\n/home/u\n"
        );
        // SINGULARITY_NO_EVAL: as it is.
        let no_eval = [("SINGULARITY_NO_EVAL", "1")];
        assert_eq!(
            run_sh(&both, &no_eval, &[]),
            "/bin/tool\n--x y\n$HOME\nit's\n"
        );
        assert_eq!(run_sh(&both, &no_eval, &["$X"]), "/bin/tool\n--x y\n$X\n");
        let cmd_only = oci_runscript(&[], &v(&["echo", "hi"]));
        assert_eq!(run_sh(&cmd_only, &[], &[]), "echo\nhi\n");
        assert_eq!(run_sh(&cmd_only, &[], &["ls"]), "ls\n");
        assert_eq!(run_sh(&cmd_only, &no_eval, &["ls"]), "ls\n");
        let entry_only = oci_runscript(&v(&["/e"]), &[]);
        assert_eq!(run_sh(&entry_only, &[], &[]), "/e\n");
        assert_eq!(run_sh(&entry_only, &no_eval, &["1"]), "/e\n1\n");
    }

    #[test]
    fn the_oci_config_leaves_out_empty_fields() {
        let docker = serde_json::json!({
            "Hostname": "", "Tty": false, "Volumes": null, "Env": ["A=1"], "Cmd": ["sh"],
            "Labels": {}, "WorkingDir": "/w", "ArgsEscaped": true, "ExposedPorts": {"80/tcp": {}}
        });
        assert_eq!(
            oci_config(&docker),
            Some(serde_json::json!({
                "Env": ["A=1"], "Cmd": ["sh"], "WorkingDir": "/w", "ArgsEscaped": true,
                "ExposedPorts": {"80/tcp": {}}
            }))
        );
        assert_eq!(oci_config(&serde_json::Value::Null), None);
    }

    #[test]
    fn the_images_symlinks_never_lead_writes_out_of_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("host-etc"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("hosts"), "127.0.0.1 build-machine\n").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/nowhere", root.join("tmp")).unwrap();
        std::fs::create_dir_all(root.join(".singularity.d")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join(".singularity.d/env")).unwrap();
        let image = Resolved {
            manifest: oci::registry::Descriptor {
                media_type: String::new(),
                digest: "sha256:0".into(),
                ..Default::default()
            },
            index_digest: None,
            architecture: "amd64".into(),
            labels: BTreeMap::new(),
            layers: Vec::new(),
            env: Vec::new(),
            entrypoint: Vec::new(),
            cmd: vec!["sh".into()],
            config: serde_json::Value::Null,
        };
        let labels = BTreeMap::new();
        Skeleton {
            labels: &labels,
            deffile: "Bootstrap: docker\nFrom: x\n",
            image: &image,
            def: None,
        }
        .write(&root)
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.join("hosts")).unwrap(),
            "127.0.0.1 build-machine\n"
        );
        assert!(!outside.join("resolv.conf").exists());
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            1,
            "nothing written there"
        );
        assert!(root.join(".singularity.d/env/99-base.sh").exists());
    }

    #[test]
    fn runtime_path_variables_apply_in_apptainers_order() {
        let script =
            format!("{ENV_RUNTIME_PATH}{ENV_LAST}\nprintf '%s|' \"$PATH\" \"$LD_LIBRARY_PATH\"\n");
        let out = run_sh(
            &script,
            &[
                ("PATH", "/bin"),
                ("SING_USER_DEFINED_PREPEND_PATH", "/pre"),
                ("SING_USER_DEFINED_APPEND_PATH", "/post"),
                ("LD_LIBRARY_PATH", "/lib/x"),
            ],
            &[],
        );
        assert_eq!(out, "/pre:/bin:/post|/lib/x:/.singularity.d/libs|");
        let out = run_sh(&script, &[("PATH", "/bin")], &[]);
        assert_eq!(out, "/bin|/.singularity.d/libs|");
    }
}
