//! OCI services: the registry client and the container engine (real, or in memory for tests),
//! and applying image layers to a root filesystem.

#[cfg(feature = "engine")]
pub mod engine;
pub mod registry;
pub mod rootfs;
