//! Parsers never panic, and whatever they accept re-encodes faithfully.

use super::chains::{owner_space, universe};
use super::*;

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
