//! Property tests of the protocol core:
//!
//! * encode → decode → encode is the identity for SIWE messages, ReCaps, CACAOs and UCANs;
//! * capability and resource containment are reflexive and transitive, and path containment
//!   is segment-aware;
//! * along any chain of registered delegations, an accepted invocation never exercises
//!   authority that the root grant or any delegation on the way lacks;
//! * the parsers never panic, and whatever they accept re-encodes faithfully.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value};

use tinycloud_auth::ability::{registry_actions, Ability};
use tinycloud_auth::cacao::Cacao;
use tinycloud_auth::capability::{att_from_capabilities, AttMap, Capability, Caveats};
use tinycloud_auth::chain::{
    validate_invocation, ChainError, ChainLookup, DelegationInfo, InvocationInfo, MemoryChain,
    DEFAULT_MAX_INVOCATION_LIFETIME_SECS,
};
use tinycloud_auth::cid::{blake3_cid, parse_cid, Cid};
use tinycloud_auth::did::{Did, DidUrl};
use tinycloud_auth::eth::{sign_eip191, EthAddress};
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::recap::Recap;
use tinycloud_auth::resource::{path_extends, Resource, SpaceId};
use tinycloud_auth::session::{self, SiweDelegationRequest};
use tinycloud_auth::siwe::{Message, MessageFields, TimeStamp};
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::token::{strip_bearer, Delegation, Invocation};
use tinycloud_auth::ucan::{Ucan, UcanBuilder};

// ------------------------------------------------------------------------------------------
// Shared helpers
// ------------------------------------------------------------------------------------------

/// A config that never writes regression files next to the sources. `PROPTEST_SCALE=<n>`
/// multiplies every case count (for occasional deeper runs).
fn cfg(cases: u32) -> ProptestConfig {
    let scale = std::env::var("PROPTEST_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    ProptestConfig {
        cases: cases.saturating_mul(scale),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);

fn wallet() -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&[0x42; 32]).expect("valid scalar")
}

fn wallet_address() -> EthAddress {
    EthAddress::from_verifying_key(wallet().verifying_key())
}

fn ed_key(seed: u8) -> SecretKey {
    SecretKey::ed25519_from_seed(&[seed; 32])
}

/// Every registered ability (aliases included), across all namespaces.
fn registry() -> Vec<Ability> {
    let mut out = Vec::new();
    for ns in [
        "tinycloud.kv",
        "tinycloud.sql",
        "tinycloud.duckdb",
        "tinycloud.capabilities",
        "tinycloud.delegation",
        "tinycloud.hooks",
        "tinycloud.encryption",
        "tinycloud.space",
        "tinycloud.vfs",
    ] {
        for name in registry_actions(ns).expect("registered namespace") {
            out.push(Ability::new(ns, name).expect("registry ability parses"));
        }
    }
    out
}

fn cap(resource: &str, ability: &str) -> Capability {
    session::capability(resource, ability).unwrap_or_else(|e| panic!("{resource} {ability}: {e}"))
}

fn caveats_of(mask: Option<u8>) -> Caveats {
    match mask {
        None => Caveats::unconstrained(),
        Some(m) => Caveats::from_objects(
            (0..4u8)
                .filter(|i| m & (1 << i) != 0)
                .map(|i| {
                    let mut o = Map::new();
                    o.insert(format!("k_{i}"), Value::from(i));
                    o
                })
                .collect(),
        ),
    }
}

fn with_caveats(mut c: Capability, mask: Option<u8>) -> Capability {
    c.caveats = caveats_of(mask);
    c
}

/// Applies character edits (replace / insert / delete / truncate) to a string.
fn mutate(s: &str, edits: &[(Index, u8, char)]) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for (at, kind, c) in edits {
        let len = chars.len();
        match kind % 4 {
            0 if len > 0 => chars[at.index(len)] = *c,
            1 => chars.insert(at.index(len + 1), *c),
            2 if len > 0 => {
                chars.remove(at.index(len));
            }
            3 => chars.truncate(at.index(len + 1)),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn mutate_bytes(b: &[u8], edits: &[(Index, u8, u8)]) -> Vec<u8> {
    let mut out = b.to_vec();
    for (at, kind, v) in edits {
        let len = out.len();
        match kind % 4 {
            0 if len > 0 => out[at.index(len)] = *v,
            1 => out.insert(at.index(len + 1), *v),
            2 if len > 0 => {
                out.remove(at.index(len));
            }
            3 if len > 0 => out[at.index(len)] ^= 1 << (v % 8),
            _ => {}
        }
    }
    out
}

fn edits() -> impl Strategy<Value = Vec<(Index, u8, char)>> {
    vec((any::<Index>(), any::<u8>(), any::<char>()), 1..4)
}

fn byte_edits() -> impl Strategy<Value = Vec<(Index, u8, u8)>> {
    vec((any::<Index>(), any::<u8>(), any::<u8>()), 1..4)
}

// ------------------------------------------------------------------------------------------
// Generators
// ------------------------------------------------------------------------------------------

fn arb_owner() -> impl Strategy<Value = Did> {
    (1u64..1_000_000, any::<[u8; 20]>())
        .prop_map(|(chain, a)| Did::pkh(chain, EthAddress::from_bytes(a)).expect("chain > 0"))
}

fn arb_space() -> impl Strategy<Value = SpaceId> {
    (arb_owner(), "[A-Za-z0-9._~-]{1,12}")
        .prop_map(|(owner, name)| SpaceId::new(owner, &name).expect("valid space name"))
}

fn arb_segment() -> impl Strategy<Value = String> {
    "[a-z0-9._~-]{1,5}".prop_filter("no dot segments", |s| s != "." && s != "..")
}

/// `None` (whole service) or a path of 0–3 segments, possibly with a trailing `/`.
fn arb_path() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        4 => (vec(arb_segment(), 0..4), any::<bool>()).prop_map(|(segs, slash)| {
            let mut p = segs.join("/");
            if slash && !p.is_empty() {
                p.push('/');
            }
            Some(p)
        }),
    ]
}

fn arb_service() -> impl Strategy<Value = &'static str> {
    select(vec![
        "kv",
        "sql",
        "duckdb",
        "hooks",
        "capabilities",
        "space",
        "vfs",
        "delegation",
    ])
}

fn arb_ability() -> impl Strategy<Value = Ability> {
    select(registry())
}

fn space_resource(space: &SpaceId, service: &str, path: Option<&str>) -> Resource {
    space
        .resource(service, path)
        .unwrap_or_else(|e| panic!("{space}/{service} {path:?}: {e}"))
}

fn arb_space_resource() -> impl Strategy<Value = Resource> {
    (
        arb_space(),
        arb_service(),
        arb_path(),
        proptest::option::of("[a-z0-9=&]{0,6}"),
        proptest::option::of("[a-z0-9]{0,6}"),
    )
        .prop_map(|(space, service, path, query, fragment)| {
            let mut s = space_resource(&space, service, path.as_deref()).to_string();
            if let Some(q) = query {
                s = format!("{s}?{q}");
            }
            if let Some(f) = fragment {
                s = format!("{s}#{f}");
            }
            s.parse::<Resource>().unwrap_or_else(|e| panic!("{s}: {e}"))
        })
}

fn arb_resource() -> impl Strategy<Value = Resource> {
    prop_oneof![
        6 => arb_space_resource(),
        1 => any::<[u8; 8]>().prop_map(|b| Resource::Cid(blake3_cid(&b))),
        1 => (arb_owner(), "[a-z0-9][a-z0-9-]{0,10}").prop_map(|(o, n)| {
            format!("urn:tinycloud:encryption:{o}:{n}").parse().expect("network id")
        }),
        1 => "https://[a-z]{1,6}\\.example(/[a-z0-9]{1,4}){0,3}"
            .prop_map(|s| s.parse::<Resource>().expect("other URI")),
    ]
}

fn arb_capability() -> impl Strategy<Value = Capability> {
    (arb_space_resource(), arb_ability()).prop_map(|(r, a)| Capability::new(r, a))
}

/// An optional set of up to four non-SQL caveat objects (`None` = unconstrained).
fn arb_caveat_mask() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![Just(None), (1u8..16).prop_map(Some)]
}

/// A caveat mask within `parent`: anything under an unconstrained parent, else a non-empty
/// subset of the parent's alternatives.
fn narrow_mask(parent: Option<u8>, pick: Option<u8>) -> Option<u8> {
    match parent {
        None => pick,
        Some(p) => {
            let m = p & pick.unwrap_or(0xff);
            Some(if m == 0 { p } else { m })
        }
    }
}

/// A path within `parent` in `service`: `segs` appended. SQL paths name whole databases, so
/// below a database name (no trailing `/`) the only path within it is itself.
fn extend_path(service: &str, parent: &Option<String>, segs: &[String]) -> Option<String> {
    let sql_database = service == "sql" && parent.as_deref().is_some_and(|p| !p.ends_with('/'));
    if segs.is_empty() || sql_database {
        return parent.clone();
    }
    let tail = segs.join("/");
    Some(match parent {
        None => tail,
        Some(p) if p.ends_with('/') => format!("{p}{tail}"),
        Some(p) => format!("{p}/{tail}"),
    })
}

fn arb_timestamp() -> impl Strategy<Value = TimeStamp> {
    prop_oneof![
        // SDK style: millisecond UTC rendering.
        (0i64..253_402_300_799_999).prop_map(|ms| {
            TimeStamp::from_datetime(Timestamp::from_millis(ms).to_datetime())
                .expect("representable")
        }),
        // Any RFC 3339 spelling: optional fraction of any length, Z or a numeric offset.
        (
            1970i32..3000,
            1u8..=12,
            1u8..=28,
            0u8..24,
            0u8..60,
            0u8..60,
            proptest::option::of("[0-9]{1,9}"),
            prop_oneof![
                Just("Z".to_owned()),
                (select(vec!['+', '-']), 0u8..24, 0u8..60)
                    .prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}")),
            ],
        )
            .prop_map(|(y, mo, d, h, mi, s, frac, off)| {
                let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
                let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}");
                TimeStamp::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
            }),
    ]
}

fn arb_uri() -> impl Strategy<Value = String> {
    prop_oneof![
        "https://[a-z]{1,10}\\.(com|org|xyz)(/[a-zA-Z0-9._~-]{0,8}){0,3}",
        any::<u8>().prop_map(|s| ed_key(s).did().verification_method().to_string()),
        any::<u8>().prop_map(|s| ed_key(s).did().to_string()),
        "urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        "ipfs://bafy[a-z2-7]{10,20}",
        "[a-z][a-z0-9+.-]{0,6}:[a-zA-Z0-9._~:@!$&'()*+,;=-][a-zA-Z0-9._~:@!$&'()*+,;=/-]{0,19}",
    ]
}

fn arb_domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9-]{0,10}(\\.[a-z]{2,6}){0,2}(:[0-9]{1,5})?",
        "[a-z]{1,6}@[a-z]{1,8}\\.com",
        "127\\.0\\.0\\.1:[0-9]{2,5}",
        "\\[::1\\](:[0-9]{2,4})?",
    ]
}

fn arb_statement() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-zA-Z0-9 :/?#\\[\\]@!$&'()*+,;=._~-]{0,80}")
}

prop_compose! {
    /// A valid EIP-4361 message. `with_scheme` allows the optional `scheme://` prefix, which
    /// CACAO does not carry.
    fn arb_message(with_scheme: bool, address: Option<EthAddress>)(
        scheme in proptest::option::of("(https|http|[a-z][a-z0-9+.-]{0,6})"),
        domain in arb_domain(),
        addr in any::<[u8; 20]>(),
        statement in arb_statement(),
        uri in arb_uri(),
        chain_id in prop_oneof![1u64..100_000, any::<u64>().prop_map(|c| c.max(1))],
        nonce in "[a-zA-Z0-9]{8,24}",
        issued_at in arb_timestamp(),
        expiration_time in proptest::option::of(arb_timestamp()),
        not_before in proptest::option::of(arb_timestamp()),
        request_id in proptest::option::of("([a-zA-Z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2}){0,12}"),
        resources in proptest::option::of(vec(arb_uri(), 0..4)),
    ) -> Message {
        let m = Message {
            scheme: if with_scheme { scheme } else { None },
            domain,
            address: address.unwrap_or(EthAddress::from_bytes(addr)),
            statement,
            uri,
            version: 1,
            chain_id,
            nonce,
            issued_at,
            expiration_time,
            not_before,
            request_id,
            resources,
        };
        m.validate().unwrap_or_else(|e| panic!("generator made an invalid message: {e}\n{m}"));
        m
    }
}

fn arb_json(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        "[\\x00-\\x1f\"\\\\]{0,4}".prop_map(Value::from),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![
        3 => leaf,
        1 => vec(arb_json(depth - 1), 0..3).prop_map(Value::Array),
        1 => arb_object(depth - 1).prop_map(Value::Object),
    ]
    .boxed()
}

fn arb_object(depth: u32) -> BoxedStrategy<Map<String, Value>> {
    btree_map("\\PC{0,8}", arb_json(depth), 0..4)
        .prop_map(|m| m.into_iter().collect())
        .boxed()
}

fn arb_cid() -> impl Strategy<Value = Cid> {
    any::<[u8; 8]>().prop_map(|b| blake3_cid(&b))
}

fn arb_recap() -> impl Strategy<Value = Recap> {
    let caveats = vec(arb_object(2), 0..3);
    let abilities = btree_map("\\PC{0,12}", caveats, 0..3);
    let att = btree_map(
        prop_oneof![arb_resource().prop_map(|r| r.to_string()), "\\PC{0,20}",],
        abilities,
        0..4,
    );
    (att, vec(arb_cid(), 0..4)).prop_map(|(att, prf)| Recap { att, prf })
}

fn arb_secret_key() -> impl Strategy<Value = SecretKey> {
    prop_oneof![
        2 => any::<[u8; 32]>().prop_map(|s| SecretKey::ed25519_from_seed(&s)),
        1 => (1u8..=0xfe).prop_map(|s| {
            SecretKey::Secp256k1(k256::ecdsa::SigningKey::from_slice(&[s; 32]).expect("scalar"))
        }),
        1 => (1u8..=0xfe).prop_map(|s| {
            SecretKey::P256(p256::ecdsa::SigningKey::from_slice(&[s; 32]).expect("scalar"))
        }),
    ]
}

fn arb_did_url() -> impl Strategy<Value = DidUrl> {
    prop_oneof![
        any::<u8>().prop_map(|s| ed_key(s).did().into()),
        any::<u8>().prop_map(|s| ed_key(s).did().verification_method()),
        (arb_owner(), proptest::option::of("[A-Za-z0-9._~:-]{1,10}")).prop_map(|(d, f)| {
            let s = match f {
                Some(f) => format!("{d}#{f}"),
                None => d.to_string(),
            };
            s.parse().expect("pkh DID URL")
        }),
    ]
}

/// Capabilities with distinct (resource, ability) pairs and duplicate-free caveat lists.
fn arb_ucan_capabilities() -> impl Strategy<Value = Vec<Capability>> {
    let caveats = prop_oneof![
        Just(Vec::new()),
        btree_set(0u8..6, 1..3).prop_map(|ks| {
            ks.into_iter()
                .map(|k| {
                    let mut o = Map::new();
                    o.insert(format!("k_{k}"), Value::from(k));
                    o
                })
                .collect()
        }),
    ];
    btree_map(
        (arb_resource(), arb_ability()).prop_map(|(r, a)| (r.to_string(), a.to_string())),
        caveats,
        0..5,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|((r, a), cav)| Capability {
                resource: r.parse().expect("resource"),
                ability: a.parse().expect("ability"),
                caveats: Caveats::from_objects(cav),
            })
            .collect()
    })
}

fn arb_numeric_time() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        (0i64..4_102_444_800).prop_map(Timestamp::from_secs),
        (0i64..4_102_444_800_000).prop_map(Timestamp::from_millis),
        // Up to year 9999.
        (0i64..253_402_300_800_000).prop_map(Timestamp::from_millis),
    ]
}

/// Whether a decoded NumericDate is the instant that was written (fractional seconds round to
/// the nearest millisecond, so millisecond instants read back exactly).
fn same_numeric_date(decoded: Option<Timestamp>, written: Option<Timestamp>) -> bool {
    decoded == written
}

#[derive(Clone, Debug)]
struct UcanSpec {
    key: SecretKey,
    fragment: bool,
    audience: DidUrl,
    nonce: String,
    nbf: Option<Timestamp>,
    exp: Option<Timestamp>,
    facts: Vec<Map<String, Value>>,
    proofs: Vec<Cid>,
    caps: Vec<Capability>,
}

impl UcanSpec {
    fn issuer(&self) -> DidUrl {
        if self.fragment {
            self.key.did().verification_method()
        } else {
            self.key.did().into()
        }
    }

    fn builder(&self) -> UcanBuilder {
        let mut b = UcanBuilder::new(self.issuer(), self.audience.clone(), self.nonce.clone())
            .capabilities(self.caps.clone());
        if let Some(t) = self.nbf {
            b = b.not_before(t);
        }
        if let Some(t) = self.exp {
            b = b.expiration(t);
        }
        for f in &self.facts {
            b = b.fact(f.clone());
        }
        for p in &self.proofs {
            b = b.proof(*p);
        }
        b
    }
}

prop_compose! {
    fn arb_ucan_spec()(
        key in arb_secret_key(),
        fragment in any::<bool>(),
        audience in arb_did_url(),
        nonce in "\\PC{0,40}",
        nbf in proptest::option::of(arb_numeric_time()),
        exp in proptest::option::of(arb_numeric_time()),
        facts in vec(arb_object(2), 0..3),
        proofs in vec(arb_cid(), 0..4),
        caps in arb_ucan_capabilities(),
    ) -> UcanSpec {
        UcanSpec { key, fragment, audience, nonce, nbf, exp, facts, proofs, caps }
    }
}

fn sorted_caps(caps: &[Capability]) -> Vec<(String, String, Caveats)> {
    let mut v: Vec<_> = caps
        .iter()
        .map(|c| {
            (
                c.resource.to_string(),
                c.ability.to_string(),
                c.caveats.clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

mod chains;
mod containment;
mod parsers;
mod roundtrips;
