//! Durations written the way people type them: `90s`, `30m`, `1h`, `7d`, `2w` (a bare number
//! is seconds).

/// The longest accepted duration (10 years, the reference's hard maximum).
const MAX_SECS: i64 = 10 * 365 * 24 * 3600;

/// Parses a duration into whole seconds.
pub fn parse_secs(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30m, 1h, 7d or 3600s"))?;
    let unit_secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hr" | "hrs" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {s:?}: use s, m, h, d or w"
            ))
        }
    };
    let secs = n
        .checked_mul(unit_secs)
        .filter(|v| (1..=MAX_SECS).contains(v))
        .ok_or_else(|| format!("duration {s:?} must be between 1s and 10 years"))?;
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::parse_secs;

    #[test]
    fn units() {
        assert_eq!(parse_secs("30m"), Ok(1800));
        assert_eq!(parse_secs("1h"), Ok(3600));
        assert_eq!(parse_secs("7d"), Ok(604_800));
        assert_eq!(parse_secs("3600s"), Ok(3600));
        assert_eq!(parse_secs("45"), Ok(45));
        assert_eq!(parse_secs("2w"), Ok(1_209_600));
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
    }
}
