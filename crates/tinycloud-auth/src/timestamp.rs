//! Instants as Unix milliseconds. The protocol core never reads a clock: callers pass `now`.

use std::fmt;

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// From whole seconds since the epoch.
    pub const fn from_secs(s: i64) -> Self {
        Timestamp(s.saturating_mul(1000))
    }

    /// From a JWT NumericDate, which may be fractional. `None` for values that are not finite,
    /// negative or beyond year 275760 (JavaScript's Date range).
    pub fn from_numeric_date(secs: f64) -> Option<Self> {
        const MAX_SECS: f64 = 8.64e12;
        if !secs.is_finite() || !(0.0..=MAX_SECS).contains(&secs) {
            return None;
        }
        // Rounded, so that a millisecond time written as fractional seconds reads back exactly.
        Some(Timestamp((secs * 1000.0).round() as i64))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floored).
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// As a JWT NumericDate.
    pub fn as_numeric_date(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// `self + secs`.
    pub const fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// As a `time` date-time (clamped to its range).
    pub fn to_datetime(self) -> time::OffsetDateTime {
        let nanos = i128::from(self.0) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    /// As RFC 3339 in UTC (`Z`), with fractional seconds only when there are any. The one
    /// time formatter of every crate. Empty for instants RFC 3339 cannot write (after 9999).
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    /// Parses an RFC 3339 date-time (any offset); `None` if it is not one.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(Timestamp::from)
    }
}

impl From<time::OffsetDateTime> for Timestamp {
    fn from(dt: time::OffsetDateTime) -> Self {
        let ms = dt.unix_timestamp_nanos().div_euclid(1_000_000);
        Timestamp(i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX }))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms)", self.0)
    }
}

/// Whether `now` is inside `[not_before, expiration)`.
pub fn within(
    now: Timestamp,
    not_before: Option<Timestamp>,
    expiration: Option<Timestamp>,
) -> bool {
    not_before.is_none_or(|nbf| nbf <= now) && expiration.is_none_or(|exp| now < exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_dates() {
        assert_eq!(
            Timestamp::from_numeric_date(1767225720.5)
                .unwrap()
                .as_millis(),
            1767225720500
        );
        assert_eq!(
            Timestamp::from_numeric_date(10.0).unwrap(),
            Timestamp::from_secs(10)
        );
        assert!(Timestamp::from_numeric_date(f64::NAN).is_none());
        assert!(Timestamp::from_numeric_date(-1.0).is_none());
        assert!(Timestamp::from_numeric_date(1e300).is_none());
    }

    #[test]
    fn rfc3339() {
        assert_eq!(
            Timestamp::from_secs(1767225720).to_rfc3339(),
            "2026-01-01T00:02:00Z"
        );
        assert_eq!(
            Timestamp::from_millis(1767225720500).to_rfc3339(),
            "2026-01-01T00:02:00.5Z"
        );
        assert_eq!(Timestamp::from_secs(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        let t = Timestamp::from_millis(1767225720123);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-01-01T01:02:00+01:00"),
            Some(Timestamp::from_secs(1767225720))
        );
        assert_eq!(Timestamp::parse_rfc3339("2026-01-01"), None);
        assert_eq!(Timestamp::parse_rfc3339(""), None);
    }

    #[test]
    fn window() {
        let t = Timestamp::from_secs(100);
        assert!(within(t, Some(t), Some(t.plus_secs(1))));
        assert!(!within(t, None, Some(t)), "exp is exclusive");
        assert!(!within(t, Some(t.plus_secs(1)), None));
        assert!(within(t, None, None));
    }
}
