//! Checkpointed consumers: a projection's read-model writes and its checkpoint commit in
//! one transaction, so each event takes effect exactly once per consumer, across restarts.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use sqlx::{PgConnection, SqliteConnection};

use crate::{Cursor, Error, EventStore, Filter, RecordedEvent};

/// An open transaction on the store's database (whichever backend it is).
pub enum Tx<'c> {
    /// On SQLite: the write connection, inside `BEGIN IMMEDIATE`.
    Sqlite(&'c mut SqliteConnection),
    /// On PostgreSQL: a pooled connection inside `BEGIN`.
    Postgres(&'c mut PgConnection),
}

/// A value bound to a statement that both backends run unchanged (`$1`, `$2`, ... work on both).
#[derive(Debug, Clone)]
pub enum Arg {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_owned())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl From<uuid::Uuid> for Arg {
    fn from(v: uuid::Uuid) -> Self {
        Arg::Text(v.to_string())
    }
}

impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Null => q.bind(None::<i64>),
                Arg::Int(v) => q.bind(*v),
                Arg::Float(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Bytes(v) => q.bind(v.clone()),
                Arg::Bool(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// Binds portable arguments to a query of either backend.
pub(crate) fn bind_args<'q, Q: BindArgs<'q>>(q: Q, args: &'q [Arg]) -> Q {
    q.bind_all(args)
}

/// Queries that `bind_args` can fill.
pub(crate) trait BindArgs<'q>: Sized {
    fn bind_all(self, args: &'q [Arg]) -> Self;
}

macro_rules! impl_bind_args {
    ($db:ty, $args:ty) => {
        impl<'q> BindArgs<'q> for sqlx::query::Query<'q, $db, $args> {
            fn bind_all(self, args: &'q [Arg]) -> Self {
                bind_all!(self, args)
            }
        }

        impl<'q, O> BindArgs<'q> for sqlx::query::QueryScalar<'q, $db, O, $args> {
            fn bind_all(self, args: &'q [Arg]) -> Self {
                bind_all!(self, args)
            }
        }

        impl<'q, O> BindArgs<'q> for sqlx::query::QueryAs<'q, $db, O, $args> {
            fn bind_all(self, args: &'q [Arg]) -> Self {
                bind_all!(self, args)
            }
        }
    };
}

impl_bind_args!(sqlx::Sqlite, sqlx::sqlite::SqliteArguments);
impl_bind_args!(sqlx::Postgres, sqlx::postgres::PgArguments);

impl Tx<'_> {
    /// Runs a statement written in the SQL both backends accept; returns rows affected.
    pub async fn execute(&mut self, sql: &'static str, args: &[Arg]) -> Result<u64, Error> {
        Ok(match self {
            Tx::Sqlite(c) => bind_all!(sqlx::query(sql), args).execute(&mut **c).await?.rows_affected(),
            Tx::Postgres(c) => bind_all!(sqlx::query(sql), args).execute(&mut **c).await?.rows_affected(),
        })
    }

    /// Runs a query that returns at most one integer.
    pub async fn fetch_i64(&mut self, sql: &'static str, args: &[Arg]) -> Result<Option<i64>, Error> {
        Ok(match self {
            Tx::Sqlite(c) => bind_all!(sqlx::query_scalar(sql), args).fetch_optional(&mut **c).await?,
            Tx::Postgres(c) => bind_all!(sqlx::query_scalar(sql), args).fetch_optional(&mut **c).await?,
        })
    }

    /// Runs a query that returns integers, one per row.
    pub async fn fetch_i64s(&mut self, sql: &'static str, args: &[Arg]) -> Result<Vec<i64>, Error> {
        Ok(match self {
            Tx::Sqlite(c) => bind_all!(sqlx::query_scalar(sql), args).fetch_all(&mut **c).await?,
            Tx::Postgres(c) => bind_all!(sqlx::query_scalar(sql), args).fetch_all(&mut **c).await?,
        })
    }

    /// Runs a query that returns at most one text value.
    pub async fn fetch_text(&mut self, sql: &'static str, args: &[Arg]) -> Result<Option<String>, Error> {
        Ok(match self {
            Tx::Sqlite(c) => bind_all!(sqlx::query_scalar(sql), args).fetch_optional(&mut **c).await?,
            Tx::Postgres(c) => bind_all!(sqlx::query_scalar(sql), args).fetch_optional(&mut **c).await?,
        })
    }

    /// Whether statements built here around `head` and `tail` number their parameters by
    /// position (`?`) rather than by name (`$n`): on SQLite, when the static parts name no
    /// parameter themselves. SQLite finds a named parameter's name by a linear search of
    /// the statement's names, and sqlx asks it for every parameter at every execution, so
    /// a statement of 1,000 `$n` spent most of its time there (23 % of a rebuild's CPU);
    /// positional parameters have no name to look up.
    fn positional(&self, head: &str, tail: &str) -> bool {
        matches!(self, Tx::Sqlite(_)) && !head.contains('$') && !tail.contains('$')
    }

    /// Runs SQL built here from static parts and numbered placeholders only (no values).
    async fn execute_built(&mut self, sql: String, args: &[Arg]) -> Result<u64, Error> {
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(match self {
            Tx::Sqlite(c) => bind_all!(sqlx::query(sql), args).execute(&mut **c).await?.rows_affected(),
            Tx::Postgres(c) => bind_all!(sqlx::query(sql), args).execute(&mut **c).await?.rows_affected(),
        })
    }

    /// Runs `head VALUES (..), (..) tail` for every row, as few statements as the
    /// backends' parameter limits allow (rows of equal width). Returns rows affected.
    pub async fn insert_rows(
        &mut self,
        head: &'static str,
        rows: &[Vec<Arg>],
        tail: &'static str,
    ) -> Result<u64, Error> {
        let Some(width) = rows.first().map(Vec::len) else { return Ok(0) };
        let positional = self.positional(head, tail);
        let mut affected = 0;
        for chunk in rows.chunks((MAX_PARAMS / width.max(1)).max(1)) {
            let mut sql = String::with_capacity(head.len() + tail.len() + chunk.len() * width * 5);
            sql.push_str(head);
            sql.push_str(" VALUES ");
            let mut n = 0;
            for (i, row) in chunk.iter().enumerate() {
                debug_assert_eq!(row.len(), width, "rows of equal width");
                sql.push_str(if i == 0 { "(" } else { ", (" });
                for j in 0..row.len() {
                    n += 1;
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    placeholder(&mut sql, n, positional);
                }
                sql.push(')');
            }
            sql.push(' ');
            sql.push_str(tail);
            let args: Vec<Arg> = chunk.iter().flatten().cloned().collect();
            affected += self.execute_built(sql, &args).await?;
        }
        Ok(affected)
    }

    /// `head (v1, v2, ...) tail` over `values` in chunks (e.g. `DELETE ... WHERE id IN`).
    pub async fn execute_in(&mut self, head: &'static str, values: &[Arg], tail: &'static str) -> Result<u64, Error> {
        let mut affected = 0;
        let positional = self.positional(head, tail);
        for chunk in values.chunks(MAX_PARAMS) {
            affected += self.execute_built(in_list(head, chunk.len(), tail, positional), chunk).await?;
        }
        Ok(affected)
    }

    /// Pairs of text values of `head (v1, v2, ...) tail` over `values` in chunks (e.g.
    /// `SELECT id, doc FROM t WHERE id IN`).
    pub async fn fetch_pairs_in(
        &mut self,
        head: &'static str,
        values: &[Arg],
        tail: &'static str,
    ) -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        let positional = self.positional(head, tail);
        for chunk in values.chunks(MAX_PARAMS) {
            let sql = sqlx::AssertSqlSafe(in_list(head, chunk.len(), tail, positional));
            let rows: Vec<(String, String)> = match self {
                Tx::Sqlite(c) => bind_all!(sqlx::query_as(sql), chunk).fetch_all(&mut **c).await?,
                Tx::Postgres(c) => bind_all!(sqlx::query_as(sql), chunk).fetch_all(&mut **c).await?,
            };
            out.extend(rows);
        }
        Ok(out)
    }

    /// Stores a consumer's checkpoint as part of this transaction.
    pub async fn save_checkpoint(&mut self, consumer: &str, cursor: &str) -> Result<(), Error> {
        let now = chrono::Utc::now();
        match self {
            Tx::Sqlite(c) => {
                sqlx::query(
                    "INSERT INTO eventlog_checkpoints (consumer, cursor, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (consumer) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                )
                .bind(consumer)
                .bind(cursor)
                .bind(now.timestamp_micros())
                .execute(&mut **c)
                .await?;
            }
            Tx::Postgres(c) => {
                sqlx::query(
                    "INSERT INTO eventlog_checkpoints (consumer, cursor, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (consumer) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                )
                .bind(consumer)
                .bind(cursor)
                .bind(now)
                .execute(&mut **c)
                .await?;
            }
        }
        Ok(())
    }

    /// Moves a consumer's checkpoint from `expected` (`None`: no checkpoint yet) to `new`,
    /// inside this transaction; false, and nothing changed, when it is not at `expected`.
    /// Concurrent callers with the same expectation: one wins, the others get false.
    pub async fn compare_and_set_checkpoint(
        &mut self,
        consumer: &str,
        expected: Option<&str>,
        new: &str,
    ) -> Result<bool, Error> {
        let now = chrono::Utc::now();
        let rows = match (self, expected) {
            (Tx::Sqlite(c), None) => sqlx::query(
                "INSERT INTO eventlog_checkpoints (consumer, cursor, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (consumer) DO NOTHING",
            )
            .bind(consumer)
            .bind(new)
            .bind(now.timestamp_micros())
            .execute(&mut **c)
            .await?
            .rows_affected(),
            (Tx::Sqlite(c), Some(old)) => sqlx::query(
                "UPDATE eventlog_checkpoints SET cursor = $2, updated_at = $3 WHERE consumer = $1 AND cursor = $4",
            )
            .bind(consumer)
            .bind(new)
            .bind(now.timestamp_micros())
            .bind(old)
            .execute(&mut **c)
            .await?
            .rows_affected(),
            (Tx::Postgres(c), None) => sqlx::query(
                "INSERT INTO eventlog_checkpoints (consumer, cursor, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (consumer) DO NOTHING",
            )
            .bind(consumer)
            .bind(new)
            .bind(now)
            .execute(&mut **c)
            .await?
            .rows_affected(),
            (Tx::Postgres(c), Some(old)) => sqlx::query(
                "UPDATE eventlog_checkpoints SET cursor = $2, updated_at = $3 WHERE consumer = $1 AND cursor = $4",
            )
            .bind(consumer)
            .bind(new)
            .bind(now)
            .bind(old)
            .execute(&mut **c)
            .await?
            .rows_affected(),
        };
        Ok(rows == 1)
    }

    /// The secondary indexes of `table` as (name, the statement that creates it), read
    /// from the database's own catalog: every index except the ones that back a primary
    /// key or a unique constraint (SQLite's automatic indexes, PostgreSQL's constraint
    /// indexes), which a rebuild keeps.
    pub async fn secondary_indexes(&mut self, table: &str) -> Result<Vec<(String, String)>, Error> {
        let table = Arg::Text(table.to_owned());
        Ok(match self {
            Tx::Sqlite(c) => {
                bind_all!(
                    sqlx::query_as(
                        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 \
                         AND sql IS NOT NULL ORDER BY name"
                    ),
                    std::slice::from_ref(&table)
                )
                .fetch_all(&mut **c)
                .await?
            }
            Tx::Postgres(c) => {
                bind_all!(
                    sqlx::query_as(
                        "SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index x \
                         JOIN pg_class i ON i.oid = x.indexrelid \
                         WHERE x.indrelid = $1::regclass \
                         AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid) \
                         ORDER BY i.relname"
                    ),
                    std::slice::from_ref(&table)
                )
                .fetch_all(&mut **c)
                .await?
            }
        })
    }

    /// Drops the secondary indexes of `tables` (see [`Self::secondary_indexes`]) and
    /// returns the statements that create them again, for [`Self::create_indexes`].
    pub async fn drop_secondary_indexes(&mut self, tables: &[&str]) -> Result<Vec<String>, Error> {
        let mut creates = Vec::new();
        for table in tables {
            for (name, create) in self.secondary_indexes(table).await? {
                // The name comes from the catalog; quoted as an identifier all the same.
                self.execute_built(format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")), &[]).await?;
                creates.push(create);
            }
        }
        Ok(creates)
    }

    /// Runs statements that [`Self::drop_secondary_indexes`] returned (read from the
    /// database's catalog, never from input).
    pub async fn create_indexes(&mut self, creates: &[String]) -> Result<(), Error> {
        for create in creates {
            self.execute_built(create.clone(), &[]).await?;
        }
        Ok(())
    }

    /// Forgets a consumer's checkpoint (it starts from the beginning), e.g. for a rebuild.
    pub async fn delete_checkpoint(&mut self, consumer: &str) -> Result<(), Error> {
        self.execute("DELETE FROM eventlog_checkpoints WHERE consumer = $1", &[Arg::Text(consumer.to_owned())]).await?;
        Ok(())
    }
}

/// Parameters per statement at most. Both backends allow far more (SQLite 32,766,
/// PostgreSQL 65,535), but binding gets slower per parameter as statements grow (sqlx
/// looks each `$n` up by name): a few hundred rows per statement is the measured optimum.
const MAX_PARAMS: usize = 1_000;

/// Appends the `n`th parameter: `?` (positional, in order) or `$n`.
pub(crate) fn placeholder(sql: &mut String, n: usize, positional: bool) {
    if positional {
        sql.push('?');
    } else {
        sql.push('$');
        sql.push_str(&n.to_string());
    }
}

/// `head (p1, p2, ...) tail`: a statement over a list of `n` values.
pub(crate) fn in_list(head: &str, n: usize, tail: &str, positional: bool) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + n * 7);
    sql.push_str(head);
    sql.push_str(" (");
    for i in 1..=n {
        if i > 1 {
            sql.push_str(", ");
        }
        placeholder(&mut sql, i, positional);
    }
    sql.push(')');
    if !tail.is_empty() {
        sql.push(' ');
        sql.push_str(tail);
    }
    sql
}

/// How often a standby runner tries to take over a projection.
const LEAD_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// How often a runner measures its lag behind the head.
const LAG_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A read model fed by this store's log.
pub trait Projection: Send + Sync + 'static {
    /// A stable name; the checkpoint is stored under it.
    fn name(&self) -> &str;

    /// The events it reads.
    fn filter(&self) -> Filter {
        Filter::all()
    }

    /// Applies one event inside the transaction that will also store the checkpoint.
    fn apply<'a>(&'a self, tx: &'a mut Tx<'_>, event: &'a RecordedEvent) -> BoxFuture<'a, Result<(), Error>>;

    /// Applies a batch of events, in log order, inside one transaction. The default
    /// applies them one by one; a projection may fold them in memory and write each row
    /// once, as long as the outcome is the same as one by one.
    fn apply_batch<'a>(&'a self, tx: &'a mut Tx<'_>, events: &'a [RecordedEvent]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            for e in events {
                self.apply(tx, e).await?;
            }
            Ok(())
        })
    }

    /// The events a rebuild reads: `filter()` unless the projection knows that `apply`
    /// ignores every event outside a narrower one (a rebuild then skips reading them and
    /// leaves the checkpoint at the head it rebuilt to).
    fn rebuild_filter(&self) -> Filter {
        self.filter()
    }

    /// Tables whose secondary indexes a rebuild drops before it writes and creates again
    /// at its end (one sort per index instead of an index insert per row). Empty: none.
    fn rebuild_tables(&self) -> &'static [&'static str] {
        &[]
    }

    /// Called once at the end of a rebuild, in its transaction, after the last page: a
    /// projection whose `apply_batch` holds objects back across pages (to write each once)
    /// writes what it still holds.
    fn finish_rebuild<'a>(&'a self, _tx: &'a mut Tx<'_>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// Events applied per transaction at most.
const BATCH: usize = 500;
/// Events per page of a rebuild. Pages are read while the one before is applied; a
/// projection that folds across pages (see [`Projection::finish_rebuild`]) gains nothing
/// from larger ones, and memory grows with them (two pages are held at a time).
pub const REBUILD_PAGE: usize = 20_000;

fn moved(name: &str) -> Error {
    Error::Handler(format!("{name}: another runner moved the checkpoint during the rebuild"))
}

/// Runs a projection from its checkpoint, forever: every batch of events is applied and
/// checkpointed in one transaction. The checkpoint is compared and set first in that
/// transaction, so a second runner of the same projection (or a batch that a killed runner
/// left committing) makes this runner start again from the stored checkpoint instead of
/// applying events twice. Returns only when a batch fails (nothing of it took effect) or
/// the log cannot be read.
pub async fn run_projection<P: Projection>(store: EventStore, projection: Arc<P>) -> Result<(), Error> {
    // One active runner per projection among the processes sharing the log: the others
    // wait as standbys. (Correctness does not depend on it: the checkpoint is compared and
    // set with the projection's writes, so a runner that loses a race restarts from the
    // winner's checkpoint. The lock only saves the double work.)
    let _leading = store.lead(&format!("projection/{}", projection.name()), LEAD_RETRY).await?;
    let mut measured = std::time::Instant::now() - LAG_EVERY;
    'restart: loop {
        let mut checkpoint = store.load_checkpoint(projection.name()).await?;
        let start = match &checkpoint {
            Some(c) => c.parse()?,
            None => Cursor::START,
        };
        let mut events = store.subscribe(start, projection.filter()).ready_chunks(BATCH);
        while let Some(batch) = events.next().await {
            let batch = batch.into_iter().collect::<Result<Vec<_>, _>>()?;
            let Some(last) = batch.last() else { continue };
            let next = last.cursor.to_string();
            let last_position = last.cursor.position();
            let batch_len = batch.len();
            let p = projection.clone();
            let (expected, new) = (checkpoint.clone(), next.clone());
            // Relaxed: a batch lost with its checkpoint to a power loss is applied again.
            let moved = store
                .transaction_relaxed(move |tx| {
                    Box::pin(async move {
                        if !tx.compare_and_set_checkpoint(p.name(), expected.as_deref(), &new).await? {
                            return Ok(true);
                        }
                        p.apply_batch(tx, &batch).await?;
                        Ok(false)
                    })
                })
                .await?;
            if moved {
                tracing::debug!(
                    projection = projection.name(),
                    "checkpoint moved under this runner; restarting from it"
                );
                continue 'restart;
            }
            // How far behind the head it is: measured at most once per LAG_EVERY while
            // catching up (full batches), and after every batch once live, so that an idle
            // projection does not keep showing a lag from its catch-up.
            if measured.elapsed() >= LAG_EVERY || batch_len < BATCH {
                measured = std::time::Instant::now();
                let head = store.head().await?;
                crate::metrics::projection_lag(projection.name(), head.position() - last_position);
            }
            checkpoint = Some(next);
        }
        return Ok(());
    }
}

impl From<Box<dyn std::error::Error + Send + Sync>> for Error {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Error::Handler(e.to_string())
    }
}

/// Rebuilds a projection from the whole log, in one transaction: runs `reset`
/// (statements that empty its tables), drops the secondary indexes of its
/// [`Projection::rebuild_tables`], applies every event up to the head as it stands now in
/// pages of [`REBUILD_PAGE`] (the next page is read while one is applied), lets the
/// projection write what it held back ([`Projection::finish_rebuild`]), creates the indexes
/// again and stores the checkpoint at the head. A rebuild that fails or is killed therefore
/// leaves the read model and checkpoint it found. `progress` is called after each page with
/// (position reached, position of the head). Returns the count of events applied (those
/// the rebuild filter kept).
///
/// Run it while the projection's own runner is stopped: it holds the write transaction
/// throughout (SQLite's single writer; PostgreSQL's locks on the dropped indexes' tables).
pub async fn rebuild_projection<P: Projection>(
    store: &EventStore,
    projection: Arc<P>,
    reset: &'static [&'static str],
    progress: impl Fn(u64, u64),
) -> Result<u64, Error> {
    rebuild_projection_paged(store, projection, reset, REBUILD_PAGE, progress).await
}

/// [`rebuild_projection`] with pages of `page` events (tests cut a small log into many).
pub async fn rebuild_projection_paged<P: Projection>(
    store: &EventStore,
    projection: Arc<P>,
    reset: &'static [&'static str],
    page: usize,
    progress: impl Fn(u64, u64),
) -> Result<u64, Error> {
    let head = store.head().await?;
    let total = head.position().max(0) as u64;
    // The transaction runs on the store's writer (a task of its own on SQLite), so progress
    // comes back over a channel to the caller's `progress`.
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let reader = store.clone();
    let page = page.max(1);
    let work = store.transaction(move |tx| {
        Box::pin(async move {
            for sql in reset {
                tx.execute(sql, &[]).await?;
            }
            tx.delete_checkpoint(projection.name()).await?;
            let indexes = tx.drop_secondary_indexes(projection.rebuild_tables()).await?;
            let filter = projection.rebuild_filter();
            let mut applied = 0u64;
            let mut events = reader.read_all(Cursor::START, &filter, page).await?;
            loop {
                let cursor = events.next;
                let batch = std::mem::take(&mut events.events);
                if batch.is_empty() {
                    break;
                }
                applied += batch.len() as u64;
                // Reading the next page overlaps with applying this one (SQLite's readers
                // run beside its writer; PostgreSQL's on other connections).
                let read = async {
                    if cursor < head { reader.read_all(cursor, &filter, page).await.map(Some) } else { Ok(None) }
                };
                let (applying, following) = tokio::join!(projection.apply_batch(tx, &batch), read);
                applying?;
                let _ = report.send(cursor.position().max(0) as u64);
                match following? {
                    Some(p) => events = p,
                    None => break,
                }
            }
            projection.finish_rebuild(tx).await?;
            tx.create_indexes(&indexes).await?;
            // Events after the last one the rebuild filter kept, up to the head, are ones
            // the projection ignores: the checkpoint is the head.
            if head > Cursor::START
                && !tx.compare_and_set_checkpoint(projection.name(), None, &head.to_string()).await?
            {
                return Err(moved(projection.name()));
            }
            Ok(applied)
        })
    });
    tokio::pin!(work);
    let applied = loop {
        tokio::select! {
            done = &mut work => break done?,
            Some(position) = reports.recv() => progress(position, total),
        }
    };
    while let Ok(position) = reports.try_recv() {
        progress(position, total);
    }
    progress(total, total);
    Ok(applied)
}
