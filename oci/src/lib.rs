//! OCI services: the registry client and the container engine (real, or in memory for tests),
//! applying image layers to a root filesystem, and reading one file out of an image's layers.

#[cfg(feature = "engine")]
pub mod engine;
pub mod image_file;
pub mod registry;
pub mod rootfs;
