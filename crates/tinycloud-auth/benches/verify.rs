//! Verification cost of the tokens a node checks on every request, against the bare
//! signature primitive each one is built on:
//!
//! * `ed25519/bare_verify` vs `ucan/invocation_verify` (parse + did:key decode + verify);
//! * `secp256k1/bare_recover` vs `cacao/session_verify` (CBOR + SIWE + ReCap + recover);
//! * `containment/*`: chain validation of a 10-capability invocation and raw `covered_by`.
//!
//! `breakdown/*` times the pieces of the two token paths separately (base64, JSON, DAG-CBOR,
//! did:key decoding, SIWE rendering/parsing, keccak, ReCap, …) so that any overhead above the
//! primitive can be attributed.
//!
//! Run with `cargo bench -p tinycloud-auth --bench verify`.

use std::hint::black_box;
use std::time::Duration;

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};

use tinycloud_auth::cacao::Cacao;
use tinycloud_auth::capability::Capability;
use tinycloud_auth::chain::{
    validate_invocation, DelegationInfo, InvocationInfo, MemoryChain,
    DEFAULT_MAX_INVOCATION_LIFETIME_SECS,
};
use tinycloud_auth::cid::blake3_cid;
use tinycloud_auth::did::{Did, DidUrl};
use tinycloud_auth::eth::{eip191_hash, keccak256, sign_eip191, EthAddress};
use tinycloud_auth::keys::{PublicKey, SecretKey};
use tinycloud_auth::recap::Recap;
use tinycloud_auth::resource::{Resource, SpaceId};
use tinycloud_auth::session::{
    capability, invocation, SiweDelegationRequest, DEFAULT_DOMAIN, DEFAULT_INVOCATION_TTL_SECS,
    DEFAULT_SESSION_SECS,
};
use tinycloud_auth::siwe::Message;
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::token::{Delegation, Invocation};
use tinycloud_auth::ucan::Ucan;

const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);
const INVOCATION_NONCE: &str = "urn:uuid:6f1c2a4e-8b7d-4c3e-9a1f-2d5e7b9c0a31";

struct Fixture {
    wallet: k256::ecdsa::SigningKey,
    session: SecretKey,
    owner: Did,
    space: SpaceId,
    /// The signed SIWE message of the session sign-in.
    message: Message,
    /// The session sign-in CACAO.
    cacao: Cacao,
    /// Its `Authorization` value (padded base64url DAG-CBOR).
    cacao_header: String,
    /// The invocation JWT.
    jwt: String,
}

fn wallet() -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&[0x42; 32]).expect("valid secp256k1 scalar")
}

/// The capabilities the reference SDK asks for at sign-in when no manifest is given (the
/// registry subset this crate knows): kv get/put/del/list/metadata, sql read/write,
/// capabilities/read and hooks/subscribe, all on the primary (`default`) space.
fn sdk_session_capabilities(space: &SpaceId) -> Vec<Capability> {
    let mut caps = Vec::new();
    for (service, abilities) in [
        ("kv", &["get", "put", "del", "list", "metadata"][..]),
        ("sql", &["read", "write"][..]),
        ("capabilities", &["read"][..]),
        ("hooks", &["subscribe"][..]),
    ] {
        for a in abilities {
            caps.push(
                capability(
                    &format!("{space}/{service}"),
                    &format!("tinycloud.{service}/{a}"),
                )
                .expect("valid capability"),
            );
        }
    }
    caps
}

fn fixture() -> Fixture {
    let wallet = wallet();
    let address = EthAddress::from_verifying_key(wallet.verifying_key());
    let owner = Did::pkh(1, address).expect("chain 1");
    let space = SpaceId::new(owner.clone(), "default").expect("space name");
    let session = SecretKey::ed25519_from_seed(&[9; 32]);
    let req = SiweDelegationRequest {
        domain: DEFAULT_DOMAIN.into(),
        address,
        chain_id: 1,
        delegate: session.did().verification_method().to_string(),
        nonce: "Qm9aT3kL8xYz2WvB".into(),
        issued_at: NOW,
        expiration: Some(NOW.plus_secs(DEFAULT_SESSION_SECS)),
        not_before: None,
        capabilities: sdk_session_capabilities(&space),
        parents: vec![],
        statement: None,
    };
    let message = req.to_message().expect("valid SIWE");
    let sig = sign_eip191(&wallet, message.to_string().as_bytes()).expect("sign");
    let cacao = Cacao::new(message.clone(), sig.to_vec()).expect("cacao");
    let cacao_header = cacao.to_header();

    let inv = invocation(
        &session,
        None,
        &[cacao.cid()],
        vec![capability(&format!("{space}/kv/notes/a.json"), "tinycloud.kv/get").unwrap()],
        NOW,
        DEFAULT_INVOCATION_TTL_SECS,
        INVOCATION_NONCE,
        vec![],
    )
    .expect("invocation");
    let jwt = inv.as_str().to_owned();

    // Sanity: the two tokens verify and chain.
    let d = Delegation::from_header(&cacao_header).expect("CACAO verifies");
    assert_eq!(d.info().capabilities.len(), 9);
    let mut chain = MemoryChain::default();
    chain.register(d.info().clone(), NOW).expect("registers");
    let i = Invocation::from_header(&jwt).expect("UCAN verifies");
    validate_invocation(i.info(), &chain, NOW, DEFAULT_MAX_INVOCATION_LIFETIME_SECS)
        .expect("authorized");

    Fixture {
        wallet,
        session,
        owner,
        space,
        message,
        cacao,
        cacao_header,
        jwt,
    }
}

fn ed25519_parts(
    f: &Fixture,
) -> (
    ed25519_dalek::VerifyingKey,
    Vec<u8>,
    ed25519_dalek::Signature,
) {
    let SecretKey::Ed25519(sk) = &f.session else {
        unreachable!("ed25519 session key")
    };
    let (input, sig) = f.jwt.rsplit_once('.').expect("JWT");
    let sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url");
    let sig = ed25519_dalek::Signature::from_slice(&sig).expect("64 bytes");
    (sk.verifying_key(), input.as_bytes().to_vec(), sig)
}

fn bench_ed25519(c: &mut Criterion, f: &Fixture) {
    let (vk, msg, sig) = ed25519_parts(f);
    vk.verify_strict(&msg, &sig).expect("verifies");
    let mut g = c.benchmark_group("ed25519");
    g.bench_function("bare_verify", |b| {
        b.iter(|| black_box(&vk).verify_strict(black_box(&msg), black_box(&sig)))
    });
    g.finish();
}

fn bench_ucan(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("ucan");
    g.bench_function("invocation_verify", |b| {
        b.iter(|| Invocation::from_header(black_box(&f.jwt)).expect("verifies"))
    });
    g.finish();
}

fn secp_parts(f: &Fixture) -> ([u8; 32], k256::ecdsa::Signature, k256::ecdsa::RecoveryId) {
    let text = f.message.to_string();
    let sig = f.cacao.signature();
    let hash = eip191_hash(text.as_bytes());
    let signature = k256::ecdsa::Signature::from_slice(&sig[..64]).expect("r || s");
    let recid = k256::ecdsa::RecoveryId::from_byte(sig[64] - 27).expect("v");
    (hash, signature, recid)
}

fn bench_secp256k1(c: &mut Criterion, f: &Fixture) {
    let (hash, signature, recid) = secp_parts(f);
    let recovered =
        k256::ecdsa::VerifyingKey::recover_from_prehash(&hash, &signature, recid).expect("ok");
    assert_eq!(&recovered, f.wallet.verifying_key());
    let mut g = c.benchmark_group("secp256k1");
    g.bench_function("bare_recover", |b| {
        b.iter(|| {
            k256::ecdsa::VerifyingKey::recover_from_prehash(
                black_box(&hash),
                black_box(&signature),
                black_box(recid),
            )
            .expect("recovers")
        })
    });
    g.finish();
}

fn bench_cacao(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("cacao");
    g.bench_function("session_verify", |b| {
        b.iter(|| Delegation::from_header(black_box(&f.cacao_header)).expect("verifies"))
    });
    g.finish();
}

/// Ten distinct (path, ability) pairs across kv and sql.
fn ten_pairs(space: &SpaceId) -> Vec<(String, String, String)> {
    let kv = ["get", "put", "del", "list", "metadata"];
    let sql = ["read", "write", "schema", "admin", "read"];
    let mut out = Vec::new();
    for (i, a) in kv.iter().enumerate() {
        out.push((
            format!("{space}/kv/app{i}"),
            format!("{space}/kv/app{i}/docs/item-{i}.json"),
            format!("tinycloud.kv/{a}"),
        ));
    }
    for (i, a) in sql.iter().enumerate() {
        out.push((
            format!("{space}/sql/db{i}"),
            format!("{space}/sql/db{i}/t{i}"),
            format!("tinycloud.sql/{a}"),
        ));
    }
    out
}

fn bench_containment(c: &mut Criterion, f: &Fixture) {
    let pairs = ten_pairs(&f.space);
    let held: Vec<Capability> = pairs
        .iter()
        .map(|(p, _, a)| capability(p, a).unwrap())
        .collect();
    let wanted: Vec<Capability> = pairs
        .iter()
        .map(|(_, c, a)| capability(c, a).unwrap())
        .collect();
    let session_did = f.session.did();
    let delegation = DelegationInfo {
        cid: blake3_cid(b"session-10"),
        authority: blake3_cid(b"authority of session-10"),
        issuer: f.owner.clone(),
        delegatee: session_did.clone(),
        not_before: None,
        expiration: Some(NOW.plus_secs(DEFAULT_SESSION_SECS)),
        parents: vec![],
        capabilities: held.clone(),
        terminal: false,
    };
    let mut chain = MemoryChain::default();
    chain.register(delegation.clone(), NOW).expect("registers");
    let inv = InvocationInfo {
        invoker: session_did,
        not_before: None,
        expiration: Some(NOW.plus_secs(DEFAULT_INVOCATION_TTL_SECS)),
        parents: vec![delegation.cid],
        capabilities: wanted.clone(),
    };
    let ok = validate_invocation(&inv, &chain, NOW, DEFAULT_MAX_INVOCATION_LIFETIME_SECS)
        .expect("authorized");
    assert_eq!(ok.caveats.len(), 10);
    for (w, h) in wanted.iter().zip(&held) {
        w.covered_by(h).expect("covered");
    }

    let mut g = c.benchmark_group("containment");
    g.bench_function("10_caps", |b| {
        b.iter(|| {
            validate_invocation(
                black_box(&inv),
                black_box(&chain),
                NOW,
                DEFAULT_MAX_INVOCATION_LIFETIME_SECS,
            )
            .expect("authorized")
        })
    });
    g.bench_function("10_caps_covered_by", |b| {
        b.iter(|| {
            for (w, h) in black_box(&wanted).iter().zip(black_box(&held)) {
                black_box(w.covered_by(h)).expect("covered");
            }
        })
    });
    g.finish();
}

/// The pieces of the two verification paths, timed one by one.
fn bench_breakdown(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("breakdown");

    // --- UCAN invocation path -------------------------------------------------------------
    let mut parts = f.jwt.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let payload_bytes = URL_SAFE_NO_PAD.decode(p).unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&payload_bytes).unwrap();
    let iss = payload["iss"].as_str().unwrap().to_owned();
    let multibase = f
        .session
        .did()
        .to_string()
        .strip_prefix("did:key:")
        .unwrap()
        .to_owned();
    let key_bytes: [u8; 32] = bs58::decode(&multibase[1..]).into_vec().unwrap()[2..]
        .try_into()
        .unwrap();
    let att_resource = format!("{}/kv/notes/a.json", f.space);

    g.bench_function("ucan/base64_3_parts", |b| {
        b.iter(|| {
            (
                URL_SAFE_NO_PAD.decode(black_box(h)).unwrap(),
                URL_SAFE_NO_PAD.decode(black_box(p)).unwrap(),
                URL_SAFE_NO_PAD.decode(black_box(s)).unwrap(),
            )
        })
    });
    g.bench_function("ucan/json_header_payload", |b| {
        let hb = URL_SAFE_NO_PAD.decode(h).unwrap();
        b.iter(|| {
            (
                serde_json::from_slice::<serde_json::Value>(black_box(&hb)).unwrap(),
                serde_json::from_slice::<serde_json::Value>(black_box(&payload_bytes)).unwrap(),
            )
        })
    });
    g.bench_function("ucan/bs58_decode_did_key", |b| {
        b.iter(|| bs58::decode(black_box(&multibase[1..])).into_vec().unwrap())
    });
    g.bench_function("ucan/ed25519_point_decompress", |b| {
        b.iter(|| ed25519_dalek::VerifyingKey::from_bytes(black_box(&key_bytes)).unwrap())
    });
    g.bench_function("ucan/did_key_from_multibase", |b| {
        b.iter(|| PublicKey::from_multibase(black_box(&multibase)).unwrap())
    });
    g.bench_function("ucan/did_url_parse_iss", |b| {
        b.iter(|| black_box(&iss).parse::<DidUrl>().unwrap())
    });
    g.bench_function("ucan/resource_parse", |b| {
        b.iter(|| black_box(&att_resource).parse::<Resource>().unwrap())
    });
    g.bench_function("ucan/decode_no_verify", |b| {
        b.iter(|| Ucan::decode(black_box(&f.jwt)).unwrap())
    });
    let ucan = Ucan::decode(&f.jwt).unwrap();
    g.bench_function("ucan/verify_signature_only", |b| {
        b.iter(|| black_box(&ucan).verify_signature().unwrap())
    });
    g.bench_function("ucan/from_ucan_info", |b| {
        b.iter(|| Invocation::from_ucan(black_box(&ucan).clone()))
    });
    // The same invocation addressed to a did:pkh audience: what a `did:key` audience costs
    // to decode (its Ed25519 point is decompressed although it never verifies anything).
    let jwt_aud_pkh = invocation(
        &f.session,
        Some(f.owner.clone()),
        &[f.cacao.cid()],
        vec![capability(&format!("{}/kv/notes/a.json", f.space), "tinycloud.kv/get").unwrap()],
        NOW,
        DEFAULT_INVOCATION_TTL_SECS,
        INVOCATION_NONCE,
        vec![],
    )
    .unwrap()
    .as_str()
    .to_owned();
    g.bench_function("ucan/invocation_verify_aud_pkh", |b| {
        b.iter(|| Invocation::from_header(black_box(&jwt_aud_pkh)).unwrap())
    });
    g.bench_function("ucan/json_payload_typed", |b| {
        b.iter(|| serde_json::from_slice::<TypedPayload<'_>>(black_box(&payload_bytes)).unwrap())
    });
    g.bench_function("ucan/cid_blake3", |b| {
        b.iter(|| blake3_cid(black_box(f.jwt.as_bytes())))
    });

    // --- CACAO session path ---------------------------------------------------------------
    let cbor = URL_SAFE.decode(&f.cacao_header).unwrap();
    let text = f.message.to_string();
    let recap_uri = f.message.resources.as_ref().unwrap()[0].clone();
    let recap = Recap::from_resource(&recap_uri).unwrap();
    let address = EthAddress::from_verifying_key(f.wallet.verifying_key());
    let (hash, signature, recid) = secp_parts(f);
    let recovered =
        k256::ecdsa::VerifyingKey::recover_from_prehash(&hash, &signature, recid).unwrap();

    g.bench_function("cacao/base64_decode", |b| {
        b.iter(|| URL_SAFE.decode(black_box(&f.cacao_header)).unwrap())
    });
    g.bench_function("cacao/dagcbor_decode_ipld", |b| {
        b.iter(|| {
            serde_ipld_dagcbor::from_slice::<std::collections::BTreeMap<String, CborAny>>(
                black_box(&cbor),
            )
            .unwrap()
        })
    });
    g.bench_function("cacao/from_bytes", |b| {
        b.iter(|| Cacao::from_bytes(black_box(&cbor)).unwrap())
    });
    g.bench_function("cacao/siwe_to_string", |b| {
        b.iter(|| black_box(&f.message).to_string())
    });
    g.bench_function("cacao/siwe_parse", |b| {
        b.iter(|| black_box(&text).parse::<Message>().unwrap())
    });
    g.bench_function("cacao/siwe_validate", |b| {
        b.iter(|| black_box(&f.message).validate().unwrap())
    });
    g.bench_function("cacao/eip55_render", |b| {
        b.iter(|| black_box(&address).to_eip55())
    });
    g.bench_function("cacao/eip191_hash", |b| {
        b.iter(|| eip191_hash(black_box(text.as_bytes())))
    });
    g.bench_function("cacao/address_from_key", |b| {
        b.iter(|| EthAddress::from_verifying_key(black_box(&recovered)))
    });
    g.bench_function("cacao/keccak_64", |b| {
        b.iter(|| keccak256(black_box(&[7u8; 64])))
    });
    g.bench_function("cacao/recover_eip191_full", |b| {
        b.iter(|| {
            tinycloud_auth::eth::recover_eip191(black_box(text.as_bytes()), f.cacao.signature())
                .unwrap()
        })
    });
    g.bench_function("cacao/verify_only", |b| {
        b.iter(|| black_box(&f.cacao).verify().unwrap())
    });
    g.bench_function("cacao/recap_from_resource", |b| {
        b.iter(|| Recap::from_resource(black_box(&recap_uri)).unwrap())
    });
    g.bench_function("cacao/recap_capabilities", |b| {
        b.iter(|| black_box(&recap).capabilities().unwrap())
    });
    g.bench_function("cacao/recap_statement_verify", |b| {
        b.iter(|| {
            black_box(&recap)
                .verify_statement(f.message.statement.as_deref())
                .unwrap()
        })
    });
    g.bench_function("cacao/from_cacao_info", |b| {
        b.iter(|| Delegation::from_cacao(black_box(&f.cacao).clone()).unwrap())
    });
    g.bench_function("cacao/cid_blake3", |b| {
        b.iter(|| blake3_cid(black_box(&cbor)))
    });
    g.finish();
}

/// A typed, borrowing view of a UCAN payload (what a direct deserialization would cost).
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct TypedPayload<'a> {
    #[serde(borrow)]
    iss: &'a str,
    #[serde(borrow)]
    aud: &'a str,
    exp: Option<f64>,
    nbf: Option<f64>,
    #[serde(borrow)]
    nnc: Option<&'a str>,
    #[serde(borrow, default)]
    prf: Vec<&'a str>,
    att: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, Vec<serde_json::Map<String, serde_json::Value>>>,
    >,
}

/// Any DAG-CBOR value, to time the generic CBOR decode of the CACAO.
#[derive(serde::Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum CborAny {
    Text(String),
    Int(u64),
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    List(Vec<CborAny>),
    Map(std::collections::BTreeMap<String, CborAny>),
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    bench_ed25519(c, &f);
    bench_ucan(c, &f);
    bench_secp256k1(c, &f);
    bench_cacao(c, &f);
    bench_containment(c, &f);
    if std::env::var_os("TINYCLOUD_BENCH_BREAKDOWN").is_some() {
        bench_breakdown(c, &f);
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = verify;
    config = config();
    targets = benches
}
criterion_main!(verify);
