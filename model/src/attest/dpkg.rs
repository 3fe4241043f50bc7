//! The installed packages of a Debian-family image, from its dpkg database
//! (`/var/lib/dpkg/status`).
//!
//! rpm is not supported: an rpm image keeps its database in Berkeley DB (`Packages`, RHEL ≤ 8)
//! or SQLite (`rpmdb.sqlite`, RHEL 9 and Fedora), binary formats whose headers are rpm's own
//! tagged blobs. Reading them needs a SQLite (or BDB) reader and rpm's header parser, which this
//! pure crate has neither of; `rpm -qa --queryformat` in the image is the way to list them, and
//! that is running a program, which the model does not do.

use std::collections::BTreeMap;

/// Where dpkg keeps what is installed, in an image.
pub const STATUS_PATH: &str = "/var/lib/dpkg/status";

/// One installed OS package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OsPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The source package it was built from (the package's own name when dpkg records none).
    pub source: String,
    /// The source package's version, when it differs from the binary's (binNMUs).
    pub source_version: Option<String>,
}

/// A dpkg status database that is not what dpkg writes; names the file.
#[derive(Debug, thiserror::Error)]
#[error("dpkg status {file}, line {line}: {message}")]
pub struct DpkgError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// The packages of the dpkg status database `text` (read from `file`, named in errors) that are
/// installed, sorted by name and architecture.
///
/// The file is a list of deb822 stanzas separated by blank lines: `Field: value` lines, and
/// continuation lines starting with a space or tab (Debian Policy §5.1,
/// <https://www.debian.org/doc/debian-policy/ch-controlfields.html#syntax-of-control-files>).
/// `Status:` is `want flag status`, and a package is there when its status is `installed`
/// (Policy appendix 4.2.3, <https://www.debian.org/doc/debian-policy/ap-pkg-controlfields.html#status>):
/// removed packages that left their configuration files (`deinstall ok config-files`) are not.
/// `Source:` is `name` or `name (version)`, and absent when the source package has the binary's
/// name (Policy §5.6.1, <https://www.debian.org/doc/debian-policy/ch-controlfields.html#source>).
pub fn parse_status(file: &str, text: &str) -> Result<Vec<OsPackage>, DpkgError> {
    let mut packages = Vec::new();
    for stanza in stanzas(file, text)? {
        if let Some(p) = package(file, &stanza)? {
            packages.push(p);
        }
    }
    packages.sort();
    Ok(packages)
}

/// One stanza: its first line and its fields (continuation lines dropped: no field this module
/// reads is multi-line).
struct Stanza {
    line: usize,
    fields: BTreeMap<String, String>,
}

fn stanzas(file: &str, text: &str) -> Result<Vec<Stanza>, DpkgError> {
    let err = |line: usize, message: String| DpkgError {
        file: file.to_string(),
        line,
        message,
    };
    let mut out = Vec::new();
    let mut current: Option<Stanza> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            out.extend(current.take());
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            if current.is_none() {
                return Err(err(line, "a continuation line outside a stanza".into()));
            }
            continue;
        }
        let (name, value) = raw
            .split_once(':')
            .filter(|(n, _)| !n.is_empty() && !n.contains(char::is_whitespace))
            .ok_or_else(|| err(line, format!("`{raw}` is not a `Field: value` line")))?;
        let stanza = current.get_or_insert_with(|| Stanza {
            line,
            fields: BTreeMap::new(),
        });
        // Field names are case-insensitive (Policy §5.1).
        if stanza
            .fields
            .insert(name.to_ascii_lowercase(), value.trim().to_string())
            .is_some()
        {
            return Err(err(
                line,
                format!("field `{name}` given twice in one stanza"),
            ));
        }
    }
    out.extend(current);
    Ok(out)
}

/// The package a stanza describes, if it is installed.
fn package(file: &str, stanza: &Stanza) -> Result<Option<OsPackage>, DpkgError> {
    let err = |message: String| DpkgError {
        file: file.to_string(),
        line: stanza.line,
        message,
    };
    let field = |name: &str| stanza.fields.get(name).filter(|v| !v.is_empty());
    let name = field("package").ok_or_else(|| err("a stanza without `Package:`".into()))?;
    let status =
        field("status").ok_or_else(|| err(format!("package `{name}` has no `Status:`")))?;
    let words: Vec<&str> = status.split_whitespace().collect();
    let [_want, _flag, state] = words[..] else {
        return Err(err(format!(
            "package `{name}`: `Status: {status}` is not `want flag status`"
        )));
    };
    if state != "installed" {
        return Ok(None);
    }
    let version = field("version")
        .ok_or_else(|| err(format!("installed package `{name}` has no `Version:`")))?;
    let architecture = field("architecture")
        .ok_or_else(|| err(format!("installed package `{name}` has no `Architecture:`")))?;
    let (source, source_version) = match field("source") {
        None => (name.clone(), None),
        Some(s) => match s.split_once(" (") {
            Some((n, v)) => {
                let v = v.strip_suffix(')').ok_or_else(|| {
                    err(format!(
                        "package `{name}`: `Source: {s}` has no closing `)`"
                    ))
                })?;
                (n.trim().to_string(), Some(v.to_string()))
            }
            None => (s.clone(), None),
        },
    };
    Ok(Some(OsPackage {
        name: name.clone(),
        version: version.clone(),
        architecture: architecture.clone(),
        source,
        source_version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: base-files
Essential: yes
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5

Package: vim-tiny
Status: deinstall ok config-files
Architecture: amd64
Version: 2:9.0.1378-2

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14
";

    #[test]
    fn installed_packages_with_their_source_and_nothing_removed() {
        let p = parse_status("status", STATUS).unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["base-files", "libc6", "libgcc-s1"]);
        assert_eq!(p[0].source, "base-files");
        assert_eq!(p[1].source, "glibc");
        assert_eq!(p[1].version, "2.36-9+deb12u4");
        assert_eq!(p[2].source, "gcc-12");
        assert_eq!(p[2].source_version.as_deref(), Some("12.2.0-14"));
        assert_eq!(p[2].architecture, "amd64");
    }

    #[test]
    fn malformed_databases_name_the_file_and_line() {
        for (text, want) in [
            (
                "Package: a\nStatus: install ok installed\nnot a field\n",
                "line 3",
            ),
            ("Package: a\nStatus: installed\n", "want flag status"),
            (
                "Package: a\nStatus: install ok installed\nArchitecture: amd64\n",
                "Version",
            ),
            ("Status: install ok installed\n", "without `Package:`"),
            (" continued\n", "continuation"),
            ("Package: a\nPackage: b\n", "twice"),
        ] {
            let e = parse_status("/img/var/lib/dpkg/status", text)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("/img/var/lib/dpkg/status") && e.contains(want),
                "{text:?}: {e}"
            );
        }
    }
}
