//! Durations written the way people type them, parsed by `humantime`: `90s`, `30m`, `1h`,
//! `7d`, `2w`, `1h30m`, `2 days` (a bare number is seconds). A thin wrapper keeps what `tc`
//! has always accepted and refused: a bare number, whole seconds from 1s to 10 years, and no
//! months or years (their length varies: write `30d` or `365d`) nor fractions.

use std::time::Duration;

/// The longest accepted duration (10 years, the reference's hard maximum).
const MAX_SECS: i64 = 10 * 365 * 24 * 3600;

/// The units `humantime` reads that `tc` refuses: months and years.
const VARIABLE_UNITS: &[&str] = &["M", "month", "months", "y", "year", "years"];

fn invalid(s: &str) -> String {
    format!("invalid duration {s:?}: expected e.g. 30m, 1h, 7d or 3600s")
}

/// Parses a duration into whole seconds.
pub fn parse_secs(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let secs = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>().map_err(|_| out_of_range(s))?
    } else {
        // humantime reads fractions (`1.5h`); `tc` durations are whole numbers of a unit.
        if !t.starts_with(|c: char| c.is_ascii_digit()) || t.contains('.') {
            return Err(invalid(s));
        }
        if let Some(unit) = t
            .split(|c: char| !c.is_alphabetic())
            .find(|u| VARIABLE_UNITS.contains(u))
        {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use s, m, h, d or w"
            ));
        }
        let d = humantime::parse_duration(t).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => out_of_range(s),
            humantime::DurationError::UnknownUnit { unit, .. } => {
                format!("invalid duration unit {unit:?} in {s:?}: use s, m, h, d or w")
            }
            _ => invalid(s),
        })?;
        if d.subsec_nanos() != 0 {
            return Err(format!("duration {s:?} must be whole seconds"));
        }
        d.as_secs()
    };
    i64::try_from(secs)
        .ok()
        .filter(|v| (1..=MAX_SECS).contains(v))
        .ok_or_else(|| out_of_range(s))
}

fn out_of_range(s: &str) -> String {
    format!("duration {s:?} must be between 1s and 10 years")
}

/// A number of seconds as people read it (`5m`, `1h 30m`, `7days`), by `humantime`.
pub fn format_secs(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::{format_secs, parse_secs};

    #[test]
    fn units() {
        assert_eq!(parse_secs("30m"), Ok(1800));
        assert_eq!(parse_secs("1h"), Ok(3600));
        assert_eq!(parse_secs("7d"), Ok(604_800));
        assert_eq!(parse_secs("3600s"), Ok(3600));
        assert_eq!(parse_secs("45"), Ok(45));
        assert_eq!(parse_secs("2w"), Ok(1_209_600));
    }

    /// Every form the hand-written parser accepted still parses to the same seconds.
    #[test]
    fn every_previously_accepted_form() {
        for (input, secs) in [
            ("90s", 90),
            ("5sec", 5),
            ("5secs", 5),
            ("30m", 1800),
            ("5min", 300),
            ("5mins", 300),
            ("1h", 3600),
            ("2hr", 7200),
            ("2hrs", 7200),
            ("7d", 604_800),
            ("1day", 86_400),
            ("3days", 259_200),
            ("2w", 1_209_600),
            ("1week", 604_800),
            ("2weeks", 1_209_600),
            ("45", 45),
            ("3600s", 3600),
            ("30 m", 1800),
            (" 1h ", 3600),
            ("3650d", 315_360_000),
        ] {
            assert_eq!(parse_secs(input), Ok(secs), "{input:?}");
        }
        // New with humantime: compound durations.
        assert_eq!(parse_secs("1h30m"), Ok(5400));
        assert_eq!(parse_secs("1h 30m"), Ok(5400));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "h",
            "1y",
            "-1h",
            "0s",
            "1.5h",
            "99999999999999999999d",
            "3650000d",
        ] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
        for bad in ["2M", "1 year", "1500ms", "1x", "+5m", "0"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_secs(300), "5m");
        assert_eq!(format_secs(5400), "1h 30m");
    }
}
