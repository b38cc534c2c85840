//! The SDK's account delegation listing (`POST /delegation/query`) against an in-process node:
//! typed pages, filters, the paging helper, lifecycle marking.

mod common;

use common::*;
use tinycloud_sdk::delegation::{DelegationQuery, Grant, Lifecycle, QueryDirection};
use tinycloud_sdk::session::Jwk;
use tinycloud_sdk::LocalSigner;

#[tokio::test]
async fn pages_through_what_the_account_granted_and_received() {
    let n = node_with(|_| {}).await;
    let alice = signed_in(&n.node.url(), &LocalSigner::generate(1)).await;
    let bob = signed_in(&n.node.url(), &LocalSigner::generate(1)).await;
    let alice_did = alice.space().unwrap().owner().clone();

    let caps = || {
        alice
            .grant_capabilities(&[Grant::kv("notes/", &["get"])])
            .unwrap()
    };
    let mut granted = Vec::new();
    for _ in 0..5 {
        let to = Jwk::generate().secret_key().unwrap().did();
        granted.push(alice.delegate_to(&to, caps(), 600).await.unwrap().cid);
    }
    let revoked: tinycloud_auth::cid::Cid = granted[0].parse().unwrap();
    alice.revoke(&revoked).await.unwrap();
    // Bob shares with Alice's account.
    let share = bob
        .grant_capabilities(&[Grant::kv("pub/", &["get"])])
        .unwrap();
    let received = bob.delegate_to(&alice_did, share, 600).await.unwrap().cid;

    let everything = alice
        .query_delegations(&DelegationQuery::default())
        .await
        .unwrap();
    assert_eq!(everything.schema_version, 2);
    assert!(everything.next_cursor.is_none());
    let cids: Vec<&str> = everything.items.iter().map(|d| d.cid.as_str()).collect();
    for c in granted.iter().chain([&received]) {
        assert!(cids.contains(&c.as_str()), "{c} missing from {cids:?}");
    }
    let r = everything
        .items
        .iter()
        .find(|d| d.cid == granted[0])
        .unwrap();
    assert_eq!(r.status, Lifecycle::Revoked);
    assert!(r.revoked_at.is_some());
    let g = everything
        .items
        .iter()
        .find(|d| d.cid == granted[1])
        .unwrap();
    assert_eq!(
        (g.direction.as_str(), g.status),
        ("granted", Lifecycle::Active)
    );
    assert_eq!(g.resources[0].actions, vec!["tinycloud.kv/get".to_owned()]);

    // The paging helper, two at a time, gives the same list.
    let paged = alice
        .all_delegations(&DelegationQuery {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        paged.iter().map(|d| d.cid.as_str()).collect::<Vec<_>>(),
        cids
    );
    // One page at a time by hand.
    let first = alice
        .query_delegations(&DelegationQuery {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(first.next_cursor.is_some());

    let recv = alice
        .all_delegations(&DelegationQuery {
            direction: Some(QueryDirection::Received),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        recv.iter().map(|d| d.cid.as_str()).collect::<Vec<_>>(),
        vec![received.as_str()]
    );
    let gone = alice
        .all_delegations(&DelegationQuery {
            status: Some(Lifecycle::Revoked),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        gone.iter().map(|d| d.cid.as_str()).collect::<Vec<_>>(),
        vec![granted[0].as_str()]
    );
    // Out of range: the node's 400 is a typed error, not a panic.
    assert!(alice
        .query_delegations(&DelegationQuery {
            limit: Some(0),
            ..Default::default()
        })
        .await
        .is_err());
    n.node.stop().await.unwrap();
}
