//! A small Server-Sent Events parser (the `text/event-stream` format): `event`, `id` and
//! `data` fields, messages separated by blank lines, comment lines (`:` …) ignored.

use crate::error::{Error, Result};

/// Largest message (or unterminated line) accepted from the node.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// One dispatched message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// The `event` field (`message` when absent, as the standard says).
    pub event: String,
    /// The last `id` field seen in the message, if any.
    pub id: Option<String>,
    /// The `data` fields joined with `\n`.
    pub data: String,
}

/// Incremental parser: feed bytes with [`Parser::push`], take messages with
/// [`Parser::next_message`].
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes not yet split into lines.
    buf: Vec<u8>,
    /// Where the next unscanned line starts in `buf`.
    start: usize,
    /// The message being assembled.
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
    pending_bytes: usize,
}

impl Parser {
    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() > MAX_MESSAGE_BYTES {
            return Err(Error::Node {
                status: 200,
                message: format!("event stream line longer than {MAX_MESSAGE_BYTES} bytes"),
            });
        }
        Ok(())
    }

    /// The next complete message, if the bytes pushed so far hold one.
    pub fn next_message(&mut self) -> Result<Option<Message>> {
        while let Some(offset) = self.buf[self.start..].iter().position(|&b| b == b'\n') {
            let end = self.start + offset;
            let raw = &self.buf[self.start..end];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let line = String::from_utf8_lossy(raw).into_owned();
            self.start = end + 1;
            if let Some(message) = self.line(&line)? {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    /// Handles one line; a blank line dispatches the message assembled so far.
    fn line(&mut self, line: &str) -> Result<Option<Message>> {
        if line.is_empty() {
            let event = self.event.take();
            let id = self.id.take();
            self.pending_bytes = 0;
            // A message without data is not dispatched (keep-alives, stray ids).
            return Ok(self.data.take().map(|data| Message {
                event: event.unwrap_or_else(|| "message".into()),
                id,
                data,
            }));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        self.pending_bytes += value.len();
        if self.pending_bytes > MAX_MESSAGE_BYTES {
            return Err(Error::Node {
                status: 200,
                message: format!("event larger than {MAX_MESSAGE_BYTES} bytes"),
            });
        }
        match field {
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut Parser) -> Vec<Message> {
        std::iter::from_fn(|| p.next_message().unwrap()).collect()
    }

    #[test]
    fn messages_across_chunk_boundaries() {
        let text = "event: write\nid: 7\ndata: {\"seq\":7}\n\n:\n\nevent: end\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n";
        for split in 0..text.len() {
            let mut p = Parser::default();
            p.push(&text.as_bytes()[..split]).unwrap();
            let mut got = all(&mut p);
            p.push(&text.as_bytes()[split..]).unwrap();
            got.extend(all(&mut p));
            assert_eq!(
                got,
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

    #[test]
    fn comments_keepalives_and_unknown_fields_are_ignored() {
        let mut p = Parser::default();
        p.push(b": keep-alive\n\nretry: 10\nfoo\nid\ndata:x\n\n")
            .unwrap();
        assert_eq!(
            all(&mut p),
            [Message {
                event: "message".into(),
                id: Some(String::new()),
                data: "x".into()
            }]
        );
    }

    #[test]
    fn oversized_input_is_refused() {
        let mut p = Parser::default();
        assert!(p.push(&vec![b'a'; MAX_MESSAGE_BYTES + 1]).is_err());
        let mut p = Parser::default();
        let line = format!("data: {}\n", "a".repeat(MAX_MESSAGE_BYTES / 2 + 1));
        p.push(line.as_bytes()).unwrap();
        assert!(p.next_message().unwrap().is_none());
        p.push(line.as_bytes()).unwrap();
        assert!(p.next_message().is_err());
    }
}
