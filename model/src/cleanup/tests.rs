//! The planner on caches built in memory: plain cases of every rule, and properties that hold
//! whatever the graph, keep lists, ages and rules.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use super::cache::{CacheView, Key, Unowned};
use super::decision::{DependentOf, LayoutPlan, Reason, Rules};
use super::fixture::{CacheDef, OrphanDef, SpecDef, build, days_ago, hash, now, package};
use super::leftovers::{Recorded, leftovers};
use super::order::deletion_waves;
use super::packages::Packages;
use super::plan::plan;
use super::purge::{PurgeRefused, purge};
use crate::spack::buildcache::index::Database;
use crate::spack::buildcache::{Layout, v3};
use crate::spack::spec::{DepTypes, Shared};

const LINK: DepTypes = DepTypes::LINK;
const RUN: DepTypes = DepTypes::RUN;
const BUILD: DepTypes = DepTypes::BUILD;
const LAYOUTS: [Layout; 2] = [Layout::V2, Layout::V3];

fn rules(max_age_days: f64, keep: &[usize]) -> Rules {
    Rules {
        max_age: Duration::from_secs_f64(max_age_days * 86_400.0),
        keep: keep.iter().map(|&i| hash(i)).collect(),
        packages: None,
        orphans: false,
        now: now(),
    }
}

/// Spec number → reason label of every planned spec.
fn planned(plans: &[LayoutPlan]) -> BTreeMap<usize, &'static str> {
    plans
        .iter()
        .flat_map(|p| &p.specs)
        .map(|s| (number(&s.hash), s.reason.label()))
        .collect()
}

fn number(h: &str) -> usize {
    h[1..].parse().unwrap()
}

fn expired(package: usize, deps: &[(usize, DepTypes)]) -> SpecDef {
    SpecDef::new(package, 40.0, deps)
}

fn young(package: usize, deps: &[(usize, DepTypes)]) -> SpecDef {
    SpecDef::new(package, 1.0, deps)
}

#[test]
fn expired_specs_take_their_link_and_run_dependents_but_not_their_build_dependents() {
    for layout in LAYOUTS {
        let view = build(&CacheDef::new(
            layout,
            vec![
                expired(0, &[]),
                young(1, &[(0, LINK)]),
                young(2, &[(0, BUILD)]),
                young(3, &[(1, RUN)]),
            ],
        ));
        let plans = plan(&view, &rules(30.0, &[]));
        let want = [
            (0, "expired"),
            (1, "dependent of a deleted spec"),
            (3, "dependent of a deleted spec"),
        ];
        assert_eq!(planned(&plans), want.into_iter().collect(), "{layout}");
        assert_eq!(plans[0].kept, 1);
        let of = |i: usize| {
            plans[0]
                .specs
                .iter()
                .find(|s| number(&s.hash) == i)
                .unwrap()
        };
        assert_eq!(
            of(3).reason,
            Reason::DependentOf(Box::new(DependentOf {
                of_hash: hash(1).into(),
                of_name: package(1).into()
            }))
        );
    }
}

#[test]
fn keep_lists_protect_their_specs_and_link_run_dependencies_only() {
    for layout in LAYOUTS {
        let view = build(&CacheDef::new(
            layout,
            vec![
                expired(0, &[]),
                expired(1, &[(0, LINK), (2, BUILD)]),
                expired(2, &[]),
            ],
        ));
        let plans = plan(&view, &rules(30.0, &[1]));
        assert_eq!(planned(&plans), [(2, "expired")].into_iter().collect());
        assert_eq!(plans[0].kept_by_lockfile, 2);
    }
}

#[test]
fn uploads_newer_than_the_index_and_what_they_need_stay() {
    let mut def = CacheDef::new(
        Layout::V2,
        vec![expired(0, &[]), SpecDef::new(1, 0.5, &[(0, LINK)])],
    );
    def.index_age_days = 1.0;
    let plans = plan(&build(&def), &rules(0.0, &[]));
    assert!(planned(&plans).is_empty(), "{plans:?}");
    assert_eq!(plans[0].kept_as_in_flight, 1);
}

#[test]
fn missing_objects_and_removed_packages_are_reasons_whatever_the_age() {
    for layout in LAYOUTS {
        let mut incomplete = young(0, &[]);
        incomplete.missing_tarball = true;
        let view = build(&CacheDef::new(
            layout,
            vec![incomplete, young(9, &[]), young(1, &[])],
        ));
        let mut r = rules(30.0, &[]);
        r.packages = Some(["pkg0", "pkg1"].into_iter().collect::<Packages>());
        let want = [(0, "incomplete"), (1, "package removed")];
        assert_eq!(planned(&plan(&view, &r)), want.into_iter().collect());
    }
}

#[test]
fn a_blob_a_staying_manifest_references_stays() {
    let mut def = CacheDef::new(Layout::V3, vec![expired(0, &[]), young(1, &[])]);
    def.shared_blobs = vec![(1, 0)];
    let view = build(&def);
    let plans = plan(&view, &rules(30.0, &[]));
    let spec = &plans[0].specs[0];
    assert_eq!(number(&spec.hash), 0);
    let shared = view.layouts[0].manifests.by_manifest.values().flatten();
    let shared: HashSet<&str> = shared
        .filter_map(|b| b.listed())
        .map(|i| view.key(i))
        .collect();
    assert_eq!(spec.objects.len(), 2, "manifest and spec blob: {spec:?}");
    assert!(spec.objects[0].starts_with("v3/manifests/spec/"));
    assert!(shared.contains(&*spec.objects[1]));
    // The tarball blob libpkg1's manifest names is not among them.
    assert!(spec.objects.iter().all(|k| !k.ends_with("tarball")));
}

fn orphans_def(layout: Layout) -> CacheDef {
    let mut def = CacheDef::new(layout, vec![young(0, &[])]);
    def.orphans = vec![
        (OrphanDef::Ghost { ghost: 10 }, 40.0),
        (OrphanDef::Ghost { ghost: 11 }, 40.0),
        (OrphanDef::Ghost { ghost: 12 }, 10.0),
        (OrphanDef::Ghost { ghost: 13 }, 0.01),
        (OrphanDef::Stray, 40.0),
    ];
    if layout == Layout::V3 {
        def.orphans.push((OrphanDef::Blob, 40.0));
    }
    def
}

/// The ghosts whose objects a plan deletes as orphans, and whether an unreferenced blob goes.
fn orphan_ghosts(plans: &[LayoutPlan]) -> (BTreeSet<usize>, bool) {
    let o = &plans[0].orphans;
    let ghosts = o.iter().filter_map(|o| o.kind.hash()).map(number).collect();
    let loose = o.iter().any(|o| o.key.ends_with("loose"));
    (ghosts, loose)
}

#[test]
fn orphans_go_only_when_asked_older_than_the_index_and_the_max_age_and_not_kept() {
    for layout in LAYOUTS {
        let view = build(&orphans_def(layout));
        let mut r = rules(30.0, &[11]);
        assert!(plan(&view, &r)[0].orphans.is_empty(), "not asked for");
        r.orphans = true;
        let plans = plan(&view, &r);
        let (ghosts, loose) = orphan_ghosts(&plans);
        assert_eq!(ghosts, [10].into_iter().collect(), "{layout}");
        assert_eq!(loose, layout == Layout::V3);
        assert!(plans[0].orphans.iter().all(|o| o.kind != Unowned::Stray));
        // v3: the ghost's blobs go with its manifest; v2: its spec file and tarball.
        let ghost_objects = plans[0]
            .orphans
            .iter()
            .filter(|o| o.kind.hash().is_some() || o.key.contains(&hash(10)))
            .count();
        assert_eq!(ghost_objects, if layout == Layout::V3 { 3 } else { 2 });

        r.max_age = Duration::ZERO;
        let (ghosts, _) = orphan_ghosts(&plan(&view, &r));
        // 13 is newer than the index: an upload in flight.
        assert_eq!(ghosts, [10, 12].into_iter().collect(), "{layout}");
    }
}

#[test]
fn dependents_are_deleted_before_their_dependencies_and_manifests_before_blobs() {
    for layout in LAYOUTS {
        let view = build(&CacheDef::new(
            layout,
            vec![
                expired(0, &[]),
                expired(1, &[(0, LINK)]),
                expired(2, &[(1, RUN)]),
                expired(3, &[(0, BUILD)]),
            ],
        ));
        let plans = plan(&view, &rules(30.0, &[]));
        let layer = |i: usize| {
            let s = plans[0].specs.iter().find(|s| number(&s.hash) == i);
            s.unwrap().layer
        };
        assert!(layer(2) < layer(1) && layer(1) < layer(0) && layer(3) < layer(0));
        let waves = deletion_waves(&plans, 1);
        let keys: Vec<&str> = waves.iter().flatten().copied().collect();
        assert_eq!(
            keys.len(),
            plans[0]
                .specs
                .iter()
                .map(|s| s.objects.len())
                .sum::<usize>()
        );
        // Batches of one phase share a wave: one per layer, and v3 blobs after them.
        let layers: BTreeSet<u32> = plans[0].specs.iter().map(|s| s.layer).collect();
        let blobs = usize::from(layout == Layout::V3);
        assert_eq!(waves.len(), layers.len() + blobs, "{waves:?}");
        let first = |i: usize| keys.iter().position(|k| k.contains(&hash(i))).unwrap();
        assert!(first(2) < first(1) && first(1) < first(0) && first(3) < first(0));
        if layout == Layout::V3 {
            let last_manifest = keys.iter().rposition(|k| k.starts_with("v3/")).unwrap();
            let first_blob = keys.iter().position(|k| k.starts_with(v3::BLOBS_PREFIX));
            assert!(last_manifest < first_blob.unwrap());
        }
        assert_eq!(deletion_waves(&plans, 1000).len(), 1, "one phase per batch");
    }
}

#[test]
fn the_index_after_the_plan_lists_every_record_but_the_deleted_specs() {
    let mut external = young(5, &[]);
    external.cached = false;
    let view = build(&CacheDef::new(
        Layout::V2,
        vec![expired(0, &[]), young(1, &[(2, LINK)]), external],
    ));
    let plans = plan(&view, &rules(30.0, &[]));
    let after = plans[0].index_after(&view.layouts[0]).unwrap();
    let db = Database::parse("after", after).unwrap();
    let left: Vec<usize> = db.entries.keys().map(|h| number(h)).collect();
    assert_eq!(left, [1, 2]);
    assert!(!db.entries[&*hash(2)].in_buildcache);
    let nothing = plan(&view, &rules(100.0, &[]));
    assert_eq!(nothing[0].index_after(&view.layouts[0]), None);
}

#[test]
fn purge_refuses_to_break_dependents_unless_asked_and_never_touches_kept_specs() {
    let view = build(&CacheDef::new(
        Layout::V3,
        vec![
            young(0, &[]),
            young(1, &[(0, LINK)]),
            young(2, &[(1, BUILD)]),
        ],
    ));
    let chosen: Vec<(Layout, Shared)> = vec![(Layout::V3, hash(0).into())];
    let none = HashSet::new();
    match purge(&view, &chosen, false, &none) {
        Err(PurgeRefused::WouldBreak(specs)) => {
            let broken: Vec<usize> = specs.iter().map(|s| number(&s.hash)).collect();
            assert_eq!(broken, [1]);
        }
        other => panic!("{other:?}"),
    }
    let plans = purge(&view, &chosen, true, &none).unwrap();
    let want = [(0, "purged"), (1, "dependent of a deleted spec")];
    assert_eq!(planned(&plans), want.into_iter().collect());
    assert!(plans[0].orphans.is_empty());

    let keep: HashSet<String> = [hash(1)].into_iter().collect();
    match purge(&view, &chosen, true, &keep) {
        Err(PurgeRefused::Kept(specs)) => {
            let kept: BTreeSet<usize> = specs.iter().map(|s| number(&s.hash)).collect();
            assert_eq!(kept, [0, 1].into_iter().collect());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_interrupted_runs_leftovers_go_unless_uploaded_or_indexed_again_since() {
    for layout in LAYOUTS {
        let mut def = CacheDef::new(layout, vec![young(0, &[])]);
        def.orphans = vec![
            (OrphanDef::Ghost { ghost: 10 }, 1.0),
            (OrphanDef::Ghost { ghost: 11 }, 0.1),
            (OrphanDef::Ghost { ghost: 12 }, 1.0),
        ];
        let view = build(&def);
        let p = plan(&view, &rules(30.0, &[]));
        let recorded = Recorded {
            time: days_ago(0.5),
            hashes: [(layout, [0, 10, 11].map(hash).into_iter().collect())].into(),
            blobs: Default::default(),
        };
        let left = leftovers(&view, &view.layouts[0], &p[0], &recorded);
        let ghosts: BTreeSet<usize> = left
            .iter()
            .filter_map(|o| o.kind.hash())
            .map(number)
            .collect();
        assert_eq!(ghosts, [10].into_iter().collect(), "{layout}: {left:?}");
        let objects = if layout == Layout::V3 { 3 } else { 2 };
        assert_eq!(left.len(), objects, "{layout}: its blobs go too: {left:?}");
    }
}

/// Caches of up to 12 specs with random typed edges (to later specs only: a DAG), ages,
/// packages, missing tarballs, records without objects, shared blobs and orphans.
fn arb_cache() -> impl Strategy<Value = CacheDef> {
    let spec = (
        prop::collection::vec((0usize..12, 1u8..16), 0..4),
        prop::bool::weighted(0.9),
        0u32..60 * 24,
        prop::bool::weighted(0.1),
        0usize..4,
    );
    let orphan = prop_oneof![
        (100usize..104).prop_map(|ghost| OrphanDef::Ghost { ghost }),
        Just(OrphanDef::Blob),
        Just(OrphanDef::Stray),
    ];
    (
        prop::collection::vec(spec, 1..12),
        prop::bool::ANY,
        0u32..72,
        prop::collection::vec((0usize..12, 0usize..12), 0..4),
        prop::collection::vec((orphan, 0u32..60 * 24), 0..4),
    )
        .prop_map(|(specs, v3, index_hours, shared, orphans)| {
            let n = specs.len();
            let specs = specs
                .into_iter()
                .enumerate()
                .map(|(i, (deps, cached, hours, missing, package))| SpecDef {
                    deps: dedup_deps(i, n, deps),
                    cached,
                    age_days: f64::from(hours) / 24.0,
                    missing_tarball: missing,
                    package,
                })
                .collect();
            let layout = if v3 { Layout::V3 } else { Layout::V2 };
            CacheDef {
                layout,
                specs,
                index_age_days: f64::from(index_hours) / 24.0,
                shared_blobs: shared
                    .into_iter()
                    .filter(|(a, b)| v3 && a != b && *a < n && *b < n)
                    .collect(),
                orphans: orphans
                    .into_iter()
                    .filter(|(o, _)| v3 || *o != OrphanDef::Blob)
                    .map(|(o, hours)| (o, f64::from(hours) / 24.0))
                    .collect(),
            }
        })
}

/// Edges of spec `i` to later specs, one per target.
fn dedup_deps(i: usize, n: usize, deps: Vec<(usize, u8)>) -> Vec<(usize, DepTypes)> {
    let mut out: BTreeMap<usize, DepTypes> = BTreeMap::new();
    for (j, bits) in deps {
        let j = i + 1 + j;
        if j < n {
            let t = out.entry(j).or_default();
            *t = t.union(DepTypes::from_bits(bits));
        }
    }
    out.into_iter().collect()
}

fn arb_rules() -> impl Strategy<Value = Rules> {
    (
        0u32..60 * 24,
        prop::collection::btree_set(prop_oneof![0usize..12, 100usize..104], 0..4),
        prop::option::of(prop::collection::btree_set(0usize..4, 0..4)),
        prop::bool::ANY,
    )
        .prop_map(|(hours, keep, packages, orphans)| Rules {
            max_age: Duration::from_secs(u64::from(hours) * 3600),
            keep: keep.into_iter().map(hash).collect(),
            packages: packages.map(|p| p.into_iter().map(package).collect()),
            orphans,
            now: now(),
        })
}

/// The specs `roots` reach through edges of `types`, computed from the definition alone.
fn reach(
    def: &CacheDef,
    roots: impl IntoIterator<Item = usize>,
    types: DepTypes,
) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = roots.into_iter().filter(|&r| r < def.specs.len()).collect();
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            for (j, t) in &def.specs[i].deps {
                if t.intersects(types) {
                    stack.push(*j);
                }
            }
        }
    }
    seen
}

/// Cached specs newer than the index.
fn in_flight(view: &CacheView) -> Vec<usize> {
    let lm = &view.layouts[0];
    lm.specs()
        .filter(|(_, s)| s.newest(&view.listing).is_some_and(|t| t > lm.index_time))
        .map(|(h, _)| number(h))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Never a kept spec, never a spec newer than the index, never a link/run dependency of
    /// either: whatever else the rules say.
    #[test]
    fn nothing_a_kept_or_in_flight_spec_needs_is_ever_deleted(def in arb_cache(), rules in arb_rules()) {
        let view = build(&def);
        let plans = plan(&view, &rules);
        let kept = rules.keep.iter().map(|h| number(h));
        let roots: Vec<usize> = kept.chain(in_flight(&view)).collect();
        let protected = reach(&def, roots, DepTypes::LINK_RUN);
        for s in &plans[0].specs {
            prop_assert!(!protected.contains(&number(&s.hash)), "{s:?} is needed by {protected:?}");
        }
    }

    /// Every deleted spec goes for the reason it gives, every spec a rule condemns and nothing
    /// protects goes, and whatever links to or runs a deleted spec goes with it.
    #[test]
    fn deleted_specs_are_exactly_what_the_rules_say(def in arb_cache(), rules in arb_rules()) {
        let view = build(&def);
        let lm = &view.layouts[0];
        let plans = plan(&view, &rules);
        let gone: BTreeMap<usize, &Reason> =
            plans[0].specs.iter().map(|s| (number(&s.hash), &s.reason)).collect();
        let roots: Vec<usize> = rules.keep.iter().map(|h| number(h)).chain(in_flight(&view)).collect();
        let protected = reach(&def, roots, DepTypes::LINK_RUN);
        let age = |i: usize| super::decision::age(now(), lm.spec(&hash(i)).unwrap().newest(&view.listing));
        let removed = |i: usize| rules.packages.as_ref().is_some_and(|p| !p.contains(&package(def.specs[i].package)));
        let incomplete = |i: usize| !lm.spec(&hash(i)).unwrap().missing.is_empty();
        for (&i, reason) in &gone {
            prop_assert!(def.specs[i].cached);
            match reason {
                Reason::Expired => prop_assert!(age(i) > rules.max_age),
                Reason::PackageRemoved => prop_assert!(removed(i)),
                Reason::Incomplete => prop_assert!(incomplete(i)),
                Reason::DependentOf(d) => {
                    let of = number(&d.of_hash);
                    prop_assert!(gone.contains_key(&of));
                    prop_assert!(def.specs[i].deps.iter().any(|(j, t)| *j == of && t.intersects(DepTypes::LINK_RUN)));
                }
                Reason::Purged => prop_assert!(false, "clean never purges"),
            }
        }
        for (i, s) in def.specs.iter().enumerate().filter(|(_, s)| s.cached) {
            let condemned = incomplete(i) || removed(i) || age(i) > rules.max_age;
            let needs_gone = s.deps.iter().any(|(j, t)| t.intersects(DepTypes::LINK_RUN) && gone.contains_key(j));
            if needs_gone || (condemned && !protected.contains(&i)) {
                prop_assert!(gone.contains_key(&i), "spec {i} stays");
            }
        }
        prop_assert_eq!(plans[0].kept, lm.cached() - gone.len());
    }

    /// Objects: a spec's own only, never a blob a staying manifest references, each once; and
    /// the deletion order puts every dependent's spec files, tarballs and manifests before its
    /// dependencies', and every v3 manifest before the blobs it names.
    #[test]
    fn objects_go_once_in_a_safe_order(def in arb_cache(), rules in arb_rules(), batch in 1usize..6) {
        let view = build(&def);
        let lm = &view.layouts[0];
        let plans = plan(&view, &rules);
        let planned_keys: Vec<&str> = plans[0].specs.iter().flat_map(|s| &s.objects)
            .chain(plans[0].orphans.iter().map(|o| &o.key)).map(|k| &**k).collect();
        let gone: HashSet<&str> = plans[0].specs.iter().map(|s| &*s.hash).collect();
        for s in &plans[0].specs {
            let own: HashSet<&str> = lm.spec(&s.hash).unwrap().objects.iter().map(|&i| view.key(i)).collect();
            prop_assert!(s.objects.iter().all(|k| own.contains(&**k)));
        }
        // Blobs referenced by manifests that stay.
        let gone_manifests: HashSet<&str> = planned_keys.iter().copied().filter(|k| k.starts_with("v3/")).collect();
        for (m, blobs) in &lm.manifests.by_manifest {
            if gone_manifests.contains(view.key(*m)) {
                continue;
            }
            for b in blobs.iter().filter_map(|b| b.listed()) {
                prop_assert!(!planned_keys.contains(&view.key(b)), "{} is still referenced", view.key(b));
            }
        }
        let waves = deletion_waves(&plans, batch);
        let order: Vec<&str> = waves.iter().flatten().copied().collect();
        let unique: HashSet<&str> = planned_keys.iter().copied().collect();
        prop_assert_eq!(order.len(), unique.len());
        prop_assert_eq!(order.iter().copied().collect::<HashSet<_>>(), unique);
        let at = |k: &str| order.iter().position(|o| *o == k).unwrap();
        for s in &plans[0].specs {
            for (dep, _) in lm.graph().neighbours(&s.hash, DepTypes::ALL, false) {
                if !gone.contains(dep) {
                    continue;
                }
                let d = plans[0].specs.iter().find(|d| &*d.hash == dep).unwrap();
                prop_assert!(s.layer < d.layer);
                // Blobs are not what makes a spec installable: they all go last.
                let positions = |objects: &[Key]| -> Vec<usize> {
                    objects.iter().filter(|k| !k.starts_with(v3::BLOBS_PREFIX)).map(|k| at(k)).collect()
                };
                let (mine, theirs) = (positions(&s.objects), positions(&d.objects));
                prop_assert!(mine.iter().all(|m| theirs.iter().all(|t| m < t)));
            }
        }
        // A manifest never names a blob already deleted.
        for (m, blobs) in &lm.manifests.by_manifest {
            let Some(m_at) = order.iter().position(|k| *k == view.key(*m)) else {
                continue;
            };
            for b in blobs.iter().filter_map(|b| b.listed()) {
                if let Some(b_at) = order.iter().position(|k| *k == view.key(b)) {
                    prop_assert!(m_at < b_at, "{} before its manifest", view.key(b));
                }
            }
        }
    }

    /// Orphans go only with `--orphans`, never a stray, never one newer than the index or
    /// younger than the max age, never an object of a kept hash.
    #[test]
    fn orphans_go_only_under_the_orphan_rule(def in arb_cache(), rules in arb_rules()) {
        let view = build(&def);
        let lm = &view.layouts[0];
        let plans = plan(&view, &rules);
        if !rules.orphans {
            prop_assert!(plans[0].orphans.is_empty());
        }
        let positions = view.listing.positions();
        for o in &plans[0].orphans {
            let listed = view.listing.object(positions[&*o.key]);
            prop_assert!(o.kind != Unowned::Stray);
            prop_assert!(listed.last_modified() < lm.index_time);
            prop_assert!(super::decision::age(now(), Some(listed.last_modified())) > rules.max_age);
            prop_assert!(o.kind.hash().is_none_or(|h| !rules.keep.contains(h)));
        }
    }

    /// The index written back lists every record but the deleted specs, each unchanged.
    #[test]
    fn the_index_after_keeps_every_other_record(def in arb_cache(), rules in arb_rules()) {
        let view = build(&def);
        let lm = &view.layouts[0];
        let plans = plan(&view, &rules);
        let gone = plans[0].deleted_hashes();
        let Some(after) = plans[0].index_after(lm) else {
            prop_assert!(gone.is_empty());
            return Ok(());
        };
        let db = Database::parse("after", after).unwrap();
        let want: Vec<&Shared> = lm.db.entries.keys().filter(|h| !gone.contains(*h)).collect();
        prop_assert_eq!(db.entries.keys().collect::<Vec<_>>(), want);
        for (h, e) in &db.entries {
            let before = &lm.db.entries[h];
            prop_assert_eq!(&e.node, &before.node);
            prop_assert_eq!(e.in_buildcache, before.in_buildcache);
        }
    }
}

#[test]
fn an_object_keeps_the_time_its_listing_gives_to_the_nanosecond() {
    use super::cache::Object;
    use std::time::{SystemTime, UNIX_EPOCH};
    let at = |t: SystemTime| Object::new(Key::from("build_cache/x"), 1, t).last_modified();
    // A file's mtime has nanoseconds: two writes a nanosecond apart stay ordered.
    let now = SystemTime::now();
    assert_eq!(at(now), now);
    assert!(at(now + Duration::from_nanos(1)) > at(now));
    let before_epoch = UNIX_EPOCH - Duration::new(86_400, 7);
    assert_eq!(at(before_epoch), before_epoch);
    // Past what 64 bits of nanoseconds hold, a time is held at the nearest end, still after
    // (or before) every time a listing gives.
    let far = UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
    assert!(at(far) > now && at(far) < far);
    let long_ago = UNIX_EPOCH - Duration::from_secs(400 * 365 * 86_400);
    assert!(at(long_ago) < before_epoch && at(long_ago) > long_ago);
}
