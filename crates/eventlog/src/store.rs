//! `EventStore`: the one API over both backends, chosen by the database URL.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tracing::Instrument;

use crate::append::PreparedAppend;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::subscription::Subscription;
use crate::{AppendResult, Arg, Cursor, Error, Filter, Page, RecordedEvent, StreamAppend, Tx};

/// A row type both backends decode: a `#[derive(sqlx::FromRow)]` struct or a tuple.
///
/// Select types that decode alike on both: `TEXT` as `String`, `BIGINT` as `i64` (cast an
/// `INTEGER`, 32 bits on PostgreSQL, `AS BIGINT`), nullable columns as `Option`, timestamps
/// as `chrono::DateTime<Utc>`, ids kept as text with `#[sqlx(try_from = "String")]`.
pub trait PortableRow:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin
{
}

impl<T> PortableRow for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

/// Tuning that the URL does not carry.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool (PostgreSQL); relaxed writes have a pool of a quarter as
    /// many (at least 2) besides, opened as they are needed.
    pub max_connections: u32,
    /// SQLite only: connections in the reader pool. Each is a thread of its own (sqlx runs
    /// every SQLite connection on one), with a page cache of its own; WAL readers run in
    /// parallel, but not faster than the cores. Default: twice the cores, 2 to 16. (With 16
    /// per store the all-in-one ran 80 reader threads on 2 cores: the same throughput as
    /// with 3 per store, a p99 25 % higher and 20 MB more memory; BENCHMARKS.md.)
    pub sqlite_readers: u32,
    /// SQLite only: `synchronous=NORMAL` instead of `FULL`. In WAL mode NORMAL keeps the
    /// database consistent but may lose the last commits on power loss, so an append
    /// could be acknowledged and then lost: off by default.
    pub sqlite_synchronous_normal: bool,
    /// PostgreSQL only: the schema to create (if missing) and use; also `?schema=` in the URL.
    pub pg_schema: Option<String>,
    /// How often a caught-up subscription looks for new events when no wake-up arrives.
    pub poll_interval: Duration,
    /// Events per page a subscription reads.
    pub subscription_page: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            sqlite_readers: std::thread::available_parallelism()
                .map_or(2, |n| u32::try_from(n.get()).unwrap_or(8))
                .saturating_mul(2)
                .clamp(2, 16),
            sqlite_synchronous_normal: false,
            pg_schema: None,
            poll_interval: Duration::from_millis(500),
            subscription_page: 1000,
        }
    }
}

/// Leadership of one consumer (see [`EventStore::lead`]); released when dropped.
pub struct Leadership {
    _conn: Option<sqlx::PgConnection>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Leadership")
    }
}

/// Which database holds the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in WAL mode.
    Sqlite,
    /// A PostgreSQL database (or schema).
    Postgres,
}

#[derive(Clone)]
enum Inner {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// An append-only event store. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct EventStore {
    /// Behind one `Arc`: a store is cloned into every request's handler, and a clone is
    /// one reference count rather than a pool, two channels and a path (issue 22).
    inner: std::sync::Arc<Inner>,
    options: std::sync::Arc<StoreOptions>,
}

impl EventStore {
    /// Opens (and migrates) the store at `url`: `sqlite://path/file.db` or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Opens (and migrates) the store at `url` with options.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self, Error> {
        let inner = match backend_of(url)? {
            Backend::Sqlite => Inner::Sqlite(SqliteStore::connect(url, &options).await?),
            Backend::Postgres => Inner::Postgres(PgStore::connect(url, &options).await?),
        };
        Ok(EventStore { inner: std::sync::Arc::new(inner), options: std::sync::Arc::new(options) })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match *self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Appends to one or several streams atomically: either every event is stored, or
    /// nothing is and the error says why.
    pub async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendResult, Error> {
        let events: usize = appends.iter().map(|a| a.events.len()).sum();
        let span = tracing::info_span!(
            "eventlog.append",
            db.system = self.db_system(),
            streams = appends.len(),
            events,
            otel.kind = "client"
        );
        let started = std::time::Instant::now();
        let result = async {
            let req = PreparedAppend::new(appends)?;
            match &*self.inner {
                Inner::Sqlite(s) => s.append(req, None).await,
                Inner::Postgres(p) => p.append(req, None).await,
            }
        }
        .instrument(span)
        .await;
        crate::metrics::append_done(self.db_system(), started.elapsed(), result.is_ok());
        result
    }

    fn db_system(&self) -> &'static str {
        match *self.inner {
            Inner::Sqlite(_) => "sqlite",
            Inner::Postgres(_) => "postgresql",
        }
    }

    /// Waits until this process leads the consumer `name`: on PostgreSQL, where several
    /// processes share the log, by taking a session advisory lock (named within the schema)
    /// on a connection of its own, trying again every `retry` while another process holds
    /// it; on SQLite (one process per file) at once. Leadership lasts as long as the
    /// returned guard: dropping it (or the process dying) hands it on.
    pub async fn lead(&self, name: &str, retry: Duration) -> Result<Leadership, Error> {
        match &*self.inner {
            Inner::Sqlite(_) => Ok(Leadership { _conn: None }),
            Inner::Postgres(p) => loop {
                if let Some(conn) = p.try_lead(name).await? {
                    tracing::debug!(consumer = name, "leading");
                    return Ok(Leadership { _conn: Some(conn) });
                }
                tokio::time::sleep(retry).await;
            },
        }
    }

    /// Appends to one stream.
    pub async fn append_to(&self, append: StreamAppend) -> Result<AppendResult, Error> {
        self.append(vec![append]).await
    }

    /// Like [`EventStore::append`], but keeps the transaction open for `hold` before it
    /// commits. Only for tests that make commits land out of order.
    #[doc(hidden)]
    pub async fn append_holding_open(&self, appends: Vec<StreamAppend>, hold: Duration) -> Result<AppendResult, Error> {
        let req = PreparedAppend::new(appends)?;
        match &*self.inner {
            Inner::Sqlite(s) => s.append(req, Some(hold)).await,
            Inner::Postgres(p) => p.append(req, Some(hold)).await,
        }
    }

    /// A stream's version: the number of events it holds (0 when it does not exist).
    pub async fn stream_version(&self, stream_id: &str) -> Result<u64, Error> {
        match &*self.inner {
            Inner::Sqlite(s) => s.stream_version(stream_id).await,
            Inner::Postgres(p) => p.stream_version(stream_id).await,
        }
    }

    /// Up to `limit` events of one stream with a version above `after_version`, in order.
    pub async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        match &*self.inner {
            Inner::Sqlite(s) => s.read_stream(stream_id, after_version, limit).await,
            Inner::Postgres(p) => p.read_stream(stream_id, after_version, limit).await,
        }
    }

    /// Every event of one stream, in order.
    pub async fn read_whole_stream(&self, stream_id: &str) -> Result<Vec<RecordedEvent>, Error> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map_or(0, |e: &RecordedEvent| e.version);
            let page = self.read_stream(stream_id, after, 1000).await?;
            let done = page.len() < 1000;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Every event of several streams, in one statement (one snapshot of them): for a
    /// command that reads a few short streams. Streams with no events are absent.
    pub async fn read_streams(&self, stream_ids: &[&str]) -> Result<BTreeMap<String, Vec<RecordedEvent>>, Error> {
        let mut out: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
        if stream_ids.is_empty() {
            return Ok(out);
        }
        let mut ids = stream_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let events = match &*self.inner {
            Inner::Sqlite(s) => s.read_streams(&ids).await?,
            Inner::Postgres(p) => p.read_streams(&ids).await?,
        };
        // In stream and version order already (within a statement; a stream is in one).
        for e in events {
            match out.get_mut(&e.stream_id) {
                Some(v) => v.push(e),
                None => {
                    out.insert(e.stream_id.clone(), vec![e]);
                }
            }
        }
        Ok(out)
    }

    /// A page of the log (or of the events the filter keeps) after `after`, in log order.
    /// Never returns an event that a concurrent, still uncommitted writer could precede.
    pub async fn read_all(&self, after: Cursor, filter: &Filter, limit: usize) -> Result<Page, Error> {
        match &*self.inner {
            Inner::Sqlite(s) => s.read_all(after, filter, limit).await,
            Inner::Postgres(p) => p.read_all(after, filter, limit).await,
        }
    }

    /// [`Self::read_all`] for a subscription woken by a commit of this process: on SQLite,
    /// followers woken together share one read of the same page.
    pub(crate) async fn read_all_after_wake(
        &self,
        after: Cursor,
        filter: &Filter,
        limit: usize,
    ) -> Result<Page, Error> {
        match &*self.inner {
            Inner::Sqlite(s) => s.read_all_shared(after, filter, limit).await,
            Inner::Postgres(p) => p.read_all(after, filter, limit).await,
        }
    }

    /// The cursor of the last event that readers can see now.
    pub async fn head(&self) -> Result<Cursor, Error> {
        match &*self.inner {
            Inner::Sqlite(s) => s.head().await,
            Inner::Postgres(p) => p.head().await,
        }
    }

    /// The cursor of the last event committed so far, whether readers can see it yet or
    /// not. A consumer whose checkpoint has reached it has applied everything committed
    /// before this call (on PostgreSQL, [`EventStore::head`] may be behind it while an
    /// older transaction anywhere in the cluster is still open).
    pub async fn last_committed(&self) -> Result<Cursor, Error> {
        match &*self.inner {
            Inner::Sqlite(s) => s.head().await,
            Inner::Postgres(p) => p.last_committed().await,
        }
    }

    /// Waits until readers can see the event at `cursor` (an append's result), so that a
    /// caller can read its own write through `read_all` or a projection. On PostgreSQL an
    /// event is readable once every transaction older than its own has finished. Returns
    /// false if that did not happen within `timeout`.
    pub async fn wait_until_readable(&self, cursor: Cursor, timeout: Duration) -> Result<bool, Error> {
        let Inner::Postgres(p) = &*self.inner else { return Ok(true) };
        poll_until(timeout, || p.is_readable(cursor)).await
    }

    /// Waits until every transaction in progress when it is called has ended (committed or
    /// rolled back) and what they wrote is readable. Afterwards every event recorded at or
    /// before the moment of the call is readable: an event's `recorded_at` is taken inside
    /// the transaction that writes it (SQLite's writer after `BEGIN IMMEDIATE`, PostgreSQL's
    /// `clock_timestamp()` at the insert). On SQLite: an empty write transaction, which
    /// waits for the writers before it (in this process and others); on PostgreSQL: until
    /// the oldest transaction still running is younger than every one running at the call.
    /// Returns false if that did not happen within `timeout`.
    pub async fn settle(&self, timeout: Duration) -> Result<bool, Error> {
        match &*self.inner {
            Inner::Sqlite(_) => {
                let barrier = self.transaction_relaxed(|_| Box::pin(async { Ok(()) }));
                Ok(tokio::time::timeout(timeout, barrier).await.map(|r| r.is_ok()).unwrap_or(false))
            }
            Inner::Postgres(p) => {
                let xmax = p.running_bound().await?;
                poll_until(timeout, || p.all_ended_below(xmax)).await
            }
        }
    }

    /// Follows the log from `after`: first what is stored, then new events as they commit.
    pub fn subscribe(&self, after: Cursor, filter: Filter) -> Subscription {
        Subscription::start(self.clone(), after, filter)
    }

    /// Runs `work` in one transaction on the store's database and commits it durably, or
    /// rolls it back if `work` fails. Checkpoints of followers that act on what they read
    /// are written this way.
    pub async fn transaction<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx<'_>) -> BoxFuture<'t, Result<T, Error>> + Send + 'static,
    {
        self.transaction_with(false, work).await
    }

    /// Like [`Self::transaction`], but its commit does not wait for the disk: SQLite
    /// commits it with `synchronous=NORMAL` (no sync of the WAL), PostgreSQL with
    /// `synchronous_commit = off`. It is visible to every reader at once and survives a
    /// killed process; only a crash of the machine (power loss) may take it, together with
    /// every commit after it and never one before: the next durable commit makes it durable
    /// too. For what can be derived again, such as read models with their checkpoint
    /// (projections are written this way) or records a retry can rebuild; never for the log.
    pub async fn transaction_relaxed<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx<'_>) -> BoxFuture<'t, Result<T, Error>> + Send + 'static,
    {
        self.transaction_with(true, work).await
    }

    /// One statement (SQL both backends accept) committed as [`Self::transaction_relaxed`]
    /// commits; returns the rows it affected. On PostgreSQL it runs by itself on a
    /// connection whose session does not wait for the disk: one round trip, not three.
    pub async fn execute_relaxed(&self, sql: &'static str, args: Vec<Arg>) -> Result<u64, Error> {
        match &*self.inner {
            Inner::Sqlite(_) => {
                self.transaction_relaxed(move |tx| Box::pin(async move { tx.execute(sql, &args).await })).await
            }
            Inner::Postgres(p) => {
                Ok(crate::consumer::bind_args(sqlx::query(sql), &args).execute(&p.relaxed).await?.rows_affected())
            }
        }
    }

    async fn transaction_with<T, F>(&self, relaxed: bool, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx<'_>) -> BoxFuture<'t, Result<T, Error>> + Send + 'static,
    {
        match &*self.inner {
            Inner::Sqlite(s) => {
                let (send, recv) = tokio::sync::oneshot::channel();
                s.transaction(
                    Box::new(move |conn| {
                        Box::pin(async move {
                            let mut tx = Tx::Sqlite(conn);
                            let value = work(&mut tx).await?;
                            let _ = send.send(value);
                            Ok(())
                        })
                    }),
                    relaxed,
                )
                .await?;
                recv.await.map_err(|_| Error::Corrupt("transaction produced no value".into()))
            }
            Inner::Postgres(p) => {
                let mut txn = if relaxed { p.relaxed.begin().await? } else { p.pool.begin().await? };
                let value = {
                    let mut tx = Tx::Postgres(&mut txn);
                    work(&mut tx).await?
                };
                txn.commit().await?;
                Ok(value)
            }
        }
    }

    /// Applies a service's own migrations (read models) in the store's database, tracked
    /// in `table` so they never mix with the log's or another component's.
    pub async fn migrate(
        &self,
        table: &'static str,
        sqlite: sqlx::migrate::Migrator,
        postgres: sqlx::migrate::Migrator,
    ) -> Result<(), Error> {
        match &*self.inner {
            Inner::Sqlite(s) => {
                let mut m = sqlite;
                m.dangerous_set_table_name(table);
                let lock = crate::sqlite::lock_file(s.migration_lock.clone()).await?;
                let r = s
                    .raw(Box::new(move |conn| Box::pin(async move { Ok(m.run_direct(None, conn, false).await?) })))
                    .await;
                drop(lock);
                r
            }
            Inner::Postgres(p) => {
                let mut m = postgres;
                m.dangerous_set_table_name(table);
                crate::postgres::migrate_if_behind(&p.pool, &m).await
            }
        }
    }

    /// Leaves no old copy of deleted or rewritten content in the database's files: SQLite
    /// `VACUUM` (the file written afresh) and a truncating WAL checkpoint; PostgreSQL
    /// `VACUUM FULL` of every table of the store's schema (each table's files written
    /// afresh; the server's WAL archive and backups keep old rows until they expire). It
    /// takes the tables for itself while it runs: for operators' migrations with the
    /// services stopped (`samskab migrate`).
    pub async fn compact(&self) -> Result<(), Error> {
        match &*self.inner {
            Inner::Sqlite(s) => {
                s.raw(Box::new(|conn| {
                    Box::pin(async move {
                        sqlx::query("VACUUM").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await?;
                        Ok(())
                    })
                }))
                .await
            }
            Inner::Postgres(p) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename",
                )
                .fetch_all(&p.pool)
                .await?;
                let mut conn = p.pool.acquire().await?;
                for t in tables {
                    let t = t.replace('"', "\"\"");
                    sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM FULL \"{t}\""))).execute(&mut *conn).await?;
                }
                Ok(())
            }
        }
    }

    /// PostgreSQL: gives `role` what a component needs in this store's schema and nothing
    /// more: `USAGE` on the schema (not `CREATE`), reading and appending to the log but
    /// never changing or deleting an event, reading the migration records and the record of
    /// payload rewrites (only the owner rewrites: `EventStore::rewrite_payloads`), and reading and
    /// writing every other table (read models, checkpoints, keys). Run by the schema's
    /// owner after migrating (`samskab migrate --grant-roles`); tables a later migration
    /// adds are granted by the next run. SQLite has no roles: an error.
    pub async fn grant_component_role(&self, role: &str) -> Result<(), Error> {
        let Inner::Postgres(p) = &*self.inner else {
            return Err(Error::UnsupportedUrl("database roles need PostgreSQL".into()));
        };
        if !role.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') || role.is_empty() {
            return Err(Error::UnsupportedUrl(format!("role name {role:?}")));
        }
        let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&p.pool).await?;
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY tablename")
                .bind(&schema)
                .fetch_all(&p.pool)
                .await?;
        let mut tx = p.pool.begin().await?;
        {
            let mut run = async |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await.map(|_| ());
            run(format!("REVOKE ALL ON SCHEMA \"{schema}\" FROM PUBLIC")).await?;
            run(format!("REVOKE ALL ON SCHEMA \"{schema}\" FROM {role}")).await?;
            run(format!("GRANT USAGE ON SCHEMA \"{schema}\" TO {role}")).await?;
            for t in &tables {
                let rights = if t == "eventlog_events" {
                    "SELECT, INSERT"
                } else if t == "eventlog_rewrites" || t.ends_with("_migrations") {
                    "SELECT"
                } else {
                    "SELECT, INSERT, UPDATE, DELETE"
                };
                run(format!("REVOKE ALL ON \"{schema}\".\"{t}\" FROM {role}")).await?;
                run(format!("GRANT {rights} ON \"{schema}\".\"{t}\" TO {role}")).await?;
            }
            run(format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA \"{schema}\" TO {role}")).await?;
            run(format!("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA \"{schema}\" TO {role}")).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs a read query written in SQL both backends accept and returns its rows as `T`
    /// (a `#[derive(sqlx::FromRow)]` struct or a tuple; see [`PortableRow`]).
    pub async fn fetch_rows<T: PortableRow>(&self, sql: &'static str, args: &[Arg]) -> Result<Vec<T>, Error> {
        Ok(match &*self.inner {
            Inner::Sqlite(s) => crate::consumer::bind_args(sqlx::query_as(sql), args).fetch_all(&s.readers).await?,
            Inner::Postgres(p) => crate::consumer::bind_args(sqlx::query_as(sql), args).fetch_all(&p.pool).await?,
        })
    }

    /// Like [`EventStore::fetch_rows`], for a query of at most one row (the first, if more).
    pub async fn fetch_optional_row<T: PortableRow>(
        &self,
        sql: &'static str,
        args: &[Arg],
    ) -> Result<Option<T>, Error> {
        Ok(match &*self.inner {
            Inner::Sqlite(s) => {
                crate::consumer::bind_args(sqlx::query_as(sql), args).fetch_optional(&s.readers).await?
            }
            Inner::Postgres(p) => crate::consumer::bind_args(sqlx::query_as(sql), args).fetch_optional(&p.pool).await?,
        })
    }

    /// Runs a read query written in SQL both backends accept and returns its first column
    /// as text, row by row (read models keep a JSON document per row). A query of several
    /// columns reads them typed with [`EventStore::fetch_rows`] instead of joining them.
    pub async fn fetch_texts(&self, sql: &'static str, args: &[Arg]) -> Result<Vec<String>, Error> {
        Ok(match &*self.inner {
            Inner::Sqlite(s) => crate::consumer::bind_args(sqlx::query_scalar(sql), args).fetch_all(&s.readers).await?,
            Inner::Postgres(p) => crate::consumer::bind_args(sqlx::query_scalar(sql), args).fetch_all(&p.pool).await?,
        })
    }

    /// Runs a read query (portable SQL) that returns at most one integer.
    pub async fn fetch_i64(&self, sql: &'static str, args: &[Arg]) -> Result<Option<i64>, Error> {
        Ok(match &*self.inner {
            Inner::Sqlite(s) => {
                crate::consumer::bind_args(sqlx::query_scalar(sql), args).fetch_optional(&s.readers).await?
            }
            Inner::Postgres(p) => {
                crate::consumer::bind_args(sqlx::query_scalar(sql), args).fetch_optional(&p.pool).await?
            }
        })
    }

    /// The cursor a consumer stored last, if any.
    pub async fn load_checkpoint(&self, consumer: &str) -> Result<Option<String>, Error> {
        match &*self.inner {
            Inner::Sqlite(s) => s.load_checkpoint(consumer).await,
            Inner::Postgres(p) => p.load_checkpoint(consumer).await,
        }
    }

    /// The SQLite reader pool, for read models kept in the same file.
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &*self.inner {
            Inner::Sqlite(s) => Some(&s.readers),
            Inner::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, for read models kept in the same database.
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &*self.inner {
            Inner::Sqlite(_) => None,
            Inner::Postgres(p) => Some(&p.pool),
        }
    }

    /// Closes the connections.
    pub async fn close(&self) {
        match &*self.inner {
            Inner::Sqlite(s) => s.close().await,
            Inner::Postgres(p) => p.close().await,
        }
    }

    pub(crate) fn wake_receiver(&self) -> watch::Receiver<u64> {
        match &*self.inner {
            Inner::Sqlite(s) => s.wake.subscribe(),
            Inner::Postgres(p) => p.wake.subscribe(),
        }
    }

    pub(crate) fn options(&self) -> &StoreOptions {
        &self.options
    }
}

/// Which backend a URL names.
pub fn backend_of(url: &str) -> Result<Backend, Error> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(Error::UnsupportedUrl(url.split('@').next_back().unwrap_or_default().to_owned()))
    }
}

/// Asks `check` until it answers true (then true) or `timeout` has passed (then false),
/// with pauses doubling from 1 ms to 50 ms.
async fn poll_until<F, Fut>(timeout: Duration, check: F) -> Result<bool, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool, Error>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if check().await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() + pause > deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
