//! `spackah plan --concretize`: the real `spack -e ENV concretize -f` on each prepared
//! environment, for use outside CI where stage 2 left no lockfile.

use anyhow::{Context, bail};
use host::spack;
use model::definitions::ContainerDefinition;

use crate::image::lockfile_path;
use crate::plan::PlanOptions;

/// `spack -e ENV concretize -f` in the prepared environment beside `lock_path`, logged to
/// `concretize.log` there.
pub fn concretize(opts: &PlanOptions, def: &ContainerDefinition) -> anyhow::Result<()> {
    let lock_path = lockfile_path(&opts.project.lockfiles, def);
    let env = lock_path.parent().expect("a lockfile path has a folder");
    if !env.join("spack.yaml").is_file() {
        bail!(
            "{}: no prepared environment at {} to concretize (`spack-cacher prepare` writes it)",
            def.path.display(),
            env.display()
        );
    }
    let spack = spack::find(opts.spack.as_deref())?;
    let args = ["-e", &env.display().to_string(), "concretize", "-f"].map(String::from);
    spack::run(&spack, &args, &mut Vec::new(), &env.join("concretize.log"))
        .with_context(|| format!("{}/{}", def.arch, def.name))?;
    Ok(())
}
