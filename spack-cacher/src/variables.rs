//! The CI/CD variables the chain reads, from the configuration: what a project must define
//! (name, GitLab type, masked, protected), what GitLab predefines and what the chain sets
//! itself, as the Markdown table the README shows.

use std::collections::BTreeMap;

use model::config::{Config, Credentials};
use model::env_names;

/// Who provides a variable, and as what GitLab type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A project CI/CD variable of type Variable.
    Variable,
    /// A project CI/CD variable of type File (the job sees a path).
    File,
    /// GitLab sets it in every job.
    Predefined,
    /// The chain sets it (job variables, a dotenv report).
    Chain,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Variable => "variable",
            Source::File => "file",
            Source::Predefined => "predefined by GitLab",
            Source::Chain => "set by the chain",
        }
    }
}

/// One variable and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiVariable {
    pub name: String,
    pub source: Source,
    pub masked: bool,
    pub protected: bool,
    /// What reads it, for the table (several uses joined).
    pub uses: Vec<String>,
}

/// Every variable the chain generated from `cfg` reads, sorted: project variables first.
pub fn variables(cfg: &Config) -> Vec<CiVariable> {
    let mut found = Found::default();
    found.credentials(cfg);
    found.keys(cfg);
    for (name, used) in PREDEFINED {
        found.add(name, Source::Predefined, false, false, used);
    }
    for (name, used) in SET_BY_THE_CHAIN {
        found.add(name, Source::Chain, false, false, used);
    }
    let mut all: Vec<CiVariable> = found.0.into_values().collect();
    all.sort_by(|a, b| (a.source, &a.name).cmp(&(b.source, &b.name)));
    all
}

/// What GitLab sets in every job that the chain reads, and what for.
const PREDEFINED: [(&str, &str); 9] = [
    (
        env_names::CI_COMMIT_REF_SLUG,
        "the branch: tags, caches, keep lists",
    ),
    (env_names::CI_DEFAULT_BRANCH, "which branch is production"),
    ("CI_COMMIT_BRANCH", "rules: the default branch's pipelines"),
    (
        "CI_PIPELINE_SOURCE",
        "rules: push, merge request, web or schedule",
    ),
    (
        env_names::CI_PROJECT_URL,
        "the remote whose branches are alive",
    ),
    ("CI_JOB_TOKEN", "reading that remote's branches"),
    ("CI_PIPELINE_ID", "child pipelines' artifacts"),
    (env_names::CI_JOB_NAME, "child pipelines' artifacts"),
    (
        env_names::CI_PROJECT_DIR,
        "package repositories of the environments",
    ),
];

/// What the chain sets itself (job variables, dotenv reports) and reads, and what for.
const SET_BY_THE_CHAIN: [(&str, &str); 7] = [
    (
        env_names::BUILDER_TAG,
        "stage 1's tag of the base images (dotenv report)",
    ),
    (
        env_names::BUILDER_IMAGE,
        "the builder the pipeline built, pinned by digest (dotenv report)",
    ),
    (
        env_names::RUNTIME_IMAGE,
        "the runtime the pipeline built, pinned by digest (dotenv report)",
    ),
    (
        env_names::TOOLS_IMAGE,
        "the tools image the pipeline built, pinned by digest (dotenv report)",
    ),
    (env_names::CONFIG, "the configuration file"),
    (
        "PARENT_PIPELINE_ID",
        "child pipelines reading the parent's artifacts",
    ),
    (env_names::DOCKER_HOST, "the engine of image-building jobs"),
];

/// The variables found so far, by name; a name read for several things is one entry.
#[derive(Default)]
struct Found(BTreeMap<String, CiVariable>);

impl Found {
    fn add(&mut self, name: &str, source: Source, masked: bool, protected: bool, used: &str) {
        // GitLab's own variables are never the project's to define.
        let source = if name.starts_with("CI_") {
            Source::Predefined
        } else {
            source
        };
        let v = self
            .0
            .entry(name.to_string())
            .or_insert_with(|| CiVariable {
                name: name.to_string(),
                source,
                masked,
                protected,
                uses: Vec::new(),
            });
        // Protected only if every use is on protected branches.
        v.protected &= protected;
        v.masked |= masked;
        if !v.uses.iter().any(|u| u == used) {
            v.uses.push(used.to_string());
        }
    }

    /// The two variables of a login: the user shown, the secret masked.
    fn pair(&mut self, c: &Credentials, protected: bool, what: &str) {
        self.add(
            &c.user_env,
            Source::Variable,
            false,
            protected,
            &format!("{what} (user or key id)"),
        );
        self.add(
            &c.secret_env,
            Source::Variable,
            true,
            protected,
            &format!("{what} (password, token or secret key)"),
        );
    }

    /// The keys of a signed build cache (`signing`): the secret key only where pipelines sign
    /// (protected: the default branch), masked as GitLab masks a single-line base64 value; the
    /// public key everywhere. Without `signing` the public key is optional.
    fn keys(&mut self, cfg: &Config) {
        let Some(signing) = &cfg.signing else {
            self.add(
                env_names::SPACK_DEPLOYMENT_KEY_PUBLIC,
                Source::File,
                false,
                false,
                "optional: the public key builders trust (signed build caches)",
            );
            return;
        };
        self.add(
            &signing.key_variable,
            Source::Variable,
            true,
            true,
            "the secret key signing the default branch's build cache (base64 of the armored key, or a File variable)",
        );
        self.add(
            &signing.trust_variable,
            Source::File,
            false,
            false,
            "the public key builders and container builds verify the build cache with",
        );
    }

    /// The logins the configuration names: registries, build caches, SIF buckets.
    fn credentials(&mut self, cfg: &Config) {
        if let Some(c) = &cfg.registry.credentials {
            self.pair(c, false, "project registry: push and read images");
        }
        if let Some(c) = cfg
            .registry
            .public
            .as_ref()
            .and_then(|p| p.credentials.as_ref())
        {
            // Only the default branch publishes to the hub.
            self.pair(c, true, "public hub: publish from the default branch");
        }
        for (arch, ac) in &cfg.architectures {
            if let Some(c) = &ac.build_cache.credentials {
                self.pair(
                    c,
                    false,
                    &format!("{arch} build cache: Spack jobs, containers, janitor"),
                );
            }
            if let Some(c) = ac
                .containers_bucket
                .as_ref()
                .and_then(|b| b.credentials.as_ref())
            {
                self.pair(c, false, "SIF bucket: publish, sync, prune");
            }
        }
    }
}

/// The Markdown table of `vars`.
pub fn markdown(vars: &[CiVariable]) -> String {
    let yes_no = |b: bool, v: &CiVariable| match v.source {
        Source::Variable | Source::File => if b { "yes" } else { "no" }.to_string(),
        _ => "—".to_string(),
    };
    let mut out = String::from(
        "| Variable | Type | Masked | Protected | Read for |\n|---|---|---|---|---|\n",
    );
    for v in vars {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            v.name,
            v.source.label(),
            yes_no(v.masked, v),
            yes_no(v.protected, v),
            v.uses.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "{}{extra}",
            include_str!("../../examples/spacktainerizah.yaml").replace(
                "url: s3://spack-cache-arm64\n",
                "url: s3://spack-cache-arm64\n      branch_url: s3://spack-cache-arm64-dev\n",
            )
        );
        Config::parse(std::path::Path::new("c.yaml"), &text).unwrap()
    }

    fn find<'a>(vars: &'a [CiVariable], name: &str) -> Option<&'a CiVariable> {
        vars.iter().find(|v| v.name == name)
    }

    #[test]
    fn a_signed_cache_needs_a_protected_masked_key_and_the_public_key() {
        let vars = variables(&config("signing: {key_variable: CACHE_KEY}\n"));
        let key = find(&vars, "CACHE_KEY").unwrap();
        assert!(key.protected && key.masked && key.source == Source::Variable);
        let public = find(&vars, "SPACK_DEPLOYMENT_KEY_PUBLIC").unwrap();
        assert!(!public.protected && public.source == Source::File);
        assert!(!public.uses[0].starts_with("optional"), "{:?}", public.uses);
        let unsigned = variables(&config(""));
        assert!(find(&unsigned, "CACHE_KEY").is_none());
        let public = find(&unsigned, "SPACK_DEPLOYMENT_KEY_PUBLIC").unwrap();
        assert!(public.uses[0].starts_with("optional"), "{:?}", public.uses);
    }
}
