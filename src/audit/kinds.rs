//! What an audit event says: who acted ([`Actor`]), what they did ([`AuditAction`]) and
//! to what kind of thing ([`TargetType`]). The strings are stored and hashed: never
//! change one, only add new ones (the chain of old rows depends on them).

use std::fmt;
use std::str::FromStr;

/// An enum of stable snake_case names: `as_str`, `ALL`, `Display`, `FromStr` and
/// `Serialize` from one list, so a new variant is one line.
macro_rules! named_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored (and hashed) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        kind: stringify!($name),
                        name: s.to_string(),
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

/// A name that is not one of an enum's stored names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

named_enum! {
    /// What was done. Add a variant (and its name) for each new kind of audited change.
    pub enum AuditAction {
        UserCreated => "user_created",
        RoleChanged => "role_changed",
        UserDisabled => "user_disabled",
        UserEnabled => "user_enabled",
        TokenCreated => "token_created",
        TokenRevoked => "token_revoked",
        VisibilityChanged => "visibility_changed",
        TrackDeleted => "track_deleted",
        PlaylistDeleted => "playlist_deleted",
        NoticeReceived => "notice_received",
        NoticeDecided => "notice_decided",
        TrackDisabled => "track_disabled",
        PurgeRequested => "purge_requested",
        CounterNoticeReceived => "counter_notice_received",
        CourtActionRecorded => "court_action_recorded",
        TrackRestored => "track_restored",
        StrikeRecorded => "strike_recorded",
        RepeatInfringerDisabled => "repeat_infringer_disabled",
    }
}

named_enum! {
    /// What kind of thing the event is about; with the target id, what the admin
    /// listing filters by.
    pub enum TargetType {
        User => "user",
        Token => "token",
        Artist => "artist",
        Track => "track",
        Playlist => "playlist",
        Notice => "takedown_notice",
    }
}

/// Who acted. Stored as `actor_user_id` (the user's id, kept even after the user is
/// gone) and `actor`, a readable label: the user's e-mail, or `cli` / `system`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user; `label` is what a reader recognises (their e-mail).
    User { id: i64, label: String },
    /// An operator at the `veza` command line.
    Cli,
    /// The service itself (expiry sweeps, demo seeding…).
    System,
}

impl Actor {
    /// The stored `actor_user_id`.
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::Cli | Actor::System => None,
        }
    }

    /// The stored `actor` label.
    pub fn label(&self) -> &str {
        match self {
            Actor::User { label, .. } => label,
            Actor::Cli => "cli",
            Actor::System => "system",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snake_case(s: &str) -> bool {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let actions: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        let targets: Vec<&str> = TargetType::ALL.iter().map(|t| t.as_str()).collect();
        for names in [&actions, &targets] {
            let unique: std::collections::BTreeSet<_> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "{names:?}");
            assert!(names.iter().all(|n| snake_case(n)), "{names:?}");
        }
        for a in AuditAction::ALL {
            assert_eq!(a.as_str().parse::<AuditAction>(), Ok(*a));
        }
        for t in TargetType::ALL {
            assert_eq!(t.to_string().parse::<TargetType>(), Ok(*t));
        }
        let err = "Track".parse::<TargetType>().unwrap_err();
        assert_eq!(err.to_string(), "unknown TargetType \"Track\"");
    }

    #[test]
    fn the_stored_names_never_change() {
        // Old rows are hashed with these: renaming one breaks every chain.
        assert_eq!(AuditAction::RoleChanged.as_str(), "role_changed");
        assert_eq!(AuditAction::TokenRevoked.as_str(), "token_revoked");
        assert_eq!(TargetType::Playlist.as_str(), "playlist");
        assert_eq!(Actor::Cli.label(), "cli");
        assert_eq!(Actor::System.label(), "system");
        let user = Actor::User {
            id: 7,
            label: "a@example.org".into(),
        };
        assert_eq!((user.user_id(), user.label()), (Some(7), "a@example.org"));
    }
}
