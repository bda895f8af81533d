//! Who may do what: the one access decision every path that reveals a track or a
//! playlist asks ([`can`]), and the listing filter derived from it
//! (`db::listing`). Knows nothing of HTTP: the web layer names the
//! [`Caller`], the services ask here.
//!
//! The rules, in one place:
//! - Moderators and admins may see and act on everything.
//! - The owner of a track (the user its artist belongs to) or of a playlist may see,
//!   play and edit it, whatever its visibility.
//! - Anyone may play a public one; an unlisted one only with its share token; a
//!   private one nobody else. Only public ones are listed to others.
//! - A deleted one exists for nobody.
//! - A track disabled for legal reasons (a takedown notice upheld, `blocked`) is
//!   **unavailable for legal reasons** ([`Decision::Blocked`], HTTP 451) to everyone who
//!   could otherwise play it, its owner included; moderators and admins still play it
//!   for review. Who could not see it anyway still gets `Hidden`: a block reveals
//!   nothing. Listings leave it out; editing (by its owner) is unaffected.
//!
//! Refusals that concern a resource the caller may not know about are `Hidden` (the
//! web layer answers 404, as for a missing id), so ids do not leak existence.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A user's role; each includes the rights of the ones before it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[sea_orm(string_value = "listener")]
    Listener,
    #[sea_orm(string_value = "artist")]
    Artist,
    #[sea_orm(string_value = "moderator")]
    Moderator,
    #[sea_orm(string_value = "admin")]
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Listener, Role::Artist, Role::Moderator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Listener => "listener",
            Role::Artist => "artist",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Moderators and admins act on anyone's tracks and playlists.
    pub fn moderates(self) -> bool {
        self >= Role::Moderator
    }
}

/// Who sees a track or playlist.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed, playable by anyone.
    #[sea_orm(string_value = "public")]
    Public,
    /// Not listed; playable by whoever has the share token.
    #[sea_orm(string_value = "unlisted")]
    Unlisted,
    /// The owner, moderators and admins only.
    #[sea_orm(string_value = "private")]
    Private,
}

impl Visibility {
    pub const ALL: [Visibility; 3] = [
        Visibility::Public,
        Visibility::Unlisted,
        Visibility::Private,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        Visibility::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Who is asking: named once per request by the web layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    User(Account),
}

/// A signed-in user, as the token that authenticated the request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: i64,
    pub role: Role,
    /// The token's row: what logout and token revocation delete.
    pub token_id: i64,
}

impl Caller {
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Caller::Anonymous => None,
            Caller::User(a) => Some(a.user_id),
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Caller::Anonymous => None,
            Caller::User(a) => Some(a.role),
        }
    }

    pub fn moderates(&self) -> bool {
        self.role().is_some_and(Role::moderates)
    }

    /// Whether the caller owns what `owner` names.
    pub fn owns(&self, owner: Option<i64>) -> bool {
        matches!((self.user_id(), owner), (Some(me), Some(o)) if me == o)
    }
}

/// What a caller wants to do with a track or playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Appear in a listing (track list, an artist's tracks).
    List,
    /// Read its metadata, play or download it, receive its URLs.
    Play,
    /// Change or delete it.
    Edit,
}

/// What the decision needs to know of a track or playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub owner: Option<i64>,
    pub visibility: Visibility,
    pub share_token: Option<&'a str>,
    pub deleted: bool,
    /// The takedown notice that disabled it for legal reasons, if any.
    pub blocked: Option<i64>,
}

/// The share token the request presented (`?share=`), if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presented<'a>(pub Option<&'a str>);

/// Who asks, and the share token they presented: what a read path passes down.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub caller: &'a Caller,
    pub share: Presented<'a>,
}

impl<'a> Asker<'a> {
    pub fn new(caller: &'a Caller, share: Option<&'a str>) -> Self {
        Asker {
            caller,
            share: Presented(share),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Known to the caller (they may play it) but not theirs to change: 403.
    Forbidden,
    /// Not for this caller: answered exactly like a missing id (404).
    Hidden,
    /// Disabled for legal reasons by takedown notice `.0`: 451 (RFC 7725), with a link
    /// to the notice's public summary.
    Blocked(i64),
}

impl Decision {
    pub fn allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// The access decision. Every path that reveals or changes a track or playlist calls it.
pub fn can(caller: &Caller, action: Action, r: &Resource<'_>, share: Presented<'_>) -> Decision {
    if r.deleted {
        return Decision::Hidden;
    }
    if caller.moderates() {
        return Decision::Allow;
    }
    let decision = unblocked(caller, action, r, share);
    match (decision, r.blocked, action) {
        (Decision::Allow, Some(notice), Action::Play) => Decision::Blocked(notice),
        (Decision::Allow, Some(_), Action::List) => Decision::Hidden,
        _ => decision,
    }
}

/// The decision for someone who does not moderate, before any legal block.
fn unblocked(caller: &Caller, action: Action, r: &Resource<'_>, share: Presented<'_>) -> Decision {
    if caller.owns(r.owner) {
        return Decision::Allow;
    }
    let may_play = match r.visibility {
        Visibility::Public => true,
        Visibility::Unlisted => share_matches(r.share_token, share),
        Visibility::Private => false,
    };
    match action {
        Action::List => {
            if r.visibility == Visibility::Public {
                Decision::Allow
            } else {
                Decision::Hidden
            }
        }
        Action::Play if may_play => Decision::Allow,
        Action::Edit if may_play => Decision::Forbidden,
        Action::Play | Action::Edit => Decision::Hidden,
    }
}

/// Constant-time comparison of the presented share token with the resource's.
fn share_matches(expected: Option<&str>, presented: Presented<'_>) -> bool {
    match (expected, presented.0) {
        (Some(e), Some(p)) if !e.is_empty() => {
            subtle::ConstantTimeEq::ct_eq(e.as_bytes(), p.as_bytes()).into()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, role: Role) -> Caller {
        Caller::User(Account {
            user_id: id,
            role,
            token_id: 1,
        })
    }

    fn track(visibility: Visibility) -> Resource<'static> {
        Resource {
            owner: Some(7),
            visibility,
            share_token: Some("s3cret"),
            deleted: false,
            blocked: None,
        }
    }

    #[test]
    fn owners_and_moderators_see_everything_others_only_public() {
        let callers = [
            (Caller::Anonymous, false),
            (user(1, Role::Listener), false),
            (user(2, Role::Artist), false),
            (user(7, Role::Artist), true),
            (user(3, Role::Moderator), true),
            (user(4, Role::Admin), true),
        ];
        for (caller, privileged) in &callers {
            for v in Visibility::ALL {
                let play = can(caller, Action::Play, &track(v), Presented(None));
                let list = can(caller, Action::List, &track(v), Presented(None));
                let expected = *privileged || v == Visibility::Public;
                assert_eq!(play.allowed(), expected, "{caller:?} play {v:?}");
                assert_eq!(list.allowed(), expected, "{caller:?} list {v:?}");
            }
        }
    }

    #[test]
    fn unlisted_plays_with_its_share_token_and_is_never_listed() {
        let t = track(Visibility::Unlisted);
        let anon = Caller::Anonymous;
        assert_eq!(
            can(&anon, Action::Play, &t, Presented(Some("s3cret"))),
            Decision::Allow
        );
        assert_eq!(
            can(&anon, Action::Play, &t, Presented(Some("s3cre"))),
            Decision::Hidden
        );
        assert_eq!(
            can(&anon, Action::List, &t, Presented(Some("s3cret"))),
            Decision::Hidden
        );
        let private = track(Visibility::Private);
        assert_eq!(
            can(&anon, Action::Play, &private, Presented(Some("s3cret"))),
            Decision::Hidden
        );
        let no_token = Resource {
            share_token: Some(""),
            ..t
        };
        assert_eq!(
            can(&anon, Action::Play, &no_token, Presented(Some(""))),
            Decision::Hidden
        );
    }

    #[test]
    fn edits_are_forbidden_to_who_may_play_and_hidden_from_the_rest() {
        let listener = user(1, Role::Listener);
        assert_eq!(
            can(
                &listener,
                Action::Edit,
                &track(Visibility::Public),
                Presented(None)
            ),
            Decision::Forbidden
        );
        assert_eq!(
            can(
                &listener,
                Action::Edit,
                &track(Visibility::Private),
                Presented(None)
            ),
            Decision::Hidden
        );
        assert!(
            can(
                &user(7, Role::Listener),
                Action::Edit,
                &track(Visibility::Private),
                Presented(None)
            )
            .allowed()
        );
    }

    #[test]
    fn deleted_is_hidden_from_everyone() {
        let t = Resource {
            deleted: true,
            ..track(Visibility::Public)
        };
        for caller in [
            Caller::Anonymous,
            user(7, Role::Artist),
            user(4, Role::Admin),
        ] {
            for action in [Action::List, Action::Play, Action::Edit] {
                assert_eq!(can(&caller, action, &t, Presented(None)), Decision::Hidden);
            }
        }
    }

    #[test]
    fn blocked_is_451_to_who_could_play_hidden_to_the_rest_staff_still_play() {
        let blocked = |v| Resource {
            blocked: Some(9),
            ..track(v)
        };
        let anon = Caller::Anonymous;
        let owner = user(7, Role::Artist);
        let t = blocked(Visibility::Public);
        assert_eq!(
            can(&anon, Action::Play, &t, Presented(None)),
            Decision::Blocked(9)
        );
        assert_eq!(
            can(&owner, Action::Play, &t, Presented(None)),
            Decision::Blocked(9)
        );
        assert_eq!(
            can(&anon, Action::List, &t, Presented(None)),
            Decision::Hidden
        );
        assert_eq!(
            can(&owner, Action::List, &t, Presented(None)),
            Decision::Hidden
        );
        assert_eq!(
            can(&owner, Action::Edit, &t, Presented(None)),
            Decision::Allow
        );
        let private = blocked(Visibility::Private);
        assert_eq!(
            can(&anon, Action::Play, &private, Presented(None)),
            Decision::Hidden
        );
        for staff in [user(3, Role::Moderator), user(4, Role::Admin)] {
            assert_eq!(
                can(&staff, Action::Play, &private, Presented(None)),
                Decision::Allow
            );
        }
        assert!(!Decision::Blocked(9).allowed());
    }
}
