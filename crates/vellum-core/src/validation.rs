//! Field-level validation errors, collected rather than returned one at a time, so that a client
//! learns everything wrong with a request in one round trip.

use std::fmt;

/// True when `text` holds a Unicode control character (general category Cc: the C0 controls
/// U+0000–U+001F, DEL U+007F and the C1 controls U+0080–U+009F).
///
/// The one rule for stored text: identifiers, types, names, actions, locations, user agents and
/// metadata keys refuse them everywhere (events of both APIs, organizations, schemas, API keys),
/// so that nothing a client sends can drive the terminal of whoever reads it later. Free-text
/// metadata values may hold them (line breaks are legitimate there).
pub fn has_control_characters(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where the problem is, as a dotted path (`name`, `domain_data.1.domain`).
    pub field: String,
    /// A stable, machine-readable code (`required`, `invalid_type`, `too_long`, ...); owned
    /// only when read back from a record of an earlier request.
    pub code: std::borrow::Cow<'static, str>,
    /// A sentence for people.
    pub message: String,
}

/// Every problem found with one request; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    /// Starts an empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with a field.
    pub fn push(&mut self, field: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            code: std::borrow::Cow::Borrowed(code),
            message: message.into(),
        });
    }

    /// Records a problem as it was recorded before (read back from storage).
    pub fn push_error(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// Returns true when no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the recorded problems in the order they were found.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// Returns `Ok(value)` when nothing was recorded, and the collection otherwise.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for error in &self.0 {
            if !first {
                formatter.write_str("; ")?;
            }
            first = false;
            write!(formatter, "{}: {}", error.field, error.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_c0_del_and_c1_only() {
        for bad in [
            "a\u{0}b",
            "\u{1b}[31m",
            "tab\t",
            "line\n",
            "\r",
            "del\u{7f}",
            "\u{80}",
            "csi\u{9b}31m",
            "\u{9f}",
        ] {
            assert!(has_control_characters(bad), "{bad:?}");
        }
        for good in [
            "",
            "plain",
            "Zoë",
            "日本",
            "\u{a0}no-break",
            "\u{200b}",
            "emoji 🎉",
            "\u{a0}",
        ] {
            assert!(!has_control_characters(good), "{good:?}");
        }
    }
}
