//! One test per rule of the authorization door, each built so that it fails when its rule is
//! removed: a real temporary SQLite index, a SIWE root signed by a wallet key, UCAN
//! sub-delegations and invocations built through `tinycloud_auth` as a client builds them.

use std::sync::Arc;

use tinycloud_auth::cacao::Cacao;
use tinycloud_auth::capability::{Capability, Caveat, Caveats};
use tinycloud_auth::chain::ChainError;
use tinycloud_auth::cid::{blake3_cid, Cid};
use tinycloud_auth::did::{Did, DidUrl};
use tinycloud_auth::eth::{sign_eip191, EthAddress};
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::{capability, invocation, SiweDelegationRequest};
use tinycloud_auth::ucan::UcanBuilder;

use super::*;
use crate::store::sqlite::SqliteIndex;

/// The invocation lifetime cap of these tests.
const MAX_LIFETIME: i64 = 300;

struct Fixture {
    _dir: tempfile::TempDir,
    index: Arc<dyn IndexStore>,
    auth: Authorizer,
    space: SpaceId,
    /// The session key the wallet signed in.
    session: SecretKey,
    /// The SIWE root delegation (wallet → session).
    root: Cid,
    now: Timestamp,
}

fn key(n: u8) -> SecretKey {
    SecretKey::ed25519_from_seed(&[n; 32])
}

fn wallet() -> k256::ecdsa::SigningKey {
    let mut b = [0u8; 32];
    b[0] = 0x11;
    b[31] = 7;
    k256::ecdsa::SigningKey::from_slice(&b).expect("valid scalar")
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Fixture {
    /// The owner signs in a session with KV get/put on `kv/notes` and SQL read on `sql`.
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = SqliteIndex::open(&dir.path().join("index.db")).expect("index");
        let index: Arc<dyn IndexStore> = Arc::new(sqlite);
        let auth = Authorizer::new(index.clone(), MAX_LIFETIME)
            .await
            .expect("authorizer");
        let w = wallet();
        let address = EthAddress::from_verifying_key(w.verifying_key());
        let owner = Did::pkh(1, address).expect("did");
        let space = SpaceId::new(owner, "default").expect("space");
        let session = key(1);
        let now = crate::clock::now();
        let mut f = Fixture {
            _dir: dir,
            index,
            auth,
            space,
            session,
            root: blake3_cid(b"placeholder"),
            now,
        };
        let caps = vec![
            f.cap("kv/notes", "tinycloud.kv/get"),
            f.cap("kv/notes", "tinycloud.kv/put"),
            f.cap("sql", "tinycloud.sql/read"),
        ];
        let req = SiweDelegationRequest {
            domain: "app.tinycloud.xyz".into(),
            address,
            chain_id: 1,
            delegate: f.session.did().verification_method().to_string(),
            nonce: nonce(),
            issued_at: now,
            expiration: Some(now.plus_secs(3600)),
            not_before: None,
            capabilities: caps,
            parents: vec![],
            statement: None,
        };
        let msg = req.to_message().expect("siwe");
        let sig = sign_eip191(&w, msg.to_string().as_bytes()).expect("sign");
        let header = Cacao::new(msg, sig.to_vec()).expect("cacao").to_header();
        f.root = f.register(&header).await.expect("root registers");
        f
    }

    fn res(&self, path: &str) -> String {
        format!("{}/{path}", self.space)
    }

    fn cap(&self, path: &str, ability: &str) -> Capability {
        capability(&self.res(path), ability).expect("capability")
    }

    /// Checks and stores a delegation header, as `/delegate` does.
    async fn register(&self, header: &str) -> Result<Cid, AuthError> {
        let d = self.auth.check_delegation(header, self.now).await?;
        self.auth.store_delegation(&d, vec![], self.now).await?;
        Ok(d.cid())
    }

    /// A UCAN delegation from `from` to `to` citing `proofs`, valid for an hour.
    fn ucan(&self, from: &SecretKey, to: &Did, proofs: &[Cid], caps: Vec<Capability>) -> String {
        let mut b = UcanBuilder::new(
            from.did().verification_method(),
            DidUrl::from(to.clone()),
            nonce(),
        )
        .expiration(self.now.plus_secs(1800))
        .capabilities(caps);
        for p in proofs {
            b = b.proof(*p);
        }
        b.sign(from).expect("sign").as_str().to_owned()
    }

    /// An invocation by `by` citing `proofs`, issued at `at` for `ttl` seconds.
    fn invoke_at(
        &self,
        by: &SecretKey,
        proofs: &[Cid],
        caps: Vec<Capability>,
        at: Timestamp,
        ttl: i64,
    ) -> String {
        invocation(by, None, proofs, caps, at, ttl, &nonce(), vec![])
            .expect("invocation")
            .as_str()
            .to_owned()
    }

    /// The session invokes `caps` under the root, for a minute.
    fn invoke(&self, caps: Vec<Capability>) -> String {
        self.invoke_at(&self.session, &[self.root], caps, self.now, 60)
    }

    async fn authorize(&self, header: &str) -> Result<AuthorizedInvocation, AuthError> {
        self.auth.authorize(header, self.now).await
    }

    /// The session delegates `caps` to `agent` (under the root).
    async fn delegate_to(&self, agent: &SecretKey, caps: Vec<Capability>) -> Cid {
        let h = self.ucan(&self.session, &agent.did(), &[self.root], caps);
        self.register(&h).await.expect("sub-delegation registers")
    }

    async fn revoke(&self, cid: &Cid) {
        let info = self
            .auth
            .delegation(cid)
            .await
            .expect("lookup")
            .expect("stored");
        self.auth
            .revoke(&info, "test", self.now)
            .await
            .expect("revoke");
    }
}

fn chain_err(r: Result<impl std::fmt::Debug, AuthError>) -> ChainError {
    match r {
        Err(AuthError::Chain(e)) => *e,
        other => panic!("expected a chain refusal, got {other:?}"),
    }
}

/// Replaces one character in the middle of the last (signature) segment of a JWT.
fn tamper_signature(jwt: &str) -> String {
    let cut = jwt.rfind('.').expect("a JWT") + 10;
    let mut s = jwt.to_owned();
    let c = if &s[cut..=cut] == "A" { "B" } else { "A" };
    s.replace_range(cut..=cut, c);
    s
}

#[tokio::test]
async fn a_valid_chain_is_authorized() {
    let f = Fixture::new().await;
    let ok = f
        .authorize(&f.invoke(vec![f.cap("kv/notes/a", "tinycloud.kv/get")]))
        .await
        .expect("authorized");
    assert_eq!(ok.authorized.caveats.len(), 1);
    assert!(ok.authorized.caveats[0].is_unconstrained());
}

#[tokio::test]
async fn signature_invocation_with_a_bad_signature_is_unverified() {
    let f = Fixture::new().await;
    let good = f.invoke(vec![f.cap("kv/notes/a", "tinycloud.kv/get")]);
    let bad = tamper_signature(&good);
    assert!(matches!(
        f.authorize(&bad).await,
        Err(AuthError::Unverified(_))
    ));
    // A well-formed signature by another key, spliced onto the session's header and payload.
    let other = f.invoke_at(
        &key(9),
        &[],
        vec![f.cap("kv/notes/a", "tinycloud.kv/get")],
        f.now,
        60,
    );
    let (signed, _) = good.rsplit_once('.').expect("a JWT");
    let (_, sig) = other.rsplit_once('.').expect("a JWT");
    let forged = format!("{signed}.{sig}");
    assert!(matches!(
        f.authorize(&forged).await,
        Err(AuthError::Unverified(_))
    ));
    f.authorize(&good)
        .await
        .expect("the untouched token passes");
}

#[tokio::test]
async fn signature_delegation_with_a_bad_signature_is_unverified() {
    let f = Fixture::new().await;
    let agent = key(2);
    let h = f.ucan(
        &f.session,
        &agent.did(),
        &[f.root],
        vec![f.cap("kv/notes", "tinycloud.kv/get")],
    );
    assert!(matches!(
        f.auth.check_delegation(&tamper_signature(&h), f.now).await,
        Err(AuthError::Unverified(_))
    ));
}

#[tokio::test]
async fn expired_invocation_is_refused_at_decode() {
    let f = Fixture::new().await;
    let h = f.invoke_at(
        &f.session,
        &[f.root],
        vec![f.cap("kv/notes/a", "tinycloud.kv/get")],
        f.now.plus_secs(-120),
        60,
    );
    assert!(matches!(
        f.auth.decode_invocation(&h, f.now).map(|_| ()),
        Err(AuthError::Chain(e)) if *e == ChainError::Expired
    ));
}

#[tokio::test]
async fn not_yet_valid_invocation_is_refused_at_decode() {
    let f = Fixture::new().await;
    let h = UcanBuilder::new(
        f.session.did().verification_method(),
        DidUrl::from(f.session.did()),
        nonce(),
    )
    .not_before(f.now.plus_secs(30))
    .expiration(f.now.plus_secs(60))
    .proof(f.root)
    .capabilities(vec![f.cap("kv/notes/a", "tinycloud.kv/get")])
    .sign(&f.session)
    .expect("sign");
    assert!(matches!(
        f.auth.decode_invocation(h.as_str(), f.now).map(|_| ()),
        Err(AuthError::Chain(e)) if *e == ChainError::NotYetValid
    ));
}

#[tokio::test]
async fn invocation_expired_after_decoding_is_refused_by_the_chain_check() {
    let f = Fixture::new().await;
    let h = f.invoke(vec![f.cap("kv/notes/a", "tinycloud.kv/get")]);
    let inv = f.auth.decode_invocation(&h, f.now).expect("decodes now");
    let later = f.now.plus_secs(61);
    assert_eq!(
        chain_err(f.auth.validate(&inv, later).await),
        ChainError::Expired
    );
}

#[tokio::test]
async fn lifetime_cap_refuses_long_lived_and_unbounded_invocations() {
    let f = Fixture::new().await;
    let caps = vec![f.cap("kv/notes/a", "tinycloud.kv/get")];
    let long = f.invoke_at(&f.session, &[f.root], caps.clone(), f.now, MAX_LIFETIME + 5);
    assert!(matches!(
        chain_err(f.authorize(&long).await),
        ChainError::LifetimeTooLong {
            max_secs: MAX_LIFETIME
        }
    ));
    let unbounded = UcanBuilder::new(
        f.session.did().verification_method(),
        DidUrl::from(f.session.did()),
        nonce(),
    )
    .proof(f.root)
    .capabilities(caps)
    .sign(&f.session)
    .expect("sign");
    assert!(matches!(
        chain_err(f.authorize(unbounded.as_str()).await),
        ChainError::LifetimeTooLong { .. }
    ));
}

#[tokio::test]
async fn replay_second_use_is_refused_also_after_a_restart() {
    let f = Fixture::new().await;
    let h = f.invoke(vec![f.cap("kv/notes/a", "tinycloud.kv/get")]);
    f.authorize(&h).await.expect("first use");
    assert!(matches!(f.authorize(&h).await, Err(AuthError::Replay)));
    // A fresh door over the same index (a restart) still remembers the use.
    let restarted = Authorizer::new(f.index.clone(), MAX_LIFETIME)
        .await
        .expect("authorizer");
    assert!(matches!(
        restarted.authorize(&h, f.now).await,
        Err(AuthError::Replay)
    ));
}

#[tokio::test]
async fn chain_link_invoker_must_be_the_delegatee() {
    let f = Fixture::new().await;
    let stranger = key(3);
    let h = f.invoke_at(
        &stranger,
        &[f.root],
        vec![f.cap("kv/notes/a", "tinycloud.kv/get")],
        f.now,
        60,
    );
    assert!(matches!(
        chain_err(f.authorize(&h).await),
        ChainError::InvokerMismatch(_)
    ));
}

#[tokio::test]
async fn chain_link_delegation_issuer_must_be_the_parents_delegatee() {
    let f = Fixture::new().await;
    let stranger = key(3);
    let h = f.ucan(
        &stranger,
        &key(4).did(),
        &[f.root],
        vec![f.cap("kv/notes", "tinycloud.kv/get")],
    );
    assert!(matches!(
        chain_err(f.auth.check_delegation(&h, f.now).await),
        ChainError::DelegateeMismatch(_)
    ));
}

#[tokio::test]
async fn revocation_of_the_cited_delegation_is_effective_and_durable() {
    let f = Fixture::new().await;
    let caps = || vec![f.cap("kv/notes/a", "tinycloud.kv/get")];
    f.revoke(&f.root).await;
    assert!(matches!(
        chain_err(f.authorize(&f.invoke(caps())).await),
        ChainError::Revoked(c) if c == f.root
    ));
    // A restarted door loads the revocation from the index.
    let restarted = Authorizer::new(f.index.clone(), MAX_LIFETIME)
        .await
        .expect("authorizer");
    assert!(matches!(
        chain_err(restarted.authorize(&f.invoke(caps()), f.now).await),
        ChainError::Revoked(_)
    ));
}

#[tokio::test]
async fn revocation_covers_every_encoding_of_the_authority() {
    let f = Fixture::new().await;
    f.revoke(&f.root).await;
    let info = f
        .auth
        .delegation(&f.root)
        .await
        .expect("lookup")
        .expect("stored");
    let mut other_encoding = (*info).clone();
    other_encoding.cid = blake3_cid(b"another encoding of the same signed content");
    assert!(f.auth.is_delegation_revoked(&other_encoding));
}

#[tokio::test]
async fn revocation_of_an_ancestor_is_effective() {
    let f = Fixture::new().await;
    let agent = key(2);
    let sub = f
        .delegate_to(&agent, vec![f.cap("kv/notes", "tinycloud.kv/get")])
        .await;
    let caps = || vec![f.cap("kv/notes/a", "tinycloud.kv/get")];
    let inv = || f.invoke_at(&agent, &[sub], caps(), f.now, 60);
    f.authorize(&inv()).await.expect("the agent acts before");
    f.revoke(&f.root).await;
    assert!(matches!(
        chain_err(f.authorize(&inv()).await),
        ChainError::AncestorRevoked { ancestor, via } if ancestor == f.root && via == sub
    ));
    // Nor can the agent's authority be extended further.
    let h = f.ucan(&agent, &key(5).did(), &[sub], caps());
    assert!(matches!(
        chain_err(f.auth.check_delegation(&h, f.now).await),
        ChainError::AncestorRevoked { .. }
    ));
    // A standing subscription under it ends.
    assert!(f.auth.proofs_still_valid(&[sub], f.now).await.is_err());
}

#[tokio::test]
async fn containment_invocation_beyond_the_delegation_is_refused() {
    let f = Fixture::new().await;
    let agent = key(2);
    let sub = f
        .delegate_to(&agent, vec![f.cap("kv/notes/a", "tinycloud.kv/get")])
        .await;
    for cap in [
        f.cap("kv/notes/a", "tinycloud.kv/put"), // ability not delegated
        f.cap("kv/notes/b", "tinycloud.kv/get"), // resource outside
        f.cap("kv", "tinycloud.kv/get"),         // wider resource
    ] {
        let h = f.invoke_at(&agent, &[sub], vec![cap.clone()], f.now, 60);
        assert!(
            matches!(
                chain_err(f.authorize(&h).await),
                ChainError::NotCovered { .. }
            ),
            "{cap}"
        );
    }
}

#[tokio::test]
async fn containment_delegation_beyond_the_parent_is_refused() {
    let f = Fixture::new().await;
    let h = f.ucan(
        &f.session,
        &key(2).did(),
        &[f.root],
        vec![f.cap("kv/notes", "tinycloud.kv/del")],
    );
    assert!(matches!(
        chain_err(f.auth.check_delegation(&h, f.now).await),
        ChainError::NotCovered { .. }
    ));
}

fn with_caveat(mut cap: Capability, caveat: serde_json::Value) -> Capability {
    let obj: Caveat = serde_json::from_value(caveat).expect("object");
    cap.caveats = Caveats::from_objects(vec![obj]);
    cap
}

#[tokio::test]
async fn caveats_a_delegation_constrained_by_an_unenforced_caveat_is_refused() {
    let f = Fixture::new().await;
    let cap = with_caveat(
        f.cap("kv/notes", "tinycloud.kv/get"),
        serde_json::json!({"maxSize": 10}),
    );
    let h = f.ucan(&f.session, &key(2).did(), &[f.root], vec![cap]);
    assert!(matches!(
        f.auth.check_delegation(&h, f.now).await,
        Err(AuthError::Unenforced(_))
    ));
}

#[tokio::test]
async fn caveats_an_invocation_carrying_an_unenforced_caveat_is_refused() {
    let f = Fixture::new().await;
    let cap = with_caveat(
        f.cap("kv/notes/a", "tinycloud.kv/get"),
        serde_json::json!({"maxSize": 10}),
    );
    assert!(matches!(
        f.authorize(&f.invoke(vec![cap])).await,
        Err(AuthError::Unenforced(_))
    ));
}

#[tokio::test]
async fn caveats_an_enforced_sql_caveat_is_handed_to_the_service() {
    let f = Fixture::new().await;
    let agent = key(2);
    let caveat = serde_json::json!({"tables": ["notes"], "readOnly": true});
    let cap = with_caveat(f.cap("sql/app", "tinycloud.sql/read"), caveat);
    let sub = f.delegate_to(&agent, vec![cap.clone()]).await;
    // The agent invokes without naming caveats: the delegation's apply.
    let h = f.invoke_at(
        &agent,
        &[sub],
        vec![f.cap("sql/app", "tinycloud.sql/read")],
        f.now,
        60,
    );
    let ok = f.authorize(&h).await.expect("authorized");
    assert_eq!(ok.authorized.caveats, vec![cap.caveats]);
}

#[tokio::test]
async fn unknown_proof_is_refused() {
    let f = Fixture::new().await;
    let unknown = blake3_cid(b"never stored");
    let h = f.invoke_at(
        &f.session,
        &[unknown],
        vec![f.cap("kv/notes/a", "tinycloud.kv/get")],
        f.now,
        60,
    );
    assert_eq!(
        chain_err(f.authorize(&h).await),
        ChainError::ParentNotFound(unknown)
    );
    let d = f.ucan(
        &f.session,
        &key(2).did(),
        &[unknown],
        vec![f.cap("kv/notes", "tinycloud.kv/get")],
    );
    assert_eq!(
        chain_err(f.auth.check_delegation(&d, f.now).await),
        ChainError::ParentNotFound(unknown)
    );
}

#[tokio::test]
async fn a_checked_but_unstored_delegation_cannot_be_cited() {
    let f = Fixture::new().await;
    let agent = key(2);
    let h = f.ucan(
        &f.session,
        &agent.did(),
        &[f.root],
        vec![f.cap("kv/notes", "tinycloud.kv/get")],
    );
    let d = f.auth.check_delegation(&h, f.now).await.expect("valid");
    let inv = f.invoke_at(
        &agent,
        &[d.cid()],
        vec![f.cap("kv/notes/a", "tinycloud.kv/get")],
        f.now,
        60,
    );
    assert!(matches!(
        chain_err(f.authorize(&inv).await),
        ChainError::ParentNotFound(_)
    ));
}

#[tokio::test]
async fn rests_on_tells_a_principal_of_the_owner_from_a_stranger() {
    let f = Fixture::new().await;
    let owner = f.space.owner().clone();
    let cap = || vec![f.cap("kv/notes/a", "tinycloud.kv/get")];
    let mine = f
        .auth
        .decode_invocation(&f.invoke(cap()), f.now)
        .expect("decodes");
    assert!(f.auth.rests_on(&mine, &owner, f.now).await);
    // The same chain does not rest on another owner.
    assert!(!f.auth.rests_on(&mine, &key(8).did(), f.now).await);
    let stranger = key(3);
    let theirs = f.invoke_at(&stranger, &[f.root], cap(), f.now, 60);
    let theirs = f.auth.decode_invocation(&theirs, f.now).expect("decodes");
    assert!(!f.auth.rests_on(&theirs, &owner, f.now).await);
}
