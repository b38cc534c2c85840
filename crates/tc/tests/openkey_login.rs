//! `tc auth login --openkey URL --device` end to end: an OpenKey server (in process, through
//! its library), a node (`tc node serve`), a person signed up with a software passkey who
//! approves each request by its user code, then `tc kv put` / `get` under the OpenKey-held
//! owner key.

mod common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use common::{serve, Persona};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, Url};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts OpenKey in a thread of its own; returns its base URL.
fn start_openkey(dir: &std::path::Path) -> String {
    let port = free_port();
    let args = openkey::config::ServeArgs {
        port,
        bind: "127.0.0.1".into(),
        data_dir: dir.to_path_buf(),
        issuer: None,
        rp_id: "localhost".into(),
        origin: None,
        uv_window_secs: 300,
        session_ttl_secs: 3600,
        sealer: openkey::config::SealerKind::Software,
        dstack_socket: "/nonexistent".into(),
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(openkey::server::serve(args));
    });
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return base;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("OpenKey did not start");
}

struct Person {
    http: reqwest::Client,
    base: String,
    csrf: String,
}

impl Person {
    async fn signup(base: &str, email: &str) -> Person {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let v: Value = http
            .get(format!("{base}/api/csrf"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let p = Person {
            http,
            base: base.into(),
            csrf: v["token"].as_str().unwrap().into(),
        };
        let port = base.rsplit(':').next().unwrap();
        let origin = Url::parse(&format!("http://localhost:{port}")).unwrap();
        let v: Value = p
            .post_json(
                "/api/signup/start",
                &json!({ "email": email, "passkey_name": "first" }),
            )
            .await
            .json()
            .await
            .unwrap();
        let ccr: CreationChallengeResponse = serde_json::from_value(v["options"].clone()).unwrap();
        let cred = SoftPasskey::new(true).do_registration(origin, ccr).unwrap();
        let r = p
            .post_json(
                "/api/signup/finish",
                &json!({ "ceremony": v["ceremony"], "credential": cred }),
            )
            .await;
        assert_eq!(r.status(), 200);
        p
    }

    async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.http
            .post(format!("{}{path}", self.base))
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    /// Enters `code`, reviews the request unchanged and approves it.
    async fn approve(&self, code: &str) {
        let r = self
            .post_form("/approve/device", &[("user_code", code)])
            .await;
        assert_eq!(r.status(), 303, "user code accepted");
        let page = r.headers()["location"].to_str().unwrap().to_string();
        let html = self
            .http
            .get(format!("{}{page}/review", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let i = html.find("name=\"digest\" value=\"").expect("review page") + 21;
        let digest = html[i..].split('"').next().unwrap().to_string();
        let r = self
            .post_form(&format!("{page}/approve"), &[("digest", &digest)])
            .await;
        assert_eq!(r.status(), 200, "approved");
    }
}

#[test]
fn login_with_openkey_device_code_then_write_to_the_space() {
    let node = serve();
    let dir = tempfile::tempdir().unwrap();
    let ok = start_openkey(&dir.path().join("openkey"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let person = rt.block_on(Person::signup(&ok, "owner@example.com"));
    let owner_address = rt.block_on(async {
        let keys: Value = person
            .http
            .get(format!("{ok}/api/keys"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        keys[0]["address"].as_str().unwrap().to_string()
    });

    let o = Persona::new(&node);
    let mut child = o.spawn(&["--json", "auth", "login", "--openkey", &ok, "--device"]);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Connect (learn the address), the session delegation, and the space creation.
    let mut approved = 0;
    let mut seen = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        seen.push_str(&line);
        seen.push('\n');
        if let Some(code) = line.split("enter the code ").nth(1) {
            rt.block_on(person.approve(code.trim()));
            approved += 1;
        }
    }
    let (code, out, _) = common::finish(child, 30);
    assert_eq!(code, Some(0), "tc auth login failed: {seen}");
    assert!(approved >= 2, "{seen}");
    let v = common::parse(out.as_bytes());
    assert_eq!(v["ownerKey"], "openkey");
    assert!(
        v["ownerDid"].as_str().unwrap().ends_with(&owner_address),
        "{v}"
    );

    o.tc(&["kv", "put", "notes/hello.md", "written with an OpenKey key"])
        .assert()
        .success();
    let got = o.ok(&["kv", "get", "notes/hello.md"]);
    assert_eq!(
        String::from_utf8_lossy(&got).trim(),
        "written with an OpenKey key"
    );
}
