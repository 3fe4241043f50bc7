//! `singularitah sif build` on a two-layer image (made locally with umoci, pushed to the real
//! registry): the SIF is read back by the reference siftool and its squashfs extracted equals
//! the image's root filesystem — deletions, hard links, symlinks, modes and ownership; the
//! documents attached to the image come along as SIF data objects, and Apptainer still runs it.

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
    let (image, bundle) = empty_bundle(d);
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

/// A new, empty OCI image `<d>/oci:img` (umoci) unpacked into the bundle `<d>/bundle`.
fn empty_bundle(d: &Path) -> (String, std::path::PathBuf) {
    let image = format!("{}:img", d.join("oci").display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(d.join("oci")));
    run(Command::new("umoci").args(["new", "--image", &image]));
    let bundle = d.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle));
    (image, bundle)
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

/// A one-layer image with a shell, pushed to the real registry (without the referrers API)
/// with an SBOM and a provenance attached: its SIF carries them as an SPDX JSON `SBOM` object
/// and a `JSON.Generic` named `provenance.intoto.json`, which siftool gives back byte for byte,
/// and Apptainer (where installed) still runs it.
#[test]
#[ignore = "NOT RUN: needs the OCI registry, skopeo, umoci, siftool and squashfs-tools (./scripts/test.sh sets them up)"]
fn the_documents_attached_to_the_image_go_into_the_sif() {
    use model::attest::{Document, DocumentKind};
    use oci::registry::RegistryClient;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (image, bundle) = empty_bundle(d);
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
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
    ]));
    let target = format!("{}/{}:1.0", registry(), unique_name("sif-docs"));
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{image}"))
        .arg(format!("docker://{target}")));
    let documents = [
        Document {
            kind: DocumentKind::Sbom,
            bytes: br#"{"spdxVersion":"SPDX-2.3","name":"sif-docs"}"#.to_vec(),
        },
        Document {
            kind: DocumentKind::Provenance,
            bytes: br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#.to_vec(),
        },
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let target = target.parse().unwrap();
        let client = RegistryClient::new(&registry(), None).unwrap();
        let subject = client.manifest(&target).await.unwrap().descriptor();
        for doc in &documents {
            client.attach(&target, &subject, doc).await.unwrap();
        }
    });

    let sif = d.join("docs.sif");
    run(
        spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_singularitah"))
            .args(["sif", "build", &target, "--arch", "amd64", "-o"])
            .arg(&sif),
    );
    let list = String::from_utf8(run(Command::new(siftool()).arg("list").arg(&sif))).unwrap();
    // `ID |GROUP |LINK |SIF POSITION (start-end) |TYPE`, one line per object; `info ID` names
    // it.
    let info = |id: &str| {
        String::from_utf8(run(Command::new(siftool()).args(["info", id]).arg(&sif))).unwrap()
    };
    let object = |kind: &str, name: &str| -> (String, String) {
        list.lines()
            .filter(|l| l.contains(kind))
            .map(|l| l.split('|').next().unwrap().trim().to_string())
            .map(|id| (info(&id), id))
            .find(|(info, _)| info.contains(&format!("Name:         {name}")))
            .unwrap_or_else(|| panic!("no {kind} named {name} in {list}"))
    };
    for (doc, kind) in documents.iter().zip(["SBOM", "JSON.Generic"]) {
        let (info, id) = object(kind, doc.kind.file_name());
        if doc.kind == DocumentKind::Sbom {
            assert!(info.to_lowercase().contains("spdx-json"), "{info}");
        }
        assert_eq!(
            run(Command::new(siftool()).args(["dump", &id]).arg(&sif)),
            doc.bytes,
            "{kind}"
        );
    }
    assert_eq!(model::sif::format::read_documents(&sif).unwrap(), documents);
    apptainer_runs(&sif);
}

/// Apptainer, where the test command installed it, runs a shell in `sif` as its unprivileged
/// user.
fn apptainer_runs(sif: &Path) {
    let (Some(bin), Ok(user)) = (
        std::env::var_os("SPACKTAINERIZAH_TEST_APPTAINER"),
        std::env::var("SPACKTAINERIZAH_TEST_APPTAINER_USER"),
    ) else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("stz-apptainer-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let copy = dir.path().join("docs.sif");
    std::fs::copy(sif, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(Command::new("runuser")
        .args(["-u", &user, "--", "env"])
        .arg(format!("HOME={}", dir.path().display()))
        .arg(bin)
        .arg("exec")
        .arg(&copy)
        .args(["/bin/sh", "-c", "echo runs"]));
    assert_eq!(String::from_utf8_lossy(&out), "runs\n");
}
