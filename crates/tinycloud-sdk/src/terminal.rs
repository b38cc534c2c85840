//! The one output sanitizer: how text that came from a node, a file or the network is made safe
//! to show on a terminal. Every character that a terminal acts on or that hides or reorders
//! text is replaced by a visible escape (`\u{1b}`, `\u{202e}`, `\r`, …):
//!
//! - C0 controls (incl. ESC, CR, BS), DEL and C1 controls (incl. the 8-bit CSI `U+009B`);
//! - bidirectional overrides, embeddings, isolates and marks (`U+202A..=U+202E`,
//!   `U+2066..=U+2069`, `U+200E`, `U+200F`, `U+061C`);
//! - zero-width and other invisible format characters (`U+200B..=U+200D`, `U+2060..=U+2064`,
//!   `U+FEFF`, soft hyphen, Mongolian vowel separator, Hangul fillers, tag characters, …);
//! - line and paragraph separators (`U+2028`, `U+2029`).
//!
//! [`field`] escapes line feeds and tabs too (one value must stay on its line);
//! [`text`] keeps them (for multi-line text this program composed from escaped fields).
//! Backslashes are left alone, so escaping is idempotent: text escaped twice reads the same.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must never reach a terminal raw.
fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{ad}'
        | '\u{34f}'
        | '\u{61c}'
        | '\u{115f}' | '\u{1160}'
        | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{3164}'
        | '\u{fe00}'..='\u{fe0f}'
        | '\u{feff}'
        | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}'
    )
}

fn escape(s: &str, keep_lines: bool) -> Cow<'_, str> {
    let keep = |c: char| keep_lines && (c == '\n' || c == '\t');
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !is_unsafe(c) || keep(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// One untrusted value (a key, a DID, a host, a message) for a terminal: every unsafe
/// character escaped, line feeds and tabs included.
pub fn field(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Multi-line text for a terminal: like [`field`], but line feeds and tabs stay.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// [`field`], cut to at most `max` characters (an ellipsis marks the cut), so an untrusted
/// value cannot push what follows it off the screen.
pub fn short_field(s: &str, max: usize) -> String {
    let escaped = field(s);
    if escaped.chars().count() <= max {
        return escaped.into_owned();
    }
    let mut cut: String = escaped.chars().take(max).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_invisibles_are_escaped() {
        assert_eq!(field("notes/\u{202e}gnp.exe"), "notes/\\u{202e}gnp.exe");
        assert_eq!(field("a\r\nb"), "a\\r\\nb");
        assert_eq!(field("\u{1b}[8mhidden"), "\\u{1b}[8mhidden");
        assert_eq!(field("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(
            field("a\u{200b}b\u{2066}c\u{feff}"),
            "a\\u{200b}b\\u{2066}c\\u{feff}"
        );
        assert_eq!(field("x\u{7f}\u{0}"), "x\\u{7f}\\u{0}");
        assert_eq!(field("tag\u{e0041}"), "tag\\u{e0041}");
        assert_eq!(text("line 1\nline\t2\r"), "line 1\nline\t2\\r");
    }

    #[test]
    fn plain_text_is_borrowed_and_escaping_is_idempotent() {
        for s in ["notes/a.md", "did:key:z6Mk…", "naïve café 日本語", "a\\b"] {
            assert!(matches!(field(s), Cow::Borrowed(_)), "{s}");
        }
        let once = field("\u{1b}]0;x\u{7}\u{202e}").into_owned();
        assert_eq!(field(&once), once);
        assert_eq!(text(&once), once);
    }

    #[test]
    fn short_fields_are_cut() {
        assert_eq!(short_field("abcdef", 3), "abc…");
        assert_eq!(short_field("abc", 3), "abc");
        assert_eq!(short_field("\u{1b}x", 100), "\\u{1b}x");
    }
}
