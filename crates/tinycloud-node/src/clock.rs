//! The node's clock, and its Unix-ms shorthand for the core's one time formatter. A base module: it depends on nothing else
//! of the crate, so every layer may use it.

use tinycloud_auth::timestamp::Timestamp;

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::from(time::OffsetDateTime::now_utc())
}

/// A Unix-ms time as RFC 3339 (empty if it cannot be formatted).
pub fn rfc3339(ms: i64) -> String {
    Timestamp::from_millis(ms).to_rfc3339()
}
