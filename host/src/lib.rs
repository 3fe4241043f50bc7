//! Programs of the local machine the tools run: Spack (`spack concretize`, `ci generate`) and
//! git (`git ls-remote`).

pub mod git;
pub mod spack;
