//! The server's clock: Unix milliseconds, and RFC 3339 rendering through the protocol core.

use std::time::{SystemTime, UNIX_EPOCH};

use tinycloud_auth::timestamp::Timestamp;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 text for Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    Timestamp::from_millis(ms).to_rfc3339()
}
