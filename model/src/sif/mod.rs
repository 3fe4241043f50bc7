//! Singularity images: the SIF file format and the `.def` definition files they can be built
//! from (the published SIF objects are `stores::sif_published`).

pub mod definition;
pub mod format;
