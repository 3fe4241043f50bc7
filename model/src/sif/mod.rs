//! Singularity images: the SIF file format, the published SIF objects in buckets and
//! directories, and the `.def` definition files they can be built from.

pub mod definition;
pub mod format;
