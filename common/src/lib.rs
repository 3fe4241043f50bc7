//! The shared domain of the Spacktainerizah tools: Spack formats, container definitions,
//! configuration, object stores and the GitLab CI pipeline model.

pub mod cache;
pub mod checksum;
pub mod ci;
pub mod cli;
pub mod commands;
pub mod config;
pub mod definitions;
pub mod engine;
pub mod env_names;
pub mod git;
pub mod keep_lists;
pub mod labels;
pub mod printer;
pub mod registry;
pub mod rootfs;
pub mod secret;
pub mod sif;
pub mod spack;
pub mod store;
pub mod yaml;
