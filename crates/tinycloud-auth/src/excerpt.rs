//! Shortened excerpts of untrusted input for error messages (bounded, char-boundary safe).

/// Keeps error messages short when echoing attacker-controlled input.
pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
