//! Test helpers: the real `openkey` binary on a free port with a temp data dir (stderr captured
//! at RUST_LOG=debug), an HTTP client with a cookie jar and CSRF token, and a software passkey.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

/// A running server.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The WebAuthn origin (`http://localhost:PORT`).
    pub origin: Url,
    /// Data dir.
    pub dir: PathBuf,
    /// Captured stderr.
    pub log: PathBuf,
}

impl Server {
    /// Starts the binary with extra flags.
    pub fn start(extra: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!("openkey-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_openkey"))
            .arg("serve")
            .args(["--port", "0", "--data-dir"])
            .arg(dir.join("data"))
            .args(extra)
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let port = base.rsplit(':').next().unwrap().to_string();
        Server {
            child,
            origin: Url::parse(&format!("http://localhost:{port}")).unwrap(),
            base,
            dir,
            log,
        }
    }

    /// A fresh client (own cookie jar).
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: self.base.clone(),
            csrf: String::new(),
        }
    }

    /// The newest outbox mail to `email`.
    pub fn last_mail(&self, email: &str) -> String {
        let dir = self.dir.join("data").join("outbox");
        let mut mails: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        mails.sort();
        mails
            .into_iter()
            .rev()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .find(|m| m.starts_with(&format!("To: {email}\n")))
            .unwrap_or_else(|| panic!("no mail to {email}"))
    }

    /// The 6-digit code in the newest mail to `email`.
    pub fn last_code(&self, email: &str) -> String {
        let mail = self.last_mail(email);
        let i = mail.find("code is ").unwrap() + "code is ".len();
        mail[i..i + 6].to_string()
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP client with cookies.
pub struct Client {
    /// reqwest client (cookie store, no redirects).
    pub http: reqwest::Client,
    /// Server base URL.
    pub base: String,
    /// CSRF token (after `csrf()`).
    pub csrf: String,
}

impl Client {
    /// Fetches the CSRF token (and cookie).
    pub async fn csrf(&mut self) -> String {
        let v: Value = self
            .http
            .get(format!("{}/api/csrf", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.csrf = v["token"].as_str().unwrap().to_string();
        self.csrf.clone()
    }

    /// GET.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// POST JSON with the CSRF header.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST a form with the CSRF field.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut all: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.http
            .post(format!("{}{path}", self.base))
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    /// GET JSON, asserting 200.
    pub async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }
}

/// A software passkey (user verification reported).
pub struct Passkey(SoftPasskey);

impl Passkey {
    /// A new authenticator.
    pub fn new() -> Self {
        Passkey(SoftPasskey::new(true))
    }

    /// Runs a registration ceremony through `start`/`finish`.
    pub async fn register(
        &mut self,
        c: &Client,
        origin: &Url,
        start: &str,
        finish: &str,
        body: Value,
    ) -> reqwest::Response {
        let r = c.post_json(start, &body).await;
        assert_eq!(r.status(), 200, "{start}");
        let v: Value = r.json().await.unwrap();
        let ccr: CreationChallengeResponse = serde_json::from_value(v["options"].clone()).unwrap();
        let cred = self.0.do_registration(origin.clone(), ccr).unwrap();
        c.post_json(
            finish,
            &serde_json::json!({ "ceremony": v["ceremony"], "credential": cred }),
        )
        .await
    }

    /// Runs an authentication ceremony through `start`/`finish`.
    pub async fn authenticate(
        &mut self,
        c: &Client,
        origin: &Url,
        start: &str,
        finish: &str,
        body: Value,
    ) -> reqwest::Response {
        let r = c.post_json(start, &body).await;
        assert_eq!(r.status(), 200, "{start}");
        let v: Value = r.json().await.unwrap();
        let rcr: RequestChallengeResponse = serde_json::from_value(v["options"].clone()).unwrap();
        let cred = self.0.do_authentication(origin.clone(), rcr).unwrap();
        c.post_json(
            finish,
            &serde_json::json!({ "ceremony": v["ceremony"], "credential": cred }),
        )
        .await
    }
}

/// Signs up `email` with a new passkey; returns the signed-in client and the passkey.
pub async fn signup(s: &Server, email: &str) -> (Client, Passkey) {
    let mut c = s.client();
    c.csrf().await;
    let mut pk = Passkey::new();
    let r = pk
        .register(
            &c,
            &s.origin,
            "/api/signup/start",
            "/api/signup/finish",
            serde_json::json!({ "email": email, "passkey_name": "first" }),
        )
        .await;
    assert_eq!(
        r.status(),
        200,
        "signup finish: {}",
        r.text().await.unwrap()
    );
    (c, pk)
}

/// Re-verifies with the passkey in this session.
pub async fn reverify(s: &Server, c: &Client, pk: &mut Passkey) {
    let r = pk
        .authenticate(
            c,
            &s.origin,
            "/api/passkeys/verify/start",
            "/api/passkeys/verify/finish",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "reverify: {}", r.text().await.unwrap());
}

/// The texts between `<code>` and `</code>` in a page.
pub fn codes_in(html: &str) -> Vec<String> {
    html.split("<code>")
        .skip(1)
        .filter_map(|p| p.split("</code>").next())
        .map(str::to_string)
        .collect()
}
