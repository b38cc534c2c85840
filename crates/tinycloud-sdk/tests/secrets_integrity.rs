//! What the SDK believes about stored secrets and audit trails, against a real node: every
//! audit page is read; owner writes whose proof is revoked or did not cover the write are not
//! the owner's; an older owner-signed envelope stored again (a rollback) is refused.

use tinycloud_auth::did::Did;
use tinycloud_auth::resource::{NetworkId, SpaceId};
use tinycloud_sdk::{Config, LocalSigner, TinyCloud};

mod common;
use common::{node_with, signed_in};

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
    let n = node_with(|_| {}).await;
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
    n.node.stop().await.unwrap();
}

/// An envelope for `vault/secrets/<name>` signed by `client`'s session key under its sign-in
/// (what an owner session writes), with `written_at` as its signed write time.
async fn owner_signed(
    client: &TinyCloud,
    owner: &Did,
    name: &str,
    version: u64,
    written_at: Option<&str>,
    updated_at: &str,
) -> tinycloud_sdk::encryption::Envelope {
    use tinycloud_sdk::secrets::{aad, META_VERSION, META_WRITTEN_AT};
    let network = client
        .network(&NetworkId::new(owner.clone(), "default").unwrap())
        .await
        .unwrap()
        .unwrap();
    let space = SpaceId::new(owner.clone(), "secrets").unwrap();
    let payload = serde_json::json!({
        "value": "sk-planted", "createdAt": updated_at, "updatedAt": updated_at, "version": version,
    });
    let mut meta = serde_json::Map::new();
    meta.insert(META_VERSION.into(), version.into());
    if let Some(t) = written_at {
        meta.insert(META_WRITTEN_AT.into(), t.into());
    }
    let mut env = tinycloud_sdk::encryption::Envelope::seal(
        &network,
        payload.to_string().as_bytes(),
        &aad(&space, &format!("vault/secrets/{name}")),
        meta,
    );
    let session = client.active_session().unwrap();
    env.sign_writer(
        &session.key().unwrap(),
        Some(session.delegation_header().unwrap().to_owned()),
    );
    env
}

async fn store(client: &TinyCloud, owner: &Did, path: &str, bytes: Vec<u8>) {
    client
        .kv_in(SpaceId::new(owner.clone(), "secrets").unwrap())
        .put(path, bytes, &Default::default())
        .await
        .unwrap();
}

/// "The owner" is one of this client's own session keys: another session of the same wallet
/// (another device) reads as another writer until this client is told it is the owner's.
#[tokio::test]
async fn only_the_clients_own_session_keys_write_as_the_owner() {
    use tinycloud_sdk::secrets::Writer;
    let n = node_with(|_| {}).await;
    let url = n.node.url();
    let signer = LocalSigner::generate(1);
    let (other_device, _) = owner_with_vault(&url, &signer).await;
    other_device
        .secrets()
        .unwrap()
        .put("API_KEY", "sk-1", None)
        .await
        .unwrap();
    let other_key = other_device.active_session().unwrap().key().unwrap().did();
    // The writing session itself is the owner…
    let writer = other_device
        .secrets()
        .unwrap()
        .writer("API_KEY", None)
        .await;
    assert!(writer.as_ref().unwrap().is_owner(), "{writer:?}");
    // …another session of the same wallet does not know that key: another writer.
    let here = signed_in(&url, &signer).await;
    let info = here.secrets().unwrap().info("API_KEY", None).await.unwrap();
    assert_eq!(info.writer, Writer::Other(other_key));
    assert_eq!(info.writer.kind(), "other");
    // What this session writes is the owner's.
    here.secrets()
        .unwrap()
        .put("API_KEY", "sk-2", None)
        .await
        .unwrap();
    let secret = here.secrets().unwrap().read("API_KEY", None).await.unwrap();
    assert!(secret.info.writer.is_owner(), "{:?}", secret.info.writer);
    assert_eq!(secret.value, "sk-2");
    n.node.stop().await.unwrap();
}

#[tokio::test]
async fn an_owner_signature_counts_only_within_its_proof_and_until_revoked() {
    use tinycloud_sdk::secrets::Writer;
    let n = node_with(|_| {}).await;
    let url = n.node.url();
    let signer = LocalSigner::generate(1);
    let (old, did) = owner_with_vault(&url, &signer).await;
    old.secrets()
        .unwrap()
        .put("API_KEY", "sk-1", None)
        .await
        .unwrap();
    let current = signed_in(&url, &signer).await;
    // The old session's key is the owner's only once this client knows it as one of the
    // owner's own (another device's session reads as another writer).
    let old_key = old.active_session().unwrap().key().unwrap().did();
    let info = current
        .secrets()
        .unwrap()
        .info("API_KEY", None)
        .await
        .unwrap();
    assert_eq!(info.writer, Writer::Other(old_key.clone()));
    current.add_owner_session_keys([old_key]);
    let info = current
        .secrets()
        .unwrap()
        .info("API_KEY", None)
        .await
        .unwrap();
    assert!(info.writer.is_owner(), "{:?}", info.writer);

    // Signed by the owner's session key, but claiming a write time outside the session's
    // validity (before it began; after it ends), or none at all.
    let expires: time::OffsetDateTime = time::OffsetDateTime::parse(
        &old.active_session().unwrap().expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let after = (expires + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for (name, written_at, updated_at) in [
        (
            "BEFORE",
            Some("2001-01-01T00:00:00Z"),
            "2001-01-01T00:00:00Z",
        ),
        ("AFTER", Some(after.as_str()), after.as_str()),
        ("UNDATED", None, "2001-01-01T00:00:00Z"),
    ] {
        let env = owner_signed(&old, &did, name, 1, written_at, updated_at).await;
        store(
            &old,
            &did,
            &format!("vault/secrets/{name}"),
            serde_json::to_vec(&env).unwrap(),
        )
        .await;
        let secret = current.secrets().unwrap().read(name, None).await.unwrap();
        assert!(
            matches!(secret.info.writer, Writer::Expired(_)),
            "{name}: {:?}",
            secret.info.writer
        );
        assert_eq!(secret.info.writer.kind(), "expired");
    }
    // Without a signed write time, the (signed) payload's update time is the write time.
    let env = owner_signed(&old, &did, "LEGACY", 1, None, &now_rfc3339()).await;
    store(
        &old,
        &did,
        "vault/secrets/LEGACY",
        serde_json::to_vec(&env).unwrap(),
    )
    .await;
    let legacy = current.secrets().unwrap();
    assert!(legacy
        .read("LEGACY", None)
        .await
        .unwrap()
        .info
        .writer
        .is_owner());

    // The old session is revoked (a stolen or retired key): what it signed is no longer the
    // owner's, whether read, listed or judged from the envelope alone.
    let old_cid = old.active_session().unwrap().delegation_cid().unwrap();
    current.revoke(&old_cid).await.unwrap();
    assert_eq!(
        current.delegation_status(&old_cid).await.unwrap(),
        tinycloud_sdk::delegation::DelegationStatus::Revoked
    );
    let secrets = current.secrets().unwrap();
    let writer = secrets.read("API_KEY", None).await.unwrap().info.writer;
    assert!(matches!(writer, Writer::Revoked(_)), "{writer:?}");
    assert_eq!(writer.kind(), "revoked");
    assert!(matches!(
        secrets.writer("API_KEY", None).await.unwrap(),
        Writer::Revoked(_)
    ));
    // The current session's own writes are the owner's.
    secrets.put("API_KEY", "sk-2", None).await.unwrap();
    let fresh = current.secrets().unwrap();
    let secret = fresh.read("API_KEY", None).await.unwrap();
    assert!(secret.info.writer.is_owner());
    assert_eq!(secret.value, "sk-2");
    n.node.stop().await.unwrap();
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn an_older_owner_signed_envelope_stored_again_is_refused() {
    let n = node_with(|_| {}).await;
    let url = n.node.url();
    let signer = LocalSigner::generate(1);
    let (owner, did) = owner_with_vault(&url, &signer).await;
    let kv = owner.kv_in(SpaceId::new(did.clone(), "secrets").unwrap());
    let secrets = owner.secrets().unwrap();
    secrets.put("API_KEY", "sk-1", None).await.unwrap();
    // What a co-writer (or the node) saw of version 1.
    let v1 = kv.get("vault/secrets/API_KEY").await.unwrap().data.to_vec();
    // A plain put over it keeps version 1 in the history, like rotate.
    let v2 = secrets.put("API_KEY", "sk-2", None).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        secrets.get_version("API_KEY", 1, None).await.unwrap(),
        "sk-1"
    );
    let snapshot_v2 = kv.get("vault/secrets/API_KEY").await.unwrap().data.to_vec();
    let v3 = secrets.rotate("API_KEY", "sk-3", None).await.unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(
        secrets.get_version("API_KEY", 2, None).await.unwrap(),
        "sk-2"
    );

    let snapshot_v3 = kv.get("vault/secrets/API_KEY").await.unwrap().data.to_vec();
    let rolled_back = |want: u64, kept: u64, r: tinycloud_sdk::Result<String>| match r {
        Err(tinycloud_sdk::Error::RolledBack {
            version,
            newest_kept,
            ..
        }) => {
            assert_eq!((version, newest_kept), (want, kept));
        }
        other => panic!("{other:?}"),
    };

    // Version 1 or 2 stored again over 3: decrypts, is owner-signed, and is refused.
    for (old, version) in [(&v1, 1), (&snapshot_v2, 2)] {
        kv.put("vault/secrets/API_KEY", old.clone(), &Default::default())
            .await
            .unwrap();
        rolled_back(version, 3, secrets.get("API_KEY", None).await);
    }
    // The owner stores a new value over the rolled-back one: it is above every kept version,
    // so the lost version 3 stored again is a rollback too.
    let v4 = secrets.put("API_KEY", "sk-4", None).await.unwrap();
    assert_eq!(v4.version, 4);
    assert_eq!(secrets.get("API_KEY", None).await.unwrap(), "sk-4");
    kv.put("vault/secrets/API_KEY", snapshot_v3, &Default::default())
        .await
        .unwrap();
    rolled_back(3, 4, secrets.get("API_KEY", None).await);
    secrets.put("API_KEY", "sk-5", None).await.unwrap();

    // Junk planted in the history does not make the current value unreadable (no denial of
    // service by a co-writer): only owner-signed entries at their own path and version count.
    for (key, bytes) in [
        ("vault/secrets/.history/API_KEY/999", v1.clone()),
        ("vault/secrets/.history/API_KEY/998", b"{}".to_vec()),
    ] {
        kv.put(key, bytes, &Default::default()).await.unwrap();
    }
    assert_eq!(secrets.get("API_KEY", None).await.unwrap(), "sk-5");
    assert_eq!(secrets.info("API_KEY", None).await.unwrap().version, 5);
    n.node.stop().await.unwrap();
}
