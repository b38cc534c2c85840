//! The foreign client's tokens: ReCap, SIWE, CACAO and UCAN 0.10, built by hand as the
//! reference clients build them.

use super::*;

// ---------------------------------------------------------------------------------------------
// ReCap + SIWE + CACAO
// ---------------------------------------------------------------------------------------------

/// The ReCap capability object (`att` + `prf`) for `caps` = (resource, ability) pairs.
pub fn recap_object(caps: &[(String, String)], prf: &[String]) -> Value {
    let mut att = std::collections::BTreeMap::<String, Map<String, Value>>::new();
    for (res, ab) in caps {
        att.entry(res.clone())
            .or_default()
            .insert(ab.clone(), json!([{}]));
    }
    json!({"att": att, "prf": prf})
}

/// The statement rendering the node recomputes (EIP-5573): resources sorted, per resource
/// the namespaces sorted, per namespace the action names sorted, `(n)` counted across lines.
pub fn recap_statement(caps: &[(String, String)]) -> String {
    let mut by_res =
        std::collections::BTreeMap::<&str, std::collections::BTreeMap<&str, Vec<&str>>>::new();
    for (res, ab) in caps {
        let (ns, name) = ab.split_once('/').expect("namespace/name");
        by_res
            .entry(res)
            .or_default()
            .entry(ns)
            .or_default()
            .push(name);
    }
    let mut s = String::from(
        "I further authorize the stated URI to perform the following actions on my behalf:",
    );
    let mut n = 0;
    for (res, nss) in by_res {
        for (ns, mut names) in nss {
            names.sort();
            names.dedup();
            n += 1;
            let list: Vec<String> = names.iter().map(|a| format!("'{a}'")).collect();
            s.push_str(&format!(" ({n}) '{ns}': {} for '{res}'.", list.join(", ")));
        }
    }
    s
}

/// A SIWE (EIP-4361) message with fields as strings, as the `siwe` package holds them.
pub struct Siwe {
    pub domain: String,
    pub address: String,
    pub statement: Option<String>,
    pub uri: String,
    pub chain_id: u64,
    pub nonce: String,
    pub issued_at: String,
    pub expiration_time: Option<String>,
    pub not_before: Option<String>,
    pub resources: Vec<String>,
}

impl Siwe {
    /// A sign-in message from `wallet` to `uri` granting `caps` (ReCap) citing `prf` (CACAO
    /// bytes of parents, rendered base58btc in the recap).
    pub fn recap(
        wallet: &Wallet,
        uri: &str,
        caps: &[(String, String)],
        prf: &[String],
        expiration: Option<i64>,
    ) -> Siwe {
        let now = now_secs();
        let obj = recap_object(caps, prf);
        Siwe {
            domain: "app.example.com".into(),
            address: wallet.address(),
            statement: Some(recap_statement(caps)),
            uri: uri.to_owned(),
            chain_id: 1,
            nonce: siwe_nonce(),
            issued_at: iso(now),
            expiration_time: expiration.map(iso),
            not_before: None,
            resources: vec![format!("urn:recap:{}", b64url(&jcs(&obj)))],
        }
    }

    /// The EIP-4361 text the wallet signs.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} wants you to sign in with your Ethereum account:\n{}\n\n",
            self.domain, self.address
        );
        if let Some(st) = &self.statement {
            s.push_str(st);
            s.push_str("\n\n");
        }
        s.push_str(&format!(
            "URI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.uri, self.chain_id, self.nonce, self.issued_at
        ));
        if let Some(e) = &self.expiration_time {
            s.push_str(&format!("\nExpiration Time: {e}"));
        }
        if let Some(n) = &self.not_before {
            s.push_str(&format!("\nNot Before: {n}"));
        }
        if !self.resources.is_empty() {
            s.push_str("\nResources:");
            for r in &self.resources {
                s.push_str(&format!("\n- {r}"));
            }
        }
        s
    }

    /// Signs and wraps into a CACAO: `{h: {t: "eip4361"}, p: {…}, s: {t: "eip191", s}}`.
    pub fn cacao(&self, wallet: &Wallet) -> Cacao {
        self.cacao_with_signature(wallet.personal_sign(&self.text()))
    }

    /// The CACAO of this message with the given signature bytes.
    pub fn cacao_with_signature(&self, sig: Vec<u8>) -> Cacao {
        let mut p = vec![
            ("domain".to_owned(), Cbor::text(&self.domain)),
            (
                "iss".to_owned(),
                Cbor::Text(format!("did:pkh:eip155:{}:{}", self.chain_id, self.address)),
            ),
            ("aud".to_owned(), Cbor::text(&self.uri)),
            ("version".to_owned(), Cbor::Uint(1)),
            ("nonce".to_owned(), Cbor::text(&self.nonce)),
            ("iat".to_owned(), Cbor::text(&self.issued_at)),
        ];
        if let Some(st) = &self.statement {
            p.push(("statement".into(), Cbor::text(st)));
        }
        if let Some(e) = &self.expiration_time {
            p.push(("exp".into(), Cbor::text(e)));
        }
        if let Some(n) = &self.not_before {
            p.push(("nbf".into(), Cbor::text(n)));
        }
        if !self.resources.is_empty() {
            p.push((
                "resources".into(),
                Cbor::Array(self.resources.iter().map(|r| Cbor::text(r)).collect()),
            ));
        }
        let c = Cbor::Map(vec![
            (
                "h".into(),
                Cbor::Map(vec![("t".into(), Cbor::text("eip4361"))]),
            ),
            ("p".into(), Cbor::Map(p)),
            (
                "s".into(),
                Cbor::Map(vec![
                    ("t".into(), Cbor::text("eip191")),
                    ("s".into(), Cbor::Bytes(sig)),
                ]),
            ),
        ]);
        Cacao { cbor: c.to_vec() }
    }
}

/// A CACAO as bytes.
pub struct Cacao {
    pub cbor: Vec<u8>,
}

impl Cacao {
    /// The `Authorization` header value: padded base64url of the CBOR.
    pub fn header(&self) -> String {
        b64url_padded(&self.cbor)
    }

    pub fn cid(&self) -> String {
        cid(&self.cbor)
    }
}

// ---------------------------------------------------------------------------------------------
// UCAN 0.10 JWT
// ---------------------------------------------------------------------------------------------

/// A UCAN being built. Payload keys are written in sorted order, as the reference signer
/// (canonical JSON) writes them.
pub struct Ucan {
    pub header: Value,
    pub iss: String,
    pub aud: String,
    pub nbf: Option<Value>,
    pub exp: Value,
    pub nnc: String,
    pub fct: Option<Vec<Value>>,
    pub prf: Vec<String>,
    pub att: Value,
}

impl Ucan {
    /// An invocation from `key` on `caps`, self-addressed, `exp` = now + 120 s, a fresh
    /// `urn:uuid:` nonce, caveats `[{}]` (§2.5).
    pub fn invocation(key: &EdKey, prf: &[String], caps: &[(String, String)]) -> Ucan {
        Ucan {
            header: json!({"alg": "EdDSA", "typ": "JWT", "ucv": "0.10.0"}),
            iss: key.vm(),
            aud: key.did(),
            nbf: None,
            exp: json!(now_secs() + 120),
            nnc: uuid_nonce(),
            fct: None,
            prf: prf.to_vec(),
            att: att(caps),
        }
    }

    /// A delegation from `key` to `aud`.
    pub fn delegation(
        key: &EdKey,
        aud: &str,
        prf: &[String],
        caps: &[(String, String)],
        exp_secs: i64,
    ) -> Ucan {
        Ucan {
            aud: aud.to_owned(),
            exp: json!(now_secs() + exp_secs),
            ..Ucan::invocation(key, prf, caps)
        }
    }

    pub fn audience(mut self, aud: &str) -> Ucan {
        self.aud = aud.to_owned();
        self
    }

    pub fn facts(mut self, f: Vec<Value>) -> Ucan {
        self.fct = Some(f);
        self
    }

    pub fn payload(&self) -> Value {
        let mut p = Map::new();
        p.insert("att".into(), self.att.clone());
        p.insert("aud".into(), json!(self.aud));
        p.insert("exp".into(), self.exp.clone());
        if let Some(f) = &self.fct {
            p.insert("fct".into(), json!(f));
        }
        p.insert("iss".into(), json!(self.iss));
        if let Some(n) = &self.nbf {
            p.insert("nbf".into(), n.clone());
        }
        p.insert("nnc".into(), json!(self.nnc));
        p.insert("prf".into(), json!(self.prf));
        Value::Object(p)
    }

    /// `base64url(header).base64url(payload).base64url(ed25519(signing input))`.
    pub fn sign(&self, key: &EdKey) -> String {
        let input = format!(
            "{}.{}",
            b64url(self.header.to_string().as_bytes()),
            b64url(self.payload().to_string().as_bytes())
        );
        let sig = key.sk.sign(input.as_bytes());
        format!("{input}.{}", b64url(&sig.to_bytes()))
    }
}

/// `att` = `{resource: {ability: [{}]}}`.
pub fn att(caps: &[(String, String)]) -> Value {
    let mut m = Map::new();
    for (res, ab) in caps {
        let entry = m
            .entry(res.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = entry {
            o.insert(ab.clone(), json!([{}]));
        }
    }
    Value::Object(m)
}

pub fn cap(res: impl Into<String>, ability: &str) -> (String, String) {
    (res.into(), ability.to_owned())
}
