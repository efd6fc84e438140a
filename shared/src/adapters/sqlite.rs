//! SQLite adapters: the embedded default for local mode. One file holds pairs, deliveries, the job
//! queue, dead letters, audit entries and conflicts; [`SqliteStore`] implements every storage port but
//! secrets over it.
//!
//! The conditional writes mirror DynamoDB's: insert-if-absent, replace-if-version-matches (the pair row
//! and its item → pair lookup row in one transaction), and the Powertools delivery-claim condition. Every
//! multi-statement operation runs in an `IMMEDIATE` transaction, so a second process on the same file
//! (`campbridge status` next to `campbridge serve`) waits on `busy_timeout` instead of interleaving.
//!
//! The ports are async but rusqlite is synchronous. Each port call runs on one of tokio's blocking threads
//! (`spawn_blocking`) and takes a `std::sync::Mutex` around the one connection there: an operation is a
//! handful of indexed statements (sub-millisecond) until another process holds the file's write lock,
//! and then it waits up to [`BUSY_TIMEOUT`] — on a blocking thread, so the server's async workers (and
//! `/healthz`) keep answering. A deployment that outgrows one connection uses the DynamoDB/SQS adapters.
//!
//! Two threads of its own take the file's fsyncs off the request path without weakening what a send
//! promises:
//! - Group commit of sends: [`JobQueue::send`] hands its message to the store's writer thread and waits for
//!   the answer. The writer takes every send waiting at that moment (up to [`MAX_SEND_BATCH`]), writes them
//!   in one `IMMEDIATE` transaction (each in its own savepoint, so one failing send fails alone) and answers
//!   each only after that transaction has committed — with `synchronous = FULL`, after the WAL is fsynced.
//!   Sixteen concurrent webhooks cost one fsync instead of sixteen, and a 202 still means "on disk".
//! - A background checkpointer (files only): the request connection never checkpoints
//!   (`wal_autocheckpoint = 0`); a second connection copies the WAL back into the database every
//!   [`CHECKPOINT_INTERVAL`] (`PASSIVE`: it never waits for, nor blocks, the writer).
//!
//! Times are stored as integer microseconds since the Unix epoch (UTC), records as JSON in a `body`
//! column beside the indexed columns queries filter on. The schema version lives in `PRAGMA user_version`
//! and migrations run on open.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{DEDUP_WINDOW, DEFAULT_MAX_RECEIVES, earlier, later};
use crate::domain::{DeliveryId, DevItemRef, Pair, PairKey, PairState, RouteId};
use crate::ports::{
    AuditEntry, AuditLog, Clock, Conflict, ConflictLog, CursorStore, DeadLetter, DeliveryClaim, DeliveryLog, Inserted,
    JobConsumer, JobProducer, PairStore, QueueOperator, Received, Replaced, Resolution, Sent, StoreError,
};

/// The schema version this build writes (`PRAGMA user_version`). A newer file is refused on open.
pub const SCHEMA_VERSION: u32 = 4;

/// How long a statement waits for another connection's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most sends the writer commits in one transaction.
pub const MAX_SEND_BATCH: usize = 256;

/// How often the background checkpointer copies the WAL back into the database file.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// The WAL file is truncated back to this size after a checkpoint lets the writer start it over.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Migrations, in order: entry `n` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    r#"
CREATE TABLE pairs (
    route       TEXT    NOT NULL,
    todo        INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    item_key    TEXT,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    PRIMARY KEY (route, todo)
);
CREATE INDEX pairs_by_state ON pairs (state, route, created_at);
CREATE INDEX pairs_by_created ON pairs (created_at);
CREATE INDEX pairs_by_item ON pairs (item_key);

-- The reverse lookup: one row per linked item, naming the one pair that owns it.
CREATE TABLE pair_items (
    item_key TEXT    PRIMARY KEY,
    route    TEXT    NOT NULL,
    todo     INTEGER NOT NULL
);

CREATE TABLE deliveries (
    id                TEXT    PRIMARY KEY,
    status            TEXT    NOT NULL CHECK (status IN ('in_progress', 'completed')),
    in_progress_until INTEGER,
    expires_at        INTEGER NOT NULL
);
CREATE INDEX deliveries_by_expiry ON deliveries (expires_at);

CREATE TABLE jobs (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    TEXT    NOT NULL UNIQUE,
    group_id      TEXT    NOT NULL,
    dedup_id      TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    receive_count INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,
    receipt       TEXT    UNIQUE,
    sent_at       INTEGER NOT NULL
);
CREATE INDEX jobs_by_group ON jobs (group_id, visible_at);
CREATE INDEX jobs_by_visibility ON jobs (visible_at);
CREATE INDEX jobs_by_dedup ON jobs (dedup_id);

-- Deduplication ids accepted within the window, whether or not their message is still queued.
CREATE TABLE job_dedup (
    dedup_id TEXT    PRIMARY KEY,
    sent_at  INTEGER NOT NULL
);

CREATE TABLE dead_letters (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id    TEXT    NOT NULL UNIQUE,
    group_id      TEXT    NOT NULL,
    dedup_id      TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    receive_count INTEGER NOT NULL,
    dead_at       INTEGER NOT NULL
);

CREATE TABLE audit (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    subject TEXT    NOT NULL,
    body    TEXT    NOT NULL
);
CREATE INDEX audit_by_at ON audit (at);
CREATE INDEX audit_by_subject ON audit (subject, at);

CREATE TABLE conflicts (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    id   TEXT    NOT NULL UNIQUE,
    at   INTEGER NOT NULL,
    open INTEGER NOT NULL,
    body TEXT    NOT NULL
);
CREATE INDEX conflicts_by_at ON conflicts (open, at);
"#,
    r#"
CREATE TABLE cursors (
    name TEXT    PRIMARY KEY,
    at   INTEGER NOT NULL
);
"#,
    r#"
-- What the last attempt of a dead-lettered job failed with (NULL: the queue moved it, no attempt finished).
ALTER TABLE dead_letters ADD COLUMN last_error TEXT;
"#,
    r#"
-- Every send purges the ids older than the deduplication window: a range, not a scan of the table.
CREATE INDEX job_dedup_by_sent ON job_dedup (sent_at);
"#,
];

const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";

/// The embedded store: one SQLite connection behind a mutex, shared by clones, with its send writer and
/// (for a file) its checkpointer.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
    max_receives: u32,
    workers: Arc<Workers>,
}

/// One send waiting for the writer, and where its answer goes.
struct SendRequest {
    group: String,
    dedup_id: String,
    body: String,
    reply: tokio::sync::oneshot::Sender<Result<Sent, StoreError>>,
}

/// The store's own threads. Dropped with the last clone of the store: the channels close, the threads
/// finish what they hold and stop, and the drop waits for them.
struct Workers {
    sends: Option<mpsc::Sender<SendRequest>>,
    stop_checkpoints: Option<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<WorkerStats>,
}

/// What the threads have done, for tests and the bench.
#[derive(Default)]
struct WorkerStats {
    /// Sends handed to the writer and not yet answered.
    pending_sends: AtomicUsize,
    /// Transactions the writer committed (one per batch of sends).
    send_batches: AtomicU64,
    /// Checkpoints the checkpointer finished that copied at least one frame.
    checkpoints: AtomicU64,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.sends.take();
        self.stop_checkpoints.take();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a SQLite store thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("max_receives", &self.max_receives).finish_non_exhaustive()
    }
}

/// Whether the database at `path` answers a read of `table` now, on a connection of its own (read-only,
/// never creating the file, waiting at most `wait` for a lock): what `serve`'s `/healthz` asks, without
/// queueing behind the store's own connection while a worker waits for the write lock.
pub fn probe(path: &Path, table: &str, wait: Duration) -> Result<(), StoreError> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(wait).context("failed to set busy_timeout")?;
    // Table names are ours (`pairs`, `jobs`), never input.
    let sql = format!("SELECT 1 FROM {table} LIMIT 1");
    conn.query_row(&sql, [], |_| Ok(())).optional().with_context(|| format!("cannot read {table}"))?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, in WAL mode, migrated to [`SCHEMA_VERSION`].
    /// The queue dead-letters after [`DEFAULT_MAX_RECEIVES`] receives.
    pub fn open(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let conn =
            Connection::open(path).with_context(|| format!("failed to open the SQLite database {}", path.display()))?;
        Self::init(conn, clock, Some(path))
    }

    /// A private in-memory database (tests). WAL does not apply to it, nor the checkpointer.
    pub fn open_in_memory(clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().context("failed to open an in-memory SQLite database")?;
        Self::init(conn, clock, None)
    }

    /// Sets the queue's max-receive count (at least 1).
    pub fn with_max_receives(mut self, max_receives: u32) -> Self {
        self.max_receives = max_receives.max(1);
        self
    }

    /// The journal mode in effect (`wal` for a file, `memory` for [`Self::open_in_memory`]).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        let conn = self.conn()?;
        Ok(conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).context("failed to read journal_mode")?)
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let conn = self.conn()?;
        Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0)).context("failed to read user_version")?)
    }

    fn init(mut conn: Connection, clock: Arc<dyn Clock>, path: Option<&Path>) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).context("failed to set busy_timeout")?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .context("failed to switch to WAL")?;
        // An in-memory database answers "memory"; a file on a filesystem without shared memory keeps
        // its rollback journal, which is correct but lets readers block the writer.
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            tracing::warn!(journal_mode = %mode, "SQLite could not switch to WAL; readers may block writers");
        }
        // FULL: every commit is on disk (the WAL fsynced) before the call returns, so a webhook answered
        // 202 survives a crash or a power loss, given a disk that honours fsync. NORMAL would lose the
        // last commits before a power loss: deliveries the sender will never send again.
        conn.pragma_update(None, "synchronous", "FULL").context("failed to set synchronous")?;
        migrate(&mut conn)?;
        let stats = Arc::new(WorkerStats::default());
        let mut threads = Vec::new();
        let stop_checkpoints = match path {
            Some(path) if mode.eq_ignore_ascii_case("wal") => {
                // The checkpointer's connection is opened first: a file it cannot open keeps the
                // request connection's automatic checkpoints.
                let checkpoint_conn = open_checkpointer(path)?;
                conn.pragma_update(None, "wal_autocheckpoint", 0).context("failed to set wal_autocheckpoint")?;
                conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
                    .context("failed to set journal_size_limit")?;
                let (stop, stopped) = mpsc::channel();
                let stats = stats.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name("sqlite-checkpoint".into())
                        .spawn(move || checkpointer(&checkpoint_conn, &stopped, &stats))
                        .context("failed to start the SQLite checkpointer")?,
                );
                Some(stop)
            }
            _ => None,
        };
        let conn = Arc::new(Mutex::new(conn));
        let (sends, requests) = mpsc::channel();
        {
            let (conn, clock, stats) = (conn.clone(), clock.clone(), stats.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("sqlite-sends".into())
                    .spawn(move || send_writer(&conn, clock.as_ref(), &requests, &stats))
                    .context("failed to start the SQLite send writer")?,
            );
        }
        let workers = Arc::new(Workers { sends: Some(sends), stop_checkpoints, threads, stats });
        Ok(Self { conn, clock, max_receives: DEFAULT_MAX_RECEIVES, workers })
    }

    /// Transactions the send writer has committed so far (each holds one or more sends).
    pub fn send_batches(&self) -> u64 {
        self.workers.stats.send_batches.load(Ordering::Relaxed)
    }

    /// Checkpoints the background checkpointer has finished so far (0 for an in-memory store).
    pub fn checkpoints(&self) -> u64 {
        self.workers.stats.checkpoints.load(Ordering::Relaxed)
    }

    /// Runs `f` on one of tokio's blocking threads, with a clone of the store (the connection is shared).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Unexpected(anyhow::anyhow!("a SQLite operation did not finish: {e}")))?
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Unexpected(anyhow::anyhow!("SQLite connection lock poisoned")))
    }

    /// From now on, counts every SQL statement this store's connection runs (`BEGIN` and `COMMIT`
    /// included) into the process-wide [`statements_counted`]. For `make bench`'s store operations per
    /// event; off unless called, and then one atomic add per statement.
    pub fn count_statements(&self) -> Result<(), StoreError> {
        // PROFILE fires once per finished statement (STMT may fire more than once per run).
        self.conn()?.trace_v2(rusqlite::trace::TraceEventCodes::SQLITE_TRACE_PROFILE, Some(count_statement));
        Ok(())
    }
}

/// Statements run on stores that called [`SqliteStore::count_statements`], in this process.
static STATEMENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count_statement(_event: rusqlite::trace::TraceEvent<'_>) {
    STATEMENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many statements the counting stores have run so far (see [`SqliteStore::count_statements`]).
pub fn statements_counted() -> u64 {
    STATEMENTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The checkpointer's own connection to the file (it never writes rows, only copies the WAL back).
fn open_checkpointer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .with_context(|| format!("failed to open the SQLite database {} for checkpoints", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT).context("failed to set busy_timeout")?;
    conn.pragma_update(None, "synchronous", "FULL").context("failed to set synchronous")?;
    Ok(conn)
}

/// Every [`CHECKPOINT_INTERVAL`] until the store is dropped (then once more), a `PASSIVE` checkpoint:
/// it copies what it can without waiting for the writer or for readers, and fsyncs the database file.
fn checkpointer(conn: &Connection, stop: &mpsc::Receiver<()>, stats: &WorkerStats) {
    loop {
        let last = match stop.recv_timeout(CHECKPOINT_INTERVAL) {
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
        };
        // (busy, frames in the WAL, frames checkpointed); -1 when the file is not in WAL mode.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))) {
            Ok((_, copied)) if copied > 0 => {
                stats.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "a SQLite checkpoint failed; the next one retries"),
        }
        if last {
            return;
        }
    }
}

/// The group-commit writer: waits for a send, takes every send waiting (after the connection is free,
/// so the sends that arrived during the previous commit join this one), commits them in one transaction,
/// then answers each. Returns when the store is dropped.
fn send_writer(
    conn: &Mutex<Connection>,
    clock: &dyn Clock,
    requests: &mpsc::Receiver<SendRequest>,
    stats: &WorkerStats,
) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        let Ok(mut conn) = conn.lock() else {
            answer_all(batch, stats, || StoreError::Unexpected(anyhow::anyhow!("SQLite connection lock poisoned")));
            continue;
        };
        while batch.len() < MAX_SEND_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let now = clock.now();
        match write_sends(&mut conn, now, &batch) {
            Ok(results) => {
                drop(conn);
                stats.send_batches.fetch_add(1, Ordering::Relaxed);
                for (request, result) in batch.into_iter().zip(results) {
                    // A sender that stopped waiting (its request was cancelled) needs no answer.
                    if request.reply.send(result).is_err() {
                        tracing::debug!("a send's caller stopped waiting; its message is committed");
                    }
                    stats.pending_sends.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                drop(conn);
                let reason = e.to_string();
                answer_all(batch, stats, || StoreError::Unexpected(anyhow::anyhow!("{reason}")));
            }
        }
    }
}

fn answer_all(batch: Vec<SendRequest>, stats: &WorkerStats, error: impl Fn() -> StoreError) {
    for request in batch {
        if request.reply.send(Err(error())).is_err() {
            tracing::debug!("a send's caller stopped waiting; its message was not committed");
        }
        stats.pending_sends.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One transaction for `batch`: the deduplication purge once, then each send in its own savepoint. The
/// per-send results are only valid once this returns `Ok` (the commit succeeded).
fn write_sends(
    conn: &mut Connection,
    now: DateTime<Utc>,
    batch: &[SendRequest],
) -> Result<Vec<Result<Sent, StoreError>>, StoreError> {
    let horizon = micros(earlier(now, DEDUP_WINDOW));
    let now = micros(now);
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
    tx.execute("DELETE FROM job_dedup WHERE sent_at <= ?1", params![horizon])
        .context("failed to purge old deduplication ids")?;
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        let mut savepoint = tx.savepoint().context("failed to begin a send")?;
        let result = send_in(&savepoint, now, &request.group, &request.dedup_id, &request.body);
        if result.is_ok() {
            savepoint.commit().context("failed to keep a send")?;
        } else {
            savepoint.rollback().context("failed to undo a failed send")?;
        }
        results.push(result);
    }
    tx.commit().context("failed to commit a batch of sends")?;
    Ok(results)
}

/// One send inside the writer's transaction: a duplicate within the window is refused, as SQS FIFO does.
fn send_in(tx: &Connection, now: i64, group: &str, dedup_id: &str, body: &str) -> Result<Sent, StoreError> {
    let duplicate: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM job_dedup WHERE dedup_id = ?1)
                 OR EXISTS (SELECT 1 FROM jobs WHERE dedup_id = ?1)",
        )
        .and_then(|mut stmt| stmt.query_row(params![dedup_id], |r| r.get(0)))
        .context("failed to check a deduplication id")?;
    if duplicate {
        return Ok(Sent::Duplicate);
    }
    tx.prepare_cached(
        "INSERT INTO jobs (message_id, group_id, dedup_id, body, receive_count, visible_at, receipt, sent_at)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, NULL, ?5)",
    )
    .and_then(|mut stmt| stmt.execute(params![uuid::Uuid::new_v4().to_string(), group, dedup_id, body, now]))
    .context("failed to enqueue a job")?;
    tx.prepare_cached("INSERT OR REPLACE INTO job_dedup (dedup_id, sent_at) VALUES (?1, ?2)")
        .and_then(|mut stmt| stmt.execute(params![dedup_id, now]))
        .context("failed to remember a deduplication id")?;
    Ok(Sent::Enqueued)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin migration")?;
    let current: u32 =
        tx.pragma_query_value(None, "user_version", |r| r.get(0)).context("failed to read user_version")?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Unexpected(anyhow::anyhow!(
            "the database has schema version {current}, newer than this build's {SCHEMA_VERSION}: upgrade campbridge"
        )));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).with_context(|| format!("failed to migrate the schema from version {from}"))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).context("failed to write user_version")?;
    tx.commit().context("failed to commit the migration")?;
    Ok(())
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| StoreError::Corrupt(format!("timestamp {v} is out of range")))
}

fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Unexpected(anyhow::anyhow!("{what} {v} does not fit SQLite's INTEGER")))
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    Ok(serde_json::to_string(value).with_context(|| format!("failed to encode {what}"))?)
}

fn from_json<T: serde::de::DeserializeOwned>(body: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn decode_pair(body: &str, key: &str) -> Result<Pair, StoreError> {
    from_json(body, &format!("pair {key}"))
}

/// The stored pair at `key`, read inside the caller's transaction.
fn pair_at(conn: &Connection, route: &RouteId, todo: i64) -> Result<Option<Pair>, StoreError> {
    let body: Option<String> = conn
        .query_row("SELECT body FROM pairs WHERE route = ?1 AND todo = ?2", params![route.as_str(), todo], |r| r.get(0))
        .optional()
        .context("failed to read a pair")?;
    body.map(|b| decode_pair(&b, &format!("{route}/{todo}"))).transpose()
}

/// The pair key owning `item_key`, if any.
fn item_owner(conn: &Connection, item_key: &str) -> Result<Option<(String, i64)>, StoreError> {
    Ok(conn
        .query_row("SELECT route, todo FROM pair_items WHERE item_key = ?1", params![item_key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .context("failed to read the item lookup")?)
}

/// `insert` of a pair that already carries an item claims the reverse lookup in the same transaction; if
/// that item belongs to another pair, nothing is written and the result is `AlreadyExists` with that pair.
impl SqliteStore {
    fn insert_pair(&self, pair: &Pair) -> Result<Inserted<Pair>, StoreError> {
        let body = to_json(pair, "pair")?;
        let version = to_i64(pair.version, "pair version")?;
        let item_key = pair.item.as_ref().map(DevItemRef::index_key);
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
        if let Some(existing) = pair_at(&tx, &pair.route, pair.todo.0)? {
            return Ok(Inserted::AlreadyExists(existing));
        }
        if let Some(key) = &item_key {
            if let Some((route, todo)) = item_owner(&tx, key)?
                && let Some(owner) = pair_at(&tx, &RouteId(route), todo)?
            {
                return Ok(Inserted::AlreadyExists(owner));
            }
            tx.execute(
                "INSERT OR REPLACE INTO pair_items (item_key, route, todo) VALUES (?1, ?2, ?3)",
                params![key, pair.route.as_str(), pair.todo.0],
            )
            .context("failed to write the item lookup")?;
        }
        tx.execute(
            "INSERT INTO pairs (route, todo, state, item_key, version, created_at, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                pair.route.as_str(),
                pair.todo.0,
                pair.state.as_str(),
                item_key,
                version,
                micros(pair.created_at),
                body
            ],
        )
        .context("failed to insert a pair")?;
        tx.commit().context("failed to commit a pair insert")?;
        Ok(Inserted::Inserted)
    }

    fn replace_pair(&self, pair: &Pair) -> Result<Replaced<Pair>, StoreError> {
        let mut next = pair.clone();
        next.version = pair.version + 1;
        let body = to_json(&next, "pair")?;
        let (expected, version) = (to_i64(pair.version, "pair version")?, to_i64(next.version, "pair version")?);
        let new_key = pair.item.as_ref().map(DevItemRef::index_key);
        let (route, todo) = (pair.route.as_str(), pair.todo.0);

        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
        let Some(current) = pair_at(&tx, &pair.route, todo)? else {
            return Ok(Replaced::Stale(None));
        };
        if current.version != pair.version {
            return Ok(Replaced::Stale(Some(current)));
        }
        if let Some(key) = &new_key
            && item_owner(&tx, key)?.is_some_and(|(r, t)| r != route || t != todo)
        {
            return Ok(Replaced::Stale(Some(current)));
        }
        // The item changed or was dropped: the old lookup must not keep pointing here.
        if let Some(old) = current.item.as_ref().map(DevItemRef::index_key)
            && Some(&old) != new_key.as_ref()
        {
            tx.execute(
                "DELETE FROM pair_items WHERE item_key = ?1 AND route = ?2 AND todo = ?3",
                params![old, route, todo],
            )
            .context("failed to drop an item lookup")?;
        }
        if let Some(key) = &new_key {
            tx.execute(
                "INSERT INTO pair_items (item_key, route, todo) VALUES (?1, ?2, ?3) ON CONFLICT (item_key) DO NOTHING",
                params![key, route, todo],
            )
            .context("failed to write the item lookup")?;
        }
        let changed = tx
            .execute(
                "UPDATE pairs SET state = ?1, item_key = ?2, version = ?3, created_at = ?4, body = ?5
                 WHERE route = ?6 AND todo = ?7 AND version = ?8",
                params![next.state.as_str(), new_key, version, micros(next.created_at), body, route, todo, expected],
            )
            .context("failed to replace a pair")?;
        if changed != 1 {
            // Unreachable under the IMMEDIATE transaction; refuse rather than commit a half-write.
            return Err(StoreError::Unexpected(anyhow::anyhow!("pair {route}/{todo} changed during its replace")));
        }
        tx.commit().context("failed to commit a pair replace")?;
        Ok(Replaced::Replaced(next.version))
    }

    fn remove_pair(&self, key: &PairKey, version: u64) -> Result<bool, StoreError> {
        let expected = to_i64(version, "pair version")?;
        let (route, todo) = (key.route.as_str(), key.todo.0);
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
        let deleted = tx
            .execute(
                "DELETE FROM pairs WHERE route = ?1 AND todo = ?2 AND version = ?3",
                params![route, todo, expected],
            )
            .context("failed to delete a pair")?;
        if deleted == 0 {
            return Ok(false);
        }
        tx.execute("DELETE FROM pair_items WHERE route = ?1 AND todo = ?2", params![route, todo])
            .context("failed to drop an item lookup")?;
        tx.commit().context("failed to commit a pair removal")?;
        Ok(true)
    }

    fn get_pair(&self, key: &PairKey) -> Result<Option<Pair>, StoreError> {
        let conn = self.conn()?;
        pair_at(&conn, &key.route, key.todo.0)
    }

    fn find_pair_by_item(&self, item: &DevItemRef) -> Result<Option<Pair>, StoreError> {
        let conn = self.conn()?;
        match item_owner(&conn, &item.index_key())? {
            Some((route, todo)) => pair_at(&conn, &RouteId(route), todo),
            None => Ok(None),
        }
    }

    fn list_pairs(
        &self,
        route: Option<&RouteId>,
        state: Option<PairState>,
        limit_to: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT route, todo, body FROM pairs
                 WHERE (?1 IS NULL OR route = ?1) AND (?2 IS NULL OR state = ?2)
                 ORDER BY created_at, route, todo LIMIT ?3",
            )
            .context("failed to prepare the pair listing")?;
        let rows = stmt
            .query_map(params![route.map(RouteId::as_str), state.map(PairState::as_str), limit(limit_to)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })
            .context("failed to list pairs")?;
        let mut pairs = Vec::new();
        for row in rows {
            let (route, todo, body) = row.context("failed to read a listed pair")?;
            pairs.push(decode_pair(&body, &format!("{route}/{todo}"))?);
        }
        Ok(pairs)
    }
}

impl SqliteStore {
    fn claim_delivery(
        &self,
        id: &DeliveryId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<DeliveryClaim, StoreError> {
        let until = micros(later(now, lease)?);
        let now = micros(now);
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
        // The Powertools condition: absent, expired, or in progress with a lease that has run out.
        let claimed = tx
            .execute(
                "INSERT INTO deliveries (id, status, in_progress_until, expires_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (id) DO UPDATE SET status = ?2, in_progress_until = ?3, expires_at = ?3
                 WHERE deliveries.expires_at <= ?4
                    OR (deliveries.status = ?2 AND deliveries.in_progress_until <= ?4)",
                params![id.as_str(), IN_PROGRESS, until, now],
            )
            .context("failed to claim a delivery")?;
        let outcome = if claimed == 1 {
            DeliveryClaim::Claimed
        } else {
            let (status, held): (String, Option<i64>) = tx
                .query_row(
                    "SELECT status, in_progress_until FROM deliveries WHERE id = ?1",
                    params![id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .context("failed to read a delivery")?;
            match (status.as_str(), held) {
                (IN_PROGRESS, Some(until)) => DeliveryClaim::InProgress { until: from_micros(until)? },
                (COMPLETED, _) => DeliveryClaim::Completed,
                _ => return Err(StoreError::Corrupt(format!("delivery {id} has status {status:?} without a lease"))),
            }
        };
        tx.commit().context("failed to commit a delivery claim")?;
        Ok(outcome)
    }

    fn complete_delivery(&self, id: &DeliveryId, now: DateTime<Utc>, retention: Duration) -> Result<(), StoreError> {
        let expires_at = micros(later(now, retention)?);
        let now = micros(now);
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
        tx.execute(
            "INSERT INTO deliveries (id, status, in_progress_until, expires_at) VALUES (?1, ?2, NULL, ?3)
             ON CONFLICT (id) DO UPDATE SET status = ?2, in_progress_until = NULL, expires_at = ?3
             WHERE NOT (deliveries.status = ?2 AND deliveries.expires_at > ?4)",
            params![id.as_str(), COMPLETED, expires_at, now],
        )
        .context("failed to complete a delivery")?;
        // Expired records behave exactly like absent ones, so dropping them here is DynamoDB's TTL.
        tx.execute("DELETE FROM deliveries WHERE expires_at <= ?1", params![now])
            .context("failed to purge expired deliveries")?;
        tx.commit().context("failed to commit a delivery completion")?;
        Ok(())
    }

    fn release_delivery(&self, id: &DeliveryId) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM deliveries WHERE id = ?1 AND status = ?2", params![id.as_str(), IN_PROGRESS])
            .context("failed to release a delivery")?;
        Ok(())
    }
}

/// What one receive decided for one candidate message.
enum Pick {
    Deliver { seq: i64, message_id: String, group: String, body: String, receive_count: u32 },
    DeadLetter { seq: i64 },
}

impl SqliteStore {
    fn receive_jobs(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, StoreError> {
        let now_t = self.clock.now();
        let invisible_until = micros(later(now_t, visibility)?);
        let now = micros(now_t);
        let max_receives = i64::from(self.max_receives);
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
        let mut picks = Vec::new();
        {
            // Visible messages, oldest first, of groups with nothing in flight.
            let mut stmt = tx
                .prepare_cached(
                    "SELECT seq, message_id, group_id, body, receive_count FROM jobs
                     WHERE visible_at <= ?1
                       AND group_id NOT IN (SELECT group_id FROM jobs WHERE visible_at > ?1)
                     ORDER BY seq",
                )
                .context("failed to prepare a receive")?;
            let mut rows = stmt.query(params![now]).context("failed to receive")?;
            let mut delivering = 0;
            while delivering < max {
                let Some(row) = rows.next().context("failed to read a queued job")? else { break };
                let seq: i64 = row.get(0).context("bad seq")?;
                let count: i64 = row.get(4).context("bad receive_count")?;
                if count >= max_receives {
                    picks.push(Pick::DeadLetter { seq });
                    continue;
                }
                let receive_count = u32::try_from(count + 1)
                    .map_err(|_| StoreError::Corrupt(format!("job {seq} has receive count {count}")))?;
                picks.push(Pick::Deliver {
                    seq,
                    message_id: row.get(1).context("bad message_id")?,
                    group: row.get(2).context("bad group_id")?,
                    body: row.get(3).context("bad body")?,
                    receive_count,
                });
                delivering += 1;
            }
        }
        let mut out = Vec::new();
        for pick in picks {
            match pick {
                Pick::DeadLetter { seq } => {
                    tx.execute(
                        "INSERT INTO dead_letters (message_id, group_id, dedup_id, body, receive_count, dead_at, last_error)
                         SELECT message_id, group_id, dedup_id, body, receive_count, ?2, NULL FROM jobs WHERE seq = ?1",
                        params![seq, now],
                    )
                    .context("failed to dead-letter a job")?;
                    tx.execute("DELETE FROM jobs WHERE seq = ?1", params![seq])
                        .context("failed to remove a dead-lettered job")?;
                    // No attempt of it finished (a worker that kept stopping mid-job): said once, here.
                    tracing::error!(
                        seq,
                        max_receives,
                        "a job was received too often without finishing; moved to the dead letters"
                    );
                }
                Pick::Deliver { seq, message_id, group, body, receive_count } => {
                    let receipt = format!("{message_id}/{receive_count}/{}", uuid::Uuid::new_v4());
                    tx.execute(
                        "UPDATE jobs SET receive_count = ?2, visible_at = ?3, receipt = ?4 WHERE seq = ?1",
                        params![seq, receive_count, invisible_until, receipt],
                    )
                    .context("failed to mark a job in flight")?;
                    out.push(Received { receipt, message_id, group, body, receive_count });
                }
            }
        }
        tx.commit().context("failed to commit a receive")?;
        Ok(out)
    }

    fn delete_job(&self, receipt: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM jobs WHERE receipt = ?1", params![receipt])
            .context("failed to delete a job")?;
        Ok(())
    }

    fn change_job_visibility(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        let visible_at = micros(later(self.clock.now(), delay)?);
        self.conn()?
            .execute("UPDATE jobs SET visible_at = ?2 WHERE receipt = ?1", params![receipt, visible_at])
            .context("failed to change a job's visibility")?;
        Ok(())
    }

    fn requeue_job(&self, receipt: &str, body: &str, delay: Duration) -> Result<(), StoreError> {
        let visible_at = micros(later(self.clock.now(), delay)?);
        self.conn()?
            .execute(
                "UPDATE jobs SET body = ?2, receive_count = 0, visible_at = ?3, receipt = NULL WHERE receipt = ?1",
                params![receipt, body, visible_at],
            )
            .context("failed to requeue a job")?;
        Ok(())
    }

    fn dead_letter_job(&self, receipt: &str, error: &str) -> Result<(), StoreError> {
        let now = micros(self.clock.now());
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
        let moved = tx
            .execute(
                "INSERT INTO dead_letters (message_id, group_id, dedup_id, body, receive_count, dead_at, last_error)
                 SELECT message_id, group_id, dedup_id, body, receive_count, ?2, ?3 FROM jobs WHERE receipt = ?1",
                params![receipt, now, error],
            )
            .context("failed to dead-letter a job")?;
        if moved > 0 {
            tx.execute("DELETE FROM jobs WHERE receipt = ?1", params![receipt])
                .context("failed to remove a dead-lettered job")?;
        }
        tx.commit().context("failed to commit a dead letter")?;
        Ok(())
    }

    fn queue_depth(&self) -> Result<u64, StoreError> {
        let n: i64 =
            self.conn()?.query_row("SELECT COUNT(*) FROM jobs", [], |r| r.get(0)).context("failed to count jobs")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn list_dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT message_id, group_id, dedup_id, body, receive_count, dead_at, last_error FROM dead_letters
                 ORDER BY dead_at, seq",
            )
            .context("failed to prepare the dead-letter listing")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })
            .context("failed to list dead letters")?;
        let mut out = Vec::new();
        for row in rows {
            let (message_id, group, dedup_id, body, receive_count, dead_at, last_error) =
                row.context("failed to read a dead letter")?;
            let dead_at = from_micros(dead_at)?;
            out.push(DeadLetter { message_id, group, dedup_id, body, receive_count, dead_at, last_error });
        }
        Ok(out)
    }

    fn redrive_dead_letter(&self, message_id: &str) -> Result<bool, StoreError> {
        let now = micros(self.clock.now());
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
        let moved = tx
            .execute(
                "INSERT INTO jobs (message_id, group_id, dedup_id, body, receive_count, visible_at, receipt, sent_at)
                 SELECT message_id, group_id, dedup_id, body, 0, ?2, NULL, ?2 FROM dead_letters WHERE message_id = ?1",
                params![message_id, now],
            )
            .context("failed to redrive a dead letter")?;
        if moved == 0 {
            return Ok(false);
        }
        tx.execute("DELETE FROM dead_letters WHERE message_id = ?1", params![message_id])
            .context("failed to remove a redriven dead letter")?;
        tx.commit().context("failed to commit a redrive")?;
        Ok(true)
    }
}

impl SqliteStore {
    fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let body = to_json(entry, "audit entry")?;
        self.conn()?
            .execute(
                "INSERT INTO audit (at, subject, body) VALUES (?1, ?2, ?3)",
                params![micros(entry.at), entry.subject, body],
            )
            .context("failed to record an audit entry")?;
        Ok(())
    }

    fn recent_audit(&self, subject: Option<&str>, limit_to: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, body FROM audit WHERE (?1 IS NULL OR subject = ?1) ORDER BY at DESC, seq DESC LIMIT ?2",
            )
            .context("failed to prepare the audit listing")?;
        let rows = stmt
            .query_map(params![subject, limit(limit_to)], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .context("failed to list audit entries")?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body) = row.context("failed to read an audit entry")?;
            out.push(from_json(&body, &format!("audit entry {seq}"))?);
        }
        Ok(out)
    }
}

impl SqliteStore {
    fn read_cursor(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = self
            .conn()?
            .query_row("SELECT at FROM cursors WHERE name = ?1", params![name], |r| r.get(0))
            .optional()
            .context("failed to read a cursor")?;
        at.map(from_micros).transpose()
    }

    fn advance_cursor(&self, name: &str, to: DateTime<Utc>) -> Result<bool, StoreError> {
        // One statement: insert, or move forward only when later (the condition DynamoDB's put carries).
        let changed = self
            .conn()?
            .execute(
                "INSERT INTO cursors (name, at) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET at = excluded.at WHERE excluded.at > cursors.at",
                params![name, micros(to)],
            )
            .context("failed to advance a cursor")?;
        Ok(changed > 0)
    }
}

impl SqliteStore {
    fn record_conflict(&self, conflict: &Conflict) -> Result<Inserted<Conflict>, StoreError> {
        let body = to_json(conflict, "conflict")?;
        let open = conflict.resolution == Resolution::Open;
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
        let inserted = tx
            .execute(
                "INSERT INTO conflicts (id, at, open, body) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
                params![conflict.id, micros(conflict.at), open, body],
            )
            .context("failed to record a conflict")?;
        let outcome = if inserted == 1 {
            Inserted::Inserted
        } else {
            let existing: String = tx
                .query_row("SELECT body FROM conflicts WHERE id = ?1", params![conflict.id], |r| r.get(0))
                .context("failed to read a conflict")?;
            Inserted::AlreadyExists(from_json(&existing, &format!("conflict {}", conflict.id))?)
        };
        tx.commit().context("failed to commit a conflict")?;
        Ok(outcome)
    }

    fn list_conflicts(&self, open_only: bool, limit_to: usize) -> Result<Vec<Conflict>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, body FROM conflicts WHERE (?1 = 0 OR open = 1) ORDER BY at DESC, seq DESC LIMIT ?2",
            )
            .context("failed to prepare the conflict listing")?;
        let rows = stmt
            .query_map(params![open_only, limit(limit_to)], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .context("failed to list conflicts")?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body) = row.context("failed to read a conflict")?;
            out.push(from_json(&body, &format!("conflict {id}"))?);
        }
        Ok(out)
    }

    fn resolve_conflict(&self, id: &str, resolution: Resolution) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).context("failed to begin")?;
        let body: Option<String> = tx
            .query_row("SELECT body FROM conflicts WHERE id = ?1 AND open = 1", params![id], |r| r.get(0))
            .optional()
            .context("failed to read a conflict")?;
        let Some(body) = body else {
            return Ok(false);
        };
        let mut conflict: Conflict = from_json(&body, &format!("conflict {id}"))?;
        let open = resolution == Resolution::Open;
        conflict.resolution = resolution;
        tx.execute(
            "UPDATE conflicts SET open = ?2, body = ?3 WHERE id = ?1",
            params![id, open, to_json(&conflict, "conflict")?],
        )
        .context("failed to resolve a conflict")?;
        tx.commit().context("failed to commit a resolution")?;
        Ok(true)
    }
}

// The ports run each operation above on a blocking thread ([`SqliteStore::blocking`]): a statement can
// wait up to `BUSY_TIMEOUT` for another process's lock, and that wait must not hold an async worker.

#[async_trait]
impl PairStore for SqliteStore {
    async fn insert(&self, pair: &Pair) -> Result<Inserted<Pair>, StoreError> {
        let pair = pair.clone();
        self.blocking(move |s| s.insert_pair(&pair)).await
    }

    async fn replace(&self, pair: &Pair) -> Result<Replaced<Pair>, StoreError> {
        let pair = pair.clone();
        self.blocking(move |s| s.replace_pair(&pair)).await
    }

    async fn get(&self, key: &PairKey) -> Result<Option<Pair>, StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.get_pair(&key)).await
    }

    async fn find_by_item(&self, item: &DevItemRef) -> Result<Option<Pair>, StoreError> {
        let item = item.clone();
        self.blocking(move |s| s.find_pair_by_item(&item)).await
    }

    async fn remove(&self, key: &PairKey, version: u64) -> Result<bool, StoreError> {
        let key = key.clone();
        self.blocking(move |s| s.remove_pair(&key, version)).await
    }

    async fn list(
        &self,
        route: Option<&RouteId>,
        state: Option<PairState>,
        limit_to: usize,
    ) -> Result<Vec<Pair>, StoreError> {
        let route = route.cloned();
        self.blocking(move |s| s.list_pairs(route.as_ref(), state, limit_to)).await
    }
}

#[async_trait]
impl DeliveryLog for SqliteStore {
    async fn claim(&self, id: &DeliveryId, now: DateTime<Utc>, lease: Duration) -> Result<DeliveryClaim, StoreError> {
        let id = id.clone();
        self.blocking(move |s| s.claim_delivery(&id, now, lease)).await
    }

    async fn complete(&self, id: &DeliveryId, now: DateTime<Utc>, retention: Duration) -> Result<(), StoreError> {
        let id = id.clone();
        self.blocking(move |s| s.complete_delivery(&id, now, retention)).await
    }

    async fn release(&self, id: &DeliveryId) -> Result<(), StoreError> {
        let id = id.clone();
        self.blocking(move |s| s.release_delivery(&id)).await
    }
}

#[async_trait]
impl JobProducer for SqliteStore {
    /// Handed to the writer thread (group commit); answered once the send's transaction is on disk.
    async fn send(&self, group: &str, dedup_id: &str, body: &str) -> Result<Sent, StoreError> {
        let stopped = || StoreError::Unexpected(anyhow::anyhow!("the SQLite send writer has stopped"));
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request =
            SendRequest { group: group.to_owned(), dedup_id: dedup_id.to_owned(), body: body.to_owned(), reply };
        let sends = self.workers.sends.as_ref().ok_or_else(stopped)?;
        self.workers.stats.pending_sends.fetch_add(1, Ordering::Relaxed);
        if sends.send(request).is_err() {
            self.workers.stats.pending_sends.fetch_sub(1, Ordering::Relaxed);
            return Err(stopped());
        }
        answer.await.map_err(|_| stopped())?
    }
}

#[async_trait]
impl JobConsumer for SqliteStore {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, StoreError> {
        self.blocking(move |s| s.receive_jobs(max, visibility)).await
    }

    async fn delete(&self, receipt: &str) -> Result<(), StoreError> {
        let receipt = receipt.to_owned();
        self.blocking(move |s| s.delete_job(&receipt)).await
    }

    async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        let receipt = receipt.to_owned();
        self.blocking(move |s| s.change_job_visibility(&receipt, delay)).await
    }

    async fn requeue(&self, message: &Received, body: &str, delay: Duration) -> Result<(), StoreError> {
        let (receipt, body) = (message.receipt.clone(), body.to_owned());
        self.blocking(move |s| s.requeue_job(&receipt, &body, delay)).await
    }

    async fn dead_letter(&self, message: &Received, error: &str) -> Result<(), StoreError> {
        let (receipt, error) = (message.receipt.clone(), error.to_owned());
        self.blocking(move |s| s.dead_letter_job(&receipt, &error)).await
    }
}

#[async_trait]
impl QueueOperator for SqliteStore {
    async fn depth(&self) -> Result<u64, StoreError> {
        self.blocking(|s| s.queue_depth()).await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.blocking(|s| s.list_dead_letters()).await
    }

    async fn redrive(&self, message_id: &str) -> Result<bool, StoreError> {
        let message_id = message_id.to_owned();
        self.blocking(move |s| s.redrive_dead_letter(&message_id)).await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.blocking(move |s| s.record_audit(&entry)).await
    }

    async fn recent(&self, subject: Option<&str>, limit_to: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let subject = subject.map(str::to_owned);
        self.blocking(move |s| s.recent_audit(subject.as_deref(), limit_to)).await
    }
}

#[async_trait]
impl CursorStore for SqliteStore {
    async fn cursor(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let name = name.to_owned();
        self.blocking(move |s| s.read_cursor(&name)).await
    }

    async fn advance(&self, name: &str, to: DateTime<Utc>) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.blocking(move |s| s.advance_cursor(&name, to)).await
    }
}

#[async_trait]
impl ConflictLog for SqliteStore {
    async fn record(&self, conflict: &Conflict) -> Result<Inserted<Conflict>, StoreError> {
        let conflict = conflict.clone();
        self.blocking(move |s| s.record_conflict(&conflict)).await
    }

    async fn list(&self, open_only: bool, limit_to: usize) -> Result<Vec<Conflict>, StoreError> {
        self.blocking(move |s| s.list_conflicts(open_only, limit_to)).await
    }

    async fn resolve(&self, id: &str, resolution: Resolution) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.blocking(move |s| s.resolve_conflict(&id, resolution)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::adapters::memory::ManualClock;
    use crate::ports::SystemClock;
    use crate::testkit::contract::{self, Fixture, QueueFixture, clock};

    fn store(clock: &Arc<ManualClock>) -> Arc<SqliteStore> {
        Arc::new(SqliteStore::open_in_memory(clock.clone()).unwrap())
    }

    fn fixture<P: ?Sized>(port: impl FnOnce(Arc<SqliteStore>) -> Arc<P>) -> Fixture<P> {
        let clock = clock();
        Fixture::new(port(store(&clock)), clock)
    }

    mod pairs {
        use super::*;
        crate::pair_store_contract_tests!(fixture::<dyn PairStore>(|s| s));
    }

    mod deliveries {
        use super::*;
        crate::delivery_log_contract_tests!(fixture::<dyn DeliveryLog>(|s| s));
    }

    mod queue {
        use super::*;

        fn queue_fixture() -> QueueFixture {
            let clock = clock();
            let queue = SqliteStore::open_in_memory(clock.clone()).unwrap().with_max_receives(3);
            QueueFixture { queue: Arc::new(queue), clock, max_receives: 3 }
        }

        crate::job_queue_contract_tests!(queue_fixture());

        #[tokio::test]
        async fn the_default_max_receive_count_is_five() {
            let clock = clock();
            let queue = store(&clock);
            contract::queue_a_message_received_too_often_is_dead_lettered(QueueFixture {
                queue,
                clock,
                max_receives: DEFAULT_MAX_RECEIVES,
            })
            .await;
        }
    }

    mod audit {
        use super::*;
        crate::audit_log_contract_tests!(fixture::<dyn AuditLog>(|s| s));
    }

    mod conflicts {
        use super::*;
        crate::conflict_log_contract_tests!(fixture::<dyn ConflictLog>(|s| s));
    }

    mod cursors {
        use super::*;
        crate::cursor_store_contract_tests!(fixture::<dyn CursorStore>(|s| s));
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("campbridge-sqlite-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
        fn db(&self) -> PathBuf {
            self.0.join("campbridge.db")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            if let Err(e) = std::fs::remove_dir_all(&self.0) {
                eprintln!("could not remove {}: {e}", self.0.display());
            }
        }
    }

    #[tokio::test]
    async fn data_survives_reopening_the_file() {
        let dir = TempDir::new();
        let clock = clock();
        let pair = contract::pending_pair("web", 1_069_480_015, "worker-a", clock.now());
        let item = contract::jira_item(10_002);
        {
            let store = SqliteStore::open(dir.db(), clock.clone()).unwrap();
            assert_eq!(PairStore::insert(&store, &pair).await.unwrap(), Inserted::Inserted);
            let linked = Pair { item: Some(item.clone()), state: PairState::Linked, ..pair.clone() };
            assert_eq!(store.replace(&linked).await.unwrap(), Replaced::Replaced(1));
            store.claim(&DeliveryId::basecamp(7), clock.now(), Duration::from_secs(30)).await.unwrap();
            store.complete(&DeliveryId::basecamp(7), clock.now(), Duration::from_secs(3600)).await.unwrap();
            assert_eq!(store.send("bc-todo-1", "basecamp:7", "{}").await.unwrap(), Sent::Enqueued);
        }
        let store = SqliteStore::open(dir.db(), clock.clone()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let found = store.find_by_item(&item).await.unwrap();
        assert_eq!(found.map(|p| (p.key(), p.version)), Some((pair.key(), 1)));
        let claim = store.claim(&DeliveryId::basecamp(7), clock.now(), Duration::from_secs(30)).await.unwrap();
        assert_eq!(claim, DeliveryClaim::Completed);
        assert_eq!(store.depth().await.unwrap(), 1);
        assert_eq!(store.send("bc-todo-1", "basecamp:7", "{}").await.unwrap(), Sent::Duplicate);
    }

    #[test]
    fn a_file_database_syncs_every_commit_to_disk() {
        let dir = TempDir::new();
        let store = SqliteStore::open(dir.db(), Arc::new(SystemClock)).unwrap();
        let conn = store.conn().unwrap();
        // 2 = FULL: a commit returns only after the WAL is fsynced (what a 202 promises).
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
        assert_eq!(synchronous, 2);
    }

    #[test]
    fn a_file_database_runs_in_wal_mode() {
        let dir = TempDir::new();
        let store = SqliteStore::open(dir.db(), Arc::new(SystemClock)).unwrap();
        assert_eq!(store.journal_mode().unwrap().to_lowercase(), "wal");
    }

    #[test]
    fn the_deduplication_purge_reads_a_range_of_the_sent_at_index() {
        let store = SqliteStore::open_in_memory(Arc::new(SystemClock)).unwrap();
        let conn = store.conn().unwrap();
        let plan: Vec<String> = conn
            .prepare("EXPLAIN QUERY PLAN DELETE FROM job_dedup WHERE sent_at <= ?1")
            .unwrap()
            .query_map(params![0], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().any(|step| step.contains("USING INDEX job_dedup_by_sent")), "{plan:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_sends_are_committed_together_and_answered_after_the_commit() {
        let dir = TempDir::new();
        let store = SqliteStore::open(dir.db(), clock()).unwrap();
        // Another operation holds the connection while 33 sends arrive (two share a deduplication id).
        let (locked, is_locked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = {
            let store = store.clone();
            std::thread::spawn(move || {
                let _conn = store.conn().unwrap();
                locked.send(()).unwrap();
                released.recv().unwrap();
            })
        };
        is_locked.recv().unwrap();
        let before = store.send_batches();
        let mut sends = Vec::new();
        for i in 0..33 {
            let store = store.clone();
            let dedup = format!("basecamp:{}", i.min(31));
            sends.push(tokio::spawn(async move { store.send(&format!("bc-todo-{}", i % 4), &dedup, "{}").await }));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.workers.stats.pending_sends.load(Ordering::Relaxed) < 33 {
            assert!(std::time::Instant::now() < deadline, "the sends never reached the writer");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Nothing is answered while the transaction cannot even begin.
        assert!(sends.iter().all(|s| !s.is_finished()));
        release.send(()).unwrap();
        holder.join().unwrap();
        let mut outcomes = Vec::new();
        for send in sends {
            outcomes.push(send.await.unwrap().unwrap());
        }
        assert_eq!(outcomes.iter().filter(|o| **o == Sent::Enqueued).count(), 32);
        assert_eq!(outcomes.iter().filter(|o| **o == Sent::Duplicate).count(), 1);
        assert_eq!(store.send_batches() - before, 1, "one transaction for the sends that waited together");
        // Answered means committed: a second connection to the file sees every message.
        let other = Connection::open(dir.db()).unwrap();
        let queued: i64 = other.query_row("SELECT COUNT(*) FROM jobs", [], |r| r.get(0)).unwrap();
        assert_eq!(queued, 32);
    }

    #[tokio::test]
    async fn a_file_store_checkpoints_on_its_own_thread_not_in_requests() {
        let dir = TempDir::new();
        let store = SqliteStore::open(dir.db(), clock()).unwrap();
        let autocheckpoint: i64 =
            store.conn().unwrap().pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0)).unwrap();
        assert_eq!(autocheckpoint, 0, "the request connection never checkpoints");
        for i in 0..20 {
            assert_eq!(store.send("bc-todo-1", &format!("basecamp:{i}"), "{}").await.unwrap(), Sent::Enqueued);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.checkpoints() == 0 {
            assert!(std::time::Instant::now() < deadline, "no background checkpoint");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let in_memory = SqliteStore::open_in_memory(clock()).unwrap();
        assert_eq!(in_memory.workers.threads.len(), 1, "an in-memory store has no checkpointer");
    }

    #[tokio::test]
    async fn a_pair_stored_with_string_signal_keys_reads_typed_and_is_written_back_unchanged() {
        use crate::domain::{PullRequestRef, PullRequestState, RepoRef, Signal, SignalKey};
        let clock = clock();
        let store = store(&clock);
        // The signals as pairs have always stored them, one key of each kind plus one this build does not know.
        let stored_signals = serde_json::json!({
            "pr:team/web#2:MERGED": {"state": "posted", "value": 1_052_473_970_i64},
            "prlink:team/web#2": {"state": "done"},
            "completed-on-merge:team/web#2": {"state": "done"},
            "build:team/web:ci:main:43f670e:FAILED": {"state": "failing", "value": "43f670e"},
            "build-failing:team/web:ci:main": {"state": "failing", "value": "43f670e"},
            "pm-comment:10050": {"state": "posted", "value": 1_052_473_971_i64},
            "blocked": {"state": "attempting"},
            "reviewed:team/web#2": {"state": "done"},
        });
        let mut body = serde_json::to_value(contract::pending_pair("web", 1, "worker-a", clock.now())).unwrap();
        body["signals"] = stored_signals.clone();
        store
            .conn()
            .unwrap()
            .execute(
                "INSERT INTO pairs (route, todo, state, item_key, version, created_at, body)
                 VALUES ('web', 1, 'PENDING', NULL, 0, 0, ?1)",
                [body.to_string()],
            )
            .unwrap();

        let key = PairKey { route: RouteId("web".into()), todo: crate::domain::TodoId(1) };
        let pair = store.get(&key).await.unwrap().unwrap();
        let pr = PullRequestRef { repo: RepoRef { workspace: "team".into(), repo_slug: "web".into() }, id: 2 };
        assert_eq!(
            pair.signals.get(&SignalKey::PullRequest { pr: pr.clone(), state: PullRequestState::Merged }),
            Some(&Signal::Posted(crate::domain::BasecampCommentId(1_052_473_970)))
        );
        assert!(pair.signals.contains_key(&SignalKey::PullRequestLink(pr)));
        assert!(pair.signals.contains_key(&SignalKey::Blocked));
        let failing = SignalKey::parse("build:team/web:ci:main:43f670e:FAILED").failing_mark();
        assert_eq!(failing.and_then(|k| pair.signals.get(&k).cloned()), Some(Signal::Failing("43f670e".into())));
        assert!(pair.signals.contains_key(&SignalKey::Unknown("reviewed:team/web#2".into())));

        assert_eq!(store.replace(&pair).await.unwrap(), Replaced::Replaced(1));
        let written: String =
            store.conn().unwrap().query_row("SELECT body FROM pairs WHERE todo = 1", [], |r| r.get(0)).unwrap();
        let written: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(written["signals"], stored_signals, "every key is written back as it was stored");
    }

    #[tokio::test]
    async fn a_version_1_file_is_migrated_and_gains_the_cursors() {
        let dir = TempDir::new();
        {
            let conn = Connection::open(dir.db()).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let clock = clock();
        let store = SqliteStore::open(dir.db(), clock.clone()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert!(store.advance("reconcile:jira", clock.now()).await.unwrap());
        assert_eq!(store.cursor("reconcile:jira").await.unwrap(), Some(clock.now()));
    }

    #[tokio::test]
    async fn a_counting_store_counts_the_statements_it_runs() {
        let store = SqliteStore::open_in_memory(Arc::new(SystemClock)).unwrap();
        store.count_statements().unwrap();
        let before = statements_counted();
        store.depth().await.unwrap();
        // Other tests' stores may count too (the total is process-wide), never fewer.
        assert!(statements_counted() > before);
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let dir = TempDir::new();
        {
            let conn = Connection::open(dir.db()).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        }
        let err = SqliteStore::open(dir.db(), Arc::new(SystemClock)).unwrap_err();
        assert!(err.to_string().contains("newer than this build"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_connections_to_one_file_still_have_one_winner() {
        let dir = TempDir::new();
        let clock = clock();
        let stores =
            [SqliteStore::open(dir.db(), clock.clone()).unwrap(), SqliteStore::open(dir.db(), clock.clone()).unwrap()];
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = stores[i % 2].clone();
            let barrier = barrier.clone();
            let pair = contract::pending_pair("web", 1_069_480_015, &format!("worker-{i}"), clock.now());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                PairStore::insert(&store, &pair).await
            }));
        }
        let mut winners = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() == Inserted::Inserted {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn an_unreadable_pair_row_is_reported_as_corrupt() {
        let clock = clock();
        let store = store(&clock);
        store
            .conn()
            .unwrap()
            .execute(
                "INSERT INTO pairs (route, todo, state, item_key, version, created_at, body)
                 VALUES ('web', 1, 'PENDING', NULL, 0, 0, '{not json')",
                [],
            )
            .unwrap();
        let key = PairKey { route: RouteId("web".into()), todo: crate::domain::TodoId(1) };
        assert!(matches!(store.get(&key).await, Err(StoreError::Corrupt(_))));
    }
}
