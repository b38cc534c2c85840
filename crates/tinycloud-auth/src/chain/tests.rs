//! Unit tests of chain validation: windows, parents, coverage, caveats, revocation, limits.

use super::*;
use crate::ability::Ability;
use crate::cid::blake3_cid;
use crate::keys::SecretKey;
use crate::resource::Resource;

fn owner() -> Did {
    "did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        .parse()
        .unwrap()
}

fn key(n: u8) -> Did {
    SecretKey::ed25519_from_seed(&[n; 32]).did()
}

fn cap(path: &str, ability: &str) -> Capability {
    let res: Resource = format!(
        "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default/kv{path}"
    )
    .parse()
    .unwrap();
    Capability::new(res, ability.parse::<Ability>().unwrap())
}

fn deleg(
    name: &str,
    iss: Did,
    aud: Did,
    parents: Vec<Cid>,
    caps: Vec<Capability>,
) -> DelegationInfo {
    DelegationInfo {
        cid: blake3_cid(name.as_bytes()),
        authority: blake3_cid(format!("authority of {name}").as_bytes()),
        issuer: iss,
        delegatee: aud,
        not_before: None,
        expiration: Some(Timestamp::from_secs(10_000)),
        parents,
        capabilities: caps,
        terminal: false,
    }
}

fn now() -> Timestamp {
    Timestamp::from_secs(1_000)
}

fn inv(invoker: Did, parents: Vec<Cid>, caps: Vec<Capability>) -> InvocationInfo {
    InvocationInfo {
        invoker,
        not_before: None,
        expiration: Some(now().plus_secs(60)),
        parents,
        capabilities: caps,
    }
}

/// owner -> session(1) on kv/notes; session -> agent(2) kv/notes/a get.
fn setup() -> (MemoryChain, DelegationInfo, DelegationInfo) {
    let mut chain = MemoryChain::default();
    let root = deleg(
        "root",
        owner(),
        key(1),
        vec![],
        vec![
            cap("/notes", "tinycloud.kv/get"),
            cap("/notes", "tinycloud.kv/put"),
        ],
    );
    chain.register(root.clone(), now()).unwrap();
    let child = deleg(
        "child",
        key(1),
        key(2),
        vec![root.cid],
        vec![cap("/notes/a", "tinycloud.kv/get")],
    );
    chain.register(child.clone(), now()).unwrap();
    (chain, root, child)
}

const MAX: i64 = DEFAULT_MAX_INVOCATION_LIFETIME_SECS;

#[test]
fn happy_path_and_attenuation() {
    let (chain, _, child) = setup();
    validate_invocation(
        &inv(
            key(2),
            vec![child.cid],
            vec![cap("/notes/a", "tinycloud.kv/get")],
        ),
        &chain,
        now(),
        MAX,
    )
    .unwrap();
    let e = validate_invocation(
        &inv(
            key(2),
            vec![child.cid],
            vec![cap("/notes/a", "tinycloud.kv/put")],
        ),
        &chain,
        now(),
        MAX,
    )
    .unwrap_err();
    assert_eq!(e.code(), "unauthorized-action");
    assert!(
        e.to_string()
            .starts_with("Unauthorized Action: tinycloud:pkh:"),
        "{e}"
    );
    let e = validate_invocation(
        &inv(
            key(2),
            vec![child.cid],
            vec![cap("/notesx", "tinycloud.kv/get")],
        ),
        &chain,
        now(),
        MAX,
    )
    .unwrap_err();
    assert_eq!(e.code(), "unauthorized-action");
}

#[test]
fn invoker_and_delegatee_must_match() {
    let (mut chain, root, child) = setup();
    let e = validate_invocation(
        &inv(
            key(3),
            vec![child.cid],
            vec![cap("/notes/a", "tinycloud.kv/get")],
        ),
        &chain,
        now(),
        MAX,
    )
    .unwrap_err();
    assert_eq!(e.code(), "unauthorized-invoker");
    let stray = deleg(
        "stray",
        key(3),
        key(4),
        vec![root.cid],
        vec![cap("/notes", "tinycloud.kv/get")],
    );
    assert_eq!(
        chain.register(stray, now()).unwrap_err().code(),
        "delegatee-mismatch"
    );
}

#[test]
fn child_cannot_widen() {
    let (mut chain, _, child) = setup();
    let wider = deleg(
        "wider",
        key(2),
        key(3),
        vec![child.cid],
        vec![cap("/notes", "tinycloud.kv/get")],
    );
    assert_eq!(
        chain.register(wider, now()).unwrap_err().code(),
        "unauthorized-action"
    );
    let mut later = deleg(
        "later",
        key(2),
        key(3),
        vec![child.cid],
        vec![cap("/notes/a", "tinycloud.kv/get")],
    );
    later.expiration = Some(Timestamp::from_secs(20_000));
    assert_eq!(
        chain.register(later.clone(), now()).unwrap_err(),
        ChainError::ExpiryExceedsParent
    );
    later.expiration = None;
    assert_eq!(
        chain.register(later, now()).unwrap_err(),
        ChainError::ExpiryExceedsParent
    );
}

/// Another encoding of `d`: a new CID, the same signed authority.
fn re_encoded(d: &DelegationInfo, tag: &str) -> DelegationInfo {
    DelegationInfo {
        cid: blake3_cid(format!("{} re-encoded {tag}", d.cid).as_bytes()),
        ..d.clone()
    }
}

#[test]
fn a_revoked_authority_stays_revoked_under_every_encoding() {
    let (mut chain, root, child) = setup();
    // An alias registered while the authority was live...
    let early = re_encoded(&child, "early");
    chain.register(early.clone(), now()).unwrap();
    chain.revoke(child.cid);
    // ...is revoked with it, and a later alias cannot be registered.
    let late = re_encoded(&child, "late");
    assert_eq!(
        chain.register(late.clone(), now()),
        Err(ChainError::Revoked(late.cid))
    );
    assert_eq!(
        chain.register(child.clone(), now()),
        Err(ChainError::Revoked(child.cid))
    );
    let read = vec![cap("/notes/a", "tinycloud.kv/get")];
    assert_eq!(
        validate_invocation(&inv(key(2), vec![early.cid], read), &chain, now(), MAX),
        Err(ChainError::Revoked(early.cid))
    );
    // The same holds for ancestors: revoking the root through an alias of it cuts off
    // children that cite the original.
    let root_alias = re_encoded(&root, "alias");
    chain.insert(root_alias.clone());
    chain.revoke(root_alias.cid);
    let sibling = deleg(
        "sibling",
        key(1),
        key(3),
        vec![root.cid],
        vec![cap("/notes/b", "tinycloud.kv/get")],
    );
    assert_eq!(
        chain.register(sibling, now()),
        Err(ChainError::ParentRevoked(root.cid))
    );
    let grandchild = deleg(
        "grandchild",
        key(2),
        key(4),
        vec![early.cid],
        vec![cap("/notes/a", "tinycloud.kv/get")],
    );
    assert!(chain.register(grandchild, now()).is_err());
}

#[test]
fn an_ancestor_revoked_under_another_encoding_cuts_off_the_chain() {
    let (mut chain, root, child) = setup();
    let root_alias = re_encoded(&root, "alias");
    chain.insert(root_alias.clone());
    chain.revoke(root_alias.cid);
    let e = validate_invocation(
        &inv(
            key(2),
            vec![child.cid],
            vec![cap("/notes/a", "tinycloud.kv/get")],
        ),
        &chain,
        now(),
        MAX,
    )
    .unwrap_err();
    assert_eq!(
        e,
        ChainError::AncestorRevoked {
            ancestor: root.cid,
            via: child.cid
        }
    );
}

#[test]
fn revocation_cascades() {
    let (mut chain, root, child) = setup();
    chain.revoke(root.cid);
    let e = validate_invocation(
        &inv(
            key(2),
            vec![child.cid],
            vec![cap("/notes/a", "tinycloud.kv/get")],
        ),
        &chain,
        now(),
        MAX,
    )
    .unwrap_err();
    assert_eq!(
        e,
        ChainError::AncestorRevoked {
            ancestor: root.cid,
            via: child.cid
        }
    );
    chain.revoke(child.cid);
    let e = validate_invocation(
        &inv(
            key(2),
            vec![child.cid],
            vec![cap("/notes/a", "tinycloud.kv/get")],
        ),
        &chain,
        now(),
        MAX,
    )
    .unwrap_err();
    assert_eq!(e, ChainError::Revoked(child.cid));
    let grand = deleg(
        "grand",
        key(2),
        key(3),
        vec![child.cid],
        vec![cap("/notes/a", "tinycloud.kv/get")],
    );
    assert_eq!(
        chain.register(grand, now()).unwrap_err(),
        ChainError::ParentRevoked(child.cid)
    );
}

#[test]
fn expiry_and_lifetime() {
    let (chain, _, child) = setup();
    let mut i = inv(
        key(2),
        vec![child.cid],
        vec![cap("/notes/a", "tinycloud.kv/get")],
    );
    assert_eq!(
        validate_invocation(&i, &chain, Timestamp::from_secs(10_000), MAX).unwrap_err(),
        ChainError::Expired
    );
    i.expiration = Some(now().plus_secs(301));
    assert_eq!(
        validate_invocation(&i, &chain, now(), MAX)
            .unwrap_err()
            .code(),
        "invocation-lifetime-exceeded"
    );
    i.expiration = None;
    assert_eq!(
        validate_invocation(&i, &chain, now(), MAX)
            .unwrap_err()
            .code(),
        "invocation-lifetime-exceeded"
    );
    i.expiration = Some(Timestamp::from_secs(10_010));
    assert_eq!(
        validate_invocation(&i, &chain, Timestamp::from_secs(10_000), MAX).unwrap_err(),
        ChainError::ProofNotValidNow(child.cid)
    );
    i.expiration = Some(now().plus_secs(10));
    i.not_before = Some(now().plus_secs(5));
    assert_eq!(
        validate_invocation(&i, &chain, now(), MAX).unwrap_err(),
        ChainError::NotYetValid
    );
}

#[test]
fn terminal_parent_and_unknown_parent() {
    let (mut chain, root, _) = setup();
    let mut t = deleg(
        "terminal",
        key(1),
        key(5),
        vec![root.cid],
        vec![cap("/notes", "tinycloud.kv/get")],
    );
    t.terminal = true;
    chain.register(t.clone(), now()).unwrap();
    validate_invocation(
        &inv(
            key(5),
            vec![t.cid],
            vec![cap("/notes/x", "tinycloud.kv/get")],
        ),
        &chain,
        now(),
        MAX,
    )
    .unwrap();
    let sub = deleg(
        "sub",
        key(5),
        key(6),
        vec![t.cid],
        vec![cap("/notes/x", "tinycloud.kv/get")],
    );
    assert_eq!(
        chain.register(sub, now()).unwrap_err(),
        ChainError::TerminalParent(t.cid)
    );
    let orphan = deleg(
        "orphan",
        key(1),
        key(6),
        vec![blake3_cid(b"missing")],
        vec![cap("/notes", "tinycloud.kv/get")],
    );
    assert_eq!(
        chain.register(orphan, now()).unwrap_err().code(),
        "delegation-parent-not-found"
    );
}

#[test]
fn root_authority_needs_no_parent_but_others_do() {
    let mut chain = MemoryChain::default();
    chain
        .register(
            deleg(
                "r",
                owner(),
                key(1),
                vec![],
                vec![cap("", "tinycloud.kv/get")],
            ),
            now(),
        )
        .unwrap();
    let e = chain
        .register(
            deleg(
                "x",
                key(1),
                key(2),
                vec![],
                vec![cap("", "tinycloud.kv/get")],
            ),
            now(),
        )
        .unwrap_err();
    assert_eq!(e.code(), "unauthorized-action");
    // the owner may invoke directly
    validate_invocation(
        &inv(owner(), vec![], vec![cap("/a", "tinycloud.kv/put")]),
        &chain,
        now(),
        MAX,
    )
    .unwrap();
}

#[test]
fn traversal_limit() {
    let mut chain = MemoryChain::default();
    let mut prev = deleg(
        "d0",
        owner(),
        key(0),
        vec![],
        vec![cap("", "tinycloud.kv/get")],
    );
    chain.register(prev.clone(), now()).unwrap();
    let mut result = Ok(());
    for i in 1..80u8 {
        let d = deleg(
            &format!("d{i}"),
            key(i - 1),
            key(i),
            vec![prev.cid],
            vec![cap("", "tinycloud.kv/get")],
        );
        result = chain.register(d.clone(), now());
        if result.is_err() {
            break;
        }
        prev = d;
    }
    assert_eq!(result.unwrap_err(), ChainError::TraversalLimit);
}
