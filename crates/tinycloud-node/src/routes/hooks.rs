//! `POST /hooks/tickets` and `GET /hooks/events` (Server-Sent Events).
//!
//! Unlike the reference, the ticket route verifies the invocation exactly as `/invoke` does
//! (signature, chain, revocation, single use), streams resume from the per-space event log
//! with `Last-Event-ID` (a `reset` signal when the log no longer reaches back that far), and
//! a stream ends as soon as the delegations it rests on are revoked or expire.
//!
//! Wire compatibility: reference subscribers hand every SSE message that has data to the app
//! as a write event, so by default only `write` events carry data; the signals (`ready`,
//! `reset`, `end`) go as SSE comments unless the ticket was minted with `signals: true`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tinycloud_auth::ability::Ability;
use tinycloud_auth::resource::Resource;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::authorized::Authorized;
use super::openapi::{Delivery, DeliveryList, TicketResult, Webhook};
use crate::clock::{now, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::hooks::{
    authority_holds, event_json, in_scope, proofs_of, Lapse, Scope, Ticket, MAX_SCOPES,
    MAX_TICKET_SECS,
};
use crate::state::SharedState;
use crate::store::StoredEvent;
use crate::webhooks::scope_of;

/// `POST /hooks/tickets` request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TicketRequest {
    /// One to the node's maximum scopes, all in one space.
    #[schema(value_type = Vec<super::openapi::HookScope>)]
    subscriptions: Vec<Scope>,
    /// Ticket lifetime in seconds, clamped to the node's maximum.
    #[serde(default)]
    ttl_seconds: Option<i64>,
    /// Also send the stream's signals (`ready`, `reset`, `end`) as SSE events with data.
    /// Off by default: reference subscribers treat every data message as a write event, so
    /// without this the signals go as SSE comments and only `write` events carry data.
    #[serde(default)]
    signals: bool,
}

/// `POST /hooks/tickets`: mint a short-lived ticket for an authorized subscription.
#[utoipa::path(
    post, path = "/hooks/tickets", tag = "hooks",
    summary = "Mint an SSE ticket",
    description = "Verifies the invocation as `/invoke` does (single use) and that it grants `tinycloud.hooks/subscribe` on every scope; the ticket opens one `GET /hooks/events` stream (mint a new one to reconnect). `signals: true` asks for `ready`/`reset`/`end` as SSE events (else SSE comments).",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
    ),
    request_body = TicketRequest,
    responses(
        (status = 200, description = "The ticket", body = TicketResult),
        (status = 400, description = "Malformed token or scopes", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or a scope is not granted", body = String, content_type = "text/plain"),
        (status = 404, description = "Space not found", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
    )
)]
pub async fn tickets(
    State(state): State<SharedState>,
    authz: Authorized,
    body: axum::body::Body,
) -> ApiResult<Json<TicketResult>> {
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
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let space = scopes[0].space.clone();
    if scopes.iter().any(|s| s.space != space) {
        return Err(ApiError::bad_request("one ticket covers one space"));
    }
    let now = authz.at();
    let subscribe: Ability = "tinycloud.hooks/subscribe"
        .parse()
        .map_err(|_| ApiError::bad_request("bad ability"))?;
    for scope in &scopes {
        let wanted: Resource = scope
            .resource()
            .parse()
            .map_err(|e| ApiError::bad_request(format!("invalid scope: {e}")))?;
        authz.require(&wanted, &subscribe, &wanted.to_string())?;
    }
    // Only once the scopes are granted: whether a space exists is nobody else's business.
    if !state.space_exists(&space) {
        return Err(ApiError::not_found("Space not found"));
    }
    let ttl = req
        .ttl_seconds
        .unwrap_or(MAX_TICKET_SECS)
        .clamp(1, MAX_TICKET_SECS);
    let ticket = Ticket {
        v: 1,
        sub: authz.invocation().invoker().to_string(),
        space,
        scopes,
        iat: now.as_millis(),
        exp: now.plus_secs(ttl).as_millis(),
        proofs: proofs_of(authz.invocation()),
        signals: req.signals,
        nonce: {
            let mut n = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut n);
            hex::encode(n)
        },
    };
    Ok(Json(TicketResult {
        ticket: ticket.encode(&state.ticket_key),
        expires_at: rfc3339(ticket.exp),
    }))
}

/// `GET /hooks/events` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// A ticket from POST /hooks/tickets.
    ticket: String,
}

/// A stream signal (`ready`, `reset`, `end`): an SSE event with JSON data for a subscriber that
/// asked for signals, else an SSE comment carrying the same JSON, which no client dispatches.
/// `id` (if any) is sent either way: an id-only message moves a client's `Last-Event-ID`
/// without dispatching anything.
fn signal(ticket: &Ticket, name: &str, id: Option<u64>, data: &serde_json::Value) -> Event {
    let mut e = Event::default();
    if let Some(id) = id {
        e = e.id(id.to_string());
    }
    if ticket.signals {
        e.event(name).data(data.to_string())
    } else {
        e.comment(data.to_string())
    }
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
            if ticket.scopes.iter().any(|s| in_scope(s, e)) {
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
    resume: Option<u64>,
    mut bus: tokio::sync::broadcast::Receiver<std::sync::Arc<StoredEvent>>,
    live_from: u64,
    tx: mpsc::Sender<Event>,
) {
    let mut last = match resume {
        Some(from) => match replay(&state, &ticket, from, &tx).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                let latest = latest_seq(&state, &ticket.space).await;
                let reset = signal(
                    &ticket,
                    "reset",
                    Some(latest),
                    &json!({"type": "reset", "reason": "events were missed and are no longer in the log", "seq": latest}),
                );
                if tx.send(reset).await.is_err() {
                    return;
                }
                latest
            }
            Err(()) => return,
        },
        None => live_from,
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
                    if ticket.scopes.iter().any(|s| in_scope(s, &e)) && tx.send(sse_event(&e)).await.is_err() {
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
                match authority_holds(&state.auth, &ticket.proofs, now()).await {
                    Ok(_) | Err(Lapse::Store(_)) => {}
                    Err(Lapse::Ended(reason)) => {
                        let end = signal(&ticket, "end", None, &json!({"type": "end", "reason": reason}));
                        let _ = tx.send(end).await;
                        return;
                    }
                }
            }
        }
    }
}

/// `GET /hooks/events?ticket=…`: the event stream.
#[utoipa::path(
    get, path = "/hooks/events", tag = "hooks",
    summary = "Stream write events (Server-Sent Events)",
    description = "By default only `write` events (SSE id = sequence number) carry data, as reference subscribers expect; the stream's signals (`ready`, `reset`, `end`) and heartbeats are SSE comments. A ticket minted with `\"signals\": true` gets the signals as `ready`, `reset` and `end` events. Resumes after `Last-Event-ID` either way; ends when the subscription's delegations are revoked or expire. A ticket opens one stream: reconnecting takes a fresh ticket (as the reference JS SDK does), so a plain `EventSource` that retries the same URL is refused with 401.",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this sequence number"),
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream"),
        (status = 400, description = "Missing ticket", body = String, content_type = "text/plain"),
        (status = 401, description = "Invalid or expired ticket", body = String, content_type = "text/plain"),
    )
)]
pub async fn events(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let ticket = Ticket::decode(&state.ticket_key, &q.ticket)
        .ok_or_else(|| ApiError::unauthorized("invalid ticket"))?;
    let now = now();
    if ticket.v != 1 || now.as_millis() >= ticket.exp {
        return Err(ApiError::unauthorized("ticket expired"));
    }
    match authority_holds(&state.auth, &ticket.proofs, now).await {
        Ok(_) => {}
        Err(Lapse::Ended(reason)) => return Err(ApiError::unauthorized(reason)),
        Err(Lapse::Store(e)) => return Err(e.into()),
    }
    // One stream per ticket: a second connection with the same ticket (someone else who saw
    // it, or a replay) is refused.
    let mut h = blake3::Hasher::new();
    h.update(b"tinycloud/hooks/ticket-use\0");
    h.update(q.ticket.as_bytes());
    if !state
        .index
        .consume_nonce(*h.finalize().as_bytes(), ticket.exp, now.as_millis())
        .await?
    {
        return Err(ApiError::unauthorized("ticket already used"));
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Subscribe and fix the starting point before answering, so no write committed after the
    // response can be missed; tell the client where the stream starts.
    let bus = state.index.subscribe();
    let live_from = latest_seq(&state, &ticket.space).await;
    let (tx, rx) = mpsc::channel::<Event>(256);
    let ready = signal(
        &ticket,
        "ready",
        Some(resume.unwrap_or(live_from)),
        &json!({"type": "ready", "seq": live_from}),
    );
    let _ = tx.send(ready).await;
    tokio::spawn(pump(state.clone(), ticket, resume, bus, live_from, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<Event, Infallible>(e), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// 401 unless the verified invocation carries `ability` on a resource that covers `resource`.
fn require_hook(authz: &Authorized, ability: &str, resource: &str) -> ApiResult<()> {
    let wanted_ability: Ability = ability
        .parse()
        .map_err(|_| ApiError::bad_request("bad ability"))?;
    let wanted: Resource = resource
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid scope: {e}")))?;
    authz.require(&wanted, &wanted_ability, resource)
}

/// `POST /hooks/webhooks` request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// The space watched.
    space: String,
    /// `kv` or `sql`.
    service: String,
    /// Segment-aware path prefix.
    #[serde(default)]
    path_prefix: Option<String>,
    /// Write abilities to match (all when absent).
    #[serde(default)]
    abilities: Option<Vec<String>>,
    /// `https` URL receiving signed deliveries.
    callback_url: String,
    /// HMAC secret (1..=1024 bytes), sealed at rest, never returned.
    secret: String,
}

/// `POST /hooks/webhooks`: register a webhook (`tinycloud.hooks/register`).
#[utoipa::path(
    post, path = "/hooks/webhooks", tag = "hooks",
    summary = "Register a webhook",
    description = "Needs `tinycloud.hooks/register` on the scope; deliveries are HMAC-signed (`x-tinycloud-signature`, `x-tinycloud-signature-v2` over `timestamp.body`).",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
    ),
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "Registered", body = Webhook),
        (status = 400, description = "Malformed token, scope, URL or secret", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or the scope is not granted", body = String, content_type = "text/plain"),
        (status = 404, description = "Space not found", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
        (status = 429, description = "Too many webhooks in the space", body = String, content_type = "text/plain"),
    )
)]
pub async fn register(
    State(state): State<SharedState>,
    invocation: Authorized,
    body: axum::body::Body,
) -> ApiResult<Json<Webhook>> {
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::bad_request("body too large"))?;
    let req: RegisterRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid webhook registration: {e}")))?;
    let scope = Scope {
        space: req.space,
        service: req.service,
        path_prefix: req.path_prefix,
        abilities: req.abilities,
    }
    .normalized()
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if req.secret.is_empty() || req.secret.len() > 1024 {
        return Err(ApiError::bad_request("secret must be 1..=1024 bytes"));
    }
    // The invocation was verified before this body ran; the scope is checked before anything
    // is looked up: an outsider learns nothing (whether the space exists, no DNS resolution,
    // no address check) from a registration it may not make.
    require_hook(&invocation, "tinycloud.hooks/register", &scope.resource())?;
    if !state.space_exists(&scope.space) {
        return Err(ApiError::not_found("Space not found"));
    }
    let url =
        crate::webhooks::validate_url(&req.callback_url, state.webhook_settings.allow_private)
            .await
            .map_err(ApiError::bad_request)?;
    // The webhook rests on the delegations the registration cited: stored with it and
    // re-checked before every delivery.
    let proofs = proofs_of(invocation.invocation());
    let expires_at = match authority_holds(&state.auth, &proofs, now()).await {
        Ok(exp) => exp.map(|e| e.as_millis()),
        Err(Lapse::Ended(reason)) => return Err(ApiError::unauthorized(reason)),
        Err(Lapse::Store(e)) => return Err(e.into()),
    };
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let row = crate::store::WebhookRow {
        id: format!("wh_{}", hex::encode(id)),
        space: scope.space.clone(),
        service: scope.service.clone(),
        path_prefix: scope.path_prefix.clone(),
        abilities: scope.abilities.clone(),
        callback_url: url.to_string(),
        sealed_secret: crate::keys::seal(&state.webhook_key, req.secret.as_bytes()),
        subscriber: invocation.invocation().invoker().to_string(),
        active: true,
        created_at: now().as_millis(),
        cursor: state.index.last_event(&scope.space).await?,
        attempts: 0,
        next_attempt_at: 0,
        proofs: Some(proofs),
        expires_at,
        disabled_reason: None,
    };
    if !state
        .webhooks
        .create_webhook(&row, state.webhook_settings.max_per_space)
        .await?
    {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!(
                "a space may have at most {} active webhooks",
                state.webhook_settings.max_per_space
            ),
        ));
    }
    Ok(Json(Webhook::from(&row)))
}

/// `GET /hooks/webhooks` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Space id.
    space: String,
    /// `kv` or `sql`.
    #[serde(default)]
    service: Option<String>,
    /// Path prefix.
    #[serde(default)]
    prefix: Option<String>,
}

/// `GET /hooks/webhooks?space=&service=&prefix=` (`tinycloud.hooks/list`).
#[utoipa::path(
    get, path = "/hooks/webhooks", tag = "hooks",
    summary = "List webhooks",
    description = "Webhooks of a space within the scope `tinycloud.hooks/list` is granted on.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
        ListQuery,
    ),
    responses(
        (status = 200, description = "The webhooks: a bare JSON array, as the reference", body = Vec<Webhook>),
        (status = 400, description = "Malformed token or scope", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or the scope is not granted", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
    )
)]
pub async fn list(
    State(state): State<SharedState>,
    authz: Authorized,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Webhook>>> {
    let prefix = q
        .prefix
        .as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty());
    let resource = match (&q.service, prefix) {
        (Some(s), Some(p)) => format!("{}/hooks/{s}/{p}", q.space),
        (Some(s), None) => format!("{}/hooks/{s}", q.space),
        (None, _) => format!("{}/hooks", q.space),
    };
    require_hook(&authz, "tinycloud.hooks/list", &resource)?;
    let hooks = state.webhooks.webhooks(&q.space).await?;
    let wanted: Resource = resource
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid scope: {e}")))?;
    let webhooks: Vec<Webhook> = hooks
        .iter()
        .filter(|w| {
            scope_of(w)
                .resource()
                .parse::<Resource>()
                .is_ok_and(|r| r.extends(&wanted))
        })
        .map(Webhook::from)
        .collect();
    Ok(Json(webhooks))
}

/// The webhook `id`, looked up only for a verified invocation, when that invocation carries
/// `ability` on its scope. An unknown id and a webhook outside the grant get the same 401
/// (naming only the id), so a caller learns neither which ids exist nor another's scope.
async fn authorized_webhook(
    state: &SharedState,
    authz: &Authorized,
    id: &str,
    ability: &str,
) -> ApiResult<crate::store::WebhookRow> {
    let shown = format!("webhook {id}");
    let refuse = || {
        ApiError::unauthorized_because(
            crate::telemetry::reason::UNAUTHORIZED_ACTION,
            format!("Unauthorized Action: {shown} / {ability}"),
        )
    };
    let Some(w) = state.webhooks.webhook(id).await? else {
        return Err(refuse());
    };
    require_hook(authz, ability, &scope_of(&w).resource()).map_err(|e| {
        if e.status == axum::http::StatusCode::UNAUTHORIZED {
            refuse()
        } else {
            e
        }
    })?;
    Ok(w)
}

/// `DELETE /hooks/webhooks/<id>` (`tinycloud.hooks/unregister`).
#[utoipa::path(
    delete, path = "/hooks/webhooks/{id}", tag = "hooks",
    summary = "Remove a webhook",
    description = "Needs `tinycloud.hooks/unregister` on the webhook's scope.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
        ("id" = String, Path, description = "Webhook id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Malformed token", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or no such webhook within the granted scope", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
    )
)]
pub async fn unregister(
    State(state): State<SharedState>,
    authz: Authorized,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    authorized_webhook(&state, &authz, &id, "tinycloud.hooks/unregister").await?;
    state.webhooks.deactivate_webhook(&id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `GET /hooks/webhooks/<id>/deliveries` (`tinycloud.hooks/list`): delivery history.
#[utoipa::path(
    get, path = "/hooks/webhooks/{id}/deliveries", tag = "hooks",
    summary = "Delivery history of a webhook",
    description = "Needs `tinycloud.hooks/list` on the webhook's scope.",
    params(
        ("Authorization" = String, Header, description = crate::routes::openapi::INVOCATION_HEADER),
        ("id" = String, Path, description = "Webhook id"),
    ),
    responses(
        (status = 200, description = "Deliveries", body = DeliveryList),
        (status = 400, description = "Malformed token", body = String, content_type = "text/plain"),
        (status = 401, description = "Signature, time or chain check failed, or no such webhook within the granted scope", body = String, content_type = "text/plain"),
        (status = 409, description = "Duplicate invocation", body = String, content_type = "text/plain"),
    )
)]
pub async fn deliveries(
    State(state): State<SharedState>,
    authz: Authorized,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Json<DeliveryList>> {
    authorized_webhook(&state, &authz, &id, "tinycloud.hooks/list").await?;
    let rows = state.webhooks.deliveries(&id, 200).await?;
    let deliveries = rows.iter().map(Delivery::from).collect();
    Ok(Json(DeliveryList { deliveries }))
}
