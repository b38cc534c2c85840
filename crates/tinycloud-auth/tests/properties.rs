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

// ------------------------------------------------------------------------------------------
// Round trips
// ------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn siwe_text_round_trips(m in arb_message(true, None)) {
        let text = m.to_string();
        let parsed: Message = text
            .parse()
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&parsed, &m);
        prop_assert_eq!(parsed.to_string(), text.clone(), "text is stable");
        // The JSON field bag round-trips as well.
        let fields = serde_json::to_value(m.to_fields()).unwrap();
        let fields: MessageFields = serde_json::from_value(fields).unwrap();
        let back = Message::try_from(fields).unwrap();
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn recap_round_trips(r in arb_recap()) {
        let uri = r.to_resource();
        let back = Recap::from_resource(&uri)
            .map_err(|e| TestCaseError::fail(format!("{e}: {uri}")))?;
        prop_assert_eq!(&back, &r);
        prop_assert_eq!(back.to_resource(), uri.clone(), "encoding is stable");
        prop_assert_eq!(back.to_jcs(), r.to_jcs());
        // As the single ReCap among SIWE resources.
        let found = Recap::extract(&["https://a.example".to_owned(), uri]).unwrap();
        prop_assert_eq!(found, Some(r));
    }
}

proptest! {
    #![proptest_config(cfg(96))]

    #[test]
    fn cacao_round_trips(m in arb_message(false, Some(wallet_address()))) {
        let text = m.to_string();
        let sig = sign_eip191(&wallet(), text.as_bytes()).unwrap();
        let c = Cacao::new(m.clone(), sig.to_vec()).unwrap();
        let back = Cacao::from_bytes(c.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back.as_bytes(), c.as_bytes());
        prop_assert_eq!(back.message(), &m);
        prop_assert_eq!(back.message().to_string(), text);
        prop_assert_eq!(back.cid(), c.cid());
        prop_assert_eq!(back.issuer(), &Did::pkh(m.chain_id, wallet_address()).unwrap());
        prop_assert_eq!(back.signature(), &sig[..]);
        back.verify().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let via_header = Cacao::from_header(&c.to_header()).unwrap();
        prop_assert_eq!(via_header.as_bytes(), c.as_bytes());
        // Re-encoding the decoded message gives the same bytes (and so the same CID).
        let again = Cacao::new(back.message().clone(), back.signature().to_vec()).unwrap();
        prop_assert_eq!(again.as_bytes(), c.as_bytes());
    }

    #[test]
    fn ucan_round_trips_and_signing_is_deterministic(spec in arb_ucan_spec()) {
        let u = spec.builder().sign(&spec.key).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let d = Ucan::decode(u.as_str()).unwrap();
        prop_assert_eq!(d.as_str(), u.as_str());
        prop_assert_eq!(d.issuer(), &spec.issuer());
        prop_assert_eq!(d.audience(), &spec.audience);
        let (nbf, exp) = (d.not_before(), d.expiration());
        prop_assert!(same_numeric_date(nbf, spec.nbf), "nbf {:?} != {:?}", nbf, spec.nbf);
        prop_assert!(same_numeric_date(exp, spec.exp), "exp {:?} != {:?}", exp, spec.exp);
        prop_assert_eq!(d.nonce(), Some(spec.nonce.as_str()));
        prop_assert_eq!(d.proofs(), &spec.proofs[..]);
        prop_assert_eq!(d.facts(), &spec.facts[..]);
        prop_assert_eq!(sorted_caps(d.capabilities()), sorted_caps(&spec.caps));
        prop_assert_eq!(d.att(), &att_from_capabilities(&spec.caps));
        prop_assert_eq!(d.cid(), blake3_cid(u.as_str().as_bytes()));
        d.verify_signature().map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Deterministic signatures (Ed25519; RFC 6979 for ECDSA): same builder, same CID.
        let again = spec.builder().sign(&spec.key).unwrap();
        prop_assert_eq!(again.as_str(), u.as_str());
        prop_assert_eq!(again.cid(), u.cid());
    }
}

// ------------------------------------------------------------------------------------------
// Containment
// ------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------
// Chains: a child never gains authority its parents lack
// ------------------------------------------------------------------------------------------

const OWNER_ADDR: &str = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";
const FOREIGN_ADDR: &str = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF";

fn owner_space() -> SpaceId {
    SpaceId::new(Did::pkh(1, wallet_address()).unwrap(), "default").unwrap()
}

/// Capabilities in the owner's space, with nested paths and related abilities.
fn universe(space: &SpaceId) -> Vec<Capability> {
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

// ------------------------------------------------------------------------------------------
// Parsers never panic
// ------------------------------------------------------------------------------------------

struct Samples {
    jwt: String,
    cacao_header: String,
    cacao_bytes: Vec<u8>,
    siwe: String,
    recap: String,
}

fn samples() -> &'static Samples {
    static S: OnceLock<Samples> = OnceLock::new();
    S.get_or_init(|| {
        let space = owner_space();
        let caps = universe(&space);
        let req = SiweDelegationRequest {
            domain: session::DEFAULT_DOMAIN.into(),
            address: wallet_address(),
            chain_id: 1,
            delegate: ed_key(1).did().verification_method().to_string(),
            nonce: "samplenonce1".into(),
            issued_at: NOW,
            expiration: Some(NOW.plus_secs(3600)),
            not_before: Some(NOW),
            capabilities: caps[..6].to_vec(),
            parents: vec![blake3_cid(b"parent")],
            statement: Some("Sign in to the app.".into()),
        };
        let msg = req.to_message().unwrap();
        let sig = sign_eip191(&wallet(), msg.to_string().as_bytes()).unwrap();
        let cacao = Cacao::new(msg.clone(), sig.to_vec()).unwrap();
        let jwt = session::invocation(
            &ed_key(1),
            None,
            &[cacao.cid()],
            caps[..2].to_vec(),
            NOW,
            60,
            "n",
            vec![],
        )
        .unwrap()
        .as_str()
        .to_owned();
        Samples {
            jwt,
            cacao_header: cacao.to_header(),
            cacao_bytes: cacao.as_bytes().to_vec(),
            siwe: msg.to_string(),
            recap: msg.resources.as_ref().unwrap()[0].clone(),
        }
    })
}

/// Arbitrary text, text shaped like the thing being parsed, and small edits of valid input.
fn fuzz_text(prefixes: &'static [&'static str], valid: String) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        (select(prefixes), "\\PC{0,40}").prop_map(|(p, s)| format!("{p}{s}")),
        (select(prefixes), "[ -~]{0,40}").prop_map(|(p, s)| format!("{p}{s}")),
        edits().prop_map(move |e| mutate(&valid, &e)),
    ]
}

fn b64_json_part() -> impl Strategy<Value = String> {
    prop_oneof![
        arb_json(2).prop_map(|v| URL_SAFE_NO_PAD.encode(v.to_string())),
        arb_object(2).prop_map(|m| URL_SAFE_NO_PAD.encode(Value::Object(m).to_string())),
        "[A-Za-z0-9_-]{0,20}",
    ]
}

/// UCAN-shaped strings: three base64url parts with header/payload fields of the right names
/// but random values.
fn ucan_shaped() -> impl Strategy<Value = String> {
    let header = prop_oneof![
        Just(r#"{"alg":"EdDSA","typ":"JWT","ucv":"0.10.0"}"#.to_owned()),
        arb_json(1).prop_map(|v| format!(r#"{{"alg":{v},"typ":"JWT","ucv":"0.10.0"}}"#)),
    ];
    let payload = (
        select(vec!["iss", "aud", "exp", "nbf", "nnc", "fct", "prf", "att"]),
        arb_json(2),
    )
        .prop_map(|(k, v)| {
            let s = &samples().jwt;
            let p = s.split('.').nth(1).unwrap();
            let mut obj: Map<String, Value> =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
            obj.insert(k.to_owned(), v);
            Value::Object(obj).to_string()
        });
    (header, payload, b64_json_part()).prop_map(|(h, p, s)| {
        format!(
            "{}.{}.{s}",
            URL_SAFE_NO_PAD.encode(h),
            URL_SAFE_NO_PAD.encode(p)
        )
    })
}

proptest! {
    #![proptest_config(cfg(300))]

    #[test]
    fn ucan_decode_never_panics(s in prop_oneof![
        fuzz_text(&["", "e30.", "a.b.c"], samples().jwt.clone()),
        ucan_shaped(),
        (b64_json_part(), b64_json_part(), b64_json_part())
            .prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
    ]) {
        if let Ok(u) = Ucan::decode(&s) {
            prop_assert_eq!(u.as_str(), s.as_str());
            let again = Ucan::decode(u.as_str()).unwrap();
            prop_assert_eq!(again.capabilities(), u.capabilities());
            let _ = u.verify_signature();
        }
        if let Ok(i) = Invocation::from_header(&s) {
            prop_assert_eq!(i.ucan().as_str(), strip_bearer(&s));
            let _ = i.revocation_target();
        }
        if let Ok(d) = Delegation::from_header(&s) {
            prop_assert_eq!(d.to_header(), strip_bearer(&s));
        }
    }

    #[test]
    fn cacao_decode_never_panics(b in prop_oneof![
        vec(any::<u8>(), 0..512),
        byte_edits().prop_map(|e| mutate_bytes(&samples().cacao_bytes, &e)),
    ]) {
        if let Ok(c) = Cacao::from_bytes(&b) {
            prop_assert_eq!(c.as_bytes(), &b[..]);
            prop_assert_eq!(c.cid(), blake3_cid(&b));
            let reparsed: Message = c.message().to_string().parse().unwrap();
            prop_assert_eq!(&reparsed, c.message());
            let _ = c.verify();
            let _ = Delegation::from_cacao(c);
        }
        let header = URL_SAFE.encode(&b);
        if let Ok(d) = Delegation::from_header(&header) {
            prop_assert_eq!(d.to_header(), header);
        }
    }

    #[test]
    fn token_headers_never_panic(s in prop_oneof![
        fuzz_text(&["", "Bearer ", " Bearer  "], samples().cacao_header.clone()),
        fuzz_text(&["Bearer "], samples().jwt.clone()),
    ]) {
        if let Ok(d) = Delegation::from_header(&s) {
            prop_assert_eq!(d.to_header(), strip_bearer(&s));
            let _ = d.spaces();
        }
        if let Ok(i) = Invocation::from_header(&s) {
            prop_assert_eq!(i.ucan().as_str(), strip_bearer(&s));
        }
    }

    #[test]
    fn recap_decode_never_panics(s in prop_oneof![
        fuzz_text(&["urn:recap:", "urn:recap:ey", ""], samples().recap.clone()),
        arb_json(3).prop_map(|v| format!("urn:recap:{}", URL_SAFE_NO_PAD.encode(v.to_string()))),
        (arb_json(2), arb_json(2)).prop_map(|(a, p)| format!(
            "urn:recap:{}",
            URL_SAFE_NO_PAD.encode(serde_json::json!({"att": a, "prf": p}).to_string())
        )),
    ]) {
        if let Ok(r) = Recap::from_resource(&s) {
            let again = Recap::from_resource(&r.to_resource()).unwrap();
            prop_assert_eq!(&again, &r);
            let _ = r.capabilities();
            let _ = r.verify_statement(Some(&r.statement()));
            prop_assert!(r.verify_statement(Some(&r.statement())).is_ok());
        }
    }

    #[test]
    fn resource_parse_never_panics(s in fuzz_text(
        &[
            "tinycloud:",
            "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:",
            "tinycloud:key:z6Mk",
            "urn:cid:",
            "urn:tinycloud:encryption:",
            "urn:tinycloud:encryption:did:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:",
            "x:",
        ],
        format!("{}/kv/a/b?q#f", owner_space()),
    )) {
        if let Ok(r) = s.parse::<Resource>() {
            let again: Resource = r.to_string().parse().unwrap();
            prop_assert_eq!(&again, &r);
            prop_assert!(r.extends(&r));
            let _ = r.root_owner();
        }
        if let Ok(sp) = s.parse::<SpaceId>() {
            prop_assert_eq!(sp.to_string().parse::<SpaceId>().unwrap(), sp);
        }
    }

    #[test]
    fn did_url_parse_never_panics(s in fuzz_text(
        &[
            "did:",
            "did:key:z",
            "did:key:z6Mk",
            "did:key:zQ3s",
            "did:key:zDn",
            "did:pkh:eip155:",
            "did:pkh:eip155:1:0x",
        ],
        ed_key(3).did().verification_method().to_string(),
    )) {
        if let Ok(d) = s.parse::<DidUrl>() {
            let again: DidUrl = d.to_string().parse().unwrap();
            prop_assert_eq!(&again, &d);
            prop_assert_eq!(again.to_string(), d.to_string());
        }
        if let Ok(d) = s.parse::<Did>() {
            prop_assert_eq!(d.to_string().parse::<Did>().unwrap(), d);
        }
        let _ = parse_cid(&s);
        let _ = s.parse::<Ability>();
    }

    #[test]
    fn siwe_parse_never_panics(s in fuzz_text(
        &["", "a.example wants you to sign in with your Ethereum account:\n"],
        samples().siwe.clone(),
    )) {
        if let Ok(m) = s.parse::<Message>() {
            // Whatever parses re-renders byte for byte.
            prop_assert_eq!(m.to_string(), s);
            let _ = m.verify_eip191(&[0u8; 65]);
        }
    }
}

/// The samples themselves are valid (so that their mutations are near misses, not noise).
#[test]
fn fuzz_samples_are_valid() {
    let s = samples();
    Invocation::from_header(&s.jwt).unwrap();
    Delegation::from_header(&s.cacao_header).unwrap();
    assert_eq!(s.siwe.parse::<Message>().unwrap().to_string(), s.siwe);
    Recap::from_resource(&s.recap).unwrap();
    let att: AttMap = Recap::from_resource(&s.recap).unwrap().att;
    assert_eq!(att.len(), 2);
}
