//! Output for people and for machines. Results go to stdout (JSON with `--json`); notes,
//! prompts, progress and errors go to stderr. A closed stdout (`tc kv ls | head`) is not an
//! error.

use std::io::{IsTerminal, Write};

use serde_json::{json, Value};

use crate::error::CliError;

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

/// Pretty JSON with a trailing newline.
pub fn to_json_text(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    s.push('\n');
    s
}

impl Output {
    /// Prints a result: `value` as JSON, or the human rendering (which is data, so `--quiet`
    /// does not hide it).
    pub fn result(&self, value: &Value, human: impl FnOnce() -> String) -> Result<(), CliError> {
        if self.json {
            write_stdout(to_json_text(value).as_bytes())
        } else {
            let mut text = human();
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
            eprintln!("{text}");
        }
    }

    /// Text the user must see before signing (stderr; hidden only by `--quiet`).
    pub fn notice(&self, text: &str) {
        if !self.quiet {
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
            eprintln!("{}", json!({ "error": err }));
        } else {
            eprintln!("error: {}", e.message);
            if let Some(h) = &e.hint {
                eprintln!("hint: {h}");
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
