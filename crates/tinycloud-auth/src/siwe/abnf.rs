//! Whole-string validators for the ABNF rules used by EIP-4361, taken from
//! RFC 3986 (URI generic syntax) and the EIP-4361 message grammar.
//!
//! Each `is_*` function returns `true` when the **entire** input matches the rule.
//! Full URIs ([`is_uri`], [`is_authority`]) are validated with [`iri_string`];
//! the other functions cover the smaller rules the message grammar references
//! directly.

use iri_string::types::UriStr;

/// `ALPHA = %x41-5A / %x61-7A`
fn is_alpha(b: u8) -> bool {
    b.is_ascii_alphabetic()
}

/// `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="`
fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// `gen-delims = ":" / "/" / "?" / "#" / "[" / "]" / "@"`
fn is_gen_delim(b: u8) -> bool {
    matches!(b, b':' | b'/' | b'?' | b'#' | b'[' | b']' | b'@')
}

/// `reserved = gen-delims / sub-delims`
fn is_reserved(b: u8) -> bool {
    is_gen_delim(b) || is_sub_delim(b)
}

/// Checks `*( single-byte-class / pct-encoded )` over the whole input.
fn all_with_pct(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            match bytes.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else if allowed(b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// `pchar` without `pct-encoded`: `unreserved / sub-delims / ":" / "@"`
fn is_pchar_byte(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@')
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1)
pub fn is_scheme(s: &str) -> bool {
    match s.as_bytes().split_first() {
        Some((first, rest)) => {
            is_alpha(*first)
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        None => false,
    }
}

/// `statement = *( reserved / unreserved / " " )` (EIP-4361). Excludes LF.
pub fn is_statement(s: &str) -> bool {
    s.bytes()
        .all(|b| is_reserved(b) || is_unreserved(b) || b == b' ')
}

/// `pct-encoded = "%" HEXDIG HEXDIG` (RFC 3986 §2.1)
pub fn is_pct_encoded(s: &str) -> bool {
    matches!(s.as_bytes(), [b'%', h, l] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit())
}

/// `userinfo = *( unreserved / pct-encoded / sub-delims / ":" )` (RFC 3986 §3.2.1)
pub fn is_userinfo(s: &str) -> bool {
    all_with_pct(s, |b| is_unreserved(b) || is_sub_delim(b) || b == b':')
}

/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )` (RFC 3986 §3.2.2)
pub fn is_ipvfuture(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['v', 'V']) else {
        return false;
    };
    let Some((version, tail)) = rest.split_once('.') else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_hexdigit())
        && !tail.is_empty()
        && tail
            .bytes()
            .all(|b| is_unreserved(b) || is_sub_delim(b) || b == b':')
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (RFC 3986 §3.2.2)
pub fn is_reg_name(s: &str) -> bool {
    all_with_pct(s, |b| is_unreserved(b) || is_sub_delim(b))
}

/// `segment-nz = 1*pchar` (RFC 3986 §3.3)
pub fn is_segment_nz(s: &str) -> bool {
    !s.is_empty() && is_pchars(s)
}

/// `*pchar`, e.g. the EIP-4361 `request-id` rule.
pub fn is_pchars(s: &str) -> bool {
    all_with_pct(s, is_pchar_byte)
}

/// `fragment = *( pchar / "/" / "?" )` (RFC 3986 §3.5)
pub fn is_fragment(s: &str) -> bool {
    all_with_pct(s, |b| is_pchar_byte(b) || matches!(b, b'/' | b'?'))
}

/// `request-id = *pchar` (EIP-4361)
pub fn is_request_id(s: &str) -> bool {
    is_pchars(s)
}

/// `nonce = 8*( ALPHA / DIGIT )` (EIP-4361)
pub fn is_nonce(s: &str) -> bool {
    s.len() >= 8 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `URI = scheme ":" hier-part [ "?" query ] [ "#" fragment ]` (RFC 3986 §3).
///
/// One deliberate leniency, for compatibility with the EIP-4361 reference
/// vectors (which follow the uri-js grammar): the IPv4 tail of an IPv6 literal
/// may have leading zeros (`[::000.000.010.001]`), as long as every octet is 1-3
/// digits and at most 255. Strict RFC 3986 `dec-octet` forbids them.
pub fn is_uri(s: &str) -> bool {
    UriStr::new(s).is_ok()
        || canonical_ipv4_tail(s).is_some_and(|rewritten| UriStr::new(&rewritten).is_ok())
}

/// A non-empty RFC 3986 `authority = [ userinfo "@" ] host [ ":" port ]`, with
/// the same leniency as [`is_uri`].
pub fn is_authority(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '?', '#']) && is_uri(&format!("x://{s}"))
}

/// If `s` has an IPv6 literal in its authority whose embedded IPv4 octets have
/// leading zeros, returns `s` with those octets written canonically.
fn canonical_ipv4_tail(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let open = rest.find('[')?;
    let close = rest.find(']')?;
    let before = rest.get(..open)?;
    if before.contains(['/', '?', '#']) {
        return None;
    }
    let literal = rest.get(open + 1..close)?;
    let after = rest.get(close + 1..)?;
    let (head, tail) = literal.rsplit_once(':')?;
    let octets = tail
        .split('.')
        .map(canonical_octet)
        .collect::<Option<Vec<_>>>()?;
    if octets.len() != 4 {
        return None;
    }
    Some(format!(
        "{scheme}://{before}[{head}:{}]{after}",
        octets.join(".")
    ))
}

/// `1*3DIGIT` with value at most 255, without leading zeros.
fn canonical_octet(octet: &str) -> Option<String> {
    if octet.is_empty() || octet.len() > 3 || !octet.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u16 = octet.parse().ok()?;
    (value <= 255).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_encoding_edges() {
        assert!(is_pct_encoded("%aF"));
        assert!(!is_pct_encoded("%a"));
        assert!(!is_pct_encoded("%aFF"));
        assert!(!is_reg_name("a%"));
        assert!(!is_reg_name("a%4"));
        assert!(is_reg_name("a%41"));
        assert!(!is_reg_name("é"));
    }

    #[test]
    fn scheme_and_future() {
        assert!(is_scheme("h"));
        assert!(!is_scheme(""));
        assert!(!is_scheme("1http"));
        assert!(is_ipvfuture("v1.x"));
        assert!(!is_ipvfuture("v.x"));
        assert!(!is_ipvfuture("v1."));
        assert!(!is_ipvfuture("1.x"));
    }

    #[test]
    fn statement_class() {
        assert!(is_statement(""));
        assert!(is_statement("I accept: https://x.y/tos"));
        assert!(!is_statement("a\nb"));
        assert!(!is_statement("\"quoted\""));
        assert!(!is_statement("naïve"));
    }

    #[test]
    fn uri_leniency_is_narrow() {
        assert!(is_uri("uri://[::000.000.010.001]"));
        assert!(is_uri("uri://u@[::001.099.200.255]:80/p?q#f"));
        assert!(!is_uri("uri://[::0.ff.0.255]"));
        assert!(!is_uri("uri://[::0.0.0.256]"));
        assert!(!is_uri("uri://[::0000.0.0.1]"));
        assert!(!is_uri("uri://[::0.0.1]"));
        assert!(!is_uri("uri:/x/[::0.0.0.01]"));
        assert!(!is_uri("sample.org"));
        assert!(is_authority("[::000.0.0.1]:8080"));
        assert!(is_authority("test@127.0.0.1:8080"));
        assert!(!is_authority(""));
        assert!(!is_authority("#notrfc4501"));
        assert!(!is_authority("a b"));
        assert!(!is_authority("a:b:c"));
    }

    #[test]
    fn nonce_rule() {
        assert!(is_nonce("abcd1234"));
        assert!(!is_nonce("abc1234"));
        assert!(!is_nonce("abcd-1234"));
    }
}
