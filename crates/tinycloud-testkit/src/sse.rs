//! The one Server-Sent Events reader of tests and bench, on `eventsource-stream` (the WHATWG
//! parsing rules: `event`, `data` joined with `\n`, `id` as the stream's last event ID,
//! comments ignored, messages without data not dispatched). [`SseStream`] reads any byte
//! stream and keeps the raw text for assertions on the framing; [`SseReader`] is a hooks
//! subscriber of a test node (ticket, `Last-Event-ID` resume, signals).

use std::fmt::Display;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_stream::Eventsource as _;
use futures_util::{Stream, StreamExt as _};
use tinycloud_auth::cid::Cid;
use tinycloud_auth::keys::SecretKey;

use crate::http::http;
use crate::process::Node;
use crate::tokens::invoke_caps_header;

/// One dispatched SSE message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field (`message` when absent).
    pub event: String,
    /// The stream's last event ID when the message was dispatched (`None` while empty).
    pub id: Option<String>,
    /// The `data` fields joined with `\n`.
    pub data: String,
}

type Events = Pin<Box<dyn Stream<Item = Result<SseEvent, String>> + Send>>;

/// Dispatched messages of a byte stream, with everything received kept as text.
pub struct SseStream {
    events: Events,
    raw: Arc<Mutex<String>>,
}

impl SseStream {
    /// Reads the messages of `bytes` (chunks of a response body).
    pub fn new<S, B, E>(bytes: S) -> SseStream
    where
        S: Stream<Item = Result<B, E>> + Send + 'static,
        B: AsRef<[u8]> + Send + 'static,
        E: Display + Send + 'static,
    {
        let raw = Arc::new(Mutex::new(String::new()));
        let tee = {
            let raw = raw.clone();
            bytes.map(move |chunk| {
                if let (Ok(c), Ok(mut r)) = (&chunk, raw.lock()) {
                    r.push_str(&String::from_utf8_lossy(c.as_ref()));
                }
                chunk
            })
        };
        let events = tee
            .eventsource()
            .map(|r| {
                r.map(|e| SseEvent {
                    event: e.event,
                    id: (!e.id.is_empty()).then_some(e.id),
                    data: e.data,
                })
                .map_err(|e| e.to_string())
            })
            .boxed();
        SseStream { events, raw }
    }

    /// Reads the body of `response`.
    pub fn from_response(response: reqwest::Response) -> SseStream {
        SseStream::new(response.bytes_stream())
    }

    /// The next message, or `None` at the end of the stream, on a broken stream or after
    /// `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        match tokio::time::timeout(timeout, self.events.next()).await {
            Ok(Some(Ok(event))) => Some(event),
            _ => None,
        }
    }

    /// The next message, or why there is none (`Err`: end of stream, a parse or transport
    /// error).
    pub async fn next_message(&mut self) -> Result<SseEvent, String> {
        match self.events.next().await {
            Some(r) => r,
            None => Err("end of stream".into()),
        }
    }

    /// Everything received so far, as text.
    pub fn raw(&self) -> String {
        self.raw.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// A hooks subscriber of a test node: a ticket with signals, `/hooks/events`, and messages
/// with the `ready` signal skipped.
pub struct SseReader {
    stream: SseStream,
}

impl SseReader {
    /// Mints a ticket for `scopes` with `key`/`proofs` and connects (optionally resuming).
    pub async fn connect(
        node: &Node,
        key: &SecretKey,
        proofs: &[Cid],
        scopes: serde_json::Value,
        resume: Option<u64>,
    ) -> Result<SseReader, (u16, String)> {
        let resources: Vec<String> = scopes
            .as_array()
            .expect("scopes are an array")
            .iter()
            .map(|s| {
                let base = format!(
                    "{}/hooks/{}",
                    s["space"].as_str().expect("scope space"),
                    s["service"].as_str().expect("scope service")
                );
                match s.get("pathPrefix").and_then(|p| p.as_str()) {
                    Some(p) => format!("{base}/{p}"),
                    None => base,
                }
            })
            .collect();
        let caps: Vec<(&str, &str)> = resources
            .iter()
            .map(|r| (r.as_str(), "tinycloud.hooks/subscribe"))
            .collect();
        let token = invoke_caps_header(key, proofs, &caps);
        let r = http()
            .post(format!("{}/hooks/tickets", node.url))
            .header("authorization", token)
            // Like this project's SDK, ask for the stream signals (`ready`/`reset`/`end`) as
            // events; the wire tests (`e2e_wire_*`) cover a subscriber that does not.
            .json(&serde_json::json!({"subscriptions": scopes, "signals": true}))
            .send()
            .await
            .expect("POST /hooks/tickets");
        let status = r.status().as_u16();
        if status != 200 {
            return Err((status, r.text().await.unwrap_or_default()));
        }
        let ticket = r.json::<serde_json::Value>().await.expect("ticket JSON")["ticket"]
            .as_str()
            .expect("a ticket")
            .to_owned();
        Self::open(node, &ticket, resume).await
    }

    /// Connects with a ticket.
    pub async fn open(
        node: &Node,
        ticket: &str,
        resume: Option<u64>,
    ) -> Result<SseReader, (u16, String)> {
        let client = reqwest::Client::builder().build().expect("an HTTP client");
        let mut req = client
            .get(format!("{}/hooks/events", node.url))
            .query(&[("ticket", ticket)])
            .header("accept", "text/event-stream");
        if let Some(r) = resume {
            req = req.header("last-event-id", r.to_string());
        }
        let resp = req.send().await.expect("GET /hooks/events");
        let status = resp.status().as_u16();
        if status != 200 {
            return Err((status, resp.text().await.unwrap_or_default()));
        }
        Ok(SseReader {
            stream: SseStream::from_response(resp),
        })
    }

    /// The next event (comments, keep-alives and `ready` skipped), or `None` at end of stream
    /// or timeout.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.stream.next(left).await?;
            // `ready` only says where the stream starts.
            if ev.event != "ready" {
                return Some(ev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(text: &'static str, split: usize) -> SseStream {
        let (a, b) = text.as_bytes().split_at(split);
        SseStream::new(futures_util::stream::iter([
            Ok::<_, String>(a.to_vec()),
            Ok(b.to_vec()),
        ]))
    }

    #[tokio::test]
    async fn messages_across_chunk_boundaries_with_comments_skipped() {
        let text = "event: write\nid: 7\ndata: {\"seq\":7}\n\n: keep-alive\n\nevent: end\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nid: 8\n\n";
        for split in 0..text.len() {
            let mut s = chunks(text, split);
            let mut got = Vec::new();
            while let Some(e) = s.next(Duration::from_secs(1)).await {
                got.push(e);
            }
            assert_eq!(
                got,
                [
                    SseEvent {
                        event: "write".into(),
                        id: Some("7".into()),
                        data: "{\"seq\":7}".into()
                    },
                    SseEvent {
                        event: "end".into(),
                        id: Some("7".into()),
                        data: "{\"a\":\n1}".into()
                    }
                ],
                "split at {split}"
            );
            assert_eq!(s.raw(), text);
        }
    }
}
