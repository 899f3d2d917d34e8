//! Text from outside (a key, a Redis error, a URL) made safe to print: every control
//! character escaped, so one event stays one line and nobody can forge a log line with a
//! key that holds a newline or a terminal escape.
//!
//! Log lines, health-check reasons and startup errors all print such text, so this sits
//! below every module that prints.

use std::fmt;

/// `text` shown with its control characters escaped, for a log field or a message.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// [`Escaped`] as an owned string, for messages built outside a log event.
pub fn escaped(text: &str) -> String {
    Escaped(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_is_kept() {
        assert_eq!(escaped("plain:key"), "plain:key");
        assert_eq!(
            escaped("a\nContador atual: 999999"),
            "a\\nContador atual: 999999"
        );
        assert_eq!(escaped("\r\u{1b}[31mred\t"), "\\r\\u{1b}[31mred\\t");
        assert_eq!(escaped("contador-ç-日本"), "contador-ç-日本");
    }
}
