//! The names of what the tools record on images and SIFs (labels) and on published objects
//! (metadata), and compare to decide what needs building: one name per fact. A project label is
//! `<namespace>.<name>`; the same fact as object metadata is `<name>`.

/// sha256 of a container's `spack.lock`.
pub const LOCKFILE_SHA256: &str = "lockfile-sha256";
/// Checksum of a container's definition, epilogue and copied files.
pub const DEFINITION_CHECKSUM: &str = "definition-checksum";
/// Digest of the image a SIF was made from.
pub const SOURCE_DIGEST: &str = "source-digest";
/// Base images: checksum of the build folder, the Spack commit, tool versions, the OS image.
pub const BUILD_FILES_CHECKSUM: &str = "build-files-checksum";
pub const SPACK_COMMIT: &str = "spack-commit";
/// The spack-packages commit (or archive checksum) of a Spack ≥ 1.0 builder.
pub const SPACK_PACKAGES_COMMIT: &str = "spack-packages-commit";
pub const TOOL_VERSIONS: &str = "tool-versions";
pub const OS_IMAGE: &str = "os-image";

/// The namespace of the labels the tools set themselves, whatever the project's namespace.
pub const OWN_NAMESPACE: &str = "org.spacktainerizah";

/// The label of the source image's digest on a SIF (`org.spacktainerizah.source-digest`).
pub fn source_digest_label() -> String {
    namespaced(OWN_NAMESPACE, SOURCE_DIGEST)
}

/// `<namespace>.<name>`.
pub fn namespaced(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}
