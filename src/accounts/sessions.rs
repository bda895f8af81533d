//! The in-memory cache of authenticated tokens (token hash → who), shared by every
//! worker of one instance, so an authenticated request costs a SHA-256 and a map
//! lookup, not a database round trip. Kept honest like the catalogue cache: on
//! PostgreSQL the `veza_auth_changed` notifications evict revoked tokens and changed
//! users, and while the listener is not connected nothing is answered from here; on
//! SQLite entries live a few seconds (what another process changes, such as
//! `veza user disable`, is seen within that).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::access::Account;
use crate::db::catalogue::Invalidation;

/// What a cached token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedToken {
    pub account: Account,
    /// Unix seconds; `None`: until revoked (API tokens).
    pub expires_at: Option<i64>,
}

/// What a notification asks to evict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthChange {
    /// A token (by hash) was revoked or changed.
    Token(String),
    /// A user changed (role, disabled): every token of theirs.
    User(i64),
    All,
}

/// Parse a `veza_auth_changed` payload; anything unexpected evicts everything.
pub fn parse_payload(payload: &str) -> AuthChange {
    if let Some(hash) = payload.strip_prefix("t:") {
        return AuthChange::Token(hash.to_string());
    }
    match payload.strip_prefix("u:").map(str::parse::<i64>) {
        Some(Ok(id)) => AuthChange::User(id),
        _ => AuthChange::All,
    }
}

pub struct SessionCache {
    by_hash: moka::sync::Cache<Arc<str>, Arc<CachedToken>>,
    epoch: AtomicU64,
    trusted: AtomicBool,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("entries", &self.by_hash.entry_count())
            .field("trusted", &self.is_trusted())
            .finish()
    }
}

impl SessionCache {
    /// `capacity` tokens, each kept at most `ttl`.
    pub fn new(capacity: u64, ttl: Duration, invalidation: Invalidation) -> Self {
        SessionCache {
            by_hash: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
            epoch: AtomicU64::new(0),
            trusted: AtomicBool::new(invalidation == Invalidation::TtlOnly && capacity > 0),
        }
    }

    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    pub fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::Release);
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn get(&self, hash: &str) -> Option<Arc<CachedToken>> {
        if !self.is_trusted() {
            return None;
        }
        self.by_hash.get(hash)
    }

    /// Store what the database said, unless something was invalidated since `seen_epoch`.
    pub fn insert(&self, seen_epoch: u64, hash: &str, token: CachedToken) {
        if !self.is_trusted() {
            return;
        }
        let key: Arc<str> = Arc::from(hash);
        self.by_hash.insert(key.clone(), Arc::new(token));
        if self.epoch() != seen_epoch {
            self.by_hash.invalidate(&key);
        }
    }

    pub fn evict(&self, change: &AuthChange) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match change {
            AuthChange::Token(hash) => self.by_hash.invalidate(hash.as_str()),
            AuthChange::User(id) => {
                let id = *id;
                if self
                    .by_hash
                    .invalidate_entries_if(move |_, t| t.account.user_id == id)
                    .is_err()
                {
                    self.by_hash.invalidate_all();
                }
            }
            AuthChange::All => self.by_hash.invalidate_all(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;

    fn token(user_id: i64) -> CachedToken {
        CachedToken {
            account: Account {
                user_id,
                role: Role::Listener,
                token_id: user_id * 10,
            },
            expires_at: None,
        }
    }

    #[test]
    fn evictions_by_token_by_user_and_racing_reads() {
        let c = SessionCache::new(100, Duration::from_secs(60), Invalidation::TtlOnly);
        c.insert(c.epoch(), "a", token(1));
        c.insert(c.epoch(), "b", token(2));
        c.evict(&AuthChange::Token("a".into()));
        assert!(c.get("a").is_none());
        assert!(c.get("b").is_some());
        c.evict(&AuthChange::User(2));
        assert!(c.get("b").is_none());
        let seen = c.epoch();
        c.evict(&AuthChange::User(9));
        c.insert(seen, "c", token(3));
        assert!(
            c.get("c").is_none(),
            "a row read before an invalidation is not kept"
        );
        let untrusted =
            SessionCache::new(100, Duration::from_secs(60), Invalidation::Notifications);
        untrusted.insert(untrusted.epoch(), "a", token(1));
        assert!(untrusted.get("a").is_none());
        assert_eq!(parse_payload("t:ab"), AuthChange::Token("ab".into()));
        assert_eq!(parse_payload("u:7"), AuthChange::User(7));
        assert_eq!(parse_payload("u:x"), AuthChange::All);
        assert_eq!(parse_payload("*"), AuthChange::All);
    }
}
