//! The hash chain: each row's `hash` is
//!
//! ```text
//! hash = lowercase hex of SHA-256( prev_hash  ||  canonical(row) )
//! ```
//!
//! where `prev_hash` is the previous row's `hash` as its 64 ASCII hex characters
//! ([`GENESIS`], 64 zeros, for the first row) and `canonical(row)` is the UTF-8 of a
//! compact JSON array (no spaces; strings escaped as `serde_json` does) of the stored
//! fields in this fixed order:
//!
//! ```text
//! ["veza-audit-v1", id, at, actor_user_id, actor, action, target_type, target_id,
//!  snapshot, details]
//! ```
//!
//! - `id`: integer; `actor_user_id`: integer or `null`;
//! - `at`: RFC 3339 in UTC with exactly six fractional digits and `Z`
//!   (`2026-05-01T12:00:00.123456Z`); times are truncated to microseconds before they
//!   are stored, PostgreSQL's precision, so what is read back hashes the same;
//! - `snapshot` and `details`: the stored JSON *text*, as a JSON string (the text is
//!   hashed as stored, so no JSON canonicalisation is needed to verify);
//! - the rest: the stored strings.
//!
//! `prev_hash` is inside the hashed input, so a row cannot be moved to another place in
//! the chain, and `id` is, so rows cannot be renumbered.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The first element of every canonical array: changes if the format ever does.
pub const FORMAT: &str = "veza-audit-v1";

/// The hashed fields of one row, as stored.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<i64>,
    pub actor: &'a str,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub snapshot: &'a str,
    pub details: &'a str,
}

/// `at` as it is hashed.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A time as it is stored: truncated to microseconds.
pub fn stored_time(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// The canonical serialisation of a row (see the module documentation).
pub fn canonical(f: &Fields<'_>) -> String {
    serde_json::json!([
        FORMAT,
        f.id,
        timestamp(f.at),
        f.actor_user_id,
        f.actor,
        f.action,
        f.target_type,
        f.target_id,
        f.snapshot,
        f.details,
    ])
    .to_string()
}

/// The row's `hash`, given the previous row's.
pub fn row_hash(prev_hash: &str, f: &Fields<'_>) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical(f).as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap() + chrono::Duration::microseconds(42)
    }

    fn fields() -> Fields<'static> {
        Fields {
            id: 1,
            at: at(),
            actor_user_id: Some(7),
            actor: "admin@example.org",
            action: "role_changed",
            target_type: "user",
            target_id: "12",
            snapshot: r#"{"email":"a\"b@example.org","role":"artist"}"#,
            details: r#"{"from":"listener","to":"artist"}"#,
        }
    }

    #[test]
    fn the_canonical_form_is_a_fixed_json_array() {
        assert_eq!(
            canonical(&fields()),
            r#"["veza-audit-v1",1,"2026-05-01T12:00:00.000042Z",7,"admin@example.org","role_changed","user","12","{\"email\":\"a\\\"b@example.org\",\"role\":\"artist\"}","{\"from\":\"listener\",\"to\":\"artist\"}"]"#
        );
        let cli = Fields {
            actor_user_id: None,
            actor: "cli",
            ..fields()
        };
        assert!(canonical(&cli).contains(r#""2026-05-01T12:00:00.000042Z",null,"cli","#));
    }

    #[test]
    fn the_hash_is_sha256_of_prev_hash_then_the_canonical_form() {
        // Computed independently (Python: hashlib.sha256((GENESIS + canonical).encode())).
        assert_eq!(
            row_hash(GENESIS, &fields()),
            "9564981594f4c410301e661b24282f8bad1e4bd38322e2bb1f57c3e1962dc9b9"
        );
        assert_eq!(GENESIS.len(), 64);
    }

    #[test]
    fn every_field_and_the_link_change_the_hash() {
        let base = row_hash(GENESIS, &fields());
        let f = fields();
        let variants = [
            Fields { id: 2, ..f },
            Fields {
                at: f.at + chrono::Duration::microseconds(1),
                ..f
            },
            Fields {
                actor_user_id: Some(8),
                ..f
            },
            Fields {
                actor_user_id: None,
                ..f
            },
            Fields { actor: "x", ..f },
            Fields {
                action: "user_disabled",
                ..f
            },
            Fields {
                target_type: "track",
                ..f
            },
            Fields {
                target_id: "13",
                ..f
            },
            Fields {
                snapshot: "{}",
                ..f
            },
            Fields { details: "{}", ..f },
        ];
        for v in variants {
            assert_ne!(row_hash(GENESIS, &v), base, "{v:?}");
        }
        assert_ne!(row_hash(&base, &f), base);
        // Field boundaries are unambiguous: moving text from one field to the next
        // changes the hash.
        let shifted = Fields {
            actor: "admin@example.orgr",
            action: "ole_changed",
            ..f
        };
        assert_ne!(row_hash(GENESIS, &shifted), base);
    }

    #[test]
    fn stored_times_keep_microseconds_and_hash_with_six_digits() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let s = stored_time(t);
        assert_eq!(timestamp(s), "2026-01-02T03:04:05.123456Z");
        assert_eq!(stored_time(s), s);
        let whole = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(timestamp(whole), "2026-01-02T03:04:05.000000Z");
    }
}
