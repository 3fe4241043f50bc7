//! `singularitah sif build` on a two-layer image (made locally with umoci, pushed to the real
//! registry): the SIF is read back by the reference siftool and its squashfs extracted equals
//! the image's root filesystem — deletions, hard links, symlinks, modes and ownership; the
//! documents attached to the image come along as SIF data objects, and Apptainer still runs it;
//! from an index of amd64 and arm64 images, `--arch arm64` makes an arm64 SIF that runs here
//! under emulation.

use std::collections::BTreeMap;
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

/// A small image of the base's own programs: a shell, `uname` and their libraries, and a program
/// saying which machine runs it and which machine ran the build's `RUN`.
const HELLO_DOCKERFILE: &str = r#"ARG BASE
FROM $BASE AS build
RUN printf '#!/bin/sh\necho "hello from $(uname -m), built on %s"\n' "$(uname -m)" \
      > /usr/local/bin/hello \
 && chmod 755 /usr/local/bin/hello \
 && mkdir /out \
 && cp -L --parents /bin/sh /usr/bin/uname /usr/local/bin/hello \
      $({ ldd /bin/sh; ldd /usr/bin/uname; } | grep -o '/[^ ]*' | sort -u) /out
FROM scratch
COPY --from=build /out /
CMD ["hello"]
"#;

/// `uname -m` of each architecture, as the program prints it.
fn machine(arch: &str) -> &'static str {
    match arch {
        "arm64" => "aarch64",
        _ => "x86_64",
    }
}

/// The ELF machine of an executable: 0xB7 aarch64, 0x3E x86-64.
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{}", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// An image for amd64 and one for arm64 (its `RUN` under emulation), served by one index as
/// the base images are: `sif build --arch arm64` of that index makes a SIF whose header and
/// partition say arm64, made of the arm64 image (its digest recorded), whose program runs
/// under emulation from the root filesystem that comes back and in Apptainer; `--arch amd64`
/// of the same reference makes the amd64 one, and `--with-singularity` of a `.def` naming the
/// index's tag an arm64 one too.
#[test]
#[ignore = "NOT RUN: needs the OCI registry, the Docker daemon, arm64 emulation, the test OS images, siftool, squashfs-tools and Apptainer (./scripts/test.sh sets them up)"]
fn an_index_becomes_an_arm64_sif_whose_program_runs_under_emulation() {
    const TEST: &str = "an_index_becomes_an_arm64_sif_whose_program_runs_under_emulation";
    use oci::registry::RegistryClient;
    use spacktainerizah_tests::spack::not_run;
    use spacktainerizah_tests::{docker_host, os_image_for};
    let started = std::time::Instant::now();
    let arches = ["amd64", "arm64"];
    let bases: Vec<String> = arches
        .iter()
        .map(|a| os_image_for(a).unwrap_or_else(|why| not_run(TEST, &why)))
        .collect();
    let dir = tempfile::Builder::new()
        .prefix("stz-sif-arm64-")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path();
    // Apptainer runs as an unprivileged user, who reads the SIFs here.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(d.join("Dockerfile"), HELLO_DOCKERFILE).unwrap();
    let repo = format!("{}/{}", registry(), unique_name("sif-arm64"));
    let docker = |args: &[&str]| {
        run(Command::new("docker")
            .env("DOCKER_HOST", docker_host())
            .args(args))
    };
    // Each from its own architecture's base: the daemon's builder resolves an index's FROM
    // for this machine only.
    for (arch, base) in arches.iter().zip(&bases) {
        let tag = format!("{repo}:{arch}");
        docker(&[
            "build",
            "-q",
            "--no-cache",
            "--platform",
            &format!("linux/{arch}"),
            "--build-arg",
            &format!("BASE={base}"),
            "-t",
            &tag,
            d.to_str().unwrap(),
        ]);
        docker(&["push", "-q", &tag]);
    }
    let index = format!("{repo}:latest");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let digests: BTreeMap<&str, String> = rt.block_on(async {
        let client = RegistryClient::new(&registry(), None).unwrap();
        let mut entries = Vec::new();
        for arch in arches {
            let image = format!("{repo}:{arch}").parse().unwrap();
            entries.push(client.manifest(&image).await.unwrap().index_entry(arch));
        }
        client
            .push_index(&index.parse().unwrap(), &entries)
            .await
            .unwrap();
        arches
            .into_iter()
            .zip(entries.into_iter().map(|e| e.digest))
            .collect()
    });
    eprintln!("{TEST}: images and index in {:?}", started.elapsed());

    let mut sifs = Vec::new();
    for arch in arches {
        let sif = d.join(format!("hello-{arch}.sif"));
        run(
            spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_singularitah"))
                .args(["sif", "build", &index, "--arch", arch, "-o"])
                .arg(&sif),
        );
        eprintln!("{TEST}: {arch} SIF built at {:?}", started.elapsed());

        // What Apptainer reads to tell the SIF's architecture: the header and the partition.
        let header =
            String::from_utf8(run(Command::new(siftool()).arg("header").arg(&sif))).unwrap();
        assert!(
            header.contains(&format!("Primary Architecture: {arch}\n")),
            "{header}"
        );
        let list = String::from_utf8(run(Command::new(siftool()).arg("list").arg(&sif))).unwrap();
        assert!(
            list.contains(&format!("FS (Squashfs/*System/{arch})")),
            "{list}"
        );
        // Made of that architecture's image of the index, not of this machine's.
        let labels = model::sif::format::read_labels(&sif).unwrap();
        assert_eq!(labels["org.spacktainerizah.source-digest"], digests[arch]);
        assert_eq!(labels["org.label-schema.build-arch"], arch);

        // The root filesystem that comes back holds that architecture's programs, and the
        // image's program runs from it (arm64 through the emulator), as `singularity run` does.
        let part = d.join(format!("{arch}.squashfs"));
        std::fs::write(
            &part,
            run(Command::new(siftool()).args(["dump", "4"]).arg(&sif)),
        )
        .unwrap();
        let back = d.join(format!("back-{arch}"));
        run(Command::new("unsquashfs")
            .args(["-no-progress", "-quiet", "-d"])
            .arg(&back)
            .arg(&part));
        std::fs::remove_file(&part).unwrap();
        let shell = std::fs::canonicalize(back.join("bin/sh")).unwrap();
        let expected = if arch == "arm64" { 0xB7 } else { 0x3E };
        assert_eq!(elf_machine(&shell), expected, "{}", shell.display());
        let out = run(Command::new("chroot")
            .arg(&back)
            .arg("/.singularity.d/actions/run"));
        let m = machine(arch);
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("hello from {m}, built on {m}\n")
        );
        std::fs::remove_dir_all(&back).unwrap();
        eprintln!("{TEST}: {arch} SIF checked at {:?}", started.elapsed());
        sifs.push((arch, sif));
    }

    // Apptainer runs both; the arm64 one through the emulator the kernel hands it (binfmt_misc
    // flag F: opened once, so it works inside the container's own root too).
    let (Some(bin), Ok(user)) = (
        std::env::var_os("SPACKTAINERIZAH_TEST_APPTAINER"),
        std::env::var("SPACKTAINERIZAH_TEST_APPTAINER_USER"),
    ) else {
        not_run(
            TEST,
            "the SIFs and their programs checked, but no Apptainer to run them in (the test command installs it)",
        );
    };
    let home = d.join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).unwrap();

    // Built by Apptainer from a `.def` naming the index's tag: still the arm64 image.
    let def = d.join("hello.def");
    std::fs::write(
        &def,
        format!("Bootstrap: docker\nFrom: {index}\n\n%runscript\n    echo \"def: $(hello)\"\n"),
    )
    .unwrap();
    let by_apptainer = d.join("def-arm64.sif");
    let path = std::env::join_paths(
        std::iter::once(Path::new(&bin).parent().unwrap().to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ),
    )
    .unwrap();
    run(
        spacktainerizah_tests::tool(env!("CARGO_BIN_EXE_singularitah"))
            .args([
                "sif",
                "build",
                "--with-singularity",
                "--arch",
                "arm64",
                "--def",
            ])
            .arg(&def)
            .arg("-o")
            .arg(&by_apptainer)
            .env("PATH", path)
            // The test registry answers plain HTTP.
            .env("APPTAINER_NOHTTPS", "1")
            .env("APPTAINER_CACHEDIR", d.join("cache"))
            .env("APPTAINER_TMPDIR", d),
    );
    let list =
        String::from_utf8(run(Command::new(siftool()).arg("list").arg(&by_apptainer))).unwrap();
    assert!(list.contains("FS (Squashfs/*System/arm64)"), "{list}");
    let labels = model::sif::format::read_labels(&by_apptainer).unwrap();
    assert_eq!(
        labels["org.spacktainerizah.source-digest"],
        digests["arm64"]
    );
    eprintln!(
        "{TEST}: the .def built by Apptainer at {:?}",
        started.elapsed()
    );
    sifs.push(("arm64", by_apptainer));

    for (arch, sif) in &sifs {
        let out = Command::new("runuser")
            .args(["-u", &user, "--", "env"])
            .arg(format!("HOME={}", home.display()))
            .arg(&bin)
            .arg("run")
            .arg(sif)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && *arch == "arm64" && stderr.contains("exec format error") {
            not_run(
                TEST,
                &format!(
                    "Apptainer cannot run arm64 programs here (the emulator is not registered with flag F?): {}",
                    stderr.trim()
                ),
            );
        }
        assert!(out.status.success(), "apptainer run {arch}: {stderr}");
        let m = machine(arch);
        let prefix = if sif.ends_with("def-arm64.sif") {
            "def: "
        } else {
            ""
        };
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{prefix}hello from {m}, built on {m}\n"),
            "apptainer run {}",
            sif.display()
        );
    }
    eprintln!("{TEST}: done in {:?}", started.elapsed());
}
