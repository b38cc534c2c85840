//! The SDK against a real node (HTTP on a free port, embedded storage in a temp dir).

use tinycloud_auth::did::Did;
use tinycloud_sdk::delegation::{Grant, PortableDelegation};
use tinycloud_sdk::kv::PutOptions;
use tinycloud_sdk::session::{FileSessionStore, Jwk, MemorySessionStore, SessionStore};
use tinycloud_sdk::{Config, Error, LocalSigner, TinyCloud};

mod common;
use common::{node_with, signed_in};

#[tokio::test]
async fn owner_sign_in_kv_and_sessions() {
    let n = node_with(|_| {}).await;
    let tc = TinyCloud::new(Config::new(n.node.url())).unwrap();
    assert!(matches!(tc.kv().get("a").await, Err(Error::NotSignedIn)));
    let signer = LocalSigner::generate(1);
    let session = tc.sign_in(&signer).await.unwrap();
    assert!(session.tinycloud_session.space_id.ends_with(":default"));

    let kv = tc.kv();
    let etag = kv
        .put(
            "notes/today.md",
            "# hi",
            &PutOptions {
                content_type: Some("text/markdown".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(etag.starts_with("\"blake3-"));
    let obj = kv.get("notes/today.md").await.unwrap();
    assert_eq!(obj.data.as_ref(), b"# hi");
    assert_eq!(obj.meta.content_type.as_deref(), Some("text/markdown"));
    assert_eq!(obj.meta.etag.as_deref(), Some(etag.as_str()));
    assert!(kv.head("notes/today.md").await.unwrap().is_some());
    assert!(kv.head("notes/none").await.unwrap().is_none());
    assert!(matches!(
        kv.get("notes/none").await,
        Err(Error::NotFound(_))
    ));
    // conditional writes
    let created = kv
        .put(
            "c",
            "1",
            &PutOptions {
                if_absent: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        kv.put(
            "c",
            "2",
            &PutOptions {
                if_absent: true,
                ..Default::default()
            }
        )
        .await,
        Err(Error::PreconditionFailed(_))
    ));
    kv.put(
        "c",
        "3",
        &PutOptions {
            if_match: Some(created.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        kv.delete("c", Some(&created)).await,
        Err(Error::PreconditionFailed(_))
    ));
    // listing with paging
    for i in 0..5 {
        kv.put(&format!("list/{i}"), "x", &PutOptions::default())
            .await
            .unwrap();
    }
    let page = kv.list_page("list/", Some(2), None).await.unwrap();
    assert_eq!(page.keys, ["list/0", "list/1"]);
    assert!(page.truncated);
    assert_eq!(kv.list("list/").await.unwrap().len(), 5);
    // streaming put and get of a larger value
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 256) as u8).collect();
    let chunks: Vec<std::io::Result<bytes::Bytes>> = big
        .chunks(65_536)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    kv.put_stream(
        "big",
        futures_util::stream::iter(chunks),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let (_, stream) = kv.get_stream("big").await.unwrap();
    use futures_util::StreamExt;
    let got: Vec<u8> = stream.map(|c| c.unwrap().to_vec()).concat().await;
    assert_eq!(got, big);
    // invalid keys never reach the node
    assert!(matches!(
        kv.get("notes/../secret").await,
        Err(Error::InvalidInput(_))
    ));
    kv.delete("notes/today.md", None).await.unwrap();
    assert!(matches!(
        kv.delete("notes/today.md", None).await,
        Err(Error::NotFound(_))
    ));
    // capabilities/read lists the session delegation
    let caps = tc.capabilities().await.unwrap();
    assert!(caps
        .get(&session.tinycloud_session.delegation_cid)
        .is_some());

    // file session storage: 0600, restore, corrupt and expired files discarded
    let dir = tempfile::tempdir().unwrap();
    let store = FileSessionStore::new(dir.path());
    store.save(&session.address, &session).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let f = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let loaded = store.load(&session.address).unwrap().unwrap();
    let tc2 = TinyCloud::new(Config::new(n.node.url())).unwrap();
    tc2.restore(loaded).unwrap();
    assert_eq!(tc2.kv().get("list/0").await.unwrap().data.as_ref(), b"x");
    let mut expired = session.clone();
    expired.expires_at = "2000-01-01T00:00:00Z".into();
    store.save("old", &expired).unwrap();
    assert!(store.load("old").unwrap().is_none());
    std::fs::write(dir.path().join("broken.json"), "{not json").unwrap();
    assert!(store.load("broken").unwrap().is_none());
    assert!(!dir.path().join("broken.json").exists());
    let mem = MemorySessionStore::default();
    mem.save("A", &session).unwrap();
    assert!(mem.load("a").unwrap().is_some());
    // an expired session gives a typed error on every call
    tc2.set_session(Some(expired));
    assert!(matches!(
        tc2.kv().get("list/0").await,
        Err(Error::SessionExpired { .. })
    ));
    tc.sign_out();
    assert!(matches!(
        tc.kv().get("list/0").await,
        Err(Error::NotSignedIn)
    ));
}

#[tokio::test]
async fn agent_gets_a_narrow_delegation_and_loses_it_on_revocation() {
    let n = node_with(|_| {}).await;
    let owner = signed_in(&n.node.url(), &LocalSigner::generate(1)).await;
    owner
        .kv()
        .put("notes/today.md", "hello agent", &PutOptions::default())
        .await
        .unwrap();
    owner
        .kv()
        .put("private/diary", "no", &PutOptions::default())
        .await
        .unwrap();

    let agent_key = Jwk::generate();
    let agent_did: Did = agent_key.secret_key().unwrap().did();
    // Asking for more than the session holds lists exactly what is missing.
    let too_much = owner
        .grant_capabilities(&[
            Grant::kv("notes/", &["get"]),
            Grant {
                service: "duckdb".into(),
                path: "".into(),
                actions: vec!["read".into()],
            },
        ])
        .unwrap();
    match owner.delegate_to(&agent_did, too_much, 3600).await {
        Err(Error::MissingCapabilities(m)) => {
            assert_eq!(m.len(), 1, "{m:?}");
            assert!(m[0].starts_with("tinycloud.duckdb/read"), "{m:?}");
        }
        other => panic!("expected MissingCapabilities, got {other:?}"),
    }
    let caps = owner
        .grant_capabilities(&[Grant::kv("notes/", &["get", "list"])])
        .unwrap();
    let portable = owner.delegate_to(&agent_did, caps, 3600).await.unwrap();
    let json = serde_json::to_string(&portable).unwrap();

    // Another process imports it.
    let (imported, d) = PortableDelegation::from_json(&json).unwrap();
    assert!(imported.describe(&d).contains("files under notes/"));
    let agent = TinyCloud::new(Config::new(n.node.url())).unwrap();
    agent.use_delegation(agent_key.clone(), &imported).unwrap();
    assert_eq!(
        agent
            .kv()
            .get("notes/today.md")
            .await
            .unwrap()
            .data
            .as_ref(),
        b"hello agent"
    );
    assert_eq!(agent.kv().list("notes/").await.unwrap(), ["notes/today.md"]);
    match agent.kv().get("private/diary").await {
        Err(Error::PermissionDenied { missing, .. }) => {
            assert!(missing.unwrap().contains("tinycloud.kv/get"));
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    assert!(matches!(
        agent
            .kv()
            .put("notes/x", "no", &PutOptions::default())
            .await,
        Err(Error::PermissionDenied { .. })
    ));
    // A key the delegation does not target cannot use it.
    let stranger = TinyCloud::new(Config::new(n.node.url())).unwrap();
    assert!(matches!(
        stranger.use_delegation(Jwk::generate(), &imported),
        Err(Error::InvalidInput(_))
    ));

    // Sub-delegation: the agent passes on a narrower slice.
    let sub_key = Jwk::generate();
    let sub_caps = agent
        .grant_capabilities(&[Grant::kv("notes/today.md", &["get"])])
        .unwrap();
    let sub = agent
        .delegate_to(&sub_key.secret_key().unwrap().did(), sub_caps, 600)
        .await
        .unwrap();
    let subc = TinyCloud::new(Config::new(n.node.url())).unwrap();
    subc.use_delegation(sub_key, &sub).unwrap();
    assert!(subc.kv().get("notes/today.md").await.is_ok());

    // Revocation by the owner cuts off the agent and everything below it.
    let cid = tinycloud_auth::cid::parse_cid(&portable.cid).unwrap();
    owner.revoke(&cid).await.unwrap();
    assert!(matches!(
        agent.kv().get("notes/today.md").await,
        Err(Error::PermissionDenied { .. })
    ));
    assert!(matches!(
        subc.kv().get("notes/today.md").await,
        Err(Error::PermissionDenied { .. })
    ));
}

#[tokio::test]
async fn protocol_mismatch_and_unreachable_node_are_typed() {
    let tc = TinyCloud::new(Config::new("http://127.0.0.1:9")).unwrap();
    assert!(matches!(tc.info().await, Err(Error::Network(_))));
}

#[tokio::test]
async fn sql_typed_rows_batches_migrations_export() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Note {
        id: i64,
        title: String,
        stars: Option<f64>,
    }
    let n = node_with(|_| {}).await;
    let tc = signed_in(&n.node.url(), &LocalSigner::generate(1)).await;
    let db = tc.sql("notes");
    let m = db
        .migrate(&[
            (
                "001_notes",
                "CREATE TABLE note (id INTEGER PRIMARY KEY, title TEXT NOT NULL, stars REAL)",
            ),
            ("002_index", "CREATE INDEX note_title ON note (title)"),
        ])
        .await
        .unwrap();
    assert_eq!(m.applied, ["001_notes", "002_index"]);
    let again = db
        .migrate(&[
            ("001_notes", "CREATE TABLE note (x)"),
            ("002_index", "x"),
            ("003_more", "ALTER TABLE note ADD COLUMN body TEXT"),
        ])
        .await
        .unwrap();
    assert_eq!(again.skipped, ["001_notes", "002_index"]);
    assert_eq!(again.applied, ["003_more"]);
    let c = db
        .execute(
            "INSERT INTO note (title, stars) VALUES (?, ?)",
            &[serde_json::json!("hello"), serde_json::json!(4.5)],
        )
        .await
        .unwrap();
    assert_eq!(c.changes, 1);
    assert_eq!(c.last_insert_row_id, Some(1));
    db.batch(&[
        (
            "INSERT INTO note (title) VALUES (?)",
            vec![serde_json::json!("two")],
        ),
        (
            "INSERT INTO note (title) VALUES (?)",
            vec![serde_json::json!("three")],
        ),
    ])
    .await
    .unwrap();
    let rows = db
        .query("SELECT id, title, stars FROM note ORDER BY id", &[])
        .await
        .unwrap();
    let notes: Vec<Note> = rows.into_structs().unwrap();
    assert_eq!(
        notes[0],
        Note {
            id: 1,
            title: "hello".into(),
            stars: Some(4.5)
        }
    );
    assert_eq!(notes.len(), 3);
    // errors are typed
    assert!(matches!(
        db.query("SELECT * FROM nope", &[]).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        tc.sql("missing").query("SELECT 1", &[]).await,
        Err(Error::NotFound(_))
    ));
    let file = db.export().await.unwrap();
    assert!(file.starts_with(b"SQLite format 3\0"));
}
