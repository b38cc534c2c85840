//! Attacks on delegations and tokens, against the real node binary: every way a delegate (or
//! anyone holding a token) could exceed, widen or resurrect authority, each asserted refused.
//!
//! - one authority, one identity: a revoked CACAO or UCAN does not come back re-encoded (other
//!   recovery byte, text `version`, extra keys, non-canonical CBOR, base64 variants), and a
//!   re-signed invocation is the same single use;
//! - chain rules: widening, expiry past the parent, future not-before, wrong audience, a child
//!   issued by a stranger, a dropped caveat, a terminal parent, forged root authority, …;
//! - caveats fail closed: ReCap caveats are enforced like UCAN caveats, and a service refuses a
//!   caveat it does not enforce (KV, hooks, encryption) at registration and at invocation.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::capability::{Capability, Caveats};
use tinycloud_auth::cid::{blake3_cid, Cid};
use tinycloud_auth::did::{Did, DidUrl};
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::session::{capability, invocation};
use tinycloud_auth::ucan::UcanBuilder;

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;

fn cap(resource: &str, ability: &str) -> Capability {
    capability(resource, ability).unwrap()
}

fn with_caveat(mut c: Capability, caveat: Value) -> Capability {
    c.caveats = Caveats::from_objects(vec![caveat.as_object().unwrap().clone()]);
    c
}

fn cid_of(body: &Value) -> Cid {
    tinycloud_auth::cid::parse_cid(body["cid"].as_str().unwrap()).unwrap()
}

/// Replaces the first occurrence of `from` in `bytes` by `to`.
fn swap(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("pattern {from:?} not in the CACAO"));
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&bytes[at + from.len()..]);
    out
}

/// Every re-encoding of a CACAO's container that a holder (not the signer) can produce, as
/// (name, CBOR bytes). The first is the other form of the recovery byte, which wallets produce
/// too: it decodes and verifies, so only the authority identity ties it to the original.
fn cacao_re_encodings(header: &str) -> Vec<(&'static str, Vec<u8>)> {
    let b = URL_SAFE.decode(header).unwrap();
    // `s: {s: bytes(65), t: "eip191"}`: the recovery byte is the last signature byte.
    let sig_at = b
        .windows(2)
        .rposition(|w| w == [0x58, 0x41])
        .expect("65-byte signature")
        + 2;
    let mut v_flip = b.clone();
    v_flip[sig_at + 64] = match v_flip[sig_at + 64] {
        27 => 0,
        28 => 1,
        0 => 27,
        _ => 28,
    };
    let mut extra_top = b.clone();
    extra_top[0] = 0xa4;
    extra_top.extend_from_slice(b"\x61z\x00");
    let mut indefinite = vec![0xbf];
    indefinite.extend_from_slice(&b[1..]);
    indefinite.push(0xff);
    let h_part = b"\x61h\xa1\x61t\x67eip4361";
    assert_eq!(&b[1..1 + h_part.len()], h_part, "h comes first");
    let rest = &b[1 + h_part.len()..];
    let s_at = rest.windows(3).rposition(|w| w == b"\x61s\xa2").unwrap();
    let mut reordered = vec![b[0]];
    reordered.extend_from_slice(&rest[..s_at]);
    reordered.extend_from_slice(h_part);
    reordered.extend_from_slice(&rest[s_at..]);
    let text = String::from_utf8_lossy(&b).into_owned();
    let iss_at = text.find("did:pkh:eip155:1:0x").expect("issuer");
    let iss = &text[iss_at..iss_at + "did:pkh:eip155:1:0x".len() + 40];
    vec![
        ("other recovery byte form", v_flip),
        ("version as text", swap(&b, b"gversion\x01", b"gversiona1")),
        (
            "non-minimal integer",
            swap(&b, b"gversion\x01", b"gversion\x18\x01"),
        ),
        (
            "extra key in h",
            swap(&b, b"\xa1atgeip4361", b"\xa2atgeip4361auax"),
        ),
        ("extra key in s", swap(&b, b"\xa2as", b"\xa3aa\x00as")),
        ("extra top-level key", extra_top),
        ("indefinite-length map", indefinite),
        ("keys out of canonical order", reordered),
        (
            "lowercase issuer",
            swap(&b, iss.as_bytes(), iss.to_lowercase().as_bytes()),
        ),
    ]
}

#[tokio::test]
async fn a_revoked_cacao_session_does_not_come_back_under_any_encoding() {
    let mut node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 70, "default").await;
    o.client(&node)
        .put(&o.res("kv/notes/a"), b"secret")
        .await
        .expect(200);

    // A second session, signed by the owner's wallet for another key.
    let k = ed25519(71);
    let header = siwe_header(
        &o.wallet,
        k.did().verification_method().to_string(),
        vec![cap(&o.res("kv/notes"), "tinycloud.kv/get")],
        Some(now().plus_secs(3600)),
        vec![],
    );
    let (s, body, text) = post_delegate(&node, &header).await;
    assert_eq!(s, 200, "{text}");
    let original = cid_of(&body);
    let read = |proof: Cid| {
        let k = &k;
        let node = &node;
        let res = o.res("kv/notes/a");
        async move { Client::new(node, k, &[proof]).call(&res, "get").await }
    };
    read(original).await.expect(200);

    let variants = cacao_re_encodings(&header);
    // The other recovery-byte form is a valid CACAO: registered while the session is live it
    // is an alias (another CID) of the same authority.
    let alias_bytes = variants[0].1.clone();
    let (s, body, text) = post_delegate(&node, &URL_SAFE.encode(&alias_bytes)).await;
    assert_eq!(s, 200, "the other v form is what some wallets send: {text}");
    let alias = cid_of(&body);
    assert_ne!(alias, original);
    read(alias).await.expect(200);

    // The session key revokes its own session (it is the delegate).
    let (s, body) = revoke(&node, &k, original).await;
    assert_eq!(s, 200, "{body}");
    read(original).await.expect(401);
    let r = read(alias).await;
    assert_eq!(
        r.status,
        401,
        "an alias registered before the revocation: {}",
        r.text()
    );

    // Re-posting the exact bytes, or any re-encoding, registers nothing and reads stay denied.
    let (s, _, text) = post_delegate(&node, &header).await;
    assert_eq!(s, 401, "exact bytes: {text}");
    for (name, bytes) in variants {
        let (s, _, text) = post_delegate(&node, &URL_SAFE.encode(&bytes)).await;
        assert!(s == 400 || s == 401, "{name}: {s} {text}");
        let r = read(blake3_cid(&bytes)).await;
        assert_eq!(
            r.status,
            401,
            "{name}: read after re-registration: {}",
            r.text()
        );
    }

    // The revocation of the authority survives a restart (identities are rebuilt from the
    // stored tokens, revocations reloaded).
    let dir = node.dir.clone();
    let tmp = node.take_tmp();
    node.kill9();
    let node = Node::start_in(NODE_BIN, &dir, &[]);
    for proof in [original, alias] {
        let r = Client::new(&node, &k, &[proof])
            .call(&o.res("kv/notes/a"), "get")
            .await;
        assert_eq!(r.status, 401, "after restart: {}", r.text());
    }
    let (s, _, text) = post_delegate(&node, &URL_SAFE.encode(&alias_bytes)).await;
    assert_eq!(s, 401, "alias after restart: {text}");
    drop(tmp);
}

#[tokio::test]
async fn non_canonical_cacaos_are_refused_even_when_live() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 72, "default").await;
    let k = ed25519(73);
    let header = siwe_header(
        &o.wallet,
        k.did().verification_method().to_string(),
        vec![cap(&o.res("kv/notes"), "tinycloud.kv/get")],
        Some(now().plus_secs(3600)),
        vec![],
    );
    for (name, bytes) in cacao_re_encodings(&header).into_iter().skip(1) {
        let (s, _, text) = post_delegate(&node, &URL_SAFE.encode(&bytes)).await;
        assert_eq!(s, 400, "{name}: {text}");
    }
}

#[tokio::test]
async fn a_revoked_ucan_delegation_does_not_come_back_under_any_encoding() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 74, "default").await;
    o.client(&node)
        .put(&o.res("kv/notes/a"), b"secret")
        .await
        .expect(200);
    let b = ed25519(75);
    let g = ucan_delegation(
        &o.session,
        &b.did(),
        &[o.session_cid],
        vec![cap(&o.res("kv/notes"), "tinycloud.kv/get")],
        600,
    );
    let (s, body, text) = post_delegate(&node, &g).await;
    assert_eq!(s, 200, "{text}");
    let cid = cid_of(&body);
    let bc = Client::new(&node, &b, &[cid]);
    bc.call(&o.res("kv/notes/a"), "get").await.expect(200);
    let (s, body) = revoke(&node, &o.session, cid).await;
    assert_eq!(s, 200, "{body}");
    bc.call(&o.res("kv/notes/a"), "get").await.expect(401);

    let (input, sig) = g.rsplit_once('.').unwrap();
    let raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let variants: Vec<(&str, String, u16)> = vec![
        ("exact bytes", g.clone(), 401),
        ("Bearer prefix", format!("Bearer {g}"), 401),
        (
            "padded signature",
            format!("{input}.{}", URL_SAFE.encode(&raw)),
            400,
        ),
        (
            "stray trailing bits",
            format!("{input}.{}", stray_bits(sig)),
            400,
        ),
    ];
    for (name, token, want) in variants {
        let (s, _, text) = post_delegate(&node, &token).await;
        assert_eq!(s, want, "{name}: {text}");
    }
    bc.call(&o.res("kv/notes/a"), "get").await.expect(401);
}

/// The same base64url text with the unused low bits of the last character set.
fn stray_bits(b64: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = *b64.as_bytes().last().unwrap();
    let idx = ALPHABET.iter().position(|c| *c == last).unwrap();
    // 64 bytes = 85 full characters + one carrying 4 significant bits (2 unused).
    let twin = ALPHABET[idx ^ 1] as char;
    format!("{}{twin}", &b64[..b64.len() - 1])
}

/// A deterministic "random" source for a second, equally valid ECDSA signature.
struct Nonce(u8);

impl k256::elliptic_curve::rand_core::RngCore for Nonce {
    fn next_u32(&mut self) -> u32 {
        u32::from(self.0)
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.0)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(self.0);
    }
    fn try_fill_bytes(
        &mut self,
        dest: &mut [u8],
    ) -> Result<(), k256::elliptic_curve::rand_core::Error> {
        dest.fill(self.0);
        Ok(())
    }
}

impl k256::elliptic_curve::rand_core::CryptoRng for Nonce {}

#[tokio::test]
async fn a_used_invocation_is_not_fresh_again_in_another_encoding() {
    use k256::ecdsa::signature::RandomizedSigner;
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 76, "default").await;
    o.client(&node)
        .put(&o.res("kv/notes/a"), b"v")
        .await
        .expect(200);
    // An ES256K session key (a hardware or wallet-backed key signs with fresh nonces).
    let sk = k256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let key = SecretKey::Secp256k1(sk.clone());
    let grant = delegate(
        &node,
        &o.session,
        &key.did(),
        &[o.session_cid],
        vec![cap(&o.res("kv/notes"), "tinycloud.kv/get")],
        600,
    )
    .await;
    let jwt = invoke_header(&key, &[grant], &o.res("kv/notes/a"), "tinycloud.kv/get");
    invoke(&node, &jwt, &[], vec![]).await.expect(200);

    let (input, sig) = jwt.rsplit_once('.').unwrap();
    // The same signed content under a second valid signature (another ECDSA nonce).
    let resigned: k256::ecdsa::Signature = sk.sign_with_rng(&mut Nonce(9), input.as_bytes());
    let resigned = resigned.normalize_s().unwrap_or(resigned);
    let resigned = format!("{input}.{}", URL_SAFE_NO_PAD.encode(resigned.to_bytes()));
    assert_ne!(resigned, jwt);
    // The malleable high-S twin of the original signature.
    let low = k256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    let high =
        k256::ecdsa::Signature::from_scalars(low.r().to_bytes(), (-*low.s()).to_bytes()).unwrap();
    let high = format!("{input}.{}", URL_SAFE_NO_PAD.encode(high.to_bytes()));
    let cases: Vec<(&str, String, u16)> = vec![
        ("exact replay", jwt.clone(), 409),
        ("Bearer prefix", format!("Bearer {jwt}"), 409),
        ("re-signed with another nonce", resigned, 409),
        ("high-S twin", high, 401),
        (
            "stray trailing bits",
            format!("{input}.{}", stray_bits(sig)),
            400,
        ),
    ];
    for (name, token, want) in cases {
        let r = invoke(&node, &token, &[], vec![]).await;
        assert_eq!(r.status, want, "{name}: {}", r.text());
    }
}

/// A UCAN from `from` to `to` with full control over its fields.
#[allow(clippy::too_many_arguments)]
fn ucan(
    from: &SecretKey,
    to: &Did,
    proofs: &[Cid],
    caps: Vec<Capability>,
    exp_secs: Option<i64>,
    nbf_secs: Option<i64>,
    terminal: bool,
) -> String {
    let mut b = UcanBuilder::new(
        from.did().verification_method(),
        DidUrl::from(to.clone()),
        uuid(),
    )
    .capabilities(caps);
    if let Some(e) = exp_secs {
        b = b.expiration(now().plus_secs(e));
    }
    if let Some(n) = nbf_secs {
        b = b.not_before(now().plus_secs(n));
    }
    if terminal {
        b = b.terminal();
    }
    for p in proofs {
        b = b.proof(*p);
    }
    b.sign(from).unwrap().as_str().to_owned()
}

mod authority;
