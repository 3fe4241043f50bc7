//! Generate a synthetic Spack build cache for benchmarks: realistic key names, a random
//! dependency DAG with mixed edge types, objects aged through their mtimes, the index, and a keep
//! lockfile.
//!
//! Usage: gen_cache DIR SPECS [v2|v3] [SEED]
//! Writes the cache under DIR/cache, the keep lockfile at DIR/keep/spack.lock, and prints a
//! JSON summary (object count, old objects, sizes). `GEN_CACHE_TARBALL_KIB` makes each v3
//! tarball blob that many KiB of incompressible bytes (checksum benchmarks).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const NAMES: &[&str] = &[
    "zlib-ng",
    "openssl",
    "py-numpy",
    "py-scipy",
    "hdf5",
    "mpich",
    "boost",
    "cmake",
    "libxml2",
    "python",
    "neuron",
    "py-pandas",
    "gmsh",
    "petsc",
    "hypre",
    "sqlite",
    "ncurses",
    "readline",
    "bzip2",
    "xz",
];
const EDGE_TYPES: &[&[&str]] = &[
    &["build"],
    &["build", "link"],
    &["link"],
    &["run"],
    &["build", "run"],
    &["link", "run"],
];
const ARCH: &str = "linux-ubuntu22.04-x86_64_v3";

fn hash(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..32)
        .map(|_| ALPHABET[rng.below(32) as usize] as char)
        .collect()
}

fn write(path: &Path, bytes: &[u8], age_days: f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(bytes).unwrap();
    // A negative age is in the future: an upload that finished after the index was written.
    let t = if age_days >= 0.0 {
        SystemTime::now() - Duration::from_secs_f64(age_days * 86400.0)
    } else {
        SystemTime::now() + Duration::from_secs_f64(-age_days * 86400.0)
    };
    f.set_modified(t).unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: gen_cache DIR SPECS [v2|v3] [SEED]");
        std::process::exit(2);
    }
    let out = PathBuf::from(&args[1]);
    let n: usize = args[2].parse().expect("SPECS is a number");
    let layout = args.get(3).map(String::as_str).unwrap_or("v2");
    let mut rng = Rng(args
        .get(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_ef01));
    let cache = out.join("cache");
    let tarball_kib: Option<usize> = std::env::var("GEN_CACHE_TARBALL_KIB")
        .ok()
        .map(|v| v.parse().expect("GEN_CACHE_TARBALL_KIB is a number"));

    let hashes: Vec<String> = (0..n).map(|_| hash(&mut rng)).collect();
    let mut nodes: Vec<Value> = Vec::with_capacity(n);
    let mut deps_of: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut ages: Vec<f64> = Vec::with_capacity(n);
    let mut objects = 0usize;
    let mut old = 0usize;
    for i in 0..n {
        let name = format!("{}-{}", NAMES[i % NAMES.len()], i / NAMES.len());
        let version = format!("{}.{}.{}", rng.below(5), rng.below(20), rng.below(10));
        // Like a real cache: a tier of base libraries (the first 5%) most specs link to, plus a
        // few dependencies among the specs just before (the same stack, other versions).
        let base = (n / 20).max(1);
        let mut deps: Vec<usize> = Vec::new();
        if i > 0 {
            let near = i.min(50) as u64;
            for _ in 0..rng.below(3) {
                deps.push(i - 1 - rng.below(near) as usize);
            }
            if i >= base {
                for _ in 0..rng.below(4) {
                    deps.push(rng.below(base as u64) as usize);
                }
            }
        }
        deps.sort_unstable();
        deps.dedup();
        let dependencies: Vec<Value> = deps
            .iter()
            .map(|&d| {
                let types = EDGE_TYPES[rng.below(EDGE_TYPES.len() as u64) as usize];
                json!({"name": nodes[d]["name"], "hash": hashes[d], "parameters": {"deptypes": types, "virtuals": []}})
            })
            .collect();
        let node = json!({
            "name": name, "version": version,
            "arch": {"platform": "linux", "platform_os": "ubuntu22.04", "target": "x86_64_v3"},
            "namespace": "builtin",
            "parameters": {"build_system": "cmake", "build_type": "Release", "shared": true, "cflags": [], "cppflags": [], "cxxflags": [], "fflags": [], "ldflags": [], "ldlibs": []},
            "package_hash": format!("{}====", hash(&mut rng)),
            "dependencies": dependencies,
            "annotations": {"original_specfile_version": 5, "compiler": "gcc@=12.3.0"},
            "hash": hashes[i],
        });
        // Ages spread over 0–120 days; one in a thousand was pushed after the index.
        let age = if rng.below(1000) == 0 {
            -0.01
        } else {
            rng.below(120_000) as f64 / 1000.0
        };
        if age > 30.0 {
            old += 1;
        }
        ages.push(age);
        deps_of.push(deps);
        nodes.push(node);
    }

    let mut installs = serde_json::Map::new();
    for (i, node) in nodes.iter().enumerate() {
        let stem = format!(
            "{ARCH}-gcc-12.3.0-{}-{}-{}",
            node["name"].as_str().unwrap(),
            node["version"].as_str().unwrap(),
            hashes[i]
        );
        let spec = serde_json::to_vec(&json!({"spec": {"_meta": {"version": 5}, "nodes": [node]}, "buildcache_layout_version": 2})).unwrap();
        let tarball = format!("tarball of {}", hashes[i]).into_bytes();
        match layout {
            "v2" => {
                write(
                    &cache.join(format!("build_cache/{stem}.spec.json")),
                    &spec,
                    ages[i],
                );
                let dir = format!(
                    "build_cache/{ARCH}/gcc-12.3.0/{}-{}",
                    node["name"].as_str().unwrap(),
                    node["version"].as_str().unwrap()
                );
                write(
                    &cache.join(format!("{dir}/{stem}.spack")),
                    &tarball,
                    ages[i],
                );
                objects += 2;
            }
            _ => {
                let spec_blob = gzip(&spec);
                // Incompressible bytes of the size asked (already "compressed"), else a
                // gzipped line.
                let tar_blob = match tarball_kib {
                    Some(kib) => (0..kib * 128)
                        .flat_map(|_| rng.next().to_le_bytes())
                        .collect(),
                    None => gzip(&tarball),
                };
                let mut data = Vec::new();
                for (blob, media) in [
                    (&tar_blob, "application/vnd.spack.install.v2.tar+gzip"),
                    (&spec_blob, "application/vnd.spack.spec.v5+json"),
                ] {
                    let sum = hex::encode(Sha256::digest(blob));
                    write(
                        &cache.join(format!("blobs/sha256/{}/{sum}", &sum[..2])),
                        blob,
                        ages[i],
                    );
                    data.push(json!({"contentLength": blob.len(), "mediaType": media, "compression": "gzip", "checksumAlgorithm": "sha256", "checksum": sum}));
                }
                let name = node["name"].as_str().unwrap();
                let manifest = serde_json::to_vec(&json!({"version": 3, "data": data})).unwrap();
                write(
                    &cache.join(format!(
                        "v3/manifests/spec/{name}/{name}-{}-{}.spec.manifest.json",
                        node["version"].as_str().unwrap(),
                        hashes[i]
                    )),
                    &manifest,
                    ages[i],
                );
                objects += 3;
            }
        }
    }
    // Built after the objects are written: a long-lived entry made between two gzip encoders
    // would pin the freed encoder memory (hundreds of KiB per spec, gigabytes at 100,000).
    for (i, node) in nodes.iter().enumerate() {
        installs.insert(
            hashes[i].clone(),
            json!({"spec": node, "ref_count": 0, "in_buildcache": true}),
        );
    }
    let index =
        serde_json::to_vec(&json!({"database": {"version": "8", "installs": installs}})).unwrap();
    let index_bytes = index.len();
    if layout == "v2" {
        write(&cache.join("build_cache/index.json"), &index, 0.0);
        write(
            &cache.join("build_cache/index.json.hash"),
            format!("{}\n", hex::encode(Sha256::digest(&index))).as_bytes(),
            0.0,
        );
        objects += 2;
    } else {
        let sum = hex::encode(Sha256::digest(&index));
        write(
            &cache.join(format!("blobs/sha256/{}/{sum}", &sum[..2])),
            &index,
            0.0,
        );
        let manifest = json!({"version": 3, "data": [{"contentLength": index.len(), "mediaType": "application/vnd.spack.db.v8+json", "compression": "none", "checksumAlgorithm": "sha256", "checksum": sum}]});
        write(
            &cache.join("v3/manifests/index/index.manifest.json"),
            &serde_json::to_vec(&manifest).unwrap(),
            0.0,
        );
        write(
            &cache.join("v3/layout.json"),
            b"{\"signing\": \"gpg\"}",
            0.0,
        );
        objects += 3;
    }

    // A keep lockfile: 50 random roots with their whole DAGs, as an environment would have.
    let mut keep = serde_json::Map::new();
    let mut roots = Vec::new();
    for _ in 0..50.min(n) {
        let r = rng.below(n as u64) as usize;
        roots.push(json!({"hash": hashes[r], "spec": nodes[r]["name"]}));
        let mut todo = vec![r];
        while let Some(i) = todo.pop() {
            if keep.insert(hashes[i].clone(), nodes[i].clone()).is_none() {
                todo.extend(&deps_of[i]);
            }
        }
    }
    let lock = json!({"_meta": {"file-type": "spack-lockfile", "lockfile-version": 6, "specfile-version": 5}, "roots": roots, "concrete_specs": keep});
    write(
        &out.join("keep/spack.lock"),
        &serde_json::to_vec(&lock).unwrap(),
        0.0,
    );
    println!(
        "{}",
        json!({"specs": n, "layout": layout, "objects": objects, "older_than_30_days": old, "index_bytes": index_bytes, "keep_specs": keep.len()})
    );
}
