//! RFC 3339 timestamps that remember their original spelling.
//!
//! A SIWE message is signed over its exact text, and CACAO carries the
//! timestamp strings verbatim, so a timestamp must re-serialize byte-for-byte.
//! [`TimeStamp`] therefore keeps the text it was parsed from next to the
//! parsed instant.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Why a string is not an acceptable RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeStampError {
    /// The text does not follow the RFC 3339 `date-time` grammar.
    #[error("not RFC 3339 date-time syntax: {0:?}")]
    Syntax(String),
    /// The text is well-formed but names no real instant (month 13, day 32,
    /// hour 25, February 30th, ...).
    #[error("RFC 3339 date-time out of range: {value:?} ({reason})")]
    Semantics {
        /// The rejected text.
        value: String,
        /// What was out of range, as reported by the date library.
        reason: String,
    },
    /// The instant cannot be written as RFC 3339 (year outside 0000..=9999).
    #[error("instant cannot be represented as an RFC 3339 date-time")]
    Unrepresentable,
}

/// An RFC 3339 timestamp: original text plus the parsed instant.
///
/// Invariant: `datetime` is exactly what `text` denotes. Fields are private so
/// the pair can only come from [`TimeStamp::parse`] or
/// [`TimeStamp::from_datetime`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimeStamp {
    text: String,
    datetime: OffsetDateTime,
}

impl TimeStamp {
    /// Parses an RFC 3339 `date-time`, keeping the original text.
    ///
    /// Malformed text yields [`TimeStampError::Syntax`]; well-formed text with
    /// impossible values yields [`TimeStampError::Semantics`].
    pub fn parse(s: &str) -> Result<Self, TimeStampError> {
        if !is_rfc3339_syntax(s) {
            return Err(TimeStampError::Syntax(s.to_owned()));
        }
        let datetime =
            OffsetDateTime::parse(s, &Rfc3339).map_err(|e| TimeStampError::Semantics {
                value: s.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            text: s.to_owned(),
            datetime,
        })
    }

    /// Renders `datetime` as `YYYY-MM-DDTHH:MM:SS.mmmZ`: converted to UTC and
    /// truncated to millisecond precision (the stored instant is truncated too,
    /// so it always matches the text).
    pub fn from_datetime(datetime: OffsetDateTime) -> Result<Self, TimeStampError> {
        let utc = datetime
            .checked_to_offset(UtcOffset::UTC)
            .ok_or(TimeStampError::Unrepresentable)?;
        if !(0..=9999).contains(&utc.year()) {
            return Err(TimeStampError::Unrepresentable);
        }
        let millis = utc.millisecond();
        let truncated = utc
            .replace_millisecond(millis)
            .map_err(|_| TimeStampError::Unrepresentable)?;
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            utc.year(),
            u8::from(utc.month()),
            utc.day(),
            utc.hour(),
            utc.minute(),
            utc.second(),
            millis
        );
        Ok(Self {
            text,
            datetime: truncated,
        })
    }

    /// The original RFC 3339 text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed instant (with the offset written in the text).
    pub fn datetime(&self) -> OffsetDateTime {
        self.datetime
    }

    /// Whole seconds since the Unix epoch (floor).
    pub fn unix_seconds(&self) -> i64 {
        self.datetime.unix_timestamp()
    }
}

impl fmt::Display for TimeStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for TimeStamp {
    type Err = TimeStampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for TimeStamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for TimeStamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A tiny cursor over ASCII bytes for the syntax check.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> bool {
        let ok = self
            .bytes
            .get(self.pos..self.pos + n)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        self.pos += n;
        ok
    }

    fn byte(&mut self, allowed: &[u8]) -> bool {
        let ok = self.peek().is_some_and(|b| allowed.contains(&b));
        self.pos += 1;
        ok
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

/// RFC 3339 §5.6 `date-time` grammar (digits and punctuation only; ranges are
/// checked by the date library afterwards). `T` and `Z` must be upper case.
fn is_rfc3339_syntax(s: &str) -> bool {
    let mut c = Cursor {
        bytes: s.as_bytes(),
        pos: 0,
    };
    let date = c.digits(4) && c.byte(b"-") && c.digits(2) && c.byte(b"-") && c.digits(2);
    let time = c.byte(b"T") && c.digits(2) && c.byte(b":") && c.digits(2) && c.byte(b":");
    if !(date && time && c.digits(2)) {
        return false;
    }
    if c.peek() == Some(b'.') {
        c.pos += 1;
        let start = c.pos;
        while c.peek().is_some_and(|b| b.is_ascii_digit()) {
            c.pos += 1;
        }
        if c.pos == start {
            return false;
        }
    }
    let offset = match c.peek() {
        Some(b'Z') => {
            c.pos += 1;
            true
        }
        Some(b'+' | b'-') => {
            c.pos += 1;
            c.digits(2) && c.byte(b":") && c.digits(2)
        }
        _ => false,
    };
    offset && c.at_end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn keeps_original_text() {
        for s in [
            "2021-09-30T16:25:24Z",
            "2021-09-30T16:25:24.000Z",
            "2021-09-30T16:25:24-02:00",
            "2021-09-30T16:25:24.123456789+05:30",
        ] {
            let t = TimeStamp::parse(s).unwrap();
            assert_eq!(t.as_str(), s);
            assert_eq!(t.to_string(), s);
        }
        let t = TimeStamp::parse("2021-09-30T16:25:24-02:00").unwrap();
        assert_eq!(t.datetime(), datetime!(2021-09-30 18:25:24 UTC));
        assert_eq!(t.unix_seconds(), 1_633_026_324);
    }

    #[test]
    fn syntax_versus_semantics() {
        for s in [
            "garbage",
            "",
            "2021-09-30",
            "2021-09-30T16:25:24",
            "2021-09-30 16:25:24Z",
            "2021-09-30T16:25:24.Z",
            "2021-9-30T16:25:24Z",
            "2021-09-30T16:25:24+0200",
            "2021-09-30T16:25:24Zjunk",
            "Wed Oct 05 2011 16:48:00 GMT+0200 (CEST)",
            "２０２１-09-30T16:25:24Z",
        ] {
            assert!(
                matches!(TimeStamp::parse(s), Err(TimeStampError::Syntax(_))),
                "{s}"
            );
        }
        for s in [
            "2022-13-17T12:45:13.610Z",
            "2023-03-32T12:45:13.610Z",
            "2023-03-17T25:45:13.610Z",
            "2022-02-31T17:09:38.578Z",
            "2022-02-01T17:60:38Z",
            "2022-02-01T17:09:38+24:00",
        ] {
            assert!(
                matches!(TimeStamp::parse(s), Err(TimeStampError::Semantics { .. })),
                "{s}"
            );
        }
    }

    #[test]
    fn from_datetime_renders_millis_utc() {
        let t = TimeStamp::from_datetime(datetime!(2026-01-02 05:04:05.678_9 +02:00)).unwrap();
        assert_eq!(t.as_str(), "2026-01-02T03:04:05.678Z");
        assert_eq!(t.datetime(), datetime!(2026-01-02 03:04:05.678 UTC));
        assert_eq!(
            TimeStamp::parse(t.as_str()).unwrap().datetime(),
            t.datetime()
        );
        assert_eq!(
            TimeStamp::from_datetime(datetime!(-0001-01-01 0:00 UTC)),
            Err(TimeStampError::Unrepresentable)
        );
    }

    #[test]
    fn serde_as_string() {
        let t: TimeStamp = serde_json::from_str("\"2021-09-30T16:25:24Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2021-09-30T16:25:24Z\""
        );
        assert!(serde_json::from_str::<TimeStamp>("\"2021-13-30T16:25:24Z\"").is_err());
    }
}
