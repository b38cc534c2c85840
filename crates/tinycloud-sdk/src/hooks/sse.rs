//! Reading the event stream (`text/event-stream`) with `eventsource-stream` (WHATWG rules:
//! `event`, `id` and `data` fields, messages separated by blank lines, comment lines ignored,
//! messages without data not dispatched), bounded in size and in silence.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource as _};
use futures_util::stream::{BoxStream, Stream, StreamExt};

use crate::error::Error;

/// Largest amount of input between two blank lines (one message, or an unterminated line)
/// accepted from the node; line ends are not counted.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// One dispatched message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// The `event` field (`message` when absent, as the standard says).
    pub event: String,
    /// The event ID this message set (`None` when it set none, or repeated the stream's last
    /// one: the parser carries the last event ID over, and an event must not inherit another's).
    pub id: Option<String>,
    /// The `data` fields joined with `\n`.
    pub data: String,
}

/// Why the byte stream under the parser stopped.
#[derive(Debug, thiserror::Error)]
pub enum Source {
    /// The connection broke.
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    /// Nothing arrived (not even a keep-alive) for the idle timeout.
    #[error("event stream silent for too long")]
    Idle,
    /// More than [`MAX_MESSAGE_BYTES`] without a dispatched message.
    #[error("event larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
}

/// What reading the next message gave.
#[derive(Debug)]
pub enum Read {
    /// A message.
    Message(Message),
    /// The connection closed, broke or went silent: worth resuming on a new one.
    Dropped,
    /// The node sent something no client accepts (oversized, not UTF-8, not SSE).
    Invalid(Error),
}

/// The messages of one response body.
pub struct Messages {
    events: BoxStream<'static, Result<eventsource_stream::Event, EventStreamError<Source>>>,
    /// Set when any bytes (keep-alives too) arrived since last asked.
    alive: Arc<AtomicBool>,
    /// The last event ID of the previous dispatched message.
    last_id: String,
}

/// Where the input stands relative to message boundaries (blank lines): bytes since the
/// last one, and whether the last byte ended a line. Keep-alive comments end in a blank line
/// too, so a quiet stream never accumulates toward the bound.
#[derive(Default)]
struct Boundary {
    since: usize,
    line_ended: bool,
}

impl Boundary {
    /// Accounts for `chunk` and splits it after every `\n`, so the parser's buffer holds at
    /// most one line (it copies its remaining buffer per line: fed whole chunks of many short
    /// lines it would be quadratic). `Err` when a message grows past [`MAX_MESSAGE_BYTES`].
    fn feed(&mut self, chunk: &Bytes) -> Result<Vec<Bytes>, Source> {
        let mut pieces = Vec::new();
        let mut start = 0;
        for (i, &b) in chunk.iter().enumerate() {
            match b {
                b'\n' => {
                    if self.line_ended {
                        self.since = 0;
                    }
                    self.line_ended = true;
                    pieces.push(chunk.slice(start..=i));
                    start = i + 1;
                }
                b'\r' => {}
                _ => {
                    self.line_ended = false;
                    self.since += 1;
                    if self.since > MAX_MESSAGE_BYTES {
                        return Err(Source::TooLarge);
                    }
                }
            }
        }
        if start < chunk.len() {
            pieces.push(chunk.slice(start..));
        }
        Ok(pieces)
    }
}

impl Messages {
    /// Reads `body`; a chunk must arrive within `idle` of the previous one.
    pub fn new<S>(body: S, idle: Duration) -> Messages
    where
        S: Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    {
        let alive = Arc::new(AtomicBool::new(false));
        let a = alive.clone();
        let chunks =
            futures_util::stream::unfold(Some((body.boxed(), Boundary::default())), move |state| {
                let a = a.clone();
                async move {
                    let (mut body, mut boundary) = state?;
                    match tokio::time::timeout(idle, body.next()).await {
                        Ok(Some(Ok(chunk))) => {
                            a.store(true, Ordering::Relaxed);
                            match boundary.feed(&chunk) {
                                Ok(pieces) => Some((Ok(pieces), Some((body, boundary)))),
                                Err(e) => Some((Err(e), None)),
                            }
                        }
                        Ok(Some(Err(e))) => Some((Err(Source::Http(e)), None)),
                        Ok(None) => None,
                        Err(_) => Some((Err(Source::Idle), None)),
                    }
                }
            })
            .flat_map(|r| match r {
                Ok(pieces) => futures_util::stream::iter(pieces.into_iter().map(Ok)).left_stream(),
                Err(e) => futures_util::stream::once(async move { Err(e) }).right_stream(),
            });
        Messages {
            events: chunks.eventsource().boxed(),
            alive,
            last_id: String::new(),
        }
    }

    /// Whether any bytes arrived since the last call.
    pub fn took_alive(&self) -> bool {
        self.alive.swap(false, Ordering::Relaxed)
    }

    /// The next message.
    pub async fn next(&mut self) -> Read {
        match self.events.next().await {
            Some(Ok(e)) => {
                let fresh = !e.id.is_empty() && e.id != self.last_id;
                self.last_id.clone_from(&e.id);
                Read::Message(Message {
                    event: e.event,
                    id: fresh.then_some(e.id),
                    data: e.data,
                })
            }
            None | Some(Err(EventStreamError::Transport(Source::Http(_) | Source::Idle))) => {
                Read::Dropped
            }
            Some(Err(e)) => Read::Invalid(Error::Node {
                status: 200,
                message: format!("invalid event stream: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(chunks: Vec<Vec<u8>>) -> Messages {
        Messages::new(
            futures_util::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))),
            Duration::from_secs(5),
        )
    }

    async fn all(m: &mut Messages) -> Vec<Message> {
        let mut out = Vec::new();
        while let Read::Message(msg) = m.next().await {
            out.push(msg);
        }
        out
    }

    #[tokio::test]
    async fn messages_across_chunk_boundaries() {
        let text = "event: write\nid: 7\ndata: {\"seq\":7}\n\n:\n\nevent: end\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n";
        for split in 0..text.len() {
            let (a, b) = text.as_bytes().split_at(split);
            let mut m = messages(vec![a.to_vec(), b.to_vec()]);
            assert_eq!(
                all(&mut m).await,
                [
                    Message {
                        event: "write".into(),
                        id: Some("7".into()),
                        data: "{\"seq\":7}".into()
                    },
                    Message {
                        event: "end".into(),
                        id: None,
                        data: "{\"a\":\n1}".into()
                    }
                ],
                "split at {split}"
            );
        }
    }

    #[tokio::test]
    async fn comments_keepalives_and_unknown_fields_are_ignored() {
        let mut m = messages(vec![
            b": keep-alive\n\nretry: 10\nfoo\nid: 3\ndata:x\n\n".to_vec()
        ]);
        assert_eq!(
            all(&mut m).await,
            [Message {
                event: "message".into(),
                id: Some("3".into()),
                data: "x".into()
            }]
        );
        assert!(m.took_alive());
        assert!(!m.took_alive());
    }

    #[tokio::test]
    async fn oversized_input_is_refused() {
        let mut m = messages(vec![vec![b'a'; MAX_MESSAGE_BYTES + 1]]);
        assert!(matches!(m.next().await, Read::Invalid(_)));
        let line = format!("data: {}\n", "a".repeat(MAX_MESSAGE_BYTES / 2 + 1));
        let mut m = messages(vec![line.clone().into_bytes(), line.into_bytes()]);
        assert!(matches!(m.next().await, Read::Invalid(_)));
        // The bound is between messages, not over the whole stream.
        let one = format!("data: {}\n\n", "a".repeat(MAX_MESSAGE_BYTES / 2 + 1));
        let mut m = messages(vec![one.clone().into_bytes(), one.into_bytes()]);
        assert_eq!(all(&mut m).await.len(), 2);
    }

    #[tokio::test]
    async fn keep_alives_never_add_up_to_the_bound() {
        // More keep-alive bytes in total than the bound, then a message: still read.
        let mut chunks = vec![b":keep-alive\n\n".to_vec(); MAX_MESSAGE_BYTES / 10];
        chunks.push(b"data: x\n\n".to_vec());
        let mut m = messages(chunks);
        assert_eq!(all(&mut m).await.len(), 1);
        // Also as one big chunk of blank lines and comments (read line by line).
        let mut big = b":\n\n".repeat(MAX_MESSAGE_BYTES / 2);
        big.extend_from_slice(b"data: y\n\n");
        let mut m = messages(vec![big]);
        assert_eq!(all(&mut m).await.len(), 1);
    }

    #[tokio::test]
    async fn a_silent_or_closed_stream_is_dropped() {
        let mut m = Messages::new(
            futures_util::stream::pending::<reqwest::Result<Bytes>>(),
            Duration::from_millis(20),
        );
        assert!(matches!(m.next().await, Read::Dropped));
        let mut m = messages(vec![]);
        assert!(matches!(m.next().await, Read::Dropped));
    }
}
