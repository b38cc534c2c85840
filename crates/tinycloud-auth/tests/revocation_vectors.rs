//! The revocation scenarios of `shared/vectors/tinycloud/node/revocation/`, materialized into
//! real signed tokens and run through the pure chain validator.
//!
//! The vectors describe chains abstractly (placeholder CIDs such as `bafy.parent.A`, DIDs whose
//! keys are not published). The harness maps every placeholder DID to a real key — the
//! `did:pkh` owner `0x7e5f…5bdf` is the well-known account of private key 1, every `did:key` gets
//! a fresh Ed25519 key derived from its text — then signs: the root link as a SIWE + ReCap CACAO
//! from the owner wallet, each further link as a UCAN (terminal links carry the terminal fact),
//! and the invocation as a UCAN from the leaf's audience. Placeholder CIDs map to the real CIDs
//! of those tokens. Each delegation is registered with `MemoryChain::register` (so a refused
//! registration is an outcome too), revocations are applied, and the invocation is validated.

use std::collections::HashMap;

use serde_json::Value;
use tinycloud_auth::cacao::Cacao;
use tinycloud_auth::capability::{Capability, Caveats};
use tinycloud_auth::chain::{validate_invocation, ChainError, MemoryChain};
use tinycloud_auth::cid::{blake3_cid, Cid};
use tinycloud_auth::did::{Did, DidUrl};
use tinycloud_auth::eth::{sign_eip191, EthAddress};
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::resource::{Resource, SpaceId};
use tinycloud_auth::session::{invocation, SiweDelegationRequest};
use tinycloud_auth::sql_caveat::{check_request, SqlCaveat, SqlRequest};
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::token::{Delegation, Invocation};
use tinycloud_auth::ucan::UcanBuilder;

const NOW: i64 = 1_781_000_000;

fn load(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/vectors/tinycloud/node/revocation/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn wallet() -> k256::ecdsa::SigningKey {
    let mut b = [0u8; 32];
    b[31] = 1;
    k256::ecdsa::SigningKey::from_slice(&b).unwrap()
}

fn owner_address() -> EthAddress {
    EthAddress::from_verifying_key(wallet().verifying_key())
}

fn key_for(placeholder: &str) -> SecretKey {
    SecretKey::ed25519_from_seed(blake3::hash(placeholder.as_bytes()).as_bytes())
}

fn now() -> Timestamp {
    Timestamp::from_secs(NOW)
}

/// The capability of a vector entry, as a capability in the owner's space.
fn capability(v: &Value, with_caveats: bool) -> Capability {
    let space = SpaceId::new(
        Did::pkh(1, owner_address()).unwrap(),
        v["space"].as_str().unwrap(),
    )
    .unwrap();
    let service = v["service"]
        .as_str()
        .unwrap()
        .strip_prefix("tinycloud.")
        .unwrap();
    let resource: Resource = space
        .resource(service, Some(v["path"].as_str().unwrap()))
        .unwrap();
    let mut cap = Capability::new(resource, v["actions"][0].as_str().unwrap().parse().unwrap());
    if with_caveats {
        if let Some(c) = v["caveats"].as_object() {
            cap.caveats = Caveats::from_objects(vec![c.clone()]);
        }
    }
    cap
}

struct Materialized {
    chain: MemoryChain,
    cids: HashMap<String, Cid>,
    audience_keys: HashMap<String, SecretKey>,
    registration: Result<(), ChainError>,
}

fn materialize(chain_spec: &[Value], leaf_cap: &Value) -> Materialized {
    let mut m = Materialized {
        chain: MemoryChain::default(),
        cids: HashMap::new(),
        audience_keys: HashMap::new(),
        registration: Ok(()),
    };
    let mut previous: Option<Cid> = None;
    for entry in chain_spec {
        let placeholder_cid = entry["cid"].as_str().unwrap().to_owned();
        let issuer = entry["issuer"].as_str().unwrap();
        let audience = entry["audience"].as_str().unwrap();
        let aud_key = key_for(audience);
        m.audience_keys
            .insert(placeholder_cid.clone(), aud_key.clone());
        // Links without their own capability carry the leaf capability without caveats.
        let cap = match entry.get("capability") {
            Some(c) => capability(c, true),
            None => capability(leaf_cap, false),
        };
        let header = if issuer.starts_with("did:pkh:") {
            let issuer_did: Did = issuer.parse().unwrap();
            assert_eq!(
                issuer_did,
                Did::pkh(1, owner_address()).unwrap(),
                "owner is key 1"
            );
            let req = SiweDelegationRequest {
                domain: "app.tinycloud.xyz".into(),
                address: owner_address(),
                chain_id: 1,
                delegate: aud_key.did().verification_method().to_string(),
                nonce: "vectornonce1".into(),
                issued_at: now(),
                expiration: Some(now().plus_secs(3600)),
                not_before: None,
                capabilities: vec![Capability::new(cap.resource.clone(), cap.ability.clone())],
                parents: vec![],
                statement: None,
            };
            let msg = req.to_message().unwrap();
            let sig = sign_eip191(&wallet(), msg.to_string().as_bytes()).unwrap();
            Cacao::new(msg, sig.to_vec()).unwrap().to_header()
        } else {
            let iss_key = key_for(issuer);
            let mut b = UcanBuilder::new(
                iss_key.did().verification_method(),
                DidUrl::from(aud_key.did()),
                format!("urn:uuid:{placeholder_cid}"),
            )
            .expiration(now().plus_secs(1800))
            .capability(cap);
            if let Some(p) = previous {
                b = b.proof(p);
            }
            if entry["mode"] == "terminal" {
                b = b.terminal();
            }
            b.sign(&iss_key).unwrap().as_str().to_owned()
        };
        let delegation = Delegation::from_header(&header).expect("signed token verifies");
        assert_eq!(delegation.info().terminal, entry["mode"] == "terminal");
        let cid = delegation.cid();
        m.cids.insert(placeholder_cid, cid);
        previous = Some(cid);
        if let Err(e) = m.chain.register(delegation.into_info(), now()) {
            m.registration = Err(e);
            break;
        }
    }
    m
}

/// The capability the chain grants: the one a link carries, or — for scenarios whose links
/// carry none (the terminal-as-parent ones) — the capability used throughout the vector files.
fn leaf_capability(v: &Value) -> Value {
    v["chain"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e.get("capability").cloned())
        .unwrap_or_else(|| {
            load("leaf-revocation.json")["vectors"][0]["chain"][1]["capability"].clone()
        })
}

/// Runs one scenario; returns the outcome as accept / reject code.
fn run(v: &Value, revoked: &[String], under: &str) -> Result<Vec<Caveats>, String> {
    let leaf_cap = leaf_capability(v);
    let chain_spec = v["chain"].as_array().unwrap();
    let mut m = materialize(chain_spec, &leaf_cap);
    m.registration.clone().map_err(|e| e.code().to_owned())?;
    for r in revoked {
        let cid = m
            .cids
            .get(r)
            .copied()
            .unwrap_or_else(|| blake3_cid(r.as_bytes()));
        m.chain.revoke(cid);
    }
    let leaf_cid = m.cids[under];
    let invoker = &m.audience_keys[under];
    let inv = invocation(
        invoker,
        None,
        &[leaf_cid],
        vec![capability(&leaf_cap, false)],
        now(),
        120,
        "urn:uuid:invocation",
        vec![],
    )
    .unwrap();
    let parsed = Invocation::from_header(inv.as_str()).unwrap();
    validate_invocation(parsed.info(), &m.chain, now(), 300)
        .map(|a| a.caveats)
        .map_err(|e| e.code().to_owned())
}

fn check_file(name: &str) {
    let file = load(name);
    let vectors = file["vectors"].as_array().unwrap();
    assert!(!vectors.is_empty());
    for v in vectors {
        let case = v["name"].as_str().unwrap();
        let revoked: Vec<String> = v["revoked_cids"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        let under = v["invocation_under_cid"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| {
                v["chain"].as_array().unwrap().last().unwrap()["cid"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            });
        let outcome = run(v, &revoked, &under);
        match v["expected"].as_str().unwrap() {
            "accept" => {
                let caveats =
                    outcome.unwrap_or_else(|e| panic!("{name}/{case}: rejected with {e}"));
                // The invocation inherits the leaf's SQL caveat, which the service enforces.
                let carried = v["chain"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e.get("capability").is_some());
                if carried && leaf_capability(v).get("caveats").is_some() {
                    assert!(!caveats[0].is_unconstrained(), "{case}: caveats inherited");
                }
            }
            "reject" => assert_eq!(
                outcome.err().as_deref(),
                Some(v["rejection_code"].as_str().unwrap()),
                "{name}/{case}"
            ),
            other => panic!("unknown expectation {other}"),
        }
    }
}

#[test]
fn leaf_revocation() {
    check_file("leaf-revocation.json");
}

#[test]
fn ancestor_revocation() {
    check_file("ancestor-revocation.json");
}

#[test]
fn terminal_as_parent() {
    check_file("terminal-as-parent.json");
}

/// `native-read-denial.json`: the chain-level half of the traces (the HTTP status and SQL
/// result are the node's concern). Before revocation the named statement is authorized and the
/// inherited caveat binds its fixed parameter; after revocation every statement is refused with
/// the expected code.
#[test]
fn native_read_denial() {
    let file = load("native-read-denial.json");
    for (section, code) in [
        ("leaf_revocation_denial", "delegation-revoked"),
        ("ancestor_revocation_denial", "delegation-ancestor-revoked"),
    ] {
        let s = &file[section];
        let leaf_cap = s["leaf_capability"].clone();
        let mut v = s.clone();
        // Attach the leaf capability to the last link, as the other vector files do.
        let last = v["chain"].as_array().unwrap().len() - 1;
        v["chain"][last]["capability"] = leaf_cap.clone();
        let under = s["invocation"]["delegationCid"]
            .as_str()
            .unwrap()
            .to_owned();
        for step in s["trace"].as_array().unwrap() {
            let revoked: Vec<String> = step["engine_state"]["revoked_cids"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            let Some(expected) = step.get("expected_response") else {
                continue;
            };
            if step.get("revoke_request").is_some() {
                continue;
            }
            let outcome = run(&v, &revoked, &under);
            if expected["status"] == 200 {
                let caveats = outcome.unwrap_or_else(|e| panic!("{section}: {e}"));
                let sql = caveats[0].sql_caveats().unwrap();
                let inv = step.get("invocation_override").unwrap_or(&s["invocation"]);
                let req = SqlRequest::from_value(&serde_json::json!({
                    "action": "executeStatement",
                    "name": inv["name"],
                    "params": inv["params"],
                }))
                .unwrap();
                let sql: &SqlCaveat = &sql[0];
                check_request(sql, &req).unwrap_or_else(|e| panic!("{section}: {e}"));
            } else {
                assert_eq!(
                    outcome.err().as_deref(),
                    Some(code),
                    "{section}/{}",
                    step["step"]
                );
            }
        }
    }
}
