//! The one sign-in and invocation builder of tests and bench, over the protocol core's
//! builders (`tinycloud_auth::session`): deterministic owner wallets and session keys, the
//! owner's SIWE + ReCap CACAO, UCAN delegations and single-use invocations. The clock and the
//! nonces are read here, the tokens are written by the core.

use tinycloud_auth::capability::Capability;
use tinycloud_auth::cid::Cid;
use tinycloud_auth::did::{Did, DidUrl};
use tinycloud_auth::eth::EthAddress;
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::session::{capability, invocation, SiweDelegationRequest, DEFAULT_DOMAIN};
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::ucan::UcanBuilder;

/// Lifetime of the invocations built here, in seconds.
pub const INVOCATION_TTL_SECS: i64 = 120;

/// The wall clock as a protocol timestamp.
pub fn now() -> Timestamp {
    Timestamp::from(time::OffsetDateTime::now_utc())
}

/// A fresh `urn:uuid:` nonce.
pub fn uuid() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// Owner wallet number `n` (the same key for the same `n`).
pub fn wallet(n: u8) -> k256::ecdsa::SigningKey {
    let mut b = [0u8; 32];
    b[31] = n;
    b[0] = 0x11;
    k256::ecdsa::SigningKey::from_slice(&b).expect("a valid secp256k1 scalar")
}

/// A fresh Ed25519 session key (its seed starts with a random byte, the rest is `n`).
pub fn ed25519(n: u8) -> SecretKey {
    let mut seed = [n; 32];
    seed[0] = uuid::Uuid::new_v4().as_bytes()[0];
    SecretKey::ed25519_from_seed(&seed)
}

/// A SIWE + ReCap delegation from `wallet` to `delegate` (a session verification method or a
/// host DID), signed now with a fresh nonce, as the `Authorization` header value (CACAO).
pub fn siwe_header(
    wallet: &k256::ecdsa::SigningKey,
    delegate: String,
    caps: Vec<Capability>,
    expiration: Option<Timestamp>,
    parents: Vec<Cid>,
) -> String {
    SiweDelegationRequest {
        domain: DEFAULT_DOMAIN.into(),
        address: EthAddress::from_verifying_key(wallet.verifying_key()),
        chain_id: 1,
        delegate,
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        issued_at: now(),
        expiration,
        not_before: None,
        capabilities: caps,
        parents,
        statement: None,
    }
    .sign(wallet)
    .expect("a valid sign-in")
    .to_header()
}

/// An invocation header for one capability, valid [`INVOCATION_TTL_SECS`] from now.
pub fn invoke_header(key: &SecretKey, proofs: &[Cid], resource: &str, ability: &str) -> String {
    invoke_caps_header(key, proofs, &[(resource, ability)])
}

/// An invocation header for several `(resource, ability)` capabilities.
pub fn invoke_caps_header(key: &SecretKey, proofs: &[Cid], caps: &[(&str, &str)]) -> String {
    let caps = caps
        .iter()
        .map(|(r, a)| capability(r, a).expect("a valid capability"))
        .collect();
    invocation(
        key,
        None,
        proofs,
        caps,
        now(),
        INVOCATION_TTL_SECS,
        &uuid(),
        vec![],
    )
    .expect("a signed invocation")
    .as_str()
    .to_owned()
}

/// A UCAN delegation from `from` to `to`, expiring `exp_secs` from now.
pub fn ucan_delegation(
    from: &SecretKey,
    to: &Did,
    proofs: &[Cid],
    caps: Vec<Capability>,
    exp_secs: i64,
) -> String {
    let mut b = UcanBuilder::new(
        from.did().verification_method(),
        DidUrl::from(to.clone()),
        uuid(),
    )
    .expiration(now().plus_secs(exp_secs))
    .capabilities(caps);
    for p in proofs {
        b = b.proof(*p);
    }
    b.sign(from).expect("a signed UCAN").as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinycloud_auth::token::{Delegation, Invocation};

    #[test]
    fn tokens_decode_as_the_node_reads_them() {
        let w = wallet(1);
        let session = ed25519(1);
        let owner = Did::pkh(1, EthAddress::from_verifying_key(w.verifying_key())).unwrap();
        let space = tinycloud_auth::resource::SpaceId::new(owner.clone(), "default").unwrap();
        let cap = capability(&format!("{space}/kv"), "tinycloud.kv/get").unwrap();
        let header = siwe_header(
            &w,
            session.did().verification_method().to_string(),
            vec![cap.clone()],
            Some(now().plus_secs(60)),
            vec![],
        );
        let d = Delegation::from_header(&header).unwrap();
        assert_eq!(d.info().issuer, owner);
        assert_eq!(d.info().delegatee, session.did());
        let inv = invoke_header(
            &session,
            &[d.cid()],
            &format!("{space}/kv/a"),
            "tinycloud.kv/get",
        );
        let i = Invocation::from_header(&inv).unwrap();
        assert_eq!(i.info().parents, vec![d.cid()]);
        assert_eq!(i.info().invoker, session.did());
        let sub = ucan_delegation(&session, &owner, &[d.cid()], vec![cap], 60);
        assert!(Delegation::from_header(&sub).is_ok());
    }
}
