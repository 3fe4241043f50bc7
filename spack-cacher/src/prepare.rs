//! `spack-cacher prepare`: for every architecture and container definition, the Spack
//! environment that will be built — the repository's template merged with the definition, the
//! architecture's base requirement, the upload mirror and the CI section — in
//! `<output>/<arch>/<container>/spack.yaml`, with what its concretization depends on beside it
//! (`inputs.json`) when the builder is pinned by digest.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use model::checksum::{TreeHash, files_through_links, relative_name, sha256_hex};
use model::config::{ArchConfig, Config, SigningConfig};
use model::definitions::{self, Kind};
use model::env_names;
use model::spack::environment::Environment;
use model::spack::inputs::{self, Inputs};
use model::yaml::{Mapping, Value};

/// The mirror name current Spack requires for `spack ci` uploads.
pub const UPLOAD_MIRROR: &str = "buildcache-destination";

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The repository holding `spack.yaml` (the template) and `container_definitions/`.
    pub repo: PathBuf,
    pub config: Config,
    pub output: PathBuf,
    /// The branch slug (`CI_COMMIT_REF_SLUG`); the default branch uses production buckets and tags.
    pub branch: String,
    /// The base images' tag stage 1 exported: the builder Spack's jobs run in.
    pub base_tag: String,
    /// That builder pinned by digest (`BUILDER_IMAGE`), which Spack's jobs run in when given.
    pub builder_image: Option<String>,
    /// The checkout every job of the pipeline has (`CI_PROJECT_DIR`): package repositories
    /// inside it are written as `$CI_PROJECT_DIR/…`, which Spack expands in each job, wherever
    /// the runner put the checkout. Outside CI they are written as absolute paths.
    pub project_dir: Option<PathBuf>,
}

/// One prepared environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub arch: String,
    pub container: String,
    pub path: PathBuf,
}

pub fn run(opts: &PrepareOptions) -> anyhow::Result<Vec<Prepared>> {
    let template_path = opts.repo.join("spack.yaml");
    let template = Environment::read(&template_path)?;
    let defs = definitions::discover(&opts.repo)?;
    let on_default = opts.branch == opts.config.default_branch;
    let mut sums = Checksums::default();
    let mut out = Vec::new();
    for arch in &defs.architectures {
        let Some(ac) = opts.config.arch(arch) else {
            bail!(
                "container_definitions/{arch} has no entry under `architectures` in the configuration"
            );
        };
        for def in defs.for_arch(arch) {
            let Kind::Spack { environment, .. } = &def.kind else {
                continue;
            };
            let mut env = Environment::merged(&template, environment).with_context(|| {
                format!(
                    "merging {} into {}",
                    def.path.display(),
                    template_path.display()
                )
            })?;
            env.substitute_base_arch(&ac.base_requirement);
            anchor_repos(&mut env, &opts.repo, opts.project_dir.as_deref())
                .with_context(|| format!("the package repositories of {}", def.path.display()))?;
            let signed = opts.config.signs(on_default);
            add_mirror(&mut env, ac, on_default, signed);
            let builder = opts
                .builder_image
                .clone()
                .unwrap_or_else(|| opts.config.base_image("builder", &opts.base_tag));
            let keys = Keys::of(opts.config.signing.as_ref(), on_default, ac);
            add_ci(&mut env, ac, &builder, &keys);
            let dir = opts.output.join(arch).join(&def.name);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join("spack.yaml");
            let yaml = env.to_yaml();
            std::fs::write(&path, &yaml).with_context(|| format!("writing {}", path.display()))?;
            write_inputs(&dir, &yaml, &env, ac, opts, &mut sums)?;
            out.push(Prepared {
                arch: arch.clone(),
                container: def.name.clone(),
                path,
            });
        }
    }
    Ok(out)
}

/// What an environment's concretization depends on, in `<dir>/inputs.json`; when that cannot
/// be known, why, in `<dir>/not-reusable.txt` (the environment is then concretized every time).
fn write_inputs(
    dir: &Path,
    yaml: &str,
    env: &Environment,
    ac: &ArchConfig,
    opts: &PrepareOptions,
    sums: &mut Checksums,
) -> anyhow::Result<()> {
    let inputs_path = dir.join(inputs::FILE);
    let reason_path = dir.join(inputs::NOT_REUSABLE_FILE);
    for p in [&inputs_path, &reason_path] {
        if p.exists() {
            std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    // Only a builder pinned by digest says which Spack concretizes: a tag may move.
    let Some(pinned) = opts
        .builder_image
        .as_ref()
        .filter(|b| b.contains("@sha256:"))
    else {
        let why = "the builder is not pinned by digest, so its Spack is not known";
        return std::fs::write(&reason_path, why)
            .with_context(|| format!("writing {}", reason_path.display()));
    };
    let sources = match sources(env, opts.project_dir.as_deref()) {
        Ok(s) => s,
        Err(why) => {
            return std::fs::write(&reason_path, why)
                .with_context(|| format!("writing {}", reason_path.display()));
        }
    };
    // The job's own variables and the architecture's: the environment Spack runs in.
    let mut variables = ac.job_variables();
    variables.extend(opts.config.jobs.generate.variables.clone());
    let inputs = Inputs {
        spack_yaml: sha256_hex(yaml.as_bytes()),
        builder: pinned.clone(),
        sources: sums.of(&sources)?,
        variables: inputs::variables_checksum(
            variables.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ),
    };
    std::fs::write(&inputs_path, inputs.to_json())
        .with_context(|| format!("writing {}", inputs_path.display()))
}

/// Checksums of files and folders, each computed once for all the environments that read it.
/// Links are followed: a package linked into a repository is part of it.
#[derive(Default)]
struct Checksums(HashMap<PathBuf, String>);

impl Checksums {
    /// Each source (as written, where it is) by the checksum of its files.
    fn of(&mut self, sources: &[(String, PathBuf)]) -> anyhow::Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (written, path) in sources {
            if !self.0.contains_key(path) {
                let files = files_through_links(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let mut h = TreeHash::new();
                for f in files {
                    h.file(&relative_name(&f, path), &f)
                        .with_context(|| format!("reading {}", f.display()))?;
                }
                self.0.insert(path.clone(), h.finish());
            }
            out.insert(written.clone(), self.0[path].clone());
        }
        Ok(out)
    }
}

/// Relative package repositories (`spack: repos:`, a list or Spack 1.x's name → path mapping)
/// are relative to the repository root; the environment lives elsewhere, so each becomes
/// `$CI_PROJECT_DIR/…` in CI, an absolute path otherwise. Paths with variables or absolute
/// ones are left as written.
fn anchor_repos(
    env: &mut Environment,
    repo: &Path,
    project_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let Some(repos) = env.spack_mut().get_mut(s("repos")) else {
        return Ok(());
    };
    let anchor = |path: &str| -> anyhow::Result<String> {
        if path.starts_with('$') || path.starts_with('~') || Path::new(path).is_absolute() {
            return Ok(path.to_string());
        }
        let full = repo.join(path);
        let full = full.canonicalize().with_context(|| {
            format!(
                "package repository `{path}`: {} does not exist",
                full.display()
            )
        })?;
        if let Some(project) = project_dir.and_then(|p| p.canonicalize().ok())
            && let Ok(inside) = full.strip_prefix(&project)
        {
            return Ok(format!(
                "${}/{}",
                env_names::CI_PROJECT_DIR,
                inside.display()
            ));
        }
        Ok(full.display().to_string())
    };
    let rewrite = |v: &mut Value| -> anyhow::Result<()> {
        if let Some(path) = v.as_str() {
            *v = Value::String(anchor(path)?);
        }
        Ok(())
    };
    match repos {
        Value::Sequence(items) => items.iter_mut().try_for_each(rewrite),
        Value::Mapping(m) => m.values_mut().try_for_each(rewrite),
        _ => bail!("`spack: repos:` is neither a list nor a mapping"),
    }
}

/// The files besides `spack.yaml` that shape the environment's concretization: its package
/// repositories and included configuration, as written and where they are on this machine.
/// `Err` says which one cannot be checksummed here (a git repository Spack clones, a path
/// behind another variable): such an environment is concretized every time. Paths under
/// `$spack` are the builder's own, which its digest stands for.
fn sources(
    env: &Environment,
    project_dir: Option<&Path>,
) -> Result<Vec<(String, PathBuf)>, String> {
    let mut entries: Vec<(&str, &Value)> = Vec::new();
    for (what, key) in [("package repository", "repos"), ("include", "include")] {
        match env.section(key) {
            None => {}
            Some(Value::Sequence(items)) => entries.extend(items.iter().map(|v| (what, v))),
            Some(Value::Mapping(m)) => entries.extend(m.values().map(|v| (what, v))),
            Some(_) => return Err(format!("`spack: {key}:` is neither a list nor a mapping")),
        }
    }
    let mut out = Vec::new();
    for (what, value) in entries {
        // Spack 1.x also writes `{path: …}` (and `{git: …}`, which is cloned at concretization).
        let written = match value {
            Value::String(p) => p.as_str(),
            Value::Mapping(m) => match m.get(s("path")).and_then(Value::as_str) {
                Some(p) => p,
                None => return Err(format!("a {what} that is not a path ({})", short(value))),
            },
            other => return Err(format!("a {what} that is not a path ({})", short(other))),
        };
        if written == "$spack" || written.starts_with("$spack/") {
            continue;
        }
        let project = format!("${}/", env_names::CI_PROJECT_DIR);
        let local = match (written.strip_prefix(&project), project_dir) {
            (Some(rest), Some(dir)) => dir.join(rest),
            _ if Path::new(written).is_absolute() => PathBuf::from(written),
            _ => {
                return Err(format!(
                    "{what} `{written}` is not a path prepare can checksum"
                ));
            }
        };
        if !local.exists() {
            return Err(format!("{what} `{written}` is not on this machine"));
        }
        out.push((written.to_string(), local));
    }
    Ok(out)
}

/// A YAML value on one line, for a message.
fn short(v: &Value) -> String {
    model::yaml::to_string(v).trim().replace('\n', " ")
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Mapping(
        pairs
            .into_iter()
            .map(|(k, v)| (s(k), v))
            .collect::<Mapping>(),
    )
}

/// The upload mirror replaces the template's mirrors: where packages go is configuration. The
/// key pair is given to Spack by variable *name* (`access_pair`), never by value. `signed`
/// decides both ways: Spack signs what it pushes there, and `spack install` without
/// `--no-check-signature` verifies what it takes from there (`unsigned=None` falls back to
/// the mirror's `signed`, lib/spack/spack/binary_distribution.py `download_tarball`).
fn add_mirror(env: &mut Environment, ac: &ArchConfig, on_default: bool, signed: bool) {
    let bucket = &ac.build_cache;
    let mut mirror = vec![
        ("url", s(bucket.url_for(on_default))),
        ("signed", Value::Bool(signed)),
    ];
    if let Some(endpoint) = &bucket.endpoint_url {
        mirror.push(("endpoint_url", s(endpoint)));
    }
    if let Some(c) = &bucket.credentials {
        mirror.push((
            "access_pair",
            map(vec![
                ("id_variable", s(&c.user_env)),
                ("secret_variable", s(&c.secret_env)),
            ]),
        ));
    }
    env.spack_mut()
        .insert(s("mirrors"), map(vec![(UPLOAD_MIRROR, map(mirror))]));
}

/// The key handling of a stage-2 job's `before_script`, after Spack's setup: every job
/// trusts the public key(s); build jobs of a signed cache import the secret key, and build jobs
/// of an unsigned branch cache say so; then every job drops the secret key's variable.
struct Keys {
    trust: Vec<String>,
    build: Vec<String>,
    /// GitLab gives protected variables to every protected branch and tag, not only the
    /// default branch (https://docs.gitlab.com/ci/variables/#protect-a-cicd-variable), and a
    /// project may define `SPACK_SIGNING_KEY` without `signing:`: whatever the branch, the
    /// variable is unset before `spack ci rebuild` imports it itself and records it in
    /// `spack-build-env.txt`.
    unset: String,
}

impl Keys {
    fn of(signing: Option<&SigningConfig>, on_default: bool, ac: &ArchConfig) -> Keys {
        let spack_reads = env_names::SPACK_SIGNING_KEY;
        let unset = match signing {
            Some(s) if s.key_variable != spack_reads => {
                format!("unset {} {spack_reads}", s.key_variable)
            }
            _ => format!("unset {spack_reads}"),
        };
        let Some(signing) = signing else {
            // An unsigned cache: the deployment key is optional, and verifies nothing while
            // the mirrors say `signed: false`.
            let var = env_names::SPACK_DEPLOYMENT_KEY_PUBLIC;
            return Keys {
                trust: vec![format!(
                    "if [ -n \"${{{var}:-}}\" ]; then spack gpg trust \"${var}\"; fi"
                )],
                build: Vec::new(),
                unset,
            };
        };
        let trust = vec![
            required(
                &signing.trust_variable,
                "the public key to trust, a File variable",
            ),
            format!("spack gpg trust \"${}\"", signing.trust_variable),
        ];
        let build = if on_default {
            import_signing_key(&signing.key_variable)
        } else {
            vec![format!(
                "echo \"The branch build cache {} is unsigned: only the default branch's protected pipelines get the signing key; the default branch's cache is signed and verified.\"",
                ac.build_cache.url_for(false)
            )]
        };
        Keys {
            trust,
            build,
            unset,
        }
    }
}

/// A line that stops the job when `var` is not set, saying why it is needed.
fn required(var: &str, what: &str) -> String {
    format!(
        "if [ -z \"${{{var}:-}}\" ]; then echo \"{var} ({what}) is not set, and the build cache is signed (signing: in the configuration)\" >&2; exit 1; fi"
    )
}

/// The secret key goes from the protected variable `var` (a File variable's path, or the
/// base64 of the armored key as Spack's `import_signing_key` reads `SPACK_SIGNING_KEY`) into
/// Spack's keyring through a private temporary file, and the variable is unset before
/// `spack ci rebuild`: Spack would otherwise import it itself and keep it in the build
/// environment it records (`spack-build-env.txt`, uploaded as an artifact). With exactly one
/// secret key Spack signs every push (`can_sign_binaries`), and `SPACK_REQUIRE_SIGNING` makes
/// a job without one fail instead of pushing unsigned packages (lib/spack/spack/cmd/ci.py
/// `ci_rebuild`).
fn import_signing_key(var: &str) -> Vec<String> {
    // Each job runs in a container of its own: a fixed name in its /tmp, readable by the job's
    // user only, and removed whether the import worked or not. `|| exit 1`: `set -e` does not
    // stop a shell at a failure inside an `&&` list.
    const KEY_FILE: &str = "/tmp/spacktainerizah-signing-key";
    vec![
        required(var, "the signing key, a protected variable"),
        format!(
            "if [ -f \"${var}\" ]; then spack gpg trust \"${var}\" || exit 1; else (umask 077 && printf '%s' \"${var}\" | base64 -d > {KEY_FILE}) || exit 1; spack gpg trust {KEY_FILE} || {{ rm -f {KEY_FILE}; exit 1; }}; rm -f {KEY_FILE}; fi"
        ),
        "export SPACK_REQUIRE_SIGNING=True".to_string(),
    ]
}

/// The builder image of this branch, the runner tag, and the key handling of `keys`.
fn add_ci(env: &mut Environment, ac: &ArchConfig, builder: &str, keys: &Keys) {
    let image = map(vec![
        ("name", s(builder)),
        ("entrypoint", Value::Sequence(vec![s("")])),
    ]);
    let setup = s(". $SPACK_ROOT/share/spack/setup-env.sh");
    let trust = keys.trust.iter().map(|l| s(l));
    let before = |build: bool| {
        let mut lines: Vec<Value> = std::iter::once(setup.clone())
            .chain(trust.clone())
            .collect();
        if build {
            lines.extend(keys.build.iter().map(|l| s(l)));
        }
        lines.push(s(&keys.unset));
        Value::Sequence(lines)
    };
    let job = |before: Option<Value>| {
        let mut pairs = vec![
            ("tags", Value::Sequence(vec![s(&ac.runner_tag)])),
            ("image", image.clone()),
        ];
        if let Some(before) = before {
            pairs.push(("before_script", before));
        }
        map(pairs)
    };
    let entries = vec![
        map(vec![("build-job", job(Some(before(true))))]),
        map(vec![("reindex-job", job(Some(before(false))))]),
        map(vec![("noop-job", job(None))]),
    ];
    let spack = env.spack_mut();
    let ci = spack
        .entry(s("ci"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if !ci.is_mapping() {
        *ci = Value::Mapping(Mapping::new());
    }
    let ci = ci.as_mapping_mut().expect("made a mapping above");
    ci.entry(s("target")).or_insert_with(|| s("gitlab"));
    let pipeline_gen = ci
        .entry(s("pipeline-gen"))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    match pipeline_gen {
        Value::Sequence(items) => items.extend(entries),
        other => *other = Value::Sequence(entries),
    }
}

/// The prepared environments under `dir` for `arch`: `<dir>/<arch>/<container>/spack.yaml`.
pub fn environments(dir: &Path, arch: &str) -> anyhow::Result<Vec<PathBuf>> {
    let base = dir.join(arch);
    let mut envs = Vec::new();
    for e in std::fs::read_dir(&base).with_context(|| {
        format!(
            "reading {} (run `spack-cacher prepare` first)",
            base.display()
        )
    })? {
        let p = e?.path();
        if p.join("spack.yaml").is_file() {
            envs.push(p);
        }
    }
    envs.sort();
    Ok(envs)
}
