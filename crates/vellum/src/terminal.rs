//! Text from the store, a file or a server, made safe to print on an operator's terminal.
//!
//! Stored text may hold control characters: metadata values are free text, events stored before
//! ids and names refused them keep them, and a remote server or an export file says what it
//! likes. Printed raw, an escape sequence (`ESC [ 31 m`, or the one-byte C1 `CSI`) recolours
//! the terminal, moves the cursor, rewrites earlier lines or sets the window title, and
//! bidirectional formatting characters reorder what a line shows. So every command prints such
//! text through [`text`] (tables, messages) or [`json`] (JSON lines).

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters that never reach a terminal raw: control characters (C0, DEL, C1) and
/// the bidirectional formatting characters.
fn is_unsafe(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// The text with each unsafe character written as a Rust-style escape (`\u{1b}`); everything
/// else, other Unicode included, unchanged.
pub fn text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 16);
    for character in text.chars() {
        if is_unsafe(character) {
            let _ = write!(safe, "\\u{{{:x}}}", u32::from(character));
        } else {
            safe.push(character);
        }
    }
    Cow::Owned(safe)
}

/// A JSON value on one line, with the characters serde_json leaves raw in strings (DEL, C1 and
/// the bidirectional formatting characters; it escapes C0 itself) written as `\uXXXX` escapes.
/// The result is still valid JSON that reads back to the same value.
pub fn json(value: &serde_json::Value) -> String {
    let compact = value.to_string();
    if !compact.chars().any(is_unsafe) {
        return compact;
    }
    let mut safe = String::with_capacity(compact.len() + 16);
    for character in compact.chars() {
        // Compact JSON has no white space outside strings, so every unsafe character left is
        // inside a string, where `\uXXXX` means the same character.
        if is_unsafe(character) {
            let _ = write!(safe, "\\u{:04x}", u32::from(character));
        } else {
            safe.push(character);
        }
    }
    safe
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(text("plain Zoë 日本 🎉"), "plain Zoë 日本 🎉");
        assert!(matches!(text("plain"), Cow::Borrowed(_)));
        assert_eq!(text("a\u{0}b"), "a\\u{0}b");
        assert_eq!(text("\u{1b}[31mred\u{1b}[0m"), "\\u{1b}[31mred\\u{1b}[0m");
        assert_eq!(text("tab\tline\nreturn\r"), "tab\\u{9}line\\u{a}return\\u{d}");
        assert_eq!(text("del\u{7f} csi\u{9b}31m"), "del\\u{7f} csi\\u{9b}31m");
        assert_eq!(text("abc\u{202e}fed"), "abc\\u{202e}fed");
    }

    #[test]
    fn json_output_escapes_what_serde_json_leaves_raw_and_stays_json() {
        let value = json!({"note": "esc\u{1b} del\u{7f} csi\u{9b} rlo\u{202e} ok é"});
        let line = json(&value);
        assert!(!line.chars().any(is_unsafe), "{line}");
        assert!(line.contains("\\u007f") && line.contains("\\u009b") && line.contains("\\u202e"));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap(), value);
        let plain = json!({"a": [1, "b"]});
        assert_eq!(json(&plain), plain.to_string());
    }
}
