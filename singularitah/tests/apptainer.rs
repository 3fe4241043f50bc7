//! Our SIFs beside the ones a real Apptainer builds from the same registry image (and the same
//! `.def`), both run by that Apptainer as an unprivileged user: `run`, `exec`, `--env` and
//! `APPTAINERENV_*`, `LD_LIBRARY_PATH`, `inspect`, `sif list`, the OCI config and the file tree
//! (names, owners, modes, device nodes) must match — ours built as that unprivileged user too.
//! Ignored (`NOT RUN`) without Apptainer; under `--include-ignored` a missing Apptainer fails it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use spacktainerizah_tests::spack::not_run;
use spacktainerizah_tests::{docker_host, os_image, registry, unique_name};

/// The Apptainer the test command installed, and the user it runs as.
fn apptainer() -> Option<(PathBuf, String)> {
    let bin = std::env::var_os("SPACKTAINERIZAH_TEST_APPTAINER")?;
    let user = std::env::var("SPACKTAINERIZAH_TEST_APPTAINER_USER").ok()?;
    Some((bin.into(), user))
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An image with what conversions get wrong: variables to override, ENTRYPOINT and CMD, labels,
/// a working folder, a device node, a set-uid file of another owner, a resolv.conf of its own.
const DOCKERFILE: &str = r#"
ENV GREETING="hello world" QUOTED="a \"b\" c" PATH=/opt/tool/bin:/usr/local/bin:/usr/bin:/bin
LABEL org.example.team="hpc" maintainer="x@example.org"
RUN mkdir -p /opt/tool/bin /data \
 && printf '#!/bin/sh\necho "tool[$GREETING]" "$@"\n' > /opt/tool/bin/tool \
 && chmod 755 /opt/tool/bin/tool \
 && mknod /data/null c 1 3 && mknod -m 600 /data/fifo p \
 && touch /data/alice && chown 1234:1234 /data/alice && chmod 4750 /data/alice \
 && echo 'nameserver 192.0.2.1' > /etc/resolv.conf.image
WORKDIR /data
ENTRYPOINT ["/opt/tool/bin/tool"]
CMD ["default", "$HOME"]
"#;

/// A `.def` bootstrapped from that image, with the sections a native build applies.
fn definition(from: &str) -> String {
    format!(
        "Bootstrap: docker\nFrom: {from}\n\n%labels\n    org.example.def yes\n\n%environment\n    export DEF_VAR=from-def\n\n%runscript\n    echo \"def-run[$DEF_VAR]\" \"$@\"\n\n%help\n    Says hello.\n"
    )
}

struct Runner {
    bin: PathBuf,
    user: String,
    dir: PathBuf,
}

impl Runner {
    /// `apptainer ARGS` as the unprivileged user, with `env` set for Apptainer.
    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &self.user, "--", "env"])
            .arg(format!("HOME={}", self.dir.display()))
            .arg(format!("APPTAINER_TMPDIR={}", self.dir.display()));
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.arg(&self.bin).args(args);
        output(&mut cmd)
    }
}

/// Labels that differ by nature: when and by what each was built, and what the `.def` read
/// (Apptainer records the tag, we the digest).
fn comparable(labels: &str) -> BTreeMap<String, String> {
    serde_json::from_str::<BTreeMap<String, String>>(labels)
        .unwrap()
        .into_iter()
        .filter(|(k, _)| {
            !k.ends_with("build-date")
                && !k.starts_with("org.label-schema.usage.")
                && !k.starts_with("org.spacktainerizah.")
        })
        .collect()
}

/// `unsquashfs -lln` of the SIF's partition: type, mode, owner and device numbers of every path
/// (sizes and times of Apptainer's own scripts left out: they differ by nature).
fn tree(apptainer: &Path, sif: &Path, work: &Path) -> BTreeMap<String, String> {
    let squashfs = work.join(format!(
        "{}.squashfs",
        sif.file_name().unwrap().to_string_lossy()
    ));
    let dump = Command::new(apptainer)
        .args(["sif", "dump", "4"])
        .arg(sif)
        .stdout(std::fs::File::create(&squashfs).unwrap())
        .status()
        .unwrap();
    assert!(dump.success());
    let listing = output(Command::new("unsquashfs").arg("-lln").arg(&squashfs));
    listing
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = line.find("squashfs-root")?;
            let path = line[at + "squashfs-root".len()..].to_string();
            let mut what = format!("{} {}", fields[0], fields[1]);
            if fields[0].starts_with(['c', 'b']) {
                what.push_str(&format!(" {} {}", fields[2], fields[3]));
            }
            (!path.is_empty()).then_some((path, what))
        })
        .collect()
}

#[test]
#[ignore = "NOT RUN: needs Apptainer, squashfs-tools, the Docker daemon and the test OS image in the OCI registry (./scripts/test.sh sets them up)"]
fn our_sifs_behave_like_apptainers_own() {
    let Some((bin, user)) = apptainer() else {
        not_run(
            "our_sifs_behave_like_apptainers_own",
            "no Apptainer (the test command installs it from ../shared/tools/apptainer)",
        );
    };
    let dir = tempfile::Builder::new()
        .prefix("stz-apptainer-")
        .tempdir_in("/tmp")
        .unwrap();
    let work = dir.path();
    std::fs::set_permissions(work, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let image = format!("{}/{}:1", registry(), unique_name("apptainer-probe"));
    std::fs::write(
        work.join("Dockerfile"),
        format!("FROM {}\n{DOCKERFILE}", os_image()),
    )
    .unwrap();
    let docker = |args: &[&str]| {
        output(
            Command::new("docker")
                .env("DOCKER_HOST", docker_host())
                .args(args),
        )
    };
    docker(&["build", "-q", "-t", &image, work.to_str().unwrap()]);
    docker(&["push", "-q", &image]);
    let def = work.join("probe.def");
    std::fs::write(&def, definition(&image)).unwrap();

    // Apptainer's: built as root (an unprivileged build turns device nodes into empty files).
    for (name, source) in [
        ("theirs.sif", format!("docker://{image}")),
        ("theirs-def.sif", def.display().to_string()),
    ] {
        output(
            Command::new(&bin)
                .args(["build", "--no-https"])
                .arg(work.join(name))
                .arg(&source)
                .env("APPTAINER_TMPDIR", work)
                .env("HOME", work),
        );
    }
    // Ours from the registry image as the unprivileged user (owners, modes and device nodes
    // must still come out right), from the `.def` as root.
    let singularitah = work.join("singularitah");
    std::fs::copy(env!("CARGO_BIN_EXE_singularitah"), &singularitah).unwrap();
    output(
        Command::new("runuser")
            .args(["-u", &user, "--", "env"])
            .arg(format!("HOME={}", work.display()))
            .arg(&singularitah)
            .args(["sif", "build", &image, "--out"])
            .arg(work.join("ours.sif")),
    );
    output(
        Command::new(singularitah)
            .args(["sif", "build", "--def"])
            .arg(&def)
            .arg("--out")
            .arg(work.join("ours-def.sif")),
    );
    for sif in ["theirs", "theirs-def", "ours", "ours-def"] {
        std::fs::set_permissions(
            work.join(format!("{sif}.sif")),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    let runner = Runner {
        bin: bin.clone(),
        user: user.clone(),
        dir: work.to_path_buf(),
    };
    let sif = |name: &str| work.join(format!("{name}.sif")).display().to_string();

    for (theirs, ours) in [("theirs", "ours"), ("theirs-def", "ours-def")] {
        let (t, o) = (sif(theirs), sif(ours));
        let both = |env: &[(&str, &str)], args: &[&str]| -> (String, String) {
            let with = |s: &str| {
                let args: Vec<&str> = args
                    .iter()
                    .map(|a| if *a == "SIF" { s } else { a })
                    .collect();
                runner.run(env, &args)
            };
            (with(&t), with(&o))
        };
        let same = |what: &str, env: &[(&str, &str)], args: &[&str]| {
            let (a, b) = both(env, args);
            assert_eq!(a, b, "{ours}: {what}");
            a
        };
        let out = same("run", &[], &["run", "SIF"]);
        if ours == "ours" {
            assert_eq!(out, "tool[hello world] default $HOME\n");
        } else {
            assert_eq!(out, "def-run[from-def]\n");
        }
        let out = same("run with arguments", &[], &["run", "SIF", "a b", "$HOME"]);
        if ours == "ours" {
            // An argument is read by the shell again: `$HOME` is the user's home inside.
            assert!(
                out.starts_with("tool[hello world] a b /") && !out.contains('$'),
                "{out}"
            );
        }
        same("run --no-eval", &[], &["run", "--no-eval", "SIF", "$HOME"]);
        let show = "printf '%s|' \"$GREETING\" \"$QUOTED\" \"${DEF_VAR:-}\" \"${MINE:-}\" \"$PATH\" \"${LD_LIBRARY_PATH:-}\" \"$PWD\"";
        let out = same("exec", &[], &["exec", "SIF", "/bin/sh", "-c", show]);
        assert!(out.contains("|/.singularity.d/libs|"), "{out}");
        let out = same(
            "--env and APPTAINERENV_*",
            &[
                ("APPTAINERENV_MINE", "from-host"),
                ("APPTAINERENV_PREPEND_PATH", "/pre"),
                ("APPTAINERENV_APPEND_PATH", "/post"),
            ],
            &[
                "exec",
                "--env",
                "GREETING=overridden,LD_LIBRARY_PATH=/gpu",
                "SIF",
                "/bin/sh",
                "-c",
                show,
            ],
        );
        assert!(
            out.starts_with("overridden|")
                && out.contains("|from-host|/pre:/opt/tool/bin:")
                && out.contains(":/post|/gpu:/.singularity.d/libs|"),
            "{out}"
        );
        same(
            "a variable of the host's environment wins over the image's",
            &[("GREETING", "host")],
            &["exec", "SIF", "/bin/sh", "-c", "echo $GREETING"],
        );
        same(
            "the device node, the set-uid file, the files Apptainer binds over",
            &[],
            &[
                "exec",
                "SIF",
                "/bin/sh",
                "-c",
                "stat -c '%n %F %a %u %g %t %T' /data/null /data/fifo /data/alice; wc -c < /etc/resolv.conf",
            ],
        );
        // The same scripts, the image's variables written alike (quoting aside: Apptainer
        // escapes twice what it reads back once; the values inside are compared above).
        let (a, b) = both(&[], &["inspect", "--environment", "SIF"]);
        let lines = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| l.starts_with("===") || l.contains("PATH=") || l.contains("GREETING="))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(lines(&a), lines(&b), "{ours}: inspect --environment");
        same("inspect --helpfile", &[], &["inspect", "--helpfile", "SIF"]);
        let (a, b) = both(&[], &["inspect", "--json", "--labels", "SIF"]);
        let labels = |s: &str| {
            let v: serde_json::Value = serde_json::from_str(s).unwrap();
            comparable(&v["data"]["attributes"]["labels"].to_string())
        };
        assert_eq!(labels(&a), labels(&b), "{ours}: inspect --labels");
        assert!(labels(&b).contains_key("org.label-schema.build-arch"));
        let (a, b) = both(&[], &["inspect", "--runscript", "SIF"]);
        assert!(!a.trim().is_empty() && !b.trim().is_empty(), "{ours}: {b}");
        let (a, b) = both(&[], &["inspect", "--startscript", "SIF"]);
        assert!(
            a.starts_with("#!/bin/sh") && b.starts_with("#!/bin/sh"),
            "{ours}: {b}"
        );
        // The objects: types in order; the OCI config as it is.
        let (a, b) = both(&[], &["sif", "list", "SIF"]);
        let kinds = |s: &str| -> Vec<String> {
            s.lines()
                .filter_map(|l| l.rsplit('|').next())
                .filter(|k| !k.contains("TYPE") && !k.starts_with('-'))
                .map(|k| k.trim().to_string())
                .collect()
        };
        assert_eq!(kinds(&a), kinds(&b), "{ours}: sif list");
        let (a, b) = both(&[], &["sif", "dump", "3", "SIF"]);
        let config = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(config(&a), config(&b), "{ours}: oci-config.json");
        assert_eq!(config(&b)["WorkingDir"], "/data");

        let (ta, tb) = (
            tree(&bin, Path::new(&t), work),
            tree(&bin, Path::new(&o), work),
        );
        let paths = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(paths(&ta), paths(&tb), "{ours}: the same paths");
        for (path, what) in &ta {
            // The root folder is the build folder's for Apptainer (0700), the image's for us.
            if path == "/" {
                continue;
            }
            assert_eq!(what, &tb[path], "{ours}: {path}");
        }
        assert!(tb["/data/null"].starts_with("crw-r--r-- 0/0 1,"), "{tb:?}");
        assert!(
            tb["/data/alice"].starts_with("-rwsr-x--- 1234/1234"),
            "{tb:?}"
        );
    }
}
