//! Hooks through the SDK against an in-process node: live events from another client,
//! resuming without loss (explicitly and after a dropped connection), revocation.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tinycloud_auth::did::Did;
use tinycloud_sdk::delegation::Grant;
use tinycloud_sdk::hooks::{HookEvent, HookEventKind, HookStream, Scope};
use tinycloud_sdk::kv::PutOptions;
use tinycloud_sdk::session::Jwk;
use tinycloud_sdk::{Config, Error, LocalSigner, TinyCloud};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

mod common;
use common::{node_with, signed_in};

/// A client on `url` acting with `of`'s session.
fn same_session(of: &TinyCloud, url: &str) -> TinyCloud {
    let tc = TinyCloud::new(Config::new(url)).unwrap();
    tc.restore(of.session().unwrap()).unwrap();
    tc
}

async fn put(tc: &TinyCloud, key: &str) {
    tc.kv().put(key, "v", &PutOptions::default()).await.unwrap();
}

async fn next(s: &mut HookStream<'_>) -> tinycloud_sdk::Result<HookEvent> {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
}

async fn paths(s: &mut HookStream<'_>, n: usize) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let e = next(s).await.unwrap();
        assert_eq!(e.kind, HookEventKind::Write);
        out.push((e.path, e.seq.expect("this node numbers events")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_sees_other_clients_writes_and_resumes_without_loss() {
    let n = node_with(|_| {}).await;
    let writer = signed_in(&n.node.url(), &LocalSigner::generate(1)).await;
    let reader = same_session(&writer, &n.node.url());
    let hooks = reader.hooks();
    let scope = hooks.scope("kv", Some("notes")).unwrap();

    let mut s = hooks.open(vec![scope.clone()], None).await.unwrap();
    put(&writer, "notes/a").await;
    put(&writer, "other/x").await;
    put(&writer, "notes/b").await;
    let got = paths(&mut s, 2).await;
    assert_eq!(got[0].0, "notes/a");
    assert_eq!(got[1].0, "notes/b");
    assert_eq!(
        got[1].1,
        got[0].1 + 2,
        "the write outside the scope has a seq too"
    );
    put(&writer, "notes/c").await;
    let e = next(&mut s).await.unwrap();
    assert_eq!(e.ability, "tinycloud.kv/put");
    assert_eq!(e.space, writer.space().unwrap().to_string());
    assert!(e.actor.starts_with("did:key:"), "{}", e.actor);
    let seq = e.seq.expect("this node numbers events");
    assert_eq!(e.id, seq.to_string());
    assert!(e.epoch.as_deref().is_some_and(|c| c.starts_with("bafkr4i")));
    assert_eq!(e.event_index, Some(0));
    let last = seq;
    drop(s);

    // Written while nobody listens; picked up by resuming after the last seq handled.
    put(&writer, "notes/d").await;
    writer.kv().delete("notes/a", None).await.unwrap();
    let mut s = hooks.subscribe_from(scope.clone(), last);
    let got = paths(&mut s, 2).await;
    assert_eq!(
        got,
        [
            ("notes/d".to_owned(), last + 1),
            ("notes/a".to_owned(), last + 2)
        ]
    );
    // … and then live.
    put(&writer, "notes/e").await;
    assert_eq!(paths(&mut s, 1).await[0], ("notes/e".to_owned(), last + 3));

    // A scope the node does not serve is refused before anything is signed.
    let bad = Scope::new(&reader.space().unwrap(), "files");
    assert!(matches!(
        hooks.open(vec![bad], None).await,
        Err(Error::InvalidInput(_))
    ));
    // An expired session ends the stream with SessionExpired.
    let mut expired = reader.session().unwrap();
    expired.expires_at = "2000-01-01T00:00:00Z".into();
    reader.set_session(Some(expired));
    let mut s = reader.hooks().subscribe(scope);
    assert!(matches!(
        next(&mut s).await,
        Err(Error::SessionExpired { .. })
    ));
    assert!(s.next().await.is_none());
}

/// A TCP proxy whose connections can be cut, and which can refuse new ones for a while.
struct Proxy {
    url: String,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    open: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let conns = Arc::new(Mutex::new(Vec::<AbortHandle>::new()));
        let open = Arc::new(AtomicBool::new(true));
        let (c, o) = (conns.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let task = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy { url, conns, open }
    }

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_resumed_automatically() {
    let n = node_with(|_| {}).await;
    let writer = signed_in(&n.node.url(), &LocalSigner::generate(1)).await;
    let upstream: SocketAddr = n.node.url().trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let reader = same_session(&writer, &proxy.url);
    let scope = reader.hooks().scope("kv", None).unwrap();
    let mut s = reader.hooks().open(vec![scope], None).await.unwrap();
    put(&writer, "a").await;
    let first = paths(&mut s, 1).await[0].1;

    proxy.cut();
    // The subscriber keeps reading (and so retrying) while it cannot reach the node; these
    // are written meanwhile.
    let outage = async {
        put(&writer, "b").await;
        put(&writer, "c").await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        proxy.reopen();
    };
    let (got, ()) = tokio::join!(paths(&mut s, 2), outage);
    assert_eq!(
        got,
        [("b".to_owned(), first + 1), ("c".to_owned(), first + 2)]
    );
    put(&writer, "d").await;
    assert_eq!(paths(&mut s, 1).await, [("d".to_owned(), first + 3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_ends_the_stream_with_permission_denied() {
    let n = node_with(|_| {}).await;
    let owner = signed_in(&n.node.url(), &LocalSigner::generate(1)).await;
    let key = Jwk::generate();
    let did: Did = key.secret_key().unwrap().did();
    let caps = owner
        .grant_capabilities(&[Grant {
            service: "hooks".into(),
            path: "kv/notes".into(),
            actions: vec!["subscribe".into()],
        }])
        .unwrap();
    let portable = owner.delegate_to(&did, caps, 600).await.unwrap();
    let watcher = TinyCloud::new(Config::new(n.node.url())).unwrap();
    watcher.use_delegation(key, &portable).unwrap();
    let hooks = watcher.hooks();

    // More than was granted is refused at once.
    let whole = hooks.scope("kv", None).unwrap();
    match hooks.open(vec![whole], None).await {
        Err(Error::PermissionDenied { missing, .. }) => {
            assert!(missing
                .unwrap()
                .ends_with("/hooks/kv / tinycloud.hooks/subscribe"));
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    let mut s = hooks
        .open(vec![hooks.scope("kv", Some("notes/")).unwrap()], None)
        .await
        .unwrap();
    put(&owner, "notes/1").await;
    assert_eq!(paths(&mut s, 1).await[0].0, "notes/1");

    let cid = tinycloud_auth::cid::parse_cid(&portable.cid).unwrap();
    owner.revoke(&cid).await.unwrap();
    match next(&mut s).await {
        Err(Error::PermissionDenied { message, .. }) => {
            assert!(message.contains("revoked"), "{message}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    assert!(s.next().await.is_none(), "no reconnection after the end");
}
