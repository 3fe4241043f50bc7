//! OCI services: the registry client and the Docker Engine, and applying image layers to a
//! root filesystem.

pub mod engine;
pub mod registry;
pub mod rootfs;
