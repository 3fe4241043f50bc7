//! `spackah plan --concretize`: the real `spack -e ENV concretize -f` on each prepared
//! environment, for use outside CI where stage 2 left no lockfile.

use std::path::Path;

use anyhow::{Context, bail};
use host::spack;
use model::definitions::ContainerDefinition;

use crate::image::lockfile_path;

/// `spack -e ENV concretize -f` with `spack_path` (the one on PATH when not given) in the prepared
/// environment of `def` under `lockfiles`, where its lockfile goes, logged to `concretize.log`
/// there.
pub fn concretize(
    lockfiles: &Path,
    spack_path: Option<&Path>,
    def: &ContainerDefinition,
) -> anyhow::Result<()> {
    let lock_path = lockfile_path(lockfiles, def);
    let env = lock_path.parent().expect("a lockfile path has a folder");
    if !env.join("spack.yaml").is_file() {
        bail!(
            "{}: no prepared environment at {} to concretize (`spack-cacher prepare` writes it)",
            def.path.display(),
            env.display()
        );
    }
    let spack = spack::find(spack_path)?;
    let args = ["-e", &env.display().to_string(), "concretize", "-f"].map(String::from);
    spack::run(&spack, &args, &mut Vec::new(), &env.join("concretize.log"))
        .with_context(|| format!("{}/{}", def.arch, def.name))?;
    Ok(())
}
