//! The statement-counting connection wrapper. Every handler talks to the database through
//! [`Conn`] (a per-request handle) instead of the raw `DatabaseConnection`, so every
//! statement — `execute`, `query_one`, `query_all`, `execute_unprepared`, inside
//! transactions and streams — is recorded in the request's
//! [`RequestRecorder`](crate::n1::recorder::RequestRecorder) and timed for the pool metrics.
//!
//! Acquire latency is derived, because sqlx exposes none: sea-orm's metric callback
//! reports `elapsed` measured *after* the pooled connection was acquired, so
//! `time seen here − elapsed` is the wait for a connection (plus a few µs of sea-orm
//! overhead). The callback hands `elapsed` over through a thread-local that is cleared
//! before and read after each poll of the inner future, so concurrent statements on
//! the same thread (`join_all`) cannot see each other's value.

use std::cell::Cell;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use sea_orm::error::ConnAcquireErr;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, Statement, StreamTrait, TransactionError,
    TransactionOptions, TransactionSession, TransactionTrait,
};

use super::failover::connection_lost;
use super::holders::{Hold, HoldKind};
use super::{Db, PoolInstruments};
use crate::metrics::Metrics;
use crate::n1::fingerprint::{Op, classify, is_read_only};
use crate::n1::recorder::RequestRecorder;

thread_local! {
    static LAST_ELAPSED: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// The schema's tables, from the entities; any other first table is labelled `other`
/// (bounded cardinality).
pub fn known_tables() -> [&'static str; 4] {
    use super::entities::{artist, playlist, playlist_track, track};
    use sea_orm::EntityName;
    [
        artist::Entity.table_name(),
        track::Entity.table_name(),
        playlist::Entity.table_name(),
        playlist_track::Entity.table_name(),
    ]
}

const OPS: [Op; 5] = [Op::Select, Op::Insert, Op::Update, Op::Delete, Op::Other];

/// Statement texts whose `(op, table)` is remembered; past it, statements are lexed
/// each time (texts are bounded by the code's queries, so this is never reached in
/// practice).
const CLASSIFIED_MAX: usize = 4096;

/// Per-(op, table) metric children resolved once, so the hot path does no label lookup;
/// each statement text is lexed once, its child's index remembered.
struct StatementMetrics {
    tables: [&'static str; 4],
    duration: Vec<prometheus::Histogram>,
    slow: Vec<prometheus::IntCounter>,
    statements: prometheus::IntCounter,
    slow_threshold: Duration,
    classified: std::sync::RwLock<rustc_hash::FxHashMap<Box<str>, usize>>,
}

impl StatementMetrics {
    fn new(metrics: &Metrics, slow_threshold: Duration) -> Self {
        let tables = known_tables();
        let mut duration = Vec::new();
        let mut slow = Vec::new();
        for op in OPS {
            for table in tables.iter().chain(std::iter::once(&"other")) {
                duration.push(
                    metrics
                        .db_query_duration_seconds
                        .with_label_values(&[op.as_str(), table]),
                );
                slow.push(
                    metrics
                        .db_slow_queries_total
                        .with_label_values(&[op.as_str(), table]),
                );
            }
        }
        StatementMetrics {
            tables,
            duration,
            slow,
            statements: metrics.db_statements_total.clone(),
            slow_threshold,
            classified: Default::default(),
        }
    }

    /// The index of `sql`'s `(op, table)` children.
    fn index_of(&self, sql: &str) -> usize {
        if let Ok(known) = self.classified.read()
            && let Some(i) = known.get(sql)
        {
            return *i;
        }
        let (op, table) = classify(sql);
        let op_index = OPS.iter().position(|o| *o == op).unwrap_or(OPS.len() - 1);
        let table_index = table
            .and_then(|t| self.tables.iter().position(|k| k.eq_ignore_ascii_case(t)))
            .unwrap_or(self.tables.len());
        let i = op_index * (self.tables.len() + 1) + table_index;
        if let Ok(mut known) = self.classified.write()
            && known.len() < CLASSIFIED_MAX
        {
            known.insert(sql.into(), i);
        }
        i
    }

    fn observe(&self, sql: &str, elapsed: Duration) {
        self.statements.inc();
        let i = self.index_of(sql);
        if let Some(h) = self.duration.get(i) {
            h.observe(elapsed.as_secs_f64());
        }
        if elapsed >= self.slow_threshold
            && let Some(c) = self.slow.get(i)
        {
            c.inc();
        }
    }
}

/// Install sea-orm's per-statement callback. Must run before the connection is cloned.
pub fn install_metric_callback(
    conn: &mut DatabaseConnection,
    metrics: &Metrics,
    slow_threshold: Duration,
) {
    let m = StatementMetrics::new(metrics, slow_threshold);
    conn.set_metric_callback(move |info| {
        m.observe(&info.statement.sql, info.elapsed);
        LAST_ELAPSED.with(|c| c.set(Some(info.elapsed)));
    });
}

/// Poll `fut`, returning its output and the `elapsed` sea-orm reported for it (if any).
async fn with_elapsed<T>(
    mut fut: Pin<Box<dyn Future<Output = T> + Send + '_>>,
) -> (T, Option<Duration>) {
    std::future::poll_fn(move |cx| {
        LAST_ELAPSED.with(|c| c.set(None));
        match fut.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready((v, LAST_ELAPSED.with(Cell::take))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Decrements a gauge-like atomic when dropped, so a cancelled request cannot leak it.
struct InFlight<'a>(&'a std::sync::atomic::AtomicI64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a std::sync::atomic::AtomicI64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn params_hash(stmt: &Statement) -> Option<u64> {
    let values = stmt.values.as_ref()?;
    let mut h = rustc_hash::FxHasher::default();
    values.0.hash(&mut h);
    Some(h.finish())
}

fn is_acquire_timeout<T>(res: &Result<T, DbErr>) -> bool {
    matches!(res, Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)))
}

/// Where a statement goes in the request's recorder.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Statement counting is off for this request: nothing is recorded.
    NotCounting,
    /// Counted, under the recorder's shape slot (`None`: the request's shape cap is
    /// reached; the statement still counts).
    Counted(Option<usize>),
}

/// What a wrapped connection or transaction shares: where to record, what to measure.
#[derive(Clone)]
struct Probe {
    recorder: Option<Arc<RequestRecorder>>,
    instruments: Arc<PoolInstruments>,
    metrics: Arc<Metrics>,
    /// [`Db::operation_timeout`].
    timeout: Option<Duration>,
    /// The request's route pattern: who holds connections.
    route: Arc<str>,
}

/// A boxed statement future, as sea-orm's traits return them.
type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, DbErr>> + Send + 'a>>;

/// What one run of a statement gave.
struct Attempt<T> {
    res: Result<T, DbErr>,
    /// sea-orm's statement time, when the statement ran.
    elapsed: Option<Duration>,
    /// From the wait for a connection to the answer.
    total: Duration,
}

impl Probe {
    /// Run one statement and record it. `acquires` is true when it takes a connection
    /// from the pool (outside a transaction), so its wait is measured.
    async fn run<T>(
        &self,
        shape: Shape,
        params: Option<u64>,
        acquires: bool,
        fut: Fut<'_, T>,
    ) -> Result<T, DbErr> {
        let attempt = self.attempt(acquires, fut, self.timeout).await;
        self.record(shape, params, &attempt);
        attempt.res
    }

    /// Run one statement within `limit`, measured but not recorded in the request's
    /// recorder (a statement run twice is recorded once, [`Recorded::rerunnable`]). A
    /// connection found dead under it is a loss for the pool's validation.
    async fn attempt<T>(
        &self,
        acquires: bool,
        fut: Fut<'_, T>,
        limit: Option<Duration>,
    ) -> Attempt<T> {
        let _in_flight = acquires.then(|| InFlight::enter(&self.instruments.in_flight));
        let hold = acquires.then(|| self.hold(HoldKind::Statement));
        let started = Instant::now();
        let (res, elapsed) = self.bounded(limit, with_elapsed(fut)).await;
        let total = started.elapsed();
        if let Some(hold) = hold {
            self.observe_acquire(&res, total, elapsed);
            // The connection was held for sea-orm's statement time; without it (an
            // error before the statement ran), nothing was held.
            hold.finish(elapsed.unwrap_or_default());
        }
        self.note_loss(&res);
        Attempt {
            res,
            elapsed,
            total,
        }
    }

    fn record<T>(&self, shape: Shape, params: Option<u64>, attempt: &Attempt<T>) {
        if let (Some(rec), Shape::Counted(slot)) = (&self.recorder, shape) {
            rec.record_shape(slot, params, attempt.elapsed.unwrap_or(attempt.total));
        }
    }

    /// A connection found dead makes the pool validate every connection for a while
    /// (`failover`): the others most likely went with it.
    fn note_loss<T>(&self, res: &Result<T, DbErr>) {
        if let Err(e) = res
            && connection_lost(e)
        {
            self.instruments.losses.record();
        }
    }

    /// Run an operation within `limit` ([`Probe::timeout`], or what is left of it). A
    /// connection whose database stopped answering (a network partition, a frozen
    /// server) raises no error: without this bound the request would wait as long as
    /// the silence lasts.
    async fn bounded<T>(
        &self,
        limit: Option<Duration>,
        op: impl Future<Output = (Result<T, DbErr>, Option<Duration>)>,
    ) -> (Result<T, DbErr>, Option<Duration>) {
        let Some(limit) = limit else {
            return op.await;
        };
        match tokio::time::timeout(limit, op).await {
            Ok(done) => done,
            Err(_) => {
                self.metrics.db_statement_timeouts_total.inc();
                (
                    Err(DbErr::Conn(sea_orm::RuntimeErr::Internal(format!(
                        "no answer from the database within {} ms",
                        limit.as_millis()
                    )))),
                    None,
                )
            }
        }
    }

    /// Resolve a statement's shape before the statement consumes its text.
    fn shape(&self, sql: &str) -> Shape {
        match &self.recorder {
            Some(r) => Shape::Counted(r.shape_of(sql)),
            None => Shape::NotCounting,
        }
    }

    fn hold(&self, kind: HoldKind) -> Hold {
        Hold::enter(&self.instruments, &self.metrics, self.route.clone(), kind)
    }

    fn observe_acquire<T>(
        &self,
        res: &Result<T, DbErr>,
        total: Duration,
        elapsed: Option<Duration>,
    ) {
        let waited = if is_acquire_timeout(res) {
            self.metrics.db_connection_acquire_timeouts_total.inc();
            self.instruments.holders.log_at_timeout(total);
            total
        } else if let Some(e) = elapsed {
            total.saturating_sub(e)
        } else {
            return;
        };
        self.metrics
            .db_connection_acquire_seconds
            .observe(waited.as_secs_f64());
        self.metrics
            .db_connection_wait_seconds_total
            .inc_by(waited.as_secs_f64());
    }

    /// `begin` takes a connection and holds it until commit/rollback/drop.
    async fn begin(
        &self,
        fut: Pin<Box<dyn Future<Output = Result<DatabaseTransaction, DbErr>> + Send + '_>>,
    ) -> Result<Txn, DbErr> {
        let started = Instant::now();
        let res = {
            let _in_flight = InFlight::enter(&self.instruments.in_flight);
            self.bounded(self.timeout, async { (fut.await, None) })
                .await
                .0
        };
        self.note_loss(&res);
        // No statement callback fires for the acquire; the BEGIN round trip is included.
        self.observe_acquire(&res, started.elapsed(), Some(Duration::ZERO));
        let inner = res?;
        // Recorded once it succeeded: a BEGIN that failed (no connection) ran nothing.
        if let Some(rec) = &self.recorder {
            rec.record("BEGIN", None, started.elapsed());
        }
        Ok(Txn {
            inner,
            probe: self.clone(),
            _open: Some(OpenTransaction::new(
                &self.instruments,
                self.hold(HoldKind::Transaction),
            )),
        })
    }
}

/// A sea-orm connection or transaction whose every statement is recorded and timed.
/// [`Conn`] wraps the pool, [`Txn`] a transaction begun through it; one implementation
/// of sea-orm's traits serves both ([`Inner`] says what differs).
pub struct Recorded<C> {
    inner: C,
    probe: Probe,
    /// On an outermost transaction only (savepoints hold no extra connection).
    _open: Option<OpenTransaction>,
}

/// Per-request database handle: implements sea-orm's `ConnectionTrait`,
/// `TransactionTrait` and `StreamTrait`, recording every statement.
pub type Conn = Recorded<DatabaseConnection>;

/// A transaction begun through [`Conn`]; its statements (and nested savepoints) are
/// recorded too. It holds one pooled connection until commit, rollback or drop.
pub type Txn = Recorded<DatabaseTransaction>;

/// What differs between the pool and a transaction under the wrapper.
pub trait Inner:
    ConnectionTrait
    + StreamTrait
    + TransactionTrait<Transaction = DatabaseTransaction>
    + Send
    + Sync
    + 'static
{
    /// Each statement takes a connection from the pool (so its wait is measured), and
    /// `begin` opens a transaction on a new one rather than a savepoint.
    const ACQUIRES: bool;
}

impl Inner for DatabaseConnection {
    const ACQUIRES: bool = true;
}

impl Inner for DatabaseTransaction {
    const ACQUIRES: bool = false;
}

impl Clone for Conn {
    fn clone(&self) -> Self {
        Recorded {
            inner: self.inner.clone(),
            probe: self.probe.clone(),
            _open: None,
        }
    }
}

impl Conn {
    /// The handle of one request of `route` (its pattern: a bounded label).
    pub fn new(db: &Db, recorder: Option<Arc<RequestRecorder>>, route: Arc<str>) -> Self {
        Recorded {
            inner: db.conn.clone(),
            probe: Probe {
                recorder: recorder.filter(|_| db.counting),
                instruments: db.instruments.clone(),
                metrics: db.metrics.clone(),
                timeout: db.operation_timeout,
                route,
            },
            _open: None,
        }
    }
}

impl<C: Inner> Recorded<C> {
    /// The shape and parameters of `stmt`, resolved before the statement consumes it.
    fn identify(&self, stmt: &Statement) -> (Shape, Option<u64>) {
        (self.probe.shape(&stmt.sql), params_hash(stmt))
    }

    async fn statement<T>(
        &self,
        (shape, params): (Shape, Option<u64>),
        fut: Fut<'_, T>,
    ) -> Result<T, DbErr> {
        self.probe.run(shape, params, C::ACQUIRES, fut).await
    }

    /// A statement that may run twice: outside a transaction, a plain read
    /// ([`is_read_only`]) whose connection turned out dead ([`connection_lost`]) runs
    /// once more, within what is left of the operation's bound. Its second acquire
    /// validates whatever connection it takes (the loss was just recorded, see
    /// `failover`), so it lands on a live one. A write, or anything inside a
    /// transaction, runs once: it may have taken effect before the connection died.
    async fn rerunnable<'s, T, S: Rerun + 's>(
        &'s self,
        (shape, params): (Shape, Option<u64>),
        stmt: S,
        run: impl Fn(S) -> Fut<'s, T> + Send + Sync,
    ) -> Result<T, DbErr> {
        if !C::ACQUIRES {
            return self.probe.run(shape, params, false, run(stmt)).await;
        }
        let started = Instant::now();
        let again = stmt.clone();
        let first = self
            .probe
            .attempt(true, run(stmt), self.probe.timeout)
            .await;
        let left = self
            .probe
            .timeout
            .map(|t| t.saturating_sub(started.elapsed()));
        if !worth_rerunning(&first.res, again.sql(), left) {
            self.probe.record(shape, params, &first);
            return first.res;
        }
        let second = self.probe.attempt(true, run(again), left).await;
        let outcome = if second.res.is_ok() {
            "succeeded"
        } else {
            "failed"
        };
        self.probe
            .metrics
            .db_read_retries_total
            .with_label_values(&[outcome])
            .inc();
        if let Err(e) = &first.res {
            log::warn!(
                "a pooled database connection was dead ({e}); the read ran again on another: {outcome}"
            );
        }
        self.probe.record(shape, params, &second);
        second.res
    }

    /// A transaction on a new pooled connection, or a savepoint inside this one.
    async fn opened(
        &self,
        begun: Pin<Box<dyn Future<Output = Result<DatabaseTransaction, DbErr>> + Send + '_>>,
    ) -> Result<Txn, DbErr> {
        if C::ACQUIRES {
            return self.probe.begin(begun).await;
        }
        let inner = begun.await?;
        // Recorded once it succeeded, like BEGIN.
        if let Some(rec) = &self.probe.recorder {
            rec.record("SAVEPOINT", None, Duration::ZERO);
        }
        Ok(Recorded {
            inner,
            probe: self.probe.clone(),
            _open: None,
        })
    }
}

/// Whether a statement outside a transaction that gave `res` runs again: its connection
/// was lost, it is a plain read, and some of its bound is `left` (`None`: unbounded).
fn worth_rerunning<T>(res: &Result<T, DbErr>, sql: &str, left: Option<Duration>) -> bool {
    match res {
        Err(e) => connection_lost(e) && is_read_only(sql) && left != Some(Duration::ZERO),
        Ok(_) => false,
    }
}

/// A statement that can be run a second time ([`Recorded::rerunnable`]): a prepared
/// [`Statement`] (cloned before its first run) or unprepared SQL.
trait Rerun: Clone + Send + Sync {
    fn sql(&self) -> &str;
}

impl Rerun for Statement {
    fn sql(&self) -> &str {
        &self.sql
    }
}

impl Rerun for &str {
    fn sql(&self) -> &str {
        self
    }
}

#[async_trait::async_trait]
impl<C: Inner> ConnectionTrait for Recorded<C> {
    fn get_database_backend(&self) -> DbBackend {
        ConnectionTrait::get_database_backend(&self.inner)
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let id = self.identify(&stmt);
        self.rerunnable(id, stmt, |s| self.inner.execute_raw(s))
            .await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.rerunnable((self.probe.shape(sql), None), sql, |s| {
            self.inner.execute_unprepared(s)
        })
        .await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let id = self.identify(&stmt);
        self.rerunnable(id, stmt, |s| self.inner.query_one_raw(s))
            .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let id = self.identify(&stmt);
        self.rerunnable(id, stmt, |s| self.inner.query_all_raw(s))
            .await
    }
}

impl<C: Inner> StreamTrait for Recorded<C> {
    type Stream<'a> = <C as StreamTrait>::Stream<'a>;

    fn get_database_backend(&self) -> DbBackend {
        ConnectionTrait::get_database_backend(&self.inner)
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            let id = self.identify(&stmt);
            self.statement(id, self.inner.stream_raw(stmt)).await
        })
    }
}

#[async_trait::async_trait]
impl<C: Inner> TransactionTrait for Recorded<C> {
    type Transaction = Txn;

    async fn begin(&self) -> Result<Txn, DbErr> {
        self.opened(self.inner.begin()).await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<Txn, DbErr> {
        self.opened(self.inner.begin_with_config(isolation_level, access_mode))
            .await
    }

    async fn begin_with_options(&self, options: TransactionOptions) -> Result<Txn, DbErr> {
        self.opened(self.inner.begin_with_options(options)).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c Txn) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        run_in_transaction(self.begin().await, callback).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(&'c Txn) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        run_in_transaction(
            self.begin_with_config(isolation_level, access_mode).await,
            callback,
        )
        .await
    }
}

async fn run_in_transaction<F, T, E>(
    begun: Result<Txn, DbErr>,
    callback: F,
) -> Result<T, TransactionError<E>>
where
    F: for<'c> FnOnce(&'c Txn) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>> + Send,
    T: Send,
    E: std::fmt::Display + std::fmt::Debug + Send,
{
    let txn = begun.map_err(TransactionError::Connection)?;
    match callback(&txn).await {
        Ok(v) => {
            txn.commit().await.map_err(TransactionError::Connection)?;
            Ok(v)
        }
        Err(e) => {
            txn.rollback().await.map_err(TransactionError::Connection)?;
            Err(TransactionError::Transaction(e))
        }
    }
}

/// Counts an open transaction in [`PoolInstruments`], and holds its entry among the
/// connection holders, until dropped.
struct OpenTransaction(Arc<PoolInstruments>, #[allow(dead_code)] Hold);

impl OpenTransaction {
    fn new(instruments: &Arc<PoolInstruments>, hold: Hold) -> Self {
        instruments
            .open_transactions
            .fetch_add(1, Ordering::Relaxed);
        OpenTransaction(instruments.clone(), hold)
    }
}

impl Drop for OpenTransaction {
    fn drop(&mut self) {
        self.0.open_transactions.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl TransactionSession for Txn {
    async fn commit(self) -> Result<(), DbErr> {
        let Txn {
            inner,
            probe,
            _open,
        } = self;
        let started = Instant::now();
        let res = inner.commit().await;
        probe.note_loss(&res);
        if let Some(rec) = &probe.recorder {
            rec.record("COMMIT", None, started.elapsed());
        }
        res
    }

    async fn rollback(self) -> Result<(), DbErr> {
        let Txn {
            inner,
            probe,
            _open,
        } = self;
        let started = Instant::now();
        let res = inner.rollback().await;
        probe.note_loss(&res);
        if let Some(rec) = &probe.recorder {
            rec.record("ROLLBACK", None, started.elapsed());
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> Result<(), DbErr> {
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        Err(DbErr::Query(sea_orm::RuntimeErr::SqlxError(Arc::new(
            sea_orm::SqlxError::Io(eof),
        ))))
    }

    #[test]
    fn only_a_read_whose_connection_was_lost_runs_again_within_its_bound() {
        let read = r#"SELECT "tracks"."id" FROM "tracks" WHERE "tracks"."id" = $1"#;
        let second = Some(Duration::from_secs(1));
        assert!(worth_rerunning(&lost(), read, second));
        assert!(worth_rerunning(&lost(), read, None));
        assert!(!worth_rerunning(&lost(), read, Some(Duration::ZERO)));
        assert!(!worth_rerunning(&Ok(()), read, second));
        for write in [
            r#"INSERT INTO "playlists" ("name") VALUES ($1)"#,
            r#"UPDATE "tracks" SET "title" = $1"#,
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        ] {
            assert!(!worth_rerunning(&lost(), write, second), "{write}");
        }
        let timed_out: Result<(), DbErr> = Err(DbErr::Conn(sea_orm::RuntimeErr::Internal(
            "no answer from the database within 2000 ms".into(),
        )));
        assert!(!worth_rerunning(&timed_out, read, second));
        let no_connection: Result<(), DbErr> =
            Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
        assert!(!worth_rerunning(&no_connection, read, second));
    }
}
