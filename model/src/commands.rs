//! The command lines generated jobs run, typed: every generator builds one of these structs,
//! whose fields are the options the target tool parses, and renders it. Each tool's tests
//! parse what these render with the tool's own parser, so a renamed flag fails a test instead
//! of a pipeline.

use crate::ci::shell_quote;
use crate::config::BucketConfig;

/// The five tools, in the order of the chain's stages: what the builder and tools images
/// hold and what generated lines may run.
pub const TOOLS: [&str; 5] = [
    "spacktainerizer",
    "spack-cacher",
    "spackah",
    "singularitah",
    "spackitor",
];

/// One argument value of a generated line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A value from the configuration or a definition: always single-quoted.
    Quoted(String),
    /// A fixed word of the generator (`envs`, `amd64`): written as is, so it must need no
    /// quoting.
    Word(String),
    /// A CI variable, expanded by the job's shell: `"$NAME"`.
    Var(String),
}

impl Arg {
    pub fn quoted(s: impl Into<String>) -> Arg {
        Arg::Quoted(s.into())
    }

    pub fn word(s: impl Into<String>) -> Arg {
        Arg::Word(s.into())
    }

    pub fn var(name: impl Into<String>) -> Arg {
        Arg::Var(name.into())
    }

    /// As the job's shell reads it.
    fn render(&self) -> String {
        match self {
            Arg::Quoted(s) => shell_quote(s),
            Arg::Word(s) => {
                debug_assert!(
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_./:=@+-".contains(&b)),
                    "`{s}` needs quoting"
                );
                s.clone()
            }
            Arg::Var(name) => format!("\"${name}\""),
        }
    }

    /// The value the tool receives, variables looked up with `env`.
    fn value(&self, env: &dyn Fn(&str) -> String) -> String {
        match self {
            Arg::Quoted(s) | Arg::Word(s) => s.clone(),
            Arg::Var(name) => env(name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Word(&'static str),
    Flag(&'static str),
    Opt(&'static str, Arg),
    Pos(Arg),
}

/// A generated command line: a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    program: &'static str,
    parts: Vec<Part>,
}

impl Line {
    /// `program` with its subcommand words.
    pub fn new(program: &'static str, subcommand: &[&'static str]) -> Line {
        Line {
            program,
            parts: subcommand.iter().map(|w| Part::Word(w)).collect(),
        }
    }

    pub fn program(&self) -> &'static str {
        self.program
    }

    fn opt(mut self, flag: &'static str, value: Arg) -> Line {
        self.parts.push(Part::Opt(flag, value));
        self
    }

    fn opt_if(self, flag: &'static str, value: Option<Arg>) -> Line {
        match value {
            Some(v) => self.opt(flag, v),
            None => self,
        }
    }

    fn flag(mut self, flag: &'static str, on: bool) -> Line {
        if on {
            self.parts.push(Part::Flag(flag));
        }
        self
    }

    fn pos(mut self, value: Arg) -> Line {
        self.parts.push(Part::Pos(value));
        self
    }

    /// The line as a job's script holds it.
    pub fn render(&self) -> String {
        let mut out = self.program.to_string();
        for p in &self.parts {
            out.push(' ');
            match p {
                Part::Word(w) | Part::Flag(w) => out.push_str(w),
                Part::Opt(f, v) => {
                    out.push_str(f);
                    out.push(' ');
                    out.push_str(&v.render());
                }
                Part::Pos(v) => out.push_str(&v.render()),
            }
        }
        out
    }

    /// The arguments the program receives (its name first), variables looked up with `env`.
    pub fn argv(&self, env: &dyn Fn(&str) -> String) -> Vec<String> {
        let mut out = vec![self.program.to_string()];
        for p in &self.parts {
            match p {
                Part::Word(w) | Part::Flag(w) => out.push(w.to_string()),
                Part::Opt(f, v) => {
                    out.push(f.to_string());
                    out.push(v.value(env));
                }
                Part::Pos(v) => out.push(v.value(env)),
            }
        }
        out
    }
}

/// How a tool reaches a bucket: its endpoint and the *names* of the variables holding its key
/// pair (`--s3-endpoint-url`, `--access-key-env`, `--secret-key-env`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Access {
    pub endpoint_url: Option<String>,
    pub access_key_env: Option<String>,
    pub secret_key_env: Option<String>,
}

impl S3Access {
    pub fn of(bucket: &BucketConfig) -> S3Access {
        S3Access {
            endpoint_url: bucket.endpoint_url.clone(),
            access_key_env: bucket.credentials.as_ref().map(|c| c.user_env.clone()),
            secret_key_env: bucket.credentials.as_ref().map(|c| c.secret_env.clone()),
        }
    }

    fn add(&self, line: Line) -> Line {
        line.opt_if(
            "--s3-endpoint-url",
            self.endpoint_url.clone().map(Arg::Quoted),
        )
        .opt_if(
            "--access-key-env",
            self.access_key_env.clone().map(Arg::Quoted),
        )
        .opt_if(
            "--secret-key-env",
            self.secret_key_env.clone().map(Arg::Quoted),
        )
    }
}

/// `spacktainerizer pipeline --out FILE --dotenv FILE --branch "$CI_COMMIT_REF_SLUG"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpacktainerizerPipeline {
    pub out: String,
    pub dotenv: String,
}

impl SpacktainerizerPipeline {
    pub fn line(&self) -> Line {
        Line::new("spacktainerizer", &["pipeline"])
            .opt("--out", Arg::word(&self.out))
            .opt("--dotenv", Arg::word(&self.dotenv))
            .opt("--branch", Arg::var(crate::env_names::CI_COMMIT_REF_SLUG))
    }
}

/// `spacktainerizer pin --dotenv FILE --branch "$CI_COMMIT_REF_SLUG"` (the tag from
/// `BUILDER_TAG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpacktainerizerPin {
    pub dotenv: String,
}

impl SpacktainerizerPin {
    pub fn line(&self) -> Line {
        Line::new("spacktainerizer", &["pin"])
            .opt("--tag", Arg::var(crate::env_names::BUILDER_TAG))
            .opt("--dotenv", Arg::word(&self.dotenv))
            .opt("--branch", Arg::var(crate::env_names::CI_COMMIT_REF_SLUG))
    }
}

/// `spacktainerizer build|index --image NAME [--arch ARCH --push] --branch B --date D`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpacktainerizerImage {
    /// `build` (with `arch`) or `index` (without).
    pub image: String,
    pub arch: Option<String>,
    pub branch: String,
    pub date: String,
}

impl SpacktainerizerImage {
    pub fn line(&self) -> Line {
        let line = match &self.arch {
            Some(arch) => Line::new("spacktainerizer", &["build"])
                .opt("--image", Arg::word(&self.image))
                .opt("--arch", Arg::word(arch))
                .flag("--push", true),
            None => Line::new("spacktainerizer", &["index"]).opt("--image", Arg::word(&self.image)),
        };
        line.opt("--branch", Arg::quoted(&self.branch))
            .opt("--date", Arg::quoted(&self.date))
    }
}

/// `spack-cacher prepare --out DIR --branch "$CI_COMMIT_REF_SLUG"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacherPrepare {
    pub out: String,
}

impl CacherPrepare {
    pub fn line(&self) -> Line {
        Line::new("spack-cacher", &["prepare"])
            .opt("--out", Arg::word(&self.out))
            .opt("--branch", Arg::var(crate::env_names::CI_COMMIT_REF_SLUG))
            // Stage 1's dotenv export: the builder the generated jobs run in.
            .opt("--base-tag", Arg::var(crate::env_names::BUILDER_TAG))
    }
}

/// `spack-cacher generate --envs DIR --arch ARCH --pipelines DIR --branch "$CI_COMMIT_REF_SLUG"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacherGenerate {
    pub envs: String,
    pub arch: String,
    pub pipelines: String,
}

impl CacherGenerate {
    pub fn line(&self) -> Line {
        Line::new("spack-cacher", &["generate"])
            .opt("--envs", Arg::word(&self.envs))
            .opt("--arch", Arg::word(&self.arch))
            .opt("--pipelines", Arg::word(&self.pipelines))
            .opt("--branch", Arg::var(crate::env_names::CI_COMMIT_REF_SLUG))
    }
}

/// `spack-cacher record --envs DIR --arch ARCH --branch "$CI_COMMIT_REF_SLUG"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacherRecord {
    pub envs: String,
    pub arch: String,
}

impl CacherRecord {
    pub fn line(&self) -> Line {
        Line::new("spack-cacher", &["record"])
            .opt("--envs", Arg::word(&self.envs))
            .opt("--arch", Arg::word(&self.arch))
            .opt("--branch", Arg::var(crate::env_names::CI_COMMIT_REF_SLUG))
    }
}

/// `spack-cacher process --arch ARCH --out DIR --artifacts-job "$CI_JOB_NAME" INPUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacherProcess {
    pub arch: String,
    pub out: String,
    pub input: String,
}

impl CacherProcess {
    pub fn line(&self) -> Line {
        Line::new("spack-cacher", &["process"])
            .opt("--arch", Arg::word(&self.arch))
            .opt("--out", Arg::word(&self.out))
            .opt("--artifacts-job", Arg::var(crate::env_names::CI_JOB_NAME))
            .pos(Arg::word(&self.input))
    }
}

/// `spackah pipeline --environments DIR --out FILE --branch "$CI_COMMIT_REF_SLUG"
/// --base-tag "$BUILDER_TAG"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpackahPipeline {
    pub environments: String,
    pub out: String,
}

impl SpackahPipeline {
    pub fn line(&self) -> Line {
        Line::new("spackah", &["pipeline"])
            .opt("--environments", Arg::word(&self.environments))
            .opt("--out", Arg::word(&self.out))
            .opt("--branch", Arg::var(crate::env_names::CI_COMMIT_REF_SLUG))
            .opt("--base-tag", Arg::var(crate::env_names::BUILDER_TAG))
    }
}

/// `spackah build ... --push` and `spackah publish ...` of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpackahContainer {
    pub lockfiles: String,
    pub branch: String,
    pub container: String,
    pub arch: String,
}

impl SpackahContainer {
    /// `spackah build --environments ENVS --lockfiles L --branch B --base-tag T
    /// --container C --arch A --push`.
    pub fn build(&self, environments: &str, base_tag: &str) -> Line {
        let line = Line::new("spackah", &["build"])
            .opt("--environments", Arg::quoted(environments))
            .opt("--lockfiles", Arg::quoted(&self.lockfiles))
            .opt("--branch", Arg::quoted(&self.branch))
            .opt("--base-tag", Arg::quoted(base_tag));
        self.which(line).flag("--push", true)
    }

    /// `spackah publish --lockfiles L --branch B --container C --arch A`.
    pub fn publish(&self) -> Line {
        let line = Line::new("spackah", &["publish"])
            .opt("--lockfiles", Arg::quoted(&self.lockfiles))
            .opt("--branch", Arg::quoted(&self.branch));
        self.which(line)
    }

    /// `spackah index --lockfiles L --branch B --container C`: every architecture's image of
    /// the container under its multi-arch tag.
    pub fn index(&self) -> Line {
        Line::new("spackah", &["index"])
            .opt("--lockfiles", Arg::quoted(&self.lockfiles))
            .opt("--branch", Arg::quoted(&self.branch))
            .opt("--container", Arg::quoted(&self.container))
    }

    fn which(&self, line: Line) -> Line {
        line.opt("--container", Arg::quoted(&self.container))
            .opt("--arch", Arg::quoted(&self.arch))
    }
}

/// What a SIF is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SifSource {
    /// A registry image, read with the login in the variables named.
    Image {
        image: String,
        login: Option<(String, String)>,
    },
    /// A `.def` file with labels to add.
    Def {
        path: String,
        labels: Vec<(String, String)>,
    },
}

/// `singularitah sif build (IMAGE | --def FILE) --arch A -o FILE ... --container C --branch B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SifBuild {
    pub source: SifSource,
    pub arch: String,
    pub out: String,
    pub container: String,
    pub branch: String,
}

impl SifBuild {
    pub fn line(&self) -> Line {
        let mut line = Line::new("singularitah", &["sif", "build"]);
        line = match &self.source {
            SifSource::Image { image, .. } => line.pos(Arg::quoted(image)),
            SifSource::Def { path, .. } => line.opt("--def", Arg::quoted(path)),
        };
        line = line
            .opt("--arch", Arg::quoted(&self.arch))
            .opt("-o", Arg::quoted(&self.out));
        match &self.source {
            SifSource::Image {
                login: Some((user, password)),
                ..
            } => {
                line = line
                    .opt("--user-env", Arg::quoted(user))
                    .opt("--password-env", Arg::quoted(password));
            }
            SifSource::Def { labels, .. } => {
                for (k, v) in labels {
                    line = line.opt("--label", Arg::quoted(format!("{k}={v}")));
                }
            }
            SifSource::Image { login: None, .. } => {}
        }
        line.opt("--container", Arg::quoted(&self.container))
            .opt("--branch", Arg::quoted(&self.branch))
    }
}

/// `singularitah sif publish FILE --to URL` and the bucket's access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SifPublish {
    pub file: String,
    pub to: String,
    pub s3: S3Access,
}

impl SifPublish {
    pub fn line(&self) -> Line {
        let line = Line::new("singularitah", &["sif", "publish"])
            .pos(Arg::quoted(&self.file))
            .opt("--to", Arg::quoted(&self.to));
        self.s3.add(line)
    }
}

/// `singularitah sif sync --from URL --to DIR [--delete-removed]` and the bucket's access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SifSync {
    pub from: String,
    pub to: String,
    pub delete_removed: bool,
    pub s3: S3Access,
}

impl SifSync {
    pub fn line(&self) -> Line {
        let line = Line::new("singularitah", &["sif", "sync"])
            .opt("--from", Arg::quoted(&self.from))
            .opt("--to", Arg::quoted(&self.to))
            .flag("--delete-removed", self.delete_removed);
        self.s3.add(line)
    }
}

/// `singularitah sif prune-branches` of one bucket or directory, against the project's remote
/// with the job token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SifPruneBranches {
    pub store: String,
    pub s3: S3Access,
}

impl SifPruneBranches {
    pub fn line(&self) -> Line {
        let line = Line::new("singularitah", &["sif", "prune-branches"])
            .opt("--repo", Arg::var(crate::env_names::CI_PROJECT_URL))
            .opt(
                "--default-branch",
                Arg::var(crate::env_names::CI_DEFAULT_BRANCH),
            )
            .opt("--git-token-env", Arg::word("CI_JOB_TOKEN"))
            .opt("--in", Arg::quoted(&self.store));
        self.s3.add(line)
    }
}

/// `spackitor clean` of one cache, as the chain runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpackitorClean {
    pub cache: String,
    pub max_age_days: Option<u32>,
    pub s3: S3Access,
    /// Store URLs of recorded keep lists (quoted) and local paths (words).
    pub keep: Vec<Arg>,
    /// Package repositories: `$SPACK_ROOT` and the project's.
    pub spack_repos: Vec<Arg>,
}

impl SpackitorClean {
    pub fn line(&self) -> Line {
        let mut line = Line::new("spackitor", &["clean"])
            .opt("--cache", Arg::quoted(&self.cache))
            .flag("--orphans", true)
            .opt_if(
                "--max-age",
                self.max_age_days.map(|a| Arg::word(a.to_string())),
            );
        line = self.s3.add(line);
        for k in &self.keep {
            line = line.opt("--keep", k.clone());
        }
        line = line
            .opt(
                "--branches-from",
                Arg::var(crate::env_names::CI_PROJECT_URL),
            )
            .opt(
                "--default-branch",
                Arg::var(crate::env_names::CI_DEFAULT_BRANCH),
            )
            .opt("--git-token-env", Arg::word("CI_JOB_TOKEN"));
        for r in &self.spack_repos {
            line = line.opt("--spack-repo", r.clone());
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_quotes_values_and_expands_variables_in_the_shell() {
        let l = Line::new("tool", &["sub"])
            .opt("--a", Arg::quoted("it's"))
            .opt("--b", Arg::word("envs/amd64"))
            .opt("--c", Arg::var("CI_JOB_NAME"))
            .flag("--d", true)
            .flag("--e", false)
            .pos(Arg::word("x"));
        assert_eq!(
            l.render(),
            r#"tool sub --a 'it'\''s' --b envs/amd64 --c "$CI_JOB_NAME" --d x"#
        );
        assert_eq!(
            l.argv(&|v| format!("<{v}>")),
            [
                "tool",
                "sub",
                "--a",
                "it's",
                "--b",
                "envs/amd64",
                "--c",
                "<CI_JOB_NAME>",
                "--d",
                "x"
            ]
        );
    }
}
