//! The SQLite backend: one file in WAL mode. A single writer task owns the write
//! connection; appends that queue up while it commits are grouped into one transaction
//! (each under its own savepoint, so one refused append leaves the others alone) and are
//! acknowledged only after that transaction's durable commit. Readers use a separate pool.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::value::RawValue;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row, SqlitePool};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::append::PreparedAppend;
use crate::plans::sqlite as plans;
use crate::{AppendResult, Appended, Cursor, Error, ExpectedVersion, Filter, Page, RecordedEvent, StoreOptions};

/// Work for the write connection, run inside a transaction the writer opens and commits.
pub(crate) type WriteWork =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<(), Error>> + Send>;

enum Job {
    Append {
        req: PreparedAppend,
        hold: Option<Duration>,
        reply: oneshot::Sender<Result<AppendResult, Error>>,
    },
    Transaction {
        work: WriteWork,
        /// Commit without waiting for the disk (`synchronous=NORMAL` for this transaction).
        relaxed: bool,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Work that manages its own transactions (migrations).
    Raw {
        work: WriteWork,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// The SQLite event store.
#[derive(Clone)]
pub(crate) struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    pub(crate) readers: SqlitePool,
    pub(crate) wake: watch::Sender<u64>,
    /// Appends and raw jobs this process's writer finished (not transactions).
    generation: Arc<AtomicU64>,
    /// Pages that subscriptions woken by one commit read (see [`SqliteStore::read_all_shared`]).
    shared_pages: Arc<tokio::sync::Mutex<SharedPages>>,
    /// Held while migrating, so that processes opening one file at once (separately run
    /// services sharing an erasure ledger) migrate it one after the other.
    pub(crate) migration_lock: Option<std::path::PathBuf>,
}

/// Takes the exclusive OS lock on `path` (created if missing), waiting for it; released
/// when the returned file is dropped.
pub(crate) async fn lock_file(path: Option<std::path::PathBuf>) -> Result<Option<std::fs::File>, Error> {
    let Some(path) = path else { return Ok(None) };
    let locked = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        // The database's directory may not exist yet (SQLite is opened with create_if_missing).
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(|e| Error::Database(sqlx::Error::Io(std::io::Error::other(e))))?
    .map_err(|e| Error::Database(sqlx::Error::Io(e)))?;
    Ok(Some(locked))
}

/// Appends grouped into one commit at most.
const MAX_GROUP: usize = 256;

/// Distinct pages kept for subscriptions woken by one commit (a handful of followers).
const SHARED_PAGES: usize = 8;

/// The pages read since the writer's last job.
#[derive(Default)]
struct SharedPages {
    generation: u64,
    pages: Vec<(Cursor, Filter, usize, Page)>,
}

impl SqliteStore {
    pub(crate) async fn connect(url: &str, opts: &StoreOptions) -> Result<Self, Error> {
        let base = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Deleted content (an erased person's key) is overwritten, not left in free pages.
            .pragma("secure_delete", "on");
        let synchronous =
            if opts.sqlite_synchronous_normal { SqliteSynchronous::Normal } else { SqliteSynchronous::Full };
        let file = base.get_filename().to_path_buf();
        let migration_lock = (!file.as_os_str().is_empty() && file.as_os_str() != ":memory:").then(|| {
            let mut name = file.file_name().unwrap_or_default().to_os_string();
            name.push(".migrate-lock");
            file.with_file_name(name)
        });
        let lock = lock_file(migration_lock.clone()).await?;
        let mut writer =
            SqliteConnection::connect_with(&base.clone().create_if_missing(true).synchronous(synchronous)).await?;
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.dangerous_set_table_name("eventlog_migrations");
        migrator.run(&mut writer).await?;
        drop(lock);
        let readers = SqlitePoolOptions::new()
            .max_connections(opts.sqlite_readers.max(1))
            .min_connections(1)
            .connect_with(base.read_only(true))
            .await?;
        let (jobs, rx) = mpsc::channel(1024);
        let (wake, _) = watch::channel(0u64);
        let durable = if opts.sqlite_synchronous_normal { Durability::NORMAL } else { Durability::FULL };
        let generation = Arc::new(AtomicU64::new(0));
        tokio::spawn(run_writer(writer, rx, wake.clone(), generation.clone(), durable));
        Ok(SqliteStore { jobs, readers, wake, generation, shared_pages: Arc::default(), migration_lock })
    }

    pub(crate) async fn append(&self, req: PreparedAppend, hold: Option<Duration>) -> Result<AppendResult, Error> {
        let (reply, rx) = oneshot::channel();
        self.jobs.send(Job::Append { req, hold, reply }).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    pub(crate) async fn transaction(&self, work: WriteWork, relaxed: bool) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.jobs.send(Job::Transaction { work, relaxed, reply }).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    pub(crate) async fn raw(&self, work: WriteWork) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.jobs.send(Job::Raw { work, reply }).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    pub(crate) async fn stream_version(&self, stream_id: &str) -> Result<u64, Error> {
        let v: Option<i64> =
            sqlx::query_scalar(plans::STREAM_VERSION).bind(stream_id).fetch_optional(&self.readers).await?;
        Ok(v.unwrap_or(0) as u64)
    }

    pub(crate) async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let rows = sqlx::query(plans::READ_STREAM)
            .bind(stream_id)
            .bind(after_version as i64)
            .bind(limit as i64)
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(recorded_from_row).collect()
    }

    pub(crate) async fn read_streams(&self, stream_ids: &[&str]) -> Result<Vec<RecordedEvent>, Error> {
        let mut out = Vec::new();
        for chunk in stream_ids.chunks(STREAMS_PER_STATEMENT) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(plans::read_streams(chunk.len())));
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.readers).await? {
                out.push(recorded_from_row(&row)?);
            }
        }
        Ok(out)
    }

    pub(crate) async fn read_all(&self, after: Cursor, filter: &Filter, limit: usize) -> Result<Page, Error> {
        let filtered = filter.stream_prefix.is_some() || filter.tenant.is_some();
        let rows = sqlx::query(if filtered { plans::READ_ALL_FILTERED } else { plans::READ_ALL })
            .bind(after.position)
            .bind(filter.stream_prefix.as_deref())
            .bind(filter.tenant)
            .bind(limit as i64)
            .fetch_all(&self.readers)
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        let mut head = None;
        for row in &rows {
            // The filtered statement's last-position row has no event id.
            if filtered && row.try_get::<Option<Uuid>, _>(1)?.is_none() {
                head = row.try_get::<Option<i64>, _>(0)?.map(|position| Cursor { tx: 0, position });
            } else {
                events.push(recorded_from_row(row)?);
            }
        }
        Ok(crate::model::page(events, after, limit, head))
    }

    /// [`Self::read_all`] for subscriptions woken by a commit. The followers of a log
    /// (read models, other components' feeds) wake together after each commit and ask,
    /// mostly, for the same page: the first asks the database, the others get a copy, as
    /// long as no append (or raw job) of this process finished in between (the page read then is
    /// at least as recent as any of them needs). Reads one at a time: a follower waits for
    /// the read in flight rather than starting the same one beside it. Commits of another
    /// process on the same file do not count; subscriptions find those by their poll,
    /// which reads directly.
    pub(crate) async fn read_all_shared(&self, after: Cursor, filter: &Filter, limit: usize) -> Result<Page, Error> {
        let mut shared = self.shared_pages.lock().await;
        let generation = self.generation.load(Ordering::Acquire);
        if shared.generation != generation {
            shared.generation = generation;
            shared.pages.clear();
        }
        if let Some((.., page)) = shared.pages.iter().find(|(c, f, l, _)| *c == after && f == filter && *l == limit) {
            return Ok(page.clone());
        }
        let page = self.read_all(after, filter, limit).await?;
        if shared.pages.len() < SHARED_PAGES {
            shared.pages.push((after, filter.clone(), limit, page.clone()));
        }
        Ok(page)
    }

    pub(crate) async fn head(&self) -> Result<Cursor, Error> {
        let p: Option<i64> = sqlx::query_scalar(plans::HEAD).fetch_one(&self.readers).await?;
        Ok(Cursor { tx: 0, position: p.unwrap_or(0) })
    }

    pub(crate) async fn load_checkpoint(&self, consumer: &str) -> Result<Option<String>, Error> {
        Ok(sqlx::query_scalar(plans::CHECKPOINT).bind(consumer).fetch_optional(&self.readers).await?)
    }

    pub(crate) async fn close(&self) {
        self.readers.close().await;
    }
}

fn closed() -> Error {
    Error::Database(sqlx::Error::PoolClosed)
}

/// The writer's statements that open and close a transaction, per durability. In WAL mode
/// `synchronous` may change between transactions (it is a connection setting): FULL syncs
/// the WAL at every commit, NORMAL only at checkpoints. A relaxed transaction switches to
/// NORMAL with its `BEGIN` and back with its `COMMIT`, in the same round trips; the next
/// durable commit syncs the WAL and with it every relaxed commit before it, so a power loss
/// can take relaxed commits only after the last durable one, and a killed process none.
/// (SQLite refuses to change `synchronous` inside a transaction, so a rollback restores it
/// with a statement of its own.)
#[derive(Clone, Copy)]
struct Durability {
    begin_relaxed: &'static str,
    end_relaxed: &'static str,
    restore: Option<&'static str>,
}

impl Durability {
    const FULL: Durability = Durability {
        begin_relaxed: "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
        end_relaxed: "COMMIT; PRAGMA synchronous = FULL",
        restore: Some("PRAGMA synchronous = FULL"),
    };
    /// The whole store is relaxed (`sqlite_synchronous_normal`): nothing to switch.
    const NORMAL: Durability = Durability { begin_relaxed: "BEGIN IMMEDIATE", end_relaxed: "COMMIT", restore: None };
}

/// How one transaction begins and ends.
#[derive(Clone, Copy)]
struct Statements {
    begin: &'static str,
    commit: &'static str,
    /// Run after a rollback (and after a failed commit or begin).
    restore: Option<&'static str>,
}

impl Statements {
    const DURABLE: Statements = Statements { begin: "BEGIN IMMEDIATE", commit: "COMMIT", restore: None };

    async fn rollback(self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        let rolled = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.map(|_| ());
        if let Some(restore) = self.restore {
            sqlx::raw_sql(restore).execute(&mut *conn).await?;
        }
        rolled
    }
}

async fn run_writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Job>,
    wake: watch::Sender<u64>,
    generation: Arc<AtomicU64>,
    durability: Durability,
) {
    let mut next: Option<Job> = None;
    // Counted after each append's commit and each raw job (migrations, payload rewrites),
    // before anyone is told of it (wake-up, reply). Not after a transaction: followers
    // write their read models and checkpoints in those, between one another's reads of
    // the same page; events written there by hand wake no follower either (the poll,
    // which reads directly, finds them).
    let done = || generation.fetch_add(1, Ordering::AcqRel);
    loop {
        let job = match next.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => break,
            },
        };
        match job {
            Job::Append { req, hold, reply } => {
                let mut group = vec![(req, hold, reply)];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(Job::Append { req, hold, reply }) => group.push((req, hold, reply)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let wrote = append_group(&mut conn, group, &done).await;
                if wrote {
                    wake.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            Job::Raw { work, reply } => {
                let result = work(&mut conn).await;
                done();
                let _ = reply.send(result);
            }
            Job::Transaction { work, relaxed, mut reply } => {
                let statements = if relaxed {
                    Statements {
                        begin: durability.begin_relaxed,
                        commit: durability.end_relaxed,
                        restore: durability.restore,
                    }
                } else {
                    Statements::DURABLE
                };
                // A caller that went away (a consumer killed mid-batch) gets its work rolled
                // back, as it would on PostgreSQL when its connection drops the transaction.
                let result = tokio::select! {
                    r = run_transaction(&mut conn, work, statements) => r,
                    _ = reply.closed() => {
                        let _ = statements.rollback(&mut conn).await;
                        continue;
                    }
                };
                let _ = reply.send(result);
            }
        }
    }
    let _ = conn.close().await;
}

async fn run_transaction(conn: &mut SqliteConnection, work: WriteWork, statements: Statements) -> Result<(), Error> {
    if let Err(e) = sqlx::raw_sql(statements.begin).execute(&mut *conn).await {
        // The switch to NORMAL may have run before BEGIN failed: switch back.
        let _ = statements.rollback(conn).await;
        return Err(e.into());
    }
    match work(conn).await {
        Ok(()) => {
            if let Err(e) = sqlx::raw_sql(statements.commit).execute(&mut *conn).await {
                let _ = statements.rollback(conn).await;
                return Err(e.into());
            }
            Ok(())
        }
        Err(e) => {
            statements.rollback(conn).await?;
            Err(e)
        }
    }
}

type Pending = (PreparedAppend, Option<Duration>, oneshot::Sender<Result<AppendResult, Error>>);

/// Appends a group in one transaction; returns whether anything new was committed.
/// `done` runs after the commit, before the callers hear of it.
async fn append_group(conn: &mut SqliteConnection, group: Vec<Pending>, done: &impl Fn() -> u64) -> bool {
    let single = group.len() == 1;
    if let Err(e) = sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await {
        let msg = e.to_string();
        for (_, _, reply) in group {
            let _ = reply.send(Err(Error::Database(sqlx::Error::Protocol(msg.clone()))));
        }
        return false;
    }
    let now = Utc::now();
    let mut outcomes = Vec::with_capacity(group.len());
    let mut hold = None;
    for (req, h, reply) in group {
        hold = hold.max(h);
        if !single && let Err(e) = sqlx::raw_sql("SAVEPOINT append").execute(&mut *conn).await {
            outcomes.push((Err(e.into()), reply));
            continue;
        }
        let outcome = append_one(conn, &req, now).await;
        if !single {
            let keep = outcome.as_ref().is_ok_and(|r| !r.replayed);
            let undo = if keep { "RELEASE append" } else { "ROLLBACK TO append; RELEASE append" };
            if let Err(e) = sqlx::raw_sql(undo).execute(&mut *conn).await {
                outcomes.push((Err(e.into()), reply));
                continue;
            }
        }
        outcomes.push((outcome, reply));
    }
    if let Some(h) = hold {
        tokio::time::sleep(h).await;
    }
    let wrote = outcomes.iter().any(|(o, _)| o.as_ref().is_ok_and(|r| !r.replayed));
    let end = if wrote { "COMMIT" } else { "ROLLBACK" };
    if let Err(e) = sqlx::raw_sql(end).execute(&mut *conn).await {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        let msg = e.to_string();
        for (_, reply) in outcomes {
            let _ = reply.send(Err(Error::Database(sqlx::Error::Protocol(format!("commit failed: {msg}")))));
        }
        return false;
    }
    done();
    for (outcome, reply) in outcomes {
        let _ = reply.send(outcome);
    }
    wrote
}

/// Appends one call inside the open transaction. The common path reads each stream's
/// version once and inserts the events in multi-row statements; an id already stored
/// surfaces as a unique violation or a version mismatch, and only then are the ids
/// looked up to tell a replay from a clash. A replay returns `replayed: true`; the caller
/// undoes whatever the attempt wrote.
async fn append_one(
    conn: &mut SqliteConnection,
    req: &PreparedAppend,
    now: DateTime<Utc>,
) -> Result<AppendResult, Error> {
    match write_events(conn, req, now).await {
        Ok(r) => Ok(r),
        Err(e) => {
            let worth_a_look = match &e {
                Error::WrongExpectedVersion { .. } => true,
                Error::Database(d) => d.as_database_error().is_some_and(|d| d.is_unique_violation()),
                _ => false,
            };
            if worth_a_look && let Some(outcome) = find_replay(conn, req).await? {
                return outcome;
            }
            Err(e)
        }
    }
}

async fn find_replay(
    conn: &mut SqliteConnection,
    req: &PreparedAppend,
) -> Result<Option<Result<AppendResult, Error>>, Error> {
    let mut stored = Vec::new();
    for e in &req.events {
        let row = sqlx::query(plans::EVENT_BY_ID).bind(e.id).fetch_optional(&mut *conn).await?;
        if let Some(row) = row {
            let hash: Vec<u8> = row.try_get(4)?;
            if hash != e.hash {
                return Ok(Some(Err(Error::IdempotencyClash { event_id: e.id })));
            }
            stored.push(appended_from_row(&row)?);
        }
    }
    if stored.is_empty() {
        return Ok(None);
    }
    if stored.len() != req.events.len() {
        // Part of the call is stored, part not: not the call that was stored.
        return Ok(Some(Err(Error::IdempotencyClash { event_id: stored[0].event_id })));
    }
    Ok(Some(req.result_from(stored, true)))
}

/// Rows per multi-row INSERT; a call is split into chunks of these sizes, and what is left
/// (fewer than ten) goes in one statement, so that only a few statement shapes exist (and
/// stay in the prepared-statement cache).
const CHUNKS: [usize; 2] = [100, 10];
const EVENT_COLUMNS: usize = 11;
/// Streams per statement of an append's version check and update, and of `read_streams`.
const STREAMS_PER_STATEMENT: usize = 500;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO eventlog_events (event_id, stream_id, version, event_type, schema_version, payload, \
         metadata, tenant, content_hash, occurred_at, recorded_at) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..EVENT_COLUMNS {
            if c > 0 {
                sql.push(',');
            }
            // Positional: SQLite looks a named parameter's name up by a linear search, and
            // sqlx does so for each of the 1,100 parameters at every execution.
            crate::consumer::placeholder(&mut sql, r * EVENT_COLUMNS + c + 1, true);
        }
        sql.push(')');
    }
    sql.push_str(" RETURNING event_id, position");
    sql
}

async fn write_events(
    conn: &mut SqliteConnection,
    req: &PreparedAppend,
    now: DateTime<Utc>,
) -> Result<AppendResult, Error> {
    // Every stream's version in one statement, and their new versions in one more: a
    // statement is a hand-off to the connection's thread and back (issue 22).
    // (In chunks, far below SQLite's limit on parameters.)
    let mut found: HashMap<String, i64> = HashMap::with_capacity(req.streams.len());
    for chunk in req.streams.chunks(STREAMS_PER_STATEMENT) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(plans::stream_versions(chunk.len())));
        for s in chunk {
            q = q.bind(s.stream_id.as_str());
        }
        for row in q.fetch_all(&mut *conn).await? {
            found.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    let mut base = Vec::with_capacity(req.streams.len());
    for s in &req.streams {
        let actual = found.get(&s.stream_id).copied().unwrap_or(0) as u64;
        let ok = match s.expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(n) => actual == n,
        };
        if !ok {
            return Err(Error::WrongExpectedVersion { stream_id: s.stream_id.clone(), expected: s.expected, actual });
        }
        base.push(actual);
    }
    for (streams, bases) in req.streams.chunks(STREAMS_PER_STATEMENT).zip(base.chunks(STREAMS_PER_STATEMENT)) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(plans::set_stream_versions(streams.len())));
        for (s, actual) in streams.iter().zip(bases) {
            q = q.bind(s.stream_id.as_str()).bind((actual + s.count as u64) as i64);
        }
        q.execute(&mut *conn).await?;
    }

    let recorded = now.timestamp_micros();
    let mut landed = Vec::with_capacity(req.events.len());
    let mut rest = &req.events[..];
    while !rest.is_empty() {
        // A call of fewer than ten events is one statement of its own size.
        let size = CHUNKS.into_iter().find(|&c| c <= rest.len()).unwrap_or(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let sql = insert_sql(size);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            let stream = &req.streams[e.stream_index];
            q = q
                .bind(e.id)
                .bind(stream.stream_id.as_str())
                .bind((base[e.stream_index] + e.offset as u64) as i64)
                .bind(e.event_type.as_str())
                .bind(e.schema_version)
                .bind(e.payload.get())
                .bind(e.metadata.as_str())
                .bind(e.tenant)
                .bind(e.hash.as_slice())
                .bind(e.occurred_at.timestamp_micros())
                .bind(recorded);
        }
        let rows = q.fetch_all(&mut *conn).await?;
        for row in rows {
            let id: Uuid = row.try_get(0)?;
            let position: i64 = row.try_get(1)?;
            let e = chunk.iter().find(|e| e.id == id).ok_or_else(|| Error::Corrupt(format!("unknown id {id}")))?;
            landed.push(Appended {
                event_id: id,
                stream_id: req.streams[e.stream_index].stream_id.clone(),
                version: base[e.stream_index] + e.offset as u64,
                position,
                cursor: Cursor { tx: 0, position },
            });
        }
    }
    req.result_from(landed, false)
}

fn appended_from_row(row: &SqliteRow) -> Result<Appended, Error> {
    let position: i64 = row.try_get(3)?;
    let version: i64 = row.try_get(2)?;
    Ok(Appended {
        event_id: row.try_get::<Uuid, _>(0)?,
        stream_id: row.try_get(1)?,
        version: version as u64,
        position,
        cursor: Cursor { tx: 0, position },
    })
}

fn micros(v: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| Error::Corrupt(format!("timestamp {v}")))
}

fn recorded_from_row(row: &SqliteRow) -> Result<RecordedEvent, Error> {
    let position: i64 = row.try_get(0)?;
    let version: i64 = row.try_get(3)?;
    let payload: String = row.try_get(6)?;
    let metadata: &str = row.try_get(7)?;
    Ok(RecordedEvent {
        position,
        cursor: Cursor { tx: 0, position },
        id: row.try_get::<Uuid, _>(1)?,
        stream_id: row.try_get(2)?,
        version: version as u64,
        event_type: row.try_get(4)?,
        schema_version: row.try_get(5)?,
        payload: RawValue::from_string(payload).map_err(Error::Payload)?,
        metadata: serde_json::from_str(metadata).map_err(Error::Payload)?,
        occurred_at: micros(row.try_get(8)?)?,
        recorded_at: micros(row.try_get(9)?)?,
    })
}
