//! Concrete spec nodes as Spack writes them in lockfiles, spec files and build-cache indexes.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use super::{FormatError, is_dag_hash};

/// A string shared by every node that holds it: package names, versions, architectures and
/// hashes repeat across a cache's index (a base library's hash appears in thousands of edges),
/// so each is stored once.
pub type Shared = Arc<str>;

/// The strings and node traits of one parse (an index, a lockfile, a spec file): each is stored
/// once, and all are freed with what was parsed.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Shared>,
    traits: HashSet<Arc<NodeTraits>>,
    edges: HashSet<Arc<EdgeParams>>,
}

impl Interner {
    /// The one copy of `s`.
    pub fn get(&mut self, s: &str) -> Shared {
        if let Some(existing) = self.strings.get(s) {
            return existing.clone();
        }
        let new: Shared = Arc::from(s);
        self.strings.insert(new.clone());
        new
    }

    /// The one copy of `traits`.
    pub fn traits(&mut self, traits: NodeTraits) -> Arc<NodeTraits> {
        one_copy(&mut self.traits, traits)
    }

    /// The one copy of `params`.
    pub fn edge_params(&mut self, params: EdgeParams) -> Arc<EdgeParams> {
        one_copy(&mut self.edges, params)
    }
}

fn one_copy<T: std::hash::Hash + Eq>(set: &mut HashSet<Arc<T>>, value: T) -> Arc<T> {
    if let Some(existing) = set.get(&value) {
        return existing.clone();
    }
    let new = Arc::new(value);
    set.insert(new.clone());
    new
}

/// One dependency type of an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DepType {
    Build,
    Link,
    Run,
    Test,
}

/// A set of dependency types, as carried by one edge or asked for in a closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DepTypes(u8);

impl DepTypes {
    pub const NONE: DepTypes = DepTypes(0);
    pub const BUILD: DepTypes = DepTypes(1);
    pub const LINK: DepTypes = DepTypes(2);
    pub const RUN: DepTypes = DepTypes(4);
    pub const TEST: DepTypes = DepTypes(8);
    /// Link and run: what an installed package needs at run time.
    pub const LINK_RUN: DepTypes = DepTypes(2 | 4);
    pub const ALL: DepTypes = DepTypes(15);

    /// From the bit set build=1, link=2, run=4, test=8 (other bits are dropped).
    pub const fn from_bits(bits: u8) -> DepTypes {
        DepTypes(bits & 15)
    }

    /// The bit set build=1, link=2, run=4, test=8.
    pub const fn bits(self) -> u8 {
        self.0
    }

    pub fn union(self, other: DepTypes) -> DepTypes {
        DepTypes(self.0 | other.0)
    }

    /// True when the two sets share at least one type.
    pub fn intersects(self, other: DepTypes) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn from_name(name: &str) -> Option<DepTypes> {
        Some(match name {
            "build" => DepTypes::BUILD,
            "link" => DepTypes::LINK,
            "run" => DepTypes::RUN,
            "test" => DepTypes::TEST,
            _ => return None,
        })
    }

    /// Names in Spack's order: build, link, run, test.
    pub fn names(self) -> Vec<&'static str> {
        [
            ("build", Self::BUILD),
            ("link", Self::LINK),
            ("run", Self::RUN),
            ("test", Self::TEST),
        ]
        .into_iter()
        .filter(|(_, t)| self.intersects(*t))
        .map(|(n, _)| n)
        .collect()
    }
}

/// A dependency edge from one node to another, by DAG hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub name: Shared,
    pub hash: Shared,
    /// Shared with every edge of the same parse that has the same: 16 bytes an edge less, over
    /// the ~2,500,000 edges of an index of 1,000,000 specs.
    pub params: Arc<EdgeParams>,
}

/// What an edge is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgeParams {
    pub types: DepTypes,
    /// Virtual packages the edge provides (`c`, `cxx`, `mpi`, …); empty in older formats.
    pub virtuals: Box<[Shared]>,
}

/// Compiler name and version as used in v2 build-cache key names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Compiler {
    pub name: Shared,
    pub version: Shared,
}

impl Compiler {
    /// The literal `none-none` Spack uses for nodes built without a compiler.
    pub fn none() -> Self {
        Compiler {
            name: Shared::from("none"),
            version: Shared::from("none"),
        }
    }
}

impl std::fmt::Display for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.name, self.version)
    }
}

/// One concrete spec node. Only what the tools use is kept; the stored hash is authoritative
/// and never recomputed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecNode {
    pub name: Shared,
    pub version: Shared,
    pub hash: Shared,
    /// Shared with every node of the same parse that has the same: a cache's specs mostly
    /// share their architecture, compiler and variants, and an index of 1,000,000 nodes holding
    /// them apart took ~160 bytes a node more.
    pub traits: Arc<NodeTraits>,
    /// A boxed slice, not a vector, here and in [`Edge`]: an index holds a node per spec, and a
    /// list grown while parsing keeps spare room (~100 MB over 1,000,000 nodes).
    pub dependencies: Box<[Edge]>,
}

/// A node is its own: what [`SpecGraph`](super::graph::SpecGraph) tables hold, directly
/// or inside an index entry.
impl AsRef<SpecNode> for SpecNode {
    fn as_ref(&self) -> &SpecNode {
        self
    }
}

/// What a node holds beside its name, version, hash and dependencies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeTraits {
    pub platform: Shared,
    pub platform_os: Shared,
    /// The target name (`x86_64_v3`, `core2`), whether stored as a string or an object.
    pub target: Shared,
    /// The compiler the node itself records (spec file v4 and older, or the v8 index
    /// annotation); `None` when it must be found through a compiler dependency.
    pub own_compiler: Option<Compiler>,
    pub external: bool,
    /// Variants, compiler flags and patches as a spec string writes them (`+shared`,
    /// `build_system=cmake`, `languages:=c,c++`, `cflags="-O2"`), sorted by name; flags that
    /// are empty are left out.
    pub variants: Box<[Shared]>,
}

impl SpecNode {
    /// `<platform>-<os>-<target>`, e.g. `linux-ubuntu24.04-x86_64_v3`.
    pub fn architecture(&self) -> String {
        let t = &self.traits;
        format!("{}-{}-{}", t.platform, t.platform_os, t.target)
    }

    /// The first 7 characters of the hash, as Spack prints it.
    pub fn short_hash(&self) -> &str {
        &self.hash[..self.hash.len().min(7)]
    }

    /// The compiler as Spack names it in v2 keys: the node's own, else the node behind an edge
    /// providing `c`, `cxx` or `fortran` (found with `lookup`), else `none-none`.
    pub fn compiler(&self, lookup: impl Fn(&str) -> Option<(Shared, Shared)>) -> Compiler {
        if let Some(c) = &self.traits.own_compiler {
            return c.clone();
        }
        const LANGUAGES: [&str; 3] = ["c", "cxx", "fortran"];
        self.dependencies
            .iter()
            .find(|e| e.params.virtuals.iter().any(|v| LANGUAGES.contains(&&**v)))
            .and_then(|e| lookup(&e.hash))
            .map(|(name, version)| Compiler { name, version })
            .unwrap_or_else(Compiler::none)
    }

    /// The compiler as Spack shows it: `gcc@12.2.0` for a node that records its own (Spack
    /// 0.x), `%c,cxx=gcc@12.2.0` for one whose compilers are dependencies (Spack 1.x, as
    /// `spack buildcache list` groups them), `-` for "no compilers".
    pub fn compiler_shown(&self, lookup: impl Fn(&str) -> Option<(Shared, Shared)>) -> String {
        if let Some(c) = &self.traits.own_compiler {
            return if *c == Compiler::none() {
                "-".to_string()
            } else {
                format!("{}@{}", c.name, c.version)
            };
        }
        const LANGUAGES: [&str; 3] = ["c", "cxx", "fortran"];
        // Provider → the languages it provides, in Spack's order.
        let mut providers: Vec<(String, Vec<&str>)> = Vec::new();
        for language in LANGUAGES {
            let Some(edge) = self
                .dependencies
                .iter()
                .find(|e| e.params.virtuals.iter().any(|v| &**v == language))
            else {
                continue;
            };
            let provider = match lookup(&edge.hash) {
                Some((name, version)) => format!("{name}@{version}"),
                None => edge.name.to_string(),
            };
            match providers.iter_mut().find(|(p, _)| *p == provider) {
                Some((_, languages)) => languages.push(language),
                None => providers.push((provider, vec![language])),
            }
        }
        if providers.is_empty() {
            return "-".to_string();
        }
        providers
            .iter()
            .map(|(p, languages)| format!("%{}={p}", languages.join(",")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Parse a node from its JSON; `key_hash` is the hash it is stored under (lockfile and index
    /// keys), which wins over the node's own `hash` field.
    pub fn from_json(
        value: &serde_json::value::RawValue,
        key_hash: Option<&str>,
        what: &str,
        strings: &mut Interner,
    ) -> Result<SpecNode, FormatError> {
        let raw: RawNode = serde_json::from_str(value.get())
            .map_err(|e| FormatError::invalid(what, format!("not a spec node: {e}")))?;
        raw.into_node(key_hash, what, strings)
    }

    pub fn from_value(
        value: serde_json::Value,
        key_hash: Option<&str>,
        what: &str,
        strings: &mut Interner,
    ) -> Result<SpecNode, FormatError> {
        let raw: RawNode = serde_json::from_value(value)
            .map_err(|e| FormatError::invalid(what, format!("not a spec node: {e}")))?;
        raw.into_node(key_hash, what, strings)
    }
}

#[derive(Deserialize)]
struct RawNode {
    name: String,
    #[serde(default)]
    version: Option<serde_json::Value>,
    #[serde(default)]
    arch: Option<RawArch>,
    #[serde(default)]
    compiler: Option<RawCompiler>,
    #[serde(default)]
    external: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    dependencies: Option<serde_json::Value>,
    #[serde(default)]
    annotations: Option<RawAnnotations>,
    #[serde(default)]
    hash: Option<String>,
    /// Variants, flags and patches (spec file v2 and later).
    #[serde(default)]
    parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawArch {
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    platform_os: Option<String>,
    #[serde(default)]
    target: Option<RawTarget>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTarget {
    Name(String),
    Object { name: String },
}

#[derive(Deserialize)]
struct RawCompiler {
    name: String,
    version: serde_json::Value,
}

#[derive(Deserialize)]
struct RawAnnotations {
    #[serde(default)]
    compiler: Option<String>,
}

#[derive(Deserialize)]
struct RawEdge {
    name: String,
    hash: String,
    /// Spec file v3 and older (lockfile v4): `"type": [...]`.
    #[serde(default, rename = "type")]
    types: Option<Vec<String>>,
    /// Spec file v4 and later: `"parameters": {"deptypes": [...], "virtuals": [...]}`.
    #[serde(default)]
    parameters: Option<RawEdgeParameters>,
}

#[derive(Deserialize)]
struct RawEdgeParameters {
    #[serde(default)]
    deptypes: Vec<String>,
    #[serde(default)]
    virtuals: Vec<String>,
}

fn scalar_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl RawNode {
    fn into_node(
        self,
        key_hash: Option<&str>,
        what: &str,
        strings: &mut Interner,
    ) -> Result<SpecNode, FormatError> {
        let hash = match (key_hash, self.hash) {
            (Some(k), _) => k.to_string(),
            (None, Some(h)) => h,
            (None, None) => {
                return Err(FormatError::invalid(
                    what,
                    format!("node `{}` has no hash", self.name),
                ));
            }
        };
        if !is_dag_hash(&hash) {
            return Err(FormatError::invalid(
                what,
                format!("node `{}` has an invalid DAG hash `{hash}`", self.name),
            ));
        }
        let arch = self.arch.unwrap_or(RawArch {
            platform: None,
            platform_os: None,
            target: None,
        });
        let own_compiler = match (self.compiler, self.annotations.and_then(|a| a.compiler)) {
            (Some(c), _) => Some(Compiler {
                name: strings.get(&c.name),
                version: strings.get(&scalar_string(&c.version)),
            }),
            // v8 index: "gcc@=10.2.1" (older writers used "gcc@10.2.1").
            (None, Some(s)) => {
                let (name, version) = s
                    .split_once("@=")
                    .or_else(|| s.split_once('@'))
                    .unwrap_or((s.as_str(), ""));
                Some(Compiler {
                    name: strings.get(name),
                    version: strings.get(version),
                })
            }
            (None, None) => None,
        };
        let dependencies = parse_edges(self.dependencies, &self.name, what, strings)?;
        let traits = NodeTraits {
            platform: strings.get(arch.platform.as_deref().unwrap_or_default()),
            platform_os: strings.get(arch.platform_os.as_deref().unwrap_or_default()),
            target: strings.get(match &arch.target {
                Some(RawTarget::Name(n)) | Some(RawTarget::Object { name: n }) => n,
                None => "",
            }),
            own_compiler,
            external: self.external.is_some(),
            variants: variants(self.parameters.as_ref(), strings),
        };
        Ok(SpecNode {
            version: strings.get(&self.version.as_ref().map(scalar_string).unwrap_or_default()),
            name: strings.get(&self.name),
            hash: strings.get(&hash),
            traits: strings.traits(traits),
            dependencies,
        })
    }
}

/// Compiler flags among a node's parameters: written `name="value"`, and left out when empty.
const FLAGS: [&str; 6] = [
    "cflags", "cppflags", "cxxflags", "fflags", "ldflags", "ldlibs",
];

/// A node's parameters as spec-string words, as Spack prints a concrete variant (Spack 1.0
/// `lib/spack/spack/variant.py`, `VariantValue.__str__`): a boolean is `+name` or `~name`, a
/// multi-valued one `name:=a,b`, any other `name=value`.
fn variants(
    parameters: Option<&serde_json::Map<String, serde_json::Value>>,
    strings: &mut Interner,
) -> Box<[Shared]> {
    let Some(parameters) = parameters else {
        return Box::default();
    };
    let mut words: Vec<(&String, String)> = parameters
        .iter()
        .filter_map(|(name, value)| {
            let word = match value {
                serde_json::Value::Bool(true) => format!("+{name}"),
                serde_json::Value::Bool(false) => format!("~{name}"),
                serde_json::Value::Array(items) if FLAGS.contains(&name.as_str()) => {
                    if items.is_empty() {
                        return None;
                    }
                    let flags: Vec<String> = items.iter().map(scalar_string).collect();
                    format!("{name}=\"{}\"", flags.join(" "))
                }
                serde_json::Value::Array(items) => {
                    let items: Vec<String> = items.iter().map(scalar_string).collect();
                    format!("{name}:={}", items.join(","))
                }
                other => format!("{name}={}", scalar_string(other)),
            };
            Some((name, word))
        })
        .collect();
    words.sort();
    words.into_iter().map(|(_, w)| strings.get(&w)).collect()
}

fn parse_edges(
    deps: Option<serde_json::Value>,
    node: &str,
    what: &str,
    strings: &mut Interner,
) -> Result<Box<[Edge]>, FormatError> {
    let Some(deps) = deps else {
        return Ok(Box::default());
    };
    let raw: Vec<RawEdge> = serde_json::from_value(deps).map_err(|e| {
        FormatError::invalid(
            what,
            format!(
                "dependencies of `{node}` are not a list of {{name, hash, type|parameters}}: {e}"
            ),
        )
    })?;
    raw.into_iter()
        .map(|e| {
            let (names, virtuals) = match (e.parameters, e.types) {
                (Some(p), _) => (p.deptypes, p.virtuals),
                (None, Some(t)) => (t, Vec::new()),
                (None, None) => {
                    return Err(FormatError::invalid(
                        what,
                        format!("edge `{node}` -> `{}` has no dependency types", e.name),
                    ));
                }
            };
            let mut types = DepTypes::NONE;
            for n in &names {
                types = types.union(DepTypes::from_name(n).ok_or_else(|| {
                    FormatError::invalid(
                        what,
                        format!(
                            "edge `{node}` -> `{}` has unknown dependency type `{n}`",
                            e.name
                        ),
                    )
                })?);
            }
            Ok(Edge {
                name: strings.get(&e.name),
                hash: strings.get(&e.hash),
                params: {
                    let virtuals = virtuals.iter().map(|v| strings.get(v)).collect();
                    strings.edge_params(EdgeParams { types, virtuals })
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: &str) -> SpecNode {
        SpecNode::from_value(
            serde_json::from_str(json).unwrap(),
            None,
            "test",
            &mut Interner::default(),
        )
        .unwrap()
    }

    #[test]
    fn both_edge_forms_and_target_forms() {
        let old = node(
            r#"{"name":"a","version":"1.0","hash":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "arch":{"platform":"test","platform_os":"debian6","target":{"name":"core2"}},
            "compiler":{"name":"gcc","version":"4.5.0"},
            "dependencies":[{"name":"b","hash":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","type":["build","link"]}]}"#,
        );
        assert_eq!(old.architecture(), "test-debian6-core2");
        assert_eq!(
            old.dependencies[0].params.types,
            DepTypes::BUILD.union(DepTypes::LINK)
        );
        assert_eq!(old.compiler(|_| None).to_string(), "gcc-4.5.0");

        let new = node(
            r#"{"name":"a","version":"1.0","hash":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "arch":{"platform":"linux","platform_os":"ubuntu24.04","target":"x86_64_v3"},
            "dependencies":[{"name":"gcc","hash":"gggggggggggggggggggggggggggggggg","parameters":{"deptypes":["build"],"virtuals":["c"]}}]}"#,
        );
        assert_eq!(new.architecture(), "linux-ubuntu24.04-x86_64_v3");
        assert_eq!(
            new.compiler(|h| (h == "gggggggggggggggggggggggggggggggg")
                .then(|| (Shared::from("gcc"), Shared::from("13.2.0"))))
                .to_string(),
            "gcc-13.2.0"
        );
    }

    #[test]
    fn no_compiler_edge_is_none_none() {
        let n = node(
            r#"{"name":"compiler-wrapper","version":"1.0","hash":"qeehcxyvluwnihsc2qxstmpomtxo3lrc"}"#,
        );
        assert_eq!(n.compiler(|_| None).to_string(), "none-none");
        assert_eq!(n.compiler_shown(|_| None), "-");
    }

    #[test]
    fn compilers_are_shown_as_spack_shows_them() {
        let n = node(
            r#"{"name":"a","version":"1.0","hash":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","dependencies":[
            {"name":"gcc","hash":"gggggggggggggggggggggggggggggggg","parameters":{"deptypes":["build"],"virtuals":["c","cxx"]}},
            {"name":"llvm","hash":"llllllllllllllllllllllllllllllll","parameters":{"deptypes":["build"],"virtuals":["fortran"]}}]}"#,
        );
        let lookup = |h: &str| match h.as_bytes()[0] {
            b'g' => Some((Shared::from("gcc"), Shared::from("12.2.0"))),
            _ => None,
        };
        assert_eq!(n.compiler_shown(lookup), "%c,cxx=gcc@12.2.0 %fortran=llvm");
        let old = node(
            r#"{"name":"x","version":"1","hash":"rqh2vuf6fqwkmipzgi2wjx352mq7y7ez","annotations":{"original_specfile_version":4,"compiler":"gcc@=10.2.1"}}"#,
        );
        assert_eq!(old.compiler_shown(|_| None), "gcc@10.2.1");
    }

    #[test]
    fn annotation_compiler_is_split_at_at_equals() {
        let n = node(
            r#"{"name":"x","version":"1","hash":"rqh2vuf6fqwkmipzgi2wjx352mq7y7ez","annotations":{"original_specfile_version":4,"compiler":"gcc@=10.2.1"}}"#,
        );
        assert_eq!(n.compiler(|_| None).to_string(), "gcc-10.2.1");
    }

    #[test]
    fn bad_hash_and_bad_edges_are_errors() {
        let v = serde_json::from_str(r#"{"name":"x","hash":"short"}"#).unwrap();
        assert!(
            SpecNode::from_value(v, None, "f", &mut Interner::default())
                .unwrap_err()
                .to_string()
                .contains("invalid DAG hash")
        );
        let v = serde_json::from_str(r#"{"name":"x","hash":"rqh2vuf6fqwkmipzgi2wjx352mq7y7ez","dependencies":[{"name":"y","hash":"h","type":["weird"]}]}"#).unwrap();
        assert!(
            SpecNode::from_value(v, None, "f", &mut Interner::default())
                .unwrap_err()
                .to_string()
                .contains("unknown dependency type")
        );
    }
}
