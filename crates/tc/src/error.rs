//! The CLI's typed failure: an exit code, a stable machine code, a message and a hint saying
//! what to do next. SDK errors are classified here; nothing else decides exit codes.

use tinycloud_auth::resource::Resource;
use tinycloud_sdk::Error as SdkError;

use crate::posture::Posture;

/// Exit codes (shared with the reference CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 1: anything else.
    Error = 1,
    /// 2: bad flags or invalid input.
    Usage = 2,
    /// 3: no session, or it expired.
    AuthRequired = 3,
    /// 4: the key or object does not exist.
    NotFound = 4,
    /// 5: the node (or the session) refused for lack of a capability.
    PermissionDenied = 5,
    /// 6: the node could not be reached.
    Network = 6,
    /// 7: the node answered with an unexpected error.
    Node = 7,
}

/// A failure as the user sees it. Messages never contain key material or values.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Exit code.
    pub exit: Exit,
    /// Stable code for scripts (`NOT_FOUND`, `AUTH_REQUIRED`, …).
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// What to do next.
    pub hint: Option<String>,
}

impl CliError {
    /// A failure with an explicit exit code and machine code.
    pub fn new(exit: Exit, code: &'static str, message: impl Into<String>) -> Self {
        CliError {
            exit,
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// Invalid input or flags (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, "INPUT_INVALID", message)
    }

    /// Local failure (exit 1).
    pub fn general(message: impl Into<String>) -> Self {
        Self::new(Exit::Error, "ERROR", message)
    }

    /// No usable session (exit 3).
    pub fn auth_required(message: impl Into<String>) -> Self {
        Self::new(Exit::AuthRequired, "AUTH_REQUIRED", message)
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Not a failure of `tc`: a command run by `tc secrets run` exited with this code, which `tc`
/// exits with too (nothing is printed).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the command exited with code {0}")]
pub struct ChildExit(pub u8);

/// What the hints may assume about the profile in use.
#[derive(Clone, Debug, Default)]
pub struct HintContext {
    /// The profile's posture, when it exists.
    pub posture: Option<Posture>,
}

impl HintContext {
    fn is_delegate(&self) -> bool {
        self.posture == Some(Posture::DelegateSession)
    }

    fn sign_in_hint(&self) -> String {
        match self.posture {
            Some(Posture::DelegateSession) => "ask the owner for a delegation: run `tc auth request --cap kv:<path>:<actions> --emit req.json`, have the owner run `tc auth grant req.json`, then `tc auth import grant.json`".into(),
            Some(Posture::LocalOwnerKey) => "run `tc auth login`".into(),
            None => "run `tc auth login --generate` (owner) or `tc init --session-only` (agent)".into(),
        }
    }
}

/// `kv:<path>:<action>` for a missing `<resource> / <ability>` string, when it can be read.
fn request_spec(missing: &str) -> Option<String> {
    let (resource, ability) = missing.split_once(" / ")?;
    let (namespace, action) = ability.trim().split_once('/')?;
    let service = namespace.strip_prefix("tinycloud.")?;
    let path = match resource.trim().parse::<Resource>().ok()? {
        Resource::Space(r) => r.path().unwrap_or_default().to_owned(),
        _ => return None,
    };
    Some(format!("{service}:{path}:{action}"))
}

/// Maps an SDK error to what the user sees.
pub fn from_sdk(e: &SdkError, ctx: &HintContext) -> CliError {
    match e {
        SdkError::NotSignedIn => CliError::auth_required("not signed in").hint(ctx.sign_in_hint()),
        SdkError::SessionExpired { expired_at } => CliError::new(
            Exit::AuthRequired,
            "SESSION_EXPIRED",
            format!("the session expired at {expired_at}"),
        )
        .hint(ctx.sign_in_hint()),
        SdkError::PermissionDenied { message, missing } => {
            let (message, hint) = match missing {
                Some(m) => {
                    let (resource, ability) = m.split_once(" / ").unwrap_or((m.as_str(), ""));
                    let hint = match request_spec(m) {
                        Some(spec) if ctx.is_delegate() => format!(
                            "ask the owner for it: `tc auth request --cap {spec}`, then `tc auth import` the grant and retry"
                        ),
                        Some(spec) => format!(
                            "this session does not hold it; sign in again with `tc auth login`, or ask for it with `tc auth request --cap {spec}`"
                        ),
                        None => ctx.sign_in_hint(),
                    };
                    (
                        format!("permission denied: missing capability {ability} on {resource}"),
                        hint,
                    )
                }
                None if ctx.is_delegate() => (
                    format!("permission denied: {message}"),
                    "the delegation may have been revoked or may not cover this; ask the owner for a new one with `tc auth request`".into(),
                ),
                None => (
                    format!("permission denied: {message}"),
                    ctx.sign_in_hint(),
                ),
            };
            CliError::new(Exit::PermissionDenied, "PERMISSION_DENIED", message).hint(hint)
        }
        SdkError::MissingCapabilities(missing) => CliError::new(
            Exit::PermissionDenied,
            "PERMISSION_DENIED",
            format!(
                "the session lacks these capabilities: {}",
                missing.join(", ")
            ),
        )
        .hint("delegate only what this profile holds (see `tc auth status`), or sign in with a wider session"),
        SdkError::NotFound(m) => CliError::new(Exit::NotFound, "NOT_FOUND", not_found_message(m)),
        SdkError::PreconditionFailed(m) => CliError::new(
            Exit::Error,
            "PRECONDITION_FAILED",
            format!("precondition failed: {m}"),
        )
        .hint("read the current ETag with `tc kv head <key>` and retry"),
        SdkError::InvalidInput(m) => CliError::usage(format!("invalid input: {m}")),
        SdkError::Network(m) => CliError::new(
            Exit::Network,
            "NETWORK_ERROR",
            format!("cannot reach the node: {m}"),
        )
        .hint("check --host / TC_HOST, or start a local node with `tc node serve`"),
        SdkError::ProtocolMismatch { .. } => {
            CliError::new(Exit::Node, "NODE_ERROR", e.to_string())
        }
        SdkError::Node { .. } | SdkError::Replay(_) | SdkError::Quota(_) => {
            CliError::new(Exit::Node, "NODE_ERROR", e.to_string())
        }
        SdkError::Token(_) | SdkError::Storage(_) | SdkError::Signer(_) => {
            CliError::general(e.to_string())
        }
        SdkError::NodeMismatch { .. } => CliError::new(Exit::Node, "NODE_MISMATCH", e.to_string())
            .hint("if the node's identity really changed (a new node secret), check with its operator, then re-pin with `tc auth pin-node`; otherwise check --host / TC_HOST"),
        SdkError::ResponseTooLarge { .. } => {
            CliError::new(Exit::Node, "RESPONSE_TOO_LARGE", e.to_string())
        }
        SdkError::RolledBack { name, .. } => CliError::new(Exit::Error, "ROLLED_BACK", e.to_string())
            .hint(format!("someone with write access stored an older value again; the owner stores the current one with `tc secrets put {name}` (older versions: `tc secrets info`)")),
    }
}

fn not_found_message(m: &str) -> String {
    if m.is_empty() {
        "not found".into()
    } else {
        m.to_owned()
    }
}

/// Classifies any error reaching `main`.
pub fn classify(err: &anyhow::Error, ctx: &HintContext) -> CliError {
    if let Some(e) = err.downcast_ref::<CliError>() {
        return e.clone();
    }
    if let Some(e) = err.downcast_ref::<SdkError>() {
        let mut out = from_sdk(e, ctx);
        // Keep any context the command added ("reading notes/x: …").
        if err.chain().count() > 1 {
            let outer = err.to_string();
            if !outer.is_empty() && !out.message.starts_with(&outer) {
                out.message = format!("{outer}: {}", out.message);
            }
        }
        return out;
    }
    if let Some(e) = err.downcast_ref::<tinycloud_node::config::ConfigError>() {
        return CliError::usage(e.to_string());
    }
    CliError::general(format!("{err:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACE: &str = "tinycloud:pkh:eip155:1:0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf:default";

    #[test]
    fn permission_denied_names_the_capability_and_the_request() {
        let e = SdkError::PermissionDenied {
            message: "Unauthorized Action".into(),
            missing: Some(format!("{SPACE}/kv/private/x / tinycloud.kv/get")),
        };
        let ctx = HintContext {
            posture: Some(Posture::DelegateSession),
        };
        let c = from_sdk(&e, &ctx);
        assert_eq!(c.exit, Exit::PermissionDenied);
        assert!(c.message.contains("tinycloud.kv/get"), "{}", c.message);
        assert!(c
            .hint
            .unwrap()
            .contains("tc auth request --cap kv:private/x:get"));
    }

    #[test]
    fn exit_codes() {
        let ctx = HintContext::default();
        let cases = [
            (SdkError::NotSignedIn, Exit::AuthRequired),
            (
                SdkError::SessionExpired {
                    expired_at: "x".into(),
                },
                Exit::AuthRequired,
            ),
            (SdkError::NotFound("k".into()), Exit::NotFound),
            (SdkError::InvalidInput("k".into()), Exit::Usage),
            (SdkError::Network("k".into()), Exit::Network),
            (
                SdkError::Node {
                    status: 500,
                    message: "x".into(),
                },
                Exit::Node,
            ),
            (
                SdkError::MissingCapabilities(vec![]),
                Exit::PermissionDenied,
            ),
        ];
        for (e, exit) in cases {
            assert_eq!(from_sdk(&e, &ctx).exit, exit, "{e:?}");
        }
    }

    #[test]
    fn context_is_kept() {
        let e = anyhow::Error::new(SdkError::NotFound(String::new())).context("reading a");
        let c = classify(&e, &HintContext::default());
        assert_eq!(c.exit, Exit::NotFound);
        assert_eq!(c.message, "reading a: not found");
        let e = anyhow::Error::new(SdkError::NotFound("Key not found: a".into()));
        assert_eq!(
            classify(&e, &HintContext::default()).message,
            "Key not found: a"
        );
    }
}
