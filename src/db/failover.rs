//! A database that comes back (a restart, a failover, `pg_terminate_backend`) must not
//! cost requests. Every pooled connection is dead then, and nothing tells the pool so
//! until one is used. Two things make the next requests succeed:
//!
//! - **Validation before use** ([`before_acquire`]): the pool pings a connection before
//!   handing it out when it sat idle for [`VALIDATE_IF_IDLE_FOR`] or longer (HikariCP's
//!   500 ms), and every connection during [`VALIDATE_AFTER_LOSS`] after one was found
//!   dead ([`Losses`]); a dead one is discarded and the next (or a new one) taken.
//! - **One retry of a read** (`db::conn`): a plain read outside a transaction whose
//!   connection turns out dead ([`connection_lost`]) runs once more; that second
//!   acquire validates what it takes, so it lands on a live connection. Never a write,
//!   never inside a transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sea_orm::sqlx::pool::PoolConnectionMetadata;
use sea_orm::{DbErr, RuntimeErr, SqlxError};

/// A connection idle this long is pinged before it is handed out (HikariCP's
/// `aliveBypassWindowMs`). A busy connection was known good a moment ago and goes
/// without; a quiet pool pays one round trip per acquire, which is cheap when quiet.
/// Not configurable: nothing is gained by tuning it.
pub const VALIDATE_IF_IDLE_FOR: Duration = Duration::from_millis(500);

/// After a connection was found dead, every connection is pinged before it is handed
/// out for this long: the others were most likely dropped by the same event (a restart
/// terminates every backend within milliseconds), even those used a moment ago.
pub const VALIDATE_AFTER_LOSS: Duration = Duration::from_secs(1);

/// When a pooled connection was last found dead, by a statement ([`connection_lost`])
/// or by the validation ping. Shared by the pool's hook and the statement wrapper.
#[derive(Debug)]
pub struct Losses {
    since: Instant,
    /// Milliseconds from `since` to the last loss, plus one; 0 = never.
    last: AtomicU64,
}

impl Default for Losses {
    fn default() -> Self {
        Losses {
            since: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl Losses {
    /// A connection was found dead now.
    pub fn record(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last.fetch_max(ms.saturating_add(1), Ordering::Relaxed);
    }

    /// How long ago a connection was last found dead.
    pub fn since_last(&self) -> Option<Duration> {
        let last = self.last.load(Ordering::Relaxed).checked_sub(1)?;
        Some(
            self.since
                .elapsed()
                .saturating_sub(Duration::from_millis(last)),
        )
    }

    /// Whether a pooled connection idle for `idle_for` must be pinged before use.
    pub fn must_validate(&self, idle_for: Duration) -> bool {
        must_validate(idle_for, self.since_last())
    }
}

/// The validation rule: idle for [`VALIDATE_IF_IDLE_FOR`], or a connection found dead
/// less than [`VALIDATE_AFTER_LOSS`] ago.
pub fn must_validate(idle_for: Duration, since_last_loss: Option<Duration>) -> bool {
    idle_for >= VALIDATE_IF_IDLE_FOR || since_last_loss.is_some_and(|d| d < VALIDATE_AFTER_LOSS)
}

/// The pool's `before_acquire` hook for connections of type `C`: ping when
/// [`Losses::must_validate`]; a failed ping is a loss, and its error makes the pool
/// discard the connection and take another (or open one).
pub fn before_acquire<C: sea_orm::sqlx::Connection>(
    losses: Arc<Losses>,
) -> impl for<'c> Fn(&'c mut C, PoolConnectionMetadata) -> BoxFuture<'c, Result<bool, SqlxError>>
+ Send
+ Sync
+ 'static {
    move |conn: &mut C, meta: PoolConnectionMetadata| {
        let losses = losses.clone();
        Box::pin(async move {
            if losses.must_validate(meta.idle_for)
                && let Err(e) = conn.ping().await
            {
                losses.record();
                return Err(e);
            }
            Ok(true)
        })
    }
}

/// Whether a statement failed because its connection is dead: an I/O error (reset,
/// EOF, broken pipe) or the server ending the session (SQLSTATE class 08 connection
/// exception; 57P01–57P03: administrator command such as `pg_terminate_backend` or a
/// shutdown, crash shutdown, cannot connect now). Not a pool timeout, nor an operation
/// abandoned for silence (`DbErr::Conn`): the database may be fine and the statement
/// still running, and a second try would double the wait.
pub fn connection_lost(e: &DbErr) -> bool {
    match e {
        DbErr::Query(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                SqlxError::Io(_) => true,
                SqlxError::Database(db) => db.code().is_some_and(|c| {
                    c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(e: SqlxError) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
    }

    #[test]
    fn lost_means_the_connection_died_under_the_statement() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(connection_lost(&query(SqlxError::Io(reset))));
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(connection_lost(&DbErr::Exec(RuntimeErr::SqlxError(
            Arc::new(SqlxError::Io(eof))
        ))));
        // Waiting for a connection, a pool closed, silence: not a dead connection.
        assert!(!connection_lost(&query(SqlxError::PoolTimedOut)));
        assert!(!connection_lost(&query(SqlxError::PoolClosed)));
        assert!(!connection_lost(&DbErr::Conn(RuntimeErr::Internal(
            "no answer".into()
        ))));
        assert!(!connection_lost(&DbErr::ConnectionAcquire(
            sea_orm::error::ConnAcquireErr::Timeout
        )));
        assert!(!connection_lost(&query(SqlxError::RowNotFound)));
        assert!(!connection_lost(&DbErr::Custom("bug".into())));
    }

    #[test]
    fn idle_or_recently_lost_connections_are_validated() {
        let ms = Duration::from_millis;
        assert!(!must_validate(ms(0), None));
        assert!(!must_validate(ms(499), None));
        assert!(must_validate(ms(500), None));
        assert!(must_validate(ms(0), Some(ms(0))));
        assert!(must_validate(ms(10), Some(ms(999))));
        assert!(!must_validate(ms(10), Some(ms(1000))));
        let losses = Losses::default();
        assert_eq!(losses.since_last(), None);
        assert!(!losses.must_validate(ms(10)));
        losses.record();
        assert!(losses.since_last().is_some_and(|d| d < ms(100)));
        assert!(losses.must_validate(ms(10)));
    }
}
