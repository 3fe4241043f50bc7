//! A dependency graph over concrete specs, answering dependency and dependent closures for
//! chosen edge types.

use std::collections::VecDeque;

use indexmap::IndexMap;

use super::spec::{DepTypes, Shared, SpecNode};

/// The specs of a table by hash (an index's entries, a lockfile's specs) as a graph: node `i`
/// is the table's `i`th entry, and the edges are held apart. The table is not copied: a second
/// table of hashes beside an index's own cost ~40 bytes a spec.
#[derive(Debug)]
pub struct SpecGraph<'a, V> {
    table: &'a IndexMap<Shared, V>,
    edges: &'a Edges,
}

// Derived, both would ask `V: Clone`: only references are copied.
impl<V> Clone for SpecGraph<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for SpecGraph<'_, V> {}

/// The forward and reverse typed edges between the specs of a table, by position. Edges to
/// hashes outside the table (externals not in an index, for example) are kept aside.
#[derive(Debug)]
pub struct Edges {
    deps: Adjacency,
    rdeps: Adjacency,
    /// (from hash, to hash) of edges whose target is not in the table.
    missing: Vec<(Shared, Shared)>,
}

/// Every node's edges in one list, node by node (compressed sparse rows): a list per node would
/// cost a header and a mostly empty allocation each, ~100 bytes per spec of a 1,000,000-spec
/// index.
#[derive(Debug)]
struct Adjacency {
    /// Node `i`'s edges are `edges[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    edges: Vec<Link>,
}

/// One edge as a row holds it: the node at its other end in the low 28 bits, its types in the
/// high 4. Half the size of a pair (the pair's padding), over the ~2,500,000 edges of an index
/// of 1,000,000 specs, held twice (both directions).
#[derive(Debug, Clone, Copy)]
struct Link(u32);

impl Link {
    const NODE_BITS: u32 = 28;

    fn new(node: usize, types: DepTypes) -> Link {
        let node = u32::try_from(node)
            .ok()
            .filter(|n| n >> Self::NODE_BITS == 0)
            .expect("a graph holds fewer than 2^28 specs");
        Link(node | u32::from(types.bits()) << Self::NODE_BITS)
    }

    fn node(self) -> u32 {
        self.0 & ((1 << Self::NODE_BITS) - 1)
    }

    fn types(self) -> DepTypes {
        DepTypes::from_bits((self.0 >> Self::NODE_BITS) as u8)
    }
}

impl Adjacency {
    fn of(&self, i: u32) -> &[Link] {
        let i = i as usize;
        &self.edges[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    /// The same edges seen from their other end, for `n` nodes.
    fn reversed(&self, n: usize) -> Adjacency {
        let mut starts = vec![0u32; n + 1];
        for l in &self.edges {
            starts[l.node() as usize + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        let mut next = starts.clone();
        let mut edges = vec![Link(0); self.edges.len()];
        for i in 0..n {
            for l in self.of(i as u32) {
                let at = &mut next[l.node() as usize];
                edges[*at as usize] = Link::new(i, l.types());
                *at += 1;
            }
        }
        Adjacency { starts, edges }
    }
}

impl Edges {
    /// The edges between the specs of `table`, each at its position there.
    pub fn new<V: AsRef<SpecNode>>(table: &IndexMap<Shared, V>) -> Edges {
        let mut missing = Vec::new();
        // Sized once: grown by doubling, the list left its smaller copies behind as holes.
        let edges = table.values().map(|n| n.as_ref().dependencies.len()).sum();
        let mut deps = Adjacency {
            starts: Vec::with_capacity(table.len() + 1),
            edges: Vec::with_capacity(edges),
        };
        deps.starts.push(0);
        for n in table.values().map(AsRef::as_ref) {
            for e in &n.dependencies {
                match table.get_index_of(&*e.hash) {
                    Some(j) => deps.edges.push(Link::new(j, e.params.types)),
                    None => missing.push((n.hash.clone(), e.hash.clone())),
                }
            }
            deps.starts.push(deps.edges.len() as u32);
        }
        deps.edges.shrink_to_fit();
        Edges {
            rdeps: deps.reversed(table.len()),
            deps,
            missing,
        }
    }

    /// (from hash, to hash) of the edges whose target is not in the table.
    pub fn missing(&self) -> &[(Shared, Shared)] {
        &self.missing
    }
}

impl<'a, V> SpecGraph<'a, V> {
    /// The graph of `table`, whose `edges` are [`Edges::new`] of it.
    pub fn new(table: &'a IndexMap<Shared, V>, edges: &'a Edges) -> SpecGraph<'a, V> {
        assert_eq!(
            edges.deps.starts.len(),
            table.len() + 1,
            "the edges of another table"
        );
        SpecGraph { table, edges }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn contains(&self, hash: &str) -> bool {
        self.table.contains_key(hash)
    }

    /// The position of `hash` among the nodes, `0..len()`: what lists by node are indexed by.
    pub fn position(&self, hash: &str) -> Option<usize> {
        self.table.get_index_of(hash)
    }

    /// The hash of the node at `position`.
    pub fn hash(&self, position: usize) -> &'a Shared {
        self.table
            .get_index(position)
            .map(|(h, _)| h)
            .expect("a position of the graph")
    }

    /// The positions of the direct neighbours of the node at `i` through edges of `types`
    /// (dependencies, or dependents when `reverse`), one per edge.
    pub fn neighbour_positions(
        &self,
        i: usize,
        types: DepTypes,
        reverse: bool,
    ) -> impl Iterator<Item = usize> + 'a {
        self.adjacency(reverse)
            .of(i as u32)
            .iter()
            .filter(move |l| l.types().intersects(types))
            .map(|l| l.node() as usize)
    }

    /// The roots and every spec they reach through edges of `types`.
    pub fn dependencies_closure<'r>(
        &self,
        roots: impl IntoIterator<Item = &'r str>,
        types: DepTypes,
    ) -> Vec<Shared> {
        self.closure(roots, types, false)
    }

    /// The roots and every spec that reaches them through edges of `types`.
    pub fn dependents_closure<'r>(
        &self,
        roots: impl IntoIterator<Item = &'r str>,
        types: DepTypes,
    ) -> Vec<Shared> {
        self.closure(roots, types, true)
    }

    /// Direct neighbours of `hash` through edges of `types` (dependencies, or dependents when
    /// `reverse`), with the edge's types.
    pub fn neighbours(
        &self,
        hash: &str,
        types: DepTypes,
        reverse: bool,
    ) -> Vec<(&'a str, DepTypes)> {
        let Some(i) = self.position(hash) else {
            return Vec::new();
        };
        self.adjacency(reverse)
            .of(i as u32)
            .iter()
            .filter(|l| l.types().intersects(types))
            .map(|l| (&**self.hash(l.node() as usize), l.types()))
            .collect()
    }

    fn adjacency(&self, reverse: bool) -> &'a Adjacency {
        if reverse {
            &self.edges.rdeps
        } else {
            &self.edges.deps
        }
    }

    fn closure<'r>(
        &self,
        roots: impl IntoIterator<Item = &'r str>,
        types: DepTypes,
        reverse: bool,
    ) -> Vec<Shared> {
        let adj = self.adjacency(reverse);
        let mut seen = vec![false; self.len()];
        let mut queue: VecDeque<u32> = VecDeque::new();
        let mut out = Vec::new();
        for r in roots {
            if let Some(i) = self.position(r)
                && !seen[i]
            {
                seen[i] = true;
                queue.push_back(i as u32);
            }
        }
        while let Some(i) = queue.pop_front() {
            out.push(self.hash(i as usize).clone());
            for l in adj.of(i) {
                let j = l.node();
                if l.types().intersects(types) && !seen[j as usize] {
                    seen[j as usize] = true;
                    queue.push_back(j);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spack::spec::{Edge, EdgeParams, NodeTraits};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn h(i: usize) -> String {
        format!("{:a>32}", i)
            .chars()
            .map(|c| {
                if c.is_ascii_digit() {
                    (b'a' + (c as u8 - b'0')) as char
                } else {
                    c
                }
            })
            .collect()
    }

    fn node(i: usize, deps: &[(usize, DepTypes)]) -> SpecNode {
        SpecNode {
            name: format!("p{i}").into(),
            version: "1".into(),
            hash: h(i).into(),
            traits: std::sync::Arc::new(NodeTraits {
                platform: "linux".into(),
                platform_os: "debian12".into(),
                target: "x86_64".into(),
                own_compiler: None,
                variants: Box::default(),
                external: false,
            }),
            dependencies: deps
                .iter()
                .map(|&(j, t)| Edge {
                    name: format!("p{j}").into(),
                    hash: h(j).into(),
                    params: std::sync::Arc::new(EdgeParams {
                        types: t,
                        virtuals: Box::default(),
                    }),
                })
                .collect(),
        }
    }

    fn table(nodes: impl IntoIterator<Item = SpecNode>) -> IndexMap<Shared, SpecNode> {
        nodes.into_iter().map(|n| (n.hash.clone(), n)).collect()
    }

    #[test]
    fn build_edges_are_not_followed_for_link_run() {
        // 0 -link-> 1 -build-> 2 ; 0 -run-> 3
        let nodes = table([
            node(0, &[(1, DepTypes::LINK), (3, DepTypes::RUN)]),
            node(1, &[(2, DepTypes::BUILD)]),
            node(2, &[]),
            node(3, &[]),
        ]);
        let edges = Edges::new(&nodes);
        let g = SpecGraph::new(&nodes, &edges);
        let set: BTreeSet<String> = g
            .dependencies_closure([h(0).as_str()], DepTypes::LINK_RUN)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(set, [h(0), h(1), h(3)].into_iter().collect());
        let dependents: BTreeSet<String> = g
            .dependents_closure([h(2).as_str()], DepTypes::LINK_RUN)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(dependents, [h(2)].into_iter().collect());
        let all: BTreeSet<String> = g
            .dependents_closure([h(2).as_str()], DepTypes::ALL)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(all, [h(0), h(1), h(2)].into_iter().collect());
    }

    #[test]
    fn edges_to_specs_outside_the_table_are_kept_aside() {
        // 0 -link-> 1 -link-> 9, where 9 (an external no index lists) is not in the table.
        let nodes = table([
            node(0, &[(1, DepTypes::LINK)]),
            node(1, &[(9, DepTypes::LINK)]),
        ]);
        let edges = Edges::new(&nodes);
        assert_eq!(edges.missing(), [(h(1).into(), h(9).into())]);
        let g = SpecGraph::new(&nodes, &edges);
        assert_eq!(g.position(&h(1)), Some(1));
        assert_eq!(&**g.hash(1), h(1));
        let down = g.dependencies_closure([h(0).as_str()], DepTypes::ALL);
        assert_eq!(down, [h(0).into(), h(1).into()]);
        assert_eq!(
            g.neighbours(&h(1), DepTypes::ALL, true),
            [(&*h(0), DepTypes::LINK)]
        );
    }

    proptest! {
        // In any DAG, x is in dependents(y) exactly when y is in dependencies(x).
        #[test]
        fn closures_are_mirror_images(edges in proptest::collection::vec((0usize..12, 0usize..12, 1u8..8), 0..40)) {
            let mut deps: Vec<Vec<(usize, DepTypes)>> = vec![Vec::new(); 12];
            for (a, b, t) in edges {
                let (from, to) = (a.max(b), a.min(b));
                if from != to { deps[from].push((to, DepTypes::from_bits(t & 7))); }
            }
            let nodes = table((0..12).map(|i| node(i, &deps[i])));
            let edges = Edges::new(&nodes);
            let g = SpecGraph::new(&nodes, &edges);
            for x in 0..12 {
                let down: BTreeSet<String> = g.dependencies_closure([h(x).as_str()], DepTypes::LINK_RUN).iter().map(|s| s.to_string()).collect();
                for y in 0..12 {
                    let up: BTreeSet<String> = g.dependents_closure([h(y).as_str()], DepTypes::LINK_RUN).iter().map(|s| s.to_string()).collect();
                    prop_assert_eq!(down.contains(&h(y)), up.contains(&h(x)));
                }
            }
        }
    }
}
