//! Containment of capabilities and resources: reflexive, transitive, segment-aware.

use super::*;

/// Three nested capabilities `a ⊆ b ⊆ c` built by extending paths, narrowing abilities and
/// narrowing caveats.
#[derive(Debug, Clone)]
struct Nested {
    a: Capability,
    b: Capability,
    c: Capability,
}

prop_compose! {
    fn arb_nested()(
        space in arb_space(),
        service in arb_service(),
        base in arb_path(),
        ext_b in vec(arb_segment(), 0..3),
        ext_a in vec(arb_segment(), 0..3),
        abilities in (any::<Index>(), any::<Index>(), any::<Index>()),
        masks in (arb_caveat_mask(), arb_caveat_mask(), arb_caveat_mask()),
    ) -> Nested {
        let reg = registry();
        let ab_c = abilities.0.get(&reg).clone();
        let under_c: Vec<&Ability> = reg.iter().filter(|x| ab_c.covers(x)).collect();
        let ab_b = (*abilities.1.get(&under_c)).clone();
        let under_b: Vec<&Ability> = reg.iter().filter(|x| ab_b.covers(x)).collect();
        let ab_a = (*abilities.2.get(&under_b)).clone();
        let path_b = extend_path(service, &base, &ext_b);
        let path_a = extend_path(service, &path_b, &ext_a);
        let mask_c = masks.0;
        let mask_b = narrow_mask(mask_c, masks.1);
        let mask_a = narrow_mask(mask_b, masks.2);
        let mk = |p: &Option<String>, ab: Ability, m| {
            with_caveats(Capability::new(space_resource(&space, service, p.as_deref()), ab), m)
        };
        Nested {
            c: mk(&base, ab_c, mask_c),
            b: mk(&path_b, ab_b, mask_b),
            a: mk(&path_a, ab_a, mask_a),
        }
    }
}

/// A small universe so that random triples are often related.
fn small_capability() -> impl Strategy<Value = Capability> {
    let space = prop_oneof![
        9 => Just("tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default"),
        1 => Just("tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:other"),
    ];
    let paths = vec!["", "", "/", "/a", "/a/", "/a/b", "/ab"];
    let abilities = vec![
        "tinycloud.sql/*",
        "tinycloud.sql/*",
        "tinycloud.sql/admin",
        "tinycloud.sql/schema",
        "tinycloud.sql/read",
        "tinycloud.sql/select",
        "tinycloud.kv/del",
        "tinycloud.kv/delete",
    ];
    let caveats = prop_oneof![
        4 => Just(None),
        1 => Just(Some(1u8)),
        1 => Just(Some(3u8)),
    ];
    (space, select(paths), select(abilities), caveats).prop_map(|(s, p, a, m)| {
        let svc = if a.starts_with("tinycloud.kv") {
            "kv"
        } else {
            "sql"
        };
        with_caveats(cap(&format!("{s}/{svc}{p}"), a), m)
    })
}

fn small_resource() -> impl Strategy<Value = Resource> {
    let cid = blake3_cid(b"x");
    select(vec![
        "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/kv".to_owned(),
        "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/kv/".to_owned(),
        "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/kv/a".to_owned(),
        "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/kv/a/"
            .to_owned(),
        "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/kv/a/b"
            .to_owned(),
        "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/kv/ab"
            .to_owned(),
        "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/kv/a?x"
            .to_owned(),
        "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/sql/a"
            .to_owned(),
        format!("urn:cid:{cid}"),
        "urn:tinycloud:encryption:did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:n1"
            .to_owned(),
        "https://a.example".to_owned(),
        "https://a.example/b".to_owned(),
        "https://a.example/bc".to_owned(),
    ])
    .prop_map(|s| s.parse().expect("universe resource"))
}

proptest! {
    #![proptest_config(cfg(512))]

    #[test]
    fn capability_containment_is_reflexive(
        c in arb_capability(),
        mask in arb_caveat_mask(),
    ) {
        prop_assert_eq!(c.covered_by(&c), Ok(()));
        let constrained = with_caveats(c, mask);
        prop_assert_eq!(constrained.covered_by(&constrained), Ok(()));
    }

    #[test]
    fn capability_containment_is_transitive_on_chains(n in arb_nested()) {
        prop_assert_eq!(n.b.covered_by(&n.c), Ok(()), "construction: b ⊆ c");
        prop_assert_eq!(n.a.covered_by(&n.b), Ok(()), "construction: a ⊆ b");
        prop_assert_eq!(n.a.covered_by(&n.c), Ok(()), "a ⊆ c");
        prop_assert!(n.a.resource.extends(&n.c.resource));
        prop_assert!(n.c.ability.covers(&n.a.ability));
    }

    #[test]
    fn resource_containment_is_reflexive_and_round_trips(r in arb_resource()) {
        prop_assert!(r.extends(&r));
        let back: Resource = r.to_string().parse().unwrap();
        prop_assert_eq!(&back, &r);
        prop_assert_eq!(back.to_string(), r.to_string());
    }

    #[test]
    fn resource_containment_is_transitive(
        space in arb_space(),
        service in arb_service(),
        base in arb_path(),
        ext_b in vec(arb_segment(), 0..3),
        ext_a in vec(arb_segment(), 0..3),
        host in "[a-z]{1,6}",
        tail_b in "[a-z0-9/]{0,5}",
        tail_a in "[a-z0-9/]{0,5}",
    ) {
        let pb = extend_path(service, &base, &ext_b);
        let pa = extend_path(service, &pb, &ext_a);
        let c = space_resource(&space, service, base.as_deref());
        let b = space_resource(&space, service, pb.as_deref());
        let a = space_resource(&space, service, pa.as_deref());
        prop_assert!(b.extends(&c) && a.extends(&b) && a.extends(&c));
        // Other URIs: string prefix.
        let oc: Resource = format!("https://{host}.example").parse().unwrap();
        let ob: Resource = format!("{oc}{tail_b}").parse().unwrap();
        let oa: Resource = format!("{ob}{tail_a}").parse().unwrap();
        prop_assert!(ob.extends(&oc) && oa.extends(&ob) && oa.extends(&oc));
        // Containment never crosses spaces or services.
        let other_name = format!("{}x", space.name());
        let other_space = SpaceId::new(space.owner().clone(), &other_name).unwrap();
        prop_assert!(!space_resource(&other_space, service, pa.as_deref()).extends(&c));
        let other_service = if service == "kv" { "sql" } else { "kv" };
        prop_assert!(!space_resource(&space, other_service, pa.as_deref()).extends(&c));
    }

    #[test]
    fn sql_containment_is_database_exact(
        space in arb_space(),
        parent in vec(arb_segment(), 1..3),
        slash in any::<bool>(),
        below in vec(arb_segment(), 1..3),
    ) {
        let mut p = parent.join("/");
        if slash {
            p.push('/');
        }
        let grant = space_resource(&space, "sql", Some(&p));
        prop_assert!(grant.extends(&grant));
        // A database below another's name is another database, unless the grant is a namespace.
        let child = format!("{}/{}", parent.join("/"), below.join("/"));
        prop_assert_eq!(space_resource(&space, "sql", Some(&child)).extends(&grant), slash);
        // The whole service covers every database; no database covers the whole service.
        let whole = space_resource(&space, "sql", None);
        prop_assert!(grant.extends(&whole));
        prop_assert!(!whole.extends(&grant));
    }

    #[test]
    fn path_containment_is_segment_aware(
        parent in "[a-zA-Z0-9._~-]{0,8}(/[a-zA-Z0-9._~-]{1,8}){0,2}",
        x in "[^/]\\PC{0,6}",
        rest in "[a-z0-9/]{0,6}",
        space in arb_space(),
    ) {
        // `docs` never covers `docsX…` when X is not `/`.
        let child = format!("{parent}{x}");
        prop_assert!(!path_extends(&child, &parent), "{child:?} within {parent:?}");
        // …but always covers itself and `docs/…`.
        prop_assert!(path_extends(&parent, &parent));
        let below = format!("{parent}/{rest}");
        prop_assert!(path_extends(&below, &parent));
        // The same rule holds for resources, when both are valid paths.
        let p = space.resource("kv", Some(&parent));
        let c = space.resource("kv", Some(&child));
        if let (Ok(p), Ok(c)) = (p, c) {
            prop_assert!(!c.extends(&p));
            prop_assert!(p.extends(&p));
        }
    }
}

/// Random triples from a small universe: whenever `a ⊆ b` and `b ⊆ c`, `a ⊆ c`. The premise
/// must actually occur (and not only trivially, with equal capabilities).
#[test]
fn capability_containment_is_transitive_on_random_triples() {
    let premise = AtomicUsize::new(0);
    let strict = AtomicUsize::new(0);
    let mut runner = TestRunner::new_with_rng(
        cfg(20_000),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    runner
        .run(
            &(small_capability(), small_capability(), small_capability()),
            |(a, b, c)| {
                if a.covered_by(&b).is_ok() && b.covered_by(&c).is_ok() {
                    premise.fetch_add(1, Ordering::Relaxed);
                    if a != b && b != c {
                        strict.fetch_add(1, Ordering::Relaxed);
                    }
                    prop_assert_eq!(a.covered_by(&c), Ok(()), "{:?} ⊆ {:?} ⊆ {:?}", a, b, c);
                }
                Ok(())
            },
        )
        .unwrap();
    let (premise, strict) = (premise.into_inner(), strict.into_inner());
    eprintln!("capability transitivity: premise held {premise} times ({strict} strict)");
    assert!(
        premise >= 75 && strict >= 40,
        "premise held {premise} times ({strict} strict)"
    );
}

#[test]
fn resource_containment_is_transitive_on_random_triples() {
    let premise = AtomicUsize::new(0);
    let mut runner = TestRunner::new_with_rng(
        cfg(10_000),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    runner
        .run(
            &(small_resource(), small_resource(), small_resource()),
            |(a, b, c)| {
                prop_assert!(a.extends(&a));
                if a.extends(&b) && b.extends(&c) {
                    if a != b && b != c {
                        premise.fetch_add(1, Ordering::Relaxed);
                    }
                    prop_assert!(a.extends(&c), "{:?} ⊆ {:?} ⊆ {:?}", a, b, c);
                }
                Ok(())
            },
        )
        .unwrap();
    let premise = premise.into_inner();
    eprintln!("resource transitivity: strict premise held {premise} times");
    assert!(premise >= 15, "strict premise held {premise} times");
}
