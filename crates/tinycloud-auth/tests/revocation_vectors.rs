//! Revocation and terminal-link scenarios (`tests/vectors/tinycloud/revocation/`), built into
//! real signed tokens and run through the pure chain validator.
//!
//! A scenario names its principals; the harness gives each a key: `owner` is an Ethereum
//! wallet (secp256k1 key = BLAKE3 of `tinycloud vectors: owner`), every other name an Ed25519
//! key (seed = BLAKE3 of `tinycloud vectors: <name>`). The first link is the owner's SIWE +
//! ReCap sign-in (a CACAO), each further link a UCAN citing the previous one (terminal links
//! carry the terminal fact), and the invocation a UCAN from the audience of the link it is
//! invoked under. Every link grants the file's `grant` capability; links marked `caveats` carry
//! its caveats too. Each step builds the chain afresh, registers it with
//! `MemoryChain::register` (a refused registration is an outcome too), revokes the step's
//! links — a name that is no link of the chain stands for an unrelated token — and validates
//! the invocation.

use tinycloud_testkit::vectors as support;

use std::collections::HashMap;

use serde_json::{json, Value};
use tinycloud_auth::cacao::Cacao;
use tinycloud_auth::capability::{Capability, Caveats};
use tinycloud_auth::chain::{validate_invocation, ChainError, MemoryChain};
use tinycloud_auth::cid::{blake3_cid, Cid};
use tinycloud_auth::did::{Did, DidUrl};
use tinycloud_auth::eth::{sign_eip191, EthAddress};
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::{invocation, SiweDelegationRequest};
use tinycloud_auth::sql_caveat::{check_request, Authorized, SqlRequest};
use tinycloud_auth::timestamp::Timestamp;
use tinycloud_auth::token::{Delegation, Invocation};
use tinycloud_auth::ucan::UcanBuilder;

const NOW: i64 = 1_790_000_000;

fn now() -> Timestamp {
    Timestamp::from_secs(NOW)
}

fn seed(name: &str) -> [u8; 32] {
    *blake3::hash(format!("tinycloud vectors: {name}").as_bytes()).as_bytes()
}

fn wallet() -> k256::ecdsa::SigningKey {
    k256::ecdsa::SigningKey::from_slice(&seed("owner")).expect("valid secp256k1 key")
}

fn owner() -> EthAddress {
    EthAddress::from_verifying_key(wallet().verifying_key())
}

fn key(name: &str) -> SecretKey {
    assert_ne!(name, "owner", "the owner signs with its wallet");
    SecretKey::ed25519_from_seed(&seed(name))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing `{key}` in {v}"))
}

/// The file's grant as a capability in the owner's space, with or without its caveats.
fn grant(file: &Value, with_caveats: bool) -> Capability {
    let g = &file["grant"];
    let space = SpaceId::new(Did::pkh(1, owner()).unwrap(), text(g, "space")).unwrap();
    let service = text(g, "service").strip_prefix("tinycloud.").unwrap();
    let resource = space.resource(service, Some(text(g, "path"))).unwrap();
    let mut cap = Capability::new(resource, text(g, "action").parse().unwrap());
    if with_caveats {
        let caveats = g["caveats"].as_object().expect("grant caveats").clone();
        cap.caveats = Caveats::from_objects(vec![caveats]);
    }
    cap
}

/// A chain registered in a `MemoryChain`, with the CID of each link by its name.
struct Built {
    chain: MemoryChain,
    cids: HashMap<String, Cid>,
    registration: Result<(), ChainError>,
}

fn build(file: &Value, links: &[Value]) -> Built {
    let mut built = Built {
        chain: MemoryChain::default(),
        cids: HashMap::new(),
        registration: Ok(()),
    };
    let mut parent: Option<Cid> = None;
    for (i, link) in links.iter().enumerate() {
        let (id, issuer, audience) = (
            text(link, "id"),
            text(link, "issuer"),
            text(link, "audience"),
        );
        let terminal = link["terminal"] == true;
        let header = if i == 0 {
            assert_eq!(
                issuer, "owner",
                "{id}: the first link is the owner's sign-in"
            );
            let cap = grant(file, false);
            let msg = SiweDelegationRequest {
                domain: "pantry.example".into(),
                address: owner(),
                chain_id: 1,
                delegate: key(audience).did().verification_method().to_string(),
                nonce: "pantryvectors7".into(),
                issued_at: now(),
                expiration: Some(now().plus_secs(7200)),
                not_before: None,
                capabilities: vec![cap],
                parents: vec![],
                statement: None,
            }
            .to_message()
            .unwrap();
            let sig = sign_eip191(&wallet(), msg.to_string().as_bytes()).unwrap();
            Cacao::new(msg, sig.to_vec()).unwrap().to_header()
        } else {
            let signer = key(issuer);
            let mut b = UcanBuilder::new(
                signer.did().verification_method(),
                DidUrl::from(key(audience).did()),
                format!("urn:uuid:vectors-{id}"),
            )
            .expiration(now().plus_secs(3600))
            .capability(grant(file, link["caveats"] == true));
            if let Some(p) = parent {
                b = b.proof(p);
            }
            if terminal {
                b = b.terminal();
            }
            b.sign(&signer).unwrap().as_str().to_owned()
        };
        let delegation = Delegation::from_header(&header).expect("a signed link verifies");
        assert_eq!(delegation.info().terminal, terminal, "{id}: terminal fact");
        let cid = delegation.cid();
        built.cids.insert(id.to_owned(), cid);
        parent = Some(cid);
        if let Err(e) = built.chain.register(delegation.into_info(), now()) {
            built.registration = Err(e);
            break;
        }
    }
    built
}

/// The outcome of invoking the grant under `under` with `revoked` revoked: the caveats the
/// invocation inherits, or the refusal code.
fn invoke(file: &Value, scenario: &Value, revoked: &[Value]) -> Result<Vec<Caveats>, String> {
    let links = scenario["links"].as_array().expect("links");
    let under = text(scenario, "invoke_under");
    let mut built = build(file, links);
    built
        .registration
        .clone()
        .map_err(|e| e.code().to_owned())?;
    for name in revoked {
        let name = name.as_str().expect("revoked names");
        let cid = built
            .cids
            .get(name)
            .copied()
            .unwrap_or_else(|| blake3_cid(name.as_bytes()));
        built.chain.revoke(cid);
    }
    let link = links
        .iter()
        .find(|l| l["id"] == under)
        .unwrap_or_else(|| panic!("no link {under}"));
    let inv = invocation(
        &key(text(link, "audience")),
        None,
        &[built.cids[under]],
        vec![grant(file, false)],
        now(),
        120,
        "urn:uuid:vectors-invocation",
        vec![],
    )
    .unwrap();
    let parsed = Invocation::from_header(inv.as_str()).unwrap();
    validate_invocation(parsed.info(), &built.chain, now(), 300)
        .map(|a| a.caveats)
        .map_err(|e| e.code().to_owned())
}

fn check_file(name: &str) {
    let rel = format!("tinycloud/revocation/{name}");
    let file = support::json(&rel);
    for scenario in support::cases(&rel, "scenarios") {
        let id = support::id(&scenario);
        let caveated = scenario["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["caveats"] == true);
        let steps = scenario["steps"].as_array().expect("steps");
        assert!(!steps.is_empty(), "{name}/{id}: no steps");
        for (n, step) in steps.iter().enumerate() {
            let at = format!("{name}/{id} step {n}");
            let revoked = step["revoked"].as_array().expect("revoked");
            let outcome = invoke(&file, &scenario, revoked);
            match (text(step, "expect"), outcome) {
                ("allowed", Ok(caveats)) => {
                    // The invocation inherits the caveat of the link that covers it.
                    assert_eq!(caveats.len(), 1, "{at}");
                    assert_eq!(!caveats[0].is_unconstrained(), caveated, "{at}: caveats");
                    if let Some(statement) = step["statement"].as_str() {
                        let sql = caveats[0].sql_caveats().expect("SQL caveat");
                        let call = json!({"action": "executeStatement", "name": statement});
                        let out = check_request(&sql[0], &SqlRequest::from_value(&call).unwrap())
                            .unwrap_or_else(|e| panic!("{at}: {statement} refused: {e}"));
                        let Authorized::Statement(bound) = out else {
                            panic!("{at}: no bound statement");
                        };
                        assert_eq!(Value::from(bound.params), step["binds"], "{at}: binds");
                    }
                }
                (want, Err(code)) if want == code => {}
                (want, got) => panic!("{at}: expected {want}, got {got:?}"),
            }
        }
    }
}

#[test]
fn leaf_revocation() {
    check_file("leaf.json");
}

#[test]
fn ancestor_revocation() {
    check_file("ancestor.json");
}

#[test]
fn terminal_links() {
    check_file("terminal.json");
}

/// Named-statement reads under an inherited caveat, before and after a revocation.
#[test]
fn statement_reads_stop_after_revocation() {
    check_file("statement-reads.json");
}
