//! Limits on text that users and imported files put in the catalogue: titles, names,
//! e-mails. One rule set for every write path (API and `veza import`): bounded length
//! in characters, no control characters, no bidirectional overrides (which make a
//! name display as something else).

/// Longest title, in characters.
pub const TITLE_MAX: usize = 200;
/// Longest name (display name, artist, playlist, token), in characters.
pub const NAME_MAX: usize = 100;
/// Longest e-mail address (RFC 5321's path limit).
pub const EMAIL_MAX: usize = 254;
/// Passwords: at least 8 characters (NIST SP 800-63B), at most 1024 bytes (bounds the
/// hashing input).
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        FieldError {
            field,
            problem: problem.into(),
        }
    }
}

/// Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) and
/// the directional marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `value` trimmed, if it is 1..=`max` characters with no control or bidi characters.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(FieldError::new(
            field,
            format!("at most {max} characters, got {chars}"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() || is_bidi_control(*c))
    {
        return Err(FieldError::new(
            field,
            format!(
                "must not contain control or bidirectional characters (U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(value.to_string())
}

/// `value` made acceptable rather than refused, for text read from files (tags): control
/// and bidirectional characters dropped, cut to `max` characters. `None` if nothing
/// is left.
pub fn sanitized(value: &str, max: usize) -> Option<String> {
    let kept: String = value
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .take(max.saturating_mul(2))
        .collect();
    let trimmed: String = kept.trim().chars().take(max).collect();
    let trimmed = trimmed.trim_end().to_string();
    (!trimmed.is_empty()).then_some(trimmed)
}

pub fn title(value: &str) -> Result<String, FieldError> {
    text("title", value, TITLE_MAX)
}

pub fn name(field: &'static str, value: &str) -> Result<String, FieldError> {
    text(field, value, NAME_MAX)
}

/// An e-mail address, lower-cased: `local@domain` with a dot-free-or-dotted domain, no
/// spaces. Deliverability is not checked (there is no mail yet).
pub fn email(value: &str) -> Result<String, FieldError> {
    let value = text("email", value, EMAIL_MAX)?.to_lowercase();
    let valid = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !value.contains(char::is_whitespace)
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    });
    if valid {
        Ok(value)
    } else {
        Err(FieldError::new("email", "must be an e-mail address"))
    }
}

/// A new password's length (its content is the user's business).
pub fn password(value: &str) -> Result<(), FieldError> {
    if value.chars().count() < PASSWORD_MIN {
        return Err(FieldError::new(
            "password",
            format!("at least {PASSWORD_MIN} characters"),
        ));
    }
    if value.len() > PASSWORD_MAX_BYTES {
        return Err(FieldError::new(
            "password",
            format!("at most {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_control_and_bidi_characters_are_refused() {
        assert_eq!(title("  Song  ").unwrap(), "Song");
        assert!(title(&"x".repeat(200)).is_ok());
        assert_eq!(title(&"é".repeat(201)).unwrap_err().field, "title");
        assert!(title("").is_err());
        assert!(title("a\u{0007}b").is_err());
        assert!(title("evil\u{202E}3pm.exe").is_err());
        assert!(name("display_name", "a\nb").is_err());
        assert!(name("display_name", &"n".repeat(101)).is_err());
    }

    #[test]
    fn tags_are_cut_and_cleaned_not_refused() {
        let long = "t".repeat(1_000_000);
        assert_eq!(
            sanitized(&long, TITLE_MAX).unwrap().chars().count(),
            TITLE_MAX
        );
        assert_eq!(sanitized("a\u{1b}[31mb\u{202E}c", 10).unwrap(), "a[31mbc");
        assert_eq!(sanitized("\u{0}\u{7}", 10), None);
    }

    #[test]
    fn emails_are_lower_cased_and_shaped() {
        assert_eq!(email(" Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in ["ada", "@x", "a@", "a@@b", "a b@c", "a@.c", "a@c."] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(password("short").is_err());
        assert!(password("long enough").is_ok());
        assert!(password(&"p".repeat(1025)).is_err());
    }
}
