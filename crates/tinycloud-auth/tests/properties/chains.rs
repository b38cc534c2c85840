//! Chains: a child never gains authority its parents lack.

use super::*;

const OWNER_ADDR: &str = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";
const FOREIGN_ADDR: &str = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF";

pub(super) fn owner_space() -> SpaceId {
    SpaceId::new(Did::pkh(1, wallet_address()).unwrap(), "default").unwrap()
}

/// Capabilities in the owner's space, with nested paths and related abilities.
pub(super) fn universe(space: &SpaceId) -> Vec<Capability> {
    let mut out = Vec::new();
    for (res, abilities) in [
        ("kv", &["get", "put", "del", "list"][..]),
        ("kv/a", &["get", "put", "delete"][..]),
        ("kv/a/b", &["get", "put"][..]),
        ("kv/ab", &["get"][..]),
        ("kv/b", &["get", "list"][..]),
        ("sql", &["read", "admin", "*"][..]),
        ("sql/db1", &["read", "write", "schema", "select"][..]),
        ("hooks", &["subscribe"][..]),
    ] {
        let service = res.split('/').next().unwrap();
        for a in abilities {
            out.push(cap(
                &format!("{space}/{res}"),
                &format!("tinycloud.{service}/{a}"),
            ));
        }
    }
    out
}

/// The same shapes in a space the owner does not own.
fn foreign_universe() -> Vec<Capability> {
    let foreign = SpaceId::new(
        Did::pkh(1, EthAddress::parse_checksummed(FOREIGN_ADDR).unwrap()).unwrap(),
        "default",
    )
    .unwrap();
    let mut v = universe(&foreign);
    // And the owner's address on another chain: a different principal.
    let other_chain = SpaceId::new(
        Did::pkh(5, EthAddress::parse_checksummed(OWNER_ADDR).unwrap()).unwrap(),
        "default",
    )
    .unwrap();
    v.push(cap(&format!("{other_chain}/kv"), "tinycloud.kv/get"));
    v
}

fn covered_by_any(c: &Capability, held: &[Capability]) -> bool {
    held.iter().any(|h| c.covered_by(h).is_ok())
}

/// Whether there is a path from delegation `cid` up to a delegation whose issuer holds `c` as
/// root authority, with `c` covered by every delegation on the way.
fn covered_along_some_path(
    cid: &Cid,
    c: &Capability,
    lookup: &impl ChainLookup,
    depth: usize,
) -> bool {
    let Some(d) = lookup.delegation(cid) else {
        return false;
    };
    if depth > 16 || !covered_by_any(c, &d.capabilities) {
        return false;
    }
    c.is_root_authority(&d.issuer)
        || d.parents
            .iter()
            .any(|p| covered_along_some_path(p, c, lookup, depth + 1))
}

#[derive(Debug, Clone)]
struct DelegPlan {
    issuer: Index,
    delegatee: Index,
    parents: Vec<Index>,
    caps: Vec<(Index, u8)>,
    shorten: u16,
}

#[derive(Debug, Clone)]
struct InvPlan {
    invoker: Index,
    parents: Vec<Index>,
    any_parent: bool,
    caps: Vec<(Index, u8)>,
}

fn arb_deleg_plan() -> impl Strategy<Value = DelegPlan> {
    (
        any::<Index>(),
        any::<Index>(),
        vec(any::<Index>(), 0..3),
        vec((any::<Index>(), any::<u8>()), 1..5),
        0u16..100,
    )
        .prop_map(|(issuer, delegatee, parents, caps, shorten)| DelegPlan {
            issuer,
            delegatee,
            parents,
            caps,
            shorten,
        })
}

fn arb_inv_plan() -> impl Strategy<Value = InvPlan> {
    (
        any::<Index>(),
        vec(any::<Index>(), 0..3),
        prop::bool::weighted(0.15),
        vec((any::<Index>(), any::<u8>()), 1..4),
    )
        .prop_map(|(invoker, parents, any_parent, caps)| InvPlan {
            invoker,
            parents,
            any_parent,
            caps,
        })
}

/// Picks capabilities from `pool`; indices pick the owner's universe 5 times out of 6.
fn pick_caps(idx: &[Index], own: &[Capability], foreign: &[Capability]) -> Vec<Capability> {
    let mut out: Vec<Capability> = Vec::new();
    for i in idx {
        let n = i.index(own.len() * 6 + foreign.len());
        let c = if n < own.len() * 6 {
            own[n % own.len()].clone()
        } else {
            foreign[n - own.len() * 6].clone()
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Picks capabilities mostly within `held` (a held capability, or a universe capability it
/// covers), sometimes anything from the universe or a foreign space.
fn pick_attenuated(
    picks: &[(Index, u8)],
    held: &[Capability],
    own: &[Capability],
    foreign: &[Capability],
) -> Vec<Capability> {
    let mut out: Vec<Capability> = Vec::new();
    for (i, kind) in picks {
        let c = match kind % 4 {
            0 => pick_caps(std::slice::from_ref(i), own, foreign).remove(0),
            _ if held.is_empty() => pick_caps(std::slice::from_ref(i), own, foreign).remove(0),
            1 => i.get(held).clone(),
            _ => {
                let p = i.get(held);
                let narrower: Vec<&Capability> =
                    own.iter().filter(|c| c.covered_by(p).is_ok()).collect();
                if narrower.is_empty() {
                    p.clone()
                } else {
                    (*i.get(&narrower)).clone()
                }
            }
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

proptest! {
    #![proptest_config(cfg(512))]

    /// Random DAGs of `DelegationInfo`s rooted at the owner, then random invocations.
    #[test]
    fn invocations_never_exceed_the_chain(
        plans in vec(arb_deleg_plan(), 1..9),
        invs in vec(arb_inv_plan(), 1..5),
    ) {
        let space = owner_space();
        let owner = space.owner().clone();
        let own = universe(&space);
        let foreign = foreign_universe();
        // principal 0 is the owner; 1..=4 are session/agent keys.
        let principals: Vec<Did> = std::iter::once(owner.clone())
            .chain((1..=4).map(|s| ed_key(s).did()))
            .collect();
        let mut chain = MemoryChain::default();
        let mut registered: Vec<Arc<DelegationInfo>> = Vec::new();

        for (n, plan) in plans.iter().enumerate() {
            // The owner issues, or someone who has received a delegation.
            let holders: Vec<&Did> = principals
                .iter()
                .filter(|p| **p == owner || registered.iter().any(|d| &d.delegatee == *p))
                .collect();
            let issuer = (*plan.issuer.get(&holders)).clone();
            let delegatee = plan.delegatee.get(&principals[1..]).clone();
            let addressed: Vec<&Arc<DelegationInfo>> =
                registered.iter().filter(|d| d.delegatee == issuer).collect();
            let mut parents: Vec<Arc<DelegationInfo>> = Vec::new();
            if !addressed.is_empty() {
                for i in &plan.parents {
                    let p = (*i.get(&addressed)).clone();
                    if !parents.iter().any(|q| q.cid == p.cid) {
                        parents.push(p);
                    }
                }
            }
            let exp = parents
                .iter()
                .filter_map(|p| p.expiration)
                .min()
                .unwrap_or(NOW.plus_secs(100_000))
                .plus_secs(-i64::from(plan.shorten));
            let held: Vec<Capability> =
                parents.iter().flat_map(|p| p.capabilities.clone()).collect();
            let caps = pick_attenuated(&plan.caps, &held, &own, &foreign);
            let d = DelegationInfo {
                cid: blake3_cid(format!("delegation-{n}").as_bytes()),
                authority: blake3_cid(format!("authority-{n}").as_bytes()),
                issuer: issuer.clone(),
                delegatee,
                not_before: None,
                expiration: Some(exp),
                parents: parents.iter().map(|p| p.cid).collect(),
                capabilities: caps.clone(),
                terminal: false,
            };
            let legit = caps
                .iter()
                .all(|c| c.is_root_authority(&issuer) || covered_by_any(c, &held));
            match chain.register(d.clone(), NOW) {
                Ok(()) => {
                    prop_assert!(legit, "registered a widening delegation {:?}", d);
                    registered.push(Arc::new(d));
                }
                Err(e) => {
                    prop_assert!(!legit, "refused a valid delegation {:?}: {}", d, e);
                    prop_assert_eq!(e.code(), "unauthorized-action");
                }
            }
        }

        for plan in &invs {
            let invoker = plan.invoker.get(&principals[1..]).clone();
            let mut parents: Vec<Arc<DelegationInfo>> = Vec::new();
            let pool: Vec<&Arc<DelegationInfo>> = if plan.any_parent {
                registered.iter().collect()
            } else {
                registered.iter().filter(|d| d.delegatee == invoker).collect()
            };
            if !pool.is_empty() {
                for i in &plan.parents {
                    let p = (*i.get(&pool)).clone();
                    if !parents.iter().any(|q| q.cid == p.cid) {
                        parents.push(p);
                    }
                }
            }
            let held: Vec<Capability> =
                parents.iter().flat_map(|p| p.capabilities.clone()).collect();
            let caps = pick_attenuated(&plan.caps, &held, &own, &foreign);
            let inv = InvocationInfo {
                invoker: invoker.clone(),
                not_before: None,
                expiration: Some(NOW.plus_secs(60)),
                parents: parents.iter().map(|p| p.cid).collect(),
                capabilities: caps.clone(),
            };
            let result =
                validate_invocation(&inv, &chain, NOW, DEFAULT_MAX_INVOCATION_LIFETIME_SECS);
            let addressed = parents.iter().all(|p| p.delegatee == invoker);
            let expected = addressed && caps.iter().all(|c| covered_by_any(c, &held));
            prop_assert_eq!(result.is_ok(), expected, "{:?} -> {:?}", inv, result);
            if !addressed {
                let mismatch = matches!(result, Err(ChainError::InvokerMismatch { .. }));
                prop_assert!(mismatch, "{:?}", result);
            }
            for c in &caps {
                let root_grant: Vec<Capability> = registered
                    .iter()
                    .filter(|d| d.issuer == owner)
                    .flat_map(|d| d.capabilities.clone())
                    .collect();
                if result.is_ok() {
                    prop_assert!(c.is_root_authority(&owner), "{} outside the owner's space", c);
                    prop_assert!(covered_by_any(c, &root_grant), "{} outside the root grant", c);
                    prop_assert!(
                        inv.parents.iter().any(|p| covered_along_some_path(p, c, &chain, 0)),
                        "{} not covered along any chain", c
                    );
                }
                if !covered_by_any(c, &root_grant) || foreign.contains(c) {
                    prop_assert!(result.is_err(), "{} outside the root grant was accepted", c);
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct TokenChainPlan {
    root: Vec<Index>,
    links: Vec<(Vec<Index>, Vec<Index>, u16)>,
    invoker: Index,
    cite: Option<Index>,
    inv_caps: Vec<(Index, u8)>,
}

fn arb_token_chain_plan() -> impl Strategy<Value = TokenChainPlan> {
    (
        vec(any::<Index>(), 1..8),
        vec(
            (
                vec(any::<Index>(), 1..5),
                vec(any::<Index>(), 0..2),
                0u16..1000,
            ),
            0..3,
        ),
        any::<Index>(),
        proptest::option::weighted(0.25, any::<Index>()),
        vec((any::<Index>(), any::<u8>()), 1..4),
    )
        .prop_map(|(root, links, invoker, cite, inv_caps)| TokenChainPlan {
            root,
            links,
            invoker,
            cite,
            inv_caps,
        })
}

/// Child capabilities: mostly the parent's (possibly narrowed to a universe capability they
/// cover), sometimes anything from the universe.
fn child_caps(
    from_parent: &[Index],
    extra: &[Index],
    parent: &[Capability],
    own: &[Capability],
    foreign: &[Capability],
) -> Vec<Capability> {
    let mut out: Vec<Capability> = Vec::new();
    for i in from_parent {
        let p = i.get(parent);
        let narrower: Vec<&Capability> = own.iter().filter(|c| c.covered_by(p).is_ok()).collect();
        let c = if narrower.is_empty() {
            p.clone()
        } else {
            (*i.get(&narrower)).clone()
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    for c in pick_caps(extra, own, foreign) {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

proptest! {
    #![proptest_config(cfg(128))]

    /// Real tokens: an owner SIWE/CACAO sign-in, UCAN re-delegations, a UCAN invocation.
    #[test]
    fn token_chains_never_exceed_the_root_grant(plan in arb_token_chain_plan()) {
        let space = owner_space();
        let owner = space.owner().clone();
        let own = universe(&space);
        let foreign = foreign_universe();
        let mut chain = MemoryChain::default();

        // Root: the owner's sign-in to session key 1.
        let root_caps = pick_caps(&plan.root, &own, &[]);
        let req = SiweDelegationRequest {
            domain: session::DEFAULT_DOMAIN.into(),
            address: wallet_address(),
            chain_id: 1,
            delegate: ed_key(1).did().verification_method().to_string(),
            nonce: "propnonce1".into(),
            issued_at: NOW,
            expiration: Some(NOW.plus_secs(session::DEFAULT_SESSION_SECS)),
            not_before: None,
            capabilities: root_caps.clone(),
            parents: vec![],
            statement: None,
        };
        let msg = req.to_message().unwrap();
        let sig = sign_eip191(&wallet(), msg.to_string().as_bytes()).unwrap();
        let root = Delegation::from_header(&Cacao::new(msg, sig.to_vec()).unwrap().to_header())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&root.info().issuer, &owner);
        prop_assert_eq!(sorted_caps(&root.info().capabilities), sorted_caps(&root_caps));
        chain.register(root.info().clone(), NOW).unwrap();
        let mut links: Vec<DelegationInfo> = vec![root.into_info()];

        // Re-delegations k1 -> k2 -> k3 …
        for (i, (from_parent, extra, shorten)) in plan.links.iter().enumerate() {
            let parent = links.last().unwrap().clone();
            let issuer = ed_key(i as u8 + 1);
            let audience = ed_key(i as u8 + 2).did();
            let caps = child_caps(from_parent, extra, &parent.capabilities, &own, &foreign);
            let legit: Vec<Capability> = caps
                .iter()
                .filter(|c| covered_by_any(c, &parent.capabilities))
                .cloned()
                .collect();
            let exp = parent.expiration.unwrap().plus_secs(-i64::from(*shorten));
            let make = |caps: Vec<Capability>| {
                let u = UcanBuilder::new(
                    issuer.did().verification_method(),
                    audience.clone().into(),
                    format!("link-{i}"),
                )
                .expiration(exp)
                .proof(parent.cid)
                .capabilities(caps)
                .sign(&issuer)
                .unwrap();
                Delegation::from_header(u.as_str()).unwrap().into_info()
            };
            let d = make(caps.clone());
            match chain.register(d.clone(), NOW) {
                Ok(()) => {
                    prop_assert_eq!(legit.len(), caps.len(), "widening link accepted");
                    links.push(d);
                }
                Err(e) => {
                    prop_assert!(legit.len() < caps.len(), "valid link refused: {}", e);
                    if legit.is_empty() {
                        break;
                    }
                    let d = make(legit);
                    chain.register(d.clone(), NOW).unwrap();
                    links.push(d);
                }
            }
        }

        // An invocation by one of the chain's delegatees, citing one of the delegations.
        let j = plan.invoker.index(links.len());
        let invoker = ed_key(j as u8 + 1);
        // Usually its own delegation, sometimes someone else's.
        let cited = plan.cite.map_or(&links[j], |c| c.get(&links)).clone();
        let caps = pick_attenuated(&plan.inv_caps, &links[j].capabilities, &own, &foreign);
        let u = session::invocation(
            &invoker,
            None,
            &[cited.cid],
            caps.clone(),
            NOW,
            session::DEFAULT_INVOCATION_TTL_SECS,
            "urn:uuid:00000000-0000-4000-8000-000000000000",
            vec![],
        )
        .unwrap();
        let inv = Invocation::from_header(u.as_str()).unwrap();
        let result =
            validate_invocation(inv.info(), &chain, NOW, DEFAULT_MAX_INVOCATION_LIFETIME_SECS);
        let expected = cited.delegatee == invoker.did()
            && caps.iter().all(|c| covered_by_any(c, &cited.capabilities));
        prop_assert_eq!(result.is_ok(), expected, "{:?}", result);
        for c in &caps {
            if result.is_ok() {
                prop_assert!(c.is_root_authority(&owner));
                // Covered by every delegation from the root down to the cited one.
                for d in links.iter().take(j + 1) {
                    let within = covered_by_any(c, &d.capabilities);
                    prop_assert!(within, "{} not within {}", c, d.cid);
                }
            }
            if !covered_by_any(c, &root_caps) {
                prop_assert!(result.is_err(), "{} outside the root grant accepted", c);
            }
        }
    }
}
