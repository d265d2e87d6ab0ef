//! The PostgreSQL backend: appends in one round trip through `eventlog_append`, gap-safe
//! reads below the oldest running transaction, and cross-process wake-ups by
//! LISTEN/NOTIFY sent after commit, never inside the append transaction.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::append::PreparedAppend;
use crate::plans::postgres as plans;
use crate::{AppendResult, Appended, Cursor, Error, ExpectedVersion, Filter, Page, RecordedEvent, StoreOptions};

/// How long commits wait to share one NOTIFY at most.
const NOTIFY_DEBOUNCE: Duration = Duration::from_millis(3);

/// The PostgreSQL event store.
#[derive(Clone)]
pub(crate) struct PgStore {
    pub(crate) pool: PgPool,
    /// Connections whose session commits with `synchronous_commit = off`, for relaxed
    /// writes: a relaxed statement then runs on its own (one round trip) instead of in a
    /// transaction that sets it (three). Opened when first used.
    pub(crate) relaxed: PgPool,
    channel: Arc<str>,
    notify_peers: Arc<Notify>,
    pub(crate) wake: watch::Sender<u64>,
    /// Background tasks stop once every clone of the store is gone.
    alive: Arc<()>,
}

/// Splits our own `schema=` parameter off a PostgreSQL URL.
fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), None) };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(s) => {
                schema = Some(s.to_owned());
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
    (url, schema)
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Applies `migrator` unless every one of its migrations is applied already (same
/// checksums): an up-to-date schema is only read, so a role without the right to change it
/// (a component whose schema a separate owner role migrates) opens it. A role that would
/// have to migrate and may not gets an error that says to run `samskab migrate`.
pub(crate) async fn migrate_if_behind(pool: &PgPool, migrator: &sqlx::migrate::Migrator) -> Result<(), Error> {
    let table = migrator.table_name.to_string();
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(&table).fetch_one(pool).await?;
    if exists {
        let applied: Vec<(i64, Vec<u8>, bool)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT version, checksum, success FROM {table}")))
                .fetch_all(pool)
                .await?;
        let current = migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .all(|m| applied.iter().any(|(v, sum, ok)| *v == m.version && *ok && sum.as_slice() == &*m.checksum));
        if current {
            return Ok(());
        }
    }
    let schema: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(pool).await?;
    migrator.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(db) | sqlx::migrate::MigrateError::ExecuteMigration(db, _) => {
            not_migrated(db, &schema)
        }
        other => Error::Migrate(other),
    })
}

/// A refusal to change a schema (SQLSTATE 42501, insufficient privilege) said in words an
/// operator can act on; any other error as it is.
fn not_migrated(e: sqlx::Error, schema: &str) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => Error::NotMigrated(format!(
            "schema {schema:?} is missing or not migrated to this release, and this database role may not \
             change it ({}): run `samskab migrate` with the schema owner's role (the migration Job) first",
            db.message()
        )),
        _ => Error::Database(e),
    }
}

impl PgStore {
    /// Tries to take the session advisory lock named `name` (within this schema) on a
    /// connection of its own, which then holds it until dropped or closed.
    pub(crate) async fn try_lead(&self, name: &str) -> Result<Option<sqlx::PgConnection>, Error> {
        let mut conn = self.pool.acquire().await?.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext(current_schema() || '/' || $1))")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(conn))
        } else {
            let _ = sqlx::Connection::close(conn).await;
            Ok(None)
        }
    }

    pub(crate) async fn connect(url: &str, opts: &StoreOptions) -> Result<Self, Error> {
        let (url, schema) = split_schema(url);
        let schema = schema.or_else(|| opts.pg_schema.clone());
        let mut connect = PgConnectOptions::from_str(&url)?
            // An idle transaction holds back every gap-safe reader (see the migration).
            .options([("idle_in_transaction_session_timeout", "60s")]);
        if let Some(schema) = &schema {
            if !valid_schema_name(schema) {
                return Err(Error::UnsupportedUrl(format!("schema name {schema:?}")));
            }
            let admin = PgPoolOptions::new().max_connections(1).connect_with(connect.clone()).await?;
            // A role with rights on its own schema only (a component in a least-privilege
            // deployment, whose schema the migration Job made) may not create one: it
            // never tries when the schema is there.
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&admin)
                .await?;
            if !exists {
                // Concurrent `CREATE SCHEMA IF NOT EXISTS` of one name can still fail on the
                // catalogue's unique index: processes starting at once take turns.
                let mut tx = admin.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext('eventlog/create-schema'))")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}")))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| not_migrated(e, schema))?;
                tx.commit().await?;
            }
            admin.close().await;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let relaxed = PgPoolOptions::new()
            .max_connections((opts.max_connections / 4).max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(connect.clone().options([("synchronous_commit", "off")]));
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await?;
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.dangerous_set_table_name("eventlog_migrations");
        migrate_if_behind(&pool, &migrator).await?;
        let schema_name: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&pool).await?;
        let channel: Arc<str> = format!("eventlog_{schema_name}").into();
        let (wake, _) = watch::channel(0u64);
        let store =
            PgStore { pool, relaxed, channel, notify_peers: Arc::new(Notify::new()), wake, alive: Arc::new(()) };
        store.spawn_notifier();
        store.spawn_listener();
        Ok(store)
    }

    /// Sends one NOTIFY for any number of appends committed since the last one, outside
    /// of their transactions.
    fn spawn_notifier(&self) {
        let pool = self.pool.clone();
        let channel = self.channel.clone();
        let pending = self.notify_peers.clone();
        let alive = Arc::downgrade(&self.alive);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = pending.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if alive.upgrade().is_none() {
                            return;
                        }
                        continue;
                    }
                }
                if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(&*channel).execute(&pool).await {
                    tracing::debug!(error = %e, "eventlog notify failed; readers fall back to polling");
                    if pool.is_closed() {
                        return;
                    }
                }
                // Commits in the next few milliseconds share the next notification: a
                // NOTIFY costs the server a global lock, and other processes' readers
                // can wait that long.
                tokio::time::sleep(NOTIFY_DEBOUNCE).await;
            }
        });
    }

    /// Forwards other processes' notifications to this process's readers.
    fn spawn_listener(&self) {
        let pool = self.pool.clone();
        let channel = self.channel.clone();
        let wake = self.wake.clone();
        let alive = Arc::downgrade(&self.alive);
        tokio::spawn(async move {
            while alive.upgrade().is_some() {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(_) if pool.is_closed() => return,
                    Err(e) => {
                        tracing::debug!(error = %e, "eventlog listener cannot connect; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if listener.listen(&channel).await.is_err() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                loop {
                    match tokio::time::timeout(Duration::from_secs(1), listener.try_recv()).await {
                        Ok(Ok(_)) => wake.send_modify(|n| *n = n.wrapping_add(1)),
                        Ok(Err(_)) if pool.is_closed() => return,
                        Ok(Err(_)) => break,
                        Err(_) if alive.upgrade().is_none() || pool.is_closed() => return,
                        Err(_) => {}
                    }
                }
            }
        });
    }

    pub(crate) async fn append(&self, req: PreparedAppend, hold: Option<Duration>) -> Result<AppendResult, Error> {
        if req.streams.len() == 1 {
            return self.append_single(req, hold).await;
        }
        let mut counts = Vec::with_capacity(req.streams.len());
        let mut expected = Vec::with_capacity(req.streams.len());
        for s in &req.streams {
            counts.push(s.count as i64);
            expected.push(s.expected.code());
        }
        let ev = &req.events;
        let query = sqlx::query(
            "SELECT o_event_id, o_stream_id, o_version, o_position, o_tx \
             FROM eventlog_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(req.streams.iter().map(|s| s.stream_id.as_str()).collect::<Vec<_>>())
        .bind(expected)
        .bind(counts)
        .bind(ev.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.stream_index as i32 + 1).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.offset as i32).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.schema_version).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.payload.get()).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.metadata.as_str()).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.tenant).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
        .bind(ev.iter().map(|e| e.hash.as_slice()).collect::<Vec<_>>());
        let rows = match self.run(query, hold).await {
            Ok(rows) => rows,
            Err(e) => return self.explain_failure(&req, e).await,
        };
        let landed = rows.iter().map(appended_from_row).collect::<Result<Vec<_>, _>>()?;
        self.after_commit();
        req.result_from(landed, false)
    }

    /// The common case, one stream, as one plain statement: the stream's row is claimed
    /// in a data-modifying CTE and the events are inserted only if that claim matched
    /// the expectation, so a mismatch writes nothing and returns no rows.
    async fn append_single(&self, req: PreparedAppend, hold: Option<Duration>) -> Result<AppendResult, Error> {
        macro_rules! single_sql {
            ($claim:literal) => {
                concat!(
                    "WITH s AS (",
                    $claim,
                    ") INSERT INTO eventlog_events (event_id, stream_id, version, event_type, schema_version, \
                                                   payload, metadata, tenant, content_hash, occurred_at) \
                     SELECT x.id, $1, s.base + x.ord, x.t, x.sv, x.p::json, x.m::json, x.tn, x.h, x.oc \
                       FROM s, unnest($3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[], $8::uuid[], \
                                      $9::bytea[], $10::timestamptz[]) WITH ORDINALITY AS x(id, t, sv, p, m, tn, h, oc, ord) \
                     RETURNING event_id, stream_id, version, position, (tx_id::text)::bigint AS tx"
                )
            };
        }
        let stream = &req.streams[0];
        let sql = match stream.expected {
            ExpectedVersion::Any => single_sql!(
                "INSERT INTO eventlog_streams AS t (stream_id, version) VALUES ($1, $2) \
                 ON CONFLICT (stream_id) DO UPDATE SET version = t.version + excluded.version \
                 RETURNING t.version - $2 AS base"
            ),
            ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => single_sql!(
                "INSERT INTO eventlog_streams (stream_id, version) VALUES ($1, $2) \
                 ON CONFLICT (stream_id) DO NOTHING RETURNING 0::bigint AS base"
            ),
            ExpectedVersion::Exact(_) => single_sql!(
                "UPDATE eventlog_streams SET version = version + $2 WHERE stream_id = $1 AND version = $11 \
                 RETURNING version - $2 AS base"
            ),
        };
        let ev = &req.events;
        let mut query = sqlx::query(sql)
            .bind(stream.stream_id.as_str())
            .bind(stream.count as i64)
            .bind(ev.iter().map(|e| e.id).collect::<Vec<_>>())
            .bind(ev.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
            .bind(ev.iter().map(|e| e.schema_version).collect::<Vec<_>>())
            .bind(ev.iter().map(|e| e.payload.get()).collect::<Vec<_>>())
            .bind(ev.iter().map(|e| e.metadata.as_str()).collect::<Vec<_>>())
            .bind(ev.iter().map(|e| e.tenant).collect::<Vec<_>>())
            .bind(ev.iter().map(|e| e.hash.as_slice()).collect::<Vec<_>>())
            .bind(ev.iter().map(|e| e.occurred_at).collect::<Vec<_>>());
        if let ExpectedVersion::Exact(n) = stream.expected
            && n > 0
        {
            query = query.bind(n as i64);
        }
        let rows = match self.run(query, hold).await {
            Ok(rows) => rows,
            Err(e) => return self.explain_failure(&req, e).await,
        };
        if rows.is_empty() {
            // The claim did not match: a replay of this very call, or a real conflict.
            if let Some(outcome) = self.find_replay(&req).await? {
                return outcome;
            }
            let actual = self.stream_version(&stream.stream_id).await?;
            return Err(Error::WrongExpectedVersion {
                stream_id: stream.stream_id.clone(),
                expected: stream.expected,
                actual,
            });
        }
        let landed = rows.iter().map(appended_from_row).collect::<Result<Vec<_>, _>>()?;
        self.after_commit();
        req.result_from(landed, false)
    }

    /// Runs an append statement, in its own implicit transaction or (tests) in one held
    /// open for a while before it commits.
    async fn run<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        hold: Option<Duration>,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        match hold {
            None => query.fetch_all(&self.pool).await,
            Some(hold) => {
                let mut tx = self.pool.begin().await?;
                let rows = query.fetch_all(&mut *tx).await?;
                if !rows.is_empty() {
                    tokio::time::sleep(hold).await;
                }
                tx.commit().await?;
                Ok(rows)
            }
        }
    }

    /// Turns a failed append into the typed error, after checking whether the failure was
    /// a concurrent twin of this very call that committed first (then it is a replay).
    async fn explain_failure(&self, req: &PreparedAppend, e: sqlx::Error) -> Result<AppendResult, Error> {
        let Some(db) = e.as_database_error() else { return Err(Error::Database(e)) };
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let detail = db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|d| d.detail())
            .unwrap_or_default()
            .to_owned();
        match code.as_str() {
            "SX002" | "23505" => {
                // A twin of this call may have won the race: then this call is a replay.
                if let Some(outcome) = self.find_replay(req).await? {
                    return outcome;
                }
                if code == "23505" {
                    return Err(Error::Database(e));
                }
                let (idx, actual) = detail.split_once(':').unwrap_or(("0", "0"));
                let idx: usize = idx.parse::<usize>().unwrap_or(1).saturating_sub(1);
                let stream = &req.streams[idx.min(req.streams.len() - 1)];
                Err(Error::WrongExpectedVersion {
                    stream_id: stream.stream_id.clone(),
                    expected: stream.expected,
                    actual: actual.parse().unwrap_or(0),
                })
            }
            _ => Err(Error::Database(e)),
        }
    }

    /// When the call's ids are stored: the replay's result (same content) or the clash.
    async fn find_replay(&self, req: &PreparedAppend) -> Result<Option<Result<AppendResult, Error>>, Error> {
        let ids: Vec<Uuid> = req.events.iter().map(|e| e.id).collect();
        let rows = sqlx::query(plans::EVENTS_BY_IDS).bind(&ids).fetch_all(&self.pool).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        for row in &rows {
            let id: Uuid = row.get(0);
            let hash: Vec<u8> = row.get(5);
            let ours = req.events.iter().find(|e| e.id == id);
            if rows.len() != ids.len() || ours.is_none_or(|e| e.hash != hash) {
                return Ok(Some(Err(Error::IdempotencyClash { event_id: id })));
            }
        }
        let landed = rows.iter().map(appended_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Some(req.result_from(landed, true)))
    }

    fn after_commit(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
        self.notify_peers.notify_one();
    }

    pub(crate) async fn stream_version(&self, stream_id: &str) -> Result<u64, Error> {
        let v: Option<i64> =
            sqlx::query_scalar(plans::STREAM_VERSION).bind(stream_id).fetch_optional(&self.pool).await?;
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
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(recorded_from_row).collect()
    }

    pub(crate) async fn read_streams(&self, stream_ids: &[&str]) -> Result<Vec<RecordedEvent>, Error> {
        let rows = sqlx::query(plans::READ_STREAMS).bind(stream_ids).fetch_all(&self.pool).await?;
        rows.iter().map(recorded_from_row).collect()
    }

    pub(crate) async fn read_all(&self, after: Cursor, filter: &Filter, limit: usize) -> Result<Page, Error> {
        // One static statement per filter shape (see `plans`).
        let sql = match (&filter.stream_prefix, filter.tenant) {
            (None, None) => plans::READ_ALL,
            (Some(_), None) => plans::READ_ALL_PREFIX,
            (None, Some(_)) => plans::READ_ALL_TENANT,
            (Some(_), Some(_)) => plans::READ_ALL_PREFIX_TENANT,
        };
        let mut q = sqlx::query(sql).bind(after.tx as i64).bind(after.position).bind(limit as i64);
        if let Some(p) = &filter.stream_prefix {
            q = q.bind(p.clone());
        }
        if let Some(t) = filter.tenant {
            q = q.bind(t);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut events = Vec::with_capacity(rows.len());
        let mut head = None;
        for row in &rows {
            // A filtered statement's last-readable-cursor row has no event id.
            if row.try_get::<Option<Uuid>, _>(2)?.is_none() {
                head = Some(Cursor { tx: row.try_get::<i64, _>(1)? as u64, position: row.try_get(0)? });
            } else {
                events.push(recorded_from_row(row)?);
            }
        }
        Ok(crate::model::page(events, after, limit, head))
    }

    /// The cursor of the last event readers can see now.
    pub(crate) async fn head(&self) -> Result<Cursor, Error> {
        let row = sqlx::query(plans::HEAD).fetch_optional(&self.pool).await?;
        Ok(row.map_or(Cursor::START, |r| Cursor { tx: r.get::<i64, _>(0) as u64, position: r.get(1) }))
    }

    /// The greatest cursor of any committed event, readable yet or not (an older
    /// transaction may still be open below it).
    pub(crate) async fn last_committed(&self) -> Result<Cursor, Error> {
        let row = sqlx::query(plans::LAST_COMMITTED).fetch_optional(&self.pool).await?;
        Ok(row.map_or(Cursor::START, |r| Cursor { tx: r.get::<i64, _>(0) as u64, position: r.get(1) }))
    }

    pub(crate) async fn is_readable(&self, cursor: Cursor) -> Result<bool, Error> {
        Ok(sqlx::query_scalar("SELECT (($1::bigint)::text::xid8) < pg_snapshot_xmin(pg_current_snapshot())")
            .bind(cursor.tx as i64)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Above every transaction id running now (the current snapshot's xmax).
    pub(crate) async fn running_bound(&self) -> Result<i64, Error> {
        Ok(sqlx::query_scalar("SELECT (pg_snapshot_xmax(pg_current_snapshot())::text)::bigint")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Whether every transaction with an id below `bound` has ended.
    pub(crate) async fn all_ended_below(&self, bound: i64) -> Result<bool, Error> {
        Ok(sqlx::query_scalar("SELECT (($1::bigint)::text::xid8) <= pg_snapshot_xmin(pg_current_snapshot())")
            .bind(bound)
            .fetch_one(&self.pool)
            .await?)
    }

    pub(crate) async fn load_checkpoint(&self, consumer: &str) -> Result<Option<String>, Error> {
        Ok(sqlx::query_scalar(plans::CHECKPOINT).bind(consumer).fetch_optional(&self.pool).await?)
    }

    pub(crate) async fn close(&self) {
        self.relaxed.close().await;
        self.pool.close().await;
    }
}

fn appended_from_row(row: &PgRow) -> Result<Appended, Error> {
    let version: i64 = row.try_get(2)?;
    let position: i64 = row.try_get(3)?;
    let tx: i64 = row.try_get(4)?;
    Ok(Appended {
        event_id: row.try_get(0)?,
        stream_id: row.try_get(1)?,
        version: version as u64,
        position,
        cursor: Cursor { tx: tx as u64, position },
    })
}

fn recorded_from_row(row: &PgRow) -> Result<RecordedEvent, Error> {
    let position: i64 = row.try_get(0)?;
    let tx: i64 = row.try_get(1)?;
    let version: i64 = row.try_get(4)?;
    let payload: String = row.try_get(7)?;
    let metadata: &str = row.try_get(8)?;
    Ok(RecordedEvent {
        position,
        cursor: Cursor { tx: tx as u64, position },
        id: row.try_get(2)?,
        stream_id: row.try_get(3)?,
        version: version as u64,
        event_type: row.try_get(5)?,
        schema_version: row.try_get(6)?,
        payload: RawValue::from_string(payload).map_err(Error::Payload)?,
        metadata: serde_json::from_str(metadata).map_err(Error::Payload)?,
        occurred_at: row.try_get::<DateTime<Utc>, _>(9)?,
        recorded_at: row.try_get::<DateTime<Utc>, _>(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_split_off_the_url() {
        assert_eq!(split_schema("postgres://h/db?schema=booking"), ("postgres://h/db".into(), Some("booking".into())));
        assert_eq!(
            split_schema("postgres://h/db?sslmode=disable&schema=x&a=b"),
            ("postgres://h/db?sslmode=disable&a=b".into(), Some("x".into()))
        );
        assert_eq!(split_schema("postgres://h/db"), ("postgres://h/db".into(), None));
        assert!(valid_schema_name("t_abc123"));
        assert!(!valid_schema_name("x; drop"));
    }
}
