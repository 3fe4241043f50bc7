//! What a Dockerfile pulls: the registries its `FROM` lines name, with build arguments put
//! in, so a build can be handed the logins of exactly those registries.

use std::collections::BTreeMap;

use crate::registry::ImageRef;

/// The registries (`host[:port]`, Docker Hub as [`DOCKER_HUB`](model::reference::DOCKER_HUB)) the `FROM` lines of
/// `dockerfile` pull from, with `build_args` and the `ARG` defaults before the first `FROM`
/// put in; `scratch`, earlier stages and references that are still not plain names (an
/// argument without a value) are left out. Sorted, each once.
pub fn base_registries(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<String> {
    let registries: std::collections::BTreeSet<String> = base_images(dockerfile, build_args)
        .into_iter()
        .map(|(_, r)| r.registry)
        .collect();
    registries.into_iter().collect()
}

/// The images the `FROM` lines of `dockerfile` pull (as written, arguments put in, and parsed),
/// with the same rules as [`base_registries`]; sorted, each once.
pub fn base_images(
    dockerfile: &str,
    build_args: &BTreeMap<String, String>,
) -> Vec<(String, ImageRef)> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut in_stage = false;
    let mut stages: Vec<String> = Vec::new();
    let mut images: BTreeMap<String, ImageRef> = BTreeMap::new();
    for line in instructions(dockerfile) {
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        if keyword.eq_ignore_ascii_case("ARG") && !in_stage {
            // Only arguments declared before the first stage reach `FROM` lines.
            for decl in words {
                let (name, default) = decl.split_once('=').unwrap_or((decl, ""));
                let value = build_args
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| default.trim_matches(|c| c == '"' || c == '\'').to_string());
                args.insert(name.to_string(), value);
            }
        } else if keyword.eq_ignore_ascii_case("FROM") {
            let mut rest = words.skip_while(|w| w.starts_with("--"));
            let Some(image) = rest.next().map(|w| substitute(w, &args)) else {
                continue;
            };
            let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
            if !is_stage
                && !image.eq_ignore_ascii_case("scratch")
                && !image.contains('$')
                && let Ok(r) = image.parse::<ImageRef>()
            {
                images.insert(image, r);
            }
            if let (Some(kw), Some(name)) = (rest.next(), rest.next())
                && kw.eq_ignore_ascii_case("AS")
            {
                stages.push(name.to_string());
            }
            in_stage = true;
        }
    }
    images.into_iter().collect()
}

/// The instructions of a Dockerfile: comments dropped, continued lines joined.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out.push(current);
    out
}

/// `$NAME` and `${NAME}` replaced by their values in `args`; unknown names are kept.
fn substitute(word: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => (inner, ""),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        match args.get(name).filter(|_| !name.is_empty()) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[i..rest.len() - tail.len()]),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::reference::DOCKER_HUB;

    #[test]
    fn base_registries_are_read_from_the_from_lines() {
        let dockerfile = "# FROM commented.example.org/no:1
ARG OS_IMAGE=ubuntu:22.04
ARG BUILDER
FROM --platform=linux/amd64 ${BUILDER} AS builder
ARG OS_IMAGE=ignored.example.org/x:1
RUN echo \\
  FROM continued.example.org/no:1
FROM builder AS diagnose
FROM $OS_IMAGE
FROM scratch
FROM 127.0.0.1:5001/private/runtime:v1
FROM ${UNSET}/x:1
";
        let args = BTreeMap::from([(
            "BUILDER".to_string(),
            "registry.example.org/hpc/builder:latest".to_string(),
        )]);
        assert_eq!(
            base_registries(dockerfile, &args),
            ["127.0.0.1:5001", DOCKER_HUB, "registry.example.org"]
        );
        let images: Vec<String> = base_images(dockerfile, &args)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            images,
            [
                "127.0.0.1:5001/private/runtime:v1",
                "registry.example.org/hpc/builder:latest",
                "ubuntu:22.04"
            ]
        );
        // A build argument overrides the default.
        let args = BTreeMap::from([("OS_IMAGE".to_string(), "quay.io/os:1".to_string())]);
        assert_eq!(
            base_registries("ARG OS_IMAGE=ubuntu:22.04\nFROM ${OS_IMAGE}\n", &args),
            ["quay.io"]
        );
    }
}
