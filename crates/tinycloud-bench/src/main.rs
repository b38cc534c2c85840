//! `tinycloud-bench`: starts a release `tinycloud-node` on a free port with a fresh data
//! directory, signs in an owner, and drives it over real HTTP/1.1 keep-alive connections:
//! a bare `GET /healthz` (the ceiling), signed KV get and signed KV put (1 KiB values, durable).
//! Invocations are signed before each run so the generator spends its CPU on requests.
//! Reports throughput, p50/p99 latency, failures and the node's peak RSS per scenario, plus
//! idle RSS and cold start.
//!
//! Run: `./bench/kv-load.sh` (builds both binaries in release mode), or
//! `tinycloud-bench --node target/release/tinycloud-node [--connections 64] [--seconds 10]`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use tinycloud_auth::cid::{parse_cid, Cid};
use tinycloud_auth::did::Did;
use tinycloud_auth::eth::EthAddress;
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::resource::SpaceId;
use tinycloud_auth::session::{capability, host_capability, invocation};
use tinycloud_testkit::{now, siwe_header, Launch, SseStream};
use tokio::net::TcpStream;

struct Args {
    node: String,
    connections: usize,
    seconds: u64,
    /// Run the hooks fan-out scenario with this many SSE subscribers instead.
    hooks: Option<usize>,
    /// Run the secrets decrypt round-trip scenario instead.
    decrypt: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        node: "target/release/tinycloud-node".into(),
        connections: 64,
        seconds: 10,
        hooks: None,
        decrypt: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--node" => args.node = val()?,
            "--connections" => args.connections = val()?.parse()?,
            "--seconds" => args.seconds = val()?.parse()?,
            "--hooks" => args.hooks = Some(val()?.parse()?),
            "--decrypt" => args.decrypt = true,
            _ => bail!("usage: tinycloud-bench [--node PATH] [--connections N] [--seconds S]"),
        }
    }
    Ok(args)
}

/// Peak resident set size of a process so far, from /proc (Linux), in KiB.
fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One request over a fresh or reused HTTP/1.1 connection.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

async fn one_shot(addr: &str, req: Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)> {
    Conn::open(addr).await?.send(req).await
}

fn request(method: &str, path: &str, auth: Option<&str>, body: Bytes) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Full::new(body))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

struct Session {
    space: SpaceId,
    key: SecretKey,
    cid: Cid,
}

async fn sign_in(addr: &str) -> anyhow::Result<Session> {
    let wallet = k256::ecdsa::SigningKey::from_slice(&[0x42; 32])?;
    let did = Did::pkh(1, EthAddress::from_verifying_key(wallet.verifying_key()))?;
    let space = SpaceId::new(did, "bench")?;
    let key = SecretKey::ed25519_from_seed(&[0x24; 32]);
    let mut caps = ["get", "put", "list", "del", "metadata"]
        .iter()
        .map(|a| {
            capability(&format!("{space}/kv"), &format!("tinycloud.kv/{a}")).map_err(|e| anyhow!(e))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for a in ["read", "write", "admin"] {
        caps.push(
            capability(&format!("{space}/sql"), &format!("tinycloud.sql/{a}"))
                .map_err(|e| anyhow!(e))?,
        );
    }
    caps.push(
        capability(&format!("{space}/hooks"), "tinycloud.hooks/subscribe")
            .map_err(|e| anyhow!(e))?,
    );
    let session = siwe_header(
        &wallet,
        key.did().verification_method().to_string(),
        caps,
        Some(now().plus_secs(3600)),
        vec![],
    );
    let (_, body) = one_shot(
        addr,
        request(
            "GET",
            &format!("/peer/generate/{space}"),
            None,
            Bytes::new(),
        ),
    )
    .await?;
    let host = String::from_utf8(body.to_vec())?;
    let host_header = siwe_header(&wallet, host, vec![host_capability(&space)?], None, vec![]);
    let (s, _) = one_shot(
        addr,
        request("POST", "/delegate", Some(&host_header), Bytes::new()),
    )
    .await?;
    if s != 200 {
        bail!("hosting the space failed: {s}");
    }
    let (s, body) = one_shot(
        addr,
        request("POST", "/delegate", Some(&session), Bytes::new()),
    )
    .await?;
    if s != 200 {
        bail!("session activation failed: {s}");
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let cid = parse_cid(v["cid"].as_str().unwrap_or_default())?;
    Ok(Session { space, key, cid })
}

/// Signs `n` single-use invocations of `ability` on KV keys chosen by `key_of`.
fn sign_many(
    s: &Session,
    n: usize,
    ability: &str,
    key_of: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<String>> {
    sign_many_on(s, n, "kv", ability, key_of)
}

/// Signs `n` single-use invocations of `ability` on `<space>/<service>/<path>`.
fn sign_many_on(
    s: &Session,
    n: usize,
    service: &str,
    ability: &str,
    key_of: impl Fn(usize) -> String,
) -> anyhow::Result<Vec<String>> {
    let t = now();
    (0..n)
        .map(|i| {
            let cap = capability(&format!("{}/{service}/{}", s.space, key_of(i)), ability)
                .map_err(|e| anyhow!(e))?;
            Ok(invocation(
                &s.key,
                None,
                &[s.cid],
                vec![cap],
                t,
                290,
                &format!("urn:bench:{ability}:{i}"),
                vec![],
            )?
            .as_str()
            .to_owned())
        })
        .collect()
}

struct Outcome {
    name: &'static str,
    requests: usize,
    failures: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    peak_rss_mib: f64,
}

/// Runs `make(i)` requests on `connections` keep-alive connections until `tokens` requests are
/// sent or the time is up.
async fn run(
    name: &'static str,
    addr: &str,
    pid: u32,
    connections: usize,
    seconds: u64,
    total: usize,
    make: Arc<dyn Fn(usize) -> Request<Full<Bytes>> + Send + Sync>,
) -> anyhow::Result<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid, "VmRSS:") {
                    peak.fetch_max(kib as usize, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (next, make, addr) = (next.clone(), make.clone(), addr.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failures = 0usize;
            let mut conn = Conn::open(&addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                match conn.send(make(i)).await {
                    Ok((200, _)) => lat.push(t0.elapsed().as_micros() as u32),
                    Ok(_) => failures += 1,
                    Err(_) => {
                        failures += 1;
                        conn = Conn::open(&addr).await?;
                    }
                }
            }
            anyhow::Ok((lat, failures))
        }));
    }
    let mut lat = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await??;
        lat.extend(l);
        failures += f;
    }
    let secs = start.elapsed().as_secs_f64();
    sampler.abort();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let idx = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[idx]) / 1000.0
    };
    Ok(Outcome {
        name,
        requests: lat.len(),
        failures,
        secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        peak_rss_mib: peak.load(Ordering::Relaxed) as f64 / 1024.0,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if !std::path::Path::new(&args.node).is_file() {
        bail!(
            "no node binary at {} (build it with cargo build --release -p tinycloud-node)",
            args.node
        );
    }
    let started = Instant::now();
    // The tests' launcher: a fresh data directory, port 0, killed and removed on drop.
    let node = Launch::new(&args.node).start();
    let pid = node.child.id();
    let addr = node
        .url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("unexpected node URL {}", node.url))?
        .to_owned();
    loop {
        if let Ok((200, _)) = one_shot(&addr, request("GET", "/healthz", None, Bytes::new())).await
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cold_ms = started.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_kib(pid, "VmRSS:").unwrap_or(0) as f64 / 1024.0;

    if args.decrypt {
        decrypt_bench(
            &format!("http://{addr}"),
            pid,
            args.seconds,
            args.connections.min(32),
        )
        .await?;
        drop(node);
        return Ok(());
    }
    let s = sign_in(&addr).await?;
    if let Some(n) = args.hooks {
        hooks_fanout(&addr, pid, &s, n, 200).await?;
        drop(node);
        return Ok(());
    }
    let value = Bytes::from(vec![b'v'; 1024]);
    // Seed the keys the get scenario reads.
    for (i, t) in sign_many(&s, 100, "tinycloud.kv/put", |i| format!("hot/{i}"))?
        .iter()
        .enumerate()
    {
        let (st, _) = one_shot(&addr, request("POST", "/invoke", Some(t), value.clone())).await?;
        if st != 200 {
            bail!("seeding key {i} failed: {st}");
        }
    }
    let budget = 40_000 * args.seconds as usize;
    eprintln!("signing {budget} get and {budget} put invocations…");
    let gets = Arc::new(sign_many(&s, budget, "tinycloud.kv/get", |i| {
        format!("hot/{}", i % 100)
    })?);
    let puts = Arc::new(sign_many(&s, budget, "tinycloud.kv/put", |i| {
        format!("load/{i}")
    })?);

    let mut results = Vec::new();
    results.push(
        run(
            "GET /healthz",
            &addr,
            pid,
            args.connections,
            args.seconds,
            usize::MAX,
            Arc::new(|_| request("GET", "/healthz", None, Bytes::new())),
        )
        .await?,
    );
    {
        let gets = gets.clone();
        results.push(
            run(
                "signed KV get (1 KiB)",
                &addr,
                pid,
                args.connections,
                args.seconds,
                gets.len(),
                Arc::new(move |i| request("POST", "/invoke", Some(&gets[i]), Bytes::new())),
            )
            .await?,
        );
    }
    {
        let (puts, value) = (puts.clone(), value.clone());
        results.push(
            run(
                "signed KV put (1 KiB, durable)",
                &addr,
                pid,
                args.connections,
                args.seconds,
                puts.len(),
                Arc::new(move |i| request("POST", "/invoke", Some(&puts[i]), value.clone())),
            )
            .await?,
        );
    }

    // SQL: a table of 10,000 rows, point SELECT by primary key and single-row INSERT.
    let admin = sign_many_on(&s, 2, "sql", "tinycloud.sql/admin", |_| "bench".into())?;
    let create = serde_json::json!({"action":"batch","statements":[
        {"sql":"CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)"},
        {"sql":"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10000) INSERT INTO item SELECT x, 'item-' || x, x * 0.5 FROM c"}
    ]});
    let (st, body) = one_shot(
        &addr,
        request(
            "POST",
            "/invoke",
            Some(&admin[0]),
            Bytes::from(create.to_string()),
        ),
    )
    .await?;
    if st != 200 {
        bail!(
            "creating the SQL table failed: {st} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let selects = Arc::new(sign_many_on(
        &s,
        budget,
        "sql",
        "tinycloud.sql/read",
        |_| "bench".into(),
    )?);
    let inserts = Arc::new(sign_many_on(
        &s,
        budget,
        "sql",
        "tinycloud.sql/write",
        |_| "bench".into(),
    )?);
    {
        let selects = selects.clone();
        results.push(
            run("signed SQL point SELECT", &addr, pid, args.connections, args.seconds, selects.len(), Arc::new(move |i| {
                let q = serde_json::json!({"action":"query","sql":"SELECT id, name, score FROM item WHERE id = ?","params":[(i % 10000) + 1]});
                request("POST", "/invoke", Some(&selects[i]), Bytes::from(q.to_string()))
            })).await?,
        );
    }
    {
        let inserts = inserts.clone();
        results.push(
            run("signed SQL INSERT (durable)", &addr, pid, args.connections, args.seconds, inserts.len(), Arc::new(move |i| {
                let q = serde_json::json!({"action":"execute","sql":"INSERT INTO item (name, score) VALUES (?, ?)","params":[format!("new-{i}"), i]});
                request("POST", "/invoke", Some(&inserts[i]), Bytes::from(q.to_string()))
            })).await?,
        );
    }

    println!("tinycloud-bench: {} connections, {} s per scenario, loopback, node and generator on one machine", args.connections, args.seconds);
    println!("cold start to serving: {cold_ms:.0} ms; idle RSS: {idle_rss:.1} MiB");
    println!(
        "{:<32} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "scenario", "req/s", "p50 ms", "p99 ms", "failed", "peak RSS"
    );
    for r in &results {
        println!(
            "{:<32} {:>10.0} {:>9.2} {:>9.2} {:>9} {:>6.1} MiB",
            r.name,
            r.requests as f64 / r.secs,
            r.p50_ms,
            r.p99_ms,
            r.failures,
            r.peak_rss_mib
        );
    }
    let ceiling = results[0].requests as f64 / results[0].secs;
    let get = results[1].requests as f64 / results[1].secs;
    println!("signed get / healthz = {:.0}%", 100.0 * get / ceiling);
    drop(node);
    Ok(())
}

/// One writer, `subscribers` SSE streams on one space: every event must reach every
/// subscriber; reports write-to-receive latency percentiles and the node's peak RSS.
async fn hooks_fanout(
    addr: &str,
    pid: u32,
    s: &Session,
    subscribers: usize,
    events: usize,
) -> anyhow::Result<()> {
    use std::collections::HashMap;
    use tokio::sync::Mutex;
    let received: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let connected = Arc::new(AtomicUsize::new(0));
    eprintln!("connecting {subscribers} subscribers…");
    let t = now();
    let mut tasks = Vec::new();
    for i in 0..subscribers {
        let cap = capability(
            &format!("{}/hooks/kv/fan", s.space),
            "tinycloud.hooks/subscribe",
        )
        .map_err(|e| anyhow!(e))?;
        let token = invocation(
            &s.key,
            None,
            &[s.cid],
            vec![cap],
            t,
            290,
            &format!("urn:bench:sub:{i}"),
            vec![],
        )?
        .as_str()
        .to_owned();
        let body = serde_json::json!({"subscriptions": [{"space": s.space.to_string(), "service": "kv", "pathPrefix": "fan"}]});
        let (st, resp) = one_shot(
            addr,
            request(
                "POST",
                "/hooks/tickets",
                Some(&token),
                Bytes::from(body.to_string()),
            ),
        )
        .await?;
        if st != 200 {
            bail!("ticket {i} failed: {st} {}", String::from_utf8_lossy(&resp));
        }
        let v: serde_json::Value = serde_json::from_slice(&resp)?;
        let ticket = v["ticket"].as_str().unwrap_or_default().to_owned();
        let (received, connected, addr) = (received.clone(), connected.clone(), addr.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await?;
            conn.sender.ready().await?;
            let req = request(
                "GET",
                &format!("/hooks/events?ticket={ticket}"),
                None,
                Bytes::new(),
            );
            let resp = conn.sender.send_request(req).await?;
            connected.fetch_add(1, Ordering::SeqCst);
            let mut stream = SseStream::new(http_body_util::BodyDataStream::new(resp.into_body()));
            let mut seen = 0usize;
            while let Ok(ev) = stream.next_message().await {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&ev.data) else {
                    continue;
                };
                if let Some(idx) = v["path"]
                    .as_str()
                    .and_then(|p| p.strip_prefix("fan/"))
                    .and_then(|x| x.parse().ok())
                {
                    received.lock().await.push((idx, Instant::now()));
                    seen += 1;
                    if seen >= events {
                        return anyhow::Ok(());
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    while connected.load(Ordering::SeqCst) < subscribers {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let puts = sign_many(s, events, "tinycloud.kv/put", |i| format!("fan/{i}"))?;
    let mut sent: HashMap<usize, Instant> = HashMap::new();
    let mut writer = Conn::open(addr).await?;
    eprintln!("writing {events} events at ~50/s…");
    for (i, tok) in puts.iter().enumerate() {
        sent.insert(i, Instant::now());
        let (st, _) = writer
            .send(request(
                "POST",
                "/invoke",
                Some(tok),
                Bytes::from_static(b"v"),
            ))
            .await?;
        if st != 200 {
            bail!("write {i} failed: {st}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().await.len() < subscribers * events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peak = rss_kib(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    let got = received.lock().await;
    let mut lat: Vec<f64> = got
        .iter()
        .filter_map(|(i, at)| {
            sent.get(i)
                .map(|s| at.duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!("hooks fan-out: {subscribers} SSE subscribers, 1 writer, {events} events (~50/s)");
    println!(
        "delivered {}/{} ; write-to-receive p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ; node peak RSS {:.1} MiB",
        got.len(),
        subscribers * events,
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0.0),
        peak
    );
    drop(got);
    for t in tasks {
        t.abort();
    }
    Ok(())
}

/// Secret reads through the SDK, end to end: KV get of the envelope, decrypt invocation, the
/// node's re-wrap, verification of its signed answer, unwrap and AES-GCM decryption.
async fn decrypt_bench(
    url: &str,
    pid: u32,
    seconds: u64,
    concurrency: usize,
) -> anyhow::Result<()> {
    use tinycloud_sdk::{Config, LocalSigner, TinyCloud};
    let tc = Arc::new(TinyCloud::new(Config::new(url))?);
    let signer = LocalSigner::generate(1);
    tc.sign_in(&signer).await?;
    let owner = Did::pkh(1, signer.eth_address())?;
    tc.host_space(&signer, &SpaceId::new(owner, "secrets")?)
        .await?;
    tc.secrets()?.put("API_KEY", "sk-bench-value", None).await?;
    assert_eq!(tc.secrets()?.get("API_KEY", None).await?, "sk-bench-value");
    let space = SpaceId::new(Did::pkh(1, signer.eth_address())?, "secrets")?;
    let raw = tc.kv_in(space.clone()).get("vault/secrets/API_KEY").await?;
    let env: Arc<tinycloud_sdk::encryption::Envelope> =
        Arc::new(serde_json::from_slice(&raw.data)?);
    let aad = Arc::new(tinycloud_sdk::secrets::aad(&space, "vault/secrets/API_KEY"));
    for (label, full) in [
        ("decrypt round trip (node re-wrap, verify, AES-GCM)", false),
        ("secret read (KV get + decrypt)", true),
    ] {
        let done = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (tc, done, env, aad) = (tc.clone(), done.clone(), env.clone(), aad.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    if full {
                        let v = tc.secrets()?.get("API_KEY", None).await?;
                        anyhow::ensure!(v == "sk-bench-value", "wrong plaintext");
                    } else {
                        let p = tc.decrypt(&env, &aad).await?;
                        anyhow::ensure!(!p.is_empty(), "empty plaintext");
                    }
                    lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(lat)
            }));
        }
        report(label, concurrency, pid, &done, start, tasks).await?;
    }
    Ok(())
}

async fn report(
    label: &str,
    concurrency: usize,
    pid: u32,
    done: &AtomicUsize,
    start: Instant,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<f64>>>>,
) -> anyhow::Result<()> {
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{label}, SDK, {concurrency} concurrent: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, node peak RSS {:.1} MiB",
        done.load(Ordering::Relaxed) as f64 / secs,
        pct(0.5),
        pct(0.99),
        rss_kib(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}
