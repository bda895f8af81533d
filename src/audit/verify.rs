//! Walking the chain: rows in id order, a page at a time, each checked for its place
//! (ids 1, 2, 3… without gaps), its link (`prev_hash` is the previous row's `hash`,
//! [`GENESIS`](super::chain::GENESIS) for the first) and its content (`hash` recomputed
//! from the stored fields). The first row that fails is named, and the walk stops there.
//!
//! What this cannot see: rows removed from the end, or a tail rewritten and rehashed as
//! a whole. Comparing [`Head`] with a copy exported earlier catches both (docs/AUDIT.md).

use std::fmt;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::chain::{GENESIS, row_hash};
use super::entity::{self, Column};

/// Rows read per query.
const PAGE: u64 = 1000;

/// The last row of an intact chain (or of its intact prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub id: i64,
    pub hash: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Rows found intact (before the broken one, if any).
    pub checked: u64,
    /// The last intact row; `None` when there is none.
    pub head: Option<Head>,
    /// The first row that is not intact.
    pub broken: Option<Break>,
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// The first row that is not intact, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub id: i64,
    pub kind: BreakKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// The row's id is not the previous id plus one: rows before it were removed.
    Gap { expected_id: i64 },
    /// `prev_hash` is not the previous row's hash: a row before it was removed or
    /// replaced, or this one was relinked.
    BrokenLink { expected: String, found: String },
    /// The stored `hash` is not the hash of the stored fields: the row was altered.
    HashMismatch { stored: String, computed: String },
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id;
        match &self.kind {
            BreakKind::Gap { expected_id } => write!(
                f,
                "event {id}: gap: expected event {expected_id} next (events were removed)"
            ),
            BreakKind::BrokenLink { expected, found } => write!(
                f,
                "event {id}: broken link: prev_hash is {found}, the previous event's hash is {expected} (an event before it was removed or replaced)"
            ),
            BreakKind::HashMismatch { stored, computed } => write!(
                f,
                "event {id}: hash mismatch: stored {stored}, computed {computed} (the event was altered)"
            ),
        }
    }
}

/// Walk the whole chain from the first row; see the module documentation.
pub async fn verify<C: ConnectionTrait>(db: &C) -> Result<VerifyReport, DbErr> {
    let mut report = VerifyReport {
        checked: 0,
        head: None,
        broken: None,
    };
    let mut after = 0_i64;
    loop {
        let rows = entity::Entity::find()
            .filter(Column::Id.gt(after))
            .order_by_asc(Column::Id)
            .limit(PAGE)
            .all(db)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(report);
        };
        after = last.id;
        for row in &rows {
            if let Some(kind) = check(report.head.as_ref(), row) {
                report.broken = Some(Break { id: row.id, kind });
                return Ok(report);
            }
            report.checked += 1;
            report.head = Some(Head {
                id: row.id,
                hash: row.hash.clone(),
            });
        }
    }
}

/// Why `row` does not follow `prev` (`None`: the first row), if it does not.
fn check(prev: Option<&Head>, row: &entity::Model) -> Option<BreakKind> {
    let (expected_id, expected_prev) = match prev {
        Some(h) => (h.id + 1, h.hash.as_str()),
        None => (1, GENESIS),
    };
    if row.id != expected_id {
        return Some(BreakKind::Gap { expected_id });
    }
    if row.prev_hash != expected_prev {
        return Some(BreakKind::BrokenLink {
            expected: expected_prev.to_string(),
            found: row.prev_hash.clone(),
        });
    }
    let computed = row_hash(&row.prev_hash, &row.fields());
    (computed != row.hash).then(|| BreakKind::HashMismatch {
        stored: row.hash.clone(),
        computed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(id: i64, prev_hash: &str) -> entity::Model {
        let mut m = entity::Model {
            id,
            at: chrono::Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 0).unwrap(),
            actor_user_id: None,
            actor: "cli".into(),
            action: "user_created".into(),
            target_type: "user".into(),
            target_id: id.to_string(),
            snapshot: "{}".into(),
            details: "{}".into(),
            prev_hash: prev_hash.into(),
            hash: String::new(),
        };
        m.hash = row_hash(&m.prev_hash, &m.fields());
        m
    }

    fn head(m: &entity::Model) -> Head {
        Head {
            id: m.id,
            hash: m.hash.clone(),
        }
    }

    #[test]
    fn each_kind_of_break_is_told_apart() {
        let first = row(1, GENESIS);
        let second = row(2, &first.hash);
        assert_eq!(check(None, &first), None);
        assert_eq!(check(Some(&head(&first)), &second), None);

        assert_eq!(
            check(None, &second),
            Some(BreakKind::Gap { expected_id: 1 })
        );
        let relinked = row(2, GENESIS);
        assert!(matches!(
            check(Some(&head(&first)), &relinked),
            Some(BreakKind::BrokenLink { .. })
        ));
        let mut altered = second.clone();
        altered.details = r#"{"to":"admin"}"#.into();
        let Some(BreakKind::HashMismatch { stored, computed }) =
            check(Some(&head(&first)), &altered)
        else {
            panic!("not a mismatch");
        };
        assert_eq!(stored, second.hash);
        assert_ne!(computed, stored);
        let told = Break {
            id: 2,
            kind: BreakKind::HashMismatch { stored, computed },
        }
        .to_string();
        assert!(told.starts_with("event 2: hash mismatch"), "{told}");
    }
}
