//! Webhook deliveries: at-least-once, in order per subscription, signed, retried with backoff,
//! persisted (a restart resumes where it stopped), dead-lettered after the last attempt.
//!
//! Each subscription keeps a cursor into its space's event log; the dispatcher sends the next
//! matching event, advances the cursor on a 2xx, and otherwise schedules a retry. Deliveries
//! carry the reference's headers — `X-TinyCloud-Delivery-Id`, `-Event-Id`, `-Subscription-Id`,
//! `X-TinyCloud-Signature: sha256=<hex HMAC-SHA256(secret, body)>` — plus
//! `X-TinyCloud-Timestamp` and `X-TinyCloud-Signature-V2: sha256=<hex HMAC(secret, ts "." body)>`
//! so receivers can refuse replays. Secrets are stored sealed (AES-256-GCM, node-derived key).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::hooks::{event_json, in_scope, Scope};
use crate::state::{now, AppState};
use crate::store::{DeliveryRow, StoredEvent, WebhookRow};

/// Delivery settings.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Attempts per event before it is dead-lettered.
    pub max_attempts: u32,
    /// Delay before retry n (the last value repeats).
    pub backoff: Vec<Duration>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Allow `http://` and private/loopback destinations (local development and tests).
    pub allow_private: bool,
    /// Most active subscriptions per space.
    pub max_per_space: usize,
}

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex HMAC-SHA256(secret, data)>`.
pub fn signature(secret: &[u8], data: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <HmacSha256 as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(data);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seals a secret: `nonce(12) ‖ AES-256-GCM(ciphertext ‖ tag)`.
pub fn seal(key: &[u8; 32], secret: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    // Encryption of an in-memory buffer cannot fail.
    out.extend(
        cipher
            .encrypt(&Nonce::from(nonce), secret)
            .unwrap_or_default(),
    );
    out
}

/// Opens a sealed secret.
pub fn open(key: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, ct) = sealed.split_at_checked(12)?;
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    Aes256Gcm::new(key.into())
        .decrypt(&Nonce::from(nonce), ct)
        .ok()
}

fn private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64/10
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| private_ip(IpAddr::V4(v4)))
        }
    }
}

/// Checks a callback URL: https, no userinfo or fragment, and (unless allowed) a host that
/// does not resolve to a private, loopback or link-local address.
pub async fn validate_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("invalid callback URL: {e}"))?;
    match u.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err("callback URL must use https".into()),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("callback URL must not contain credentials".into());
    }
    if u.fragment().is_some() {
        return Err("callback URL must not contain a fragment".into());
    }
    let host = u.host_str().ok_or("callback URL needs a host")?.to_owned();
    if !allow_private {
        let port = u.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .map(|a| a.ip())
            .collect();
        if addrs.is_empty() || addrs.iter().any(|ip| private_ip(*ip)) {
            return Err(format!(
                "callback host {host} resolves to a private or local address"
            ));
        }
    }
    Ok(u)
}

fn delivery_id(webhook: &str, seq: u64) -> String {
    let mut h = blake3::Hasher::new();
    h.update(webhook.as_bytes());
    h.update(b"\0");
    h.update(&seq.to_be_bytes());
    hex::encode(&h.finalize().as_bytes()[..16])
}

/// The subscription scope a webhook row stands for.
pub fn scope_of(w: &WebhookRow) -> Scope {
    Scope {
        space: w.space.clone(),
        service: w.service.clone(),
        path_prefix: w.path_prefix.clone(),
        abilities: w.abilities.clone(),
    }
}

enum Attempt {
    Delivered(u16),
    Failed(Option<u16>, String),
}

async fn send(
    state: &AppState,
    client: &reqwest::Client,
    w: &WebhookRow,
    e: &StoredEvent,
) -> Attempt {
    let Some(secret) = open(&state.webhook_key, &w.sealed_secret) else {
        return Attempt::Failed(None, "stored secret cannot be opened".into());
    };
    if let Err(err) = validate_url(&w.callback_url, state.webhook_settings.allow_private).await {
        return Attempt::Failed(None, err);
    }
    let body = event_json(e).to_string();
    let ts = now().as_secs().to_string();
    let mut signed = ts.clone().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body.as_bytes());
    let r = client
        .post(&w.callback_url)
        .timeout(state.webhook_settings.timeout)
        .header("content-type", "application/json")
        .header("x-tinycloud-delivery-id", delivery_id(&w.id, e.seq))
        .header("x-tinycloud-event-id", e.seq.to_string())
        .header("x-tinycloud-subscription-id", &w.id)
        .header("x-tinycloud-signature", signature(&secret, body.as_bytes()))
        .header("x-tinycloud-timestamp", &ts)
        .header("x-tinycloud-signature-v2", signature(&secret, &signed))
        .body(body)
        .send()
        .await;
    match r {
        Ok(resp) if resp.status().is_success() => Attempt::Delivered(resp.status().as_u16()),
        Ok(resp) => Attempt::Failed(
            Some(resp.status().as_u16()),
            format!("HTTP {}", resp.status()),
        ),
        Err(err) => Attempt::Failed(None, err.to_string()),
    }
}

/// Delivers what is due for one subscription; returns whether it made progress.
async fn service_one(state: &AppState, client: &reqwest::Client, w: &WebhookRow) -> bool {
    let now_ms = now().as_millis();
    if w.next_attempt_at > now_ms {
        return false;
    }
    let scope = scope_of(w);
    // The log may have been pruned past the cursor: those events are lost to this subscription.
    if let Ok(Some(first)) = state.index.first_event(&w.space).await {
        if first > w.cursor + 1 {
            let _ = state
                .webhooks
                .record_delivery(&DeliveryRow {
                    id: delivery_id(&w.id, w.cursor + 1),
                    webhook: w.id.clone(),
                    seq: w.cursor + 1,
                    status: "dead".into(),
                    attempts: 0,
                    last_status: None,
                    last_error: Some(format!(
                        "events {}..{} left the log before delivery",
                        w.cursor + 1,
                        first - 1
                    )),
                    at: now_ms,
                })
                .await;
            let _ = state.webhooks.advance_webhook(&w.id, first - 1).await;
            return true;
        }
    }
    let Ok(events) = state.index.events_after(&w.space, w.cursor, 100).await else {
        return false;
    };
    let Some(next) = events.iter().find(|e| in_scope(&scope, e)) else {
        // Nothing for this subscription: skip past what was read.
        if let Some(last) = events.last() {
            let _ = state.webhooks.advance_webhook(&w.id, last.seq).await;
            return true;
        }
        return false;
    };
    // Events before `next` did not match: move past them first.
    if next.seq > w.cursor + 1 {
        let _ = state.webhooks.advance_webhook(&w.id, next.seq - 1).await;
    }
    let attempts = w.attempts + 1;
    let row = |status: &str, last_status: Option<u16>, last_error: Option<String>| DeliveryRow {
        id: delivery_id(&w.id, next.seq),
        webhook: w.id.clone(),
        seq: next.seq,
        status: status.into(),
        attempts,
        last_status,
        last_error,
        at: now().as_millis(),
    };
    match send(state, client, w, next).await {
        Attempt::Delivered(status) => {
            let _ = state
                .webhooks
                .record_delivery(&row("delivered", Some(status), None))
                .await;
            let _ = state.webhooks.advance_webhook(&w.id, next.seq).await;
            true
        }
        Attempt::Failed(status, error) => {
            let dead = attempts >= state.webhook_settings.max_attempts;
            tracing::warn!(webhook = %w.id, seq = next.seq, attempts, %error, dead, "webhook delivery failed");
            let _ = state
                .webhooks
                .record_delivery(&row(
                    if dead { "dead" } else { "retrying" },
                    status,
                    Some(error),
                ))
                .await;
            if dead {
                let _ = state.webhooks.advance_webhook(&w.id, next.seq).await;
            } else {
                let backoff = &state.webhook_settings.backoff;
                let delay = backoff
                    .get(usize::try_from(attempts - 1).unwrap_or(usize::MAX))
                    .or(backoff.last())
                    .copied()
                    .unwrap_or(Duration::from_secs(30));
                let at =
                    now().as_millis() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                let _ = state.webhooks.retry_webhook(&w.id, attempts, at).await;
            }
            false
        }
    }
}

/// Runs the dispatcher until the process ends: woken by new events and every 250 ms for
/// retries that fall due.
pub async fn dispatch(state: Arc<AppState>) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook client unavailable; deliveries disabled");
            return;
        }
    };
    let mut bus = state.index.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = bus.recv() => {},
            _ = tick.tick() => {},
        }
        let Ok(hooks) = state.webhooks.active_webhooks().await else {
            continue;
        };
        for w in hooks {
            // Drain what is due for this subscription (bounded per round).
            let mut current = w;
            for _ in 0..50 {
                if !service_one(&state, &client, &current).await {
                    break;
                }
                match state.webhooks.webhook(&current.id).await {
                    Ok(Some(next)) if next.active => current = next,
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_tamper() {
        let k = [9u8; 32];
        let s = seal(&k, b"shh");
        assert_eq!(open(&k, &s).as_deref(), Some(&b"shh"[..]));
        let mut t = s.clone();
        t[15] ^= 1;
        assert!(open(&k, &t).is_none());
        assert!(open(&[8u8; 32], &s).is_none());
        assert!(!s.windows(3).any(|w| w == b"shh"));
    }

    #[test]
    fn signatures_match_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[tokio::test]
    async fn url_rules() {
        assert!(validate_url("http://example.com/x", false).await.is_err());
        assert!(validate_url("https://user:pw@example.com/x", false)
            .await
            .is_err());
        assert!(validate_url("https://127.0.0.1/x", false).await.is_err());
        assert!(validate_url("https://[::1]/x", false).await.is_err());
        assert!(validate_url("https://10.1.2.3/x", false).await.is_err());
        assert!(validate_url("https://169.254.169.254/latest", false)
            .await
            .is_err());
        assert!(validate_url("http://127.0.0.1:9/x", true).await.is_ok());
        assert!(validate_url("ftp://x/y", true).await.is_err());
        assert!(private_ip("::ffff:192.168.1.1".parse().unwrap()));
        assert!(!private_ip("93.184.216.34".parse().unwrap()));
    }
}
