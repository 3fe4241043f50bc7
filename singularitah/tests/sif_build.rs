//! `singularitah sif build` on a two-layer image (made locally with umoci, pushed to the real
//! registry): the SIF is read back by the reference siftool and its squashfs extracted equals
//! the image's root filesystem — deletions, hard links, symlinks, modes and ownership.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use spacktainerizah_tests::{registry, siftool, unique_name};

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo, umoci, siftool and squashfs-tools (./scripts/test.sh sets them up)"]
fn a_layered_image_becomes_a_sif_with_the_same_root_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = format!("{}:img", d.join("oci").display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(d.join("oci")));
    run(Command::new("umoci").args(["new", "--image", &image]));
    let bundle = d.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("opt/bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("data")).unwrap();
    std::fs::write(rootfs.join("opt/bin/tool"), "#!/bin/sh\necho tool\n").unwrap();
    std::fs::hard_link(rootfs.join("opt/bin/tool"), rootfs.join("opt/bin/tool2")).unwrap();
    std::os::unix::fs::symlink("tool", rootfs.join("opt/bin/t")).unwrap();
    std::fs::write(rootfs.join("opt/gone"), "lower layer\n").unwrap();
    std::fs::write(rootfs.join("data/a"), "a").unwrap();
    // A shell, so the SIF's action scripts can be run in a chroot of what comes back.
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    // Second layer: a deletion, a changed mode, an owner.
    std::fs::remove_file(rootfs.join("opt/gone")).unwrap();
    std::fs::set_permissions(
        rootfs.join("opt/bin/tool"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::write(rootfs.join("data/b"), "b").unwrap();
    std::os::unix::fs::chown(rootfs.join("data/b"), Some(1234), Some(5678)).unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--os",
        "linux",
        "--architecture",
        "amd64",
        "--config.label",
        "org.opencontainers.image.title=tool",
        "--config.env",
        "TOOL_HOME=/opt",
        "--config.cmd",
        "/opt/bin/tool",
    ]));
    let target = format!("{}/{}:1.0", registry(), unique_name("sif"));
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{image}"))
        .arg(format!("docker://{target}")));

    let sif = d.join("tool.sif");
    run(
        spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_singularitah"))
            .args(["sif", "build", &target, "--arch", "amd64", "-o"])
            .arg(&sif)
            .args(["--label", "org.spacktainerizah.lockfile-sha256=abc123"]),
    );

    let list = String::from_utf8(run(Command::new(siftool()).arg("list").arg(&sif))).unwrap();
    assert!(list.contains("FS (Squashfs/*System/amd64)"), "{list}");
    let meta: serde_json::Value =
        serde_json::from_slice(&run(Command::new(siftool()).args(["dump", "2"]).arg(&sif)))
            .unwrap();
    let labels = &meta["data"]["attributes"]["labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "tool");
    assert_eq!(labels["org.spacktainerizah.lockfile-sha256"], "abc123");
    assert!(
        labels["org.spacktainerizah.source-digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    let part = d.join("part.squashfs");
    std::fs::write(
        &part,
        run(Command::new(siftool()).args(["dump", "4"]).arg(&sif)),
    )
    .unwrap();
    let back = d.join("back");
    run(Command::new("unsquashfs")
        .args(["-no-progress", "-d"])
        .arg(&back)
        .arg(&part));
    same(&rootfs, &back);
    let runscript = std::fs::read_to_string(back.join(".singularity.d/runscript")).unwrap();
    assert!(runscript.contains("/opt/bin/tool"), "{runscript}");
    // Where `apptainer build` puts an image's variables, before `%environment`'s: defaults a
    // value the user sets wins over.
    let env =
        std::fs::read_to_string(back.join(".singularity.d/env/10-docker2singularity.sh")).unwrap();
    assert!(
        env.contains("export TOOL_HOME=\"${TOOL_HOME:-\"/opt\"}\""),
        "{env}"
    );

    // What `singularity exec` and `singularity run` do inside: the environment, then the
    // command or the runscript.
    let chroot = |action: &str, args: &[&str]| {
        String::from_utf8(run(Command::new("chroot")
            .arg(&back)
            .arg(format!("/.singularity.d/actions/{action}"))
            .args(args)
            .env_remove("TOOL_HOME")))
        .unwrap()
    };
    assert_eq!(chroot("exec", &["sh", "-c", "echo $TOOL_HOME"]), "/opt\n");
    assert_eq!(chroot("run", &[]), "tool\n");
    assert_eq!(
        std::fs::read_link(back.join("singularity")).unwrap(),
        Path::new(".singularity.d/runscript")
    );
}

/// The static busybox Debian's `busybox-static` installs.
fn busybox() -> &'static Path {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("busybox-static is installed by the test script")
}

fn same(image: &Path, sif: &Path) {
    assert!(!sif.join("opt/gone").exists(), "the whiteout applied");
    for f in ["opt/bin/tool", "opt/bin/tool2", "data/a", "data/b"] {
        let (a, b) = (image.join(f), sif.join(f));
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{f}"
        );
        let (ma, mb) = (a.metadata().unwrap(), b.metadata().unwrap());
        assert_eq!(ma.mode(), mb.mode(), "{f} mode");
        assert_eq!((ma.uid(), ma.gid()), (mb.uid(), mb.gid()), "{f} owner");
    }
    let ino = |p: &str| sif.join(p).metadata().unwrap().ino();
    assert_eq!(ino("opt/bin/tool"), ino("opt/bin/tool2"), "hard link kept");
    assert_eq!(
        std::fs::read_link(sif.join("opt/bin/t")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(sif.join("data/b").metadata().unwrap().uid(), 1234);
}
