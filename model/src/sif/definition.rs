//! Singularity definition files (`.def`): the `Bootstrap`/`From` header and the `%sections`.

use std::path::{Path, PathBuf};

/// A parsed definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingularityDef {
    /// The image bootstrapped from (`From:`); only `Bootstrap: docker` is supported.
    pub from: String,
    /// Which line of the text (from 0) holds `From:`.
    pub from_line: usize,
    /// Sections in file order, by lowercase name without `%`, with their body text.
    pub sections: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct DefError {
    pub path: PathBuf,
    pub reason: String,
}

/// Sections only Singularity can carry out (they run commands or copy from the host).
pub const SECTIONS_NEEDING_SINGULARITY: &[&str] = &["setup", "post", "files", "test", "pre"];

impl SingularityDef {
    /// Parse `text`, read from `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<SingularityDef, DefError> {
        let err = |reason: String| DefError {
            path: path.to_path_buf(),
            reason,
        };
        let mut bootstrap = None;
        let mut from = None;
        let mut sections: Vec<(String, String)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(name) = line.strip_prefix('%') {
                // `%files from stage` and `%post -c /bin/bash` carry arguments after the name.
                let name = name.split_whitespace().next().unwrap_or_default();
                sections.push((name.to_ascii_lowercase(), String::new()));
                continue;
            }
            if let Some((_, body)) = sections.last_mut() {
                // Apptainer starts a stage at every `Bootstrap:`; only the first one's image
                // would be resolved (for `--arch`) and its digest recorded.
                if line
                    .split_once(':')
                    .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("bootstrap"))
                {
                    return Err(err(format!(
                        "line {}: a second `Bootstrap:` starts another stage; multi-stage definitions are not supported",
                        i + 1
                    )));
                }
                body.push_str(raw);
                body.push('\n');
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(err(format!(
                    "line {}: expected `Key: value` in the header",
                    i + 1
                )));
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "bootstrap" => bootstrap = Some(value.trim().to_string()),
                "from" => from = Some((i, value.trim().to_string())),
                // Apptainer puts these in front of `From:`; resolved without them, the image
                // would be another one than the one built.
                "registry" | "namespace" => {
                    return Err(err(format!(
                        "line {}: `{}:` is not supported: name the whole image in `From:` (registry/namespace/name:tag)",
                        i + 1,
                        key.trim()
                    )));
                }
                _ => {}
            }
        }
        match bootstrap.as_deref() {
            Some(b) if b.eq_ignore_ascii_case("docker") => {}
            Some(other) => {
                return Err(err(format!(
                    "`Bootstrap: {other}` is not supported (expected `docker`)"
                )));
            }
            None => return Err(err("missing `Bootstrap: docker`".into())),
        }
        let (from_line, from) = from
            .filter(|(_, f)| !f.is_empty())
            .ok_or_else(|| err("missing `From: image:tag`".into()))?;
        Ok(SingularityDef {
            from,
            from_line,
            sections,
        })
    }

    /// `text`, the definition this was parsed from, bootstrapping `image` instead.
    pub fn with_from(&self, text: &str, image: &str) -> String {
        let mut out = String::with_capacity(text.len() + image.len());
        for (i, line) in text.lines().enumerate() {
            if i == self.from_line {
                out.push_str("From: ");
                out.push_str(image);
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out
    }

    /// Read and parse the file at `path`.
    pub fn read(path: &Path) -> Result<SingularityDef, DefError> {
        let text = std::fs::read_to_string(path).map_err(|e| DefError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        SingularityDef::parse(path, &text)
    }

    /// The body of section `name` (all of them joined, as Singularity appends repeats).
    pub fn section(&self, name: &str) -> Option<String> {
        let bodies: Vec<&str> = self
            .sections
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, b)| b.as_str())
            .collect();
        (!bodies.is_empty()).then(|| bodies.concat())
    }

    /// `%labels` as key/value pairs (`KEY value with spaces`).
    pub fn labels(&self) -> Vec<(String, String)> {
        self.section("labels")
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| match l.split_once(char::is_whitespace) {
                Some((k, v)) => (k.to_string(), v.trim().to_string()),
                None => (l.to_string(), String::new()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_nexus_storage_definition() {
        let text = "Bootstrap: docker\nFrom: bluebrain/nexus-storage:latest\n\n%startscript\n   /opt/docker/bin/storage $@\n";
        let def = SingularityDef::parse(Path::new("nexus-storage.def"), text).unwrap();
        assert_eq!(def.from, "bluebrain/nexus-storage:latest");
        assert_eq!(
            def.section("startscript").unwrap(),
            "   /opt/docker/bin/storage $@\n"
        );
        assert!(def.section("post").is_none());
    }

    #[test]
    fn sections_labels_and_errors() {
        let text = "Bootstrap: docker\nFrom: a/b:1\n%labels\n  Author me\n  Version 1.0 beta\n%post -c /bin/bash\n  echo hi\n%labels\nExtra x\n";
        let def = SingularityDef::parse(Path::new("x.def"), text).unwrap();
        assert_eq!(
            def.labels(),
            [
                ("Author".to_string(), "me".to_string()),
                ("Version".to_string(), "1.0 beta".to_string()),
                ("Extra".to_string(), "x".to_string()),
            ]
        );
        assert_eq!(def.section("post").unwrap(), "  echo hi\n");
        let e = SingularityDef::parse(Path::new("y.def"), "Bootstrap: library\nFrom: x\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("y.def: `Bootstrap: library`"), "{e}");
        let e = SingularityDef::parse(Path::new("z.def"), "From: x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing `Bootstrap: docker`"), "{e}");
        let e = SingularityDef::parse(Path::new("w.def"), "Bootstrap docker\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn another_image_goes_on_the_from_line_and_nowhere_else() {
        let text = "Bootstrap: docker\n  from : r.example.org/x:1\n# From: a comment\n%labels\n    From: me\n";
        let def = SingularityDef::parse(Path::new("x.def"), text).unwrap();
        let pinned = "r.example.org/x@sha256:abc";
        let t = def.with_from(text, pinned);
        assert_eq!(
            t,
            "Bootstrap: docker\nFrom: r.example.org/x@sha256:abc\n# From: a comment\n%labels\n    From: me\n"
        );
        assert_eq!(
            SingularityDef::parse(Path::new("x.def"), &t).unwrap().from,
            pinned
        );
    }

    #[test]
    fn what_would_build_another_image_than_the_one_resolved_is_refused() {
        let parse = |text: &str| {
            SingularityDef::parse(Path::new("s.def"), text)
                .unwrap_err()
                .to_string()
        };
        // A second stage's image would be taken for this machine, not the build's `--arch`.
        let e = parse(
            "Bootstrap: docker\nFrom: r/x:1\nStage: build\n%post\n  make\n\nbootstrap : docker\nFrom: r/y:1\nStage: final\n%files from build\n  /a /a\n",
        );
        assert!(e.contains("line 7") && e.contains("multi-stage"), "{e}");
        // Apptainer prefixes these to `From:`; the image resolved would be another one.
        let e = parse("Bootstrap: docker\nRegistry: r.example.org\nFrom: x:1\n");
        assert!(e.contains("line 2") && e.contains("`Registry:`"), "{e}");
        let e = parse("Bootstrap: docker\nnamespace: team\nFrom: x:1\n");
        assert!(e.contains("`namespace:`"), "{e}");
    }
}
