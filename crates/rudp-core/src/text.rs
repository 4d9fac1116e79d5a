//! Text from the network, made safe to print.
//!
//! A peer chooses the bytes of its messages and of its CLOSE reasons
//! (PROTOCOL.md §5.7). Printed raw, a line break forges an extra output
//! line and an escape sequence reaches the terminal (issue #12 item 14).
//! Everything printed from the network goes through [`printable`] first.

/// `text` with every control character (line breaks, ESC, C1 controls)
/// and every invisible formatting character that can reorder or hide text
/// (bidirectional overrides, zero-width marks) written as a Rust escape
/// (`\n`, `\u{1b}`): one line, nothing the terminal acts on.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`printable`] for bytes that may not be UTF-8 (invalid sequences become
/// U+FFFD first).
pub fn printable_bytes(bytes: &[u8]) -> String {
    printable(&String::from_utf8_lossy(bytes))
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_escapes_cannot_reach_the_terminal() {
        assert_eq!(printable("March"), "March");
        assert_eq!(printable("a\nerror: forged"), "a\\nerror: forged");
        assert_eq!(printable("\u{1b}]0;owned\u{7}"), "\\u{1b}]0;owned\\u{7}");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(printable("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(printable_bytes(b"\xffok\r"), "\u{fffd}ok\\r");
        assert_eq!(printable("Décembre ✓"), "Décembre ✓");
    }
}
