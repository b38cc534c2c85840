//! `POST /hooks/tickets` and `GET /hooks/events` (Server-Sent Events).
//!
//! Unlike the reference, the ticket route verifies the invocation exactly as `/invoke` does
//! (signature, chain, revocation, single use), streams resume from the per-space event log
//! with `Last-Event-ID` (an explicit `reset` event when the log no longer reaches back that
//! far), and a stream ends as soon as the delegations it rests on are revoked or expire.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tinycloud_auth::ability::Ability;
use tinycloud_auth::cid::{parse_cid, Cid};
use tinycloud_auth::resource::Resource;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::authorization;
use crate::error::{ApiError, ApiResult};
use crate::hooks::{event_json, Scope, Ticket, MAX_SCOPES, MAX_TICKET_SECS};
use crate::state::{now, SharedState};
use crate::store::StoredEvent;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TicketRequest {
    subscriptions: Vec<Scope>,
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

/// `POST /hooks/tickets`: mint a short-lived ticket for an authorized subscription.
pub async fn tickets(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<Value>> {
    let header = authorization(&headers, state.config.limits.max_token_bytes)?;
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::bad_request("body too large"))?;
    let req: TicketRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid ticket request: {e}")))?;
    if req.subscriptions.is_empty() || req.subscriptions.len() > MAX_SCOPES {
        return Err(ApiError::bad_request(format!(
            "1..={MAX_SCOPES} subscriptions required"
        )));
    }
    let scopes = req
        .subscriptions
        .into_iter()
        .map(Scope::normalized)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::bad_request)?;
    let space = scopes[0].space.clone();
    if scopes.iter().any(|s| s.space != space) {
        return Err(ApiError::bad_request("one ticket covers one space"));
    }
    if !state.space_exists(&space) {
        return Err(ApiError::not_found("Space not found"));
    }
    let now = now();
    let authz = state.auth.authorize(header, now).await?;
    let subscribe: Ability = "tinycloud.hooks/subscribe"
        .parse()
        .map_err(|_| ApiError::bad_request("bad ability"))?;
    for scope in &scopes {
        let wanted: Resource = scope
            .resource()
            .parse()
            .map_err(|e| ApiError::bad_request(format!("invalid scope: {e}")))?;
        let covered = authz
            .invocation
            .info()
            .capabilities
            .iter()
            .any(|c| c.ability.covers(&subscribe) && wanted.extends(&c.resource));
        if !covered {
            return Err(ApiError::unauthorized(format!(
                "Unauthorized Action: {wanted} / tinycloud.hooks/subscribe"
            )));
        }
    }
    let ttl = req
        .ttl_seconds
        .unwrap_or(MAX_TICKET_SECS)
        .clamp(1, MAX_TICKET_SECS);
    let ticket = Ticket {
        v: 1,
        sub: authz.invocation.invoker().to_string(),
        space,
        scopes,
        iat: now.as_millis(),
        exp: now.plus_secs(ttl).as_millis(),
        proofs: authz
            .invocation
            .info()
            .parents
            .iter()
            .map(ToString::to_string)
            .collect(),
    };
    let key = state.keys.derive("tinycloud/hooks/tickets");
    Ok(Json(json!({
        "ticket": ticket.encode(&key),
        "expiresAt": tinycloud_auth::timestamp::Timestamp::from_millis(ticket.exp)
            .to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    })))
}

#[derive(Deserialize)]
pub struct EventsQuery {
    ticket: String,
}

fn sse_event(e: &StoredEvent) -> Event {
    Event::default()
        .event("write")
        .id(e.seq.to_string())
        .data(event_json(e).to_string())
}

/// Sends logged events after `from` that match; returns the last sequence number seen, or
/// `None` when the log no longer reaches back to `from + 1` (the subscriber must reset).
async fn replay(
    state: &SharedState,
    ticket: &Ticket,
    from: u64,
    tx: &mpsc::Sender<Event>,
) -> Result<Option<u64>, ()> {
    if let Ok(Some(first)) = state.index.first_event(&ticket.space).await {
        if first > from + 1 {
            return Ok(None);
        }
    }
    let mut last = from;
    loop {
        let page = state
            .index
            .events_after(&ticket.space, last, 500)
            .await
            .map_err(|_| ())?;
        let Some(end) = page.last().map(|e| e.seq) else {
            return Ok(Some(last));
        };
        for e in &page {
            if ticket.scopes.iter().any(|s| s.matches(e)) {
                tx.send(sse_event(e)).await.map_err(|_| ())?;
            }
        }
        last = end;
    }
}

async fn latest_seq(state: &SharedState, space: &str) -> u64 {
    state.index.last_event(space).await.unwrap_or(0)
}

/// Pumps events into `tx` until the client goes away or the subscription stops being valid.
async fn pump(
    state: SharedState,
    ticket: Ticket,
    proofs: Vec<Cid>,
    resume: Option<u64>,
    tx: mpsc::Sender<Event>,
) {
    let mut bus = state.index.subscribe();
    let mut last = match resume {
        Some(from) => match replay(&state, &ticket, from, &tx).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                let latest = latest_seq(&state, &ticket.space).await;
                let reset = Event::default()
                    .event("reset")
                    .id(latest.to_string())
                    .data(json!({"type": "reset", "reason": "events were missed and are no longer in the log", "seq": latest}).to_string());
                if tx.send(reset).await.is_err() {
                    return;
                }
                latest
            }
            Err(()) => return,
        },
        None => latest_seq(&state, &ticket.space).await,
    };
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            msg = bus.recv() => match msg {
                Ok(e) => {
                    if e.draft.space != ticket.space || e.seq <= last {
                        continue;
                    }
                    if e.seq > last + 1 {
                        // Missed some on the bus: fill the gap from the log.
                        match replay(&state, &ticket, last, &tx).await {
                            Ok(Some(l)) => { last = l; continue; }
                            _ => return,
                        }
                    }
                    last = e.seq;
                    if ticket.scopes.iter().any(|s| s.matches(&e)) && tx.send(sse_event(&e)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => match replay(&state, &ticket, last, &tx).await {
                    Ok(Some(l)) => last = l,
                    _ => return,
                },
                Err(RecvError::Closed) => return,
            },
            _ = check.tick() => {
                if tx.is_closed() {
                    return;
                }
                if let Err(e) = state.auth.proofs_still_valid(&proofs, now()).await {
                    let end = Event::default()
                        .event("end")
                        .data(json!({"type": "end", "reason": e.to_string()}).to_string());
                    let _ = tx.send(end).await;
                    return;
                }
            }
        }
    }
}

/// `GET /hooks/events?ticket=…`: the event stream.
pub async fn events(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let key = state.keys.derive("tinycloud/hooks/tickets");
    let ticket =
        Ticket::decode(&key, &q.ticket).ok_or_else(|| ApiError::unauthorized("invalid ticket"))?;
    let now = now();
    if ticket.v != 1 || now.as_millis() >= ticket.exp {
        return Err(ApiError::unauthorized("ticket expired"));
    }
    let proofs = ticket
        .proofs
        .iter()
        .map(|p| parse_cid(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::unauthorized("invalid ticket"))?;
    state.auth.proofs_still_valid(&proofs, now).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (tx, rx) = mpsc::channel::<Event>(256);
    tokio::spawn(pump(state.clone(), ticket, proofs, resume, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<Event, Infallible>(e), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
