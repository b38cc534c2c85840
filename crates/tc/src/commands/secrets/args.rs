//! Secret names and scopes as the user types them: checked without echoing (a value typed
//! where a name belongs must not be printed), deny-listed names refused where a secret would
//! be stored, granted or injected, and the labels and JSON fields that name them.

use serde_json::{json, Value};
use tinycloud_sdk::secrets::{self as sdk};
use tinycloud_sdk::Error as SdkError;

use crate::error::CliError;

/// Checks a name's form without echoing it: a value typed where the name belongs must not be
/// printed. Deny-listed names pass (to read, list or delete a planted one).
pub(super) fn name_syntax_arg(name: &str) -> Result<String, CliError> {
    sdk::check_name_syntax(name)
        .map(str::to_owned)
        .map_err(|_| {
            CliError::usage("invalid secret name: use A-Z, 0-9 and _, starting with a letter")
                .hint("e.g. OPENAI_API_KEY")
        })
}

/// A name a secret may be stored, granted or run under: well-formed and not on the deny list.
pub(super) fn name_arg(name: &str) -> Result<String, CliError> {
    let n = name_syntax_arg(name)?;
    match sdk::denied(&n) {
        None => Ok(n),
        Some(why) => Err(CliError::usage(format!(
            "secret name {n} is refused: {why}"
        ))
        .hint("pick another name (e.g. APP_PATH); the list is in the README (tc secrets: names that are refused)")),
    }
}

/// Longest `--env-file` read.
pub(super) const MAX_ENV_FILE_BYTES: u64 = 64 * 1024;

/// The names listed in an `--env-file`: one per line, blank lines and `#` comments skipped.
pub(super) fn names_from_file(path: &std::path::Path) -> Result<Vec<String>, CliError> {
    let text = crate::commands::read_capped_file(path, MAX_ENV_FILE_BYTES)?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(name_arg)
        .collect()
}

/// The canonical scope, if one is given.
pub(super) fn scope_arg(scope: Option<&str>) -> Result<Option<String>, CliError> {
    scope
        .map(|s| {
            sdk::canonical_scope(s).map_err(|e| match e {
                SdkError::InvalidInput(m) => CliError::usage(m),
                other => CliError::usage(other.to_string()),
            })
        })
        .transpose()
}

/// `"NAME"` or `"NAME" in scope "s"`.
pub(super) fn label(name: &str, scope: Option<&str>) -> String {
    match scope {
        Some(s) => format!("\"{name}\" in scope \"{s}\""),
        None => format!("\"{name}\""),
    }
}

/// Adds `scope` to a JSON result when one was given.
pub(super) fn with_scope(mut value: Value, scope: Option<&str>) -> Value {
    if let (Some(s), Some(obj)) = (scope, value.as_object_mut()) {
        obj.insert("scope".into(), json!(s));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;

    #[test]
    fn invalid_names_are_not_echoed() {
        let e = name_arg("sk-live-123").unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(!e.message.contains("sk-live"), "{}", e.message);
        assert_eq!(name_arg(" API_KEY ").unwrap(), "API_KEY");
    }
}
