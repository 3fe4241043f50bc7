//! The definition checksum: what a container is made of besides its lockfile — the definition
//! file, its epilogue and the files it copies — hashed the same on every machine.

use std::path::Path;

use anyhow::Context;
use common::definitions::{ContainerDefinition, Kind};
use sha2::{Digest, Sha256};

fn add_file(h: &mut Sha256, name: &str, path: &Path) -> anyhow::Result<()> {
    let content = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    h.update(name.as_bytes());
    h.update([0]);
    h.update((content.len() as u64).to_le_bytes());
    h.update(&content);
    Ok(())
}

/// sha256 over the definition, its epilogue and every file it copies (folders walked in
/// sorted order), each under a name that does not depend on where the repository is.
pub fn definition_checksum(repo: &Path, def: &ContainerDefinition) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    add_file(&mut h, "definition", &def.path)?;
    if let Kind::Spack {
        epilogue, files, ..
    } = &def.kind
    {
        if let Some(e) = epilogue {
            add_file(&mut h, "epilogue", e)?;
        }
        for copy in files {
            let mut paths: Vec<_> = walkdir::WalkDir::new(repo.join(&copy.source))
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("reading {}", copy.source.display()))?
                .into_iter()
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .collect();
            paths.sort();
            for p in paths {
                let rel = p
                    .strip_prefix(repo)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/");
                add_file(&mut h, &format!("{rel}->{}", copy.target), &p)?;
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}
