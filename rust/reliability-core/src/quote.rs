//! How a value the user gave (an option, a path, a URL, a line of a file) appears in a
//! message: in single quotes, escaped, and at most its first [`SHOWN`] bytes.
//!
//! A 10 MB option value must not be repeated two or three times in a result, and a name
//! holding a newline or a NUL must not break the line it is reported on. Every message
//! that quotes a user's value goes through [`quote`] (or [`shorten`] for text that is
//! already escaped, such as JSON).

/// The most bytes of a value a message shows; the rest is counted, not shown.
pub const SHOWN: usize = 100;

/// `value` in single quotes, control characters escaped (`\n`, `\u{0}`) so that it stays
/// on its line (a backslash is left as it is: regexes and patterns read as written);
/// longer than [`SHOWN`] bytes, its prefix followed by `... (N bytes)`.
pub fn quote(value: &str) -> String {
    let (shown, mut cut) = prefix(value);
    let mut out = String::with_capacity(shown.len() + 24);
    out.push('\'');
    for c in shown.chars() {
        // Escapes take up to ten bytes a character: the message is bounded by what it
        // shows, not by how many characters of the value that took.
        if out.len() > SHOWN {
            cut = true;
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters, and the invisible ones that reorder or hide text.
            c if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}') =>
            {
                out.push_str(&c.escape_unicode().to_string())
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    if cut {
        out.push_str(&format!("... ({} bytes)", value.len()));
    }
    out
}

/// Text that is already safe on one line (JSON), cut as [`quote`] cuts, without quotes.
pub fn shorten(text: &str) -> String {
    match prefix(text) {
        (shown, true) => format!("{shown}... ({} bytes)", text.len()),
        (shown, false) => shown.to_string(),
    }
}

/// At most [`SHOWN`] bytes of `text`, ending on a character boundary, and whether any
/// were left out.
fn prefix(text: &str) -> (&str, bool) {
    if text.len() <= SHOWN {
        return (text, false);
    }
    let mut end = SHOWN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, expected: &str) {
        assert_eq!(quote(value), expected);
    }

    #[test]
    fn short_values_are_quoted_whole_and_escaped() {
        check("web-1", "'web-1'");
        check("", "''");
        check("it's a\\s+", "'it's a\\s+'");
        check("a\nb\0c\u{1b}", "'a\\nb\\u{0}c\\u{1b}'");
        check("héllo ✓", "'héllo ✓'");
        check("a\u{202e}b", "'a\\u{202e}b'");
    }

    #[test]
    fn long_values_show_a_prefix_and_their_length() {
        let huge = "*".repeat(500_000);
        check(&huge, &format!("'{}'... (500000 bytes)", "*".repeat(SHOWN)));
        // Cut on a character boundary.
        let wide = "é".repeat(SHOWN);
        let shown = quote(&wide);
        assert!(shown.starts_with(&format!("'{}'", "é".repeat(SHOWN / 2))), "{shown}");
        assert!(shown.ends_with(&format!("... ({} bytes)", 2 * SHOWN)), "{shown}");
        assert_eq!(
            shorten(&"[1,".repeat(100)),
            format!("{}... (300 bytes)", &"[1,".repeat(100)[..SHOWN])
        );
        assert_eq!(shorten("[1]"), "[1]");
    }
}
