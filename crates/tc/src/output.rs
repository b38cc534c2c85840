//! Output for people and for machines. Results go to stdout (JSON with `--json`); notes,
//! prompts, progress and errors go to stderr. A closed stdout (`tc kv ls | head`) is not an
//! error.
//!
//! Everything printed for people passes through the SDK's one sanitizer
//! ([`tinycloud_sdk::terminal`]): here as a last pass over whole texts (no terminal control,
//! bidi or invisible character survives), and in the commands per untrusted field (so a line
//! feed inside a key or a host cannot fake a line). JSON escapes what the sanitizer escapes.

use std::io::{IsTerminal, Write};

use serde_json::{json, Value};

use tinycloud_sdk::terminal;

use crate::error::CliError;

/// A size as people read it, by `bytesize` in binary units (`512 B`, `64.0 KiB`, `1.0 MiB`).
pub fn size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// A count of bytes written: exact, with the readable size beside it once it is past 1 KiB
/// (`11 bytes`, `2048 bytes (2.0 KiB)`).
pub fn bytes_written(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} bytes")
    } else {
        format!("{bytes} bytes ({})", size(bytes))
    }
}

/// How to print.
#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    /// Machine output.
    pub json: bool,
    /// No notes or progress.
    pub quiet: bool,
}

fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::general(format!("cannot write to stdout: {e}"))),
    }
}

/// Pretty JSON with a trailing newline. serde_json escapes C0 controls; the other characters
/// the sanitizer escapes (DEL, C1, bidi, invisibles) are written as `\uXXXX` too, which is the
/// same JSON (they can only occur inside strings).
pub fn to_json_text(value: &Value) -> String {
    let mut out =
        json_safe(&serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
    out.push('\n');
    out
}

/// JSON text with every character the sanitizer escapes (other than the line feeds of
/// pretty-printing, which are never inside a string) written as `\uXXXX`.
pub fn json_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut buf = [0u8; 4];
    for c in json.chars() {
        let s: &str = c.encode_utf8(&mut buf);
        if c != '\n' && terminal::field(s) != s {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Output {
    /// Prints a result: `value` as JSON, or the human rendering (which is data, so `--quiet`
    /// does not hide it).
    pub fn result(&self, value: &Value, human: impl FnOnce() -> String) -> Result<(), CliError> {
        if self.json {
            write_stdout(to_json_text(value).as_bytes())
        } else {
            let mut text = terminal::text(&human()).into_owned();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            write_stdout(text.as_bytes())
        }
    }

    /// Prints a confirmation for people ("Deleted notes/x"); JSON gets `value`. Hidden by
    /// `--quiet` in human mode.
    pub fn done(&self, value: &Value, human: impl FnOnce() -> String) -> Result<(), CliError> {
        if self.json {
            write_stdout(to_json_text(value).as_bytes())
        } else if self.quiet {
            Ok(())
        } else {
            self.result(value, human)
        }
    }

    /// Prints a JSON document (an artifact) on stdout regardless of mode.
    pub fn document(&self, value: &Value) -> Result<(), CliError> {
        write_stdout(to_json_text(value).as_bytes())
    }

    /// One line of a stream on stdout, flushed at once. `Ok(false)` when stdout has been
    /// closed (`tc watch | head -3`): the caller should stop.
    pub fn line(&self, text: &str) -> Result<bool, CliError> {
        let mut out = std::io::stdout().lock();
        let text: std::borrow::Cow<'_, str> = if self.json {
            json_safe(text).into()
        } else {
            terminal::text(text)
        };
        match writeln!(out, "{text}").and_then(|()| out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(CliError::general(format!("cannot write to stdout: {e}"))),
        }
    }

    /// Raw bytes on stdout.
    pub fn raw(&self, bytes: &[u8]) -> Result<(), CliError> {
        write_stdout(bytes)
    }

    /// A note for people on stderr (hidden by `--quiet` and `--json`).
    pub fn note(&self, text: &str) {
        if !self.quiet && !self.json {
            eprintln!("{}", terminal::text(text));
        }
    }

    /// A machine-readable report on stderr, one line of JSON (for `--json` runs whose stdout
    /// is not `tc`'s, e.g. `secrets run`); hidden by `--quiet`.
    pub fn event(&self, value: &Value) {
        if !self.quiet {
            eprintln!("{}", json_safe(&value.to_string()));
        }
    }

    /// Text the user must see before signing (stderr; hidden only by `--quiet`).
    pub fn notice(&self, text: &str) {
        if !self.quiet {
            let text = terminal::text(text);
            eprint!("{text}");
            if !text.ends_with('\n') {
                eprintln!();
            }
        }
    }

    /// Whether an indicatif progress bar may be drawn.
    pub fn progress_allowed(&self) -> bool {
        !self.quiet && !self.json && std::io::stderr().is_terminal()
    }

    /// Reports a failure on stderr.
    pub fn error(&self, e: &CliError) {
        if self.json {
            let mut err = json!({"code": e.code, "message": e.message});
            if let Some(h) = &e.hint {
                err["hint"] = json!(h);
            }
            eprintln!("{}", json_safe(&json!({ "error": err }).to_string()));
        } else {
            eprintln!("error: {}", terminal::field(&e.message));
            if let Some(h) = &e.hint {
                eprintln!("hint: {}", terminal::field(h));
            }
        }
    }
}

/// Asks before signing. `--yes` skips the question; without a terminal the question cannot be
/// asked, so `--yes` is required.
pub fn confirm(out: &Output, question: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    if out.json || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(
            CliError::usage("confirmation required but there is no terminal to ask on")
                .hint("review the text above and pass --yes to sign non-interactively"),
        );
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| CliError::general(format!("cannot read the answer: {e}")))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::general("cancelled: nothing was signed")),
    }
}
