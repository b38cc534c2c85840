//! What the SDK believes about stored secrets and audit trails, against a real node: every
//! audit page is read; owner writes whose proof is revoked or did not cover the write are not
//! the owner's; an older owner-signed envelope stored again (a rollback) is refused.

use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, SpaceId};
use tinycloud_sdk::{Config, LocalSigner, TinyCloud};

mod common;
use common::{node, signed_in};

async fn owner_with_vault(url: &str, signer: &LocalSigner) -> (TinyCloud, Did) {
    let owner = signed_in(url, signer).await;
    let did = Did::pkh(1, signer.eth_address()).unwrap();
    owner
        .host_space(signer, &SpaceId::new(did.clone(), "secrets").unwrap())
        .await
        .unwrap();
    (owner, did)
}

#[tokio::test]
async fn the_audit_trail_is_read_across_all_pages() {
    let n = node().await;
    let url = n.node.url();
    let signer = LocalSigner::generate(1);
    let (owner, did) = owner_with_vault(&url, &signer).await;
    let secrets = owner.secrets().unwrap();
    secrets.put("API_KEY", "sk-1", None).await.unwrap();
    for _ in 0..5 {
        secrets.get("API_KEY", None).await.unwrap();
    }
    let network = NetworkId::new(did, "default").unwrap();
    let one_page = owner.network_audit(&network).await.unwrap();
    let all = one_page["records"].as_array().unwrap().clone();
    assert!(all.len() >= 5, "{one_page}");
    assert_eq!(one_page["pages"], 1);
    assert!(one_page["nextCursor"].is_null());

    // Pages of two: every record, in the same order, over several pages.
    let mut cfg = Config::new(&url);
    cfg.audit_page_size = 2;
    let paged = TinyCloud::new(cfg.clone()).unwrap();
    paged.sign_in(&signer).await.unwrap();
    let doc = paged.network_audit(&network).await.unwrap();
    let records = doc["records"].as_array().unwrap();
    // The second client's sign-in does not decrypt: the same trail.
    assert_eq!(records, &all, "{doc}");
    assert_eq!(doc["pages"], all.len().div_ceil(2), "{doc}");
    assert!(doc["nextCursor"].is_null());

    // A page bound stops early and says where.
    cfg.max_audit_pages = 2;
    let bounded = TinyCloud::new(cfg).unwrap();
    bounded.sign_in(&signer).await.unwrap();
    let doc = bounded.network_audit(&network).await.unwrap();
    assert_eq!(doc["records"].as_array().unwrap(), &all[..4]);
    assert_eq!(doc["pages"], 2);
    assert!(doc["nextCursor"].is_string(), "{doc}");
    n.stop().await;
}
