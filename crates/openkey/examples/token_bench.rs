//! Token-endpoint benchmark: code exchange (client_secret_basic + PKCE S256) answered with an
//! ES256 ID token, access and refresh tokens, over HTTP against the real router on a loopback
//! port, with the embedded SQLite store and the software sealer in a temp data dir.
//!
//! `cargo run --release -p openkey --example token_bench [-- EXCHANGES [CONCURRENCY]]`
//! (defaults 5000 and 16). Codes are minted directly in the store beforehand, so the figure is
//! the token endpoint alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use openkey::config::{Config, SealerKind};
use openkey::keys::SoftwareSealer;
use openkey::oidc::{digest, random_token};
use openkey::state::AppState;
use openkey::store::sqlite::SqliteStore;
use openkey::store::{OidcCode, OidcGrant, OidcStore, Store, User};
use sha2::{Digest, Sha256};

const REDIRECT: &str = "https://app.example/callback";

fn config(dir: &std::path::Path, port: u16) -> Config {
    Config {
        port,
        data_dir: dir.to_path_buf(),
        issuer: format!("http://localhost:{port}"),
        rp_id: "localhost".into(),
        origin: url::Url::parse(&format!("http://localhost:{port}")).expect("origin"),
        uv_window: Duration::from_secs(300),
        session_ttl: Duration::from_secs(3600),
        sealer: SealerKind::Software,
        dstack_socket: "/nonexistent".into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5000);
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let warmup = 200.min(total);

    let dir = std::env::temp_dir().join(format!("openkey-bench-{}", uuid::Uuid::new_v4()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let sqlite = Arc::new(SqliteStore::open(&dir)?);
    let store: Arc<dyn Store> = sqlite.clone();
    let sealer = Arc::new(SoftwareSealer::open(&dir)?);
    let state = AppState::assemble(config(&dir, port), store.clone(), sealer, None)?;

    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: "bench@example.com".into(),
        webauthn_handle: uuid::Uuid::new_v4().to_string(),
        created_at: openkey::clock::now_ms(),
    };
    store.create_user(&user)?;
    state.keys.create_managed(&user.id, "Owner key", true)?;
    let (client, secret) =
        openkey::oidc::clients::add(sqlite.as_ref(), "Bench", &[REDIRECT.into()], false)?;
    let secret = secret.ok_or("no secret")?;

    // One code per exchange, all with the same verifier.
    let verifier = format!("{}{}", random_token(), random_token());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let now = openkey::clock::now_ms();
    let mut codes = Vec::with_capacity(total + warmup);
    for _ in 0..total + warmup {
        let code = random_token();
        let grant = OidcGrant {
            id: random_token(),
            client_id: client.id.clone(),
            user_id: user.id.clone(),
            scope: "openid email".into(),
            nonce: Some("n".into()),
            auth_time: now / 1000,
            created_at: now,
            revoked_at: None,
        };
        sqlite.create_code(
            &grant,
            &OidcCode {
                code_hash: digest(&code),
                grant_id: grant.id.clone(),
                redirect_uri: REDIRECT.into(),
                code_challenge: Some(challenge.clone()),
                // Long enough for the whole run.
                expires_at: now + 3_600_000,
            },
        )?;
        codes.push(code);
    }

    let app = openkey::app::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let url = format!("http://127.0.0.1:{port}/oidc/token");

    let run = |codes: Vec<String>| {
        let http = http.clone();
        let url = url.clone();
        let client_id = client.id.clone();
        let secret = secret.clone();
        let verifier = verifier.clone();
        async move {
            let codes = Arc::new(tokio::sync::Mutex::new(codes));
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (http, url, codes) = (http.clone(), url.clone(), codes.clone());
                let (client_id, secret, verifier) =
                    (client_id.clone(), secret.clone(), verifier.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    loop {
                        let Some(code) = codes.lock().await.pop() else {
                            break;
                        };
                        let t = Instant::now();
                        let r = http
                            .post(&url)
                            .basic_auth(&client_id, Some(&secret))
                            .form(&[
                                ("grant_type", "authorization_code"),
                                ("code", code.as_str()),
                                ("redirect_uri", REDIRECT),
                                ("code_verifier", verifier.as_str()),
                            ])
                            .send()
                            .await
                            .expect("request");
                        assert_eq!(r.status(), 200, "exchange failed");
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.expect("task"));
            }
            all
        }
    };

    let warm: Vec<String> = codes.split_off(total);
    run(warm).await;
    let started = Instant::now();
    let mut lat = run(codes).await;
    let elapsed = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "token endpoint (code exchange + ES256 ID token): {total} exchanges, concurrency {concurrency}: {:.0}/s; p50 {:.2} ms, p99 {:.2} ms",
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
