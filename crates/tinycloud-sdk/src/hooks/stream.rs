//! The subscription behind [`HookStream`]: connect with a fresh ticket, parse the event
//! stream, reconnect with `Last-Event-ID` after a drop (bounded exponential backoff), end on
//! `end` or on a refusal.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{BoxStream, Stream, StreamExt};
use rand::Rng as _;
use serde_json::Value;

use super::sse::{Message, Messages, Read};
use super::{HookEvent, HookEventKind, Hooks, Scope, REQUEST_TIMEOUT};
use crate::client::{is_success, TinyCloud};
use crate::error::{check_status, Error, Result};

/// First reconnection delay.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnection delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A connection silent for this long is presumed dead (the node sends a keep-alive every 15 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// A live feed of [`HookEvent`]s. Ends after yielding an error: the subscription was revoked
/// or expired ([`Error::PermissionDenied`], [`Error::SessionExpired`]), the first connection
/// failed, or a reconnection was refused.
///
/// It borrows the client and signs each reconnection with the client's session at that
/// moment. Reconnections resume after the last `seq` yielded; before the first event there
/// is no position to resume from, so a drop at that point resumes from the node's present.
pub struct HookStream<'a> {
    inner: BoxStream<'a, Result<HookEvent>>,
}

impl<'a> HookStream<'a> {
    pub(super) fn new(client: &'a TinyCloud, scopes: Vec<Scope>, last_seq: Option<u64>) -> Self {
        Self::from_subscription(Subscription::new(client, scopes, last_seq))
    }

    pub(super) async fn open(
        client: &'a TinyCloud,
        scopes: Vec<Scope>,
        last_seq: Option<u64>,
    ) -> Result<Self> {
        let mut sub = Subscription::new(client, scopes, last_seq);
        sub.conn = Some(sub.connect().await?);
        Ok(Self::from_subscription(sub))
    }

    fn from_subscription(sub: Subscription<'a>) -> Self {
        let inner = futures_util::stream::unfold(sub, |mut sub| async move {
            let item = sub.next().await?;
            Some((item, sub))
        })
        .boxed();
        HookStream { inner }
    }
}

impl Stream for HookStream<'_> {
    type Item = Result<HookEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for HookStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookStream")
    }
}

/// Reconnection delays: doubling from [`MIN_BACKOFF`] up to [`MAX_BACKOFF`], with jitter so
/// many subscribers do not reconnect in lockstep.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: MIN_BACKOFF }
    }

    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(MAX_BACKOFF);
        d.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    fn reset(&mut self) {
        self.next = MIN_BACKOFF;
    }
}

/// What a message means for the subscriber.
#[derive(Debug, PartialEq)]
enum Signal {
    Event(Box<HookEvent>),
    End(String),
}

/// Reads a message: `write` and `reset` become events, `end` ends the feed, anything else
/// (future event types) is skipped.
fn interpret(msg: Message) -> Result<Option<Signal>> {
    match msg.event.as_str() {
        "write" | "reset" => {
            let mut event: HookEvent =
                serde_json::from_str(&msg.data).map_err(|e| Error::Node {
                    status: 200,
                    message: format!("invalid {} event: {e}", msg.event),
                })?;
            if event.kind == HookEventKind::Write && event.id.is_empty() {
                event.id = msg.id.unwrap_or_default();
            }
            Ok(Some(Signal::Event(Box::new(event))))
        }
        "end" => {
            let reason = serde_json::from_str::<Value>(&msg.data)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned))
                .unwrap_or(msg.data);
            Ok(Some(Signal::End(reason)))
        }
        _ => Ok(None),
    }
}

/// Failures worth another attempt once the feed has been connected: the node restarting,
/// the network. Refusals (401/403/404/400) are final.
fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Network(_) | Error::Node { .. } | Error::Replay(_))
}

struct Subscription<'a> {
    client: &'a TinyCloud,
    scopes: Vec<Scope>,
    /// The `seq` of the last event yielded (sent as `Last-Event-ID` when reconnecting).
    last_seq: Option<u64>,
    conn: Option<Messages>,
    backoff: Backoff,
    /// Whether any connection succeeded (only then are failures retried).
    connected_once: bool,
    finished: bool,
}

impl<'a> Subscription<'a> {
    fn new(client: &'a TinyCloud, scopes: Vec<Scope>, last_seq: Option<u64>) -> Self {
        Subscription {
            client,
            scopes,
            last_seq,
            conn: None,
            backoff: Backoff::new(),
            connected_once: false,
            finished: false,
        }
    }

    /// Mints a ticket and opens the event stream (resuming after `last_seq`).
    async fn connect(&mut self) -> Result<Messages> {
        let ticket = Hooks::new(self.client).ticket(&self.scopes).await?;
        let mut request = self
            .client
            .http()
            .get(self.client.url("/hooks/events"))
            .query(&[("ticket", ticket.ticket.as_str())])
            .header("accept", "text/event-stream");
        if let Some(seq) = self.last_seq {
            request = request.header("last-event-id", seq.to_string());
        }
        let r = tokio::time::timeout(REQUEST_TIMEOUT, request.send())
            .await
            .map_err(|_| Error::Network("timed out opening the event stream".into()))??;
        let r = check_status(r, is_success).await?;
        self.connected_once = true;
        Ok(Messages::new(r.bytes_stream(), IDLE_TIMEOUT))
    }

    /// Ends the feed with `e`.
    fn fail(&mut self, e: Error) -> Option<Result<HookEvent>> {
        self.finished = true;
        self.conn = None;
        Some(Err(e))
    }

    /// The error for an `end` event: an expired session says so; anything else is a
    /// revocation (or expiry) of the authority the subscription rests on.
    fn ended(&self, reason: String) -> Error {
        match self.client.active_session() {
            Err(e @ Error::SessionExpired { .. }) => e,
            _ => Error::PermissionDenied {
                message: format!("subscription ended: {reason}"),
                missing: None,
            },
        }
    }

    /// Waits before the next connection attempt.
    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff.next_delay()).await;
    }

    /// The next event, reconnecting as needed; `None` after the feed has ended.
    async fn next(&mut self) -> Option<Result<HookEvent>> {
        loop {
            if self.finished {
                return None;
            }
            let Some(conn) = self.conn.as_mut() else {
                match self.connect().await {
                    Ok(conn) => self.conn = Some(conn),
                    Err(e) if self.connected_once && is_transient(&e) => self.pause().await,
                    Err(e) => return self.fail(e),
                }
                continue;
            };
            let read = conn.next().await;
            if conn.took_alive() {
                self.backoff.reset();
            }
            match read {
                Read::Message(msg) => match interpret(msg) {
                    Ok(Some(Signal::Event(event))) => {
                        let seen = self
                            .last_seq
                            .zip(event.seq)
                            .is_some_and(|(last, seq)| seq <= last);
                        if event.kind == HookEventKind::Write && seen {
                            continue; // already delivered before a reconnect
                        }
                        // Events without a `seq` (a reference node's) leave the position
                        // alone: such a feed resumes from the node's present.
                        if let Some(seq) = event.seq {
                            self.last_seq = Some(seq);
                        }
                        return Some(Ok(*event));
                    }
                    Ok(Some(Signal::End(reason))) => {
                        let e = self.ended(reason);
                        return self.fail(e);
                    }
                    Ok(None) => continue,
                    Err(e) => return self.fail(e),
                },
                Read::Invalid(e) => return self.fail(e),
                // Closed, broken, or silent for too long: resume on a new connection.
                Read::Dropped => {
                    self.conn = None;
                    self.pause().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::from_status;

    fn msg(event: &str, id: Option<&str>, data: &str) -> Message {
        Message {
            event: event.into(),
            id: id.map(str::to_owned),
            data: data.into(),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= MIN_BACKOFF && delays[0] >= MIN_BACKOFF / 2);
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF));
        assert!(delays[9] >= MAX_BACKOFF / 2);
        b.reset();
        assert!(b.next_delay() <= MIN_BACKOFF);
    }

    #[test]
    fn messages_become_signals() {
        let w = interpret(msg(
            "write",
            Some("3"),
            r#"{"type":"write","seq":3,"space":"s","service":"kv","ability":"tinycloud.kv/put","path":"a","actor":"did:key:z","timestamp":"t"}"#,
        ))
        .unwrap();
        match w {
            Some(Signal::Event(e)) => {
                assert_eq!(
                    (e.kind, e.seq, e.id.as_str()),
                    (HookEventKind::Write, Some(3), "3")
                );
            }
            other => panic!("{other:?}"),
        }
        let r = interpret(msg(
            "reset",
            Some("9"),
            r#"{"type":"reset","reason":"gone","seq":9}"#,
        ))
        .unwrap();
        match r {
            Some(Signal::Event(e)) => assert_eq!((e.kind, e.seq), (HookEventKind::Reset, Some(9))),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            interpret(msg(
                "end",
                None,
                r#"{"type":"end","reason":"delegation revoked"}"#
            ))
            .unwrap(),
            Some(Signal::End("delegation revoked".into()))
        );
        // A reference node's write event: SSE id `<epoch>:<index>`, no `seq`.
        let reference = interpret(msg(
            "write",
            Some("bafkr4iepoch:2"),
            r#"{"type":"write","id":"bafkr4iepoch:2","space":"s","service":"kv","ability":"tinycloud.kv/del","path":"a","actor":"did:key:z","epoch":"bafkr4iepoch","eventIndex":2,"timestamp":"2026-01-01T00:00:00Z"}"#,
        ))
        .unwrap();
        match reference {
            Some(Signal::Event(e)) => assert_eq!(
                (e.kind, e.seq, e.id.as_str(), e.event_index),
                (HookEventKind::Write, None, "bafkr4iepoch:2", Some(2))
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(interpret(msg("ping", None, "{}")).unwrap(), None);
        assert!(interpret(msg("write", None, "not json")).is_err());
    }

    #[test]
    fn only_network_and_server_failures_are_retried() {
        assert!(is_transient(&Error::Network("x".into())));
        assert!(is_transient(&from_status(503, "x".into())));
        assert!(!is_transient(&from_status(401, "x".into())));
        assert!(!is_transient(&from_status(403, "x".into())));
        assert!(!is_transient(&from_status(404, "x".into())));
        assert!(!is_transient(&Error::SessionExpired {
            expired_at: "x".into()
        }));
    }
}
