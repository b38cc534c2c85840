//! Reading a secret's value: from stdin (piped or `--stdin`, capped, one trailing newline
//! removed) or typed twice at a hidden prompt; never from the command line.

use std::io::{IsTerminal as _, Read as _};

use tinycloud_sdk::secrets::{self as sdk};

use crate::cli::SecretValueArgs;
use crate::error::CliError;

/// Longest value accepted (secrets are small; this stops an accidental `< big.iso`).
const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// `put`/`rotate` refuse a value passed as an argument, without repeating it.
pub(super) fn refuse_value_in_argv(args: &SecretValueArgs, verb: &str) -> Result<(), CliError> {
    if args.value_in_argv.is_empty() {
        return Ok(());
    }
    Err(CliError::usage(
        "secret values are not accepted as arguments (they would stay in shell history and show in the process list); nothing was stored",
    )
    .hint(format!(
        "pipe the value: printf '%s' \"$VALUE\" | tc secrets {verb} NAME --stdin, or run `tc secrets {verb} NAME` in a terminal to type it at a hidden prompt"
    )))
}

/// Removes one trailing line ending (`echo value |` adds one).
pub(super) fn strip_newline(mut value: String) -> String {
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    value
}

/// The value: stdin when asked or piped, else typed twice at a hidden prompt.
pub(super) fn read_value(from_stdin: bool, name: &str) -> Result<String, CliError> {
    let stdin = std::io::stdin();
    let value = if from_stdin || !stdin.is_terminal() {
        let mut bytes = Vec::new();
        stdin
            .lock()
            .take(MAX_VALUE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::usage(format!("cannot read stdin: {e}")))?;
        if bytes.len() > MAX_VALUE_BYTES {
            return Err(CliError::usage(format!(
                "the value is larger than {}; nothing was stored",
                crate::output::size(MAX_VALUE_BYTES as u64)
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            CliError::usage("the value is not UTF-8 text; nothing was stored")
                .hint("encode binary values first, e.g. with base64")
        })?;
        strip_newline(text)
    } else {
        prompt(name)?
    };
    if value.is_empty() {
        return Err(CliError::usage("the value is empty; nothing was stored").hint(
            "pipe it: printf '%s' \"$VALUE\" | tc secrets put NAME --stdin, or type it at the prompt",
        ));
    }
    if sdk::check_value(&value).is_err() {
        return Err(CliError::usage(
            "the value contains a NUL byte, which an environment variable cannot carry; nothing was stored",
        )
        .hint("encode binary values first, e.g. with base64"));
    }
    Ok(value)
}

/// Asks for the value twice on the terminal without echoing it.
pub(super) fn prompt(name: &str) -> Result<String, CliError> {
    let term = console::Term::stderr();
    if !term.is_term() {
        return Err(
            CliError::usage("no value: there is no terminal to prompt on")
                .hint("pipe the value: printf '%s' \"$VALUE\" | tc secrets put NAME --stdin"),
        );
    }
    let read = |question: &str| -> Result<String, CliError> {
        term.write_str(question)
            .and_then(|()| term.read_secure_line())
            .map_err(|e| CliError::general(format!("cannot read the value: {e}")))
    };
    let first = read(&format!("Value for {name} (input hidden): "))?;
    let second = read("Repeat to confirm: ")?;
    if first != second {
        return Err(CliError::usage(
            "the two entries differ; nothing was stored",
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_removed() {
        assert_eq!(strip_newline("sk-1\n".into()), "sk-1");
        assert_eq!(strip_newline("sk-1\r\n".into()), "sk-1");
        assert_eq!(strip_newline("sk-1\n\n".into()), "sk-1\n");
        assert_eq!(strip_newline("sk-1".into()), "sk-1");
    }
}
