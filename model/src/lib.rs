//! The model of the Spacktainerizah tools: Spack formats, container definitions, the
//! configuration, the CI pipeline model, the SIF format, the typed command lines and the
//! build-cache janitor's deletion planner. It reads and writes the files of its own formats but
//! opens no connection, runs no program and has no async: services are the adapter crates'
//! (`stores`, `oci`, `host`, `terminal`).

pub mod attest;
pub mod checksum;
pub mod ci;
pub mod cleanup;
pub mod commands;
pub mod config;
pub mod definitions;
pub mod env_names;
pub mod labels;
pub mod progress;
pub mod reference;
pub mod secret;
pub mod sif;
pub mod spack;
pub mod store_url;
pub mod time;
pub mod yaml;
