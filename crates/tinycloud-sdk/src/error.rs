//! SDK errors: typed, so callers (and the CLI's exit codes) can tell an expired session from a
//! missing permission from a network failure.

/// Everything that can go wrong in the SDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No session: sign in (owner) or import a delegation (delegate) first.
    #[error("not signed in: run sign-in or import a delegation first")]
    NotSignedIn,
    /// The session (or the delegation it rests on) has expired.
    #[error("session expired at {expired_at}; sign in again")]
    SessionExpired {
        /// When it expired (RFC 3339).
        expired_at: String,
    },
    /// The node refused for lack of authority (HTTP 401/403). `missing` names the capability
    /// when the node said which one.
    #[error("permission denied: {message}")]
    PermissionDenied {
        /// The node's explanation.
        message: String,
        /// `<resource> / <ability>` that was not covered, when known.
        missing: Option<String>,
    },
    /// A delegation asked for capabilities the session does not hold.
    #[error("the session lacks these capabilities: {}", .0.join(", "))]
    MissingCapabilities(Vec<String>),
    /// The key, object or delegation does not exist (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// A conditional write lost (HTTP 412).
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The invocation was already used (HTTP 409).
    #[error("invocation replayed: {0}")]
    Replay(String),
    /// Storage quota (HTTP 402) or size limit (HTTP 413).
    #[error("quota or size limit: {0}")]
    Quota(String),
    /// Invalid input, refused before anything was sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The node speaks another protocol version.
    #[error("protocol mismatch: node speaks protocol {node}, this client speaks {client}")]
    ProtocolMismatch {
        /// Node's version.
        node: u64,
        /// Ours.
        client: u64,
    },
    /// The node could not be reached.
    #[error("cannot reach the node: {0}")]
    Network(String),
    /// The node answered with an unexpected error.
    #[error("node error (HTTP {status}): {message}")]
    Node {
        /// HTTP status.
        status: u16,
        /// Body text.
        message: String,
    },
    /// A token could not be built or decoded.
    #[error("token error: {0}")]
    Token(String),
    /// Local storage (session files) failed.
    #[error("local storage: {0}")]
    Storage(String),
    /// The signer refused or failed.
    #[error("signer: {0}")]
    Signer(String),
    /// The node answered with another identity than the one pinned for it.
    #[error("the node identifies as {actual}, but {expected} is pinned for it; refusing to trust its answers")]
    NodeMismatch {
        /// The pinned DID.
        expected: String,
        /// The DID the node announced.
        actual: String,
    },
    /// A stored secret is older than a version kept in its history: an earlier envelope was
    /// stored again (a rollback). Refused rather than used.
    #[error("secret {name} was rolled back: its version {version} is older than the kept version {newest_kept}; store it again")]
    RolledBack {
        /// The secret's name.
        name: String,
        /// The signed version of the stored envelope.
        version: u64,
        /// The newest owner-signed version kept in its history.
        newest_kept: u64,
    },
    /// A response body exceeded the cap for its kind; reading stopped at the cap.
    #[error("the node's {what} exceeds {limit} bytes; refused")]
    ResponseTooLarge {
        /// What was being read (`error message`, `JSON answer`, `value`).
        what: &'static str,
        /// The cap in bytes.
        limit: usize,
    },
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            return Error::Network(format!("{e}: timed out"));
        }
        // reqwest's own text hides the cause ("error sending request"); add the chain.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::Network(message)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

/// Longest error body read from a node (the rest is dropped unread).
pub const MAX_ERROR_BODY_BYTES: usize = 4 * 1024;

/// Reads a response body, refusing it as soon as it exceeds `limit` bytes (checked against
/// `Content-Length` first, then while reading), so a flooding node costs at most `limit`.
pub(crate) async fn read_capped(
    mut r: reqwest::Response,
    limit: usize,
    what: &'static str,
) -> Result<bytes::Bytes> {
    let too_large = || Error::ResponseTooLarge { what, limit };
    if r.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = r.chunk().await? {
        if out.len() + chunk.len() > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// Reads a JSON body of at most `limit` bytes.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    r: reqwest::Response,
    limit: usize,
) -> Result<T> {
    let status = r.status().as_u16();
    let body = read_capped(r, limit, "JSON answer").await?;
    serde_json::from_slice(&body).map_err(|e| Error::Node {
        status,
        message: format!("invalid JSON answer: {e}"),
    })
}

/// The start of an error body: at most [`MAX_ERROR_BODY_BYTES`] are read, whatever the node
/// sends; invalid UTF-8 is replaced.
async fn error_body(mut r: reqwest::Response) -> String {
    let mut out = Vec::new();
    while out.len() < MAX_ERROR_BODY_BYTES {
        match r.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ERROR_BODY_BYTES - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Passes `r` on when `accept` takes its status; otherwise reads (the start of) the body and
/// maps the status to the typed error of [`from_status`].
pub(crate) async fn check_status(
    r: reqwest::Response,
    accept: impl Fn(u16) -> bool,
) -> Result<reqwest::Response> {
    let status = r.status().as_u16();
    if accept(status) {
        return Ok(r);
    }
    Err(from_status(status, error_body(r).await))
}

/// Maps a non-success response to a typed error.
pub fn from_status(status: u16, body: String) -> Error {
    let message = body.trim().chars().take(500).collect::<String>();
    match status {
        401 | 403 => {
            let missing = message
                .strip_prefix("Unauthorized Action: ")
                .map(|m| m.split(" (").next().unwrap_or(m).to_owned());
            Error::PermissionDenied { message, missing }
        }
        404 => Error::NotFound(message),
        409 => Error::Replay(message),
        412 => Error::PreconditionFailed(message),
        402 | 413 => Error::Quota(message),
        400 => Error::InvalidInput(message),
        _ => Error::Node { status, message },
    }
}
