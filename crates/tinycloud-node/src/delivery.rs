//! The webhook dispatcher: runs deliveries over the app state (the `webhooks` service gives
//! the settings, signatures, URL rules and the checked client).
//!
//! Each subscription keeps a cursor into its space's event log; the dispatcher sends the next
//! matching event, advances the cursor on a 2xx, and otherwise schedules a retry.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::now;
use crate::hooks::{authority_holds, event_json, in_scope, Lapse};
use crate::keys::open;
use crate::state::AppState;
use crate::store::{DeliveryRow, StoredEvent, WebhookRow};
use crate::webhooks::{check_url, delivery_client, scope_of, signature};

fn delivery_id(webhook: &str, seq: u64) -> String {
    let mut h = blake3::Hasher::new();
    h.update(webhook.as_bytes());
    h.update(b"\0");
    h.update(&seq.to_be_bytes());
    hex::encode(&h.finalize().as_bytes()[..16])
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
    // Named hosts are checked by the client's resolver, on the one resolution it connects with.
    if let Err(err) = check_url(&w.callback_url, state.webhook_settings.allow_private) {
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

/// Stops a webhook for good because its authority ended; nothing more is delivered.
async fn disable(state: &AppState, w: &WebhookRow, reason: &str) {
    tracing::info!(webhook = %w.id, %reason, "webhook disabled");
    if let Err(e) = state.webhooks.disable_webhook(&w.id, reason).await {
        tracing::warn!(webhook = %w.id, error = %e, "cannot disable webhook");
    }
}

/// Delivers what is due for one subscription; returns whether it made progress.
async fn service_one(state: &AppState, client: &reqwest::Client, w: &WebhookRow) -> bool {
    let now_ms = now().as_millis();
    if w.next_attempt_at > now_ms {
        return false;
    }
    // A webhook lives only as long as the authority it was registered under: checked before
    // every delivery (and retry) by the same rule that ends SSE streams.
    let Some(proofs) = &w.proofs else {
        disable(
            state,
            w,
            "registered before its proofs were recorded; register it again",
        )
        .await;
        return false;
    };
    match authority_holds(&state.auth, proofs, now()).await {
        Ok(_) => {}
        Err(Lapse::Ended(reason)) => {
            disable(state, w, &format!("its authority ended: {reason}")).await;
            return false;
        }
        Err(Lapse::Store(e)) => {
            tracing::warn!(webhook = %w.id, error = %e, "cannot check webhook authority; will retry");
            return false;
        }
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

/// Events logged after the cursors of active webhooks: what the dispatcher has still to look
/// at (each is delivered, or skipped as out of scope).
async fn queue_depth(state: &AppState, hooks: &[WebhookRow]) -> u64 {
    let mut last = std::collections::HashMap::<&str, u64>::new();
    let mut depth = 0u64;
    for w in hooks {
        let newest = match last.get(w.space.as_str()) {
            Some(n) => *n,
            None => {
                let n = state.index.last_event(&w.space).await.unwrap_or(0);
                last.insert(&w.space, n);
                n
            }
        };
        depth = depth.saturating_add(newest.saturating_sub(w.cursor));
    }
    depth
}

/// Runs the dispatcher until the process ends: woken by new events and every 250 ms for
/// retries that fall due.
pub async fn dispatch(state: Arc<AppState>) {
    let client = match delivery_client(state.webhook_settings.allow_private) {
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
        if crate::telemetry::enabled() {
            crate::telemetry::webhook_queue_depth(queue_depth(&state, &hooks).await);
        }
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
