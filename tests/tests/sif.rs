//! SIF files written by `model::sif`, read back by the reference `siftool` (built from
//! Debian's sif sources by the test script) and their squashfs extracted with `unsquashfs`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use model::sif::format::{self as sif, SifSpec};
use spacktainerizah_tests::siftool;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "NOT RUN: needs siftool and squashfs-tools (./scripts/test.sh sets them up)"]
fn siftool_reads_what_we_write_and_the_root_filesystem_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("opt/software/bin")).unwrap();
    std::fs::write(root.join("opt/software/bin/hello"), "#!/bin/sh\necho hi\n").unwrap();
    std::os::unix::fs::symlink("hello", root.join("opt/software/bin/hi")).unwrap();
    std::fs::hard_link(
        root.join("opt/software/bin/hello"),
        root.join("opt/software/bin/hello2"),
    )
    .unwrap();
    let squashfs = dir.path().join("root.squashfs");
    run(Command::new("mksquashfs").arg(&root).arg(&squashfs).args([
        "-comp",
        "gzip",
        "-noappend",
        "-quiet",
    ]));

    for (arch, shown) in [("x86_64", "amd64"), ("arm64", "arm64")] {
        let labels: BTreeMap<String, String> = [
            ("org.spacktainerizah.lockfile-sha256", "0123abcd"),
            ("org.opencontainers.image.title", "pythons"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let spec = SifSpec {
            arch: arch.into(),
            deffile: "Bootstrap: docker\nFrom: registry.example.org/pythons:3.13\n".into(),
            labels: labels.clone(),
            squashfs: squashfs.clone(),
            created: Some(1_764_000_000),
            oci_config: Some(serde_json::json!({"Cmd": ["python3"], "Env": ["A=1"]})),
            ..SifSpec::default()
        };
        let path = dir.path().join(format!("pythons-{shown}.sif"));
        let mut f = std::fs::File::create(&path).unwrap();
        sif::write(&spec, &mut f, &path).unwrap();
        drop(f);

        let header = run(Command::new(siftool()).arg("header").arg(&path));
        assert!(header.contains(shown) && header.contains("01"), "{header}");
        let list = run(Command::new(siftool()).arg("list").arg(&path));
        assert!(list.contains("Def.FILE"), "{list}");
        // Inspect metadata and OCI config, as Apptainer writes them.
        assert_eq!(list.matches("JSON.Generic").count(), 2, "{list}");
        assert!(
            list.contains(&format!("FS (Squashfs/*System/{shown})")),
            "{list}"
        );

        // The objects come back as written: definition, inspect metadata, OCI config, the squashfs.
        let dump = |id: &str| {
            let out = Command::new(siftool())
                .args(["dump", id])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success());
            out.stdout
        };
        assert_eq!(dump("1"), spec.deffile.as_bytes());
        let meta: serde_json::Value = serde_json::from_slice(&dump("2")).unwrap();
        assert_eq!(
            meta["data"]["attributes"]["labels"]["org.spacktainerizah.lockfile-sha256"],
            "0123abcd"
        );
        let config: serde_json::Value = serde_json::from_slice(&dump("3")).unwrap();
        assert_eq!(Some(config), spec.oci_config);
        assert_eq!(sif::read_labels(&path).unwrap(), labels);
        let partition = dump("4");
        assert_eq!(partition, std::fs::read(&squashfs).unwrap());

        let back = dir.path().join(format!("back-{shown}"));
        let part = dir.path().join(format!("part-{shown}.squashfs"));
        std::fs::write(&part, &partition).unwrap();
        run(Command::new("unsquashfs")
            .args(["-no-progress", "-d"])
            .arg(&back)
            .arg(&part));
        same_tree(&root, &back);
    }
}

/// The same files, contents, symlinks and hard links in both trees.
fn same_tree(a: &Path, b: &Path) {
    let bin = |root: &Path| root.join("opt/software/bin");
    assert_eq!(
        std::fs::read(bin(a).join("hello")).unwrap(),
        std::fs::read(bin(b).join("hello")).unwrap()
    );
    assert_eq!(
        std::fs::read_link(bin(b).join("hi")).unwrap(),
        Path::new("hello")
    );
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&bin(b).join("hello")), ino(&bin(b).join("hello2")));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode();
    assert_eq!(mode(&bin(a).join("hello")), mode(&bin(b).join("hello")));
}
